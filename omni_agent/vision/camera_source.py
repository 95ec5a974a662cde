"""Camera sources read with OpenCV: parsing, paced reading and reconnection.

`parse_source()` classifies a source text (device index, video file, image,
image folder or stream URL). `CameraSource` opens one with OpenCV and returns
BGR frames at the right rate. `CameraStreamer` reads a source in a background
thread and reopens it with exponential backoff when it fails.

This module does not import ROS.
"""
from __future__ import annotations

import logging
import math
import os
import pathlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

KIND_DEVICE = "device"
KIND_VIDEO = "video"
KIND_IMAGE = "image"
KIND_FOLDER = "folder"
KIND_URL = "url"
#: File sources. They are paced to a frame rate, and without loop they end instead of reconnecting.
FILE_KINDS = (KIND_VIDEO, KIND_IMAGE, KIND_FOLDER)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
URL_SCHEMES = ("rtsp", "rtsps", "http", "https")

#: FFmpeg options for RTSP when OPENCV_FFMPEG_CAPTURE_OPTIONS is not set:
#: TCP transport, and no input buffering so that the first frames are not a
#: backlog of stale ones.
DEFAULT_RTSP_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay"
FFMPEG_OPTIONS_VARIABLE = "OPENCV_FFMPEG_CAPTURE_OPTIONS"

_log = logging.getLogger(__name__)


class SourceError(ValueError):
    """A source text that names no usable camera source."""


class StreamError(RuntimeError):
    """A source that failed to open or to deliver a frame."""


@dataclass(frozen=True)
class SourceSpec:
    """A classified camera source."""

    kind: str                       # one of KIND_DEVICE, KIND_VIDEO, KIND_IMAGE, KIND_FOLDER, KIND_URL
    text: str                       # the source text as given
    location: Union[int, str]       # device index or device path, file or folder path, or URL
    files: Tuple[str, ...] = ()     # image paths of a folder, in natural sort order

    def describe(self) -> str:
        if self.kind == KIND_FOLDER:
            return f"image folder {self.location} ({len(self.files)} images)"
        if self.kind == KIND_DEVICE:
            return f"camera device {self.location}"
        if self.kind == KIND_URL:
            return f"stream {self.location}"
        return f"{self.kind} file {self.location}"


def parse_source(text: str) -> SourceSpec:
    """Classify a source text.

    Accepted forms are a device index ("0") or device path ("/dev/video0"),
    an rtsp, rtsps, http or https URL, and a video file, image file or folder
    of images, classified by extension.

    Raises SourceError for an empty text, a file or folder that does not
    exist, a folder without images, or an unknown extension or URL scheme.
    Device paths are not checked, because a camera may be plugged in later.
    """
    if not isinstance(text, str):
        raise SourceError(f"source must be a string, got {type(text).__name__} {text!r}")
    stripped = text.strip()
    if not stripped:
        raise SourceError("source is empty; give a device index such as '0', a file or folder path, or a URL")

    if stripped.isdigit():
        return SourceSpec(KIND_DEVICE, text, int(stripped))
    if re.fullmatch(r"/dev/video\d+", stripped):
        return SourceSpec(KIND_DEVICE, text, stripped)

    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", stripped)
    if scheme:
        if scheme.group(1).lower() not in URL_SCHEMES:
            raise SourceError(
                f"source {text!r} has the unsupported URL scheme {scheme.group(1)!r}; "
                f"use one of {', '.join(s + '://' for s in URL_SCHEMES)} or a local path")
        return SourceSpec(KIND_URL, text, stripped)

    path = pathlib.Path(stripped).expanduser()
    if not path.exists():
        raise SourceError(
            f"source {text!r} was not found: no such file or folder "
            f"(resolved to {path.resolve()}); check the path or give a device index or URL")
    if path.is_dir():
        files = tuple(str(p) for p in sorted(_image_files(path), key=_natural_key))
        if not files:
            raise SourceError(
                f"source folder {text!r} contains no images; expected files ending in "
                f"{', '.join(IMAGE_EXTENSIONS)}")
        return SourceSpec(KIND_FOLDER, text, str(path), files)

    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return SourceSpec(KIND_VIDEO, text, str(path))
    if suffix in IMAGE_EXTENSIONS:
        return SourceSpec(KIND_IMAGE, text, str(path))
    raise SourceError(
        f"source file {text!r} has the unknown extension {suffix or '(none)'!r}; expected a video "
        f"({', '.join(VIDEO_EXTENSIONS)}) or an image ({', '.join(IMAGE_EXTENSIONS)})")


