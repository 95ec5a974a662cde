"""Tests of the pretrained front-end encoders with the packaged weights and real data."""
import logging
import math
import pathlib

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from omni_agent.model import frontends
from omni_agent.model.frontends import (
    EfficientNetLite0Frontend,
    Frontend,
    FrontendOutput,
    MiniLMTextFrontend,
    WhisperEncoderFrontend,
    available_frontends,
    create_frontend,
    register_frontend,
)

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")  # "go forward ten meters"
RATE = 16000
HOP = 160  # samples per mel frame

# ImageNet-1k class indices of drinks and cups: 504 coffee mug, 967 espresso, 968 cup.
CUP_OR_COFFEE_CLASSES = {504, 967, 968}

COMMANDS = ["apple", "an apple", "the kitchen", "go to the kitchen and bring me the apple",
            "please stop", "turn left ninety degrees", "what colour is the cup",
            "bring the red mug from the table"]

needs_speech = pytest.mark.skipif(not GOFORWARD.exists(),
                                  reason="needs the Debian package pocketsphinx-testdata")


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def row_cosines(a, b):
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def whisper():
    return create_frontend("audio")


@pytest.fixture(scope="module")
def minilm():
    return create_frontend("text")


@pytest.fixture(scope="module")
def minilm_int8():
    return create_frontend("text", "minilm", int8=True)


@pytest.fixture(scope="module")
def effnet():
    return create_frontend("image")


@pytest.fixture(scope="module")
def effnet_bf16():
    return create_frontend("image", dtype="bfloat16")


@pytest.fixture(scope="module")
def goforward():
    return np.fromfile(GOFORWARD, dtype="<i2").astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def coffee():
    return skimage_data.coffee()


# --- registry ------------------------------------------------------------------------

def test_registry_lists_three_defaults():
    listing = available_frontends()

    assert listing["audio"][0] == "whisper"
    assert listing["text"][0] == "minilm"
    assert listing["image"][0] == "efficientnet_lite0"


def test_registry_unknown_name_rejected():
    with pytest.raises(ValueError) as error:
        create_frontend("audio", "wav2vec")

    assert "'wav2vec'" in str(error.value)
    assert "whisper" in str(error.value)


def test_registry_unknown_modality_rejected():
    with pytest.raises(ValueError) as error:
        create_frontend("smell")

    assert "'smell'" in str(error.value)
    for modality in ("audio", "image", "text"):
        assert modality in str(error.value)


def test_registry_accepts_new_modality(monkeypatch):
    monkeypatch.setattr(frontends, "_REGISTRY", {k: dict(v) for k, v in frontends._REGISTRY.items()})
    monkeypatch.setattr(frontends, "_DEFAULTS", dict(frontends._DEFAULTS))

    @register_frontend("depth", "mean_depth")
    class MeanDepth(Frontend):
        feature_dim = 1

        def __init__(self, scale=1.0):
            self.scale = scale

        def encode(self, data):
            value = np.array([data.mean() * self.scale], np.float32)
            return FrontendOutput(tokens=value[None], pooled=value)

    built = create_frontend("depth", scale=2.0)

    assert isinstance(built, MeanDepth)
    assert MeanDepth.modality == "depth"
    assert available_frontends()["depth"] == ["mean_depth"]
    assert built.encode_batch([np.ones((2, 2))])[0].pooled[0] == 2.0


def test_registry_duplicate_name_rejected():
    with pytest.raises(ValueError, match="already registered"):
        register_frontend("audio", "whisper")(WhisperEncoderFrontend)


# --- audio ---------------------------------------------------------------------------

