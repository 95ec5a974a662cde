"""Pick, place and hand over with the simulated robot, as steppable state machines.

`ManipulationController` runs one action at a time on a `Simulator`. Start
it with `pick(label)`, `place()` or `hand_over(point)`, then call
`update()` once per control period after stepping the simulator, until
`done`. Every action ends with success or a reason: each phase and the
whole action have limits in sim time, so nothing waits forever.

The hand-over point is fixed in base_link at `RobotGeometry.hand_over_offset`
(0.60 m forward, on the centre line, 0.90 m above the floor by default):
the held object's centre is brought there and released onto a simulated
person's open hand.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Tuple

from omni_agent.model.result import Pose2D
from omni_agent.planning.geometry import normalize_angle
from omni_agent.sim.detection import Detection, SimGroundTruthDetector
from omni_agent.sim.mjcf import FURNITURE_PREFIX, Box, furniture_boxes
from omni_agent.sim.simulator import Simulator

PICK = "pick"
PLACE = "place"
HAND_OVER = "hand_over"

IDLE = "idle"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"

Vector3 = Tuple[float, float, float]


@dataclass
class ManipulationConfig:
    """Limits and tolerances of the actions. Lengths in metres, times in seconds of sim time."""

    max_pick_distance_m: float = 1.1        # from base_link to the object, on the floor plane
    working_reach_m: float = 0.60           # the base lines up so the target is this far ahead
    max_base_adjust_m: float = 0.5          # the furthest the base moves to line up
    align_tolerance_m: float = 0.005
    max_lateral_error_m: float = 0.025      # a grasp is not tried with a larger side offset
    base_speed: float = 0.15                # while lining up, m/s
    approach_gap_m: float = 0.03            # the base stops this far from the furniture ahead
    lift_clearance_m: float = 0.08          # raise this far above the grasp height after grasping
    place_inset_m: float = 0.15             # place this far beyond the support's front edge
    place_drop_m: float = 0.01              # release this high above the support
    joint_tolerance_m: float = 0.006
    phase_timeout_s: float = 8.0
    action_timeout_s: float = 60.0
    settle_s: float = 0.4


class _ActionFailed(Exception):
    """Ends the running action with the message as the reason."""


@dataclass
class ManipulationResult:
    """The outcome of `run_manipulation`."""

    action: str
    state: str
    reason: str
    duration_s: float

    @property
    def succeeded(self) -> bool:
        return self.state == SUCCEEDED


class ManipulationController:
    """Pick, place and hand over objects with the simulated arm, one action at a time.

    The controller commands the simulator's base, lift, arm and gripper from
    `update()`, and the caller steps the simulator. Objects are found with
    `detector` (a `SimGroundTruthDetector` by default) in the head camera.
    """

    def __init__(self, sim: Simulator, detector: Optional[SimGroundTruthDetector] = None,
                 config: Optional[ManipulationConfig] = None):
        self.sim = sim
        self.detector = detector or SimGroundTruthDetector()
        self.config = config or ManipulationConfig()
        self.geometry = sim.geometry
        self.action = ""
        self.state = IDLE
        self.reason = ""
        self.phase = ""
        self.object_label = ""
        self._steps: Optional[Iterator[None]] = None
        self._deadline = math.inf

    # --- starting actions -----------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Whether the last action ended (succeeded, failed or canceled)."""
        return self.state in (SUCCEEDED, FAILED, CANCELED)

    def pick(self, object_label: str) -> None:
        """Start picking up `object_label` (an object name such as 'apple') seen by the head camera."""
        if not isinstance(object_label, str) or not object_label.strip():
            raise ValueError(f"object_label must be a non-empty object name such as 'apple', got {object_label!r}")
        self._start(PICK, object_label.strip(), self._pick_steps(object_label.strip()))
        if self.sim.holding is not None:
            self._finish(FAILED, f"already holding the {self.sim.holding}; place it or hand it over first")

    def place(self) -> None:
        """Start putting the held object down on the furniture in front of the robot."""
        self._start(PLACE, self.sim.holding or "", self._place_steps())
        if self.sim.holding is None:
            self._finish(FAILED, "nothing to place: the gripper is empty")

    def hand_over(self, hand_over_point: Optional[Vector3] = None) -> None:
        """Start handing the held object to a person at `hand_over_point` (x, y, z) in map.

        Without a point, the default is `RobotGeometry.hand_over_offset` from the
        current base pose. A given point is reached by moving the base by up
        to `max_base_adjust_m`.
        """
        if hand_over_point is not None:
            if len(hand_over_point) != 3 or not all(math.isfinite(float(v)) for v in hand_over_point):
                raise ValueError(f"hand_over_point must be finite (x, y, z) in map metres, got {hand_over_point!r}")
            hand_over_point = tuple(float(v) for v in hand_over_point)
        self._start(HAND_OVER, self.sim.holding or "", self._hand_over_steps(hand_over_point))
        if self.sim.holding is None:
            self._finish(FAILED, "nothing to hand over: the gripper is empty")

    def cancel(self) -> None:
        """Stop the running action where it is: the base stops and the joints hold their positions."""
        if self.state == RUNNING:
            self._finish(CANCELED, "canceled")
            sim, g = self.sim, self.geometry
            sim.set_lift_height(min(max(sim.lift_height(), g.lift_min), g.lift_max))
            sim.set_arm_extension(min(max(sim.arm_extension(), g.arm_min), g.arm_max))
            sim.set_gripper_opening(min(max(sim.gripper_opening(), g.gripper_min), g.gripper_max))

    def update(self) -> str:
        """Advance the running action by one control period and return the state."""
        if self.state != RUNNING:
            return self.state
        try:
            if self.sim.time_s > self._deadline:
                raise _ActionFailed(f"{self.action} timed out after {self.config.action_timeout_s:.0f} s "
                                    f"while {self.phase or 'starting'}")
            next(self._steps)
        except StopIteration:
            self._finish(SUCCEEDED, "")
        except _ActionFailed as failure:
            self._finish(FAILED, str(failure))
        return self.state

    def _start(self, action: str, label: str, steps: Iterator[None]) -> None:
        if self.state == RUNNING:
            raise RuntimeError(f"a {self.action} action is running; cancel() it or wait until done")
        self.action = action
        self.object_label = label
        self.state = RUNNING
        self.reason = ""
        self.phase = ""
        self._steps = steps
        self._deadline = self.sim.time_s + self.config.action_timeout_s

    def _finish(self, state: str, reason: str) -> None:
        self.state = state
        self.reason = reason
        self._steps = None
        self.sim.set_base_velocity(0.0, 0.0, 0.0)

    # --- actions --------------------------------------------------------------------------

    def _pick_steps(self, label: str) -> Iterator[None]:
        sim, g, c = self.sim, self.geometry, self.config
        self.phase = "retracting the arm"
        sim.set_arm_extension(g.arm_min)
        sim.set_gripper_opening(g.gripper_max)
        yield from self._wait_joints()

        self.phase = "looking for the object"
        detection = self.detector.find(sim, label)
        if detection is None:
            raise _ActionFailed(f"the {label} is not visible from here")
        forward, left, height = self._to_base(detection_center(detection))
        distance = math.hypot(forward, left)
        if distance > c.max_pick_distance_m:
            raise _ActionFailed(f"out of reach: {distance:.1f} m away; the robot picks objects within "
                                f"{c.max_pick_distance_m:.2f} m of its base")
        self._check_height(height, f"the {label}")

        self.phase = "lining up the base"
        yield from self._move_base_by(self._limit_approach(forward - c.working_reach_m), left)
        detection = self.detector.find(sim, label) or detection
        forward, left, height = self._to_base(detection_center(detection))
        if abs(left) > c.max_lateral_error_m:
            raise _ActionFailed(f"could not line up with the {label}: it is {abs(left):.2f} m to the side "
                                "of the gripper; something may block the base")
        extension = g.extension_for_forward(forward)
        if not g.arm_min <= extension <= g.arm_max:
            raise _ActionFailed(f"out of reach: the {label} is {forward:.2f} m ahead and the gripper reaches "
                                f"{g.min_reach:.2f}-{g.max_reach:.2f} m")
        # The fingers must stay clear of the support: grasp no lower than a finger's half height above it.
        support_top = detection.bounds_min[2]
        grasp_height = min(max(height, support_top + g.finger_half_height + 0.004), g.lift_max)

        self.phase = "raising the lift"
        sim.set_lift_height(grasp_height)
        yield from self._wait_joints()
        self.phase = "extending the arm"
        sim.set_arm_extension(extension)
        yield from self._wait_joints()

        self.phase = "closing the gripper"
        sim.set_gripper_opening(g.gripper_min)
        yield from self._wait_until(lambda: sim.holding is not None or sim.gripper_opening() < 0.004,
                                    c.phase_timeout_s)
        if sim.holding != label:
            wrong_object = sim.holding
            sim.set_gripper_opening(g.gripper_max)
            if wrong_object is not None:
                raise _ActionFailed(f"grasp failed: the gripper closed on the {wrong_object} instead of the {label}")
            raise _ActionFailed(f"grasp failed: the gripper closed without holding the {label}")

        self.phase = "lifting the object"
        sim.set_lift_height(min(grasp_height + c.lift_clearance_m, g.lift_max))
        yield from self._wait_joints()
        self.phase = "retracting the arm"
        sim.set_arm_extension(g.arm_min)
        yield from self._wait_joints()
        if sim.holding != label:
            raise _ActionFailed(f"grasp failed: the {label} slipped out of the gripper")

    def _place_steps(self) -> Iterator[None]:
        sim, g, c = self.sim, self.geometry, self.config
        label = sim.holding
        self.phase = "finding a support"
        support = self._support_ahead()
        if support is None:
            raise _ActionFailed(f"nothing to place the {label} on: no furniture within "
                                f"{c.max_pick_distance_m:.1f} m in front of the robot")
        box, near, far = support
        forward = min(near + c.place_inset_m, (near + far) / 2.0)
        self.phase = "lining up the base"
        yield from self._move_base_by(self._limit_approach(forward - c.working_reach_m), 0.0)
        box, near, far = self._support_ahead() or support
        forward = min(near + c.place_inset_m, (near + far) / 2.0)
        name = box.name[len(FURNITURE_PREFIX):]
        top = 2.0 * box.half_size[2]

        offset_forward, _, offset_up = self._held_offset()
        release_height = top + self._half_height(label) + c.place_drop_m - offset_up
        extension = g.extension_for_forward(forward - offset_forward)
        if not g.arm_min <= extension <= g.arm_max:
            raise _ActionFailed(f"out of reach: the {name} top is {near:.2f}-{far:.2f} m ahead and the gripper "
                                f"reaches {g.min_reach:.2f}-{g.max_reach:.2f} m")
        self._check_height(release_height, f"the {name} top")

        self.phase = "raising the lift"
        sim.set_lift_height(min(max(sim.lift_height(), release_height + c.lift_clearance_m), g.lift_max))
        yield from self._wait_joints()
        self.phase = "extending the arm"
        sim.set_arm_extension(extension)
        yield from self._wait_joints()
        self.phase = "lowering the object"
        sim.set_lift_height(release_height)
        yield from self._wait_joints()
        yield from self._open_gripper()
        yield from self._retract(release_height)

        x, y, z = sim.object_pose(label)
        on_top = (abs(x - box.center[0]) <= box.half_size[0] and abs(y - box.center[1]) <= box.half_size[1]
                  and z >= top)
        if not on_top:
            raise _ActionFailed(f"the {label} fell while placing it on the {name}")

    def _hand_over_steps(self, point: Optional[Vector3]) -> Iterator[None]:
        sim, g, c = self.sim, self.geometry, self.config
        label = sim.holding
        if point is not None:
            self.phase = "lining up the base"
            forward, left, _ = self._to_base(point)
            shift = math.hypot(forward - g.hand_over_offset[0], left)
            if shift > c.max_base_adjust_m:
                raise _ActionFailed(f"hand-over point out of reach: {math.hypot(forward, left):.1f} m away; "
                                    f"it must lie within {c.max_base_adjust_m:.1f} m of the point "
                                    f"{g.hand_over_offset[0]:.2f} m ahead of the robot")
            yield from self._move_base_by(forward - g.hand_over_offset[0], left)
        else:
            point = sim.hand_over_point()
        forward, left, height = self._to_base(point)
        offset_forward, _, offset_up = self._held_offset()
        lift = height - offset_up
        extension = g.extension_for_forward(forward - offset_forward)
        self._check_height(lift, "the hand-over point")
        if not g.arm_min <= extension <= g.arm_max:
            raise _ActionFailed(f"hand-over point out of reach: {forward:.2f} m ahead and the gripper reaches "
                                f"{g.min_reach:.2f}-{g.max_reach:.2f} m")

        self.phase = "raising the lift"
        sim.set_lift_height(lift)
        yield from self._wait_joints()
        self.phase = "extending the arm"
        sim.set_arm_extension(extension)
        yield from self._wait_joints()

        self.phase = "releasing the object"
        x, y, z = sim.object_pose(label)
        sim.present_recipient_hand(x, y, z - self._half_height(label))
        yield from self._open_gripper()
        yield from self._retract(lift)

    # --- building blocks ------------------------------------------------------------------

    def _open_gripper(self) -> Iterator[None]:
        """Open the gripper fully, then let the released object settle before the arm moves."""
        sim, g, c = self.sim, self.geometry, self.config
        label = sim.holding
        self.phase = "opening the gripper"
        sim.set_gripper_opening(g.gripper_max)
        yield from self._wait_until(lambda: sim.gripper_opening() > g.gripper_max - 0.01, c.phase_timeout_s)
        if sim.holding is not None:
            raise _ActionFailed(f"the gripper did not release the {label}")
        yield from self._pause(c.settle_s)

    def _retract(self, lift: float) -> Iterator[None]:
        sim, g = self.sim, self.geometry
        self.phase = "retracting the arm"
        sim.set_lift_height(min(lift + 0.03, g.lift_max))
        yield from self._wait_joints()
        sim.set_arm_extension(g.arm_min)
        yield from self._wait_joints()
        sim.set_lift_height(g.lift_rest)
        yield from self._wait_joints()

    def _wait_until(self, condition: Callable[[], bool], limit_s: float) -> Iterator[None]:
        deadline = self.sim.time_s + limit_s
        while not condition():
            if self.sim.time_s > deadline:
                raise _ActionFailed(f"timed out after {limit_s:.1f} s while {self.phase}")
            yield

    def _wait_joints(self) -> Iterator[None]:
        """Wait until the lift and the arm are at their targets (the gripper may stop on an object)."""
        sim, c = self.sim, self.config

        def reached() -> bool:
            targets = sim.joint_targets()
            return (abs(sim.lift_height() - targets["lift"]) < c.joint_tolerance_m
                    and abs(sim.arm_extension() - targets["arm_extension"]) < c.joint_tolerance_m)

        yield from self._wait_until(reached, self.config.phase_timeout_s)

    def _pause(self, seconds: float) -> Iterator[None]:
        end = self.sim.time_s + seconds
        while self.sim.time_s < end:
            yield

    def _move_base_by(self, forward: float, left: float) -> Iterator[None]:
        """Move the base by (forward, left) in its current base_link, keeping its yaw.

        Stops early without failing when the base stops moving (for example
        against furniture). The caller checks what was reached.
        """
        sim, c = self.sim, self.config
        if math.hypot(forward, left) > c.max_base_adjust_m:
            raise _ActionFailed(f"out of reach: lining up needs a {math.hypot(forward, left):.2f} m base move, "
                                f"more than {c.max_base_adjust_m:.2f} m; navigate closer first")
        start = sim.base_pose()
        cos_yaw, sin_yaw = math.cos(start.yaw), math.sin(start.yaw)
        goal = Pose2D(start.x + cos_yaw * forward - sin_yaw * left, start.y + sin_yaw * forward + cos_yaw * left,
                      start.yaw, start.frame_id)
        deadline = sim.time_s + 2.0 + math.hypot(forward, left) / c.base_speed * 2.0
        while sim.time_s < deadline:
            pose = sim.base_pose()
            dx, dy = goal.x - pose.x, goal.y - pose.y
            ex = math.cos(pose.yaw) * dx + math.sin(pose.yaw) * dy
            ey = -math.sin(pose.yaw) * dx + math.cos(pose.yaw) * dy
            if math.hypot(ex, ey) < c.align_tolerance_m:
                break
            speed = min(c.base_speed, 2.0 * math.hypot(ex, ey))
            scale = speed / math.hypot(ex, ey)
            sim.set_base_velocity(ex * scale, ey * scale, 2.0 * normalize_angle(goal.yaw - pose.yaw))
            yield
        sim.set_base_velocity(0.0, 0.0, 0.0)
        yield from self._pause(0.1)

    def _limit_approach(self, forward: float) -> float:
        """Shorten a forward base move so the base stops `approach_gap_m` short of the furniture ahead."""
        support = self._support_ahead()
        if support is None:
            return forward
        room = support[1] - self.geometry.base_half_length - self.config.approach_gap_m
        return min(forward, max(room, 0.0))

    def _to_base(self, point: Vector3) -> Vector3:
        """Return a map point as (forward, left, up) in the current base_link."""
        pose = self.sim.base_pose()
        dx, dy = point[0] - pose.x, point[1] - pose.y
        cos_yaw, sin_yaw = math.cos(pose.yaw), math.sin(pose.yaw)
        return cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy, point[2]

    def _held_offset(self) -> Vector3:
        """Return the held object's centre relative to the grasp point, in base_link (forward, left, up)."""
        object_position = self._to_base(self.sim.object_pose(self.sim.holding))
        grasp = self._to_base(self.sim.grasp_point())
        return tuple(o - p for o, p in zip(object_position, grasp))

    def _half_height(self, label: str) -> float:
        return self.sim.world.objects[label].half_height

    def _check_height(self, height: float, subject: str) -> None:
        g = self.geometry
        if not g.lift_min <= height <= g.lift_max:
            raise _ActionFailed(f"out of reach: {subject} is {height:.2f} m above the floor and the lift reaches "
                                f"{g.lift_min:.2f}-{g.lift_max:.2f} m")

    def _support_ahead(self) -> Optional[Tuple[Box, float, float]]:
        """Return (box, near distance, far distance) of the furniture straight ahead, or None.

        The distances run along base_link +x from the base's origin to where
        the centre line enters and leaves the furniture's top. Only furniture
        entered within `max_pick_distance_m` counts.
        """
        pose = self.sim.base_pose()
        direction = (math.cos(pose.yaw), math.sin(pose.yaw))
        best = None
        for box in furniture_boxes(self.sim.world):
            interval = _ray_box_interval((pose.x, pose.y), direction, box.center, box.half_size)
            if interval is None:
                continue
            near, far = interval
            if 0.0 <= near <= self.config.max_pick_distance_m and (best is None or near < best[1]):
                best = (box, near, far)
        return best


