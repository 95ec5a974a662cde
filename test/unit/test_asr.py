"""Tests of Whisper model resolution and transcription with the packaged weights."""
import json
import pathlib

import numpy as np
import pytest
import soundfile

from omni_agent.audio.asr import (
    ModelNotFoundError,
    WhisperTranscriber,
    resolve_whisper_model,
)
from omni_agent.audio.tts import synthesize

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")  # "go forward ten meters"
RATE = 16000

needs_speech = pytest.mark.skipif(not GOFORWARD.exists(),
                                  reason="needs the Debian package pocketsphinx-testdata")


@pytest.fixture(scope="module")
def tiny():
    return WhisperTranscriber("tiny.en")


@pytest.fixture(scope="module")
def base_zh():
    return WhisperTranscriber("base", language="zh")


# --- resolve_whisper_model -----------------------------------------------------

@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_resolve_packaged_model(name):
    folder = resolve_whisper_model(name)

    assert (folder / "model.bin").is_file()
    assert (folder / "config.json").is_file()


def test_resolve_base_is_multilingual():
    config = json.loads((resolve_whisper_model("base") / "config.json").read_text())

    assert len(config["lang_ids"]) > 1


def test_resolve_existing_folder_path():
    folder = resolve_whisper_model("tiny.en")

    assert resolve_whisper_model(str(folder)) == folder


def test_resolve_missing_path(tmp_path):
    missing = str(tmp_path / "no-such-model")

    with pytest.raises(ModelNotFoundError) as error:
        resolve_whisper_model(missing)

    assert repr(missing) in str(error.value)


def test_resolve_unknown_name():
    with pytest.raises(ModelNotFoundError, match="'large-v9'"):
        resolve_whisper_model("large-v9")


def test_resolve_folder_without_model(tmp_path):
    with pytest.raises(ModelNotFoundError) as error:
        resolve_whisper_model(str(tmp_path))

    assert str(tmp_path) in str(error.value)
    assert "model.bin" in str(error.value)


def test_model_not_found_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        resolve_whisper_model(str(tmp_path / "absent"))


# --- WhisperTranscriber ----------------------------------------------------------

@needs_speech
def test_tiny_transcribes_go_forward(tiny):
    samples = np.fromfile(GOFORWARD, dtype="<i2").astype(np.float32) / 32768.0

    result = tiny.transcribe(samples)
    words = result.text.lower()

    assert "forward" in words
    assert "10" in words or "ten" in words
    assert result.language == "en"
    assert result.accepted
    assert result.audio_duration_s == pytest.approx(samples.size / RATE)


def test_tiny_rejects_silence(tiny):
    result = tiny.transcribe(np.zeros(5 * RATE, dtype=np.float32))

    assert result.rejected_reason
    assert not result.accepted


def test_tiny_rejects_white_noise(tiny):
    rng = np.random.default_rng(1234)
    noise = (0.1 * rng.standard_normal(5 * RATE)).astype(np.float32)

    result = tiny.transcribe(noise)

    assert result.rejected_reason
    assert not result.accepted


def test_english_model_is_english_only(tiny):
    assert tiny.english_only
    assert tiny.language == "en"


def test_english_model_rejects_mandarin():
    with pytest.raises(ValueError) as error:
        WhisperTranscriber("tiny.en", language="zh")

    assert "'tiny.en'" in str(error.value)
    assert "base" in str(error.value)


@pytest.mark.parametrize("language", ["fr", "english", ""])
def test_unsupported_language(language):
    with pytest.raises(ValueError) as error:
        WhisperTranscriber("base", language=language)

    assert repr(language) in str(error.value)


def test_base_transcribes_mandarin(base_zh):
    # espeak-ng reading "去厨房" (go to the kitchen) in Mandarin.
    samples, rate = soundfile.read(synthesize("去厨房", voice="espeak", language="zh"), dtype="float32")

    result = base_zh.transcribe(samples)

    assert rate == RATE
    assert result.language == "zh"
    assert result.text.strip()
    assert not base_zh.english_only