@needs_speech
def test_audio_goforward_token_shape(whisper, goforward):
    output = whisper.encode(goforward)

    encoder_steps = (goforward.size // HOP + 1) // 2
    assert whisper.feature_dim == 512
    assert output.tokens.shape == (math.ceil(encoder_steps / 2), 512)
    assert output.tokens.dtype == np.float32
    assert output.pooled.shape == (512,)
    assert output.boxes is None


@needs_speech
def test_audio_goforward_values_finite(whisper, goforward):
    output = whisper.encode(goforward)

    assert np.isfinite(output.tokens).all()
    assert np.allclose(output.pooled, output.tokens.mean(axis=0), atol=1e-5)
    assert output.tokens.std(axis=0).mean() > 0.0


def test_audio_three_seconds_gives_75_tokens(whisper):
    noise = np.random.default_rng(0).normal(0.0, 0.01, 3 * RATE).astype(np.float32)

    assert whisper.encode(noise).tokens.shape == (75, 512)


def test_audio_thirty_seconds_accepted(whisper):
    silence = np.zeros(30 * RATE, np.float32)

    assert whisper.encode(silence).tokens.shape == (750, 512)


def test_audio_pool_one_keeps_steps():
    frontend = WhisperEncoderFrontend(model="tiny.en", pool=1)
    noise = np.random.default_rng(1).normal(0.0, 0.01, RATE).astype(np.float32)

    assert frontend.feature_dim == 384
    assert frontend.encode(noise).tokens.shape == (50, 384)


@pytest.mark.parametrize("samples, message", [
    (np.zeros(0, np.float32), "empty"),
    (np.array([0.0, np.nan] * 800, np.float32), "NaN"),
    (np.zeros((RATE, 2), np.float32), "1-D"),
    (np.zeros(RATE, np.int16), "float32"),
    (np.zeros(RATE, np.float64), "float32"),
    (np.zeros(100, np.float32), "too short"),
    (np.zeros(30 * RATE + 1, np.float32), "longer than"),
    ([0.0] * RATE, "numpy array"),
], ids=["empty", "nan", "stereo", "int16", "float64", "short", "over_30s", "list"])
def test_audio_bad_input_rejected(whisper, samples, message):
    with pytest.raises(ValueError, match=message):
        whisper.encode(samples)


# --- text ----------------------------------------------------------------------------

def test_text_tokens_exclude_padding(minilm):
    single = minilm.encode("an apple")
    batch = minilm.encode_batch(["an apple", "go to the kitchen and bring me the apple"])

    assert minilm.feature_dim == 384
    assert single.tokens.shape == (4, 384)  # [CLS] an apple [SEP]
    assert batch[0].tokens.shape == (4, 384)
    assert batch[1].tokens.shape == (11, 384)


def test_text_batch_matches_single(minilm):
    batch = minilm.encode_batch(COMMANDS)

    for text, output in zip(COMMANDS, batch):
        single = minilm.encode(text)
        assert np.allclose(output.tokens, single.tokens, atol=1e-4), text
        assert np.allclose(output.pooled, single.pooled, atol=1e-5), text


def test_text_pooled_unit_length(minilm):
    pooled = minilm.encode("what colour is the cup").pooled

    assert pooled.dtype == np.float32
    assert np.linalg.norm(pooled) == pytest.approx(1.0, abs=1e-5)


def test_text_apple_nearer_an_apple(minilm):
    apple, an_apple, kitchen = (output.pooled for output in
                                minilm.encode_batch(["apple", "an apple", "the kitchen"]))

    assert not np.allclose(apple, kitchen)
    assert cosine(apple, an_apple) > cosine(apple, kitchen) + 0.2


def test_text_truncated_to_max_tokens(minilm):
    long_text = " ".join(["apple"] * 100)

    assert minilm.encode(long_text).tokens.shape == (32, 384)


def test_text_int8_agrees_with_float(minilm, minilm_int8):
    # Measured on this list: cosine 0.94 to 0.98 per text (per-channel int8 weights).
    for text in COMMANDS:
        similarity = cosine(minilm.encode(text).pooled, minilm_int8.encode(text).pooled)
        assert similarity > 0.90, text


def test_text_int8_keeps_ranking(minilm_int8):
    apple, an_apple, kitchen = (minilm_int8.encode(text).pooled
                                for text in ["apple", "an apple", "the kitchen"])

    assert cosine(apple, an_apple) > cosine(apple, kitchen) + 0.2


def test_text_int8_linear_layers_quantized(minilm_int8):
    float_linear = [module for module in minilm_int8._model.modules()
                    if type(module) is torch.nn.Linear]

    assert float_linear == []


def test_text_chinese_mostly_unknown_warns(minilm, caplog):
    with caplog.at_level(logging.WARNING, logger=frontends.__name__):
        output = minilm.encode("去厨房拿苹果")

    assert output.tokens.shape == (8, 384)  # [CLS], six [UNK], [SEP]
    assert "[UNK]" in caplog.text


@pytest.mark.parametrize("text", ["", "   ", None, b"apple"])
def test_text_bad_input_rejected(minilm, text):
    with pytest.raises(ValueError, match="text"):
        minilm.encode(text)


def test_text_missing_folder_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        MiniLMTextFrontend(path=tmp_path)


# --- image ---------------------------------------------------------------------------

def test_image_coffee_classified_as_cup(effnet, coffee):
    top = effnet.classify(coffee, top_k=5)

    assert len(top) == 5
    assert top[0][0] in CUP_OR_COFFEE_CLASSES
    assert top[0][1] > 0.5
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)


