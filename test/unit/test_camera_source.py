"""Camera sources: parsing, image folders, video files, pacing, looping and reconnection.

Pacing is checked with a fake clock whose sleep() advances time, so the tests
assert the requested delays, not how long anything took.
"""
import socket
import threading

import cv2
import numpy as np
import pytest
from skimage import data as photos

from omni_agent.vision.camera_source import (
    EVENT_ENDED,
    EVENT_ERROR,
    EVENT_OPENED,
    EVENT_WARNING,
    KIND_DEVICE,
    KIND_FOLDER,
    KIND_IMAGE,
    KIND_URL,
    KIND_VIDEO,
    CameraSource,
    CameraStreamer,
    SourceError,
    StreamError,
    parse_source,
)

VIDEO_FPS = 10.0
VIDEO_FRAMES = 12
SHIFT_PX = 40


class FakeClock:
    """Monotonic time that only moves when sleep() is called."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def bgr(photo):
    return cv2.cvtColor(photo, cv2.COLOR_RGB2BGR)


def video_frame(index):
    """Frame `index` of the test video: the coffee photo shifted sideways."""
    return np.roll(bgr(photos.coffee()), index * SHIFT_PX, axis=1)


def closest_video_frame(frame):
    """Index of the test-video frame that `frame` decodes to (MPEG-4 is lossy)."""
    errors = [np.abs(frame.astype(np.int16) - video_frame(i)).mean() for i in range(VIDEO_FRAMES)]
    return int(np.argmin(errors))


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    height, width = photos.coffee().shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (width, height))
    assert writer.isOpened(), "OpenCV could not create an MPEG-4 writer"
    for index in range(VIDEO_FRAMES):
        writer.write(video_frame(index))
    writer.release()
    return path


@pytest.fixture
def photo_folder(tmp_path):
    """frame2.png (chelsea) and frame10.png (coffee), plus a file that is not an image."""
    cv2.imwrite(str(tmp_path / "frame10.png"), bgr(photos.coffee()))
    cv2.imwrite(str(tmp_path / "frame2.png"), bgr(photos.chelsea()))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def free_loopback_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- parse_source -------------------------------------------------------------

@pytest.mark.parametrize("text,location", [("0", 0), ("1", 1), (" 2 ", 2), ("/dev/video3", "/dev/video3")])
def test_parse_device(text, location):
    spec = parse_source(text)
    assert spec.kind == KIND_DEVICE
    assert spec.location == location


@pytest.mark.parametrize("url", [
    "rtsp://127.0.0.1:8554/live", "RTSP://127.0.0.1/cam", "http://127.0.0.1:8080/stream.mjpg",
    "https://127.0.0.1/video",
])
def test_parse_url(url):
    spec = parse_source(url)
    assert spec.kind == KIND_URL
    assert spec.location == url


@pytest.mark.parametrize("name,kind", [
    ("clip.mp4", KIND_VIDEO), ("clip.AVI", KIND_VIDEO), ("clip.mkv", KIND_VIDEO), ("clip.mov", KIND_VIDEO),
    ("clip.webm", KIND_VIDEO), ("photo.png", KIND_IMAGE), ("photo.JPG", KIND_IMAGE),
    ("photo.jpeg", KIND_IMAGE), ("photo.bmp", KIND_IMAGE),
])
def test_parse_file_kind_by_extension(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes(b"")
    spec = parse_source(str(path))
    assert spec.kind == kind
    assert spec.location == str(path)


def test_parse_folder_sorts_images_naturally(photo_folder):
    spec = parse_source(str(photo_folder))
    assert spec.kind == KIND_FOLDER
    assert [p.rsplit("/", 1)[1] for p in spec.files] == ["frame2.png", "frame10.png"]


def test_parse_missing_path_raises(tmp_path):
    missing = tmp_path / "no_such_video.mp4"
    with pytest.raises(SourceError) as error:
        parse_source(str(missing))
    message = str(error.value)
    assert str(missing) in message
    assert "not found" in message


def test_parse_folder_without_images_raises(tmp_path):
    (tmp_path / "readme.txt").write_text("text")
    with pytest.raises(SourceError) as error:
        parse_source(str(tmp_path))
    assert "contains no images" in str(error.value)
    assert ".png" in str(error.value)


def test_parse_unknown_extension_raises(tmp_path):
    path = tmp_path / "recording.wav"
    path.write_bytes(b"RIFF")
    with pytest.raises(SourceError) as error:
        parse_source(str(path))
    assert "'.wav'" in str(error.value)
    assert ".mp4" in str(error.value)


@pytest.mark.parametrize("text,fragment", [
    ("ftp://127.0.0.1/cam", "'ftp'"),
    ("", "source is empty"),
    ("   ", "source is empty"),
])
def test_parse_rejects_unusable_text(text, fragment):
    with pytest.raises(SourceError) as error:
        parse_source(text)
    assert fragment in str(error.value)


# -- images and folders -------------------------------------------------------

def test_folder_yields_images_in_order(photo_folder):
    clock = FakeClock()
    source = CameraSource(str(photo_folder), fps=4.0, loop=False, clock=clock, sleep=clock.sleep)
    with source:
        frames = list(source)

    assert len(frames) == 2
    np.testing.assert_array_equal(frames[0], bgr(photos.chelsea()))
    np.testing.assert_array_equal(frames[1], bgr(photos.coffee()))
    assert clock.sleeps == [pytest.approx(0.25)]


def test_folder_loops(photo_folder):
    clock = FakeClock()
    source = CameraSource(str(photo_folder), fps=4.0, loop=True, clock=clock, sleep=clock.sleep)
    with source:
        frames = [source.read() for _ in range(5)]

    shapes = [frame.shape[:2] for frame in frames]
    assert shapes == [(300, 451), (400, 600), (300, 451), (400, 600), (300, 451)]
    assert clock.sleeps == [pytest.approx(0.25)] * 4


def test_folder_skips_unreadable_image(photo_folder):
    (photo_folder / "frame5.png").write_bytes(b"not a png")
    warnings = []
    clock = FakeClock()
    source = CameraSource(str(photo_folder), fps=4.0, loop=False, clock=clock, sleep=clock.sleep,
                          warn=warnings.append)
    with source:
        frames = list(source)

    assert len(frames) == 2
    assert len(warnings) == 1
    assert "frame5.png" in warnings[0]


def test_folder_ending_in_unreadable_image(photo_folder):
    (photo_folder / "frame20.png").write_bytes(b"not a png")
    warnings = []
    clock = FakeClock()
    source = CameraSource(str(photo_folder), fps=4.0, loop=False, clock=clock, sleep=clock.sleep,
                          warn=warnings.append)
    with source:
        frames = list(source)

    # Without loop the folder ends after its last readable image instead of starting over.
    assert [frame.shape[:2] for frame in frames] == [(300, 451), (400, 600)]
    assert len(warnings) == 1
    assert "frame20.png" in warnings[0]


def test_folder_without_readable_image_raises(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    (tmp_path / "b.jpg").write_bytes(b"not a jpeg")
    source = CameraSource(str(tmp_path), loop=True, warn=lambda message: None)
    with pytest.raises(StreamError) as error:
        source.open()
    assert "none of the 2 images" in str(error.value)


def test_single_image_without_loop_yields_once(tmp_path):
    path = tmp_path / "coffee.jpg"
    cv2.imwrite(str(path), bgr(photos.coffee()))
    clock = FakeClock()
    with CameraSource(str(path), loop=False, clock=clock, sleep=clock.sleep) as source:
        frames = list(source)
    assert len(frames) == 1
    assert frames[0].shape == (400, 600, 3)


def test_single_image_loops_at_fps(tmp_path):
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), bgr(photos.coffee()))
    clock = FakeClock()
    with CameraSource(str(path), fps=20.0, loop=True, clock=clock, sleep=clock.sleep) as source:
        frames = [source.read() for _ in range(4)]
    for frame in frames:
        np.testing.assert_array_equal(frame, bgr(photos.coffee()))
    assert clock.sleeps == [pytest.approx(0.05)] * 3


def test_pacing_does_not_burst_after_stall(tmp_path):
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), bgr(photos.coffee()))
    clock = FakeClock()
    with CameraSource(str(path), fps=10.0, loop=True, clock=clock, sleep=clock.sleep) as source:
        source.read()
        source.read()
        clock.now += 5.0  # the consumer stalled for 50 frame periods
        source.read()
        source.read()
    # No catch-up burst: after the stall the schedule restarts and the next frame waits a full period.
    assert clock.sleeps == [pytest.approx(0.1), pytest.approx(0.1)]


@pytest.mark.parametrize("width,height,expected", [
    (300, 200, (200, 300)),
    (300, 0, (200, 300)),
    (0, 100, (100, 150)),
    (1200, 800, (800, 1200)),
])
def test_resize(tmp_path, width, height, expected):
    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), bgr(photos.coffee()))
    with CameraSource(str(path), width=width, height=height, loop=False) as source:
        frame = source.read()
        assert source.frame_size == (expected[1], expected[0])
    assert frame.shape == expected + (3,)


def test_corrupt_image_raises_stream_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not a png")
    source = CameraSource(str(path))
    with pytest.raises(StreamError) as error:
        source.open()
    assert "broken.png" in str(error.value)


@pytest.mark.parametrize("options,fragment", [
    (dict(fps=0.0), "fps 0.0"),
    (dict(fps=float("nan")), "fps nan"),
    (dict(width=-1), "-1x0"),
    (dict(open_timeout_s=0.0), "open 0.0 s"),
])
def test_source_rejects_bad_options(tmp_path, options, fragment):
    with pytest.raises(ValueError) as error:
        CameraSource("0", **options)
    assert fragment in str(error.value)


def test_read_before_open_raises(photo_folder):
    with pytest.raises(StreamError) as error:
        CameraSource(str(photo_folder)).read()
    assert "open()" in str(error.value)


# -- video files ----------------------------------------------------------------

def test_video_yields_every_frame_in_order(video_path):
    clock = FakeClock()
    source = CameraSource(str(video_path), fps=30.0, loop=False, clock=clock, sleep=clock.sleep)
    with source:
        assert source.native_fps == pytest.approx(VIDEO_FPS)
        assert source.fps == pytest.approx(VIDEO_FPS)
        assert source.frame_size == (600, 400)
        frames = list(source)

    assert [closest_video_frame(frame) for frame in frames] == list(range(VIDEO_FRAMES))
    # Paced to the file's own rate: one frame period before every frame but the first.
    assert clock.sleeps == [pytest.approx(1.0 / VIDEO_FPS)] * (VIDEO_FRAMES - 1)


def test_video_capped_by_fps_skips_frames(video_path):
    clock = FakeClock()
    source = CameraSource(str(video_path), fps=VIDEO_FPS / 2, loop=False, clock=clock, sleep=clock.sleep)
    with source:
        assert source.fps == pytest.approx(VIDEO_FPS / 2)
        assert "source reports 10 fps" in source.describe()
        frames = list(source)

    # Half the rate, same duration: every second frame.
    assert [closest_video_frame(frame) for frame in frames] == list(range(0, VIDEO_FRAMES, 2))
    assert clock.sleeps == [pytest.approx(2.0 / VIDEO_FPS)] * (VIDEO_FRAMES // 2 - 1)


def test_video_loops(video_path):
    clock = FakeClock()
    source = CameraSource(str(video_path), fps=30.0, loop=True, clock=clock, sleep=clock.sleep)
    with source:
        frames = [source.read() for _ in range(VIDEO_FRAMES + 3)]
    indices = [closest_video_frame(frame) for frame in frames]
    assert indices == list(range(VIDEO_FRAMES)) + [0, 1, 2]


def test_video_resize(video_path):
    clock = FakeClock()
    with CameraSource(str(video_path), width=320, loop=False, clock=clock, sleep=clock.sleep) as source:
        frames = list(source)
    assert len(frames) == VIDEO_FRAMES
    assert {frame.shape for frame in frames} == {(213, 320, 3)}


def test_video_without_fps_uses_configured_fps(video_path, monkeypatch):
    real_capture = cv2.VideoCapture

    # A wrapper, not a subclass: with OpenCV 5.1 a Python subclass of
    # cv2.VideoCapture crashed the interpreter during garbage collection.
    class NoFpsCapture:
        def __init__(self, *args):
            self._capture = real_capture(*args)

        def get(self, prop):
            return 0.0 if prop == cv2.CAP_PROP_FPS else self._capture.get(prop)

        def __getattr__(self, name):
            return getattr(self._capture, name)

    monkeypatch.setattr(cv2, "VideoCapture", NoFpsCapture)
    clock = FakeClock()
    with CameraSource(str(video_path), fps=4.0, loop=False, clock=clock, sleep=clock.sleep) as source:
        assert source.native_fps is None
        assert source.fps == 4.0
        frames = list(source)
    assert len(frames) == VIDEO_FRAMES
    assert clock.sleeps == [pytest.approx(0.25)] * (VIDEO_FRAMES - 1)


def test_invalid_video_file_raises(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(b"\x00" * 2048)
    with pytest.raises(StreamError) as error:
        CameraSource(str(path)).open()
    assert "garbage.mp4" in str(error.value)


# -- CameraStreamer -------------------------------------------------------------

class Recorder:
    """Collects a streamer's frames, events and backoff waits; stops it after `max_waits` waits."""

    def __init__(self, max_waits=None):
        self.frames = []
        self.events = []
        self.waits = []
        self.max_waits = max_waits
        self.clock = FakeClock()
        self.streamer = None

    def on_frame(self, frame, capture_time):
        self.frames.append((frame, capture_time))

    def wait(self, seconds):
        self.waits.append(seconds)
        self.clock.now += seconds
        if self.max_waits is not None and len(self.waits) >= self.max_waits:
            self.streamer.stop()
        return self.streamer.stopped

    def events_of(self, kind):
        return [event for event in self.events if event.kind == kind]


