"""sim_node in its own process, driven and observed over DDS on loopback.

One sim_node serves the whole module, with the bedroom door closed, at
REAL_TIME_FACTOR. The tests run in file order and share the robot: it
drives from the start pose, goes to the kitchen, and picks up and hands over
the apple there. A test that needs a pose drives there first, so that each
test also runs alone. Behaviour limits are in sim time, taken from message
stamps. Wall-clock timeouts only end waits for messages that never come.
"""
import math
import os
import re
import time

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.action import ActionClient
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool
from tf2_msgs.msg import TFMessage

from omni_agent.msg import AgentStatus, ManipulationGoal
from omni_agent.nodes.common import COMMAND_QOS, SENSOR_QOS, stamp_to_s
from omni_agent.planning.geometry import normalize_angle, quaternion_to_yaw, yaw_to_quaternion
from omni_agent.sim.robot import ROBOT
from omni_agent.sim.simulator import Simulator
from omni_agent.sim.world import load_world
from ros_harness import NodeProcess, RosHarness

try:
    from omni_agent_test_msgs.action import NavigateToPose
except ImportError:  # checked in the fixture, with the fix
    NavigateToPose = None

pytestmark = pytest.mark.ros

ACTION_TYPE = "omni_agent_test_msgs/action/NavigateToPose"
#: Fast enough for a short run, slow enough that a cmd_vel published every
#: 20 ms of wall time stays fresher than the node's 0.5 s (sim) timeout.
REAL_TIME_FACTOR = 4.0
#: Wall-clock limit for one wait on messages. It ends a wait and measures nothing.
WAIT_S = 90.0
WORLD = load_world()
KITCHEN = WORLD.places["kitchen"]
BEDROOM = WORLD.places["bedroom"]
START = WORLD.start_pose
KITCHEN_OPEN_SPOT = (2.0, 1.0, 0.0)        # free floor in the kitchen, about 1.5 m from the kitchen place
ARRIVAL_TOLERANCE_M = 0.1
STOPPED_SPEED = 0.01                        # m/s; odometry below this counts as standing still
# Once commanded to zero, the simulated base slows from 0.5 m/s to below
# 0.01 m/s in 0.09 s (measured with Simulator), so 0.1 s after the command
# it is below this (m/s).
HALTED_SPEED = 0.05
TRANSIENT_LOCAL_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)


@pytest.fixture(scope="module")
def sim():
    if NavigateToPose is None:
        pytest.fail("omni_agent_test_msgs is not built; run scripts/build.sh, which builds "
                    "test/interfaces/omni_agent_test_msgs")
    harness = RosHarness("sim_node_test")
    node = NodeProcess("sim_node", {"real_time_factor": REAL_TIME_FACTOR, "closed_doors": ["bedroom_door"],
                                    "navigate_action_type": ACTION_TYPE})
    try:
        harness.process = node
        harness.odom = harness.collect(Odometry, "odom", SENSOR_QOS)
        harness.statuses = harness.collect(AgentStatus, "manipulation_status", COMMAND_QOS)
        harness.cmd_vel_pub = harness.node.create_publisher(Twist, "cmd_vel", COMMAND_QOS)
        harness.goal_pub = harness.node.create_publisher(PoseStamped, "goal_pose", COMMAND_QOS)
        harness.e_stop_pub = harness.node.create_publisher(Bool, "e_stop", COMMAND_QOS)
        harness.manipulation_pub = harness.node.create_publisher(ManipulationGoal, "manipulation_goal", COMMAND_QOS)
        harness.action_client = ActionClient(harness.node, NavigateToPose, "navigate_to_pose")
        node.wait_for_output("sim_node ready", WAIT_S)
        for publisher in (harness.cmd_vel_pub, harness.goal_pub, harness.e_stop_pub, harness.manipulation_pub):
            harness.wait_for_subscribers(publisher, timeout_s=WAIT_S)
        harness.wait_for(harness.action_client.server_is_ready, WAIT_S, "the navigate_to_pose action server")
        harness.wait_for(lambda: len(harness.odom) > 0, WAIT_S, "odometry")
        yield harness
    finally:
        node.stop()
        harness.close()


# --- helpers -------------------------------------------------------------------------------------


