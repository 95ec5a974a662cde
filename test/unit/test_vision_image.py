"""Conversions between numpy arrays and sensor_msgs/Image fields, on real photos."""
import array
import math

import cv2
import numpy as np
import pytest
from skimage import data as photos

from omni_agent.vision.image import (
    SUPPORTED_ENCODINGS,
    ImageError,
    bgr_to_image_fields,
    camera_info_from_hfov,
    image_to_rgb,
)


@pytest.fixture(scope="module", params=["coffee", "chelsea"])
def rgb_photo(request):
    return getattr(photos, request.param)()


def test_bgr8_round_trip(rgb_photo):
    bgr = cv2.cvtColor(rgb_photo, cv2.COLOR_RGB2BGR)
    height, width, encoding, step, data = bgr_to_image_fields(bgr)

    assert (height, width) == rgb_photo.shape[:2]
    assert encoding == "bgr8"
    assert step == width * 3
    assert isinstance(data, bytes)
    # rclpy stores the data field of a received message as array.array('B').
    rgb = image_to_rgb(height, width, encoding, step, array.array("B", data))
    assert rgb.dtype == np.uint8
    assert rgb.shape == rgb_photo.shape
    np.testing.assert_array_equal(rgb, rgb_photo)


def test_rgb8_returns_copy_of_pixels(rgb_photo):
    height, width = rgb_photo.shape[:2]
    buffer = bytearray(rgb_photo.tobytes())
    rgb = image_to_rgb(height, width, "rgb8", width * 3, buffer)
    np.testing.assert_array_equal(rgb, rgb_photo)

    rgb[0, 0] = 255 - rgb[0, 0]
    assert bytes(buffer[:3]) == rgb_photo[0, 0].tobytes()


def test_mono8_round_trip(rgb_photo):
    gray = cv2.cvtColor(rgb_photo, cv2.COLOR_RGB2GRAY)
    height, width, encoding, step, data = bgr_to_image_fields(gray)

    assert encoding == "mono8"
    assert step == width
    rgb = image_to_rgb(height, width, encoding, step, data)
    assert rgb.shape == (height, width, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], gray)


def test_single_channel_frame_is_mono8():
    gray = cv2.cvtColor(photos.coffee(), cv2.COLOR_RGB2GRAY)[:, :, None]
    height, width, encoding, step, data = bgr_to_image_fields(gray)
    assert encoding == "mono8"
    assert len(data) == height * width


@pytest.mark.parametrize("encoding,channels,to_stored", [
    ("rgba8", 4, cv2.COLOR_RGB2RGBA),
    ("bgra8", 4, cv2.COLOR_RGB2BGRA),
])
def test_alpha_encodings_drop_alpha(encoding, channels, to_stored):
    rgb_photo = photos.chelsea()
    stored = cv2.cvtColor(rgb_photo, to_stored)
    height, width = rgb_photo.shape[:2]
    rgb = image_to_rgb(height, width, encoding, width * channels, stored.tobytes())
    np.testing.assert_array_equal(rgb, rgb_photo)


def test_row_padding_is_dropped():
    rgb_photo = photos.chelsea()  # 451 pixels wide, so rows of 1353 bytes
    height, width = rgb_photo.shape[:2]
    step = width * 3 + 3
    padded = np.zeros((height, step), dtype=np.uint8)
    padded[:, :width * 3] = rgb_photo.reshape(height, width * 3)
    padded[:, width * 3:] = 255
    rgb = image_to_rgb(height, width, "rgb8", step, padded.tobytes())
    np.testing.assert_array_equal(rgb, rgb_photo)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16_bit_keeps_high_byte(encoding, bigendian):
    gray = cv2.cvtColor(photos.coffee(), cv2.COLOR_RGB2GRAY)
    wide = gray.astype(np.uint16) * 257  # 0..255 spread over 0..65535
    stored = wide.astype(">u2" if bigendian else "<u2")
    height, width = gray.shape
    rgb = image_to_rgb(height, width, encoding, width * 2, stored.tobytes(), is_bigendian=bigendian)
    np.testing.assert_array_equal(rgb[:, :, 0], gray)


@pytest.mark.parametrize("height,width,data", [
    (0, 640, b""),
    (480, 0, b"\x00" * 10),
    (2, 2, b""),
])
def test_empty_image_raises(height, width, data):
    with pytest.raises(ImageError) as error:
        image_to_rgb(height, width, "bgr8", width * 3, data)
    message = str(error.value)
    assert "empty image" in message
    assert f"{width}x{height}" in message
    assert f"{len(data)} bytes" in message


@pytest.mark.parametrize("encoding", ["yuv422", "32FC3", "bayer_rggb8", "BGR8", ""])
def test_unsupported_encoding_raises(encoding):
    with pytest.raises(ImageError) as error:
        image_to_rgb(2, 2, encoding, 6, b"\x00" * 12)
    message = str(error.value)
    assert repr(encoding) in message
    for supported in SUPPORTED_ENCODINGS:
        assert supported in message


def test_wrong_data_length_raises():
    rgb_photo = photos.coffee()
    height, width = rgb_photo.shape[:2]
    data = rgb_photo.tobytes()[:-1]
    with pytest.raises(ImageError) as error:
        image_to_rgb(height, width, "rgb8", width * 3, data)
    message = str(error.value)
    assert str(len(data)) in message
    assert str(height * width * 3) in message


def test_step_smaller_than_row_raises():
    with pytest.raises(ImageError) as error:
        image_to_rgb(4, 10, "bgr8", 20, b"\x00" * 80)
    message = str(error.value)
    assert "step 20" in message
    assert "30 bytes" in message


@pytest.mark.parametrize("frame,fragment", [
    (np.zeros((4, 4, 3), dtype=np.float32), "float32"),
    (np.zeros((4, 4, 2), dtype=np.uint8), "(4, 4, 2)"),
    (np.zeros((0, 4, 3), dtype=np.uint8), "(0, 4, 3)"),
    ([[0, 1], [2, 3]], "list"),
])
def test_bgr_to_image_fields_rejects_bad_frames(frame, fragment):
    with pytest.raises(ImageError) as error:
        bgr_to_image_fields(frame)
    assert fragment in str(error.value)


def test_camera_info_from_hfov():
    info = camera_info_from_hfov(640, 480, 90.0)

    fx = info.k[0]
    assert fx == pytest.approx(320.0)  # tan(45 deg) = 1
    assert info.k == pytest.approx([fx, 0, 320, 0, fx, 240, 0, 0, 1])
    assert info.p == pytest.approx([fx, 0, 320, 0, 0, fx, 240, 0, 0, 0, 1, 0])
    assert info.d == [0.0] * 5
    assert info.r == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert info.distortion_model == "plumb_bob"
    assert (info.width, info.height) == (640, 480)


def test_camera_info_projects_edge_at_half_fov():
    info = camera_info_from_hfov(600, 400, 69.0)
    fx, cx = info.k[0], info.k[2]
    # A point at the edge of the horizontal field of view lands on the image border.
    x = math.tan(math.radians(69.0 / 2))
    assert fx * x + cx == pytest.approx(600.0)


@pytest.mark.parametrize("width,height,hfov,fragment", [
    (640, 480, 0.0, "hfov_deg 0.0"),
    (640, 480, 180.0, "hfov_deg 180.0"),
    (0, 480, 69.0, "0x480"),
])
def test_camera_info_rejects_bad_input(width, height, hfov, fragment):
    with pytest.raises(ImageError) as error:
        camera_info_from_hfov(width, height, hfov)
    assert fragment in str(error.value)
