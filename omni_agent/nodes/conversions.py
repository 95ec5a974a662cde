"""Conversions between omni_agent's core types and ROS messages."""
from __future__ import annotations

from geometry_msgs.msg import PoseStamped

from omni_agent.model.result import CommandResult, Pose2D
from omni_agent.msg import ModelResult
from omni_agent.planning.geometry import quaternion_to_yaw, yaw_to_quaternion


def pose_to_msg(pose: Pose2D, stamp) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = pose.frame_id
    msg.pose.position.x = float(pose.x)
    msg.pose.position.y = float(pose.y)
    qx, qy, qz, qw = yaw_to_quaternion(pose.yaw)
    msg.pose.orientation.x, msg.pose.orientation.y = qx, qy
    msg.pose.orientation.z, msg.pose.orientation.w = qz, qw
    return msg


def pose_from_msg(pose, frame_id: str) -> Pose2D:
    """Pose2D from a geometry_msgs/Pose in frame_id."""
    q = pose.orientation
    return Pose2D(pose.position.x, pose.position.y, quaternion_to_yaw(q.x, q.y, q.z, q.w), frame_id)


def result_to_msg(result: CommandResult, stamp) -> ModelResult:
    msg = ModelResult()
    msg.header.stamp = stamp
    msg.utterance_id = result.utterance_id
    msg.action = result.action
    msg.object_label = result.object_label
    msg.place = result.place
    msg.forward_m = float(result.forward_m)
    msg.left_m = float(result.left_m)
    msg.turn_rad = float(result.turn_rad)
    msg.has_target_pose = result.target_pose is not None
    if result.target_pose is not None:
        msg.target_pose = pose_to_msg(result.target_pose, stamp)
    msg.confidence = float(result.confidence)
    msg.transcript = result.transcript
    msg.language = result.language
    msg.source = result.source
    msg.detail = result.detail
    msg.has_object_box = result.object_box is not None
    if result.object_box is not None:
        msg.object_box = [float(v) for v in result.object_box]
    return msg


def result_from_msg(msg: ModelResult) -> CommandResult:
    target = None
    if msg.has_target_pose:
        target = pose_from_msg(msg.target_pose.pose, msg.target_pose.header.frame_id or "map")
    return CommandResult(
        action=msg.action, object_label=msg.object_label, place=msg.place,
        forward_m=msg.forward_m, left_m=msg.left_m, turn_rad=msg.turn_rad, target_pose=target,
        confidence=msg.confidence, transcript=msg.transcript, language=msg.language,
        source=msg.source, utterance_id=msg.utterance_id, detail=msg.detail,
        object_box=tuple(float(v) for v in msg.object_box) if msg.has_object_box else None)
