"""A steppable, deterministic MuJoCo simulation of the home and the robot.

`Simulator` owns one MuJoCo model built from a `World` and advances it only
when `step()` or `step_for()` is called: no threads, no wall clock. With the
same world, seed and sequence of commands, two runs give the same states on
the same machine and MuJoCo build.

Frames: poses are in `map` (REP-105), the base's velocity command is in
base_link (REP-103: x forward, y left, z up), and the camera is described in
its optical frame (z forward, x right, y down). Units: metres, radians,
seconds, kilograms.
"""
from __future__ import annotations

import ctypes.util
import math
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np


class SimulatorError(RuntimeError):
    """A failure of the simulator itself, such as no OpenGL for rendering."""


def _select_gl_backend() -> Optional[str]:
    """Set MUJOCO_GL for offscreen rendering unless the caller set it.

    MuJoCo reads MUJOCO_GL when `mujoco` is first imported, so this must run
    before that import. EGL comes first and OSMesa second. Returns the
    backend in use, or None when none was found or mujoco was imported before
    this module (then MuJoCo keeps its own choice).
    """
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    if "mujoco" in sys.modules:
        return None
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            return backend
    return None


GL_BACKEND = _select_gl_backend()

import mujoco  # noqa: E402  (MUJOCO_GL must be set before this import)

from omni_agent.model.result import Pose2D  # noqa: E402
from omni_agent.planning.geometry import normalize_angle  # noqa: E402
from omni_agent.sim import robot as robot_model  # noqa: E402
from omni_agent.sim.mjcf import (  # noqa: E402
    GRASP_WELD_PREFIX,
    MAX_RENDER_HEIGHT,
    MAX_RENDER_WIDTH,
    OBJECT_PREFIX,
    RECIPIENT_HAND_BODY,
    TOP_VIEW_CAMERA,
    build_mjcf,
    object_rest_position,
)
from omni_agent.sim.robot import ROBOT, RobotGeometry  # noqa: E402
from omni_agent.sim.world import World, load_world  # noqa: E402

# Grasp detection: the fingers count as closing when their target is this
# much below the measured opening, and a held object is released when the
# target is this much above it (metres).
GRIPPER_CLOSING_MARGIN_M = 0.002
GRIPPER_RELEASE_MARGIN_M = 0.01
RECIPIENT_HAND_PARKED = (0.0, 0.0, -2.0)


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels, OpenCV/ROS convention: pixel (0, 0) is the centre of the top-left pixel."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class CameraPose:
    """Pose of the camera's optical frame: position (3,) in metres and rotation (3, 3).

    The rotation's columns are the optical axes (x right, y down, z forward)
    expressed in `frame_id`.
    """

    position: np.ndarray
    rotation: np.ndarray
    frame_id: str = "map"

    @property
    def quaternion(self) -> Tuple[float, float, float, float]:
        """The rotation as a quaternion (x, y, z, w), as ROS messages store it."""
        wxyz = np.zeros(4)
        mujoco.mju_mat2Quat(wxyz, np.ascontiguousarray(self.rotation, dtype=np.float64).reshape(9))
        return float(wxyz[1]), float(wxyz[2]), float(wxyz[3]), float(wxyz[0])

    def to_frame(self, points_optical: np.ndarray) -> np.ndarray:
        """Transform points (N, 3) from the optical frame into this pose's frame."""
        return points_optical @ self.rotation.T + self.position


@dataclass(frozen=True)
class Segmentation:
    """A segmentation image: geom ids per pixel and the names they stand for.

    `geom_ids` has shape (H, W), int32, with -1 where no geom was hit.
    `names[i]` is the name of geom i (see `omni_agent.sim.mjcf` for the
    naming scheme).
    """

    geom_ids: np.ndarray
    names: Tuple[str, ...]

    def labels(self) -> List[str]:
        """Return the names of the geoms visible in the image, sorted."""
        ids = np.unique(self.geom_ids)
        return sorted(self.names[i] for i in ids if i >= 0)

    def mask(self, name: str) -> np.ndarray:
        """Return the (H, W) bool mask of the pixels showing the geom `name`."""
        if name not in self.names:
            raise KeyError(f"no geom named {name!r} in the model; names look like 'object:apple'")
        return self.geom_ids == self.names.index(name)

    def name_image(self) -> np.ndarray:
        """Return an (H, W) array of geom names per pixel ('' where no geom was hit)."""
        table = np.array(list(self.names) + [""], dtype=object)
        return table[np.where(self.geom_ids >= 0, self.geom_ids, len(self.names))]


