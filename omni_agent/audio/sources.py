"""Audio sources that deliver fixed-size mono chunks: files and PortAudio devices.

Both sources call `on_chunk(samples, capture_time)` from a background thread
with float32 mono samples in [-1, 1] at the output rate. `capture_time` is the
`time.monotonic()` time at which the chunk's first sample was captured (or
would have been, for a file played in real time).

This module does not import ROS. It imports `sounddevice` only when a device
is used, so file playback works on a machine without PortAudio.
"""
from __future__ import annotations

import logging
import pathlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from omni_agent.audio import MODEL_SAMPLE_RATE_HZ
from omni_agent.audio.chunk import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ
from omni_agent.audio.resample import StreamingResampler, resample

logger = logging.getLogger(__name__)

#: Silero VAD takes 512-sample frames at 16 kHz, which is 32 ms.
DEFAULT_CHUNK_MS = 32
#: Headerless files with these suffixes are read as S16LE mono.
RAW_SUFFIXES = (".raw", ".pcm")
#: Rates tried, after the output rate and the device's default rate, when a
#: device rejects both. They cover what USB and built-in microphones offer.
FALLBACK_DEVICE_RATES_HZ = (48000, 44100, 32000, 16000)
#: A device's capture times are re-aligned to the system clock when the
#: audio arrives this much later than its sample count predicts [s].
CLOCK_RESYNC_S = 0.5

ChunkCallback = Callable[[np.ndarray, float], None]
PathLike = Union[str, pathlib.Path]


class AudioFileError(ValueError):
    """An audio file that exists but cannot be read as audio."""


class AudioDeviceError(RuntimeError):
    """No usable input device: none exists, none matches, or none opens."""


# --- files -------------------------------------------------------------------

def load_audio_file(path: PathLike, raw_sample_rate: int = MODEL_SAMPLE_RATE_HZ) -> Tuple[np.ndarray, int]:
    """Read an audio file as mono float32 samples and return them with their rate.

    WAV, FLAC, OGG and the other formats libsndfile reads are decoded by
    soundfile at their own rate, and several channels are averaged to mono.
    Files ending in .raw or .pcm have no header and are read as S16LE mono at
    `raw_sample_rate`. Raises FileNotFoundError for a missing file and
    AudioFileError for one that cannot be decoded or contains no samples.
    """
    path = pathlib.Path(path)
    _check_rate(raw_sample_rate, "raw_sample_rate")
    if not path.is_file():
        raise FileNotFoundError(
            f"audio file not found: '{path}'; check the path (relative paths start at the "
            f"working directory {pathlib.Path.cwd()})")

    if path.suffix.lower() in RAW_SUFFIXES:
        samples, rate = _load_raw_s16le(path, raw_sample_rate)
    else:
        samples, rate = _load_with_soundfile(path)

    if samples.size == 0:
        raise AudioFileError(f"audio file '{path}' contains no samples; use a file with audio in it")
    return samples, rate


def _load_raw_s16le(path: pathlib.Path, sample_rate: int) -> Tuple[np.ndarray, int]:
    data = path.read_bytes()
    if len(data) % 2:
        raise AudioFileError(
            f"raw audio file '{path}' has an odd number of bytes ({len(data)}), so it is not "
            f"S16LE; convert it, for example with 'sox {path.name} -r 16000 -c 1 -b 16 out.wav'")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return samples, sample_rate


def _load_with_soundfile(path: pathlib.Path) -> Tuple[np.ndarray, int]:
    import soundfile

    try:
        frames, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        raise AudioFileError(
            f"cannot read '{path}' as audio ({error}); use WAV, FLAC or OGG, or name a "
            f"headerless S16LE mono file *.raw or *.pcm") from error
    samples = frames.mean(axis=1).astype(np.float32) if frames.shape[1] > 1 else frames[:, 0]
    return np.ascontiguousarray(samples), int(rate)


def _check_rate(rate: int, name: str) -> None:
    if not isinstance(rate, (int, np.integer)) or not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise ValueError(f"{name} {rate!r} is invalid; use an integer from "
                         f"{MIN_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} Hz")


