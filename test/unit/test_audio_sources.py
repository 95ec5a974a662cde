"""Tests of the file and device audio sources, without ROS."""
import math
import pathlib
import threading
import time

import numpy as np
import pytest
import soundfile
import sounddevice

from omni_agent.audio import sources
from omni_agent.audio.resample import resample
from omni_agent.audio.sources import (
    AudioDeviceError,
    AudioFileError,
    DeviceAudioSource,
    FileAudioSource,
    find_input_device,
    list_input_devices,
    load_audio_file,
)

SPEECH_DIR = pathlib.Path("/usr/share/pocketsphinx/test/data")
GOFORWARD = SPEECH_DIR / "goforward.raw"   # "go forward ten meters", S16LE mono 16 kHz
NUMBERS = SPEECH_DIR / "numbers.raw"

needs_speech = pytest.mark.skipif(not GOFORWARD.exists() or not NUMBERS.exists(),
                                  reason="needs the Debian package pocketsphinx-testdata")


def read_raw(path):
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0


def correlation(a, b):
    n = min(a.size, b.size)
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


# --- load_audio_file ---------------------------------------------------------

@needs_speech
def test_load_raw_file():
    samples, rate = load_audio_file(GOFORWARD)

    assert rate == 16000
    assert samples.dtype == np.float32
    assert samples.size == GOFORWARD.stat().st_size // 2
    np.testing.assert_array_equal(samples, read_raw(GOFORWARD))


@needs_speech
def test_load_raw_file_at_given_rate():
    samples, rate = load_audio_file(GOFORWARD, raw_sample_rate=8000)

    assert rate == 8000
    assert samples.size == GOFORWARD.stat().st_size // 2


@needs_speech
def test_load_stereo_wav_44k(tmp_path):
    original = read_raw(GOFORWARD)
    at_44k = resample(original, 16000, 44100)
    stereo = np.stack([at_44k, 0.5 * at_44k], axis=1)
    path = tmp_path / "goforward-44k-stereo.wav"
    soundfile.write(path, stereo, 44100, subtype="PCM_16")

    samples, rate = load_audio_file(path)

    assert rate == 44100
    assert samples.ndim == 1
    assert samples.size == at_44k.size
    back = resample(samples, 44100, 16000)
    assert correlation(back, original) > 0.99
    # Mono is the mean of the channels: (1 + 0.5) / 2 of the original level.
    assert np.std(back) / np.std(original) == pytest.approx(0.75, abs=0.02)


def test_load_missing_file_names_path(tmp_path):
    missing = tmp_path / "no-such-command.wav"

    with pytest.raises(FileNotFoundError) as caught:
        load_audio_file(missing)

    assert str(missing) in str(caught.value)
    assert "check the path" in str(caught.value)


def test_load_unreadable_file(tmp_path):
    path = tmp_path / "not-audio.wav"
    path.write_text("this is text, not a RIFF header")

    with pytest.raises(AudioFileError) as caught:
        load_audio_file(path)

    assert str(path) in str(caught.value)
    assert "WAV, FLAC or OGG" in str(caught.value)


def test_load_raw_odd_byte_count(tmp_path):
    path = tmp_path / "odd.raw"
    path.write_bytes(b"\x00\x01\x02")

    with pytest.raises(AudioFileError, match="odd number of bytes"):
        load_audio_file(path)


def test_load_empty_wav(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)

    with pytest.raises(AudioFileError, match="contains no samples"):
        load_audio_file(path)


def test_load_invalid_raw_rate():
    with pytest.raises(ValueError, match="raw_sample_rate 0 is invalid"):
        load_audio_file(GOFORWARD, raw_sample_rate=0)


# --- FileAudioSource ---------------------------------------------------------

class ChunkRecorder:
    """Collects what a source delivers."""

    def __init__(self, stop_after=None):
        self.chunks = []
        self.capture_times = []
        self.ended = threading.Event()
        self.end_calls = 0
        self.enough = threading.Event()
        self.stop_after = stop_after

    def on_chunk(self, samples, capture_time):
        self.chunks.append(samples.copy())
        self.capture_times.append(capture_time)
        if self.stop_after is not None and len(self.chunks) >= self.stop_after:
            self.enough.set()

    def on_end(self):
        self.end_calls += 1
        self.ended.set()

    def audio(self):
        return np.concatenate(self.chunks)


