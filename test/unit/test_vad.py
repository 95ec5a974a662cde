"""Tests of Silero VAD windows and speech segmentation on real recordings."""
import pathlib

import numpy as np
import pytest

from omni_agent.audio.vad import (
    VAD_WINDOW_SAMPLES,
    SileroVad,
    SpeechSegmenter,
    VadConfig,
    find_utterances,
)

SPEECH_DIR = pathlib.Path("/usr/share/pocketsphinx/test/data")
# S16LE mono 16 kHz: "go forward ten meters", a string of digits, "go somewhere and do something".
RECORDINGS = ("goforward.raw", "numbers.raw", "something.raw")

pytestmark = pytest.mark.skipif(not all((SPEECH_DIR / name).exists() for name in RECORDINGS),
                                reason="needs the Debian package pocketsphinx-testdata")

RATE = 16000


def read_raw(name):
    return np.fromfile(SPEECH_DIR / name, dtype="<i2").astype(np.float32) / 32768.0


def find_loud_extent(samples, frame=160, fraction=0.1):
    """Return (first, last) sample of the 10 ms frames louder than `fraction` of the loudest."""
    starts = np.arange(0, samples.size - frame, frame)
    rms = np.array([np.sqrt(np.mean(samples[s:s + frame] ** 2)) for s in starts])
    loud = starts[rms > fraction * rms.max()]
    return int(loud[0]), int(loud[-1] + frame)


@pytest.fixture(scope="module")
def vad():
    return SileroVad()


def segment(vad, samples, chunk=512, config=None):
    vad.reset()
    segmenter = SpeechSegmenter(vad, config or VadConfig())
    events = []
    for start in range(0, samples.size, chunk):
        events += segmenter.push(samples[start:start + chunk])
    return events + segmenter.flush()


def select_utterances(events):
    return [event for event in events if event.kind == "end"]


# --- SileroVad -------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 160, 511, 513, 1024])
def test_vad_rejects_other_window_sizes(vad, size):
    with pytest.raises(ValueError) as error:
        vad(np.zeros(size, dtype=np.float32))

    message = str(error.value)
    assert f"windows of {VAD_WINDOW_SAMPLES} samples" in message
    assert f"got {size}" in message
    assert "SpeechSegmenter" in message


def test_vad_scores_speech_above_silence(vad):
    speech = read_raw("goforward.raw")

    vad.reset()
    silence_score = vad(np.zeros(VAD_WINDOW_SAMPLES, dtype=np.float32))
    speech_scores = [vad(speech[s:s + VAD_WINDOW_SAMPLES]) for s in range(8192, 16384, VAD_WINDOW_SAMPLES)]

    assert silence_score < 0.1
    assert max(speech_scores) > 0.9


def test_vad_reset_repeats_scores(vad):
    speech = read_raw("goforward.raw")
    windows = speech[8192:8192 + 4 * VAD_WINDOW_SAMPLES].reshape(4, VAD_WINDOW_SAMPLES)

    vad.reset()
    first = [vad(window) for window in windows]
    vad.reset()
    second = [vad(window) for window in windows]

    assert first == second


# --- SpeechSegmenter on speech -------------------------------------------------

@pytest.mark.parametrize("name", RECORDINGS)
def test_segmenter_one_utterance(vad, name):
    samples = read_raw(name)

    events = segment(vad, samples)

    assert [event.kind for event in events] == ["start", "end"]
    assert events[1].reason == "silence"


@pytest.mark.parametrize("name", RECORDINGS)
def test_utterance_covers_speech(vad, name):
    samples = read_raw(name)
    first_loud, last_loud = find_loud_extent(samples)

    (utterance,) = select_utterances(segment(vad, samples))

    audio_end = utterance.start_sample + utterance.audio.size
    assert utterance.start_sample <= first_loud
    assert audio_end >= last_loud
    assert utterance.end_sample <= audio_end
    np.testing.assert_array_equal(utterance.audio, samples[utterance.start_sample:audio_end])


@pytest.mark.parametrize("name", RECORDINGS)
def test_utterance_trims_silence(vad, name):
    samples = read_raw(name)
    first_loud, last_loud = find_loud_extent(samples)

    (utterance,) = select_utterances(segment(vad, samples))

    # The segmenter keeps about speech_pad_s (0.2 s) of audio before the speech and
    # after the last voiced window, so the clip is less than 1 s longer than the loud part.
    assert utterance.audio.size < (last_loud - first_loud) + RATE
    assert utterance.audio.size < samples.size


