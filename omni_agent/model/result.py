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


#: Confidence from audio alone at which a complete Omni result is sent before the transcript.
#: It is the model node's omni_min_confidence; docs/model.md ("Serving") has the measurements.
DEFAULT_MIN_CONFIDENCE = 0.85


def is_complete(result: CommandResult) -> bool:
    """Return True when the result names everything its action needs (a place to go, an object to bring)."""
    if result.action in (ACTION_NAVIGATE, ACTION_PLACE):
        return bool(result.place)
    if result.action in (ACTION_BRING, ACTION_PICK):
        return bool(result.object_label)
    if result.action == ACTION_MOVE:
        return bool(result.forward_m or result.left_m or result.turn_rad)
    return result.action != ACTION_UNKNOWN


def sure_from_audio(result: CommandResult, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> bool:
    """Return True when an audio-only result may be sent without waiting for the transcript.

    It must be complete and at least min_confidence sure; any other result is
    decided again from audio + transcript.
    """
    return is_complete(result) and result.confidence >= min_confidence
