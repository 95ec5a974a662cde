"""Conversion between image front-end features and the fields of omni_agent/ImageFeatures.

image_frontend_node fills a message with features_to_fields(), and
omni_model_node reads one back with features_from_msg(). Both check the
token and box matrices, so a malformed message fails with a ValueError that
names the field instead of reaching the model. This module does not import
ROS: features_from_msg() reads the message fields by attribute.
"""
from __future__ import annotations

import array
from typing import Dict, Tuple, Union

import numpy as np

from omni_agent.model.frontends import FrontendOutput

#: Values per box: pixel corners (x0, y0, x1, y1) in the source image.
BOX_VALUES = 4

FieldValue = Union[int, str, array.array]


def features_to_fields(output: FrontendOutput, width: int, height: int, frontend: str,
                       precision: str) -> Dict[str, FieldValue]:
    """Return the ImageFeatures fields for the features of one width x height image.

    The header and processing_time_s are left to the caller. tokens and boxes
    are array.array('f') in row-major order, which the generated message
    stores without checking each value in Python. Raises ValueError when the
    tokens are not an [N, D] matrix, the boxes are not [N, 4], the image
    size is not positive, or a value is NaN or infinite.
    """
    tokens = np.asarray(output.tokens)
    if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(f"tokens shape {tokens.shape} is not supported; pass an [N, D] matrix "
                         f"with N >= 1 tokens (token 0 is the whole image) and D >= 1 features")
    if output.boxes is None:
        raise ValueError("boxes are missing; pass the [N, 4] pixel boxes that an image "
                         "front-end returns with its tokens")
    boxes = np.asarray(output.boxes)
    if boxes.shape != (tokens.shape[0], BOX_VALUES):
        raise ValueError(f"boxes shape {boxes.shape} does not match {tokens.shape[0]} tokens; "
                         f"pass one (x0, y0, x1, y1) pixel box per token, shape "
                         f"({tokens.shape[0]}, {BOX_VALUES})")
    _check_image_size(width, height)
    tokens32 = np.ascontiguousarray(tokens, dtype=np.float32)
    boxes32 = np.ascontiguousarray(boxes, dtype=np.float32)
    _check_features(tokens32, boxes32, width, height)

    return {
        "image_width": int(width),
        "image_height": int(height),
        "frontend": frontend,
        "precision": precision,
        "num_tokens": int(tokens32.shape[0]),
        "feature_dim": int(tokens32.shape[1]),
        "tokens": array.array("f", tokens32.tobytes()),
        "boxes": array.array("f", boxes32.tobytes()),
    }


def features_from_msg(msg) -> Tuple[FrontendOutput, Tuple[int, int]]:
    """Read an ImageFeatures message into a FrontendOutput and the source image size (width, height).

    The tokens are a float32 [num_tokens, feature_dim] copy, pooled is token
    0 (the whole image) and boxes are float32 [num_tokens, 4] pixel boxes.
    Raises ValueError, naming the field, when the sizes disagree with the
    data, a value is NaN or infinite, or a box is reversed or lies outside
    the image.
    """
    width, height = int(msg.image_width), int(msg.image_height)
    _check_image_size(width, height)
    num_tokens, feature_dim = int(msg.num_tokens), int(msg.feature_dim)
    if num_tokens < 1:
        raise ValueError(f"num_tokens is {num_tokens}; a message needs at least token 0, "
                         f"the whole image, so set num_tokens to the number of token rows")
    if feature_dim < 1:
        raise ValueError(f"feature_dim is {feature_dim}; set it to the length of one token "
                         f"(the front-end's feature_dim)")

    tokens = np.asarray(msg.tokens, dtype=np.float32).reshape(-1)
    expected_tokens = num_tokens * feature_dim
    if tokens.size != expected_tokens:
        raise ValueError(f"tokens has {tokens.size} values but num_tokens * feature_dim = "
                         f"{num_tokens} * {feature_dim} = {expected_tokens}; publish the token "
                         f"matrix row-major with exactly num_tokens * feature_dim values")
    boxes = np.asarray(msg.boxes, dtype=np.float32).reshape(-1)
    expected_boxes = num_tokens * BOX_VALUES
    if boxes.size != expected_boxes:
        raise ValueError(f"boxes has {boxes.size} values but num_tokens * {BOX_VALUES} = "
                         f"{expected_boxes}; publish one (x0, y0, x1, y1) pixel box per token")

    # Copies, so the result does not share memory with the message.
    token_matrix = tokens.reshape(num_tokens, feature_dim).copy()
    box_matrix = boxes.reshape(num_tokens, BOX_VALUES).copy()
    _check_features(token_matrix, box_matrix, width, height)
    output = FrontendOutput(tokens=token_matrix, pooled=token_matrix[0].copy(), boxes=box_matrix)
    return output, (width, height)


def _check_image_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} (image_width x image_height) is invalid; "
                         f"set both to the pixel size of the source image, > 0")


def _check_features(tokens: np.ndarray, boxes: np.ndarray, width: int, height: int) -> None:
    """Reject NaN or infinite values and boxes that are reversed or outside the image."""
    bad_tokens = ~np.isfinite(tokens)
    if bad_tokens.any():
        first_row = int(np.argwhere(bad_tokens)[0][0])
        raise ValueError(f"tokens contain {int(bad_tokens.sum())} NaN or infinite values "
                         f"(first in token {first_row}); the image front-end produced invalid "
                         f"features, so check its input frame and precision")
    bad_boxes = ~np.isfinite(boxes)
    if bad_boxes.any():
        first_row = int(np.argwhere(bad_boxes)[0][0])
        raise ValueError(f"boxes contain {int(bad_boxes.sum())} NaN or infinite coordinates "
                         f"(first in box {first_row}); pass pixel corners (x0, y0, x1, y1)")

    reversed_rows = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if reversed_rows.size:
        raise ValueError(f"boxes {reversed_rows.tolist()} have x1 < x0 or y1 < y0; "
                         f"pass corners as (x0, y0, x1, y1)")
    outside_rows = np.flatnonzero((boxes[:, 0] < 0) | (boxes[:, 1] < 0)
                                  | (boxes[:, 2] > width) | (boxes[:, 3] > height))
    if outside_rows.size:
        raise ValueError(f"boxes {outside_rows.tolist()} reach outside the {width}x{height} "
                         f"image; clip them to 0 <= x <= image_width and 0 <= y <= image_height")
