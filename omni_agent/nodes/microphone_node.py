"""Publish microphone audio, or a playlist of audio files, as AudioChunk messages.

Publishes omni_agent/AudioChunk on `audio/chunk`: mono chunks of a fixed
size at `sample_rate`, stamped with the capture time of their first sample.
The sources themselves live in omni_agent.audio.sources; this node only
configures them, publishes and logs.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import List, Optional, Union

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.time import Time

from omni_agent.audio import MODEL_SAMPLE_RATE_HZ
from omni_agent.audio.chunk import (
    FORMAT_S16LE,
    MAX_SAMPLE_RATE_HZ,
    MIN_SAMPLE_RATE_HZ,
    SAMPLE_FORMATS,
    encode_chunk,
)
from omni_agent.audio.sources import (
    DEFAULT_CHUNK_MS,
    AudioDeviceError,
    AudioFileError,
    DeviceAudioSource,
    FileAudioSource,
    refresh_devices,
)
from omni_agent.audio.sources import logger as sources_logger
from omni_agent.msg import AudioChunk
from omni_agent.nodes.common import AUDIO_QOS, declare, run_node

DEVICE_SOURCE = "device"
#: How often a file source checks for its first subscriber, in seconds.
SUBSCRIBER_POLL_S = 0.1


class _RosLogHandler(logging.Handler):
    """Forward Python `logging` records (from the audio sources) to a ROS logger."""

    def __init__(self, ros_logger):
        super().__init__()
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            self._ros_logger.error(message)
        elif record.levelno >= logging.WARNING:
            self._ros_logger.warning(message)
        else:
            self._ros_logger.info(message)


class MicrophoneNode(Node):
    """Publish audio chunks from a PortAudio input device or from audio files."""

    def __init__(self, **kwargs):
        super().__init__("microphone_node", **kwargs)
        #: Set when a file playlist has been published to the end (never for devices).
        self.playlist_finished = threading.Event()
        self._source: Optional[Union[FileAudioSource, DeviceAudioSource]] = None
        self._device_attempts = 0
        self._last_device_error = ""
        self._reported_overflows = 0
        self._subscriber_timer = None
        self._device_timer = None

        self._log_handler = _RosLogHandler(self.get_logger())
        sources_logger.addHandler(self._log_handler)
        sources_logger.setLevel(logging.INFO)

        self._declare_parameters()
        self._publisher = self.create_publisher(AudioChunk, "audio/chunk", AUDIO_QOS)

        if self.files:
            self._start_files(self.files)
        elif self.source != DEVICE_SOURCE:
            self._start_files([self.source])
        else:
            self._start_device()

    def _declare_parameters(self) -> None:
        # What to record or play.
        self.source = declare(
            self, "source", DEVICE_SOURCE,
            "'device' to record a PortAudio input device, or the path of an audio file to play "
            "(WAV/FLAC/OGG, or .raw/.pcm as S16LE mono)")
        files = self.declare_parameter(
            "files", Parameter.Type.STRING_ARRAY,
            ParameterDescriptor(description="Playlist of audio files played in order; "
                                            "overrides 'source' when not empty")).value
        self.files: List[str] = list(files or [])
        # dynamic_typing accepts both `device:=2` (an integer) and `device:=USB`.
        self.device = str(self.declare_parameter(
            "device", "",
            ParameterDescriptor(description="Input device: a part of its name or its PortAudio "
                                            "index; '' is the default input",
                                dynamic_typing=True)).value)

        # Format of the published chunks.
        self.sample_rate = declare(self, "sample_rate", MODEL_SAMPLE_RATE_HZ,
                                   "Sample rate of the published chunks [Hz]")
        self.chunk_ms = declare(self, "chunk_ms", DEFAULT_CHUNK_MS,
                                "Duration of one published chunk [ms]; 32 ms is 512 samples at 16 kHz")
        self.sample_format = declare(self, "sample_format", FORMAT_S16LE,
                                     "Sample encoding of the published chunks: S16LE or F32LE")
        self.frame_id = declare(self, "frame_id", "microphone", "frame_id of the published chunks")

        # File playback.
        self.gap_s = declare(self, "gap_s", 1.0,
                             "Silence before each file and after the last one [s]")
        self.loop = declare(self, "loop", False, "Repeat the playlist forever")
        self.realtime = declare(self, "realtime", True,
                                "Pace file playback in real time; false publishes as fast as possible")
        self.raw_sample_rate = declare(self, "raw_sample_rate", MODEL_SAMPLE_RATE_HZ,
                                       "Sample rate of headerless .raw/.pcm files [Hz]")
        self.wait_for_subscriber = declare(
            self, "wait_for_subscriber", True,
            "Start playing files only once audio/chunk has a subscriber, so that the start "
            "of the first file is not lost")

        # Device recording.
        self.device_retry_s = declare(self, "device_retry_s", 5.0,
                                      "Interval between attempts to open a missing or failed device [s]")
        self.device_sample_rate = declare(
            self, "device_sample_rate", 0,
            "Rate to open the device at [Hz]; 0 tries sample_rate, then the device's default "
            "rate, then common rates, and resamples to sample_rate")

        self._check_parameters()

    def _check_parameters(self) -> None:
        if self.sample_format not in SAMPLE_FORMATS:
            raise ValueError(f"sample_format {self.sample_format!r} is invalid; use one of "
                             f"{sorted(SAMPLE_FORMATS)}")
        for name in ("sample_rate", "raw_sample_rate"):
            value = getattr(self, name)
            if not MIN_SAMPLE_RATE_HZ <= value <= MAX_SAMPLE_RATE_HZ:
                raise ValueError(f"{name} {value} is invalid; use {MIN_SAMPLE_RATE_HZ}.."
                                 f"{MAX_SAMPLE_RATE_HZ} Hz")
        device_rate = self.device_sample_rate
        if device_rate and not MIN_SAMPLE_RATE_HZ <= device_rate <= MAX_SAMPLE_RATE_HZ:
            raise ValueError(f"device_sample_rate {self.device_sample_rate} is invalid; use 0 to "
                             f"negotiate, or {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz")
        self.chunk_samples = int(round(self.sample_rate * self.chunk_ms / 1000.0))
        if self.chunk_ms <= 0 or self.chunk_samples < 1:
            raise ValueError(f"chunk_ms {self.chunk_ms} is invalid; use a positive number of "
                             f"milliseconds (32 ms is 512 samples at 16 kHz)")
        if self.device_retry_s <= 0:
            raise ValueError(f"device_retry_s {self.device_retry_s} is invalid; use a positive "
                             f"number of seconds")

    # --- files ---------------------------------------------------------------

    def _start_files(self, paths: List[str]) -> None:
        try:
            self._source = FileAudioSource(
                paths, self._publish, output_rate=self.sample_rate, chunk_samples=self.chunk_samples,
                gap_s=self.gap_s, loop=self.loop, realtime=self.realtime,
                raw_sample_rate=self.raw_sample_rate, on_end=self._on_playlist_end)
        except (OSError, AudioFileError, ValueError) as error:
            self.get_logger().error(f"cannot play the audio files: {error}")
            raise
        self.get_logger().info(
            f"playlist of {len(paths)} file(s), {self._source.duration_s:.2f} s per pass with "
            f"{self.gap_s:.2f} s gaps, loop={self.loop}, realtime={self.realtime}: "
            + ", ".join(str(p) for p in self._source.paths))
        self._log_publishing()
        if self.wait_for_subscriber:
            self.get_logger().info(f"waiting for a subscriber on {self._publisher.topic_name} "
                                   f"before playing")
            self._subscriber_timer = self.create_timer(SUBSCRIBER_POLL_S, self._start_when_subscribed)
        else:
            self._source.start()

    def _start_when_subscribed(self) -> None:
        if self._publisher.get_subscription_count() < 1:
            return
        self._subscriber_timer.cancel()
        self.get_logger().info("subscriber found; playing")
        self._source.start()

    def _on_playlist_end(self) -> None:
        self.playlist_finished.set()
        source = self._source
        self.get_logger().info(
            f"playlist ended after {len(source.paths)} file(s): published {source.chunks_emitted} "
            f"chunks ({source.chunks_emitted * source.chunk_samples / self.sample_rate:.2f} s); "
            f"set loop:=true to repeat it")

    # --- device --------------------------------------------------------------

    def _start_device(self) -> None:
        self._open_device()
        # One timer both retries a missing device and reopens a stream that stopped.
        self._device_timer = self.create_timer(self.device_retry_s, self._check_device)

    def _open_device(self) -> bool:
        self._device_attempts += 1
        source = DeviceAudioSource(self._publish, device=self.device, output_rate=self.sample_rate,
                                   chunk_samples=self.chunk_samples,
                                   device_rate=self.device_sample_rate)
        try:
            source.start()
        except AudioDeviceError as error:
            self._log_device_error(error)
            return False
        self._source = source
        self._reported_overflows = 0
        self._log_device_opened(source)
        return True

    def _check_device(self) -> None:
        source = self._source
        if source is not None and source.active:
            self._report_overflows(source)
            return
        if source is not None:
            self.get_logger().warning(f"input device stream stopped after {source.chunks_emitted} "
                                   f"chunks; reopening it")
            self._source = None
            source.stop()
        # PortAudio scans devices only at start-up; rescan to find a device added since.
        refresh_devices()
        self._open_device()

    def _log_device_error(self, error: AudioDeviceError) -> None:
        message = str(error)
        if message != self._last_device_error:
            self.get_logger().error(f"cannot open the input device (attempt {self._device_attempts}): "
                                    f"{message}. Retrying every {self.device_retry_s:.1f} s")
            self._last_device_error = message
        else:
            self.get_logger().warning(f"input device still unavailable (attempt {self._device_attempts}); "
                                   f"retrying in {self.device_retry_s:.1f} s")

    def _log_device_opened(self, source: DeviceAudioSource) -> None:
        if source.resampling:
            conversion = f"resampling {source.opened_rate} -> {self.sample_rate} Hz"
        else:
            conversion = "no resampling"
        rejected = ""
        if source.rejected_rates:
            rejected = "; the device rejected " + ", ".join(f"{r} Hz" for r, _ in source.rejected_rates)
        self.get_logger().info(f"recording input device {source.device.describe()}: opened at "
                               f"{source.opened_rate} Hz, {conversion}{rejected}")
        self._last_device_error = ""
        self._log_publishing()

    def _report_overflows(self, source: DeviceAudioSource) -> None:
        new_overflows = source.overflow_count - self._reported_overflows
        if new_overflows > 0:
            self.get_logger().warning(
                f"input overflow: the device dropped audio {new_overflows} time(s) since the last "
                f"check ({source.overflow_count} in total); the CPU may be overloaded")
            self._reported_overflows = source.overflow_count

    # --- publishing ----------------------------------------------------------

    def _log_publishing(self) -> None:
        self.get_logger().info(f"publishing {self.chunk_samples}-sample {self.sample_format} mono chunks "
                               f"at {self.sample_rate} Hz on {self._publisher.topic_name}")

    def _publish(self, samples: np.ndarray, capture_time: float) -> None:
        """Publish one chunk; `capture_time` is on the monotonic clock."""
        msg = AudioChunk()
        # Convert the monotonic capture time to the node clock (ROS or sim time).
        age_ns = int((time.monotonic() - capture_time) * 1e9)
        now = self.get_clock().now()
        msg.header.stamp = Time(nanoseconds=max(0, now.nanoseconds - age_ns),
                                clock_type=now.clock_type).to_msg()
        msg.header.frame_id = self.frame_id
        msg.sample_rate = self.sample_rate
        msg.channels = 1
        msg.sample_format = self.sample_format
        msg.data = encode_chunk(samples, self.sample_format)
        try:
            self._publisher.publish(msg)
        except Exception:
            # On Ctrl-C, rclpy shuts the context down before close() stops the
            # source, so a chunk can arrive in between. Drop it then.
            if self.context.ok():
                raise

    def close(self) -> None:
        """Stop the source; called before the node is destroyed."""
        for timer in (self._subscriber_timer, self._device_timer):
            if timer is not None:
                timer.cancel()
        source, self._source = self._source, None
        if source is not None:
            source.stop()
        sources_logger.removeHandler(self._log_handler)


def main(args=None):
    run_node(MicrophoneNode, args)


if __name__ == "__main__":
    main()