def _image_files(folder: pathlib.Path) -> List[pathlib.Path]:
    return [p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS]


def _natural_key(path: str) -> list:
    """Sort key that puts frame2.png before frame10.png."""
    name = pathlib.Path(path).name.lower()
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def check_source_options(fps: float, width: int, height: int,
                         open_timeout_s: float, read_timeout_s: float) -> None:
    """Raise ValueError for a CameraSource option that is out of range."""
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps {fps!r} is invalid; use a frame rate > 0 in frames per second")
    if width < 0 or height < 0:
        raise ValueError(f"size {width}x{height} is invalid; use width and height >= 0 (0 keeps the native size)")
    if not (open_timeout_s > 0 and read_timeout_s > 0):
        raise ValueError(f"timeouts must be > 0 s, got open {open_timeout_s} s and read {read_timeout_s} s")


class CameraSource:
    """One opened camera source that returns BGR uint8 frames.

    Files are paced: a video plays at its own frame rate, capped at `fps`,
    by skipping frames so that it keeps real-time speed. A video that
    reports no frame rate plays at `fps`. Images and folders play at `fps`.
    Live sources (devices, URLs) are read as fast as they deliver, and frames
    that arrive faster than `fps` are dropped.

    `width` and `height` resize every frame; 0 keeps the native size, and
    setting only one of them keeps the aspect ratio. `clock` and `sleep` are
    injectable for tests.
    """

    def __init__(self, spec: Union[SourceSpec, str], fps: float = 15.0, loop: bool = True,
                 width: int = 0, height: int = 0, open_timeout_s: float = 10.0,
                 read_timeout_s: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = time.sleep,
                 warn: Optional[Callable[[str], None]] = None):
        check_source_options(fps, width, height, open_timeout_s, read_timeout_s)
        self.spec = spec if isinstance(spec, SourceSpec) else parse_source(spec)
        self.max_fps = float(fps)
        self.loop = loop
        self.width = int(width)
        self.height = int(height)
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self._clock = clock
        self._sleep = sleep
        self._warn = warn or _log.warning

        self.native_fps: Optional[float] = None   # frame rate the file or stream reports, if any
        self.fps = self.max_fps                   # output frame rate
        self.frame_size: Optional[Tuple[int, int]] = None  # (width, height) of the first output frame
        self._capture: Optional[cv2.VideoCapture] = None
        self._pending: Optional[np.ndarray] = None  # first frame, read by open()
        self._next_due: Optional[float] = None
        self._frames_out = 0          # frames returned since the video (re)started
        self._next_file_index = 0     # index of the next frame the video decoder returns
        self._stride = 1.0            # video frames per output frame
        self._folder_index = 0
        self._still: Optional[np.ndarray] = None
        self._opened = False

    @property
    def kind(self) -> str:
        return self.spec.kind

    def describe(self) -> str:
        """Summarise the source for a log line: kind, location, size and frame rate."""
        text = self.spec.describe()
        if self.frame_size:
            text += f", {self.frame_size[0]}x{self.frame_size[1]}"
        text += f" at {self.fps:g} fps"
        if self.native_fps is not None and abs(self.native_fps - self.fps) > 1e-6:
            text += f" (source reports {self.native_fps:g} fps)"
        return text

    # -- opening ---------------------------------------------------------

    def open(self) -> None:
        """Open the source and read its first frame. Raises StreamError if either fails."""
        self.close()
        kind = self.spec.kind
        if kind == KIND_IMAGE:
            self._still = self._load_image(self.spec.location)
            if self._still is None:
                raise StreamError(f"image {self.spec.location} could not be decoded; check that it is a valid image")
            self._pending = self._still
        elif kind == KIND_FOLDER:
            self._folder_index = 0
            # Raises StreamError when no image of the folder can be read.
            self._pending = self._next_folder_image()
        else:
            self._capture = self._open_capture()
            self._read_native_fps()
            if kind == KIND_VIDEO:
                self._start_video_counters()
            self._pending = self._read_first_capture_frame()

        self._pending = self._resize(self._pending)
        self.frame_size = (self._pending.shape[1], self._pending.shape[0])
        self._next_due = None
        self._opened = True

    def _open_capture(self) -> cv2.VideoCapture:
        kind = self.spec.kind
        location = self.spec.location
        if kind == KIND_DEVICE:
            capture = cv2.VideoCapture(location)
            if capture.isOpened():
                if self.width and self.height:
                    capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
                capture.set(cv2.CAP_PROP_FPS, self.max_fps)
        elif kind == KIND_URL:
            capture = self._open_url(str(location))
        else:
            capture = cv2.VideoCapture(str(location))
        if not capture.isOpened():
            capture.release()
            hint = {
                KIND_DEVICE: "check that the camera is connected and not used by another program",
                KIND_URL: "check that the server is running and the URL is right",
                KIND_VIDEO: "check that the file is a video OpenCV's FFmpeg backend can decode",
            }[kind]
            raise StreamError(f"OpenCV could not open {self.spec.describe()}; {hint}")
        return capture

    def _open_url(self, url: str) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        set_options = url.lower().startswith("rtsp") and FFMPEG_OPTIONS_VARIABLE not in os.environ
        # OpenCV reads FFmpeg options only from this variable, at open time. A
        # value set by the user (for example rtsp_flags;listen) is kept.
        if set_options:
            os.environ[FFMPEG_OPTIONS_VARIABLE] = DEFAULT_RTSP_OPTIONS
        try:
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        finally:
            if set_options:
                os.environ.pop(FFMPEG_OPTIONS_VARIABLE, None)

    def _read_native_fps(self) -> None:
        reported = self._capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = reported if math.isfinite(reported) and reported > 0 else None
        if self.spec.kind == KIND_VIDEO and self.native_fps is not None:
            self.fps = min(self.native_fps, self.max_fps)
            self._stride = self.native_fps / self.fps
        else:
            self.fps = self.max_fps
            self._stride = 1.0

    def _start_video_counters(self) -> None:
        self._frames_out = 0
        self._next_file_index = 0

    def _read_first_capture_frame(self) -> np.ndarray:
        ok, frame = self._capture.read()
        if not ok or frame is None:
            raise StreamError(f"{self.spec.describe()} opened but returned no frame")
        self._next_file_index = 1
        return frame

    # -- reading ---------------------------------------------------------

    def read(self) -> Optional[np.ndarray]:
        """Return the next frame at the output rate, or None when a file source ends.

        Raises StreamError when a live source stops delivering frames or a
        looping source can no longer be read.
        """
        if not self._opened:
            raise StreamError(f"{self.spec.describe()} is not open; call open() first")
        if self.spec.kind in FILE_KINDS:
            frame = self._read_file_frame()
            if frame is not None:
                self._wait_until_due()
            return frame
        return self._read_live_frame()

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def _read_file_frame(self) -> Optional[np.ndarray]:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self._frames_out = 1
            return frame
        kind = self.spec.kind
        if kind == KIND_IMAGE:
            return self._resize(self._still) if self.loop else None
        if kind == KIND_FOLDER:
            image = self._next_folder_image()
            return None if image is None else self._resize(image)
        frame = self._next_video_frame()
        if frame is None and self.loop:
            self._restart_video()
            frame = self._pending
            self._pending = None
            self._frames_out = 1
            return frame
        return frame

    def _next_video_frame(self) -> Optional[np.ndarray]:
        # Output frame k shows video frame floor(k * stride), so a capped
        # video keeps real-time speed.
        target = int(self._frames_out * self._stride + 1e-6)
        while self._next_file_index < target:
            if not self._capture.grab():
                return None
            self._next_file_index += 1
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        self._next_file_index += 1
        self._frames_out += 1
        return self._resize(frame)

    def _restart_video(self) -> None:
        self._capture.release()
        self._capture = self._open_capture()
        self._start_video_counters()
        self._pending = self._resize(self._read_first_capture_frame())

    def _read_live_frame(self) -> np.ndarray:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            self._next_due = self._clock() + 1.0 / self.fps
            return frame
        period = 1.0 / self.fps
        while True:
            if not self._capture.grab():
                raise StreamError(
                    f"{self.spec.describe()} stopped delivering frames (stream ended, "
                    f"connection lost or no frame within {self.read_timeout_s:g} s)")
            now = self._clock()
            # A quarter period of slack keeps jitter from dropping frames that
            # arrive on time.
            if now >= self._next_due - period / 4:
                break
        ok, frame = self._capture.retrieve()
        if not ok or frame is None:
            raise StreamError(f"{self.spec.describe()} delivered a frame that could not be decoded")
        self._next_due = max(self._next_due + period, now + period / 2)
        return self._resize(frame)

    def _wait_until_due(self) -> None:
        period = 1.0 / self.fps
        now = self._clock()
        if self._next_due is None:
            self._next_due = now
        else:
            self._next_due += period
            if now > self._next_due + period:
                # Too far behind (a slow decode or a paused consumer): restart
                # the schedule instead of sending a burst of frames.
                self._next_due = now
        delay = self._next_due - now
        if delay > 0:
            self._sleep(delay)

    def _next_folder_image(self) -> Optional[np.ndarray]:
        """Load the next readable image of the folder, or return None after the last one without loop.

        Unreadable images are skipped with a warning. Raises StreamError when
        a whole pass over the folder finds no readable image.
        """
        files = self.spec.files
        for _ in range(len(files)):
            if self._folder_index >= len(files):
                if not self.loop:
                    return None
                self._folder_index = 0
            path = files[self._folder_index]
            self._folder_index += 1
            image = self._load_image(path)
            if image is not None:
                return image
            self._warn(f"skipping image {path}: it could not be read or decoded")
        raise StreamError(f"none of the {len(files)} images in {self.spec.location} could be read")

    @staticmethod
    def _load_image(path: Union[str, int]) -> Optional[np.ndarray]:
        return cv2.imread(str(path), cv2.IMREAD_COLOR)

    def _resize(self, frame: np.ndarray) -> np.ndarray:
        if not self.width and not self.height:
            return frame
        native_height, native_width = frame.shape[:2]
        width = self.width or max(1, round(native_width * self.height / native_height))
        height = self.height or max(1, round(native_height * self.width / native_width))
        if (width, height) == (native_width, native_height):
            return frame
        shrinking = width * height < native_width * native_height
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return cv2.resize(frame, (width, height), interpolation=interpolation)

    def close(self) -> None:
        """Release the capture. The source can be opened again afterwards."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        self._pending = None
        self._opened = False

    def __enter__(self) -> "CameraSource":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


EVENT_OPENED = "opened"
EVENT_ERROR = "error"
EVENT_ENDED = "ended"
EVENT_WARNING = "warning"


@dataclass(frozen=True)
class StreamEvent:
    """A change in a CameraStreamer's state, for logging."""

    kind: str                          # EVENT_OPENED, EVENT_ERROR, EVENT_ENDED or EVENT_WARNING
    message: str
    failures: int = 0                  # consecutive failed attempts, for EVENT_ERROR
    retry_in_s: Optional[float] = None  # delay before the next attempt; None when none follows
    reconnected: bool = False          # EVENT_OPENED after at least one failure
    details: dict = field(default_factory=dict)


