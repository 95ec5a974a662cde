"""Streaming sample-rate conversion for microphone chunks of any size."""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import signal


class StreamingResampler:
    """Convert a stream from `in_rate` to `out_rate` chunk by chunk.

    A stateful 8th-order Butterworth low-pass (cut-off at 0.45 x out_rate)
    removes what would alias, then linear interpolation with a phase carried
    across chunks picks the output samples. Chunk boundaries leave no clicks,
    and the output length tracks in_rate/out_rate without drift. This is
    speech quality, not hi-fi.
    """

    def __init__(self, in_rate: int, out_rate: int):
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate} Hz")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._step = in_rate / out_rate
        self._sos = None
        self._zi = None
        if in_rate > out_rate:
            self._sos = signal.butter(8, 0.45 * out_rate, fs=in_rate, output="sos")
            self._zi = np.zeros((self._sos.shape[0], 2))
        self._prev: Optional[float] = None
        self._phase = 0.0  # position of the next output sample, in input samples after _prev

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample one chunk; returns float32 samples at out_rate."""
        samples = np.asarray(samples, dtype=np.float64)
        if self.in_rate == self.out_rate:
            return samples.astype(np.float32)
        if samples.size == 0:
            return np.zeros(0, dtype=np.float32)
        if self._sos is not None:
            samples, self._zi = signal.sosfilt(self._sos, samples, zi=self._zi)
        if self._prev is None:
            x = samples
        else:
            x = np.concatenate(([self._prev], samples))
        last = len(x) - 1
        if self._phase > last:
            count = 0
        else:
            count = int(np.floor((last - self._phase) / self._step)) + 1
        positions = self._phase + self._step * np.arange(count)
        out = np.interp(positions, np.arange(len(x)), x)
        next_position = self._phase + self._step * count
        # Re-express the next position relative to x[-1], which becomes _prev.
        self._phase = next_position - last
        self._prev = float(x[-1])
        return out.astype(np.float32)


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole clip with a polyphase filter (higher quality than streaming)."""
    if in_rate == out_rate:
        return np.asarray(samples, dtype=np.float32)
    gcd = np.gcd(in_rate, out_rate)
    return signal.resample_poly(samples, out_rate // gcd, in_rate // gcd).astype(np.float32)
