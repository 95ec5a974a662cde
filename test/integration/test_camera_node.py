"""camera_node in its own process, checked over DDS on loopback.

Sources: an image file, an image folder, an MJPEG stream over HTTP and an
RTSP stream pushed by FFmpeg, all built from scikit-image photos and served
on 127.0.0.1. Bad sources must leave the node running and retrying until the
source appears.
"""
import http.server
import math
import os
import shutil
import socket
import subprocess
import threading

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from skimage import data as photos

from omni_agent.nodes.common import SENSOR_QOS
from omni_agent.vision.image import image_to_rgb
from ros_harness import NodeProcess, RosHarness

pytestmark = pytest.mark.ros

TIMEOUT_S = 30.0
IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"


@pytest.fixture
def harness():
    harness = RosHarness("camera_test")
    yield harness
    harness.close()


@pytest.fixture
def start_camera():
    """Start camera_node processes with the given parameters; stop them all in teardown."""
    processes = []

    def start(env=None, **params):
        process = NodeProcess("camera_node", params=params, env=env)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


@pytest.fixture
def receiver(harness):
    """Subscribe to both camera topics with sensor data QoS before any node starts."""
    images = harness.collect(Image, IMAGE_TOPIC, SENSOR_QOS)
    infos = harness.collect(CameraInfo, INFO_TOPIC, SENSOR_QOS)
    return images, infos


def wait_for_images(harness, images, node, count=1):
    try:
        harness.wait_for(lambda: len(images) >= count, TIMEOUT_S, f"{count} image(s) on {IMAGE_TOPIC}")
    except AssertionError as error:
        raise AssertionError(f"{error}; camera_node alive={node.alive()}, its log:\n{node.output()[-4000:]}") from error


def message_rgb(message):
    return image_to_rgb(message.height, message.width, message.encoding, message.step, message.data)


def stamp_key(header):
    return header.stamp.sec, header.stamp.nanosec


def free_loopback_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_png(path, rgb_photo):
    """Write a photo as PNG under a temporary name, then rename it, so no reader sees half a file."""
    partial = path.with_name(path.name + ".partial")
    assert cv2.imwrite(str(partial) + ".png", cv2.cvtColor(rgb_photo, cv2.COLOR_RGB2BGR))
    os.replace(str(partial) + ".png", path)