def sim_now(sim):
    """Return the stamp of the newest odometry message: the sim time as the test last saw it."""
    return stamp_to_s(sim.odom[-1].header.stamp)


def odom_pose(msg):
    q = msg.pose.pose.orientation
    return msg.pose.pose.position.x, msg.pose.pose.position.y, quaternion_to_yaw(q.x, q.y, q.z, q.w)


def speed(msg):
    return math.hypot(msg.twist.twist.linear.x, msg.twist.twist.linear.y)


def odom_between(sim, start_s, end_s=math.inf):
    return [m for m in list(sim.odom) if start_s <= stamp_to_s(m.header.stamp) <= end_s]


def wait_sim_time(sim, seconds):
    """Wait until odometry shows `seconds` more of sim time."""
    end = sim_now(sim) + seconds
    sim.wait_for(lambda: sim_now(sim) >= end, WAIT_S, f"sim time {end:.2f} s on odom")


def subscription(sim, msg_type, topic, qos):
    """Subscribe for one test; the caller destroys the returned subscription."""
    received = []
    handle = sim.node.create_subscription(msg_type, topic, received.append, qos)
    return handle, received


def pose_msg(x, y, yaw, stamp_s=0.0, frame_id="map"):
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s - int(stamp_s)) * 1e9)) % 1_000_000_000
    msg.pose.position.x, msg.pose.position.y = float(x), float(y)
    _, _, qz, qw = yaw_to_quaternion(yaw)
    msg.pose.orientation.z, msg.pose.orientation.w = qz, qw
    return msg


class Goal:
    """One navigate_to_pose goal sent by the test, with its feedback."""

    def __init__(self, sim, x, y, yaw, stamp_s=None):
        self.sim = sim
        self.feedback = []
        message = NavigateToPose.Goal()
        message.pose = pose_msg(x, y, yaw, sim_now(sim) if stamp_s is None else stamp_s)
        future = sim.action_client.send_goal_async(message, feedback_callback=self.feedback.append)
        sim.wait_for(future.done, WAIT_S, "the goal response")
        self.handle = future.result()
        assert self.handle.accepted
        self._result = self.handle.get_result_async()

    def result(self):
        """Wait for the goal to end and return (status, result)."""
        self.sim.wait_for(self._result.done, WAIT_S, "the navigate_to_pose result")
        response = self._result.result()
        return response.status, response.result

    def wait_feedback(self, count=1):
        self.sim.wait_for(lambda: len(self.feedback) >= count, WAIT_S, f"{count} feedback message(s)")


def drive_to(sim, x, y, yaw):
    """Navigate with the action and fail the test unless the goal succeeds."""
    status, result = Goal(sim, x, y, yaw).result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.error_msg


def manipulate(sim, utterance_id, action, label=""):
    msg = ManipulationGoal()
    msg.utterance_id = utterance_id
    msg.action = action
    msg.object_label = label
    sim.manipulation_pub.publish(msg)


def statuses_of(sim, utterance_id):
    return [s for s in list(sim.statuses) if s.utterance_id == utterance_id]


def wait_final_status(sim, utterance_id):
    """Wait for DONE or FAILED on manipulation_status and return it."""
    def final():
        return [s for s in statuses_of(sim, utterance_id) if s.state in (AgentStatus.DONE, AgentStatus.FAILED)]

    sim.wait_for(lambda: bool(final()), WAIT_S,
                 f"a final manipulation status for {utterance_id}; statuses so far: "
                 f"{[(s.state, s.reason) for s in statuses_of(sim, utterance_id)]}")
    return final()[0]


def object_positions(sim):
    """Return {name: (x, y, z)} from one fresh sim/object_poses message."""
    handle, received = subscription(sim, TFMessage, "sim/object_poses", COMMAND_QOS)
    try:
        sim.wait_for(lambda: bool(received), WAIT_S, "a message on sim/object_poses")
    finally:
        sim.node.destroy_subscription(handle)
    return {t.child_frame_id: (t.transform.translation.x, t.transform.translation.y, t.transform.translation.z)
            for t in received[-1].transforms}


def wait_for_log(sim, pattern):
    """Wait until the node's log matches the regular expression `pattern`; return the last match."""
    sim.wait_for(lambda: re.search(pattern, sim.process.output()) is not None, WAIT_S,
                 f"a sim_node log line matching {pattern!r}")
    return list(re.finditer(pattern, sim.process.output()))[-1]


