"""Turn model results into tasks (navigation and manipulation steps) and track them.

`Planner.plan()` decides whether a result can be executed and which steps it
needs. `TaskTracker` runs one task at a time: it emits goals, watches the
robot pose and manipulation reports, enforces step timeouts, and emits a
status for every change, so that every command ends DONE, REJECTED or FAILED.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from omni_agent.model.result import (
    ACTION_BRING, ACTION_DESCRIBE, ACTION_MOVE, ACTION_NAVIGATE, ACTION_PICK, ACTION_PLACE, ACTION_STOP,
    CommandResult, Pose2D,
)
from omni_agent.model.vocabulary import Vocabulary
from omni_agent.planning.geometry import compose, distance, normalize_angle

# Status states, same values as msg/AgentStatus.msg.
ACCEPTED, EXECUTING, DONE, REJECTED, FAILED = 1, 2, 3, 4, 5
STATE_NAMES = {ACCEPTED: "accepted", EXECUTING: "executing", DONE: "done", REJECTED: "rejected", FAILED: "failed"}

STEP_NAVIGATE = "navigate"
STEP_PICK = "pick"
STEP_PLACE = "place"
STEP_HAND_OVER = "hand_over"


@dataclass
class Step:
    """One step of a task."""

    kind: str                         # STEP_* constant
    goal: Optional[Pose2D] = None     # for navigate (frame map)
    object_label: str = ""
    place: str = ""
    description: str = ""


@dataclass
class Decision:
    """The planner decision for one result: steps to run, or a rejection."""

    utterance_id: str
    accepted: bool
    reason: str = ""
    steps: List[Step] = field(default_factory=list)
    is_stop: bool = False
    is_answer: bool = False     # a question answered by the model node: done at once, nothing moves


@dataclass
class PlannerConfig:
    """Limits of what the planner accepts."""

    min_confidence: float = 0.25
    max_motion_m: float = 20.0        # maximum relative move accepted [m]


class Planner:
    """Decide the steps for a CommandResult given the vocabulary and the robot pose."""

    def __init__(self, vocabulary: Vocabulary, config: Optional[PlannerConfig] = None):
        self.vocabulary = vocabulary
        self.config = config or PlannerConfig()

    def plan(self, result: CommandResult, robot_pose: Pose2D) -> Decision:
        """Return the steps for `result`, with the robot at `robot_pose` (frame map)."""
        uid = result.utterance_id
        heard = f"'{result.transcript}'" if result.transcript else "the command"
        if result.action == ACTION_STOP:
            return Decision(uid, True, "stop requested", is_stop=True)
        if result.action == ACTION_DESCRIBE:
            answer = result.detail or "no description available"
            return Decision(uid, True, f"answered: {answer}", is_answer=True)
        if result.action not in (ACTION_NAVIGATE, ACTION_MOVE, ACTION_BRING, ACTION_PICK, ACTION_PLACE):
            return Decision(uid, False, f"did not understand {heard}; try for example "
                                        f"'go to the kitchen' or 'bring me the apple'")
        if result.confidence < self.config.min_confidence:
            return Decision(uid, False, f"confidence {result.confidence:.2f} in {heard} is below "
                                        f"min_confidence={self.config.min_confidence}; please repeat the command")

        if result.action == ACTION_MOVE:
            return self._plan_move(result, robot_pose)
        if result.action == ACTION_NAVIGATE:
            error = self._check_place(result.place, required=True, heard=heard)
            if error:
                return Decision(uid, False, error)
            goal = self.vocabulary.place_poses[result.place]
            return Decision(uid, True, f"navigate to {result.place}",
                            [Step(STEP_NAVIGATE, goal, place=result.place, description=f"go to {result.place}")])

        error = self._check_object(result.object_label, result.action, heard) or \
            self._check_place(result.place, required=result.action == ACTION_PLACE, heard=heard)
        if error:
            return Decision(uid, False, error)
        steps: List[Step] = []
        if result.place:
            steps.append(Step(STEP_NAVIGATE, self.vocabulary.place_poses[result.place], place=result.place,
                              description=f"go to {result.place}"))
        label = result.object_label
        if result.action == ACTION_PICK:
            steps.append(Step(STEP_PICK, object_label=label, place=result.place, description=f"pick up the {label}"))
        elif result.action == ACTION_PLACE:
            steps.append(Step(STEP_PLACE, object_label=label, place=result.place,
                              description=f"put {'the ' + label if label else 'the held object'} down at {result.place}"))
        else:  # bring: fetch, come back to where the command was given, hand over
            steps.append(Step(STEP_PICK, object_label=label, place=result.place, description=f"pick up the {label}"))
            if result.place:
                steps.append(Step(STEP_NAVIGATE, robot_pose, place="speaker", description="return to the speaker"))
            steps.append(Step(STEP_HAND_OVER, object_label=label, description=f"hand over the {label}"))
        summary = ", then ".join(step.description for step in steps)
        return Decision(uid, True, summary, steps)

    def _plan_move(self, result: CommandResult, robot_pose: Pose2D) -> Decision:
        length = math.hypot(result.forward_m, result.left_m)
        if length > self.config.max_motion_m:
            return Decision(result.utterance_id, False,
                            f"relative move of {length:.1f} m exceeds max_motion_m={self.config.max_motion_m}")
        if length < 1e-3 and abs(result.turn_rad) < 1e-3:
            return Decision(result.utterance_id, False, "the move has zero distance and zero turn")
        goal = compose(robot_pose, result.forward_m, result.left_m, result.turn_rad)
        text = (f"move {result.forward_m:+.2f} m forward, {result.left_m:+.2f} m left, "
                f"turn {math.degrees(result.turn_rad):+.0f} deg to ({goal.x:.2f}, {goal.y:.2f}) in {goal.frame_id}")
        return Decision(result.utterance_id, True, text, [Step(STEP_NAVIGATE, goal, description=text)])

    def _check_place(self, place: str, required: bool, heard: str = "the command") -> str:
        if not place:
            if not required:
                return ""
            return (f"{heard} names no place I know; known places: {', '.join(self.vocabulary.place_names())} "
                    f"(add new ones to the places file)")
        if place not in self.vocabulary.places:
            return (f"unknown place '{place}'; known places: {', '.join(self.vocabulary.place_names())} "
                    f"(add it to the places file)")
        return ""

    def _check_object(self, label: str, action: str, heard: str = "the command") -> str:
        if not label:
            if action == ACTION_PLACE:
                return ""
            return (f"the {action} command {heard} names no object I know; known objects: "
                    f"{', '.join(sorted(self.vocabulary.objects))}")
        if label not in self.vocabulary.objects:
            return (f"unknown object '{label}'; known objects: {', '.join(sorted(self.vocabulary.objects))}")
        if action != ACTION_PLACE and not self.vocabulary.graspable[label]:
            graspable = sorted(key for key, ok in self.vocabulary.graspable.items() if ok)
            return f"the {label} cannot be grasped by this robot; it can grasp: {', '.join(graspable)}"
        return ""


@dataclass
class Event:
    """A message the tracker requests the node to publish."""

    kind: str                      # "status", "goal", "manipulation", "halt"
    utterance_id: str = ""
    state: int = 0
    step: Optional[Step] = None
    reason: str = ""


@dataclass
class TrackerConfig:
    goal_tolerance_m: float = 0.3
    goal_tolerance_rad: float = 0.35
    navigate_timeout_s: float = 120.0
    manipulation_timeout_s: float = 60.0


class TaskTracker:
    """Run one task at a time and report every state change as an Event."""

    def __init__(self, config: Optional[TrackerConfig] = None):
        self.config = config or TrackerConfig()
        self.utterance_id = ""
        self.steps: List[Step] = []
        self.index = 0
        self.step_started_s: Optional[float] = None

    @property
    def active(self) -> bool:
        return bool(self.steps) and self.index < len(self.steps)

    @property
    def current(self) -> Optional[Step]:
        return self.steps[self.index] if self.active else None

    def start(self, decision: Decision, now_s: float) -> List[Event]:
        """Begin a decided command; returns the events for it (and for a preempted task)."""
        events: List[Event] = []
        if not decision.accepted:
            return [Event("status", decision.utterance_id, REJECTED, reason=decision.reason)]
        if decision.is_answer:      # does not touch a running task
            return [Event("status", decision.utterance_id, DONE, reason=decision.reason)]
        if decision.is_stop:
            if self.active:
                events.append(Event("halt", self.utterance_id))
                events += self._finish(FAILED, f"cancelled by stop command {decision.utterance_id}")
            else:
                events.append(Event("halt", decision.utterance_id))
            events.append(Event("status", decision.utterance_id, DONE, reason="stopped"))
            return events
        if self.active:
            events += self._finish(FAILED, f"preempted by command {decision.utterance_id}")
        self.utterance_id, self.steps, self.index = decision.utterance_id, list(decision.steps), 0
        events.append(Event("status", self.utterance_id, ACCEPTED, reason=decision.reason))
        events += self._begin_step(now_s)
        return events

    def on_pose(self, pose: Pose2D, now_s: float) -> List[Event]:
        """Advance a navigation step when the robot has reached its goal."""
        step = self.current
        if step is None or step.kind != STEP_NAVIGATE or step.goal is None:
            return []
        close = distance(pose, step.goal) <= self.config.goal_tolerance_m
        aligned = abs(normalize_angle(pose.yaw - step.goal.yaw)) <= self.config.goal_tolerance_rad
        if close and aligned:
            return self._complete_step(now_s, f"reached ({pose.x:.2f}, {pose.y:.2f})")
        return []

    def on_manipulation_report(self, utterance_id: str, succeeded: bool, reason: str, now_s: float) -> List[Event]:
        """Advance or fail the current manipulation step from the manipulation stack's report."""
        step = self.current
        if step is None or step.kind == STEP_NAVIGATE or utterance_id != self.utterance_id:
            return []
        if succeeded:
            return self._complete_step(now_s, reason or f"{step.kind} succeeded")
        return self._finish(FAILED, f"{step.description} failed: {reason or 'no reason given'}")

    def on_navigation_report(self, succeeded: bool, reason: str, now_s: float) -> List[Event]:
        """Advance or fail the current navigation step from a navigation server's result."""
        step = self.current
        if step is None or step.kind != STEP_NAVIGATE:
            return []
        if succeeded:
            return self._complete_step(now_s, reason or "navigation succeeded")
        return self._finish(FAILED, f"{step.description} failed: {reason or 'no reason given'}")

    def tick(self, now_s: float) -> List[Event]:
        """Fail the current step if it has run longer than its timeout."""
        step = self.current
        if step is None:
            return []
        if self.step_started_s is None:
            # Under use_sim_time the clock reads 0 until /clock arrives: start timing then.
            self.step_started_s = now_s if now_s > 0.0 else None
            return []
        limit = self.config.navigate_timeout_s if step.kind == STEP_NAVIGATE else self.config.manipulation_timeout_s
        if now_s - self.step_started_s > limit:
            return self._finish(FAILED, f"{step.description} did not finish within {limit:.0f} s")
        return []

    def _begin_step(self, now_s: float) -> List[Event]:
        step = self.current
        # A zero time means a simulation clock that has not started yet.
        self.step_started_s = now_s if now_s > 0.0 else None
        kind = "goal" if step.kind == STEP_NAVIGATE else "manipulation"
        return [Event(kind, self.utterance_id, step=step),
                Event("status", self.utterance_id, EXECUTING, step=step, reason=step.description)]

    def _complete_step(self, now_s: float, reason: str) -> List[Event]:
        step = self.current
        events = [Event("status", self.utterance_id, DONE, step=step, reason=reason)]
        self.index += 1
        if self.active:
            return events + self._begin_step(now_s)
        return events + [Event("status", self.utterance_id, DONE, reason="all steps done")]

    def _finish(self, state: int, reason: str) -> List[Event]:
        step = self.current
        events = [Event("status", self.utterance_id, state, step=step, reason=reason)]
        self.steps, self.index = [], 0
        return events
