"""The packaged Omni checkpoint served by OmniRuntime on real recordings, speech and images."""
import numpy as np
import pytest
import skimage.data
import torch

from omni_agent.audio.resample import resample
from omni_agent.audio.sources import load_audio_file
from omni_agent.model.checkpoint import CheckpointError
from omni_agent.model.result import sure_from_audio
from omni_agent.model.runtime import OmniRuntime, romanize_for_text_encoder

GOFORWARD = "/usr/share/pocketsphinx/test/data/goforward.raw"
COMMANDS = ["go to the kitchen", "bring me the apple", "pick up the cup", "turn left", "stop",
            "go forward two meters", "what do you see", "去厨房", "把苹果拿给我", "停下"]
#: Measured cosine between the INT8 and float32 text embeddings of COMMANDS: 0.96-1.00 (see docs/model.md).
INT8_MIN_COSINE = 0.9


@pytest.fixture(scope="module")
def runtime():
    return OmniRuntime(text_int8=True)


@pytest.fixture(scope="module")
def float_runtime():
    return OmniRuntime(text_int8=False, load_image=False)


def test_runtime_real_recording(runtime):
    """The real "go forward ten meters": a forward move from audio alone, 10 m with the transcript.

    The packaged model hears the direction but not the amount from this
    speaker's audio alone, and is unsure of it, so the model node waits for the
    transcript (docs/model.md).
    """
    samples, rate = load_audio_file(GOFORWARD)
    audio = resample(samples, rate, 16000)
    prediction = runtime.understand(audio=audio, utterance_id="utt-1")
    result = prediction.result
    assert result.action == "move"
    assert result.forward_m > 0.0
    assert result.left_m == 0.0
    assert result.turn_rad == 0.0
    assert result.source == "omni_model"
    assert result.utterance_id == "utt-1"
    assert result.language == "en"
    assert prediction.importance == {"audio": 1.0}
    assert prediction.routing == {"audio": {"audio": 1.0}}
    if result.forward_m != pytest.approx(10.0):
        assert not sure_from_audio(result), "a wrong amount would be sent before the transcript"

    with_text = runtime.understand(audio=audio, text="Go forward 10 meters.").result
    assert (with_text.action, with_text.forward_m, with_text.left_m) == ("move", pytest.approx(10.0), 0.0)


@pytest.mark.parametrize("text,action,place,object_label", [
    ("go to the kitchen", "navigate", "kitchen", ""),
    ("bring me the apple", "bring", "", "apple"),
    ("去厨房", "navigate", "kitchen", ""),
    ("stop", "stop", "", ""),
])
def test_runtime_typed_commands(runtime, text, action, place, object_label):
    result = runtime.understand(text=text).result
    assert (result.action, result.place, result.object_label) == (action, place, object_label)
    assert result.language == ("zh" if text[0] > "~" else "en")


def test_romanize_mandarin_to_pinyin():
    assert romanize_for_text_encoder("去厨房") == "qu chu fang"
    assert romanize_for_text_encoder("go to the kitchen") == "go to the kitchen"


def test_runtime_int8_text_agrees(runtime, float_runtime):
    for text in COMMANDS:
        quantised = runtime.understand(text=text)
        reference = float_runtime.understand(text=text)
        assert quantised.label == reference.label, text
        a = torch.as_tensor(runtime.encode(text=text).features["text"].pooled)
        b = torch.as_tensor(float_runtime.encode(text=text).features["text"].pooled)
        assert torch.nn.functional.cosine_similarity(a, b, dim=0) > INT8_MIN_COSINE, text


def test_runtime_view_grounding(runtime):
    coffee = skimage.data.coffee()
    cup_box = np.array([[170, 50, 440, 320], [0, 0, 120, 120], [460, 250, 600, 400]], np.float32)
    prediction = runtime.understand(text="bring me the cup", image=coffee, image_boxes=cup_box)
    assert set(prediction.importance) == {"text", "image"}
    assert sum(prediction.importance.values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(prediction.routing["text"].values()) == pytest.approx(1.0, abs=1e-3)
    assert prediction.result.action == "bring"
    assert prediction.result.object_label == "cup"
    assert prediction.grounding is not None
    assert 1 <= prediction.grounding["region"] <= 3
    assert prediction.result.object_box == tuple(prediction.grounding["box"])


def test_runtime_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="omni-agent train"):
        OmniRuntime(tmp_path / "missing", load_image=False, load_text=False)


def test_runtime_no_input(runtime):
    with pytest.raises(ValueError, match="pass audio samples, a text or an image"):
        runtime.understand()