def log_count(sim, text):
    return sim.process.output().count(text)


# --- time, sensors and frames --------------------------------------------------------------------


def test_clock_advances(sim):
    handle, clocks = subscription(sim, Clock, "/clock", COMMAND_QOS)
    try:
        sim.wait_for(lambda: len(clocks) >= 20, WAIT_S, "20 /clock messages")
    finally:
        sim.node.destroy_subscription(handle)
    times = [stamp_to_s(c.clock) for c in clocks]
    assert all(later > earlier for earlier, later in zip(times, times[1:]))
    assert times[-1] > times[0]
    assert times[-1] < 1e6          # sim time counts from 0, it is not wall time


def test_camera_image_and_info(sim):
    image_handle, images = subscription(sim, Image, "camera/image_raw", SENSOR_QOS)
    info_handle, infos = subscription(sim, CameraInfo, "camera/camera_info", SENSOR_QOS)
    try:
        sim.wait_for(lambda: len(images) >= 2 and len(infos) >= 2, WAIT_S, "two camera images and infos")
    finally:
        sim.node.destroy_subscription(image_handle)
        sim.node.destroy_subscription(info_handle)

    image, info = images[-1], infos[-1]
    assert (image.width, image.height) == (320, 240)
    assert image.encoding == "bgr8"
    assert image.step == 320 * 3
    assert image.header.frame_id == "camera_optical"
    pixels = np.frombuffer(bytes(image.data), dtype=np.uint8).reshape(240, 320, 3)
    assert pixels.std() > 10.0                                  # not a blank frame
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) >= 5
    # The robot has not moved yet, so a simulator in this process renders the same view from the start pose.
    with Simulator(WORLD.with_door("bedroom_door", closed=True)) as local:
        local.step_for(0.1)
        expected_bgr = local.render_rgb()[:, :, ::-1].astype(np.int16)
    assert np.abs(pixels.astype(np.int16) - expected_bgr).mean() < 3.0

    assert (info.width, info.height) == (320, 240)
    assert info.header.frame_id == "camera_optical"
    focal = 120.0 / math.tan(math.radians(ROBOT.camera_fovy_deg) / 2.0)
    assert info.k[0] == pytest.approx(focal)
    assert info.k[4] == pytest.approx(focal)
    assert info.k[2] == pytest.approx(159.5)
    assert info.k[5] == pytest.approx(119.5)
    assert sim.node.count_publishers("/camera/depth") == 0             # depth is off by default
    image_stamps = {stamp_to_s(i.header.stamp) for i in images}
    assert any(stamp_to_s(i.header.stamp) in image_stamps for i in infos)


def test_odometry_and_tf_frames(sim):
    tf_handle, tf_messages = subscription(sim, TFMessage, "/tf", COMMAND_QOS)
    static_handle, static_messages = subscription(sim, TFMessage, "/tf_static", TRANSIENT_LOCAL_QOS)
    try:
        sim.wait_for(lambda: len(tf_messages) >= 3 and static_messages, WAIT_S, "/tf and /tf_static")
    finally:
        sim.node.destroy_subscription(tf_handle)
        sim.node.destroy_subscription(static_handle)

    odom = sim.odom[-1]
    assert odom.header.frame_id == "odom"
    assert odom.child_frame_id == "base_link"
    x, y, yaw = odom_pose(odom)
    assert math.hypot(x - START.x, y - START.y) < 0.05          # no command has moved the robot yet
    assert abs(normalize_angle(yaw - START.yaw)) < 0.05

    wait_sim_time(sim, 1.1)
    last_s = sim_now(sim)
    assert len(odom_between(sim, last_s - 1.0 + 1e-6, last_s)) in (29, 30, 31)      # 30 Hz of sim time

    by_stamp = {stamp_to_s(m.header.stamp): m for m in list(sim.odom)}
    matched = 0
    for message in tf_messages:
        frames = {(t.header.frame_id, t.child_frame_id): t for t in message.transforms}
        assert set(frames) == {("map", "odom"), ("odom", "base_link")}
        identity = frames[("map", "odom")].transform
        assert (identity.translation.x, identity.translation.y, identity.rotation.w) == (0.0, 0.0, 1.0)
        base = frames[("odom", "base_link")]
        same_time = by_stamp.get(stamp_to_s(base.header.stamp))
        if same_time is not None:
            matched += 1
            assert base.transform.translation.x == pytest.approx(same_time.pose.pose.position.x)
            assert base.transform.translation.y == pytest.approx(same_time.pose.pose.position.y)
    assert matched > 0

    camera = static_messages[-1].transforms[0]
    assert (camera.header.frame_id, camera.child_frame_id) == ("base_link", "camera_optical")
    assert camera.transform.translation.x == pytest.approx(ROBOT.camera_x, abs=0.02)
    assert camera.transform.translation.z == pytest.approx(ROBOT.camera_z, abs=0.02)
    q = camera.transform.rotation
    # The optical z axis (third column of the rotation) looks forward and down.
    optical_z = (2 * (q.x * q.z + q.w * q.y), 2 * (q.y * q.z - q.w * q.x), 1 - 2 * (q.x * q.x + q.y * q.y))
    assert optical_z[0] > 0.5
    assert optical_z[2] < -0.3


