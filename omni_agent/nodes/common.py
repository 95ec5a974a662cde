"""QoS profiles, parameter and time helpers, and the `main()` boilerplate
shared by the omni_agent nodes."""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional, Sequence

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

#: Camera images: REP-2003 sensor data QoS (best effort, keep last 5).
#: Subscribers must use it too; a RELIABLE subscriber never matches a
#: BEST_EFFORT publisher and receives nothing, silently.
SENSOR_QOS = qos_profile_sensor_data

#: The model node keeps only the newest camera frame; older ones are stale.
LATEST_FRAME_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

#: Audio chunks are reliable: a lost chunk corrupts the utterance it belongs
#: to. About 6 s of 32 ms chunks fit in the queue.
AUDIO_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=200,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: Commands, results, goals and status: reliable, nothing dropped.
COMMAND_QOS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=20,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


def declare(node: Node, name: str, default: Any, description: str) -> Any:
    """Declare a parameter with a description and return its current value.

    A float parameter also accepts an integer (`-p fps:=10`), which rclpy
    would otherwise reject as the wrong type.
    """
    if isinstance(default, float):
        descriptor = ParameterDescriptor(description=description, dynamic_typing=True)
        value = node.declare_parameter(name, default, descriptor).value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter {name} must be a number, got {value!r}")
        return float(value)
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


def stamp_to_s(stamp) -> float:
    """Convert a builtin_interfaces/Time to seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def run_node(factory: Callable[..., Node], args: Optional[Sequence[str]] = None, threads: int = 4) -> None:
    """Create one node, spin it on a multi-threaded executor until shutdown.

    A node that rejects its parameters (ValueError, FileNotFoundError) logs
    one fatal line with the reason and the process exits with status 2.
    """
    rclpy.init(args=args)
    node = None
    invalid = False
    try:
        try:
            node = factory()
        except (ValueError, FileNotFoundError) as error:
            rclpy.logging.get_logger(getattr(factory, "__name__", "node")).fatal(f"failed to start: {error}")
            invalid = True
            return
        executor = MultiThreadedExecutor(num_threads=threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        if invalid:
            sys.exit(2)


def stop_graph(executor, spinner, nodes) -> None:
    """Stop an executor spun in `spinner` (a thread), close and destroy `nodes`, shut rclpy down.

    The executor and its thread stop first: destroying a node while another
    thread spins it can abort the process. Either may be None.
    """
    if executor is not None:
        executor.shutdown(timeout_sec=5.0)
    if spinner is not None:
        spinner.join(timeout=5.0)
    for node in reversed(nodes):
        close = getattr(node, "close", None)
        if close is not None:
            close()
        node.destroy_node()
    if rclpy.ok():
        rclpy.shutdown()


class LogLimiter:
    """Rate-limit repeated log messages per key, counting what was suppressed.

    rclpy's throttle_duration_sec limits per call site, so a second, different
    error from the same line would be hidden; this limits per key instead.
    """

    def __init__(self, logger, period_s: float = 5.0):
        self._logger = logger
        self._period_s = period_s
        self._last: dict = {}
        self._suppressed: dict = {}

    def log(self, level: str, key: str, text: str) -> None:
        import time

        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._period_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            text += f" ({suppressed} similar message(s) suppressed in the last {self._period_s:.0f} s)"
        self._last[key] = now
        # rclpy fixes a severity per call site, so each level needs its own call.
        if level == "error":
            self._logger.error(text)
        elif level == "warning":
            self._logger.warning(text)
        else:
            self._logger.info(text)
