"""Tests of streaming resampling to 16 kHz on a real recording."""
import itertools
import pathlib

import numpy as np
import pytest

from omni_agent.audio.resample import StreamingResampler, resample

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")  # S16LE mono 16 kHz

pytestmark = pytest.mark.skipif(not GOFORWARD.exists(),
                                reason="needs the Debian package pocketsphinx-testdata")

#: Odd chunk sizes, cycled, so that chunk boundaries fall at every phase.
CHUNK_SIZES = (1, 7, 441, 1000, 1023, 4410, 13, 3)
#: The Butterworth low-pass delays the output by a few samples, so the
#: comparison with the original searches lags up to this many output samples.
MAX_LAG = 10


@pytest.fixture(scope="module")
def speech():
    return np.fromfile(GOFORWARD, dtype="<i2").astype(np.float32) / 32768.0


def stream(resampler, samples, sizes=CHUNK_SIZES):
    outputs = []
    start = 0
    for size in itertools.cycle(sizes):
        if start >= samples.size:
            break
        outputs.append(resampler.process(samples[start:start + size]))
        start += size
    return np.concatenate(outputs)


def correlate_best_lag(reference, output):
    n = min(reference.size, output.size)
    return max(float(np.corrcoef(reference[:n - lag], output[lag:n])[0, 1]) for lag in range(MAX_LAG + 1))


@pytest.mark.parametrize("in_rate", [44100, 48000])
def test_stream_length_tracks_ratio(speech, in_rate):
    upsampled = resample(speech, 16000, in_rate)

    output = stream(StreamingResampler(in_rate, 16000), upsampled)

    expected = upsampled.size * 16000 / in_rate
    assert abs(output.size - expected) <= 2
    assert abs(output.size - speech.size) <= 2


@pytest.mark.parametrize("in_rate", [44100, 48000])
def test_stream_matches_original(speech, in_rate):
    upsampled = resample(speech, 16000, in_rate)

    output = stream(StreamingResampler(in_rate, 16000), upsampled)

    assert output.dtype == np.float32
    assert correlate_best_lag(speech, output) > 0.98


@pytest.mark.parametrize("in_rate", [44100, 48000])
def test_chunking_does_not_change_output(speech, in_rate):
    upsampled = resample(speech, 16000, in_rate)

    whole = StreamingResampler(in_rate, 16000).process(upsampled)
    chunked = stream(StreamingResampler(in_rate, 16000), upsampled)

    assert chunked.size == whole.size
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)


def test_stream_upsamples_8000(speech):
    downsampled = resample(speech, 16000, 8000)

    output = stream(StreamingResampler(8000, 16000), downsampled)

    assert abs(output.size - speech.size) <= 2
    assert correlate_best_lag(speech, output) > 0.95


def test_same_rate_passthrough(speech):
    resampler = StreamingResampler(16000, 16000)

    output = stream(resampler, speech)

    assert output.dtype == np.float32
    np.testing.assert_array_equal(output, speech)


def test_empty_chunk_gives_empty_output():
    resampler = StreamingResampler(48000, 16000)

    assert resampler.process(np.zeros(0, dtype=np.float32)).size == 0


def test_empty_chunk_keeps_stream_state(speech):
    upsampled = resample(speech, 16000, 48000)
    half = upsampled.size // 2

    resampler = StreamingResampler(48000, 16000)
    parts = [resampler.process(upsampled[:half]), resampler.process(upsampled[:0]),
             resampler.process(upsampled[half:])]
    whole = StreamingResampler(48000, 16000).process(upsampled)

    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("in_rate, out_rate", [(0, 16000), (16000, 0), (-48000, 16000), (48000, -1)])
def test_invalid_rates(in_rate, out_rate):
    with pytest.raises(ValueError) as error:
        StreamingResampler(in_rate, out_rate)

    assert f"{in_rate} -> {out_rate} Hz" in str(error.value)


def test_resample_whole_clip_same_rate(speech):
    np.testing.assert_array_equal(resample(speech, 16000, 16000), speech)


def test_resample_whole_clip_length(speech):
    assert resample(speech, 16000, 48000).size == 3 * speech.size
