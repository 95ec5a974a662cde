"""Camera node: publishes frames from a camera, video file, image folder or stream URL.

Publishes `camera/image_raw` (sensor_msgs/Image, bgr8) and
`camera/camera_info` (sensor_msgs/CameraInfo) with sensor data QoS; both
messages of a frame carry the same stamp and frame_id. The calibration is an
undistorted pinhole model computed from `hfov_deg`.

A source that fails to open or breaks is opened again with exponential
backoff, so the node keeps running with a bad or missing source. For an RTSP
publisher that pushes to the node (FFmpeg `-f rtsp`), start the node with
OPENCV_FFMPEG_CAPTURE_OPTIONS="rtsp_flags;listen|listen_timeout;10" so that
OpenCV listens on the URL's port instead of connecting to it.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from omni_agent.nodes.common import SENSOR_QOS, declare, run_node
from omni_agent.vision.camera_source import (
    EVENT_ENDED,
    EVENT_ERROR,
    EVENT_OPENED,
    CameraStreamer,
    StreamEvent,
)
from omni_agent.vision.image import CameraIntrinsics, bgr_to_image_fields, camera_info_from_hfov

#: Minimum interval in seconds between log lines for repeated source errors.
#: The first failure after the source worked, or after start, is always logged.
ERROR_LOG_THROTTLE_S = 5.0


class CameraNode(Node):
    """Publishes the frames of one camera source with their calibration."""

    def __init__(self, **kwargs):
        super().__init__("camera_node", **kwargs)
        self.source = declare(self, "source", "0",
                              "Camera source: device index ('0') or path ('/dev/video0'), video file, "
                              "image file, folder of images, or rtsp://, http:// or https:// URL")
        self.fps = declare(self, "fps", 15.0,
                           "Frame rate in frames per second for images and folders, and the maximum "
                           "rate for videos and live sources")
        self.width = declare(self, "width", 0, "Output width in pixels; 0 keeps the source width")
        self.height = declare(self, "height", 0, "Output height in pixels; 0 keeps the source height")
        self.loop = declare(self, "loop", True,
                            "Restart video files and image folders at their end; when false the node "
                            "stops publishing after the last frame")
        self.frame_id = declare(self, "frame_id", "camera_optical",
                                "frame_id of the published messages: the camera's optical frame "
                                "(z forward, x right, y down)")
        self.hfov_deg = declare(self, "hfov_deg", 69.0,
                                "Horizontal field of view in degrees, used to compute camera_info")
        reconnect_min_s = declare(self, "reconnect_min_s", 0.5,
                                  "First delay in seconds before reopening a failed source; it doubles "
                                  "with each consecutive failure")
        reconnect_max_s = declare(self, "reconnect_max_s", 10.0,
                                  "Maximum delay in seconds between attempts to reopen a failed source")
        self._check_parameters(reconnect_min_s, reconnect_max_s)

        self.image_publisher = self.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
        self.info_publisher = self.create_publisher(CameraInfo, "camera/camera_info", SENSOR_QOS)
        self._intrinsics: Dict[Tuple[int, int], CameraIntrinsics] = {}

        size = f"{self.width or 'auto'}x{self.height or 'auto'}" if self.width or self.height else "native"
        self.get_logger().info(
            f"starting camera source {self.source!r} (fps {self.fps:g}, size {size}, "
            f"loop {self.loop}, frame_id {self.frame_id!r})")
        self.streamer = CameraStreamer(
            self.source, self._publish_frame, self._log_event,
            fps=float(self.fps), loop=bool(self.loop), width=int(self.width), height=int(self.height),
            reconnect_min_s=float(reconnect_min_s), reconnect_max_s=float(reconnect_max_s))
        self.streamer.start()

    def _check_parameters(self, reconnect_min_s: float, reconnect_max_s: float) -> None:
        if not self.fps > 0:
            raise ValueError(f"parameter fps is {self.fps}; set it to a frame rate > 0")
        if self.width < 0 or self.height < 0:
            raise ValueError(f"parameters width/height are {self.width}/{self.height}; use 0 (native size) or more")
        if not 0.0 < self.hfov_deg < 180.0:
            raise ValueError(f"parameter hfov_deg is {self.hfov_deg}; use a value between 0 and 180 degrees")
        if not 0.0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError(
                f"parameters reconnect_min_s/reconnect_max_s are {reconnect_min_s}/{reconnect_max_s}; "
                f"use 0 < reconnect_min_s <= reconnect_max_s")

    def _publish_frame(self, frame: np.ndarray, capture_time: float) -> None:
        """Publish one frame and its camera_info. Runs on the streamer thread."""
        if not self.context.ok():
            return
        height, width, encoding, step, data = bgr_to_image_fields(frame)
        stamp = self.get_clock().now().to_msg()

        image = Image()
        image.header.stamp = stamp
        image.header.frame_id = self.frame_id
        image.height = height
        image.width = width
        image.encoding = encoding
        image.is_bigendian = 0
        image.step = step
        image.data = data

        info = self._camera_info(width, height)
        info.header.stamp = stamp
        info.header.frame_id = self.frame_id

        self.image_publisher.publish(image)
        self.info_publisher.publish(info)

    def _camera_info(self, width: int, height: int) -> CameraInfo:
        intrinsics = self._intrinsics.get((width, height))
        if intrinsics is None:
            # Folders may mix image sizes, so the calibration is kept per size.
            intrinsics = camera_info_from_hfov(width, height, self.hfov_deg)
            self._intrinsics[(width, height)] = intrinsics
        info = CameraInfo()
        info.width = width
        info.height = height
        info.distortion_model = intrinsics.distortion_model
        info.d = list(intrinsics.d)
        info.k = list(intrinsics.k)
        info.r = list(intrinsics.r)
        info.p = list(intrinsics.p)
        return info

    def _log_event(self, event: StreamEvent) -> None:
        logger = self.get_logger()
        if event.kind == EVENT_OPENED:
            prefix = "reconnected: " if event.reconnected else ""
            logger.info(f"{prefix}{event.message}")
        elif event.kind == EVENT_ENDED:
            logger.info(event.message)
        elif event.kind == EVENT_ERROR:
            if event.failures <= 1:
                # The first failure of a series is always logged.
                logger.error(event.message)
            else:
                logger.error(event.message, throttle_duration_sec=ERROR_LOG_THROTTLE_S)
        else:
            logger.warning(event.message, throttle_duration_sec=ERROR_LOG_THROTTLE_S)

    def close(self) -> None:
        """Stop the streamer thread before the node is destroyed."""
        self.streamer.stop()


def main(args=None):
    run_node(CameraNode, args)


if __name__ == "__main__":
    main()
