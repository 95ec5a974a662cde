"""Nav2 NavigateToPose goals for planner_node, through an rclpy ActionClient.

The action type is loaded by name (`nav2_msgs/action/NavigateToPose` by
default), so that omni_agent runs where nav2_msgs is not installed and tests
can use a type with the same fields. Any type with goal `pose` and
`behavior_tree`, feedback `distance_remaining`, `navigation_time` and
`number_of_recoveries` works. Nav2 releases that have `error_code` and
`error_msg` in the result get them into the failure reason.

The feedback callback and the futures' done-callbacks run inside the
action client's callback group, which planner_node shares with the task
tracker, so they never run at the same time as the tracker's other
callbacks. No callback waits on a future, so a second goal cannot hang
behind the first.
"""
from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient

from omni_agent.planning.planner import Step

ACTION_NAME = "navigate_to_pose"
DEFAULT_ACTION_TYPE = "nav2_msgs/action/NavigateToPose"

#: Called with (step, succeeded, reason) when a goal ends, unless this client cancelled it.
ReportCallback = Callable[[Step, bool, str], None]
#: Called with (step, text) for feedback, at most once per feedback interval (wall-clock time) of a goal.
ProgressCallback = Callable[[Step, str], None]


def load_action_type(type_name: str) -> Any:
    """Import an action type given as 'package/action/Name' (or 'package/Name').

    Raises ValueError for a malformed name and ImportError when the package
    or the action is not installed.
    """
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "action", parts[1]]
    if len(parts) != 3 or parts[1] != "action" or not all(parts):
        raise ValueError(f"invalid action type {type_name!r}; expected 'package/action/Name', "
                         f"for example {DEFAULT_ACTION_TYPE!r}")
    package, _, name = parts
    try:
        module = importlib.import_module(f"{package}.action")
    except ImportError as error:
        raise ImportError(f"action package {package} is not installed ({error})") from error
    action_type = getattr(module, name, None)
    if action_type is None:
        raise ImportError(f"{package} has no action {name}")
    return action_type


def _duration_s(duration) -> float:
    return duration.sec + duration.nanosec * 1e-9


@dataclass
class NavigationGoal:
    """One goal sent for one navigation step, and what the server reported about it."""

    step: Step
    utterance_id: str
    pose: Any                              # geometry_msgs/PoseStamped
    created_monotonic_s: float
    goal_handle: Any = None
    cancel_reason: str = ""                # set when this client cancels it, so its result is ignored
    feedback: Any = None
    last_progress_monotonic_s: Optional[float] = None
    sent: bool = False