# --- cmd_vel -------------------------------------------------------------------------------------


def test_cmd_vel_drives_and_stale_command_stops(sim):
    start_x = odom_pose(sim.odom[-1])[0]
    forward = Twist()
    forward.linear.x = 0.3
    sim.wait_for(lambda: sim.cmd_vel_pub.publish(forward) or odom_pose(sim.odom[-1])[0] > start_x + 0.2,
                 WAIT_S, "the robot to drive 0.2 m forward on cmd_vel")
    assert max(speed(m) for m in list(sim.odom)[-10:]) == pytest.approx(0.3, abs=0.03)

    # Publishing stops here. The node must treat the last command as stale and stop the base.
    timeouts_before = log_count(sim, "cmd_vel timed out")
    sim.wait_for(lambda: log_count(sim, "cmd_vel timed out") > timeouts_before, WAIT_S, "the cmd_vel timeout log")
    match = re.findall(r"cmd_vel timed out at sim time ([0-9.]+) s: the last message, received at sim time "
                       r"([0-9.]+) s", sim.process.output())[-1]
    timed_out_s, received_s = float(match[0]), float(match[1])
    assert timed_out_s - received_s == pytest.approx(0.5, abs=0.02)
    wait_sim_time(sim, 1.0)
    assert any(speed(m) > 0.25 for m in odom_between(sim, received_s - 0.2, received_s))
    after = odom_between(sim, timed_out_s + 0.1)
    assert after
    assert max(speed(m) for m in after) < HALTED_SPEED
    assert max(speed(m) for m in odom_between(sim, timed_out_s + 0.3)) < STOPPED_SPEED

    # A zero command stops the base at once, so no timeout follows it.
    sim.wait_for(lambda: sim.cmd_vel_pub.publish(forward) or speed(sim.odom[-1]) > 0.25, WAIT_S,
                 "the robot to drive again")
    timeouts_before = log_count(sim, "cmd_vel timed out")
    sim.cmd_vel_pub.publish(Twist())
    sim.wait_for(lambda: speed(sim.odom[-1]) < STOPPED_SPEED, WAIT_S, "the robot to stop on a zero cmd_vel")
    wait_sim_time(sim, 1.0)
    assert log_count(sim, "cmd_vel timed out") == timeouts_before


# --- navigation ----------------------------------------------------------------------------------


def test_goal_pose_reaches_kitchen(sim):
    sim.goal_pub.publish(pose_msg(KITCHEN.x, KITCHEN.y, KITCHEN.yaw))     # zero stamp: "now"

    def arrived():
        x, y, yaw = odom_pose(sim.odom[-1])
        return (math.hypot(x - KITCHEN.x, y - KITCHEN.y) < ARRIVAL_TOLERANCE_M
                and abs(normalize_angle(yaw - KITCHEN.yaw)) < 0.1 and speed(sim.odom[-1]) < STOPPED_SPEED)

    succeeded = wait_for_log(sim, r"navigation goal (goal_pose-\d+) succeeded after ([0-9.]+) s of sim time")
    sim.wait_for(arrived, WAIT_S, "odometry at the kitchen place")
    assert float(succeeded.group(2)) < 60.0
    assert f"navigation goal {succeeded.group(1)} accepted from goal_pose: (3.00, 2.10" in sim.process.output()