class MjpegServer:
    """An HTTP server on 127.0.0.1 that streams JPEG frames as multipart/x-mixed-replace."""

    def __init__(self, frames_bgr, port=0, fps=15.0):
        self.jpegs = [cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
                      for frame in frames_bgr]
        self.period_s = 1.0 / fps
        self.stopping = threading.Event()
        self.clients = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.clients += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                index = 0
                try:
                    while not server.stopping.is_set():
                        jpeg = server.jpegs[index % len(server.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: " + str(len(jpeg)).encode() + b"\r\n\r\n")
                        self.wfile.write(jpeg + b"\r\n")
                        self.wfile.flush()
                        index += 1
                        server.stopping.wait(server.period_s)  # stream pacing, like a real camera
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5.0)


@pytest.fixture
def mjpeg_servers():
    servers = []

    def start(*args, **kwargs):
        server = MjpegServer(*args, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def coffee_bgr():
    return cv2.cvtColor(photos.coffee(), cv2.COLOR_RGB2BGR)


# -- files ------------------------------------------------------------------------

def test_image_file_publishes_image_and_info(harness, receiver, start_camera, tmp_path):
    images, infos = receiver
    path = tmp_path / "coffee.png"
    write_png(path, photos.coffee())
    node = start_camera(source=str(path), fps=10.0)

    wait_for_images(harness, images, node, count=2)
    harness.wait_for(lambda: len(infos) >= 2, TIMEOUT_S, f"2 messages on {INFO_TOPIC}")

    image = images[0]
    assert image.header.frame_id == "camera_optical"
    assert image.encoding == "bgr8"
    assert (image.width, image.height) == (600, 400)
    assert image.step == 600 * 3
    np.testing.assert_array_equal(message_rgb(image), photos.coffee())

    info = infos[0]
    assert info.header.frame_id == "camera_optical"
    assert (info.width, info.height) == (600, 400)
    assert info.distortion_model == "plumb_bob"
    fx = 300.0 / math.tan(math.radians(69.0 / 2))
    assert list(info.k) == pytest.approx([fx, 0, 300, 0, fx, 200, 0, 0, 1])
    assert list(info.d) == [0.0] * 5
    # Each image has a camera_info with the same stamp.
    info_stamps = {stamp_key(m.header) for m in list(infos)}
    assert stamp_key(images[1].header) in info_stamps

    node.wait_for_output("opened image file", TIMEOUT_S)
    assert "600x400 at 10 fps" in node.output()


def test_image_folder_publishes_each_photo(harness, receiver, start_camera, tmp_path):
    images, _ = receiver
    write_png(tmp_path / "1_chelsea.png", photos.chelsea())
    write_png(tmp_path / "2_coffee.png", photos.coffee())
    node = start_camera(source=str(tmp_path), fps=10.0, frame_id="head_camera_optical")

    def sizes():
        return {(m.width, m.height) for m in list(images)}

    harness.wait_for(lambda: len(sizes()) == 2, TIMEOUT_S, "images of both photo sizes")

    by_size = {(m.width, m.height): m for m in list(images)}
    np.testing.assert_array_equal(message_rgb(by_size[(451, 300)]), photos.chelsea())
    np.testing.assert_array_equal(message_rgb(by_size[(600, 400)]), photos.coffee())
    assert {m.header.frame_id for m in list(images)} == {"head_camera_optical"}
    assert "image folder" in node.output()


def test_resize_parameters(harness, receiver, start_camera, tmp_path):
    images, infos = receiver
    path = tmp_path / "coffee.png"
    write_png(path, photos.coffee())
    node = start_camera(source=str(path), fps=10.0, width=300)

    wait_for_images(harness, images, node)
    harness.wait_for(lambda: len(infos) >= 1, TIMEOUT_S, f"a message on {INFO_TOPIC}")
    assert (images[0].width, images[0].height) == (300, 200)
    assert (infos[0].width, infos[0].height) == (300, 200)


# -- streams ------------------------------------------------------------------------

def test_http_mjpeg_stream(harness, receiver, start_camera, mjpeg_servers):
    images, _ = receiver
    server = mjpeg_servers([coffee_bgr()])
    node = start_camera(source=server.url, fps=15.0)

    wait_for_images(harness, images, node, count=5)
    image = images[-1]
    assert (image.width, image.height) == (600, 400)
    assert image.encoding == "bgr8"
    # JPEG is lossy: compare the mean absolute error, not exact pixels.
    error = np.abs(message_rgb(image).astype(np.int16) - photos.coffee()).mean()
    assert error < 5.0
    assert f"opened stream {server.url}" in node.output()


@pytest.fixture
def rtsp_pusher(tmp_path):
    """Push a looping MPEG-4 clip of the coffee photo to an RTSP URL with FFmpeg, retrying until it connects."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("the ffmpeg program is not installed")
    clip = tmp_path / "coffee.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (600, 400))
    for index in range(30):
        writer.write(np.roll(coffee_bgr(), index * 20, axis=1))
    writer.release()

    stopping = threading.Event()
    state = {"process": None, "attempts": 0}

    def push(url):
        while not stopping.is_set():
            state["attempts"] += 1
            state["process"] = subprocess.Popen(
                ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1",
                 "-i", str(clip), "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", url],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            state["process"].wait()
            # The node is not listening yet (or stopped listening): try again shortly.
            stopping.wait(0.5)

    threads = []

    def start(url):
        thread = threading.Thread(target=push, args=(url,), daemon=True)
        thread.start()
        threads.append(thread)
        return state

    yield start
    stopping.set()
    if state["process"] is not None and state["process"].poll() is None:
        state["process"].terminate()
        try:
            state["process"].wait(timeout=10)
        except subprocess.TimeoutExpired:
            state["process"].kill()
            state["process"].wait()
    for thread in threads:
        thread.join(timeout=10)


def test_rtsp_stream_pushed_by_ffmpeg(harness, receiver, start_camera, rtsp_pusher):
    images, _ = receiver
    url = f"rtsp://127.0.0.1:{free_loopback_port()}/live"
    # OpenCV listens on the URL's port and FFmpeg connects to it, so no RTSP
    # server is needed.
    listen_options = "rtsp_flags;listen|listen_timeout;10|fflags;nobuffer|flags;low_delay"
    node = start_camera(env={"OPENCV_FFMPEG_CAPTURE_OPTIONS": listen_options}, source=url, fps=15.0)
    rtsp_pusher(url)

    # The receiver can join the stream between key frames (OpenCV's MPEG-4 writer puts one
    # every 12 frames), and the frames before the next key frame decode smeared. 25 frames
    # always span a key frame.
    wait_for_images(harness, images, node, count=25)
    image = images[-1]
    assert (image.width, image.height) == (600, 400)
    assert image.encoding == "bgr8"
    # The clip shifts the photo sideways frame by frame, and a received frame must match one of
    # the shifts; the best of the received frames counts.
    shifted = [np.roll(photos.coffee(), index * 20, axis=1).astype(np.int16) for index in range(30)]
    errors = [np.abs(message_rgb(received).astype(np.int16) - reference).mean()
              for received in list(images) for reference in shifted]
    assert min(errors) < 8.0
    assert f"opened stream {url}" in node.output()


# -- bad sources ----------------------------------------------------------------------

def test_missing_file_retried_until_present(harness, receiver, start_camera, tmp_path):
    images, _ = receiver
    path = tmp_path / "later.png"
    node = start_camera(source=str(path), fps=10.0, reconnect_min_s=0.2, reconnect_max_s=1.0)

    node.wait_for_output("was not found", TIMEOUT_S)
    node.wait_for_output("Attempt 2 failed", TIMEOUT_S)
    assert node.alive()
    assert str(path) in node.output()
    assert images == []

    write_png(path, photos.chelsea())
    wait_for_images(harness, images, node)
    np.testing.assert_array_equal(message_rgb(images[0]), photos.chelsea())
    node.wait_for_output("reconnected: opened image file", TIMEOUT_S)


def test_http_source_reconnects_when_server_starts(harness, receiver, start_camera, mjpeg_servers):
    images, _ = receiver
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    node = start_camera(source=url, fps=15.0, reconnect_min_s=0.2, reconnect_max_s=1.0)

    node.wait_for_output(f"cannot open camera source '{url}'", TIMEOUT_S)
    node.wait_for_output("Attempt 2 failed", TIMEOUT_S)
    assert node.alive()
    assert images == []

    server = mjpeg_servers([coffee_bgr()], port=port)
    wait_for_images(harness, images, node, count=3)
    assert server.clients >= 1
    node.wait_for_output(f"reconnected: opened stream {url}", TIMEOUT_S)
    assert node.alive()


def test_stream_loss_is_logged_and_reconnected(harness, receiver, start_camera, mjpeg_servers):
    images, _ = receiver
    port = free_loopback_port()
    first = mjpeg_servers([coffee_bgr()], port=port)
    node = start_camera(source=first.url, fps=15.0, reconnect_min_s=0.2, reconnect_max_s=1.0)
    wait_for_images(harness, images, node, count=3)

    first.close()
    node.wait_for_output(f"camera source '{first.url}' failed", TIMEOUT_S)
    assert node.alive()

    mjpeg_servers([coffee_bgr()], port=port)
    node.wait_for_output("reconnected: opened stream", TIMEOUT_S)
    count = len(images)
    wait_for_images(harness, images, node, count=count + 3)


def test_invalid_parameter_stops_node_with_error(start_camera, tmp_path):
    node = start_camera(source=str(tmp_path), fps=0.0)
    node.process.wait(timeout=TIMEOUT_S)
    assert node.process.returncode != 0
    assert "parameter fps is 0.0" in node.output()
