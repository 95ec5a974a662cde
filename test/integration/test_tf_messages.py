"""tf2_msgs/msg/TFMessage over DDS between two processes.

Where the venv has no tf2_msgs, scripts/build.sh builds the stand-in in
third_party/tf2_msgs. These tests check that its messages serialise and
arrive intact, as the Gazebo bridge's /tf messages must.
"""
import os
import signal
import subprocess
import sys

import pytest
from geometry_msgs.msg import TransformStamped
from tf2_msgs.msg import TFMessage

from ros_harness import REPO, RosHarness

pytestmark = pytest.mark.ros

WAIT_S = 30.0

# Republishes every TFMessage from tf_echo_in on tf_echo_out.
ECHO_SCRIPT = """
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from tf2_msgs.msg import TFMessage

rclpy.init()
node = Node("tf_echo")
publisher = node.create_publisher(TFMessage, "tf_echo_out", 10)
node.create_subscription(TFMessage, "tf_echo_in", publisher.publish, 10)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
"""


def transform(parent, child, x, y, yaw_z, yaw_w, sec):
    msg = TransformStamped()
    msg.header.frame_id = parent
    msg.header.stamp.sec = sec
    msg.header.stamp.nanosec = 250_000_000
    msg.child_frame_id = child
    msg.transform.translation.x = x
    msg.transform.translation.y = y
    msg.transform.rotation.z = yaw_z
    msg.transform.rotation.w = yaw_w
    return msg


@pytest.fixture
def echo():
    process = subprocess.Popen([sys.executable, "-c", ECHO_SCRIPT], cwd=str(REPO), env=dict(os.environ),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    harness = RosHarness("tf_test")
    try:
        yield harness
    finally:
        harness.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_tf_message_type_matches_ros():
    assert TFMessage.get_fields_and_field_types() == {"transforms": "sequence<geometry_msgs/TransformStamped>"}
    assert TFMessage.__module__.startswith("tf2_msgs.msg")


def test_tf_message_round_trip(echo):
    received = echo.collect(TFMessage, "tf_echo_out", 10)
    publisher = echo.node.create_publisher(TFMessage, "tf_echo_in", 10)
    echo.wait_for_subscribers(publisher, timeout_s=WAIT_S)
    echo.wait_for_publishers("tf_echo_out", timeout_s=WAIT_S)

    sent = TFMessage(transforms=[
        transform("odom", "base_link", 1.5, -2.25, 0.38268343, 0.92387953, 42),
        transform("base_link", "camera_optical", 0.15, 0.0, 0.0, 1.0, 42),
    ])

    def echoed_yet():
        # Sent again until it comes back: the echo's publisher may match this
        # subscription a little after discovery has listed it.
        if not received:
            publisher.publish(sent)
        return bool(received)

    echo.wait_for(echoed_yet, WAIT_S, "the echoed TFMessage")

    echoed = received[0]
    assert len(echoed.transforms) == 2
    assert echoed == sent
    assert echoed.transforms[0].child_frame_id == "base_link"
    assert echoed.transforms[0].transform.translation.y == pytest.approx(-2.25)
    assert echoed.transforms[1].header.stamp.nanosec == 250_000_000
