"""Decoding and encoding of self-describing audio chunks.

A chunk on the wire is interleaved little-endian samples plus its sample
rate, channel count and sample format. Decoding validates all three and
returns mono float32 samples in [-1, 1], so that a consumer never misreads a
48 kHz stereo stream as 16 kHz mono.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORMAT_S16LE = "S16LE"
FORMAT_F32LE = "F32LE"
SAMPLE_FORMATS = {FORMAT_S16LE: np.dtype("<i2"), FORMAT_F32LE: np.dtype("<f4")}
MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 192000
MAX_CHANNELS = 32
#: A sample at or beyond this magnitude counts as clipped.
CLIP_LEVEL = 0.999


class AudioFormatError(ValueError):
    """An audio chunk whose declared format is invalid or does not match its data."""


@dataclass
class DecodedChunk:
    """Mono float32 samples of one chunk and what was wrong with them."""

    samples: np.ndarray          # shape (n,), float32 in [-1, 1]
    sample_rate: int             # Hz
    nonfinite_count: int = 0     # NaN/Inf samples, replaced with 0
    clipped_fraction: float = 0.0


def decode_chunk(data: bytes, sample_rate: int, channels: int, sample_format: str) -> DecodedChunk:
    """Validate a chunk's format and return its samples as mono float32.

    Multi-channel audio is averaged to mono. NaN and Inf samples are replaced
    with 0 and counted, because one bad sample must not poison the speech
    detector's state. Raises AudioFormatError for a format that cannot be read.
    """
    if sample_format not in SAMPLE_FORMATS:
        raise AudioFormatError(
            f"unsupported sample_format {sample_format!r}; use one of {sorted(SAMPLE_FORMATS)}")
    if not MIN_SAMPLE_RATE_HZ <= sample_rate <= MAX_SAMPLE_RATE_HZ:
        raise AudioFormatError(
            f"sample_rate {sample_rate} Hz is out of range; "
            f"use {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"channels {channels} is out of range; use 1..{MAX_CHANNELS}")
    dtype = SAMPLE_FORMATS[sample_format]
    frame_bytes = dtype.itemsize * channels
    if len(data) % frame_bytes:
        raise AudioFormatError(
            f"chunk of {len(data)} bytes is not a whole number of {channels}-channel "
            f"{sample_format} frames ({frame_bytes} bytes each); check channels and sample_format")

    raw = np.frombuffer(bytes(data), dtype=dtype)
    if sample_format == FORMAT_S16LE:
        samples = raw.astype(np.float32) / 32768.0
    else:
        samples = raw.astype(np.float32)
    nonfinite = ~np.isfinite(samples)
    nonfinite_count = int(nonfinite.sum())
    if nonfinite_count:
        samples[nonfinite] = 0.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    np.clip(samples, -1.0, 1.0, out=samples)
    clipped = float(np.mean(np.abs(samples) >= CLIP_LEVEL)) if samples.size else 0.0
    return DecodedChunk(samples, sample_rate, nonfinite_count, clipped)


def encode_chunk(samples: np.ndarray, sample_format: str = FORMAT_S16LE) -> bytes:
    """Encode mono float samples in [-1, 1] as little-endian bytes."""
    samples = np.asarray(samples, dtype=np.float32)
    if sample_format == FORMAT_S16LE:
        # The same scale as decoding (32768), so that decode -> encode is exact.
        return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()
    if sample_format == FORMAT_F32LE:
        return samples.astype("<f4").tobytes()
    raise AudioFormatError(f"unsupported sample_format {sample_format!r}; use one of {sorted(SAMPLE_FORMATS)}")
