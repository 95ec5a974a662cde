"""planner_node with NavigateToPose goals: a real planner process against a
test action server over DDS.

The server uses omni_agent_test_msgs/action/NavigateToPose, which has the
fields of nav2_msgs/action/NavigateToPose (nav2_msgs is not installed here).
It sends feedback, then waits until the test has seen the planner report
that feedback before it ends the goal, so the order of events is fixed.
"""
import math
import os
import threading
import time

import pytest
import rclpy
import yaml
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from omni_agent.msg import AgentStatus, ModelResult
from omni_agent.nodes.common import COMMAND_QOS
from omni_agent.nodes.navigate_action import load_action_type
from ros_harness import REPO, NodeProcess, RosHarness

try:
    from omni_agent_test_msgs.action import NavigateToPose
except ImportError:  # checked in the fixture, with the fix
    NavigateToPose = None

pytestmark = pytest.mark.ros

ACTION_TYPE = "omni_agent_test_msgs/action/NavigateToPose"
WAIT_S = 60.0
KITCHEN = yaml.safe_load((REPO / "config" / "places.yaml").read_text())["places"]["kitchen"]["pose"]
ABORT_MESSAGE = "no valid path to the goal"


class TestNavigator:
    """A NavigateToPose action server in its own context and executor.

    `mode` decides what happens to the next goal: 'succeed', 'abort',
    'reject', or 'hold' (run until cancelled).
    """

    __test__ = False  # not a pytest test class

    def __init__(self):
        self.mode = "succeed"
        self.goals = []
        self.cancel_requested = threading.Event()
        self.release = threading.Event()
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.node = Node("test_navigator", context=self.context)
        self.server = ActionServer(
            self.node, NavigateToPose, "navigate_to_pose", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            callback_group=ReentrantCallbackGroup())
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # the context shut down while spinning
            pass

    def reset(self, mode):
        self.mode = mode
        self.cancel_requested.clear()
        self.release.clear()

    def _on_goal(self, request):
        self.goals.append(request)
        return GoalResponse.REJECT if self.mode == "reject" else GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle):
        self.cancel_requested.set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle):
        mode = self.mode
        for distance in (2.0, 1.0):
            feedback = NavigateToPose.Feedback()
            feedback.current_pose = goal_handle.request.pose
            feedback.distance_remaining = distance
            feedback.navigation_time.sec = 3
            feedback.number_of_recoveries = 1
            goal_handle.publish_feedback(feedback)
        result = NavigateToPose.Result()
        # The cancel callback runs before the goal is marked as cancelling, so
        # this polls the goal itself. 'hold' ignores the release.
        event = self.cancel_requested if mode == "hold" else self.release
        deadline = time.monotonic() + WAIT_S
        while not goal_handle.is_cancel_requested and time.monotonic() < deadline:
            if event.wait(0.02) and mode != "hold":
                break
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif mode == "succeed":
            goal_handle.succeed()
        else:
            result.error_code = NavigateToPose.Result.UNKNOWN
            result.error_msg = ABORT_MESSAGE
            goal_handle.abort()
        return result

    def close(self):
        self.release.set()
        self.cancel_requested.set()
        self.executor.shutdown(timeout_sec=2.0)
        self.server.destroy()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)


@pytest.fixture(scope="module")
def setup():
    if NavigateToPose is None:
        pytest.fail("omni_agent_test_msgs is not built; run scripts/build.sh, which builds "
                    "test/interfaces/omni_agent_test_msgs")
    navigator = TestNavigator()
    harness = RosHarness("navigate_action_test")
    planner = NodeProcess("planner_node", {
        "navigation_interface": "auto",
        "navigate_action_type": ACTION_TYPE,
        "navigate_server_timeout_s": WAIT_S,
        "navigate_feedback_interval_s": 0.0,
    })
    try:
        harness.statuses = harness.collect(AgentStatus, "agent_status", COMMAND_QOS)
        harness.result_pub = harness.node.create_publisher(ModelResult, "model_result", COMMAND_QOS)
        planner.wait_for_output("planner ready", WAIT_S)
        harness.wait_for_subscribers(harness.result_pub)
        harness.wait_for_publishers("agent_status")
        harness.navigator, harness.planner = navigator, planner
        yield harness
    finally:
        planner.stop()
        harness.close()
        navigator.close()


def send_command(setup, utterance_id, action, place=""):
    msg = ModelResult()
    msg.utterance_id = utterance_id
    msg.action = action
    msg.place = place
    msg.confidence = 0.9
    msg.transcript = f"{action} {place}".strip()
    msg.source = "test"
    setup.result_pub.publish(msg)


def statuses_of(setup, utterance_id):
    return [s for s in setup.statuses if s.utterance_id == utterance_id]


def wait_status(setup, utterance_id, predicate, description):
    setup.wait_for(lambda: any(predicate(s) for s in statuses_of(setup, utterance_id)), WAIT_S,
                   f"{description} for {utterance_id}; statuses so far: "
                   f"{[(s.state, s.reason) for s in statuses_of(setup, utterance_id)]}")
    return next(s for s in statuses_of(setup, utterance_id) if predicate(s))


def is_progress(status):
    return status.state == AgentStatus.EXECUTING and "m remaining" in status.reason


def final_status(status):
    return status.state in (AgentStatus.DONE, AgentStatus.FAILED) and status.step == ""


def failed(status):
    return status.state == AgentStatus.FAILED


def test_action_type_names():
    assert load_action_type(ACTION_TYPE) is NavigateToPose
    assert load_action_type("omni_agent_test_msgs/NavigateToPose") is NavigateToPose
    with pytest.raises(ImportError, match="no action Missing"):
        load_action_type("omni_agent_test_msgs/action/Missing")
    with pytest.raises(ImportError, match="not installed"):
        load_action_type("no_such_package/action/NavigateToPose")
    with pytest.raises(ValueError, match="invalid action type"):
        load_action_type("omni_agent_test_msgs/msg/NavigateToPose")