def play_all(paths, gap_s, chunk_samples=512, output_rate=16000):
    recorder = ChunkRecorder()
    source = FileAudioSource(paths, recorder.on_chunk, output_rate=output_rate,
                             chunk_samples=chunk_samples, gap_s=gap_s, realtime=False,
                             on_end=recorder.on_end)
    source.start()
    assert source.wait(60), "the playlist did not end"
    source.stop()
    assert source.error is None
    return source, recorder


@needs_speech
def test_file_source_chunk_sizes_and_total():
    source, recorder = play_all([GOFORWARD], gap_s=0.25)

    gap = 4000
    content = GOFORWARD.stat().st_size // 2 + 2 * gap   # gap, file, trailing gap
    assert {chunk.size for chunk in recorder.chunks} == {512}
    assert len(recorder.chunks) == math.ceil(content / 512)
    assert source.chunks_emitted == len(recorder.chunks)
    assert recorder.end_calls == 1

    audio = recorder.audio()
    np.testing.assert_array_equal(audio[:gap], 0.0)
    np.testing.assert_array_equal(audio[gap:gap + read_raw(GOFORWARD).size], read_raw(GOFORWARD))
    np.testing.assert_array_equal(audio[content - gap:], 0.0)


@needs_speech
def test_file_source_playlist_order():
    _, recorder = play_all([GOFORWARD, NUMBERS], gap_s=0.5)

    first, second = read_raw(GOFORWARD), read_raw(NUMBERS)
    gap = 8000
    audio = recorder.audio()
    second_start = gap + first.size + gap
    assert audio.size == math.ceil((second_start + second.size + gap) / 512) * 512
    np.testing.assert_array_equal(audio[gap:gap + first.size], first)
    np.testing.assert_array_equal(audio[gap + first.size:second_start], 0.0)
    np.testing.assert_array_equal(audio[second_start:second_start + second.size], second)


@needs_speech
def test_file_source_capture_times_follow_chunks():
    _, recorder = play_all([GOFORWARD], gap_s=0.0)

    steps = np.diff(recorder.capture_times)
    np.testing.assert_allclose(steps, 512 / 16000, rtol=1e-9)


@needs_speech
def test_file_source_resamples_to_output_rate():
    _, recorder = play_all([GOFORWARD], gap_s=0.0, chunk_samples=256, output_rate=8000)

    original = read_raw(GOFORWARD)
    audio = recorder.audio()
    assert {chunk.size for chunk in recorder.chunks} == {256}
    assert len(recorder.chunks) == math.ceil(original.size / 2 / 256)
    assert correlation(resample(audio, 8000, 16000), original) > 0.95


@needs_speech
def test_file_source_loop_repeats_until_stopped():
    clip = read_raw(GOFORWARD)
    chunks_needed = math.ceil(2 * clip.size / 512) + 2
    recorder = ChunkRecorder(stop_after=chunks_needed)
    source = FileAudioSource([GOFORWARD], recorder.on_chunk, gap_s=0.0, loop=True, realtime=False,
                             on_end=recorder.on_end)
    source.start()
    assert recorder.enough.wait(60), "the looping source stopped by itself"
    source.stop()

    assert source.finished
    assert source.passes_completed >= 2
    assert recorder.end_calls == 0
    audio = recorder.audio()
    np.testing.assert_array_equal(audio[:clip.size], clip)
    np.testing.assert_array_equal(audio[clip.size:2 * clip.size], clip)


@needs_speech
def test_file_source_realtime_stops_promptly():
    recorder = ChunkRecorder(stop_after=3)
    source = FileAudioSource([GOFORWARD], recorder.on_chunk, gap_s=0.0, realtime=True,
                             on_end=recorder.on_end)
    source.start()
    assert recorder.enough.wait(30)
    source.stop()

    assert source.finished
    assert recorder.end_calls == 0
    assert len(recorder.chunks) < math.ceil(read_raw(GOFORWARD).size / 512)