def detection_center(detection: Detection) -> Vector3:
    """Return an estimate of an object's centre (x, y, z) from its detection: the centre of its visible points' box."""
    return detection.bounds_center


def _ray_box_interval(origin: Tuple[float, float], direction: Tuple[float, float], center: Vector3,
                      half_size: Vector3) -> Optional[Tuple[float, float]]:
    """Return where a 2-D ray enters and leaves an axis-aligned box (slab method), or None if it misses."""
    near, far = -math.inf, math.inf
    for axis in range(2):
        low, high = center[axis] - half_size[axis], center[axis] + half_size[axis]
        if abs(direction[axis]) < 1e-12:
            if not low <= origin[axis] <= high:
                return None
            continue
        t0, t1 = (low - origin[axis]) / direction[axis], (high - origin[axis]) / direction[axis]
        near, far = max(near, min(t0, t1)), min(far, max(t0, t1))
    if near > far or far < 0.0:
        return None
    return near, far


def run_manipulation(sim: Simulator, controller: ManipulationController,
                     control_period_s: float = 0.05) -> ManipulationResult:
    """Step `sim` and update the controller's started action until it ends, then return the outcome."""
    if not control_period_s > 0.0:
        raise ValueError(f"control_period_s must be > 0 seconds, got {control_period_s!r}")
    start = sim.time_s
    while controller.update() == RUNNING:
        sim.step_for(control_period_s)
    return ManipulationResult(controller.action, controller.state, controller.reason, sim.time_s - start)
