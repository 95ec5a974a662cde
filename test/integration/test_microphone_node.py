"""The microphone node, run as its own process, publishing over DDS on loopback.

The PulseAudio tests record a virtual microphone: a private PulseAudio
server whose default source is the monitor of a null sink that paplay
feeds, reached by PortAudio through ALSA's pulse plugin.
"""
import math
import pathlib

import numpy as np
import pytest
import soundfile
from scipy import signal

from omni_agent.audio.chunk import decode_chunk
from omni_agent.msg import AudioChunk
from omni_agent.nodes.common import AUDIO_QOS
from pulse import PulseServer
from ros_harness import NodeProcess, RosHarness

pytestmark = pytest.mark.ros

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")
CHUNK_SAMPLES = 512
TOPIC = "audio/chunk"

needs_speech = pytest.mark.skipif(not GOFORWARD.exists(),
                                  reason="needs the Debian package pocketsphinx-testdata")


@pytest.fixture
def harness():
    ros = RosHarness("microphone_test")
    yield ros
    ros.close()


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:
        process.stop()


@pytest.fixture
def goforward():
    return np.fromfile(GOFORWARD, dtype="<i2").astype(np.float32) / 32768.0


@pytest.fixture
def goforward_wav(tmp_path, goforward):
    path = tmp_path / "goforward.wav"
    soundfile.write(path, goforward, 16000, subtype="PCM_16")
    return path


def start_microphone(processes, params, env=None):
    process = NodeProcess("microphone_node", params=params, env=env)
    processes.append(process)
    return process


def received_audio(messages):
    return np.concatenate([decode_chunk(m.data, m.sample_rate, m.channels, m.sample_format).samples
                           for m in messages])


def align(recorded, reference):
    """Find where `reference` best matches inside `recorded`; return (offset, correlation)."""
    if recorded.size < reference.size:
        raise ValueError(f"recorded audio ({recorded.size} samples) is shorter than the "
                         f"reference ({reference.size} samples); record longer")
    scores = signal.correlate(recorded, reference, mode="valid", method="fft")
    offset = int(np.argmax(scores))
    segment = recorded[offset:offset + reference.size]
    return offset, float(np.corrcoef(segment, reference)[0, 1])


def rms(samples):
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def check_chunk_format(messages):
    for message in messages:
        assert message.sample_rate == 16000
        assert message.channels == 1
        assert message.sample_format == "S16LE"
        assert len(message.data) == 2 * CHUNK_SAMPLES
        assert message.header.frame_id == "microphone"


@needs_speech
def test_file_source_publishes_command(harness, processes, goforward):
    messages = harness.collect(AudioChunk, TOPIC, AUDIO_QOS)
    node = start_microphone(processes, {"source": str(GOFORWARD), "gap_s": 1.0})

    node.wait_for_output("playlist ended", timeout_s=90)
    expected_chunks = math.ceil((goforward.size + 2 * 16000) / CHUNK_SAMPLES)
    harness.wait_for(lambda: len(messages) >= expected_chunks, 30, f"{expected_chunks} chunks")

    assert len(messages) == expected_chunks
    check_chunk_format(messages)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in messages]
    assert all(later > earlier for earlier, later in zip(stamps, stamps[1:]))
    offset, correlation = align(received_audio(messages), goforward)
    assert offset == 16000   # after the 1 s gap
    assert correlation >= 0.99
    assert node.alive()


