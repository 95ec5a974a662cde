"""Conversion between numpy arrays and the fields of sensor_msgs/Image.

This module replaces cv_bridge for the few encodings omni_agent needs. It
does not import ROS, so the model code and the tests can use it without a
ROS installation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple, Union

import numpy as np

#: Types accepted for the data field of an image message. rclpy stores it as array.array('B').
BytesLike = Union[bytes, bytearray, memoryview, np.ndarray, Sequence[int]]


class ImageError(ValueError):
    """An image whose fields are invalid or do not match its data."""


@dataclass(frozen=True)
class _Layout:
    channels: int
    bytes_per_channel: int
    order: str  # channel order of the stored pixels: "rgb", "bgr", "rgba", "bgra" or "mono"

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.bytes_per_channel


#: Encodings that image_to_rgb() reads, by their sensor_msgs/image_encodings name.
_LAYOUTS = {
    "rgb8": _Layout(3, 1, "rgb"),
    "bgr8": _Layout(3, 1, "bgr"),
    "rgba8": _Layout(4, 1, "rgba"),
    "bgra8": _Layout(4, 1, "bgra"),
    "mono8": _Layout(1, 1, "mono"),
    "mono16": _Layout(1, 2, "mono"),
    "16UC1": _Layout(1, 2, "mono"),
}
SUPPORTED_ENCODINGS = tuple(_LAYOUTS)


def image_to_rgb(height: int, width: int, encoding: str, step: int, data: BytesLike,
                 is_bigendian: bool = False) -> np.ndarray:
    """Convert the fields of a sensor_msgs/Image to an (height, width, 3) uint8 RGB array.

    Row padding (step larger than width times the pixel size) is dropped and
    alpha channels are discarded. 16-bit images (mono16, 16UC1) keep their
    high byte, so the full 0..65535 range maps to 0..255. The result is a new
    array that does not share memory with `data`.

    Raises ImageError for an empty image, an unsupported encoding, a step
    smaller than one row of pixels, or data whose length is not height * step.
    """
    buffer = _as_uint8(data)
    if height <= 0 or width <= 0 or buffer.size == 0:
        raise ImageError(
            f"empty image: received {width}x{height} pixels (width x height) with "
            f"{buffer.size} bytes of data; expected width > 0, height > 0 and "
            f"height * step bytes of data")

    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageError(
            f"unsupported image encoding {encoding!r}; supported encodings are "
            f"{', '.join(SUPPORTED_ENCODINGS)}. Convert the image to bgr8 or rgb8 before sending it")

    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageError(
            f"step {step} is smaller than one row of {width} {encoding} pixels "
            f"({row_bytes} bytes); set step to at least width * {layout.bytes_per_pixel}")
    if buffer.size != height * step:
        raise ImageError(
            f"image data has {buffer.size} bytes but height * step = {height} * {step} = "
            f"{height * step}; the data must contain exactly height rows of step bytes")

    rows = buffer.reshape(height, step)[:, :row_bytes]
    if layout.bytes_per_channel == 2:
        dtype = np.dtype(">u2" if is_bigendian else "<u2")
        wide = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
        return np.repeat((wide >> 8).astype(np.uint8)[:, :, None], 3, axis=2)

    pixels = rows.reshape(height, width, layout.channels)
    if layout.order == "mono":
        return np.repeat(pixels, 3, axis=2)
    if layout.order in ("bgr", "bgra"):
        return pixels[:, :, 2::-1].copy()
    return pixels[:, :, :3].copy()


def bgr_to_image_fields(frame: np.ndarray) -> Tuple[int, int, str, int, bytes]:
    """Return (height, width, encoding, step, data) for publishing an OpenCV frame.

    A (height, width, 3) uint8 array becomes bgr8, and a (height, width) or
    (height, width, 1) uint8 array becomes mono8. Rows are packed, so step is
    width times the pixel size.
    """
    if not isinstance(frame, np.ndarray):
        raise ImageError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ImageError(
            f"frame dtype {frame.dtype} is not supported; convert it to uint8 "
            f"(for example with cv2.convertScaleAbs) first")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        encoding, channels = "mono8", 1
    elif frame.ndim == 3 and frame.shape[2] == 3:
        encoding, channels = "bgr8", 3
    else:
        raise ImageError(
            f"frame shape {frame.shape} is not supported; expected (height, width, 3) "
            f"for bgr8 or (height, width) for mono8")
    height, width = frame.shape[:2]
    if height == 0 or width == 0:
        raise ImageError(f"empty frame of shape {frame.shape}; expected height and width > 0")
    return height, width, encoding, width * channels, np.ascontiguousarray(frame).tobytes()


@dataclass
class CameraIntrinsics:
    """Pinhole calibration in the layout of sensor_msgs/CameraInfo."""

    width: int
    height: int
    k: List[float]  # 3x3 camera matrix, row-major
    p: List[float]  # 3x4 projection matrix, row-major
    r: List[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    d: List[float] = field(default_factory=lambda: [0.0] * 5)
    distortion_model: str = "plumb_bob"


def camera_info_from_hfov(width: int, height: int, hfov_deg: float) -> CameraIntrinsics:
    """Build an undistorted pinhole calibration from the horizontal field of view.

    Pixels are square (fy = fx) and the principal point is the image centre
    (width / 2, height / 2). Use this when the real calibration is unknown,
    as for a simulated camera or a video file.
    """
    if width <= 0 or height <= 0:
        raise ImageError(f"image size {width}x{height} is invalid; width and height must be > 0")
    if not 0.0 < hfov_deg < 180.0:
        raise ImageError(f"hfov_deg {hfov_deg} is out of range; use a value between 0 and 180 degrees")
    fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    fy = fx
    cx = width / 2.0
    cy = height / 2.0
    k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return CameraIntrinsics(width=width, height=height, k=k, p=p)


def _as_uint8(data: BytesLike) -> np.ndarray:
    """View the data of an image message as a flat uint8 array without copying where possible."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        # A plain list of ints, as a caller may put in a message field.
        return np.asarray(data, dtype=np.uint8).reshape(-1)
