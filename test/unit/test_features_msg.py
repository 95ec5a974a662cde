"""features_to_fields / features_from_msg on real EfficientNet-Lite0 features of a photo."""
import array
import types

import numpy as np
import pytest
import torch
from skimage import data as skimage_data

from omni_agent.model.frontends import FrontendOutput, create_frontend
from omni_agent.vision.features_msg import features_from_msg, features_to_fields

COFFEE_WIDTH, COFFEE_HEIGHT = 600, 400


@pytest.fixture(scope="module")
def coffee_output():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        frontend = create_frontend("image")
        return frontend.encode(skimage_data.coffee())
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def fields(coffee_output):
    return features_to_fields(coffee_output, COFFEE_WIDTH, COFFEE_HEIGHT, "efficientnet_lite0", "float32")


def as_msg(fields, **changes):
    """Return a stand-in message with the given fields, as features_from_msg reads them."""
    values = dict(fields)
    values.update(changes)
    return types.SimpleNamespace(**values)


# --- round trip ------------------------------------------------------------------

def test_fields_describe_coffee_features(fields, coffee_output):
    assert fields["image_width"] == COFFEE_WIDTH
    assert fields["image_height"] == COFFEE_HEIGHT
    assert fields["frontend"] == "efficientnet_lite0"
    assert fields["precision"] == "float32"
    assert fields["num_tokens"] == 10  # the whole image + a 3x3 grid
    assert fields["feature_dim"] == 1280
    assert isinstance(fields["tokens"], array.array)
    assert fields["tokens"].typecode == "f"
    assert len(fields["tokens"]) == 10 * 1280
    assert isinstance(fields["boxes"], array.array)
    assert fields["boxes"].typecode == "f"
    assert len(fields["boxes"]) == 10 * 4


def test_round_trip_keeps_features(fields, coffee_output):
    output, size = features_from_msg(as_msg(fields))

    assert size == (COFFEE_WIDTH, COFFEE_HEIGHT)
    assert output.tokens.dtype == np.float32
    assert output.tokens.shape == (10, 1280)
    np.testing.assert_array_equal(output.tokens, coffee_output.tokens)
    np.testing.assert_array_equal(output.pooled, coffee_output.tokens[0])
    np.testing.assert_array_equal(output.boxes, coffee_output.boxes)
    np.testing.assert_array_equal(output.boxes[0], [0, 0, COFFEE_WIDTH, COFFEE_HEIGHT])


def test_round_trip_through_ros_message(fields, coffee_output):
    msg_module = pytest.importorskip("omni_agent.msg")
    msg = msg_module.ImageFeatures(**fields)

    output, size = features_from_msg(msg)

    assert size == (COFFEE_WIDTH, COFFEE_HEIGHT)
    np.testing.assert_array_equal(output.tokens, coffee_output.tokens)
    np.testing.assert_array_equal(output.boxes, coffee_output.boxes)


def test_read_features_copy_message_data(fields):
    msg = as_msg(fields)
    output, _ = features_from_msg(msg)
    first_value = output.tokens[0, 0]

    msg.tokens[0] = first_value + 1.0

    assert output.tokens[0, 0] == first_value


def test_fields_accept_plain_lists(fields):
    # A message built by hand may carry lists instead of array.array.
    msg = as_msg(fields, tokens=list(fields["tokens"]), boxes=list(fields["boxes"]))

    output, _ = features_from_msg(msg)

    assert output.tokens.shape == (10, 1280)


# --- features_from_msg validation ---------------------------------------------------

@pytest.mark.parametrize("changes,expected", [
    ({"image_width": 0}, "image size 0x400"),
    ({"image_height": 0}, "image size 600x0"),
    ({"num_tokens": 0}, "num_tokens is 0"),
    ({"feature_dim": 0}, "feature_dim is 0"),
    ({"num_tokens": 11}, "tokens has 12800 values but num_tokens * feature_dim = 11 * 1280 = 14080"),
    ({"feature_dim": 1000}, "tokens has 12800 values but num_tokens * feature_dim = 10 * 1000 = 10000"),
])
def test_message_with_bad_sizes_rejected(fields, changes, expected):
    with pytest.raises(ValueError, match="^" + expected.replace("*", r"\*")):
        features_from_msg(as_msg(fields, **changes))


def test_message_with_short_tokens_rejected(fields):
    short = array.array("f", fields["tokens"][:-1])

    with pytest.raises(ValueError) as error:
        features_from_msg(as_msg(fields, tokens=short))

    assert "tokens has 12799 values" in str(error.value)
    assert "exactly num_tokens * feature_dim values" in str(error.value)


