"""The model's result for one utterance, as plain Python (mirrors msg/ModelResult.msg)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

ACTION_NAVIGATE = "navigate"
ACTION_MOVE = "move"
ACTION_BRING = "bring"
ACTION_PICK = "pick"
ACTION_PLACE = "place"
ACTION_STOP = "stop"
ACTION_DESCRIBE = "describe"   # "what do you see?": the description goes into detail, nothing moves
ACTION_UNKNOWN = "unknown"
ACTIONS = (ACTION_NAVIGATE, ACTION_MOVE, ACTION_BRING, ACTION_PICK, ACTION_PLACE, ACTION_STOP, ACTION_DESCRIBE,
           ACTION_UNKNOWN)


@dataclass
class Pose2D:
    """A planar pose: x, y in metres, yaw in radians (counter-clockwise), in `frame_id`."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    frame_id: str = "map"


@dataclass
class CommandResult:
    """The understanding of one utterance."""

    action: str = ACTION_UNKNOWN
    object_label: str = ""
    place: str = ""
    forward_m: float = 0.0     # relative motion in base_link: x forward
    left_m: float = 0.0        # y left
    turn_rad: float = 0.0      # counter-clockwise positive
    target_pose: Optional[Pose2D] = None
    confidence: float = 0.0
    transcript: str = ""
    language: str = "en"
    source: str = ""
    utterance_id: str = ""
    detail: str = field(default="", compare=False)  # why the model decided so, or the view's description
    object_box: Optional[Tuple[float, float, float, float]] = None   # grounding: pixel box in the camera image

    def to_dict(self) -> dict:
        return asdict(self)