def test_image_grid_tokens_and_boxes(effnet, coffee):
    height, width = coffee.shape[:2]
    output = effnet.encode(coffee)

    assert effnet.feature_dim == 1280
    assert output.tokens.shape == (1 + 9, 1280)
    assert output.tokens.dtype == np.float32
    assert output.boxes.shape == (1 + 9, 4)
    assert output.boxes[0].tolist() == [0, 0, width, height]
    assert output.boxes[1] == pytest.approx([0, 0, width / 3, height / 3])
    assert output.boxes[9] == pytest.approx([2 * width / 3, 2 * height / 3, width, height])
    assert np.array_equal(output.pooled, output.tokens[0])


def test_image_features_in_relu6_range(effnet, coffee):
    tokens = effnet.encode(coffee).tokens

    assert np.isfinite(tokens).all()
    assert tokens.min() >= 0.0
    assert tokens.max() <= 6.0


def test_image_grid_mean_equals_global(effnet, coffee):
    # Equal tiles that partition the image average, weighted by area, to the global token.
    tokens = effnet.encode(coffee).tokens

    assert np.allclose(tokens[1:].mean(axis=0), tokens[0], atol=1e-4)


def test_image_given_boxes(effnet, coffee):
    height, width = coffee.shape[:2]
    boxes = np.array([[0, 0, width, height], [250, 100, 450, 300], [10, 10, 12, 12],
                      [-50, -20, 100, 90], [300, 200, 300, 200]], np.float32)

    output = effnet.encode(coffee, boxes=boxes)

    assert output.tokens.shape == (1 + 5, 1280)
    assert np.allclose(output.tokens[1], output.tokens[0], atol=1e-5)
    assert output.boxes[4].tolist() == [0, 0, 100, 90]
    assert np.isfinite(output.tokens).all()
    assert output.tokens[3].max() > 0
    assert output.tokens[5].max() > 0
    assert not np.allclose(output.tokens[2], output.tokens[0], atol=1e-3)


def test_image_bfloat16_agrees_with_float32(effnet, effnet_bf16, coffee):
    reference = effnet.encode(coffee).tokens
    half = effnet_bf16.encode(coffee).tokens

    # Measured on coffee: cosine 0.9976 to 0.9991 per token.
    assert row_cosines(reference, half).min() > 0.99
    assert effnet_bf16.classify(coffee, top_k=1)[0][0] == effnet.classify(coffee, top_k=1)[0][0]


def test_image_batch_matches_single(effnet, coffee):
    cat = skimage_data.chelsea()
    boxes = np.array([[100, 50, 300, 250]], np.float32)

    batch = effnet.encode_batch([coffee, (cat, boxes), coffee[:, ::-1].copy()])

    assert batch[1].tokens.shape == (2, 1280)
    assert np.allclose(batch[0].tokens, effnet.encode(coffee).tokens, atol=1e-4)
    assert np.allclose(batch[1].tokens, effnet.encode(cat, boxes=boxes).tokens, atol=1e-4)
    assert not np.allclose(batch[2].tokens[1], batch[0].tokens[1], atol=1e-3)


def test_image_class_prototypes_shape(effnet):
    prototypes = effnet.class_prototypes()

    assert prototypes.shape == (1000, 1280)
    assert prototypes.dtype == np.float32


@pytest.mark.parametrize("image, message", [
    (np.zeros((48, 64, 4), np.uint8), "shape"),
    (np.zeros((48, 64), np.uint8), "shape"),
    (np.zeros((48, 64, 3), np.float32), "dtype"),
    (np.zeros((0, 64, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
], ids=["rgba", "mono", "float32", "empty", "list"])
def test_image_bad_input_rejected(effnet, image, message):
    with pytest.raises(ValueError, match=message):
        effnet.encode(image)


@pytest.mark.parametrize("boxes, message", [
    (np.zeros((2, 3)), "shape"),
    (np.array([[50, 50, 10, 10]]), "x1 < x0"),
    (np.array([[700, 0, 800, 100]]), "outside"),
    (np.array([[0, 0, np.nan, 10]]), "NaN"),
], ids=["three_columns", "reversed", "outside", "nan"])
def test_image_bad_boxes_rejected(effnet, coffee, boxes, message):
    with pytest.raises(ValueError, match=message):
        effnet.encode(coffee, boxes=boxes)


def test_image_bad_options_rejected():
    with pytest.raises(ValueError, match="float16"):
        EfficientNetLite0Frontend(dtype="float16")
    with pytest.raises(ValueError, match="grid"):
        EfficientNetLite0Frontend(grid=0)