def _error_text(error: Exception) -> str:
    """Return the message of this module's errors, and type and message of any other error."""
    if isinstance(error, (SourceError, StreamError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _log_event(event: StreamEvent) -> None:
    level = logging.WARNING if event.kind in (EVENT_ERROR, EVENT_WARNING) else logging.INFO
    _log.log(level, event.message)


class CameraStreamer:
    """Read a camera source in a background thread and hand each frame to a callback.

    `on_frame(frame, capture_time)` gets every BGR frame with the wall-clock
    time (`wall_clock()`, seconds) at which it was read. A source that fails
    to open, breaks or ends (live sources, and files when looping) is opened
    again after a delay that starts at `reconnect_min_s` and doubles with
    each consecutive failure up to `reconnect_max_s`. The delay resets once a
    frame arrives. A file source that ends without loop is reported once with
    EVENT_ENDED and the thread stops.

    The source text is parsed again on every attempt, so a file that appears
    later is picked up. Every open, failure and end goes to `on_event` (by
    default this module's logger). `wait(seconds)` is the backoff and pacing
    sleep; the default returns early when stop() is called. Tests inject
    `wait` and the monotonic `clock` used for pacing.
    """

    def __init__(self, source: str, on_frame: Callable[[np.ndarray, float], None],
                 on_event: Optional[Callable[[StreamEvent], None]] = None, *,
                 fps: float = 15.0, loop: bool = True, width: int = 0, height: int = 0,
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 10.0,
                 open_timeout_s: float = 10.0, read_timeout_s: float = 10.0,
                 wall_clock: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic,
                 wait: Optional[Callable[[float], object]] = None,
                 source_factory: Callable[..., CameraSource] = CameraSource):
        if not reconnect_min_s > 0:
            raise ValueError(f"reconnect_min_s {reconnect_min_s} is invalid; use a delay > 0 s")
        if reconnect_max_s < reconnect_min_s:
            raise ValueError(
                f"reconnect_max_s {reconnect_max_s} is smaller than reconnect_min_s {reconnect_min_s}; "
                f"set it to at least {reconnect_min_s}")
        self.source_text = source
        self._on_frame = on_frame
        self._on_event = on_event or _log_event
        self._source_options = dict(fps=fps, loop=loop, width=width, height=height,
                                    open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                                    clock=clock)
        # Checked here so that a bad value raises in the caller, not in the thread.
        check_source_options(fps, width, height, open_timeout_s, read_timeout_s)
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._wall_clock = wall_clock
        self._stop_event = threading.Event()
        self._wait = wait or self._stop_event.wait
        self._source_factory = source_factory
        self._thread: Optional[threading.Thread] = None
        self.frames_delivered = 0
        self._delivered_since_open = 0

    def backoff_delay(self, failures: int) -> float:
        """Return the delay in seconds before the attempt after `failures` consecutive failures."""
        exponent = min(max(failures - 1, 0), 60)
        return min(self.reconnect_max_s, self.reconnect_min_s * 2.0 ** exponent)

    def start(self) -> None:
        """Start the reading thread."""
        if self._thread is not None:
            raise RuntimeError("CameraStreamer.start() was called twice; create a new streamer instead")
        self._thread = threading.Thread(target=self.run, name="camera-streamer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the thread to stop and wait up to timeout_s for it.

        A blocking OpenCV open or read can delay the stop by up to its own
        timeout. The thread is a daemon, so it does not block process exit.
        """
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout_s)

    @property
    def stopped(self) -> bool:
        return self._stop_event.is_set()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Read until stop() or the end of a non-looping file. The thread's target."""
        failures = 0
        while not self.stopped:
            source = None
            try:
                source = self._source_factory(parse_source(self.source_text), sleep=self._wait,
                                              warn=self._warn, **self._source_options)
                source.open()
            # Any error is reported and retried, because the camera thread
            # must keep running whatever the source does.
            except Exception as error:  # noqa: BLE001
                if source is not None:
                    source.close()
                failures += 1
                self._retry_after(f"cannot open camera source {self.source_text!r}: {_error_text(error)}",
                                  failures)
                continue

            self._emit(StreamEvent(
                EVENT_OPENED, f"opened {source.describe()}", reconnected=failures > 0,
                details={"kind": source.kind, "size": source.frame_size, "fps": source.fps}))
            failure = None
            try:
                ended = self._stream(source)
            except Exception as error:  # noqa: BLE001 - reported and retried, as above
                ended = False
                failure = f"camera source {self.source_text!r} failed: {_error_text(error)}"
            finally:
                source.close()
            if self.stopped:
                return
            if self._delivered_since_open:
                failures = 0
            if ended:
                # Only files end: live sources raise, and looping files restart.
                self._emit(StreamEvent(
                    EVENT_ENDED, f"end of {source.spec.describe()} after {self._delivered_since_open} "
                                 f"frames; loop is off, so streaming stops"))
                return
            failures += 1
            self._retry_after(failure or f"camera source {self.source_text!r} stopped", failures)

    def _stream(self, source: CameraSource) -> bool:
        """Deliver frames until stop() (returns False) or the end of the source (returns True)."""
        self._delivered_since_open = 0
        while not self.stopped:
            frame = source.read()
            if frame is None:
                return True
            if self.stopped:
                break
            self._delivered_since_open += 1
            self.frames_delivered += 1
            capture_time = self._wall_clock()
            try:
                self._on_frame(frame, capture_time)
            except Exception as error:  # noqa: BLE001 - a consumer bug must not stop the camera
                self._emit(StreamEvent(EVENT_WARNING, f"frame callback failed: {type(error).__name__}: {error}"))
        return False

    def _retry_after(self, message: str, failures: int) -> None:
        delay = self.backoff_delay(failures)
        self._emit(StreamEvent(
            EVENT_ERROR, f"{message}. Attempt {failures} failed; retrying in {delay:g} s",
            failures=failures, retry_in_s=delay))
        self._wait(delay)

    def _warn(self, message: str) -> None:
        self._emit(StreamEvent(EVENT_WARNING, message))

    def _emit(self, event: StreamEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # noqa: BLE001 - a broken log handler must not stop the camera
            _log.exception("camera event callback failed for %r", event.message)