@pytest.mark.parametrize("name", RECORDINGS)
@pytest.mark.parametrize("chunk", [160, 300, 1000, 4096])
def test_chunk_size_keeps_segmentation(vad, name, chunk):
    samples = read_raw(name)
    (reference,) = select_utterances(segment(vad, samples, chunk=512))

    found = select_utterances(segment(vad, samples, chunk=chunk))

    assert len(found) == 1
    assert abs(found[0].start_sample - reference.start_sample) <= VAD_WINDOW_SAMPLES
    assert abs(found[0].end_sample - reference.end_sample) <= VAD_WINDOW_SAMPLES


def test_start_event_before_end(vad):
    samples = read_raw("goforward.raw")

    start, end = segment(vad, samples)

    assert start.kind == "start"
    assert start.start_sample == end.start_sample
    assert start.audio is None


# --- no speech -------------------------------------------------------------------

def test_silence_has_no_utterance(vad):
    assert select_utterances(segment(vad, np.zeros(10 * RATE, dtype=np.float32))) == []


def test_white_noise_has_no_utterance(vad):
    rng = np.random.default_rng(1234)
    noise = (0.1 * rng.standard_normal(10 * RATE)).astype(np.float32)

    assert select_utterances(segment(vad, noise)) == []


def test_short_burst_discarded(vad):
    # 0.1 s cut from the start of "go forward", between 1 s of silence on each side.
    speech = read_raw("goforward.raw")
    silence = np.zeros(RATE, dtype=np.float32)
    clip = np.concatenate([silence, speech[8000:9600], silence])

    events = segment(vad, clip)

    assert [event.kind for event in events] == ["start", "discarded"]
    assert "min_speech_s=0.25" in events[1].reason
    assert events[1].audio is None


# --- limits and end of stream --------------------------------------------------

def test_max_utterance_cuts_long_speech(vad):
    samples = read_raw("goforward.raw")
    config = VadConfig(max_utterance_s=1.0)

    found = select_utterances(segment(vad, samples, config=config))

    assert len(found) >= 2
    assert found[0].reason == "reached max_utterance_s=1.0"
    for utterance in found:
        assert utterance.audio.size <= RATE + VAD_WINDOW_SAMPLES


def test_max_utterance_parts_are_contiguous(vad):
    samples = read_raw("goforward.raw")
    config = VadConfig(max_utterance_s=1.0)

    found = select_utterances(segment(vad, samples, config=config))

    for previous, following in zip(found, found[1:]):
        assert following.start_sample == previous.start_sample + previous.audio.size


def test_flush_closes_open_utterance(vad):
    samples = read_raw("goforward.raw")
    vad.reset()
    segmenter = SpeechSegmenter(vad)

    segmenter.push(samples[:20000])
    open_audio = segmenter.current_audio()
    events = segmenter.flush()

    assert open_audio.size > 0
    assert [event.kind for event in events] == ["end"]
    assert events[0].reason == "end of stream"
    assert not segmenter.in_speech


def test_flush_without_speech_is_empty(vad):
    vad.reset()
    segmenter = SpeechSegmenter(vad)

    segmenter.push(np.zeros(RATE, dtype=np.float32))

    assert segmenter.flush() == []
    assert segmenter.current_audio().size == 0


def test_find_utterances_returns_end_events(vad):
    samples = read_raw("something.raw")

    found = find_utterances(samples, vad)

    assert [event.kind for event in found] == ["end"]


# --- VadConfig -------------------------------------------------------------------

@pytest.mark.parametrize("fields, words", [
    ({"threshold": 0.3, "neg_threshold": 0.4}, "neg_threshold (0.4)"),
    ({"neg_threshold": 0.0}, "neg_threshold (0.0)"),
    ({"threshold": 1.0}, "threshold (1.0)"),
    ({"min_speech_s": -1.0}, "min_speech_s must be >= 0, got -1.0"),
    ({"min_silence_s": -0.1}, "min_silence_s must be >= 0, got -0.1"),
    ({"speech_pad_s": -0.2}, "speech_pad_s must be >= 0, got -0.2"),
    ({"max_utterance_s": 0.25}, "max_utterance_s (0.25)"),
])
def test_config_validate_errors(fields, words):
    with pytest.raises(ValueError) as error:
        VadConfig(**fields).validate()

    assert words in str(error.value)


def test_segmenter_validates_config(vad):
    with pytest.raises(ValueError, match="max_utterance_s"):
        SpeechSegmenter(vad, VadConfig(max_utterance_s=0.1))


def test_default_config_is_valid():
    VadConfig().validate()