def test_action_mode_without_type_fails_at_start():
    planner = NodeProcess("planner_node", {"navigation_interface": "action",
                                           "navigate_action_type": "no_such_package/action/NavigateToPose"})
    try:
        planner.wait_for_output("cannot be loaded", WAIT_S)
        assert planner.process.wait(timeout=WAIT_S) != 0
    finally:
        planner.stop()
    assert "set navigation_interface to 'topic'" in planner.output()


def test_goal_without_server_fails(monkeypatch):
    # A domain of its own (101..200; the test session's is 1..100), where no action server runs.
    monkeypatch.setenv("ROS_DOMAIN_ID", str(int(os.environ["ROS_DOMAIN_ID"]) + 100))
    harness = RosHarness("no_server_test")
    planner = NodeProcess("planner_node", {"navigation_interface": "action", "navigate_action_type": ACTION_TYPE,
                                           "navigate_server_timeout_s": 1.0})
    try:
        harness.statuses = harness.collect(AgentStatus, "agent_status", COMMAND_QOS)
        harness.result_pub = harness.node.create_publisher(ModelResult, "model_result", COMMAND_QOS)
        planner.wait_for_output("planner ready", WAIT_S)
        harness.wait_for_subscribers(harness.result_pub)
        harness.wait_for_publishers("agent_status")
        send_command(harness, "nav-alone", "navigate", "kitchen")
        status = wait_status(harness, "nav-alone", failed, "a failed status")
    finally:
        planner.stop()
        harness.close()
    assert "no navigate_to_pose action server" in status.reason
    assert "waiting up to 1 s" in planner.output()


def test_auto_picks_action_when_type_loads(setup):
    assert f"navigate_to_pose action ({ACTION_TYPE})" in setup.planner.output()


def test_succeeded_goal_finishes_command(setup):
    setup.navigator.reset("succeed")
    goals_before = len(setup.navigator.goals)
    send_command(setup, "nav-ok", "navigate", "kitchen")

    progress = wait_status(setup, "nav-ok", is_progress, "a progress status from feedback")
    assert "2.00 m remaining" in progress.reason
    goal = setup.navigator.goals[goals_before]
    assert goal.pose.header.frame_id == "map"
    assert goal.pose.pose.position.x == pytest.approx(KITCHEN["x"])
    assert goal.pose.pose.position.y == pytest.approx(KITCHEN["y"])
    yaw = 2 * math.atan2(goal.pose.pose.orientation.z, goal.pose.pose.orientation.w)
    assert yaw == pytest.approx(KITCHEN["yaw"], abs=1e-3)

    setup.navigator.release.set()
    final = wait_status(setup, "nav-ok", final_status, "the final status")
    assert final.state == AgentStatus.DONE
    assert final.reason == "all steps done"
    step_done = [s for s in statuses_of(setup, "nav-ok") if s.state == AgentStatus.DONE and s.step == "navigate"]
    assert step_done and "succeeded" in step_done[0].reason


def test_aborted_goal_fails_with_server_message(setup):
    setup.navigator.reset("abort")
    send_command(setup, "nav-abort", "navigate", "kitchen")
    wait_status(setup, "nav-abort", is_progress, "a progress status from feedback")

    setup.navigator.release.set()
    status = wait_status(setup, "nav-abort", failed, "a failed status")
    assert ABORT_MESSAGE in status.reason
    assert "aborted" in status.reason
    assert str(NavigateToPose.Result.UNKNOWN) in status.reason
    assert not any(s.state == AgentStatus.DONE for s in statuses_of(setup, "nav-abort"))


def test_rejected_goal_fails_with_reason(setup):
    setup.navigator.reset("reject")
    send_command(setup, "nav-reject", "navigate", "kitchen")
    status = wait_status(setup, "nav-reject", failed, "a failed status")
    assert "rejected" in status.reason


def test_stop_cancels_active_goal(setup):
    setup.navigator.reset("hold")
    send_command(setup, "nav-hold", "navigate", "kitchen")
    wait_status(setup, "nav-hold", is_progress, "a progress status from feedback")
    assert not setup.navigator.cancel_requested.is_set()

    send_command(setup, "stop-1", "stop")
    setup.wait_for(setup.navigator.cancel_requested.is_set, WAIT_S, "a cancel request at the action server")
    status = wait_status(setup, "nav-hold", failed, "a failed status")
    assert "stop-1" in status.reason
    stopped = wait_status(setup, "stop-1", lambda s: s.state == AgentStatus.DONE, "the stop command's status")
    assert stopped.reason == "stopped"


def test_new_command_preempts_and_cancels_goal(setup):
    setup.navigator.reset("hold")
    send_command(setup, "nav-first", "navigate", "kitchen")
    wait_status(setup, "nav-first", is_progress, "a progress status from feedback")

    goals_before = len(setup.navigator.goals)
    setup.navigator.mode = "succeed"
    send_command(setup, "nav-second", "navigate", "bedroom")
    setup.wait_for(setup.navigator.cancel_requested.is_set, WAIT_S, "a cancel request for the first goal")
    status = wait_status(setup, "nav-first", failed, "the preempted status")
    assert "nav-second" in status.reason

    setup.wait_for(lambda: len(setup.navigator.goals) > goals_before, WAIT_S, "the second goal")
    wait_status(setup, "nav-second", is_progress, "progress of the second goal")
    setup.navigator.release.set()
    final = wait_status(setup, "nav-second", final_status, "the final status of the second goal")
    assert final.state == AgentStatus.DONE
