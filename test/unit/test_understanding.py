"""Tests of clip understanding: VAD, Whisper tiny.en and the command parser together."""
import pathlib

import numpy as np
import pytest
import soundfile

from omni_agent.audio.asr import WhisperTranscriber
from omni_agent.audio.tts import synthesize
from omni_agent.model.result import ACTION_MOVE, ACTION_NAVIGATE
from omni_agent.model.understanding import UtteranceUnderstander, understand_clip
from omni_agent.model.vocabulary import load_vocabulary

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")  # "go forward ten meters"
DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"
RATE = 16000


@pytest.fixture(scope="module")
def understander():
    vocabulary = load_vocabulary(str(DATA_DIR / "places.yaml"), str(DATA_DIR / "objects.yaml"))
    return UtteranceUnderstander(WhisperTranscriber("tiny.en"), vocabulary)


@pytest.mark.skipif(not GOFORWARD.exists(), reason="needs the Debian package pocketsphinx-testdata")
def test_clip_go_forward(understander):
    samples = np.fromfile(GOFORWARD, dtype="<i2").astype(np.float32) / 32768.0

    outputs = understand_clip(samples, understander)

    assert len(outputs) == 1
    result = outputs[0].result
    assert result.action == ACTION_MOVE
    assert result.forward_m == pytest.approx(10.0)
    assert result.left_m == 0.0
    assert result.utterance_id == "utt-1"


@pytest.fixture(scope="module")
def kitchen_outputs(understander):
    samples, rate = soundfile.read(synthesize("Go to the kitchen."), dtype="float32")
    assert rate == RATE
    return understand_clip(samples, understander)


def test_clip_piper_kitchen(kitchen_outputs):
    assert len(kitchen_outputs) == 1
    result = kitchen_outputs[0].result
    assert result.action == ACTION_NAVIGATE
    assert result.place == "kitchen"
    assert "kitchen" in kitchen_outputs[0].transcription.text.lower()


def test_result_confidence_scaled(kitchen_outputs):
    (output,) = kitchen_outputs

    assert 0.0 < output.result.confidence < 1.0
    assert output.result.confidence == pytest.approx(output.transcription.confidence)


def test_clip_silence(understander):
    assert understand_clip(np.zeros(5 * RATE, dtype=np.float32), understander) == []


def test_understand_text_sets_id(understander):
    result = understander.understand_text("去厨房", utterance_id="typed-1")

    assert result.action == ACTION_NAVIGATE
    assert result.place == "kitchen"
    assert result.utterance_id == "typed-1"
