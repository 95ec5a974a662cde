"""planner_node: model results -> Nav2 goal_pose, manipulation goals and status.

Relative motions are computed from the robot pose on the odometry topic.

Navigation goals go to Nav2 one of two ways (parameter navigation_interface).
"topic" publishes them on goal_pose, and a step counts as reached when the
odometry pose is within the goal tolerance. "action" sends NavigateToPose
goals on navigate_to_pose, and the action result ends the step. Its feedback
is reported as progress, and the goal is cancelled on stop, preemption and
timeout. In "action" mode nothing is published on goal_pose, because
bt_navigator also subscribes to goal_pose and would preempt the action goal.
"auto" uses the action when navigate_action_type can be imported.

NOTE: map -> odom is taken as identity (no tf2_ros in this environment);
on a robot whose localisation moves odom in map, the relative goal is off by
that transform.
"""
from __future__ import annotations

import threading
from typing import List

from geometry_msgs.msg import Twist
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node

from omni_agent.model.result import Pose2D
from omni_agent.model.vocabulary import load_vocabulary
from omni_agent.msg import AgentStatus, ManipulationGoal, ModelResult
from omni_agent.nodes.common import COMMAND_QOS, SENSOR_QOS, declare, run_node
from omni_agent.nodes.conversions import pose_from_msg, pose_to_msg, result_from_msg
from omni_agent.nodes.navigate_action import DEFAULT_ACTION_TYPE, NavigateActionClient, load_action_type
from omni_agent.planning.planner import (
    EXECUTING, STATE_NAMES, STEP_NAVIGATE, Event, Planner, PlannerConfig, Step, TaskTracker, TrackerConfig,
)

NAVIGATION_INTERFACES = ("auto", "topic", "action")


