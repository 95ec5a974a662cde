"""The simulated mobile manipulator: its dimensions, kinematics and MJCF.

A simple robot of this project's own design, loosely shaped like a Hello
Robot Stretch. Its rectangular base moves on planar joints (slide x, slide
y and a yaw hinge), each driven by a velocity actuator, so contacts stop it.
A lift moves the arm up and down a mast. The telescoping arm extends forward
along base_link +x and carries a two-finger parallel gripper whose fingers
close along base_link y. A head camera sits on top of the mast, pitched
down.

Frames follow REP-103: base_link has x forward, y left, z up, with its
origin on the floor under the centre of the base. The camera's optical
frame has z forward, x right, y down. Units: metres, radians, kilograms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

# Geom collision classes (MuJoCo contype/conaffinity bits). Two geoms collide
# when (contype1 & conaffinity2) or (contype2 & conaffinity1) is non-zero.
# The floor touches only objects, so the base slides without floor friction.
# Walls, doors and furniture touch the robot and objects. The robot never
# collides with itself.
CONTYPE_FLOOR = 1
CONTYPE_STATIC = 2
CONTYPE_OBJECT = 4
CONTYPE_ROBOT = 8
CONAFFINITY_OBJECT = CONTYPE_FLOOR | CONTYPE_STATIC | CONTYPE_OBJECT | CONTYPE_ROBOT
CONAFFINITY_ROBOT = CONTYPE_STATIC | CONTYPE_OBJECT

# Names shared by the MJCF builder, the simulator and the segmentation.
BASE_BODY = "robot:base"
GRIPPER_BODY = "robot:gripper"
FINGER_LEFT_GEOM = "robot:finger_left"
FINGER_RIGHT_GEOM = "robot:finger_right"
CAMERA_NAME = "camera_optical"
CAMERA_OPTICAL_SITE = "camera_optical"
GRASP_SITE = "robot:grasp_point"
HAND_OVER_SITE = "robot:hand_over"

JOINT_BASE_X = "base_x"
JOINT_BASE_Y = "base_y"
JOINT_BASE_YAW = "base_yaw"
JOINT_LIFT = "lift"
JOINT_ARM = "arm_extension"
JOINT_FINGER_LEFT = "finger_left"
JOINT_FINGER_RIGHT = "finger_right"
ARM_JOINTS = (JOINT_LIFT, JOINT_ARM, JOINT_FINGER_LEFT, JOINT_FINGER_RIGHT)


@dataclass(frozen=True)
class RobotGeometry:
    """Dimensions, joint ranges and speed limits of the simulated robot.

    Lengths in metres in base_link, angles in radians, speeds in m/s and
    rad/s. The lift value is the height of the arm's axis above the floor,
    the arm value is its extension beyond the fully retracted position, and
    the gripper value is the gap between the inner faces of the fingers.
    """

    base_half_length: float = 0.25          # along x
    base_half_width: float = 0.20           # along y
    base_bottom: float = 0.03               # clearance above the floor
    base_top: float = 0.25
    base_mass: float = 25.0

    mast_x: float = 0.0                     # the lift and the arm ride on the mast
    mast_top: float = 1.30

    lift_min: float = 0.15
    lift_max: float = 1.10
    lift_rest: float = 0.50                 # after a reset and between actions
    lift_speed: float = 0.25
    arm_min: float = 0.0
    arm_max: float = 0.60
    arm_speed: float = 0.25
    gripper_min: float = 0.0
    gripper_max: float = 0.15
    gripper_speed: float = 0.10

    palm_x: float = 0.11                    # palm centre ahead of the mast with the arm retracted
    finger_length: float = 0.13             # fingers span palm_x + 0.01 .. + 0.14
    finger_half_height: float = 0.015
    finger_thickness: float = 0.016
    grasp_x: float = 0.205                  # grasp point ahead of the mast with the arm retracted

    camera_x: float = 0.06
    camera_z: float = 1.25
    camera_pitch: float = 0.60              # downward tilt from the horizontal
    camera_fovy_deg: float = 50.0

    # The hand-over point: where the held object's centre is presented to a
    # person, fixed in base_link (forward, left, up).
    hand_over_offset: Tuple[float, float, float] = (0.60, 0.0, 0.90)

    max_linear_speed: float = 1.0           # the base's velocity command is clipped to these
    max_angular_speed: float = 2.0

    @property
    def circumscribed_radius(self) -> float:
        """Radius of the smallest circle around base_link's origin that contains the base."""
        return math.hypot(self.base_half_length, self.base_half_width)

    @property
    def inscribed_radius(self) -> float:
        """Radius of the largest circle around base_link's origin inside the base."""
        return min(self.base_half_length, self.base_half_width)

    def grasp_point_in_base(self, lift_m: float, extension_m: float) -> Tuple[float, float, float]:
        """Return the grasp point (x, y, z) in base_link for given lift and arm values."""
        return self.mast_x + self.grasp_x + extension_m, 0.0, lift_m

    def extension_for_forward(self, forward_m: float) -> float:
        """Return the arm extension that puts the grasp point `forward_m` ahead of base_link."""
        return forward_m - self.mast_x - self.grasp_x

    @property
    def min_reach(self) -> float:
        """Forward distance of the grasp point from base_link with the arm retracted."""
        return self.mast_x + self.grasp_x + self.arm_min

    @property
    def max_reach(self) -> float:
        """Forward distance of the grasp point from base_link with the arm fully extended."""
        return self.mast_x + self.grasp_x + self.arm_max