@needs_speech
def test_file_source_playlist_end_logged(harness, processes):
    messages = harness.collect(AudioChunk, TOPIC, AUDIO_QOS)
    node = start_microphone(processes, {"files": [str(GOFORWARD), str(GOFORWARD)],
                                        "gap_s": 0.0, "realtime": False})

    node.wait_for_output("playlist ended after 2 file(s)", timeout_s=90)
    expected_chunks = math.ceil(2 * (GOFORWARD.stat().st_size // 2) / CHUNK_SAMPLES)
    harness.wait_for(lambda: len(messages) >= expected_chunks, 30, f"{expected_chunks} chunks")

    assert len(messages) == expected_chunks
    assert f"published {expected_chunks} chunks" in node.output()
    assert node.alive()


def test_missing_file_stops_node(harness, processes, tmp_path):
    missing = tmp_path / "missing-command.wav"
    node = start_microphone(processes, {"source": str(missing)})

    harness.wait_for(lambda: not node.alive(), 60, "the node to exit")

    assert node.process.returncode != 0
    assert "audio file not found" in node.output()
    assert str(missing) in node.output()


def record_command(harness, processes, pulse, wav_path, params, opened_text):
    """Start the node on the virtual microphone, play the WAV and return the audio recorded."""
    messages = harness.collect(AudioChunk, TOPIC, AUDIO_QOS)
    node = start_microphone(processes, {"source": "device", **params}, env=pulse.env)
    node.wait_for_output(opened_text, timeout_s=60)
    # The first PortAudio callback can come more than a second after the stream starts.
    harness.wait_for(lambda: len(messages) >= 5, 60, "the first chunks from the device")

    before_play = len(messages)
    pulse.play(wav_path)
    played_chunks = math.ceil(soundfile.info(str(wav_path)).duration * 16000 / CHUNK_SAMPLES)
    # Wait for the command plus about 1 s more, for the server's and PortAudio's buffers.
    needed = before_play + played_chunks + 32
    harness.wait_for(lambda: len(messages) >= needed, 60, f"{needed} chunks")

    snapshot = list(messages)
    check_chunk_format(snapshot)
    assert node.alive()
    return received_audio(snapshot), node


@pytest.mark.pulseaudio
@needs_speech
def test_virtual_microphone_16k(harness, processes, goforward, goforward_wav):
    with PulseServer(sample_rate=16000) as pulse:
        recorded, node = record_command(harness, processes, pulse, goforward_wav, {},
                                        "opened at 16000 Hz, no resampling")

    offset, correlation = align(recorded, goforward)
    assert correlation >= 0.9
    assert rms(recorded[offset:offset + goforward.size]) > 0.5 * rms(goforward)


@pytest.mark.pulseaudio
@needs_speech
def test_virtual_microphone_44k_resampled(harness, processes, goforward, goforward_wav):
    with PulseServer(sample_rate=44100) as pulse:
        recorded, node = record_command(harness, processes, pulse, goforward_wav,
                                        {"device_sample_rate": 44100},
                                        "opened at 44100 Hz, resampling 44100 -> 16000 Hz")

    offset, correlation = align(recorded, goforward)
    assert correlation >= 0.95
    assert rms(recorded[offset:offset + goforward.size]) > 0.5 * rms(goforward)


@pytest.mark.pulseaudio
def test_device_lost_and_reopened(harness, processes):
    messages = harness.collect(AudioChunk, TOPIC, AUDIO_QOS)
    with PulseServer(sample_rate=16000) as pulse:
        node = start_microphone(processes, {"source": "device", "device_retry_s": 0.5}, env=pulse.env)
        node.wait_for_output("opened at 16000 Hz", timeout_s=60)
        harness.wait_for(lambda: len(messages) >= 5, 60, "the first chunks from the device")

        pulse.stop_daemon()
        node.wait_for_output("input device stream stopped", timeout_s=60)
        node.wait_for_output("cannot open the input device", timeout_s=60)
        pulse.start()
        harness.wait_for(lambda: node.output().count("opened at 16000 Hz") >= 2, 60,
                         "the node to reopen the device")
        reopened_at = len(messages)
        harness.wait_for(lambda: len(messages) >= reopened_at + 5, 60, "chunks after reopening")

    assert node.alive()
    check_chunk_format(list(messages))


def test_no_device_keeps_retrying(harness, processes, tmp_path):
    # A PulseAudio address with no server behind it, and no autospawn: no device at all.
    client_conf = tmp_path / "client.conf"
    client_conf.write_text("autospawn = no\n")
    env = {"PULSE_SERVER": f"unix:{tmp_path / 'no-server'}", "PULSE_CLIENTCONFIG": str(client_conf)}
    node = start_microphone(processes, {"source": "device", "device_retry_s": 0.5}, env=env)

    node.wait_for_output("(attempt 4)", timeout_s=90)

    assert node.alive()
    log = node.output()
    if "PortAudio lists no input devices" not in log:
        pytest.skip("PortAudio found an input device other than PulseAudio on this machine")
    assert "cannot open the input device (attempt 1)" in log
    assert "play a WAV file instead" in log
    assert "PulseAudio null sink" in log
    assert "input device still unavailable" in log