def make_streamer(source, recorder, **options):
    streamer = CameraStreamer(source, recorder.on_frame, recorder.events.append, wait=recorder.wait,
                              clock=recorder.clock, wall_clock=lambda: 1234.5, **options)
    recorder.streamer = streamer
    return streamer


def test_streamer_backs_off_on_closed_port():
    recorder = Recorder(max_waits=6)
    url = f"http://127.0.0.1:{free_loopback_port()}/stream.mjpg"
    streamer = make_streamer(url, recorder, reconnect_min_s=0.5, reconnect_max_s=4.0, open_timeout_s=5.0)
    streamer.run()

    assert recorder.waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    errors = recorder.events_of(EVENT_ERROR)
    assert len(errors) == 6
    assert [event.failures for event in errors] == [1, 2, 3, 4, 5, 6]
    assert [event.retry_in_s for event in errors] == recorder.waits
    assert url in errors[0].message
    assert "Attempt 1 failed; retrying in 0.5 s" in errors[0].message
    assert recorder.frames == []
    assert recorder.events_of(EVENT_OPENED) == []


def test_streamer_waits_for_missing_file(tmp_path):
    path = tmp_path / "later.png"
    recorder = Recorder()

    def wait(seconds):
        recorder.waits.append(seconds)
        if len(recorder.waits) == 3:
            cv2.imwrite(str(path), bgr(photos.chelsea()))
        return streamer.stopped

    def on_frame(frame, capture_time):
        recorder.frames.append((frame, capture_time))

    streamer = CameraStreamer(str(path), on_frame, recorder.events.append, wait=wait, loop=False,
                              wall_clock=lambda: 1234.5)
    streamer.run()

    assert recorder.waits[:3] == [0.5, 1.0, 2.0]
    errors = recorder.events_of(EVENT_ERROR)
    assert len(errors) == 3
    assert "not found" in errors[0].message
    opened = recorder.events_of(EVENT_OPENED)
    assert len(opened) == 1
    assert opened[0].reconnected
    assert len(recorder.frames) == 1
    frame, capture_time = recorder.frames[0]
    np.testing.assert_array_equal(frame, bgr(photos.chelsea()))
    assert capture_time == 1234.5


