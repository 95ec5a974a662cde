"""Speech segmentation with Silero VAD.

Silero VAD v5/v6 scores windows of exactly 512 samples at 16 kHz (with the
last 64 samples of the previous window prepended as context) and raises on
any other size. `SileroVad` runs the packaged ONNX model on such windows.
`SpeechSegmenter` accepts chunks of any length, cuts them into windows and
turns the per-window speech probabilities into utterances.
"""
from __future__ import annotations

import importlib.resources
import pathlib
from dataclasses import dataclass, field
from typing import List, Optional, Union

import numpy as np

from omni_agent.audio import MODEL_SAMPLE_RATE_HZ

VAD_WINDOW_SAMPLES = 512          # at 16 kHz, 32 ms
VAD_CONTEXT_SAMPLES = 64
VAD_STATE_SHAPE = (2, 1, 128)


def packaged_vad_model() -> pathlib.Path:
    """Return the path of the Silero VAD ONNX model inside the silero-vad package."""
    try:
        path = importlib.resources.files("silero_vad") / "data" / "silero_vad.onnx"
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            "the silero-vad package is not installed; install it (pip install silero-vad) "
            "or pass the path of a silero_vad.onnx file") from error
    return pathlib.Path(str(path))


class SileroVad:
    """Speech probability for 512-sample windows at 16 kHz (stateful)."""

    def __init__(self, model_path: Union[str, pathlib.Path, None] = None):
        import onnxruntime

        path = pathlib.Path(model_path) if model_path else packaged_vad_model()
        if not path.is_file():
            raise FileNotFoundError(f"Silero VAD model {path} not found; pass the path of silero_vad.onnx")
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self._sample_rate = np.array(MODEL_SAMPLE_RATE_HZ, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget the recurrent state and context (start of a new stream)."""
        self._state = np.zeros(VAD_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros((1, VAD_CONTEXT_SAMPLES), dtype=np.float32)

    def __call__(self, window: np.ndarray) -> float:
        """Return the speech probability of one window, shape (512,), float32 at 16 kHz."""
        window = np.asarray(window, dtype=np.float32).reshape(1, -1)
        if window.shape[1] != VAD_WINDOW_SAMPLES:
            raise ValueError(
                f"Silero VAD needs windows of {VAD_WINDOW_SAMPLES} samples at 16 kHz, "
                f"got {window.shape[1]}; use SpeechSegmenter to buffer chunks of any size")
        x = np.concatenate([self._context, window], axis=1)
        probability, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": self._sample_rate})
        self._context = x[:, -VAD_CONTEXT_SAMPLES:]
        return float(probability.reshape(-1)[0])


@dataclass
class VadConfig:
    """Thresholds of the speech segmenter; times in seconds."""

    threshold: float = 0.5            # a window at or above this probability is speech
    neg_threshold: float = 0.35       # below this, a window counts towards the end of speech
    min_speech_s: float = 0.25        # shorter bursts (clicks, coughs) are not utterances
    min_silence_s: float = 0.4        # silence that closes an utterance
    speech_pad_s: float = 0.2         # audio kept before the speech start
    max_utterance_s: float = 15.0     # an utterance is closed after this long

    def validate(self) -> None:
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            raise ValueError(
                f"VAD thresholds must satisfy 0 < neg_threshold ({self.neg_threshold}) "
                f"<= threshold ({self.threshold}) < 1")
        for name in ("min_speech_s", "min_silence_s", "speech_pad_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"VAD {name} must be >= 0, got {getattr(self, name)}")
        if self.max_utterance_s <= self.min_speech_s:
            raise ValueError(f"VAD max_utterance_s ({self.max_utterance_s}) must exceed min_speech_s")


@dataclass
class SpeechEvent:
    """A change of the segmenter's state. Sample indices count from stream start."""

    kind: str                          # "start", "end" or "discarded"
    start_sample: int
    end_sample: int
    audio: Optional[np.ndarray] = None  # the utterance (with padding), only for "end"
    reason: str = ""                    # why an utterance ended or was discarded


@dataclass
class SpeechSegmenter:
    """Cut a 16 kHz stream of chunks of any size into utterances."""

    vad: SileroVad
    config: VadConfig = field(default_factory=VadConfig)

    def __post_init__(self):
        self.config.validate()
        self._pending = np.zeros(0, dtype=np.float32)   # samples not yet scored
        self._history: List[np.ndarray] = []            # scored windows kept for padding
        self._samples_seen = 0                          # samples scored so far
        self._in_speech = False
        self._speech_start = 0
        self._last_voiced_end = 0
        self._utterance: List[np.ndarray] = []

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def current_audio(self) -> np.ndarray:
        """Return the audio of the open utterance so far (for partial transcripts)."""
        return np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)

    def push(self, samples: np.ndarray) -> List[SpeechEvent]:
        """Add 16 kHz samples; return the events they caused, in order."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, dtype=np.float32)])
        events: List[SpeechEvent] = []
        while self._pending.size >= VAD_WINDOW_SAMPLES:
            window = self._pending[:VAD_WINDOW_SAMPLES]
            self._pending = self._pending[VAD_WINDOW_SAMPLES:]
            events.extend(self._score(window))
        return events

    def flush(self) -> List[SpeechEvent]:
        """Close an open utterance at the end of a stream."""
        if not self._in_speech:
            return []
        return [self._close("end of stream")]

    def _score(self, window: np.ndarray) -> List[SpeechEvent]:
        cfg = self.config
        probability = self.vad(window)
        window_start = self._samples_seen
        self._samples_seen += window.size
        events: List[SpeechEvent] = []

        if not self._in_speech:
            self._history.append(window)
            pad_windows = int(np.ceil(cfg.speech_pad_s * MODEL_SAMPLE_RATE_HZ / VAD_WINDOW_SAMPLES)) + 1
            del self._history[:-pad_windows]
            if probability >= cfg.threshold:
                self._in_speech = True
                self._utterance = list(self._history)
                self._speech_start = window_start
                self._last_voiced_end = self._samples_seen
                padded_start = self._samples_seen - sum(w.size for w in self._utterance)
                events.append(SpeechEvent("start", padded_start, self._samples_seen))
            return events

        self._utterance.append(window)
        if probability >= cfg.neg_threshold:
            self._last_voiced_end = self._samples_seen
        silence_s = (self._samples_seen - self._last_voiced_end) / MODEL_SAMPLE_RATE_HZ
        length_s = sum(w.size for w in self._utterance) / MODEL_SAMPLE_RATE_HZ
        if silence_s >= cfg.min_silence_s:
            events.append(self._close("silence"))
        elif length_s >= cfg.max_utterance_s:
            events.append(self._close(f"reached max_utterance_s={cfg.max_utterance_s}"))
        return events

    def _close(self, reason: str) -> SpeechEvent:
        audio = np.concatenate(self._utterance)
        end = self._samples_seen
        start = end - audio.size
        voiced_s = (self._last_voiced_end - self._speech_start) / MODEL_SAMPLE_RATE_HZ
        self._in_speech = False
        self._utterance = []
        self._history = []
        if voiced_s < self.config.min_speech_s:
            return SpeechEvent("discarded", start, end,
                               reason=f"speech of {voiced_s:.2f} s is shorter than min_speech_s="
                                      f"{self.config.min_speech_s}")
        # Keep the closing silence short: Whisper does better without a long tail.
        keep = audio.size - max(0, (end - self._last_voiced_end) - int(self.config.speech_pad_s * MODEL_SAMPLE_RATE_HZ))
        return SpeechEvent("end", start, self._last_voiced_end, audio=audio[:keep], reason=reason)


def find_utterances(samples: np.ndarray, vad: Optional[SileroVad] = None,
                    config: Optional[VadConfig] = None) -> List[SpeechEvent]:
    """Return the utterances ("end" events) of a whole 16 kHz clip."""
    vad = vad or SileroVad()
    vad.reset()
    segmenter = SpeechSegmenter(vad, config or VadConfig())
    events = segmenter.push(samples) + segmenter.flush()
    return [event for event in events if event.kind == "end"]