def test_goal_pose_rejections_are_logged(sim):
    sim.goal_pub.publish(pose_msg(KITCHEN.x, KITCHEN.y, KITCHEN.yaw, frame_id="base_link"))
    sim.process.wait_for_output("goal frame_id is 'base_link'", WAIT_S)
    wall_s = time.time()
    sim.goal_pub.publish(pose_msg(KITCHEN.x, KITCHEN.y, KITCHEN.yaw, stamp_s=wall_s))
    sim.process.wait_for_output(f"goal stamp {wall_s:.3f} s differs from the simulation time", WAIT_S)
    assert "use_sim_time" in sim.process.output()


def test_wall_stamped_action_goal_is_rejected(sim):
    before = sim_now(sim)
    wall_s = time.time()
    status, result = Goal(sim, *KITCHEN_OPEN_SPOT, stamp_s=wall_s).result()
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == NavigateToPose.Result.TF_ERROR
    assert f"goal stamp {wall_s:.3f} s" in result.error_msg
    now_s = float(re.search(r"simulation time ([0-9.]+) s", result.error_msg).group(1))
    assert before <= now_s
    # A wall-clock time (about 1.8e9 s) would never be reached by the simulation.
    sim.wait_for(lambda: sim_now(sim) >= now_s, WAIT_S, f"odometry at the reported sim time {now_s} s")
    assert "stamp goals with the node clock under use_sim_time" in result.error_msg


def test_goal_behind_closed_door_aborts(sim):
    before = sim_now(sim)
    status, result = Goal(sim, BEDROOM.x, BEDROOM.y, BEDROOM.yaw).result()
    assert status == GoalStatus.STATUS_ABORTED
    assert "bedroom_door" in result.error_msg
    assert "no path" in result.error_msg
    assert sim_now(sim) - before < 10.0


def test_action_goal_reports_feedback_and_succeeds(sim):
    goal = Goal(sim, *KITCHEN_OPEN_SPOT)
    status, result = goal.result()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.error_msg
    assert result.error_code == 0

    assert len(goal.feedback) >= 3
    feedback = [f.feedback for f in goal.feedback]
    assert all(f.current_pose.header.frame_id == "map" for f in feedback)
    assert all(f.number_of_recoveries == 0 for f in feedback)
    distances = [f.distance_remaining for f in feedback]
    assert distances[0] > 1.0
    assert distances[-1] < distances[0]
    times = [stamp_to_s(f.navigation_time) for f in feedback]
    assert times == sorted(times)
    assert times[-1] > times[0]
    assert feedback[0].estimated_time_remaining.sec + feedback[0].estimated_time_remaining.nanosec > 0

    x, y, _ = odom_pose(sim.odom[-1])
    assert math.hypot(x - KITCHEN_OPEN_SPOT[0], y - KITCHEN_OPEN_SPOT[1]) < ARRIVAL_TOLERANCE_M


def test_new_goal_preempts_and_cancel_stops(sim):
    drive_to(sim, *KITCHEN_OPEN_SPOT)
    first = Goal(sim, KITCHEN.x, KITCHEN.y, KITCHEN.yaw)
    first.wait_feedback()
    second = Goal(sim, 2.0, 2.0, 0.0)
    status, result = first.result()
    assert status == GoalStatus.STATUS_ABORTED
    assert "preempted by navigation goal" in result.error_msg

    second.wait_feedback(2)
    sim.wait_for(lambda: speed(sim.odom[-1]) > 0.05, WAIT_S, "the robot to move toward the second goal")
    cancel = second.handle.cancel_goal_async()
    sim.wait_for(cancel.done, WAIT_S, "the cancel response")
    assert len(cancel.result().goals_canceling) == 1
    status, _ = second.result()
    assert status == GoalStatus.STATUS_CANCELED
    sim.wait_for(lambda: speed(sim.odom[-1]) < STOPPED_SPEED, WAIT_S, "the robot to stop after the cancel")
    x, y, _ = odom_pose(sim.odom[-1])
    assert math.hypot(x - 2.0, y - 2.0) > ARRIVAL_TOLERANCE_M          # it stopped short of the goal


