"""planner_node: model results -> Nav2 goal_pose, manipulation goals and status.

Relative motions are computed from the robot pose on the odometry topic.
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
from omni_agent.planning.planner import (
    STATE_NAMES, STEP_NAVIGATE, Event, Planner, PlannerConfig, TaskTracker, TrackerConfig,
)


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
        self.create_timer(0.2, self._on_timer, callback_group=group)
        self.get_logger().info(
            f"planner ready: {len(self.vocabulary.places)} places ({', '.join(self.vocabulary.place_names())}), "
            f"{len(self.vocabulary.objects)} objects; goals in frame {self.map_frame}")

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_result(self, msg: ModelResult) -> None:
        result = result_from_msg(msg)
        if not result.utterance_id:
            result.utterance_id = f"anonymous-{self.get_clock().now().nanoseconds}"
        if not self.have_odometry and result.action == "move":
            self.get_logger().warning(
                f"[{result.utterance_id}] no odometry received on 'odom' yet; the relative move starts from the "
                f"last known pose ({self.robot_pose.x:.2f}, {self.robot_pose.y:.2f}, yaw {self.robot_pose.yaw:.2f})")
        decision = self.planner.plan(result, self.robot_pose)
        self._emit(self.tracker.start(decision, self._now_s()))

    def _on_odom(self, msg: Odometry) -> None:
        # NOTE: map -> odom is assumed to be identity; see the module docstring.
        self.robot_pose = pose_from_msg(msg.pose.pose, self.map_frame)
        self.have_odometry = True
        self._emit(self.tracker.on_pose(self.robot_pose, self._now_s()))

    def _on_manipulation_status(self, msg: AgentStatus) -> None:
        if msg.state in (AgentStatus.DONE, AgentStatus.FAILED, AgentStatus.REJECTED):
            self._emit(self.tracker.on_manipulation_report(
                msg.utterance_id, msg.state == AgentStatus.DONE, msg.reason, self._now_s()))

    def _on_timer(self) -> None:
        self._emit(self.tracker.tick(self._now_s()))

    def _emit(self, events: List[Event]) -> None:
        stamp = self.get_clock().now().to_msg()
        for event in events:
            if event.kind == "goal":
                goal = event.step.goal
                self.goal_pub.publish(pose_to_msg(goal, stamp))
                self.get_logger().info(
                    f"[{event.utterance_id}] goal_pose ({goal.x:.2f}, {goal.y:.2f}, yaw {goal.yaw:.2f}) "
                    f"in {goal.frame_id}: {event.step.description}")
            elif event.kind == "manipulation":
                self._publish_manipulation(event, stamp)
            elif event.kind == "halt":
                self.cmd_vel_pub.publish(Twist())
                if self.tracker.current is not None and self.tracker.current.kind == STEP_NAVIGATE:
                    self.goal_pub.publish(pose_to_msg(self.robot_pose, stamp))
                self.get_logger().info(f"[{event.utterance_id}] halting: zero velocity sent on cmd_vel")
            else:
                self._publish_status(event, stamp)

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
