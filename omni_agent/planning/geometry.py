"""Planar pose arithmetic (REP-103: x forward, y left, yaw counter-clockwise)."""
from __future__ import annotations

import math
from typing import Tuple

from omni_agent.model.result import Pose2D


def normalize_angle(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def compose(pose: Pose2D, forward_m: float, left_m: float, turn_rad: float) -> Pose2D:
    """Return the pose reached by moving (forward, left) in pose's body frame, then turning."""
    cos_yaw, sin_yaw = math.cos(pose.yaw), math.sin(pose.yaw)
    return Pose2D(
        x=pose.x + forward_m * cos_yaw - left_m * sin_yaw,
        y=pose.y + forward_m * sin_yaw + left_m * cos_yaw,
        yaw=normalize_angle(pose.yaw + turn_rad),
        frame_id=pose.frame_id,
    )


def distance(a: Pose2D, b: Pose2D) -> float:
    return math.hypot(a.x - b.x, a.y - b.y)


def yaw_to_quaternion(yaw: float) -> Tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by yaw about +z."""
    return 0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0)


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    """Yaw (rotation about +z) of a quaternion."""
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