def test_file_source_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="playlist is empty"):
        FileAudioSource([], lambda samples, t: None)
    with pytest.raises(TypeError, match="wrap it in a list"):
        FileAudioSource(str(GOFORWARD), lambda samples, t: None)
    with pytest.raises(ValueError, match="gap_s -1"):
        FileAudioSource([GOFORWARD], lambda samples, t: None, gap_s=-1)
    with pytest.raises(ValueError, match="chunk_samples 0"):
        FileAudioSource([GOFORWARD], lambda samples, t: None, chunk_samples=0)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        FileAudioSource([tmp_path / "missing.wav"], lambda samples, t: None)


# --- DeviceAudioSource -------------------------------------------------------

def test_device_source_without_devices():
    if list_input_devices():
        pytest.skip("this machine has input devices, so the no-device message cannot be checked")
    source = DeviceAudioSource(lambda samples, t: None)

    with pytest.raises(AudioDeviceError) as caught:
        source.start()

    message = str(caught.value)
    assert "no audio input device found" in message
    assert "PortAudio lists no input devices" in message
    assert "WAV file" in message
    assert "PulseAudio" in message
    assert source.opened_rate is None


class FakePortAudio:
    """Stands in for sounddevice's device functions: one device that accepts only 44.1 kHz.

    The stream feeds a 1 kHz sine at 0.5 amplitude in 441-frame blocks, paced
    in real time, from its own thread, as PortAudio does.
    """

    def __init__(self, accepted_rate=44100, seconds=1.0, frequency_hz=1000.0):
        self.accepted_rate = accepted_rate
        self.seconds = seconds
        self.frequency_hz = frequency_hz
        self.checked_rates = []
        self.devices = [
            {"name": "HDMI output", "index": 0, "hostapi": 0, "max_input_channels": 0,
             "default_samplerate": 48000.0},
            {"name": "USB Conference Mic: Audio (hw:1,0)", "index": 1, "hostapi": 0,
             "max_input_channels": 2, "default_samplerate": float(accepted_rate)},
            {"name": "Laptop Mic Array", "index": 2, "hostapi": 0, "max_input_channels": 4,
             "default_samplerate": 48000.0},
        ]
        self.streams = []

    def install(self, monkeypatch):
        monkeypatch.setattr(sounddevice, "query_devices", self.query_devices)
        monkeypatch.setattr(sounddevice, "query_hostapis", lambda: ({"name": "ALSA"},))
        monkeypatch.setattr(sounddevice, "check_input_settings", self.check_input_settings)
        monkeypatch.setattr(sounddevice, "InputStream", self.open_stream)

    def query_devices(self, device=None, kind=None):
        if kind == "input":
            return self.devices[1]
        return list(self.devices)

    def check_input_settings(self, device=None, channels=None, dtype=None, samplerate=None, **_):
        self.checked_rates.append(samplerate)
        if self.devices[device]["max_input_channels"] < 1:
            raise sounddevice.PortAudioError("Invalid number of channels")
        if device == 1 and samplerate != self.accepted_rate:
            raise sounddevice.PortAudioError(
                "Error opening InputStream: Invalid sample rate [PaErrorCode -9997]")

    def open_stream(self, device, channels, dtype, samplerate, callback):
        stream = FakeStream(self, samplerate, callback)
        self.streams.append(stream)
        return stream


class FakeStream:
    def __init__(self, port_audio, samplerate, callback):
        self.samplerate = samplerate
        self._callback = callback
        self._port_audio = port_audio
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self.active = False
        self.closed = False

    def start(self):
        self.active = True
        self._thread.start()

    def _feed(self):
        count = int(self._port_audio.seconds * self.samplerate)
        t = np.arange(count) / self.samplerate
        signal = (0.5 * np.sin(2 * np.pi * self._port_audio.frequency_hz * t)).astype(np.float32)
        for start in range(0, count, 441):
            block = signal[start:start + 441].reshape(-1, 1)
            self._callback(block, block.shape[0], None, sounddevice.CallbackFlags())
            time.sleep(block.shape[0] / self.samplerate)   # a device delivers in real time

    def stop(self):
        self._thread.join(10)
        self.active = False

    def close(self):
        self.closed = True