class NavigateActionClient:
    """Send one NavigateToPose goal at a time and report how it ends."""

    def __init__(self, node, action_type, callback_group, on_report: ReportCallback, on_progress: ProgressCallback,
                 server_timeout_s: float, feedback_interval_s: float):
        self._logger = node.get_logger()
        self._action_type = action_type
        self._client = ActionClient(node, action_type, ACTION_NAME, callback_group=callback_group)
        self._on_report = on_report
        self._on_progress = on_progress
        self._server_timeout_s = server_timeout_s
        self._feedback_interval_s = feedback_interval_s
        self._goal: Optional[NavigationGoal] = None

    def send(self, step: Step, utterance_id: str, pose) -> None:
        """Send a goal for `step`, cancelling the goal of an earlier step first."""
        if self._goal is not None:
            self.cancel(f"replaced by a new goal for {utterance_id}")
        self._goal = NavigationGoal(step, utterance_id, pose, time.monotonic())
        if self._client.server_is_ready():
            self._dispatch(self._goal)
        else:
            self._logger.info(f"[{utterance_id}] waiting up to {self._server_timeout_s:g} s for the "
                              f"{ACTION_NAME} action server")

    def tick(self) -> None:
        """Send a goal that waits for the server, or fail it once the server wait has timed out."""
        goal = self._goal
        if goal is None or goal.sent:
            return
        if self._client.server_is_ready():
            self._dispatch(goal)
        elif time.monotonic() - goal.created_monotonic_s > self._server_timeout_s:
            self._goal = None
            self._on_report(goal.step, False,
                            f"no {ACTION_NAME} action server ({self._type_name()}) became available within "
                            f"{self._server_timeout_s:g} s; start Nav2 or set navigation_interface to 'topic'")

    def cancel(self, reason: str) -> None:
        """Cancel the current goal, if any; its result will not be reported."""
        goal = self._goal
        if goal is None:
            return
        self._goal = None
        goal.cancel_reason = reason
        if goal.goal_handle is not None:
            self._logger.info(f"[{goal.utterance_id}] cancelling the {ACTION_NAME} goal: {reason}")
            goal.goal_handle.cancel_goal_async().add_done_callback(
                lambda future: self._on_cancel_response(goal, future))
        elif goal.sent:
            self._logger.info(f"[{goal.utterance_id}] the {ACTION_NAME} goal will be cancelled once the server "
                              f"accepts it: {reason}")
        # A goal that was never sent needs nothing more.

    def cancel_if_stale(self, current: Optional[Step]) -> None:
        """Cancel the goal when its step is no longer the tracker's current step (failed, timed out, preempted)."""
        if self._goal is not None and self._goal.step is not current:
            self.cancel("its task has ended")

    def _type_name(self) -> str:
        return f"{self._action_type.__module__.split('.')[0]}/action/{self._action_type.__name__}"

    def _dispatch(self, goal: NavigationGoal) -> None:
        message = self._action_type.Goal()
        message.pose = goal.pose
        goal.sent = True
        future = self._client.send_goal_async(message, feedback_callback=lambda msg: self._on_feedback(goal, msg))
        future.add_done_callback(lambda done: self._on_goal_response(goal, done))
        position = goal.pose.pose.position
        self._logger.info(f"[{goal.utterance_id}] {ACTION_NAME} goal sent: ({position.x:.2f}, {position.y:.2f}) "
                          f"in {goal.pose.header.frame_id}")

    def _on_goal_response(self, goal: NavigationGoal, future) -> None:
        error = future.exception()
        if error is not None:
            self._finish(goal, False, f"sending the {ACTION_NAME} goal failed: {error}")
            return
        handle = future.result()
        if not handle.accepted:
            self._finish(goal, False, f"the {ACTION_NAME} server rejected the goal")
            return
        goal.goal_handle = handle
        if goal.cancel_reason:
            self._logger.info(f"[{goal.utterance_id}] cancelling the {ACTION_NAME} goal: {goal.cancel_reason}")
            handle.cancel_goal_async().add_done_callback(lambda done: self._on_cancel_response(goal, done))
        else:
            self._logger.info(f"[{goal.utterance_id}] {ACTION_NAME} goal accepted")
        handle.get_result_async().add_done_callback(lambda done: self._on_result(goal, done))

    def _on_feedback(self, goal: NavigationGoal, message) -> None:
        if goal is not self._goal:
            return
        feedback = message.feedback
        goal.feedback = feedback
        now = time.monotonic()
        last = goal.last_progress_monotonic_s
        if last is not None and now - last < self._feedback_interval_s:
            return
        goal.last_progress_monotonic_s = now
        recoveries = feedback.number_of_recoveries
        text = (f"navigating: {feedback.distance_remaining:.2f} m remaining, "
                f"{_duration_s(feedback.navigation_time):.1f} s elapsed, "
                f"{recoveries} {'recovery' if recoveries == 1 else 'recoveries'}")
        self._on_progress(goal.step, text)

    def _on_result(self, goal: NavigationGoal, future) -> None:
        error = future.exception()
        if error is not None:
            self._finish(goal, False, f"getting the {ACTION_NAME} result failed: {error}")
            return
        response = future.result()
        status, result = response.status, response.result
        if goal.cancel_reason:
            self._logger.info(f"[{goal.utterance_id}] the cancelled {ACTION_NAME} goal ended: "
                              f"{_status_name(status)}")
            return
        if status == GoalStatus.STATUS_SUCCEEDED:
            self._finish(goal, True, f"{ACTION_NAME} succeeded")
            return
        code = getattr(result, "error_code", 0)
        message = getattr(result, "error_msg", "")
        detail = f"{ACTION_NAME} {_status_name(status)}"
        if code:
            detail += f" with error code {code}"
        if message:
            detail += f": {message}"
        if goal.feedback is not None:
            detail += f" ({goal.feedback.distance_remaining:.2f} m from the goal)"
        self._finish(goal, False, detail)

    def _on_cancel_response(self, goal: NavigationGoal, future) -> None:
        error = future.exception()
        if error is not None:
            self._logger.warning(f"[{goal.utterance_id}] cancelling the {ACTION_NAME} goal failed: {error}")
            return
        if not future.result().goals_canceling:
            self._logger.warning(f"[{goal.utterance_id}] the {ACTION_NAME} server did not accept the cancel "
                                 f"request; the goal may already have ended")

    def _finish(self, goal: NavigationGoal, succeeded: bool, reason: str) -> None:
        """Report the end of `goal` if it is still the current one."""
        if goal is not self._goal:
            return
        self._goal = None
        self._on_report(goal.step, succeeded, reason)


def _status_name(status: int) -> str:
    names = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_ABORTED: "aborted",
             GoalStatus.STATUS_CANCELED: "cancelled"}
    return names.get(status, f"ended with goal status {status}")