ROBOT = RobotGeometry()


def format_numbers(*values: float) -> str:
    """Format numbers for an MJCF attribute, space separated."""
    return " ".join(f"{value:.6g}" for value in values)


def robot_body_xml(geometry: RobotGeometry = ROBOT) -> str:
    """Return the MJCF <body> of the robot, placed at the map origin.

    The base's planar joints hold the map pose (x, y, yaw), so the start pose
    is set through qpos, not through the body position. The slide joints come
    before the yaw hinge, so they move along the map's x and y axes.
    """
    g = geometry
    f = format_numbers
    robot_collision = f'contype="{CONTYPE_ROBOT}" conaffinity="{CONAFFINITY_ROBOT}"'
    visual_only = 'contype="0" conaffinity="0" group="1"'
    chassis_half_height = (g.base_top - g.base_bottom) / 2.0
    chassis_z = (g.base_top + g.base_bottom) / 2.0
    mast_half_height = (g.mast_top - g.base_top) / 2.0
    mast_z = (g.mast_top + g.base_top) / 2.0
    finger_x = g.palm_x + 0.01 + g.finger_length / 2.0
    finger_y = g.finger_thickness / 2.0
    sin_pitch, cos_pitch = math.sin(g.camera_pitch), math.cos(g.camera_pitch)
    # A MuJoCo camera looks along its -z with +y up in the image. Image right
    # is base -y and image up tilts forward by the pitch.
    camera_axes = f(0, -1, 0, sin_pitch, 0, cos_pitch)
    # The optical frame (REP-103): x right, y down, z forward along the view.
    optical_axes = f(0, -1, 0, -sin_pitch, 0, -cos_pitch)
    hand_over = g.hand_over_offset
    half_gripper = g.gripper_max / 2.0

    return f"""
    <body name="{BASE_BODY}" pos="0 0 0">
      <joint name="{JOINT_BASE_X}" type="slide" axis="1 0 0" damping="1"/>
      <joint name="{JOINT_BASE_Y}" type="slide" axis="0 1 0" damping="1"/>
      <joint name="{JOINT_BASE_YAW}" type="hinge" axis="0 0 1" damping="0.5"/>
      <geom name="robot:chassis" type="box" size="{f(g.base_half_length, g.base_half_width, chassis_half_height)}"
            pos="{f(0, 0, chassis_z)}" mass="{f(g.base_mass)}" rgba="0.25 0.25 0.28 1" {robot_collision}/>
      <geom name="robot:wheel_left" type="cylinder" size="0.06 0.02" pos="{f(0, g.base_half_width - 0.01, 0.06)}"
            zaxis="0 1 0" rgba="0.1 0.1 0.1 1" mass="0.5" {visual_only}/>
      <geom name="robot:wheel_right" type="cylinder" size="0.06 0.02" pos="{f(0, -g.base_half_width + 0.01, 0.06)}"
            zaxis="0 1 0" rgba="0.1 0.1 0.1 1" mass="0.5" {visual_only}/>
      <geom name="robot:mast" type="box" size="{f(0.03, 0.03, mast_half_height)}" pos="{f(g.mast_x, 0, mast_z)}"
            mass="3" rgba="0.75 0.75 0.78 1" {robot_collision}/>
      <geom name="robot:head" type="box" size="0.04 0.07 0.035" pos="{f(g.camera_x - 0.03, 0, g.camera_z)}"
            mass="0.5" rgba="0.15 0.15 0.18 1" {robot_collision}/>
      <camera name="{CAMERA_NAME}" pos="{f(g.camera_x, 0, g.camera_z)}" xyaxes="{camera_axes}"
              fovy="{f(g.camera_fovy_deg)}"/>
      <site name="{CAMERA_OPTICAL_SITE}" pos="{f(g.camera_x, 0, g.camera_z)}" xyaxes="{optical_axes}"
            size="0.01" rgba="0 0 0 0"/>
      <site name="{HAND_OVER_SITE}" pos="{f(*hand_over)}" size="0.02" rgba="0.2 0.9 0.2 0" group="4"/>
      <body name="robot:lift" pos="{f(g.mast_x, 0, g.lift_rest)}" gravcomp="1">
        <joint name="{JOINT_LIFT}" type="slide" axis="0 0 1" ref="{f(g.lift_rest)}"
               range="{f(g.lift_min, g.lift_max)}" damping="150"/>
        <geom name="robot:carriage" type="box" size="0.05 0.05 0.04" mass="1" rgba="0.2 0.4 0.8 1" {visual_only}/>
        <geom name="robot:sleeve" type="box" size="0.11 0.03 0.025" pos="0.12 0 0" mass="0.3"
              rgba="0.3 0.3 0.33 1" {visual_only}/>
        <body name="robot:arm" pos="0 0 0" gravcomp="1">
          <joint name="{JOINT_ARM}" type="slide" axis="1 0 0" range="{f(g.arm_min, g.arm_max)}" damping="70"/>
          <geom name="robot:arm" type="box" size="0.185 0.022 0.018" pos="-0.065 0 0" mass="0.6"
                rgba="0.55 0.55 0.6 1" {visual_only}/>
          <body name="{GRIPPER_BODY}" pos="{f(g.palm_x, 0, 0)}" gravcomp="1">
            <geom name="robot:palm" type="box" size="{f(0.01, half_gripper + g.finger_thickness, g.finger_half_height)}"
                  mass="0.2" rgba="0.2 0.2 0.2 1" {robot_collision}/>
            <site name="{GRASP_SITE}" pos="{f(g.grasp_x - g.palm_x, 0, 0)}" size="0.01" rgba="1 0 1 0"/>
            <body name="robot:finger_left" pos="{f(finger_x - g.palm_x, 0, 0)}" gravcomp="1">
              <joint name="{JOINT_FINGER_LEFT}" type="slide" axis="0 1 0" range="{f(0, half_gripper)}" damping="6"/>
              <geom name="{FINGER_LEFT_GEOM}" type="box" pos="{f(0, finger_y, 0)}"
                    size="{f(g.finger_length / 2.0, g.finger_thickness / 2.0, g.finger_half_height)}"
                    mass="0.05" friction="1.5 0.02 0.002" rgba="0.9 0.5 0.1 1" {robot_collision}/>
            </body>
            <body name="robot:finger_right" pos="{f(finger_x - g.palm_x, 0, 0)}" gravcomp="1">
              <joint name="{JOINT_FINGER_RIGHT}" type="slide" axis="0 -1 0" range="{f(0, half_gripper)}" damping="6"/>
              <geom name="{FINGER_RIGHT_GEOM}" type="box" pos="{f(0, -finger_y, 0)}"
                    size="{f(g.finger_length / 2.0, g.finger_thickness / 2.0, g.finger_half_height)}"
                    mass="0.05" friction="1.5 0.02 0.002" rgba="0.9 0.5 0.1 1" {robot_collision}/>
            </body>
          </body>
        </body>
      </body>
    </body>"""