def dominant_frequency(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)]


def test_device_source_falls_back_to_supported_rate(monkeypatch):
    fake = FakePortAudio(accepted_rate=44100, seconds=1.0)
    fake.install(monkeypatch)
    recorder = ChunkRecorder(stop_after=30)
    source = DeviceAudioSource(recorder.on_chunk, device="usb", output_rate=16000, chunk_samples=512)

    source.start()
    assert recorder.enough.wait(30), "the device source delivered fewer than 30 chunks"
    source.stop()

    assert source.device.index == 1
    assert source.opened_rate == 44100
    assert source.resampling
    assert [rate for rate, _ in source.rejected_rates] == [16000]
    assert "Invalid sample rate" in source.rejected_rates[0][1]
    assert fake.streams[0].samplerate == 44100
    assert fake.streams[0].closed
    assert {chunk.size for chunk in recorder.chunks} == {512}
    audio = recorder.audio()
    # 1 s at 44.1 kHz becomes 16000 samples, of which whole chunks are delivered.
    assert audio.size == (16000 // 512) * 512
    assert dominant_frequency(audio, 16000) == pytest.approx(1000.0, abs=5.0)
    settled = audio[1000:]   # past the low-pass filter's start-up transient
    assert np.max(np.abs(settled)) == pytest.approx(0.5, abs=0.03)
    steps = np.diff(recorder.capture_times)
    assert np.all(steps > 0)
    # Capture times come from the sample count, so they are evenly spaced.
    np.testing.assert_allclose(steps, 512 / 16000, atol=1e-4)
    assert source.error is None


def test_device_source_opens_at_requested_device_rate(monkeypatch):
    fake = FakePortAudio(accepted_rate=44100)
    fake.install(monkeypatch)
    source = DeviceAudioSource(lambda samples, t: None, device="1", device_rate=44100)

    source.start()
    source.stop()

    assert fake.checked_rates == [44100]
    assert source.opened_rate == 44100
    assert source.rejected_rates == []


def test_device_source_all_rates_rejected(monkeypatch):
    fake = FakePortAudio(accepted_rate=44100)
    fake.install(monkeypatch)
    source = DeviceAudioSource(lambda samples, t: None, device="USB", device_rate=22050)

    with pytest.raises(AudioDeviceError) as caught:
        source.start()

    assert "22050 Hz" in str(caught.value)
    assert "USB Conference Mic" in str(caught.value)
    assert source.opened_rate is None


def test_find_device_by_name_and_index(monkeypatch):
    FakePortAudio().install(monkeypatch)

    assert find_input_device("laptop mic").index == 2
    assert find_input_device(2).name == "Laptop Mic Array"
    assert find_input_device("").index == 1
    assert [d.index for d in list_input_devices()] == [1, 2]


def test_find_device_no_match_lists_devices(monkeypatch):
    FakePortAudio().install(monkeypatch)

    with pytest.raises(AudioDeviceError) as caught:
        find_input_device("Blue Yeti")

    message = str(caught.value)
    assert "no input device name contains 'Blue Yeti'" in message
    assert "USB Conference Mic" in message
    assert "Laptop Mic Array" in message
    assert "HDMI output" not in message


def test_find_device_output_only_index(monkeypatch):
    FakePortAudio().install(monkeypatch)

    with pytest.raises(AudioDeviceError, match="no input device has index 0"):
        find_input_device("0")


def test_find_device_ambiguous_name(monkeypatch):
    FakePortAudio().install(monkeypatch)

    with pytest.raises(AudioDeviceError, match="2 input devices match 'mic'"):
        find_input_device("mic")


def test_device_source_rejects_bad_rates():
    with pytest.raises(ValueError, match="output_rate 100 is invalid"):
        DeviceAudioSource(lambda samples, t: None, output_rate=100)
    with pytest.raises(ValueError, match="device_rate 1 is invalid"):
        DeviceAudioSource(lambda samples, t: None, device_rate=1)


def test_sources_module_has_no_ros_import():
    text = pathlib.Path(sources.__file__).read_text()
    assert "rclpy" not in text