def test_e_stop_halts_base_and_cancels_goal(sim):
    drive_to(sim, *KITCHEN_OPEN_SPOT)
    goal = Goal(sim, KITCHEN.x, KITCHEN.y, KITCHEN.yaw)
    sim.wait_for(lambda: speed(sim.odom[-1]) > 0.2, WAIT_S, "the robot to drive toward the kitchen place")
    sim.e_stop_pub.publish(Bool(data=True))
    try:
        status, result = goal.result()
        assert status == GoalStatus.STATUS_ABORTED
        assert result.error_msg == "emergency stop"

        engaged = re.search(r"emergency stop engaged at sim time ([0-9.]+) s \(message received at sim time "
                            r"([0-9.]+) s\)", sim.process.output())
        received_s = float(engaged.group(2))
        assert float(engaged.group(1)) >= received_s
        wait_sim_time(sim, 0.5)
        assert any(speed(m) > 0.2 for m in odom_between(sim, received_s - 0.2, received_s))
        halted = odom_between(sim, received_s + 0.1)
        assert halted
        assert max(speed(m) for m in halted) < HALTED_SPEED
        assert max(speed(m) for m in odom_between(sim, received_s + 0.3)) < STOPPED_SPEED

        status, result = Goal(sim, KITCHEN.x, KITCHEN.y, KITCHEN.yaw).result()
        assert status == GoalStatus.STATUS_ABORTED
        assert "emergency stop engaged" in result.error_msg
        manipulate(sim, "pick-during-e-stop", "pick", "apple")
        assert "emergency stop" in wait_final_status(sim, "pick-during-e-stop").reason
        assert wait_final_status(sim, "pick-during-e-stop").state == AgentStatus.FAILED
    finally:
        sim.e_stop_pub.publish(Bool(data=False))
    sim.process.wait_for_output("emergency stop released", WAIT_S)
    drive_to(sim, KITCHEN.x, KITCHEN.y, KITCHEN.yaw)


# --- manipulation --------------------------------------------------------------------------------


def test_pick_and_hand_over_apple(sim):
    drive_to(sim, KITCHEN.x, KITCHEN.y, KITCHEN.yaw)
    assert math.dist(object_positions(sim)["apple"][:2], WORLD.objects["apple"].xy) < 0.05

    manipulate(sim, "pick-apple", "pick", "apple")
    picked = wait_final_status(sim, "pick-apple")
    assert picked.state == AgentStatus.DONE, picked.reason
    assert picked.step == "pick"
    executing = [s for s in statuses_of(sim, "pick-apple") if s.state == AgentStatus.EXECUTING]
    assert executing and executing[0].reason == "pick up the apple"
    assert stamp_to_s(picked.header.stamp) - stamp_to_s(executing[0].header.stamp) < 60.0
    assert object_positions(sim)["apple"][2] > WORLD.furniture["kitchen_table"].top_z + 0.05   # lifted

    x, y, yaw = odom_pose(sim.odom[-1])
    forward, left, up = ROBOT.hand_over_offset
    hand_over_point = (x + forward * math.cos(yaw) - left * math.sin(yaw),
                       y + forward * math.sin(yaw) + left * math.cos(yaw), up)
    manipulate(sim, "hand-apple", "hand_over")
    handed = wait_final_status(sim, "hand-apple")
    assert handed.state == AgentStatus.DONE, handed.reason
    assert handed.step == "hand_over"
    wait_sim_time(sim, 1.0)
    apple = object_positions(sim)["apple"]
    assert math.dist(apple, hand_over_point) < 0.1


def test_e_stop_cancels_manipulation(sim):
    drive_to(sim, KITCHEN.x, KITCHEN.y, KITCHEN.yaw)
    manipulate(sim, "pick-banana", "pick", "banana")
    sim.wait_for(lambda: any(s.reason == "lining up the base" for s in statuses_of(sim, "pick-banana")), WAIT_S,
                 f"the pick to line up the base; statuses so far: "
                 f"{[(s.state, s.reason) for s in statuses_of(sim, 'pick-banana')]}")
    sim.e_stop_pub.publish(Bool(data=True))
    try:
        status = wait_final_status(sim, "pick-banana")
        assert status.state == AgentStatus.FAILED
        assert status.reason == "emergency stop"
        wait_sim_time(sim, 0.3)
        assert speed(sim.odom[-1]) < STOPPED_SPEED
    finally:
        sim.e_stop_pub.publish(Bool(data=False))
    sim.process.wait_for_output("emergency stop released", WAIT_S)


