"""The task head's label space and its conversion to a CommandResult.

The Omni model classifies an instruction into five slots: action, object,
place, motion direction and motion amount. Objects and places come from the
vocabulary (config/vocabulary.yaml, config/places.yaml), so a robot with other
names trains a head with other classes. The class lists are saved with every
checkpoint and checked when it is loaded.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

from omni_agent.model.result import (
    ACTION_BRING, ACTION_DESCRIBE, ACTION_MOVE, ACTION_NAVIGATE, ACTION_PICK, ACTION_PLACE, ACTION_STOP,
    ACTION_UNKNOWN, CommandResult,
)

#: Task head classes. Order matters: it is the class index in a checkpoint.
TASK_ACTIONS: Tuple[str, ...] = (ACTION_NAVIGATE, ACTION_MOVE, ACTION_BRING, ACTION_PICK, ACTION_PLACE,
                                 ACTION_STOP, ACTION_DESCRIBE, ACTION_UNKNOWN)
DIRECTIONS: Tuple[str, ...] = ("none", "forward", "backward", "left", "right", "turn_left", "turn_right")
#: Motion amounts: metres for straight moves, degrees for turns; "none" means the default amount.
AMOUNTS: Tuple[str, ...] = ("none", "0.5m", "1m", "1.5m", "2m", "3m", "4m", "5m", "6m", "7m", "8m", "9m", "10m",
                            "30deg", "45deg", "90deg", "180deg")
NONE = "none"
DEFAULT_DISTANCE_M = 1.0
DEFAULT_TURN_DEG = 90.0


@dataclass(frozen=True)
class TaskLabel:
    """One instruction's target in the task head's label space."""

    action: str = ACTION_UNKNOWN
    object: str = NONE
    place: str = NONE
    direction: str = NONE
    amount: str = NONE

    def to_dict(self) -> Dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class LabelSpace:
    """Class lists of the five task slots."""

    actions: Tuple[str, ...]
    objects: Tuple[str, ...]
    places: Tuple[str, ...]
    directions: Tuple[str, ...] = DIRECTIONS
    amounts: Tuple[str, ...] = AMOUNTS

    @classmethod
    def from_vocabulary(cls, object_names: Sequence[str], place_names: Sequence[str]) -> "LabelSpace":
        return cls(TASK_ACTIONS, (NONE,) + tuple(object_names), (NONE,) + tuple(place_names))

    @property
    def slots(self) -> Dict[str, Tuple[str, ...]]:
        return {"action": self.actions, "object": self.objects, "place": self.places,
                "direction": self.directions, "amount": self.amounts}

    def encode(self, label: TaskLabel) -> Dict[str, int]:
        """Class indices of a label; a value outside the space raises ValueError naming it."""
        indices = {}
        for slot, classes in self.slots.items():
            value = getattr(label, slot)
            if value not in classes:
                raise ValueError(f"{slot} {value!r} is not one of the model's classes {list(classes)}; "
                                 f"add it to the vocabulary and retrain, or fix the label")
            indices[slot] = classes.index(value)
        return indices

    def decode(self, indices: Dict[str, int]) -> TaskLabel:
        return TaskLabel(**{slot: self.slots[slot][int(indices[slot])] for slot in self.slots})

    def to_dict(self) -> Dict[str, List[str]]:
        return {slot: list(classes) for slot, classes in self.slots.items()}

    @classmethod
    def from_dict(cls, data: Dict[str, Sequence[str]]) -> "LabelSpace":
        return cls(tuple(data["action"]), tuple(data["object"]), tuple(data["place"]),
                   tuple(data["direction"]), tuple(data["amount"]))


def amount_value(amount: str) -> Tuple[float, str]:
    """('2m') -> (2.0, 'm'); ('90deg') -> (90.0, 'deg'); ('none') -> (nan, '')."""
    if amount == NONE:
        return math.nan, ""
    if amount.endswith("deg"):
        return float(amount[:-3]), "deg"
    return float(amount[:-1]), "m"


def motion_of(direction: str, amount: str) -> Tuple[float, float, float]:
    """Relative motion (forward_m, left_m, turn_rad) of a direction and an amount class."""
    value, unit = amount_value(amount)
    if direction in ("turn_left", "turn_right"):
        degrees = value if unit == "deg" else DEFAULT_TURN_DEG
        sign = 1.0 if direction == "turn_left" else -1.0
        return 0.0, 0.0, sign * math.radians(degrees)
    metres = value if unit == "m" else DEFAULT_DISTANCE_M
    return {"forward": (metres, 0.0, 0.0), "backward": (-metres, 0.0, 0.0),
            "left": (0.0, metres, 0.0), "right": (0.0, -metres, 0.0)}.get(direction, (0.0, 0.0, 0.0))


def label_from_result(result: CommandResult) -> TaskLabel:
    """Return the TaskLabel of a CommandResult (to score the parser in the same label space)."""
    direction, amount = NONE, NONE
    if result.action == ACTION_MOVE:
        if abs(result.turn_rad) > 1e-6:
            direction = "turn_left" if result.turn_rad > 0 else "turn_right"
            amount = _nearest_amount(math.degrees(abs(result.turn_rad)), "deg")
        elif abs(result.forward_m) >= abs(result.left_m):
            direction = "forward" if result.forward_m >= 0 else "backward"
            amount = _nearest_amount(abs(result.forward_m), "m")
        else:
            direction = "left" if result.left_m > 0 else "right"
            amount = _nearest_amount(abs(result.left_m), "m")
    return TaskLabel(result.action, result.object_label or NONE, result.place or NONE, direction, amount)


def _nearest_amount(value: float, unit: str) -> str:
    candidates = [(abs(amount_value(a)[0] - value), a) for a in AMOUNTS if amount_value(a)[1] == unit]
    return min(candidates)[1]


def motion_actions() -> Tuple[str, ...]:
    return (ACTION_NAVIGATE, ACTION_MOVE, ACTION_BRING, ACTION_PICK, ACTION_PLACE, ACTION_STOP)
