"""QoS profiles, parameter and time helpers, and the `main()` boilerplate
shared by the omni_agent nodes."""
from __future__ import annotations

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
    """Declare a parameter with a description and return its current value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


def stamp_to_s(stamp) -> float:
    """Convert a builtin_interfaces/Time to seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def run_node(factory: Callable[..., Node], args: Optional[Sequence[str]] = None, threads: int = 4) -> None:
    """Create one node, spin it on a multi-threaded executor until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
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