def test_streamer_retries_unexpected_error():
    recorder = Recorder(max_waits=2)

    def broken_factory(spec, **options):
        raise RuntimeError("decoder crashed")

    streamer = make_streamer("0", recorder, source_factory=broken_factory)
    streamer.run()

    errors = recorder.events_of(EVENT_ERROR)
    assert len(errors) == 2
    assert "RuntimeError: decoder crashed" in errors[0].message
    assert recorder.waits == [0.5, 1.0]


def test_streamer_reports_end_of_video_once(video_path):
    recorder = Recorder()
    streamer = make_streamer(str(video_path), recorder, loop=False, fps=30.0)
    streamer.run()

    assert len(recorder.frames) == VIDEO_FRAMES
    ended = recorder.events_of(EVENT_ENDED)
    assert len(ended) == 1
    assert f"after {VIDEO_FRAMES} frames" in ended[0].message
    assert recorder.events_of(EVENT_ERROR) == []
    # Only pacing waits of one frame period, no reconnect delay.
    assert recorder.waits == [pytest.approx(1.0 / VIDEO_FPS)] * (VIDEO_FRAMES - 1)


def test_streamer_survives_frame_callback_error(photo_folder):
    recorder = Recorder()
    calls = []

    def failing_on_frame(frame, capture_time):
        calls.append(frame.shape)
        raise RuntimeError("publisher gone")

    streamer = CameraStreamer(str(photo_folder), failing_on_frame, recorder.events.append, loop=False,
                              wait=recorder.wait, clock=recorder.clock)
    recorder.streamer = streamer
    streamer.run()

    assert len(calls) == 2
    warnings = recorder.events_of(EVENT_WARNING)
    assert len(warnings) == 2
    assert "publisher gone" in warnings[0].message
    assert len(recorder.events_of(EVENT_ENDED)) == 1


def test_streamer_thread_stops(photo_folder):
    frames = []
    enough = threading.Event()

    def on_frame(frame, capture_time):
        frames.append(frame)
        if len(frames) >= 3:
            enough.set()

    streamer = CameraStreamer(str(photo_folder), on_frame, fps=50.0, loop=True)
    streamer.start()
    assert enough.wait(timeout=30.0), "the streamer delivered fewer than 3 frames"
    streamer.stop()
    assert not streamer.is_alive()


@pytest.mark.parametrize("options,fragment", [
    (dict(reconnect_min_s=0.0), "reconnect_min_s 0.0"),
    (dict(reconnect_min_s=2.0, reconnect_max_s=1.0), "reconnect_max_s 1.0"),
    (dict(fps=-1.0), "fps -1.0"),
])
def test_streamer_rejects_bad_options(options, fragment):
    with pytest.raises(ValueError) as error:
        CameraStreamer("0", lambda frame, t: None, **options)
    assert fragment in str(error.value)
