"""image_frontend_node: camera frames -> image front-end features, in a process of its own.

For modality-separated deployment the image encoder (EfficientNet-Lite0)
runs here instead of inside omni_model_node. The node subscribes to
`camera/image_raw` (sensor_msgs/Image) and publishes
`camera/image_features` (omni_agent/ImageFeatures, reliable) with the
image's header.

Encoding runs on a worker thread, so the executor keeps receiving frames.
A frame is encoded only when the worker is idle and at least
1 / max_rate_hz seconds of wall time have passed since the previous encoded
frame. Frames that arrive while the worker is busy are stale by the time it
is free, so they are dropped, counted and logged at a limited rate, never
queued.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rclpy.logging
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from omni_agent.model.frontends import create_frontend
from omni_agent.msg import ImageFeatures
from omni_agent.nodes.common import COMMAND_QOS, LATEST_FRAME_QOS, LogLimiter, declare, run_node
from omni_agent.vision.features_msg import features_to_fields
from omni_agent.vision.image import ImageError, image_to_rgb

PRECISIONS = ("float32", "bfloat16")
IMAGE_TOPIC = "camera/image_raw"
FEATURES_TOPIC = "camera/image_features"


class ImageFrontendNode(Node):
    """Encodes the newest camera frame with the image front-end and publishes its features."""

    def __init__(self, **kwargs):
        super().__init__("image_frontend_node", **kwargs)
        self.precision = declare(self, "precision", "float32",
                                 "Precision of the image encoder: 'float32' or 'bfloat16' "
                                 "(bf16 weights and activations; the published tokens are float32)")
        input_size = declare(self, "input_size", 320,
                             "Long side in pixels that frames are resized to before encoding (aspect kept)")
        grid = declare(self, "grid", 3,
                       "Region tokens per image side: token 0 is the whole image, then grid x grid "
                       "tiles, row-major from the top left")
        self.max_rate_hz = declare(self, "max_rate_hz", 2.0,
                                   "Maximum encoded frames per second of wall time; 0 encodes every frame "
                                   "that arrives while the encoder is idle")
        cpu_threads = declare(self, "cpu_threads", 1, "CPU threads for the encoder (torch intra-op threads)")
        self._check_parameters(cpu_threads)

        import torch

        # torch's thread count is per process, and this process runs only this encoder.
        torch.set_num_threads(cpu_threads)
        load_start_s = time.monotonic()
        self.frontend = create_frontend("image", dtype=self.precision, input_size=input_size, grid=grid)
        self.get_logger().info(
            f"loaded image front-end {self.frontend.name} from {self.frontend.weights} in "
            f"{time.monotonic() - load_start_s:.1f} s: precision {self.precision}, input size "
            f"{input_size} px, {grid}x{grid} grid, {1 + grid * grid} tokens of {self.frontend.feature_dim} "
            f"features, {cpu_threads} CPU thread(s), max_rate_hz {self.max_rate_hz:g}")

        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="image_frontend_worker")
        self._lock = threading.Lock()
        self._busy = False
        self._last_accepted_s = None     # monotonic time of the last frame handed to the worker
        self._limited = LogLimiter(self.get_logger())
        #: Frame counts since start, logged when the node stops.
        self.frames_received = 0
        self.frames_encoded = 0
        self.frames_dropped_busy = 0
        self.frames_skipped_rate = 0
        self.frames_invalid = 0

        self.features_pub = self.create_publisher(ImageFeatures, FEATURES_TOPIC, COMMAND_QOS)
        self.create_subscription(Image, IMAGE_TOPIC, self._on_image, LATEST_FRAME_QOS,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f"listening on {IMAGE_TOPIC}, publishing {FEATURES_TOPIC}")

    def _check_parameters(self, cpu_threads: int) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"parameter precision is {self.precision!r}; use one of {', '.join(PRECISIONS)}")
        if not self.max_rate_hz >= 0.0:
            raise ValueError(f"parameter max_rate_hz is {self.max_rate_hz}; use a rate >= 0 "
                             f"(0 encodes as fast as frames come)")
        if cpu_threads < 1:
            raise ValueError(f"parameter cpu_threads is {cpu_threads}; use 1 or more")

    # Input --------------------------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        now_s = time.monotonic()
        with self._lock:
            self.frames_received += 1
            busy = self._busy
            if busy:
                self.frames_dropped_busy += 1
                dropped = self.frames_dropped_busy
            elif self._rate_limited(now_s):
                self.frames_skipped_rate += 1
                return
        if busy:
            self._limited.log(
                "warning", "busy",
                f"dropped a camera frame because the encoder is still busy with the previous one "
                f"({dropped} dropped since start); frames come faster than the encoder runs, so "
                f"lower max_rate_hz or the camera rate, or raise cpu_threads")
            return

        try:
            rgb = image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data,
                               is_bigendian=bool(msg.is_bigendian))
        except ImageError as error:
            with self._lock:
                self.frames_invalid += 1
            self._limited.log("error", f"image:{msg.encoding}:{msg.width}x{msg.height}",
                              f"dropped camera frame ({msg.width}x{msg.height}, encoding {msg.encoding!r}, "
                              f"step {msg.step}, {len(msg.data)} bytes): {error}")
            return

        with self._lock:
            self._busy = True
            self._last_accepted_s = now_s
        self._worker.submit(self._encode, rgb, msg.header)

    def _rate_limited(self, now_s: float) -> bool:
        if self.max_rate_hz <= 0.0 or self._last_accepted_s is None:
            return False
        return now_s - self._last_accepted_s < 1.0 / self.max_rate_hz

    # Work on the worker thread --------------------------------------------------
    def _encode(self, rgb: np.ndarray, header: Header) -> None:
        try:
            start_s = time.perf_counter()
            output = self.frontend.encode(rgb)
            processing_time_s = time.perf_counter() - start_s
            height, width = rgb.shape[:2]
            fields = features_to_fields(output, width, height, self.frontend.name, self.precision)

            msg = ImageFeatures(**fields)
            msg.header = header
            msg.processing_time_s = float(processing_time_s)
            if not self.context.ok():
                return
            self.features_pub.publish(msg)
            self.frames_encoded += 1
            if self.frames_encoded == 1:
                self.get_logger().info(
                    f"published the first features: {msg.num_tokens} tokens of {msg.feature_dim} "
                    f"for a {width}x{height} frame, encoded in {processing_time_s:.2f} s")
            else:
                self.get_logger().debug(
                    f"published features of frame {header.stamp.sec}.{header.stamp.nanosec:09d} "
                    f"(encoded in {processing_time_s:.3f} s)")
        except Exception as error:  # keep the worker alive for the next frame
            self._limited.log("error", f"encode:{type(error).__name__}",
                              f"encoding a {rgb.shape[1]}x{rgb.shape[0]} camera frame failed: {error!r}")
        finally:
            with self._lock:
                self._busy = False

    def close(self) -> None:
        """Wait for the frame being encoded, then log the frame counts."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        logger = self.get_logger()
        if not self.context.ok():
            # The node logger would also publish to /rosout, which fails once the context is
            # shut down (Ctrl-C). A child name has no /rosout publisher and logs to the console only.
            logger = rclpy.logging.get_logger(f"{logger.name}.shutdown")
        logger.info(
            f"stopping: {self.frames_received} frames received, {self.frames_encoded} encoded, "
            f"{self.frames_skipped_rate} skipped by max_rate_hz, {self.frames_dropped_busy} dropped "
            f"while the encoder was busy, {self.frames_invalid} invalid")


def main(args=None):
    run_node(ImageFrontendNode, args)


if __name__ == "__main__":
    main()
