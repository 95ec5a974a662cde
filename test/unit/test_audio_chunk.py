"""Tests of audio chunk decoding and encoding on a real recording."""
import pathlib

import numpy as np
import pytest

from omni_agent.audio.chunk import (
    CLIP_LEVEL,
    FORMAT_F32LE,
    FORMAT_S16LE,
    AudioFormatError,
    decode_chunk,
    encode_chunk,
)

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")  # S16LE mono 16 kHz

pytestmark = pytest.mark.skipif(not GOFORWARD.exists(),
                                reason="needs the Debian package pocketsphinx-testdata")


@pytest.fixture(scope="module")
def raw_bytes():
    return GOFORWARD.read_bytes()


@pytest.fixture(scope="module")
def speech(raw_bytes):
    return np.frombuffer(raw_bytes, dtype="<i2").astype(np.float32) / 32768.0


# --- decoding and round trips ------------------------------------------------

def test_decode_s16le_mono(raw_bytes, speech):
    chunk = decode_chunk(raw_bytes, 16000, 1, FORMAT_S16LE)

    assert chunk.sample_rate == 16000
    assert chunk.samples.dtype == np.float32
    np.testing.assert_array_equal(chunk.samples, speech)
    assert chunk.nonfinite_count == 0
    assert chunk.clipped_fraction == 0.0


def test_s16le_bytes_round_trip(raw_bytes):
    chunk = decode_chunk(raw_bytes, 16000, 1, FORMAT_S16LE)

    assert encode_chunk(chunk.samples, FORMAT_S16LE) == raw_bytes


def test_s16le_samples_round_trip(speech):
    data = encode_chunk(speech, FORMAT_S16LE)
    chunk = decode_chunk(data, 16000, 1, FORMAT_S16LE)

    assert len(data) == 2 * speech.size
    np.testing.assert_allclose(chunk.samples, speech, rtol=0, atol=1.0 / 32767)


def test_f32le_round_trip(speech):
    data = encode_chunk(speech, FORMAT_F32LE)
    chunk = decode_chunk(data, 48000, 1, FORMAT_F32LE)

    assert len(data) == 4 * speech.size
    assert chunk.sample_rate == 48000
    np.testing.assert_array_equal(chunk.samples, speech)


def test_encode_default_format_is_s16le(speech):
    assert encode_chunk(speech) == encode_chunk(speech, FORMAT_S16LE)


def test_encode_unsupported_format(speech):
    with pytest.raises(AudioFormatError, match="'S24LE'"):
        encode_chunk(speech, "S24LE")


def test_decode_empty_chunk():
    chunk = decode_chunk(b"", 16000, 2, FORMAT_S16LE)

    assert chunk.samples.size == 0
    assert chunk.clipped_fraction == 0.0


# --- channels ------------------------------------------------------------------

def test_stereo_f32le_averaged_to_mono(speech):
    left = speech
    right = -0.5 * speech[::-1]
    interleaved = np.stack([left, right], axis=1).reshape(-1)

    chunk = decode_chunk(encode_chunk(interleaved, FORMAT_F32LE), 16000, 2, FORMAT_F32LE)

    assert chunk.samples.size == speech.size
    np.testing.assert_allclose(chunk.samples, (left + right) / 2, rtol=0, atol=1e-7)


def test_stereo_s16le_averaged_to_mono(speech):
    interleaved = np.stack([speech, np.zeros_like(speech)], axis=1).reshape(-1)
    data = (interleaved * 32768).astype("<i2").tobytes()

    chunk = decode_chunk(data, 44100, 2, FORMAT_S16LE)

    assert chunk.samples.size == speech.size
    np.testing.assert_allclose(chunk.samples, speech / 2, rtol=0, atol=1e-7)


def test_four_channels_averaged_to_mono(speech):
    part = speech[:4000]
    channels = [part, part, -part, np.zeros_like(part)]
    interleaved = np.stack(channels, axis=1).reshape(-1)

    chunk = decode_chunk(encode_chunk(interleaved, FORMAT_F32LE), 16000, 4, FORMAT_F32LE)

    np.testing.assert_allclose(chunk.samples, part / 4, rtol=0, atol=1e-7)


# --- format errors -------------------------------------------------------------