def _check_chunk_samples(chunk_samples: int) -> None:
    if not isinstance(chunk_samples, (int, np.integer)) or chunk_samples < 1:
        raise ValueError(f"chunk_samples {chunk_samples!r} is invalid; use a positive integer "
                         f"(512 is 32 ms at 16 kHz)")


class _Chunker:
    """Cut a stream of sample blocks of any length into chunks of one fixed size."""

    def __init__(self, chunk_samples: int):
        self.chunk_samples = chunk_samples
        self._pending: List[np.ndarray] = []
        self._pending_count = 0

    @property
    def pending_count(self) -> int:
        return self._pending_count

    def push(self, samples: np.ndarray) -> List[np.ndarray]:
        """Append samples; return every whole chunk now available, oldest first."""
        if samples.size:
            self._pending.append(samples)
            self._pending_count += samples.size
        chunks = []
        if self._pending_count < self.chunk_samples:
            return chunks
        joined = np.concatenate(self._pending)
        whole = (joined.size // self.chunk_samples) * self.chunk_samples
        for start in range(0, whole, self.chunk_samples):
            chunks.append(joined[start:start + self.chunk_samples])
        rest = joined[whole:]
        self._pending = [rest] if rest.size else []
        self._pending_count = rest.size
        return chunks

    def flush(self) -> Optional[np.ndarray]:
        """Return what is left, padded with silence to a whole chunk, or None."""
        if not self._pending_count:
            return None
        last = np.zeros(self.chunk_samples, dtype=np.float32)
        joined = np.concatenate(self._pending)
        last[:joined.size] = joined
        self._pending = []
        self._pending_count = 0
        return last


class FileAudioSource:
    """Play a playlist of audio files as a stream of fixed-size chunks.

    The stream is a silence of `gap_s` before each file, the file resampled
    to `output_rate`, and one more gap after the last file, so that a
    downstream speech detector can close the last utterance. With `loop`, the
    playlist repeats with no trailing gap and never ends. Without `loop`, the
    final partial chunk is padded with silence and `on_end()` is called.

    With `realtime`, chunks are paced by the monotonic clock as a microphone
    would deliver them. Without it, they are emitted as fast as `on_chunk`
    returns, for tests and offline tools. Files are read and resampled in
    the constructor, so a bad path raises there.
    """

    def __init__(self, paths: Sequence[PathLike], on_chunk: ChunkCallback,
                 output_rate: int = MODEL_SAMPLE_RATE_HZ, chunk_samples: int = 512,
                 gap_s: float = 1.0, loop: bool = False, realtime: bool = True,
                 raw_sample_rate: int = MODEL_SAMPLE_RATE_HZ,
                 on_end: Optional[Callable[[], None]] = None):
        if isinstance(paths, (str, pathlib.Path)):
            raise TypeError(f"paths must be a list of files, got the single path {str(paths)!r}; "
                            f"wrap it in a list")
        if not paths:
            raise ValueError("the playlist is empty; give at least one audio file")
        _check_rate(output_rate, "output_rate")
        _check_chunk_samples(chunk_samples)
        if not np.isfinite(gap_s) or gap_s < 0:
            raise ValueError(f"gap_s {gap_s!r} is invalid; use a number of seconds >= 0")

        self.paths = [pathlib.Path(p) for p in paths]
        self.output_rate = int(output_rate)
        self.chunk_samples = int(chunk_samples)
        self.gap_s = float(gap_s)
        self.loop = loop
        self.realtime = realtime
        self._on_chunk = on_chunk
        self._on_end = on_end

        self.clips: List[np.ndarray] = []
        for path in self.paths:
            samples, rate = load_audio_file(path, raw_sample_rate)
            self.clips.append(resample(samples, rate, self.output_rate))
        self.gap_samples = int(round(self.gap_s * self.output_rate))

        self.chunks_emitted = 0
        self.passes_completed = 0
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def duration_s(self) -> float:
        """Length of one pass through the playlist, gaps included, in seconds."""
        total = sum(clip.size for clip in self.clips) + self.gap_samples * len(self.clips)
        if not self.loop:
            total += self.gap_samples
        return total / self.output_rate

    @property
    def finished(self) -> bool:
        """True once the playlist has ended, failed or been stopped."""
        return self._finished.is_set()

    def start(self) -> None:
        """Start playing in a background thread."""
        if self._thread is not None:
            raise RuntimeError("FileAudioSource.start() was called twice; create a new source to replay")
        self._thread = threading.Thread(target=self._run, name="file-audio-source", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop playing and wait for the thread to end."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Wait until the playlist ends; return False on timeout."""
        return self._finished.wait(timeout_s)

    def _segments(self):
        """Yield the blocks of one pass: gap, clip, gap, clip, ..."""
        gap = np.zeros(self.gap_samples, dtype=np.float32)
        for clip in self.clips:
            yield gap
            yield clip
        if not self.loop:
            yield gap

    def _run(self) -> None:
        chunker = _Chunker(self.chunk_samples)
        chunk_s = self.chunk_samples / self.output_rate
        start_time = time.monotonic()
        try:
            while not self._stop.is_set():
                for block in self._segments():
                    for chunk in chunker.push(block):
                        if not self._emit(chunk, start_time, chunk_s):
                            return
                self.passes_completed += 1
                if not self.loop:
                    break
            last = chunker.flush()
            if last is not None:
                self._emit(last, start_time, chunk_s)
            if not self._stop.is_set() and self._on_end is not None:
                self._on_end()
        except Exception as error:  # reported through .error; the thread must not die silently
            self.error = error
            logger.exception("file audio source failed after %d chunks", self.chunks_emitted)
        finally:
            self._finished.set()

    def _emit(self, chunk: np.ndarray, start_time: float, chunk_s: float) -> bool:
        """Pace and deliver one chunk; return False when stopped."""
        capture_time = start_time + self.chunks_emitted * chunk_s
        if self.realtime:
            # A microphone delivers a chunk once its last sample is captured.
            delay = capture_time + chunk_s - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return False
        elif self._stop.is_set():
            return False
        self._on_chunk(chunk.astype(np.float32, copy=False), capture_time)
        self.chunks_emitted += 1
        return True


# --- devices -----------------------------------------------------------------

@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can record."""

    index: int
    name: str
    host_api: str
    default_sample_rate: int   # Hz
    max_input_channels: int

    def describe(self) -> str:
        return (f"[{self.index}] '{self.name}' ({self.host_api}, {self.max_input_channels} in, "
                f"default {self.default_sample_rate} Hz)")


def _sounddevice():
    try:
        import sounddevice
    except OSError as error:  # raised when the PortAudio library is missing
        raise AudioDeviceError(
            f"cannot load PortAudio ({error}); install it (Debian: libportaudio2) or play a "
            f"file instead of a device") from error
    return sounddevice


def list_input_devices() -> List[InputDevice]:
    """List the PortAudio devices with at least one input channel."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        host_apis = sd.query_hostapis()
    except sd.PortAudioError as error:
        logger.warning("PortAudio could not list devices: %s", error)
        return []
    inputs = []
    for index, info in enumerate(devices):
        if info["max_input_channels"] < 1:
            continue
        host_api = host_apis[info["hostapi"]]["name"] if info["hostapi"] < len(host_apis) else "?"
        inputs.append(InputDevice(index=int(info.get("index", index)), name=info["name"],
                                  host_api=host_api,
                                  default_sample_rate=int(round(info["default_samplerate"])),
                                  max_input_channels=int(info["max_input_channels"])))
    return inputs


def refresh_devices() -> None:
    """Make PortAudio scan the devices again, for example after a microphone is plugged in.

    PortAudio scans once, when sounddevice is imported. Call this only while
    no stream of this process is open, because it terminates PortAudio.
    """
    sd = _sounddevice()
    # NOTE: _terminate and _initialize are private in sounddevice 0.5; the
    # public API has no rescan.
    sd._terminate()
    sd._initialize()


_NO_DEVICE_FIX = ("play a WAV file instead (set the source to a file path), or create a virtual "
                  "microphone: a PulseAudio null sink with a remap source of its monitor, "
                  "and PULSE_SERVER pointing at that server")


def _no_device_message(what: str, devices: Sequence[InputDevice]) -> str:
    if devices:
        listing = "available input devices: " + "; ".join(d.describe() for d in devices)
        return f"{what}; {listing}. Fix: give one of these names or indexes, or {_NO_DEVICE_FIX}"
    return (f"{what}; PortAudio lists no input devices at all. Fix: connect a microphone, "
            f"or {_NO_DEVICE_FIX}")


def find_input_device(device: Union[str, int] = "") -> InputDevice:
    """Find an input device by index, by a case-insensitive name substring, or the default ('').

    Raises AudioDeviceError, listing the available input devices, when no
    device matches or a name matches several.
    """
    devices = list_input_devices()
    text = str(device).strip()
    if not devices:
        requested = f"device {text!r}" if text else "the default input"
        raise AudioDeviceError(_no_device_message(f"no audio input device found for {requested}", devices))

    if text == "":
        return _default_input_device(devices)

    if text.lstrip("-").isdigit():
        index = int(text)
        for candidate in devices:
            if candidate.index == index:
                return candidate
        raise AudioDeviceError(_no_device_message(f"no input device has index {index}", devices))

    exact = [d for d in devices if d.name.lower() == text.lower()]
    if len(exact) == 1:
        return exact[0]
    matches = [d for d in devices if text.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioDeviceError(_no_device_message(f"no input device name contains {text!r}", devices))
    raise AudioDeviceError(
        f"{len(matches)} input devices match {text!r}: "
        + "; ".join(d.describe() for d in matches)
        + ". Fix: give the device index or a longer part of its name")


def _default_input_device(devices: Sequence[InputDevice]) -> InputDevice:
    sd = _sounddevice()
    try:
        default_index = int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError, KeyError):
        default_index = -1
    for candidate in devices:
        if candidate.index == default_index:
            return candidate
    logger.info("PortAudio has no default input device; using the first one, %s", devices[0].describe())
    return devices[0]


class DeviceAudioSource:
    """Record a PortAudio input device as a stream of fixed-size chunks.

    The device is opened at `device_rate` when it is given. Otherwise the
    output rate is tried first, then the device's default rate, then common
    rates, because some microphones support only 44.1 or 48 kHz and reject
    16 kHz with paInvalidSampleRate. Audio recorded at another rate is
    resampled to `output_rate` with a StreamingResampler. The PortAudio
    callback only queues the audio; a worker thread resamples, cuts chunks
    and calls `on_chunk`, so a slow consumer cannot make the device overflow.
    """

    def __init__(self, on_chunk: ChunkCallback, device: Union[str, int] = "",
                 output_rate: int = MODEL_SAMPLE_RATE_HZ, chunk_samples: int = 512,
                 device_rate: int = 0):
        _check_rate(output_rate, "output_rate")
        _check_chunk_samples(chunk_samples)
        if device_rate:
            _check_rate(device_rate, "device_rate")
        self.requested_device = device
        self.output_rate = int(output_rate)
        self.chunk_samples = int(chunk_samples)
        self.requested_device_rate = int(device_rate)
        self._on_chunk = on_chunk

        self.device: Optional[InputDevice] = None
        #: Rate the device stream was opened at, in Hz; None until start().
        self.opened_rate: Optional[int] = None
        #: Rates the device rejected before one opened, with PortAudio's message.
        self.rejected_rates: List[Tuple[int, str]] = []
        self.overflow_count = 0
        self.chunks_emitted = 0
        self.error: Optional[BaseException] = None

        self._stream = None
        self._queue: "queue.Queue[Optional[Tuple[np.ndarray, float]]]" = queue.Queue()
        self._worker: Optional[threading.Thread] = None

    @property
    def resampling(self) -> bool:
        return self.opened_rate is not None and self.opened_rate != self.output_rate

    @property
    def active(self) -> bool:
        """True while the stream is open and PortAudio reports it running."""
        return self._stream is not None and bool(self._stream.active)

    def start(self) -> None:
        """Find the device, open it at a rate it accepts and start recording.

        Raises AudioDeviceError when no device matches or none of the rates opens.
        """
        if self._stream is not None:
            raise RuntimeError("DeviceAudioSource.start() was called twice; call stop() first")
        sd = _sounddevice()
        self.device = find_input_device(self.requested_device)
        self.rejected_rates = []
        stream = None
        for rate in self._candidate_rates():
            try:
                sd.check_input_settings(device=self.device.index, channels=1, dtype="float32",
                                        samplerate=rate)
                stream = sd.InputStream(device=self.device.index, channels=1, dtype="float32",
                                        samplerate=rate, callback=self._audio_callback)
            except (sd.PortAudioError, ValueError) as error:
                self.rejected_rates.append((rate, str(error)))
                continue
            self.opened_rate = rate
            break
        if stream is None:
            tried = ", ".join(f"{rate} Hz ({message})" for rate, message in self.rejected_rates)
            raise AudioDeviceError(
                f"input device {self.device.describe()} opened at none of the sample rates "
                f"tried: {tried}. Fix: request a sample rate that the device supports, or "
                f"choose another device")

        self._resampler = StreamingResampler(self.opened_rate, self.output_rate)
        self._chunker = _Chunker(self.chunk_samples)
        self._samples_received = 0
        self._clock_origin: Optional[float] = None
        self._stream = stream
        self._worker = threading.Thread(target=self._work, name="device-audio-source", daemon=True)
        self._worker.start()
        try:
            stream.start()
        except sd.PortAudioError as error:
            self.stop()
            raise AudioDeviceError(
                f"input device {self.device.describe()} opened at {self.opened_rate} Hz but "
                f"failed to start ({error}); check that no other program holds it, or choose "
                f"another device") from error

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop recording, close the stream and end the worker thread."""
        stream, self._stream = self._stream, None
        if stream is not None:
            sd = _sounddevice()
            # A lost device can fail to stop or close. Nothing is left to save then.
            for action in (stream.stop, stream.close):
                try:
                    action()
                except sd.PortAudioError as error:
                    logger.warning("%s of the input stream of %s failed: %s", action.__name__,
                                   self.device.describe(), error)
        if self._worker is not None:
            self._queue.put(None)
            if self._worker is not threading.current_thread():
                self._worker.join(timeout_s)
            self._worker = None

    def _candidate_rates(self) -> List[int]:
        if self.requested_device_rate:
            return [self.requested_device_rate]
        rates = [self.output_rate, self.device.default_sample_rate, *FALLBACK_DEVICE_RATES_HZ]
        return list(dict.fromkeys(r for r in rates if MIN_SAMPLE_RATE_HZ <= r <= MAX_SAMPLE_RATE_HZ))

    def _audio_callback(self, indata, frames, time_info, status) -> None:
        # Runs on PortAudio's thread: copy and hand over, nothing slow.
        if status.input_overflow:
            self.overflow_count += 1
        self._queue.put((indata[:, 0].copy(), time.monotonic()))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            block, received_time = item
            try:
                self._deliver(block, received_time)
            except Exception as error:  # reported through .error; keep recording
                self.error = error
                logger.exception("delivering device audio failed after %d chunks", self.chunks_emitted)

    def _deliver(self, block: np.ndarray, received_time: float) -> None:
        converted = self._resampler.process(block)
        self._samples_received += converted.size
        self._update_clock(received_time)
        for chunk in self._chunker.push(converted):
            start_index = self.chunks_emitted * self.chunk_samples
            self._on_chunk(chunk, self._clock_origin + start_index / self.output_rate)
            self.chunks_emitted += 1

    def _update_clock(self, received_time: float) -> None:
        """Estimate the monotonic time at which output sample 0 was captured.

        Counting samples gives evenly spaced capture times; the origin comes
        from the arrival times. A block that arrives late (scheduling, bursts
        from the sound server) makes its estimate late and never early, so
        the smallest estimate seen is the most accurate one.
        """
        # NOTE: the device's input latency is not subtracted, so capture times
        # are late by that latency (a few ms to tens of ms).
        estimate = received_time - self._samples_received / self.output_rate
        if self._clock_origin is None or estimate < self._clock_origin:
            self._clock_origin = estimate
        elif estimate - self._clock_origin > CLOCK_RESYNC_S:
            # Lost audio or a device clock slower than the system clock.
            logger.info("audio capture clock is %.3f s behind the system clock; resynchronizing",
                        estimate - self._clock_origin)
            self._clock_origin = estimate