class Simulator:
    """MuJoCo simulation of the world and the robot, advanced only by `step()`.

    `world` defaults to config/world.yaml. The head camera renders
    `camera_width` x `camera_height` pixels. `timestep` is the physics step
    in seconds. `seed` drives the random offset of each object's start
    position, up to `object_jitter_m` along x and y (0 by default, so the
    world file's positions are used exactly).
    """

    def __init__(self, world: Optional[World] = None, camera_width: int = 320, camera_height: int = 240,
                 timestep: float = 0.002, seed: int = 0, object_jitter_m: float = 0.0,
                 geometry: RobotGeometry = ROBOT):
        for name, value in (("camera_width", camera_width), ("camera_height", camera_height)):
            if not isinstance(value, int) or value < 16:
                raise ValueError(f"{name} must be an int of at least 16 pixels, got {value!r}")
        if camera_width > MAX_RENDER_WIDTH or camera_height > MAX_RENDER_HEIGHT:
            raise ValueError(f"camera size {camera_width}x{camera_height} exceeds the offscreen buffer "
                             f"{MAX_RENDER_WIDTH}x{MAX_RENDER_HEIGHT}; use a smaller image")
        if not (isinstance(timestep, (int, float)) and 0.0 < timestep <= 0.01):
            raise ValueError(f"timestep must be in (0, 0.01] seconds, got {timestep!r}")
        if not object_jitter_m >= 0.0:
            raise ValueError(f"object_jitter_m must be >= 0 metres, got {object_jitter_m!r}")

        self.world = world if world is not None else load_world()
        self.geometry = geometry
        self.camera_width = camera_width
        self.camera_height = camera_height
        self.object_jitter_m = float(object_jitter_m)
        self.model = mujoco.MjModel.from_xml_string(build_mjcf(self.world, geometry, timestep))
        self.data = mujoco.MjData(self.model)
        self._index_model()
        self._renderers: Dict[Tuple[int, int], mujoco.Renderer] = {}
        self._render_cache: Dict[str, np.ndarray] = {}
        self._closed = False
        self.reset(seed)

    # --- set-up ---------------------------------------------------------------------------

    def _index_model(self) -> None:
        model = self.model

        def joint(name: str) -> Tuple[int, int]:
            joint_id = model.joint(name).id
            return int(model.jnt_qposadr[joint_id]), int(model.jnt_dofadr[joint_id])

        self._qpos = {}
        self._dof = {}
        for name in (robot_model.JOINT_BASE_X, robot_model.JOINT_BASE_Y, robot_model.JOINT_BASE_YAW,
                     *robot_model.ARM_JOINTS):
            self._qpos[name], self._dof[name] = joint(name)
        self._actuator = {model.actuator(i).name: i for i in range(model.nu)}
        self.geom_names: Tuple[str, ...] = tuple(model.geom(i).name for i in range(model.ngeom))
        self.object_names: Tuple[str, ...] = tuple(self.world.objects)
        self._object_body = {name: model.body(OBJECT_PREFIX + name).id for name in self.object_names}
        self._object_geom = {model.geom(OBJECT_PREFIX + name).id: name for name in self.object_names}
        self._object_qpos = {name: int(model.jnt_qposadr[model.joint(OBJECT_PREFIX + name).id])
                             for name in self.object_names}
        self._object_dof = {name: int(model.jnt_dofadr[model.joint(OBJECT_PREFIX + name).id])
                            for name in self.object_names}
        self._weld = {name: model.equality(GRASP_WELD_PREFIX + name).id for name in self.object_names}
        self._gripper_body = model.body(robot_model.GRIPPER_BODY).id
        self._base_body = model.body(robot_model.BASE_BODY).id
        self._finger_left = model.geom(robot_model.FINGER_LEFT_GEOM).id
        self._finger_right = model.geom(robot_model.FINGER_RIGHT_GEOM).id
        self._camera_site = model.site(robot_model.CAMERA_OPTICAL_SITE).id
        self._camera_id = model.camera(robot_model.CAMERA_NAME).id
        self._hand_mocap = int(model.body_mocapid[model.body(RECIPIENT_HAND_BODY).id])

    def reset(self, seed: Optional[int] = None) -> None:
        """Put the robot at the world's start pose and the objects on their supports.

        A new `seed` changes the object offsets when `object_jitter_m` > 0.
        """
        if seed is not None:
            self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        mujoco.mj_resetData(self.model, self.data)
        start = self.world.start_pose
        qpos = self.data.qpos
        qpos[self._qpos[robot_model.JOINT_BASE_X]] = start.x
        qpos[self._qpos[robot_model.JOINT_BASE_Y]] = start.y
        qpos[self._qpos[robot_model.JOINT_BASE_YAW]] = start.yaw
        self._base_command = np.zeros(3)

        for name in self.object_names:
            x, y, z = object_rest_position(self.world.objects[name])
            if self.object_jitter_m > 0.0:
                dx, dy = rng.uniform(-self.object_jitter_m, self.object_jitter_m, size=2)
                x, y = x + float(dx), y + float(dy)
            address = self._object_qpos[name]
            qpos[address:address + 7] = (x, y, z, 1.0, 0.0, 0.0, 0.0)

        # The arm starts retracted at the rest height with the gripper open.
        half_open = self.geometry.gripper_max / 2.0
        self._targets = {robot_model.JOINT_LIFT: self.geometry.lift_rest, robot_model.JOINT_ARM: 0.0,
                         robot_model.JOINT_FINGER_LEFT: half_open, robot_model.JOINT_FINGER_RIGHT: half_open}
        for name, value in self._targets.items():
            qpos[self._qpos[name]] = value
            self.data.ctrl[self._actuator[name]] = value

        self.data.mocap_pos[self._hand_mocap] = RECIPIENT_HAND_PARKED
        self.data.eq_active[:] = 0
        self._holding: Optional[str] = None
        self._steps = 0
        self._render_cache.clear()
        mujoco.mj_forward(self.model, self.data)

    # --- time -----------------------------------------------------------------------------

    @property
    def time_s(self) -> float:
        """Simulated time since the last reset, in seconds."""
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        """Physics step in seconds."""
        return float(self.model.opt.timestep)

    def step(self, n: int = 1) -> None:
        """Advance the physics by `n` steps of `timestep` seconds each."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"step count must be a non-negative int, got {n!r}")
        self._check_open()
        model, data = self.model, self.data
        yaw_address = self._qpos[robot_model.JOINT_BASE_YAW]
        ax = self._actuator[robot_model.JOINT_BASE_X]
        ay = self._actuator[robot_model.JOINT_BASE_Y]
        vx, vy, wz = self._base_command
        data.ctrl[self._actuator[robot_model.JOINT_BASE_YAW]] = wz
        for _ in range(int(n)):
            # The velocity command is in base_link and the slide joints move
            # along map x and y, so rotate it by the current yaw every step.
            yaw = data.qpos[yaw_address]
            cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
            data.ctrl[ax] = cos_yaw * vx - sin_yaw * vy
            data.ctrl[ay] = sin_yaw * vx + cos_yaw * vy
            self._move_joint_targets()
            mujoco.mj_step(model, data)
            self._steps += 1
            self._update_grasp()
        if n:
            self._render_cache.clear()

    def step_for(self, seconds: float) -> None:
        """Advance the physics by `seconds` of simulated time, rounded to whole steps."""
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0.0):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        self.step(int(round(seconds / self.timestep)))

    # --- base -----------------------------------------------------------------------------

    def set_base_velocity(self, vx: float, vy: float, wz: float) -> None:
        """Command the base velocity in base_link: vx forward and vy left in m/s, wz counter-clockwise in rad/s.

        The command stays in effect until the next call. Each linear component is
        clipped to the robot's `max_linear_speed` and wz to
        `max_angular_speed`.
        """
        values = (vx, vy, wz)
        if not all(isinstance(v, (int, float, np.floating)) and math.isfinite(v) for v in values):
            raise ValueError(f"base velocity must be finite numbers (m/s, m/s, rad/s), got {values!r}")
        g = self.geometry
        self._base_command = np.array([
            float(np.clip(vx, -g.max_linear_speed, g.max_linear_speed)),
            float(np.clip(vy, -g.max_linear_speed, g.max_linear_speed)),
            float(np.clip(wz, -g.max_angular_speed, g.max_angular_speed)),
        ])

    def base_pose(self) -> Pose2D:
        """Return the base_link pose in map (ground truth)."""
        qpos = self.data.qpos
        return Pose2D(float(qpos[self._qpos[robot_model.JOINT_BASE_X]]),
                      float(qpos[self._qpos[robot_model.JOINT_BASE_Y]]),
                      normalize_angle(float(qpos[self._qpos[robot_model.JOINT_BASE_YAW]])),
                      self.world.frame_id)

    def base_velocity(self) -> Tuple[float, float, float]:
        """Return the measured base velocity in base_link: (vx m/s, vy m/s, wz rad/s)."""
        qvel = self.data.qvel
        vx_map = qvel[self._dof[robot_model.JOINT_BASE_X]]
        vy_map = qvel[self._dof[robot_model.JOINT_BASE_Y]]
        yaw = self.data.qpos[self._qpos[robot_model.JOINT_BASE_YAW]]
        cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
        return (float(cos_yaw * vx_map + sin_yaw * vy_map), float(-sin_yaw * vx_map + cos_yaw * vy_map),
                float(qvel[self._dof[robot_model.JOINT_BASE_YAW]]))

    def set_base_pose(self, pose: Pose2D) -> None:
        """Move the base to `pose` in map at once and stop it (for tests and initial poses).

        A held object moves with the gripper. Nothing checks that the new pose
        is free of obstacles.
        """
        qpos, qvel = self.data.qpos, self.data.qvel
        qpos[self._qpos[robot_model.JOINT_BASE_X]] = pose.x
        qpos[self._qpos[robot_model.JOINT_BASE_Y]] = pose.y
        qpos[self._qpos[robot_model.JOINT_BASE_YAW]] = pose.yaw
        for joint in (robot_model.JOINT_BASE_X, robot_model.JOINT_BASE_Y, robot_model.JOINT_BASE_YAW):
            qvel[self._dof[joint]] = 0.0
        self._base_command = np.zeros(3)
        mujoco.mj_forward(self.model, self.data)
        if self._holding is not None:
            self._snap_to_gripper(self._holding)
        self._render_cache.clear()

    # --- arm and gripper ------------------------------------------------------------------

    def set_lift_height(self, height_m: float) -> None:
        """Set the lift target: height of the arm's axis above the floor, in metres."""
        g = self.geometry
        self._set_target(robot_model.JOINT_LIFT, height_m, g.lift_min, g.lift_max, "lift height")

    def set_arm_extension(self, extension_m: float) -> None:
        """Set the arm target: extension beyond the retracted position, in metres."""
        g = self.geometry
        self._set_target(robot_model.JOINT_ARM, extension_m, g.arm_min, g.arm_max, "arm extension")

    def set_gripper_opening(self, opening_m: float) -> None:
        """Set the gripper target: gap between the fingers' inner faces, in metres (0 closes it)."""
        g = self.geometry
        self._check_range(opening_m, g.gripper_min, g.gripper_max, "gripper opening")
        for joint in (robot_model.JOINT_FINGER_LEFT, robot_model.JOINT_FINGER_RIGHT):
            self._restart_ramp(joint)
            self._targets[joint] = float(opening_m) / 2.0

    def lift_height(self) -> float:
        """Return the measured lift height in metres."""
        return float(self.data.qpos[self._qpos[robot_model.JOINT_LIFT]])

    def arm_extension(self) -> float:
        """Return the measured arm extension in metres."""
        return float(self.data.qpos[self._qpos[robot_model.JOINT_ARM]])

    def gripper_opening(self) -> float:
        """Return the measured gap between the fingers in metres."""
        qpos = self.data.qpos
        return float(qpos[self._qpos[robot_model.JOINT_FINGER_LEFT]] + qpos[self._qpos[robot_model.JOINT_FINGER_RIGHT]])

    def joint_positions(self) -> Dict[str, float]:
        """Return the measured position of every robot joint (metres or radians), keyed by joint name."""
        return {name: float(self.data.qpos[address]) for name, address in self._qpos.items()}

    def joint_targets(self) -> Dict[str, float]:
        """Return the commanded lift height, arm extension and gripper opening, in metres."""
        return {"lift": self._targets[robot_model.JOINT_LIFT], "arm_extension": self._targets[robot_model.JOINT_ARM],
                "gripper_opening": 2.0 * self._targets[robot_model.JOINT_FINGER_LEFT]}

    def grasp_point(self) -> Tuple[float, float, float]:
        """Return the grasp point between the fingertips, (x, y, z) in map."""
        position = self.data.site_xpos[self.model.site(robot_model.GRASP_SITE).id]
        return float(position[0]), float(position[1]), float(position[2])

    def hand_over_point(self) -> Tuple[float, float, float]:
        """Return the hand-over point in map: `RobotGeometry.hand_over_offset` from the current base pose."""
        position = self.data.site_xpos[self.model.site(robot_model.HAND_OVER_SITE).id]
        return float(position[0]), float(position[1]), float(position[2])

    def _check_range(self, value: float, low: float, high: float, quantity: str) -> None:
        if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value)):
            raise ValueError(f"{quantity} must be a finite number of metres, got {value!r}")
        if not low - 1e-9 <= value <= high + 1e-9:
            raise ValueError(f"{quantity} {value:.3f} m is outside the joint range {low:.3f}..{high:.3f} m")

    def _set_target(self, joint: str, value: float, low: float, high: float, quantity: str) -> None:
        self._check_range(value, low, high, quantity)
        self._restart_ramp(joint)
        self._targets[joint] = float(value)

    def _restart_ramp(self, joint: str) -> None:
        """Start the servo's set-point ramp from the joint's measured position.

        A set-point may have run ahead of a joint that something blocks, such
        as fingers closed on an object. Without this, a new target would wait
        until the ramp returned to the joint before anything moved.
        """
        index = self._actuator[joint]
        low, high = self.model.actuator_ctrlrange[index]
        self.data.ctrl[index] = min(max(self.data.qpos[self._qpos[joint]], low), high)

    def _move_joint_targets(self) -> None:
        """Move each position servo's set-point toward its target at the joint's speed limit."""
        g = self.geometry
        dt = self.model.opt.timestep
        ctrl = self.data.ctrl
        for joint, speed in ((robot_model.JOINT_LIFT, g.lift_speed), (robot_model.JOINT_ARM, g.arm_speed),
                             (robot_model.JOINT_FINGER_LEFT, g.gripper_speed / 2.0),
                             (robot_model.JOINT_FINGER_RIGHT, g.gripper_speed / 2.0)):
            index = self._actuator[joint]
            error = self._targets[joint] - ctrl[index]
            limit = speed * dt
            ctrl[index] += min(max(error, -limit), limit)

    # --- grasping -------------------------------------------------------------------------

    @property
    def holding(self) -> Optional[str]:
        """Name of the object attached to the gripper, or None."""
        return self._holding

    def finger_contacts(self) -> Dict[str, Tuple[bool, bool]]:
        """Return, per object in contact with a finger, whether the (left, right) finger touches it."""
        touching: Dict[str, List[bool]] = {}
        data = self.data
        for i in range(data.ncon):
            contact = data.contact[i]
            pair = (int(contact.geom1), int(contact.geom2))
            for finger, side in ((self._finger_left, 0), (self._finger_right, 1)):
                if finger in pair:
                    other = pair[1] if pair[0] == finger else pair[0]
                    name = self._object_geom.get(other)
                    if name is not None:
                        touching.setdefault(name, [False, False])[side] = True
        return {name: (sides[0], sides[1]) for name, sides in touching.items()}

    def _update_grasp(self) -> None:
        """Attach an object that both closing fingers touch, and release it when the gripper opens.

        The attachment is a weld equality constraint between the gripper and
        the object, so the object follows the gripper in the physics.
        """
        target = 2.0 * self._targets[robot_model.JOINT_FINGER_LEFT]
        opening = self.gripper_opening()
        if self._holding is not None:
            if target > opening + GRIPPER_RELEASE_MARGIN_M:
                self.release()
            return
        if target < opening - GRIPPER_CLOSING_MARGIN_M and self._steps % 5 == 0:
            for name, (left, right) in self.finger_contacts().items():
                if left and right:
                    self._attach(name)
                    return

    def _attach(self, name: str) -> None:
        weld = self._weld[name]
        body = self._object_body[name]
        data = self.data
        gripper_rotation = data.xmat[self._gripper_body].reshape(3, 3)
        relative_position = gripper_rotation.T @ (data.xpos[body] - data.xpos[self._gripper_body])
        inverse = np.zeros(4)
        mujoco.mju_negQuat(inverse, data.xquat[self._gripper_body])
        relative_quaternion = np.zeros(4)
        mujoco.mju_mulQuat(relative_quaternion, inverse, data.xquat[body])
        # Weld eq_data layout (checked with mujoco 4.0.1): anchor on body2 (3),
        # body2's position in body1's frame (3), body2's orientation relative
        # to body1 (4), torque scale.
        eq_data = self.model.eq_data[weld]
        eq_data[0:3] = 0.0
        eq_data[3:6] = relative_position
        eq_data[6:10] = relative_quaternion
        eq_data[10] = 1.0
        data.eq_active[weld] = 1
        self._holding = name

    def _snap_to_gripper(self, name: str) -> None:
        """Place a held object at its welded pose relative to the gripper (after a teleport)."""
        weld = self._weld[name]
        eq_data = self.model.eq_data[weld]
        data = self.data
        gripper_rotation = data.xmat[self._gripper_body].reshape(3, 3)
        position = data.xpos[self._gripper_body] + gripper_rotation @ eq_data[3:6]
        quaternion = np.zeros(4)
        mujoco.mju_mulQuat(quaternion, data.xquat[self._gripper_body], eq_data[6:10])
        address = self._object_qpos[name]
        data.qpos[address:address + 3] = position
        data.qpos[address + 3:address + 7] = quaternion
        dof = self._object_dof[name]
        data.qvel[dof:dof + 6] = 0.0
        mujoco.mj_forward(self.model, data)

    def release(self) -> Optional[str]:
        """Detach the held object, which then falls or rests where it is.

        Returns the object's name, or None if nothing was held.
        """
        name = self._holding
        if name is not None:
            self.data.eq_active[self._weld[name]] = 0
            self._holding = None
        return name

    def present_recipient_hand(self, x: float, y: float, z_top: float) -> None:
        """Hold a person's open hand (a flat static box) with its top surface at (x, y, z_top) in map.

        A released object comes to rest on it. This models a person taking
        the object at a hand-over.
        """
        half_thickness = 0.01
        self.data.mocap_pos[self._hand_mocap] = (x, y, z_top - half_thickness)
        mujoco.mj_forward(self.model, self.data)

    def withdraw_recipient_hand(self) -> None:
        """Move the person's hand out of the scene (below the floor)."""
        self.data.mocap_pos[self._hand_mocap] = RECIPIENT_HAND_PARKED

    # --- objects --------------------------------------------------------------------------

    def object_pose(self, name: str) -> Tuple[float, float, float]:
        """Return the centre (x, y, z) of object `name` in map, in metres."""
        if name not in self._object_body:
            raise KeyError(f"unknown object {name!r}; objects: {', '.join(self.object_names)}")
        position = self.data.xpos[self._object_body[name]]
        return float(position[0]), float(position[1]), float(position[2])

    def set_object_position(self, name: str, position: Tuple[float, float, float]) -> None:
        """Move object `name` at once so its centre is at `position` (x, y, z) in map, at rest and upright.

        Releases the object first if the gripper holds it.
        """
        if name not in self._object_body:
            raise KeyError(f"unknown object {name!r}; objects: {', '.join(self.object_names)}")
        if len(position) != 3 or not all(math.isfinite(float(v)) for v in position):
            raise ValueError(f"position must be finite (x, y, z) in map metres, got {position!r}")
        if self._holding == name:
            self.release()
        address, dof = self._object_qpos[name], self._object_dof[name]
        self.data.qpos[address:address + 7] = (*(float(v) for v in position), 1.0, 0.0, 0.0, 0.0)
        self.data.qvel[dof:dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._render_cache.clear()

    def object_speed(self, name: str) -> float:
        """Return the linear speed of object `name` in m/s."""
        if name not in self._object_dof:
            raise KeyError(f"unknown object {name!r}; objects: {', '.join(self.object_names)}")
        dof = self._object_dof[name]
        return float(np.linalg.norm(self.data.qvel[dof:dof + 3]))

    # --- camera ---------------------------------------------------------------------------

    def camera_intrinsics(self) -> CameraIntrinsics:
        """Return the head camera's pinhole intrinsics for the configured image size."""
        fovy = math.radians(float(self.model.cam_fovy[self._camera_id]))
        focal = (self.camera_height / 2.0) / math.tan(fovy / 2.0)
        return CameraIntrinsics(focal, focal, (self.camera_width - 1) / 2.0, (self.camera_height - 1) / 2.0,
                                self.camera_width, self.camera_height)

    def camera_pose(self) -> CameraPose:
        """Return the pose of the camera's optical frame in map."""
        return CameraPose(self.data.site_xpos[self._camera_site].copy(),
                          self.data.site_xmat[self._camera_site].reshape(3, 3).copy(), self.world.frame_id)

    def camera_pose_in_base(self) -> CameraPose:
        """Return the pose of the camera's optical frame in base_link (fixed: the camera is on the mast)."""
        base_rotation = self.data.xmat[self._base_body].reshape(3, 3)
        base_position = self.data.xpos[self._base_body]
        pose = self.camera_pose()
        return CameraPose(base_rotation.T @ (pose.position - base_position), base_rotation.T @ pose.rotation,
                          "base_link")

    def render_rgb(self) -> np.ndarray:
        """Render the head camera: (H, W, 3) uint8 RGB."""
        return self._render_camera("rgb")

    def render_depth(self) -> np.ndarray:
        """Render the head camera's depth: (H, W) float32, metres along the optical axis (z)."""
        return self._render_camera("depth")

    def render_segmentation(self) -> Segmentation:
        """Render the head camera's segmentation: the geom shown at each pixel."""
        ids = self._render_camera("segmentation")
        return Segmentation(ids, self.geom_names)

    def render_top_view(self, width: int = 640, height: int = 480) -> np.ndarray:
        """Render the whole house from above (image up is map +y): (height, width, 3) uint8 RGB."""
        return self._render(TOP_VIEW_CAMERA, width, height, "rgb")

    def _render_camera(self, mode: str) -> np.ndarray:
        # Images of the same simulation step are cached, so a detector that
        # requests depth and segmentation renders each once.
        cached = self._render_cache.get(mode)
        if cached is None:
            cached = self._render(robot_model.CAMERA_NAME, self.camera_width, self.camera_height, mode)
            self._render_cache[mode] = cached
        return cached

    def _render(self, camera: str, width: int, height: int, mode: str) -> np.ndarray:
        self._check_open()
        if not (0 < width <= MAX_RENDER_WIDTH and 0 < height <= MAX_RENDER_HEIGHT):
            raise ValueError(f"render size {width}x{height} must be within "
                             f"{MAX_RENDER_WIDTH}x{MAX_RENDER_HEIGHT} pixels")
        renderer = self._renderer(width, height)
        if mode == "depth":
            renderer.enable_depth_rendering()
        elif mode == "segmentation":
            renderer.enable_segmentation_rendering()
        try:
            renderer.update_scene(self.data, camera=camera)
            image = renderer.render()
        finally:
            renderer.disable_depth_rendering()
            renderer.disable_segmentation_rendering()
        if mode == "segmentation":
            # Channel 0 is the object id and channel 1 its type. Keep geoms only.
            geom = int(mujoco.mjtObj.mjOBJ_GEOM)
            return np.where(image[..., 1] == geom, image[..., 0], -1).astype(np.int32)
        return image.copy()

    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        renderer = self._renderers.get((width, height))
        if renderer is None:
            try:
                renderer = mujoco.Renderer(self.model, height=height, width=width)
            except Exception as error:  # MuJoCo raises several types when no GL context can be made
                raise SimulatorError(
                    f"offscreen rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL', '(unset)')}: {error}. "
                    "Install Debian libegl1 and set MUJOCO_GL=egl, or install libosmesa6 and set "
                    "MUJOCO_GL=osmesa, before anything imports mujoco") from error
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            self._renderers[(width, height)] = renderer
        return renderer

    # --- life cycle -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SimulatorError("the simulator is closed; create a new Simulator")

    def close(self) -> None:
        """Free the renderers' OpenGL contexts. The simulator cannot step or render afterwards."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._closed = True

    def __enter__(self) -> "Simulator":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