@pytest.mark.parametrize("sample_format", ["S24LE", "s16le", "F64LE", ""])
def test_decode_unsupported_format(raw_bytes, sample_format):
    with pytest.raises(AudioFormatError) as error:
        decode_chunk(raw_bytes, 16000, 1, sample_format)

    assert repr(sample_format) in str(error.value)
    assert "S16LE" in str(error.value)


@pytest.mark.parametrize("sample_rate", [0, 7999, 192001, -16000])
def test_decode_rate_out_of_range(raw_bytes, sample_rate):
    with pytest.raises(AudioFormatError) as error:
        decode_chunk(raw_bytes, sample_rate, 1, FORMAT_S16LE)

    assert f"sample_rate {sample_rate} Hz" in str(error.value)


@pytest.mark.parametrize("sample_rate", [8000, 192000])
def test_decode_rate_at_limits(raw_bytes, sample_rate):
    chunk = decode_chunk(raw_bytes, sample_rate, 1, FORMAT_S16LE)

    assert chunk.sample_rate == sample_rate


@pytest.mark.parametrize("channels", [0, 33, -1])
def test_decode_channels_out_of_range(raw_bytes, channels):
    with pytest.raises(AudioFormatError) as error:
        decode_chunk(raw_bytes, 16000, channels, FORMAT_S16LE)

    assert f"channels {channels}" in str(error.value)


def test_decode_32_channels_accepted():
    data = np.arange(64, dtype="<i2").tobytes()

    chunk = decode_chunk(data, 16000, 32, FORMAT_S16LE)

    assert chunk.samples.size == 2


@pytest.mark.parametrize("length, channels, sample_format, frame_bytes", [
    (3, 1, FORMAT_S16LE, 2),
    (6, 2, FORMAT_S16LE, 4),
    (6, 1, FORMAT_F32LE, 4),
    (12, 2, FORMAT_F32LE, 8),
])
def test_decode_partial_frame(raw_bytes, length, channels, sample_format, frame_bytes):
    with pytest.raises(AudioFormatError) as error:
        decode_chunk(raw_bytes[:length], 16000, channels, sample_format)

    message = str(error.value)
    assert f"{length} bytes" in message
    assert f"({frame_bytes} bytes each)" in message


def test_format_error_is_value_error():
    with pytest.raises(ValueError):
        decode_chunk(b"\x00", 16000, 1, FORMAT_S16LE)


# --- non-finite samples and clipping -------------------------------------------

def test_nonfinite_replaced_and_counted(speech):
    samples = speech.copy()
    bad = [100, 20000, 30000]
    samples[bad] = [np.nan, np.inf, -np.inf]

    chunk = decode_chunk(encode_chunk(samples, FORMAT_F32LE), 16000, 1, FORMAT_F32LE)

    assert chunk.nonfinite_count == 3
    assert np.all(np.isfinite(chunk.samples))
    np.testing.assert_array_equal(chunk.samples[bad], 0.0)
    keep = np.ones(speech.size, dtype=bool)
    keep[bad] = False
    np.testing.assert_array_equal(chunk.samples[keep], speech[keep])


def test_nonfinite_in_one_stereo_channel(speech):
    part = speech[:1000]
    left = part.copy()
    left[10] = np.nan
    interleaved = np.stack([left, part], axis=1).reshape(-1)

    chunk = decode_chunk(encode_chunk(interleaved, FORMAT_F32LE), 16000, 2, FORMAT_F32LE)

    assert chunk.nonfinite_count == 1
    assert chunk.samples[10] == pytest.approx(part[10] / 2)


def test_clipped_fraction_of_loud_f32le(speech):
    loud = 8.0 * speech
    expected = float(np.mean(np.abs(loud) >= CLIP_LEVEL))

    chunk = decode_chunk(encode_chunk(loud, FORMAT_F32LE), 16000, 1, FORMAT_F32LE)

    assert expected > 0.0
    assert chunk.clipped_fraction == pytest.approx(expected)
    assert chunk.samples.max() <= 1.0
    assert chunk.samples.min() >= -1.0


def test_clipped_fraction_of_full_scale_s16le():
    data = np.array([32767, -32768, 0, 100], dtype="<i2").tobytes()

    chunk = decode_chunk(data, 16000, 1, FORMAT_S16LE)

    assert chunk.clipped_fraction == pytest.approx(0.5)