@pytest.mark.parametrize("length", [36, 44, 0])
def test_message_with_bad_box_count_rejected(fields, length):
    boxes = array.array("f", [0.0] * length)

    with pytest.raises(ValueError) as error:
        features_from_msg(as_msg(fields, boxes=boxes))

    assert f"boxes has {length} values but num_tokens * 4 = 40" in str(error.value)
    assert "one (x0, y0, x1, y1) pixel box per token" in str(error.value)


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")])
def test_message_with_nonfinite_token_rejected(fields, bad_value):
    tokens = array.array("f", fields["tokens"])
    tokens[3 * 1280 + 7] = bad_value  # token 3

    with pytest.raises(ValueError) as error:
        features_from_msg(as_msg(fields, tokens=tokens))

    assert "tokens contain 1 NaN or infinite values (first in token 3)" in str(error.value)
    assert "check its input frame and precision" in str(error.value)


def test_message_with_nonfinite_box_rejected(fields):
    boxes = array.array("f", fields["boxes"])
    boxes[2 * 4 + 1] = float("nan")  # box 2

    with pytest.raises(ValueError) as error:
        features_from_msg(as_msg(fields, boxes=boxes))

    assert "boxes contain 1 NaN or infinite coordinates (first in box 2)" in str(error.value)


def test_message_with_reversed_box_rejected(fields):
    boxes = array.array("f", fields["boxes"])
    boxes[1 * 4 + 0], boxes[1 * 4 + 2] = boxes[1 * 4 + 2], boxes[1 * 4 + 0]  # swap x0 and x1 of box 1

    with pytest.raises(ValueError, match=r"boxes \[1\] have x1 < x0 or y1 < y0"):
        features_from_msg(as_msg(fields, boxes=boxes))


def test_message_with_outside_box_rejected(fields):
    # The boxes were made for 600x400; a 300x400 image cannot contain them.
    with pytest.raises(ValueError) as error:
        features_from_msg(as_msg(fields, image_width=300))

    assert "reach outside the 300x400 image" in str(error.value)
    assert "clip them to 0 <= x <= image_width" in str(error.value)


# --- features_to_fields validation ----------------------------------------------------

def test_output_without_boxes_rejected(coffee_output):
    output = FrontendOutput(tokens=coffee_output.tokens, pooled=coffee_output.pooled)

    with pytest.raises(ValueError, match="^boxes are missing"):
        features_to_fields(output, COFFEE_WIDTH, COFFEE_HEIGHT, "efficientnet_lite0", "float32")


@pytest.mark.parametrize("tokens", [np.zeros(1280, np.float32), np.zeros((0, 1280), np.float32),
                                    np.zeros((10, 0), np.float32)])
def test_output_with_bad_token_shape_rejected(tokens):
    output = FrontendOutput(tokens=tokens, pooled=np.zeros(1280, np.float32),
                            boxes=np.zeros((10, 4), np.float32))

    with pytest.raises(ValueError, match=r"^tokens shape .* is not supported; pass an \[N, D\] matrix"):
        features_to_fields(output, COFFEE_WIDTH, COFFEE_HEIGHT, "efficientnet_lite0", "float32")


def test_output_with_box_mismatch_rejected(coffee_output):
    output = FrontendOutput(tokens=coffee_output.tokens, pooled=coffee_output.pooled,
                            boxes=coffee_output.boxes[:5])

    with pytest.raises(ValueError, match=r"^boxes shape \(5, 4\) does not match 10 tokens"):
        features_to_fields(output, COFFEE_WIDTH, COFFEE_HEIGHT, "efficientnet_lite0", "float32")


@pytest.mark.parametrize("width,height", [(0, 400), (600, 0), (-1, 400)])
def test_output_with_bad_image_size_rejected(coffee_output, width, height):
    with pytest.raises(ValueError, match=f"^image size {width}x{height}"):
        features_to_fields(coffee_output, width, height, "efficientnet_lite0", "float32")


def test_output_with_nan_token_rejected(coffee_output):
    tokens = coffee_output.tokens.copy()
    tokens[0, 0] = np.nan
    output = FrontendOutput(tokens=tokens, pooled=tokens[0], boxes=coffee_output.boxes)

    with pytest.raises(ValueError, match=r"^tokens contain 1 NaN or infinite values \(first in token 0\)"):
        features_to_fields(output, COFFEE_WIDTH, COFFEE_HEIGHT, "efficientnet_lite0", "float32")