def robot_actuator_xml(geometry: RobotGeometry = ROBOT) -> str:
    """Return the MJCF actuators: base velocity servos and joint position servos.

    Velocity servos with a force limit let contacts stop the base, so it
    cannot push through a wall. The arm joints use position servos, and the
    simulator moves their set-points at the joint speed limits.
    """
    g = geometry
    f = format_numbers
    half_gripper = g.gripper_max / 2.0
    return f"""
    <velocity name="{JOINT_BASE_X}" joint="{JOINT_BASE_X}" kv="1500" forcelimited="true" forcerange="-400 400"
              ctrlrange="{f(-g.max_linear_speed, g.max_linear_speed)}"/>
    <velocity name="{JOINT_BASE_Y}" joint="{JOINT_BASE_Y}" kv="1500" forcelimited="true" forcerange="-400 400"
              ctrlrange="{f(-g.max_linear_speed, g.max_linear_speed)}"/>
    <velocity name="{JOINT_BASE_YAW}" joint="{JOINT_BASE_YAW}" kv="100" forcelimited="true" forcerange="-80 80"
              ctrlrange="{f(-g.max_angular_speed, g.max_angular_speed)}"/>
    <position name="{JOINT_LIFT}" joint="{JOINT_LIFT}" kp="4000" forcelimited="true" forcerange="-300 300"
              ctrlrange="{f(g.lift_min, g.lift_max)}"/>
    <position name="{JOINT_ARM}" joint="{JOINT_ARM}" kp="2000" forcelimited="true" forcerange="-150 150"
              ctrlrange="{f(g.arm_min, g.arm_max)}"/>
    <position name="{JOINT_FINGER_LEFT}" joint="{JOINT_FINGER_LEFT}" kp="400" forcelimited="true" forcerange="-12 12"
              ctrlrange="{f(0, half_gripper)}"/>
    <position name="{JOINT_FINGER_RIGHT}" joint="{JOINT_FINGER_RIGHT}" kp="400" forcelimited="true" forcerange="-12 12"
              ctrlrange="{f(0, half_gripper)}"/>"""
