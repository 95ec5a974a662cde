"""VirtualMicrophone: a private PulseAudio server recorded in this process through PortAudio."""
import os
import threading

import numpy as np
import pytest
import soundfile

from omni_agent.audio import sources
from omni_agent.audio.virtual_mic import VirtualMicrophone, VirtualMicrophoneError

needs_pulseaudio = pytest.mark.skipif(not VirtualMicrophone.available(),
                                      reason="needs pulseaudio, pactl and paplay (Debian: pulseaudio, "
                                             "pulseaudio-utils)")
TONE_HZ = 440.0
RATE = 16000
#: Time allowed for the expected audio chunks to arrive, in seconds.
WAIT_LIMIT_S = 60.0


@pytest.fixture
def tone_wav(tmp_path):
    t = np.arange(RATE) / RATE
    path = tmp_path / "tone.wav"
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path


class ChunkCollector:
    def __init__(self):
        self.chunks = []
        self.changed = threading.Condition()

    def __call__(self, samples, capture_time):
        with self.changed:
            self.chunks.append(samples)
            self.changed.notify_all()

    def wait_for_count(self, count, description):
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.chunks) >= count, WAIT_LIMIT_S):
                raise AssertionError(f"{description}: {len(self.chunks)} of {count} chunks arrived")
            return len(self.chunks)


def test_missing_programs_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))

    assert not VirtualMicrophone.available()
    with pytest.raises(VirtualMicrophoneError) as raised:
        VirtualMicrophone()

    message = str(raised.value)
    assert "pulseaudio, pactl, paplay not found on PATH" in message
    assert "pulseaudio-utils" in message


def test_invalid_sample_rate_rejected():
    with pytest.raises(ValueError, match="12345"):
        VirtualMicrophone(sample_rate=12345)


@needs_pulseaudio
def test_env_before_start_raises():
    microphone = VirtualMicrophone()

    with pytest.raises(VirtualMicrophoneError, match="call start"):
        microphone.env


@pytest.mark.pulseaudio
@needs_pulseaudio
def test_start_and_stop():
    microphone = VirtualMicrophone(sample_rate=44100)
    microphone.start()
    try:
        directory = microphone.directory
        assert microphone.running
        assert microphone.socket.is_socket()
        assert microphone.env["PULSE_SERVER"] == f"unix:{directory / 'native'}"
        assert (directory / "client.conf").read_text() == "autospawn = no\n"
        modules = microphone._pactl(["list", "short", "modules"]).stdout
        assert "module-null-sink" in modules
        assert "tcp" not in modules.lower()
    finally:
        microphone.stop()

    assert not microphone.running
    assert microphone.directory is None
    assert not directory.exists()


@pytest.mark.pulseaudio
@needs_pulseaudio
def test_restart_keeps_address():
    with VirtualMicrophone() as microphone:
        env = microphone.env
        microphone.stop_daemon()
        assert not microphone.running
        assert not microphone.socket.exists()

        microphone.start()

        assert microphone.running
        assert microphone.env == env
        assert microphone.socket.is_socket()


@pytest.mark.pulseaudio
@needs_pulseaudio
def test_play_missing_file_raises(tmp_path):
    with VirtualMicrophone() as microphone:
        with pytest.raises(FileNotFoundError, match="missing.wav"):
            microphone.play(tmp_path / "missing.wav")


@pytest.mark.pulseaudio
@needs_pulseaudio
def test_device_source_records_played_tone(tone_wav):
    collector = ChunkCollector()
    before = os.environ.get("PULSE_SERVER")
    with VirtualMicrophone(sample_rate=RATE) as microphone:
        with microphone.apply_env() as env:
            assert os.environ["PULSE_SERVER"] == env["PULSE_SERVER"]
            # PortAudio lists devices once, so rescan for it to reach this server.
            sources.refresh_devices()
            source = sources.DeviceAudioSource(collector, output_rate=RATE, chunk_samples=512)
            source.start()
            try:
                started = collector.wait_for_count(5, "chunks before playing")
                microphone.play(tone_wav)
                # The tone is 31.25 chunks long. Wait for it and about 1 s more.
                collector.wait_for_count(started + 64, "chunks after playing")
            finally:
                source.stop()
    sources.refresh_devices()

    assert os.environ.get("PULSE_SERVER") == before
    assert source.error is None
    assert source.opened_rate == RATE
    recorded = np.concatenate(collector.chunks)
    assert np.max(np.abs(recorded)) > 0.4
    spectrum = np.abs(np.fft.rfft(recorded))
    peak_hz = np.argmax(spectrum) * RATE / recorded.size
    assert peak_hz == pytest.approx(TONE_HZ, abs=2.0)