class PlannerNode(Node):
    """Plans and tracks one command at a time; publishes a status for every change."""

    def __init__(self, **kwargs):
        super().__init__("planner_node", **kwargs)
        p = lambda *a: declare(self, *a)  # noqa: E731
        places_file = p("places_file", "", "YAML file of named places; empty = the package's config/places.yaml")
        vocabulary_file = p("vocabulary_file", "", "YAML file of known objects; empty = config/vocabulary.yaml")
        self.map_frame = p("map_frame", "map", "Frame of goal_pose (REP-105 map)")
        initial = p("initial_pose", [0.0, 0.0, 0.0],
                    "Robot pose [x m, y m, yaw rad] in map used until odometry arrives")
        planner_config = PlannerConfig(
            min_confidence=p("min_confidence", 0.25, "Results below this confidence (0..1) are rejected"),
            max_motion_m=p("max_motion_m", 20.0, "Longest relative move accepted [m]"))
        tracker_config = TrackerConfig(
            goal_tolerance_m=p("goal_tolerance_m", 0.3, "Distance at which a navigation goal counts as reached [m]"),
            goal_tolerance_rad=p("goal_tolerance_rad", 0.35, "Heading error at which a goal counts as reached [rad]"),
            navigate_timeout_s=p("navigate_timeout_s", 120.0, "A navigation step fails after this long [s]"),
            manipulation_timeout_s=p("manipulation_timeout_s", 60.0, "A manipulation step fails after this long [s]"))
        navigation_interface = p(
            "navigation_interface", "auto",
            "How navigation goals reach Nav2: 'topic' publishes goal_pose, 'action' sends NavigateToPose goals "
            "on navigate_to_pose, 'auto' uses the action when navigate_action_type can be imported")
        navigate_action_type = p("navigate_action_type", DEFAULT_ACTION_TYPE,
                                 "Action type of navigate_to_pose, as 'package/action/Name'")
        navigate_server_timeout_s = p(
            "navigate_server_timeout_s", 10.0,
            "With the action: a goal fails when no navigate_to_pose server is available this long [s]")
        navigate_feedback_interval_s = p(
            "navigate_feedback_interval_s", 2.0,
            "With the action: minimum wall-clock interval between logged and published progress reports [s]")

        if len(initial) != 3:
            raise ValueError(f"initial_pose must be [x, y, yaw], got {list(initial)}")
        self.vocabulary = load_vocabulary(places_file or None, vocabulary_file or None)
        if self.vocabulary.frame_id != self.map_frame:
            self.get_logger().warning(
                f"places file uses frame {self.vocabulary.frame_id!r} but map_frame is {self.map_frame!r}")
        self.planner = Planner(self.vocabulary, planner_config)
        self.tracker = TaskTracker(tracker_config)
        self.robot_pose = Pose2D(float(initial[0]), float(initial[1]), float(initial[2]), self.map_frame)
        self.have_odometry = False
        self._lock = threading.Lock()

        group = MutuallyExclusiveCallbackGroup()  # the tracker is not thread-safe: one callback at a time
        self.create_subscription(ModelResult, "model_result", self._on_result, COMMAND_QOS, callback_group=group)
        self.create_subscription(Odometry, "odom", self._on_odom, SENSOR_QOS, callback_group=group)
        self.create_subscription(AgentStatus, "manipulation_status", self._on_manipulation_status, COMMAND_QOS,
                                 callback_group=group)
        self.goal_pub = self.create_publisher(PoseStamped, "goal_pose", COMMAND_QOS)
        self.manipulation_pub = self.create_publisher(ManipulationGoal, "manipulation_goal", COMMAND_QOS)
        self.status_pub = self.create_publisher(AgentStatus, "agent_status", COMMAND_QOS)
        self.cmd_vel_pub = self.create_publisher(Twist, "cmd_vel", COMMAND_QOS)
        self.navigator = self._create_navigator(navigation_interface, navigate_action_type, group,
                                                navigate_server_timeout_s, navigate_feedback_interval_s)
        self.create_timer(0.2, self._on_timer, callback_group=group)
        self.get_logger().info(
            f"planner ready: {len(self.vocabulary.places)} places ({', '.join(self.vocabulary.place_names())}), "
            f"{len(self.vocabulary.objects)} objects; goals in frame {self.map_frame}")

    def _create_navigator(self, interface: str, action_type_name: str, group, server_timeout_s: float,
                          feedback_interval_s: float):
        """Return a NavigateActionClient, or None when goals go on the goal_pose topic."""
        if interface not in NAVIGATION_INTERFACES:
            raise ValueError(f"navigation_interface must be one of {NAVIGATION_INTERFACES}, got {interface!r}")
        if interface == "topic":
            self.get_logger().info("navigation goals are published on goal_pose")
            return None
        try:
            action_type = load_action_type(action_type_name)
        except ImportError as error:
            if interface == "action":
                raise ValueError(f"navigation_interface is 'action' but {action_type_name} cannot be loaded: "
                                 f"{error}; install it or set navigation_interface to 'topic'") from error
            self.get_logger().info(f"{action_type_name} is not available ({error}); navigation goals are "
                                   f"published on goal_pose")
            return None
        self.get_logger().info(f"navigation goals are sent to the navigate_to_pose action ({action_type_name})")
        return NavigateActionClient(self, action_type, group, self._on_navigation_report, self._on_navigation_progress,
                                    server_timeout_s, feedback_interval_s)

    def _on_navigation_report(self, step: Step, succeeded: bool, reason: str) -> None:
        if self.tracker.current is step:
            self._emit(self.tracker.on_navigation_report(succeeded, reason, self._now_s()))

    def _on_navigation_progress(self, step: Step, text: str) -> None:
        if self.tracker.current is step:
            self._emit([Event("status", self.tracker.utterance_id, EXECUTING, step=step, reason=text)])

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_result(self, msg: ModelResult) -> None:
        result = result_from_msg(msg)
        if not result.utterance_id:
            result.utterance_id = f"anonymous-{self.get_clock().now().nanoseconds}"
        if not self.have_odometry and result.action in ("move", "bring"):
            use = "the relative move starts from" if result.action == "move" else "the object is brought back to"
            self.get_logger().warning(
                f"[{result.utterance_id}] no odometry received on 'odom' yet; {use} the last known pose "
                f"({self.robot_pose.x:.2f}, {self.robot_pose.y:.2f}, yaw {self.robot_pose.yaw:.2f})")
        decision = self.planner.plan(result, self.robot_pose)
        self._emit(self.tracker.start(decision, self._now_s()))

    def _on_odom(self, msg: Odometry) -> None:
        # NOTE: map -> odom is assumed to be identity; see the module docstring.
        self.robot_pose = pose_from_msg(msg.pose.pose, self.map_frame)
        self.have_odometry = True
        if self.navigator is None:  # with the action, its result ends a navigation step
            self._emit(self.tracker.on_pose(self.robot_pose, self._now_s()))

    def _on_manipulation_status(self, msg: AgentStatus) -> None:
        if msg.state in (AgentStatus.DONE, AgentStatus.FAILED, AgentStatus.REJECTED):
            self._emit(self.tracker.on_manipulation_report(
                msg.utterance_id, msg.state == AgentStatus.DONE, msg.reason, self._now_s()))

    def _on_timer(self) -> None:
        if self.navigator is not None:
            self.navigator.tick()
        self._emit(self.tracker.tick(self._now_s()))

    def _emit(self, events: List[Event]) -> None:
        stamp = self.get_clock().now().to_msg()
        for event in events:
            if event.kind == "goal" and self.navigator is not None:
                self.navigator.send(event.step, event.utterance_id, pose_to_msg(event.step.goal, stamp))
            elif event.kind == "goal":
                goal = event.step.goal
                self.goal_pub.publish(pose_to_msg(goal, stamp))
                self.get_logger().info(
                    f"[{event.utterance_id}] goal_pose ({goal.x:.2f}, {goal.y:.2f}, yaw {goal.yaw:.2f}) "
                    f"in {goal.frame_id}: {event.step.description}")
            elif event.kind == "manipulation":
                self._publish_manipulation(event, stamp)
            elif event.kind == "halt":
                self.cmd_vel_pub.publish(Twist())
                if self.navigator is not None:
                    self.navigator.cancel("stop requested")
                elif self.tracker.current is not None and self.tracker.current.kind == STEP_NAVIGATE:
                    self.goal_pub.publish(pose_to_msg(self.robot_pose, stamp))
                self.get_logger().info(f"[{event.utterance_id}] halting: zero velocity sent on cmd_vel")
            else:
                self._publish_status(event, stamp)
        if self.navigator is not None:
            self.navigator.cancel_if_stale(self.tracker.current)

    def _publish_manipulation(self, event: Event, stamp) -> None:
        msg = ManipulationGoal()
        msg.header.stamp = stamp
        msg.header.frame_id = self.map_frame
        msg.utterance_id = event.utterance_id
        msg.action = event.step.kind
        msg.object_label = event.step.object_label
        if event.step.place in self.vocabulary.place_poses:
            msg.has_target_pose = True
            msg.target_pose = pose_to_msg(self.vocabulary.place_poses[event.step.place], stamp)
        self.manipulation_pub.publish(msg)
        self.get_logger().info(f"[{event.utterance_id}] manipulation goal: {event.step.description}")

    def _publish_status(self, event: Event, stamp) -> None:
        msg = AgentStatus()
        msg.header.stamp = stamp
        msg.utterance_id = event.utterance_id
        msg.state = event.state
        msg.step = event.step.kind if event.step else ""
        msg.reason = event.reason
        self.status_pub.publish(msg)
        step = f" {msg.step}" if msg.step else ""
        text = f"[{event.utterance_id}] {STATE_NAMES[event.state]}{step}: {event.reason}"
        if event.state in (AgentStatus.REJECTED, AgentStatus.FAILED):
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)


def main(args=None):
    run_node(PlannerNode, args)


if __name__ == "__main__":
    main()