def test_newest_goal_wins(sim):
    drive_to(sim, KITCHEN.x, KITCHEN.y, KITCHEN.yaw)
    manipulate(sim, "pick-cup", "pick", "cup")
    sim.wait_for(lambda: any(s.reason == "lining up the base" for s in statuses_of(sim, "pick-cup")), WAIT_S,
                 "the pick to line up the base")
    goal = Goal(sim, *KITCHEN_OPEN_SPOT)
    goal_id = bytes(goal.handle.goal_id.uuid).hex()[:8]
    cancelled = wait_final_status(sim, "pick-cup")
    assert cancelled.state == AgentStatus.FAILED
    assert cancelled.reason == f"cancelled by navigation goal {goal_id}"

    goal.wait_feedback()
    manipulate(sim, "pick-while-driving", "pick", "orange")
    status, result = goal.result()
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_msg == "preempted by manipulation goal pick-while-driving"
    assert "the orange is not visible" in wait_final_status(sim, "pick-while-driving").reason


def test_manipulation_failures_have_reasons(sim):
    manipulate(sim, "pick-orange", "pick", "orange")           # the orange is in the living room
    status = wait_final_status(sim, "pick-orange")
    assert status.state == AgentStatus.FAILED
    assert "the orange is not visible" in status.reason

    manipulate(sim, "juggle", "juggle", "apple")
    status = wait_final_status(sim, "juggle")
    assert status.state == AgentStatus.FAILED
    assert "unknown manipulation action 'juggle'" in status.reason

    manipulate(sim, "hand-nothing", "hand_over")
    status = wait_final_status(sim, "hand-nothing")
    assert status.state == AgentStatus.FAILED
    assert "nothing to hand over" in status.reason


# --- start and stop ------------------------------------------------------------------------------


@pytest.mark.parametrize("params, expected", [
    ({"closed_doors": ["garage_door"]}, "unknown door 'garage_door'"),
    ({"navigate_action_type": "no_such_package/action/NavigateToPose"}, "cannot be loaded"),
    ({"camera_width": 4}, "camera_width must be an int of at least 16 pixels"),
])
def test_invalid_parameters_fail_at_start(params, expected):
    node = NodeProcess("sim_node", params)
    try:
        node.wait_for_output(expected, WAIT_S)
        assert node.process.wait(timeout=WAIT_S) != 0
    finally:
        node.stop()
    assert "sim_node ready" not in node.output()


def test_optional_images_when_enabled(monkeypatch):
    # A domain of its own (101..200; the test session's is 1..100), apart from the module's sim_node.
    monkeypatch.setenv("ROS_DOMAIN_ID", str(int(os.environ["ROS_DOMAIN_ID"]) + 100))
    harness = RosHarness("sim_images_test")
    node = NodeProcess("sim_node", {"publish_depth": True, "top_view_rate_hz": 2.0,
                                    "real_time_factor": REAL_TIME_FACTOR})
    try:
        depths = harness.collect(Image, "camera/depth", SENSOR_QOS)
        top_views = harness.collect(Image, "sim/top_view", SENSOR_QOS)
        node.wait_for_output("sim_node ready", WAIT_S)
        harness.wait_for(lambda: depths and top_views, WAIT_S, "a depth image and a top view")
    finally:
        node.stop()
        harness.close()

    depth = depths[-1]
    assert (depth.width, depth.height, depth.encoding) == (320, 240, "32FC1")
    assert depth.header.frame_id == "camera_optical"
    metres = np.frombuffer(bytes(depth.data), dtype=np.float32).reshape(240, 320)
    assert np.all(np.isfinite(metres))
    # The camera is 1.25 m up, pitched down: the floor and walls of the living room are 1 to 7 m away.
    assert 1.0 < float(np.median(metres)) < 7.0

    top = top_views[-1]
    assert (top.width, top.height, top.encoding) == (640, 480, "bgr8")
    assert top.header.frame_id == "map"
    assert np.frombuffer(bytes(top.data), dtype=np.uint8).std() > 10.0


def test_sigint_stops_node_cleanly(sim):
    assert sim.process.alive()
    assert sim.process.stop() == 0
    assert "[ERROR]" not in sim.process.output()
