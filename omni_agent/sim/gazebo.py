"""Gazebo (gz-sim, Harmonic) files for the simulated home.

From one `World` (config/world.yaml) this module writes:

- `home.sdf`: the world. It contains a ground plane, a coloured floor per
  room, walls cut at their doors, closed doors as solid panels, furniture as
  static boxes and graspable objects as dynamic models with mass and
  inertia. It also sets the sun, the physics step and the gz-sim systems a
  ROS user needs: Physics, UserCommands, SceneBroadcaster, Sensors (ogre2)
  and Contact.
- `robot.sdf`: a differential-drive base with a forward camera. DiffDrive
  moves it from Twist commands; OdometryPublisher reports its world pose as
  odometry and as the odom -> base_link transform.
- `bridge.yaml`: the ros_gz_bridge configuration that connects those Gazebo
  topics to the ROS topics omni_agent's nodes use.

OdometryPublisher (gz-sim) reports the model's world pose, so the `odom`
frame coincides with the world (`map`) frame. That matches planner_node,
which takes map -> odom as identity.

Units: metres, radians, kilograms, seconds; SDF frames follow REP-103
(x forward, y left, z up).
"""
from __future__ import annotations

import math
import pathlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from omni_agent.sim.world import Door, Wall, World, WorldObject

SDF_VERSION = "1.9"
ROBOT_NAME = "omni_agent_robot"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_optical"

WORLD_FILE_NAME = "home.sdf"
ROBOT_FILE_NAME = "robot.sdf"
BRIDGE_FILE_NAME = "bridge.yaml"

#: Physics step of the world [s] and the real-time factor gz-sim aims for.
PHYSICS_STEP_S = 0.002
REAL_TIME_FACTOR = 1.0

#: Height of the robot's model origin above the ground when spawned [m].
SPAWN_HEIGHT_M = 0.01

# Gazebo topics of the robot. They are absolute, so they do not depend on
# the model or world name that gz-sim would otherwise put in front of them.
GZ_CMD_VEL_TOPIC = f"/model/{ROBOT_NAME}/cmd_vel"
GZ_ODOMETRY_TOPIC = f"/model/{ROBOT_NAME}/odometry"
GZ_TF_TOPIC = f"/model/{ROBOT_NAME}/tf"
GZ_IMAGE_TOPIC = f"/model/{ROBOT_NAME}/camera/image"
GZ_CAMERA_INFO_TOPIC = f"/model/{ROBOT_NAME}/camera/camera_info"
# DiffDrive always publishes its own wheel odometry and transform. They start
# at zero at the spawn pose instead of the world origin, so they get topics
# of their own that the bridge leaves out.
GZ_WHEEL_ODOMETRY_TOPIC = f"/model/{ROBOT_NAME}/wheel_odometry"
GZ_WHEEL_TF_TOPIC = f"/model/{ROBOT_NAME}/wheel_tf"


@dataclass(frozen=True)
class CameraConfig:
    """The robot's camera. The defaults match camera_node's hfov_deg of 69."""

    width: int = 640
    height: int = 480
    horizontal_fov_rad: float = math.radians(69.0)
    update_rate_hz: float = 15.0
    near_clip_m: float = 0.05
    far_clip_m: float = 30.0
    #: Camera position on the base [m] and downward pitch [rad] (positive pitches down).
    position_m: Tuple[float, float, float] = (0.15, 0.0, 0.85)
    pitch_rad: float = 0.35


@dataclass(frozen=True)
class BaseConfig:
    """The differential-drive base: a box chassis, two wheels and two frictionless casters."""

    chassis_size_m: Tuple[float, float, float] = (0.40, 0.30, 0.10)
    chassis_mass_kg: float = 8.0
    wheel_radius_m: float = 0.06
    wheel_width_m: float = 0.03
    wheel_separation_m: float = 0.34
    wheel_mass_kg: float = 0.5
    caster_radius_m: float = 0.03
    caster_offset_m: float = 0.15
    mast_radius_m: float = 0.02
    max_linear_velocity_m_s: float = 1.0
    max_angular_velocity_rad_s: float = 2.0
    odometry_rate_hz: float = 30.0


@dataclass(frozen=True)
class BridgedTopic:
    """One ros_gz_bridge entry. Directions are ros_gz_bridge's GZ_TO_ROS and ROS_TO_GZ."""

    ros_topic: str
    ros_type: str
    gz_topic: str
    gz_type: str
    direction: str


@dataclass(frozen=True)
class GazeboFiles:
    """Paths of the files written by write_gazebo_files()."""

    world_sdf: pathlib.Path
    robot_sdf: pathlib.Path
    bridge_yaml: pathlib.Path


# ---------------------------------------------------------------- XML helpers

def _number(value: float) -> str:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} into an SDF file; every number must be finite")
    text = f"{value:.6g}"
    return "0" if text == "-0" else text


def _numbers(*values: float) -> str:
    return " ".join(_number(v) for v in values)


def _element(parent: ET.Element, tag: str, text: Optional[str] = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _pose(parent: ET.Element, x=0.0, y=0.0, z=0.0, roll=0.0, pitch=0.0, yaw=0.0) -> ET.Element:
    return _element(parent, "pose", _numbers(x, y, z, roll, pitch, yaw))


def _material(parent: ET.Element, color: Sequence[float]) -> None:
    material = _element(parent, "material")
    rgba = _numbers(*color[:3], 1.0)
    _element(material, "ambient", rgba)
    _element(material, "diffuse", rgba)
    _element(material, "specular", _numbers(0.1, 0.1, 0.1, 1.0))


def _geometry(parent: ET.Element, shape: str, dimensions: Dict[str, object]) -> None:
    """Add <geometry><shape> with child elements such as size or radius."""
    geometry = _element(_element(parent, "geometry"), shape)
    for name, value in dimensions.items():
        text = _numbers(*value) if isinstance(value, (tuple, list)) else _number(value)
        _element(geometry, name, text)


def _shape_link(parent: ET.Element, name: str, shape: str, dimensions: Dict[str, object],
                color: Sequence[float], collide: bool = True) -> ET.Element:
    """Add a link with one visual and, when `collide`, a collision of the same geometry."""
    link = _element(parent, "link", name=name)
    if collide:
        _geometry(_element(link, "collision", name="collision"), shape, dimensions)
    visual = _element(link, "visual", name="visual")
    _geometry(visual, shape, dimensions)
    _material(visual, color)
    return link


def _inertial(link: ET.Element, mass: float, inertia: Tuple[float, float, float]) -> None:
    inertial = _element(link, "inertial")
    _element(inertial, "mass", _number(mass))
    matrix = _element(inertial, "inertia")
    for name, value in zip(("ixx", "iyy", "izz"), inertia):
        _element(matrix, name, _number(value))
    for name in ("ixy", "ixz", "iyz"):
        _element(matrix, name, "0")


def _plugin(parent: ET.Element, library: str, name: str, parameters: Optional[Dict[str, str]] = None) -> None:
    plugin = _element(parent, "plugin", filename=library, name=name)
    for key, value in (parameters or {}).items():
        _element(plugin, key, value)


def _document(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return '<?xml version="1.0"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ------------------------------------------------------------------ inertia

def box_inertia(mass: float, size: Sequence[float]) -> Tuple[float, float, float]:
    """Principal moments [kg m^2] of a solid box with full extents `size` (x, y, z)."""
    x, y, z = size
    return (mass * (y * y + z * z) / 12.0, mass * (x * x + z * z) / 12.0, mass * (x * x + y * y) / 12.0)


def cylinder_inertia(mass: float, radius: float, length: float) -> Tuple[float, float, float]:
    """Principal moments [kg m^2] of a solid cylinder along z."""
    side = mass * (3.0 * radius * radius + length * length) / 12.0
    return side, side, mass * radius * radius / 2.0


def sphere_inertia(mass: float, radius: float) -> Tuple[float, float, float]:
    """Principal moments [kg m^2] of a solid sphere."""
    moment = 2.0 * mass * radius * radius / 5.0
    return moment, moment, moment


def capsule_inertia(mass: float, radius: float, length: float) -> Tuple[float, float, float]:
    """Principal moments [kg m^2] of a solid capsule along z, whose `length` excludes the end caps.

    The mass is split between the cylinder and the two hemispheres by volume.
    Each hemisphere's centre of mass lies 3/8 of the radius from its flat face.
    """
    cylinder_volume = math.pi * radius * radius * length
    caps_volume = 4.0 / 3.0 * math.pi * radius ** 3
    cylinder_mass = mass * cylinder_volume / (cylinder_volume + caps_volume)
    caps_mass = mass - cylinder_mass
    axial = cylinder_mass * radius * radius / 2.0 + caps_mass * 2.0 * radius * radius / 5.0
    side = (cylinder_mass * (length * length / 12.0 + radius * radius / 4.0)
            + caps_mass * (2.0 * radius * radius / 5.0 + length * length / 4.0 + 3.0 * length * radius / 8.0))
    return side, side, axial


# -------------------------------------------------------------------- world

def wall_pieces(wall: Wall, doors: Sequence[Door], thickness: float) -> List[Tuple[float, float]]:
    """Return the solid stretches of `wall` as (start, end) distances [m] from wall.start.

    A door cuts a gap of its width when its centre lies on the wall's centre
    line (within half the wall thickness) and its axis runs along the wall.
    """
    length = wall.length
    if length <= 0.0:
        return []
    ux = (wall.end[0] - wall.start[0]) / length
    uy = (wall.end[1] - wall.start[1]) / length
    gaps = []
    for door in doors:
        along_x = abs(ux) >= abs(uy)
        if (door.axis == "x") != along_x:
            continue
        dx, dy = door.center[0] - wall.start[0], door.center[1] - wall.start[1]
        offset = dx * ux + dy * uy
        if abs(dx * uy - dy * ux) > thickness / 2.0 + 1e-9 or not 0.0 <= offset <= length:
            continue
        gaps.append((offset - door.width / 2.0, offset + door.width / 2.0))
    pieces, cursor = [], 0.0
    for gap_start, gap_end in sorted(gaps):
        if gap_start > cursor:
            pieces.append((cursor, min(gap_start, length)))
        cursor = max(cursor, gap_end)
    if cursor < length:
        pieces.append((cursor, length))
    return [(start, end) for start, end in pieces if end - start > 1e-6]


def _add_wall(world_element: ET.Element, index: int, wall: Wall, world: World) -> None:
    model = _element(world_element, "model", name=f"wall_{index}")
    _element(model, "static", "true")
    length = wall.length
    ux = (wall.end[0] - wall.start[0]) / length
    uy = (wall.end[1] - wall.start[1]) / length
    yaw = math.atan2(uy, ux)
    for piece, (start, end) in enumerate(wall_pieces(wall, list(world.doors.values()), world.wall_thickness)):
        middle = (start + end) / 2.0
        # Exact lengths keep door gaps at their full width. An outer corner
        # lacks a thickness/2 square on its outside, which nothing can reach.
        size = (end - start, world.wall_thickness, world.wall_height)
        link = _shape_link(model, f"segment_{piece}", "box", {"size": size}, (0.92, 0.90, 0.86))
        _pose(link, wall.start[0] + ux * middle, wall.start[1] + uy * middle, world.wall_height / 2.0, yaw=yaw)


def _add_door(world_element: ET.Element, door: Door, world: World) -> None:
    """Add a door: a closed one is a solid panel that fills the gap, an open one a threshold strip on the floor."""
    model = _element(world_element, "model", name=door.name)
    _element(model, "static", "true")
    yaw = math.pi / 2.0 if door.axis == "y" else 0.0
    if door.closed:
        size = (door.width, world.wall_thickness / 2.0, world.wall_height)
        link = _shape_link(model, "panel", "box", {"size": size}, (0.55, 0.38, 0.22))
        _pose(link, door.center[0], door.center[1], world.wall_height / 2.0, yaw=yaw)
    else:
        size = (door.width, world.wall_thickness, 0.002)
        link = _shape_link(model, "threshold", "box", {"size": size}, (0.40, 0.30, 0.20), collide=False)
        _pose(link, door.center[0], door.center[1], 0.002, yaw=yaw)


def _add_object(world_element: ET.Element, obj: WorldObject) -> None:
    model = _element(world_element, "model", name=obj.name)
    roll = 0.0
    if obj.shape == "sphere":
        shape, dimensions = "sphere", {"radius": obj.size[0]}
        inertia = sphere_inertia(obj.mass, obj.size[0])
    elif obj.shape == "cylinder":
        length = 2.0 * obj.size[1]
        shape, dimensions = "cylinder", {"radius": obj.size[0], "length": length}
        inertia = cylinder_inertia(obj.mass, obj.size[0], length)
    elif obj.shape == "capsule":
        # size = [radius, half-length of the straight part]. It lies on its side
        # along y, as in the MuJoCo model, so a gripper facing +y closes across it.
        length = 2.0 * obj.size[1]
        shape, dimensions = "capsule", {"radius": obj.size[0], "length": length}
        inertia = capsule_inertia(obj.mass, obj.size[0], length)
        roll = math.pi / 2.0
    else:  # box, size = half-extents
        full = tuple(2.0 * v for v in obj.size[:3])
        shape, dimensions = "box", {"size": full}
        inertia = box_inertia(obj.mass, full)
    _pose(model, obj.xy[0], obj.xy[1], obj.z, roll=roll)
    link = _shape_link(model, "body", shape, dimensions, obj.color)
    _inertial(link, obj.mass, inertia)


def world_sdf(world: World) -> str:
    """Return the SDF text of the home world (without the robot)."""
    root = ET.Element("sdf", version=SDF_VERSION)
    element = _element(root, "world", name=world.name)

    physics = _element(element, "physics", name="default_physics", type="dart")
    _element(physics, "max_step_size", _number(PHYSICS_STEP_S))
    _element(physics, "real_time_factor", _number(REAL_TIME_FACTOR))
    _element(physics, "real_time_update_rate", _number(1.0 / PHYSICS_STEP_S))
    _plugin(element, "gz-sim-physics-system", "gz::sim::systems::Physics")
    _plugin(element, "gz-sim-user-commands-system", "gz::sim::systems::UserCommands")
    _plugin(element, "gz-sim-scene-broadcaster-system", "gz::sim::systems::SceneBroadcaster")
    _plugin(element, "gz-sim-sensors-system", "gz::sim::systems::Sensors", {"render_engine": "ogre2"})
    _plugin(element, "gz-sim-contact-system", "gz::sim::systems::Contact")
    _element(element, "gravity", _numbers(0.0, 0.0, -9.81))

    scene = _element(element, "scene")
    _element(scene, "ambient", _numbers(0.5, 0.5, 0.5, 1.0))
    _element(scene, "background", _numbers(0.75, 0.8, 0.9, 1.0))

    sun = _element(element, "light", type="directional", name="sun")
    _element(sun, "cast_shadows", "true")
    _pose(sun, 0.0, 0.0, 10.0)
    _element(sun, "diffuse", _numbers(0.8, 0.8, 0.8, 1.0))
    _element(sun, "specular", _numbers(0.2, 0.2, 0.2, 1.0))
    _element(sun, "direction", _numbers(-0.5, 0.1, -0.9))

    (min_x, min_y), (max_x, max_y) = world.bounds
    ground = _element(element, "model", name="ground_plane")
    _element(ground, "static", "true")
    _shape_link(ground, "link", "plane", {"normal": (0.0, 0.0, 1.0),
                                          "size": (max_x - min_x + 10.0, max_y - min_y + 10.0)}, (0.5, 0.5, 0.5))
    _pose(ground, (min_x + max_x) / 2.0, (min_y + max_y) / 2.0, 0.0)

    # Floors are visual only, 1 mm above the ground plane that carries the collisions.
    for room in world.rooms.values():
        floor = _element(element, "model", name=f"floor_{room.name}")
        _element(floor, "static", "true")
        size = (room.max[0] - room.min[0], room.max[1] - room.min[1], 0.001)
        link = _shape_link(floor, "link", "box", {"size": size}, room.floor_color, collide=False)
        _pose(link, (room.min[0] + room.max[0]) / 2.0, (room.min[1] + room.max[1]) / 2.0, 0.0005)

    for index, wall in enumerate(world.walls):
        _add_wall(element, index, wall, world)
    for door in world.doors.values():
        _add_door(element, door, world)
    for item in world.furniture.values():
        model = _element(element, "model", name=item.name)
        _element(model, "static", "true")
        _pose(model, item.center[0], item.center[1], item.size[2] / 2.0)
        _shape_link(model, "body", "box", {"size": item.size}, item.color)
    for obj in world.objects.values():
        _add_object(element, obj)
    return _document(root)


# -------------------------------------------------------------------- robot

def _wheel(model: ET.Element, name: str, y: float, base: BaseConfig) -> None:
    link = _shape_link(model, name, "cylinder", {"radius": base.wheel_radius_m, "length": base.wheel_width_m},
                       (0.1, 0.1, 0.1))
    # The cylinder's axis is z, and rolling it by -pi/2 turns the axis to +y.
    _pose(link, 0.0, y, base.wheel_radius_m, roll=-math.pi / 2.0)
    _inertial(link, base.wheel_mass_kg, cylinder_inertia(base.wheel_mass_kg, base.wheel_radius_m, base.wheel_width_m))
    joint = _element(model, "joint", name=f"{name}_joint", type="revolute")
    _element(joint, "parent", BASE_FRAME)
    _element(joint, "child", name)
    axis = _element(joint, "axis")
    # Expressed in the wheel link's frame, whose z axis points along +y of the base.
    _element(axis, "xyz", _numbers(0.0, 0.0, 1.0))
    limit = _element(axis, "limit")
    _element(limit, "lower", "-1e16")
    _element(limit, "upper", "1e16")


def _caster(chassis: ET.Element, name: str, x: float, base: BaseConfig) -> None:
    """Add a frictionless sphere under the chassis, so that only the wheels drive and steer."""
    collision = _element(chassis, "collision", name=name)
    _pose(collision, x, 0.0, base.caster_radius_m)
    _geometry(collision, "sphere", {"radius": base.caster_radius_m})
    friction = _element(_element(_element(collision, "surface"), "friction"), "ode")
    _element(friction, "mu", "0")
    _element(friction, "mu2", "0")
    visual = _element(chassis, "visual", name=f"{name}_visual")
    _pose(visual, x, 0.0, base.caster_radius_m)
    _geometry(visual, "sphere", {"radius": base.caster_radius_m})
    _material(visual, (0.2, 0.2, 0.2))


def _camera_sensor(chassis: ET.Element, camera: CameraConfig) -> None:
    sensor = _element(chassis, "sensor", name="camera", type="camera")
    _pose(sensor, *camera.position_m, pitch=camera.pitch_rad)
    _element(sensor, "always_on", "true")
    _element(sensor, "update_rate", _number(camera.update_rate_hz))
    _element(sensor, "visualize", "false")
    _element(sensor, "topic", GZ_IMAGE_TOPIC)
    element = _element(sensor, "camera", name="head_camera")
    _element(element, "camera_info_topic", GZ_CAMERA_INFO_TOPIC)
    _element(element, "horizontal_fov", _number(camera.horizontal_fov_rad))
    image = _element(element, "image")
    _element(image, "width", str(int(camera.width)))
    _element(image, "height", str(int(camera.height)))
    _element(image, "format", "R8G8B8")
    clip = _element(element, "clip")
    _element(clip, "near", _number(camera.near_clip_m))
    _element(clip, "far", _number(camera.far_clip_m))
    # frame_id of the published images and camera_info: z forward, x right, y down (REP-103).
    _element(element, "optical_frame_id", CAMERA_FRAME)


def robot_sdf(camera: Optional[CameraConfig] = None, base: Optional[BaseConfig] = None) -> str:
    """Return the SDF text of the robot model: differential base, camera, odometry."""
    camera = camera or CameraConfig()
    base = base or BaseConfig()
    root = ET.Element("sdf", version=SDF_VERSION)
    model = _element(root, "model", name=ROBOT_NAME)

    chassis = _shape_link(model, BASE_FRAME, "box", {"size": base.chassis_size_m}, (0.85, 0.85, 0.88))
    chassis_z = base.wheel_radius_m + base.chassis_size_m[2] / 2.0
    # The link stays at the model origin (on the ground), so that base_link is
    # the footprint. The chassis geometry is lifted instead.
    for child in chassis.findall("collision") + chassis.findall("visual"):
        _pose(child, 0.0, 0.0, chassis_z)
    _inertial(chassis, base.chassis_mass_kg, box_inertia(base.chassis_mass_kg, base.chassis_size_m))
    _element(chassis.find("inertial"), "pose", _numbers(0.0, 0.0, chassis_z, 0.0, 0.0, 0.0))
    mast_bottom = chassis_z + base.chassis_size_m[2] / 2.0
    mast_length = camera.position_m[2] - mast_bottom
    if mast_length > 0.0:
        mast = _element(chassis, "visual", name="mast")
        _pose(mast, camera.position_m[0], camera.position_m[1], mast_bottom + mast_length / 2.0)
        _geometry(mast, "cylinder", {"radius": base.mast_radius_m, "length": mast_length})
        _material(mast, (0.3, 0.3, 0.3))
    _caster(chassis, "front_caster", base.caster_offset_m, base)
    _caster(chassis, "rear_caster", -base.caster_offset_m, base)
    _camera_sensor(chassis, camera)

    _wheel(model, "left_wheel", base.wheel_separation_m / 2.0, base)
    _wheel(model, "right_wheel", -base.wheel_separation_m / 2.0, base)

    _plugin(model, "gz-sim-diff-drive-system", "gz::sim::systems::DiffDrive", {
        "left_joint": "left_wheel_joint",
        "right_joint": "right_wheel_joint",
        "wheel_separation": _number(base.wheel_separation_m),
        "wheel_radius": _number(base.wheel_radius_m),
        "max_linear_velocity": _number(base.max_linear_velocity_m_s),
        "max_angular_velocity": _number(base.max_angular_velocity_rad_s),
        "topic": GZ_CMD_VEL_TOPIC,
        "odom_topic": GZ_WHEEL_ODOMETRY_TOPIC,
        "tf_topic": GZ_WHEEL_TF_TOPIC,
        "frame_id": ODOM_FRAME,
        "child_frame_id": BASE_FRAME,
    })
    _plugin(model, "gz-sim-odometry-publisher-system", "gz::sim::systems::OdometryPublisher", {
        "odom_frame": ODOM_FRAME,
        "robot_base_frame": BASE_FRAME,
        "odom_publish_frequency": _number(base.odometry_rate_hz),
        "odom_topic": GZ_ODOMETRY_TOPIC,
        "tf_topic": GZ_TF_TOPIC,
        "dimensions": "2",
    })
    return _document(root)


# ------------------------------------------------------------------- bridge

def bridge_topics(world: World) -> List[BridgedTopic]:
    """Return the ros_gz_bridge entries for the simulation of `world`.

    The ROS names of the robot's topics are relative, as in omni_agent's
    nodes, so that they follow the bridge node's namespace. /clock and /tf
    are global names in ROS.
    """
    return [
        BridgedTopic("/clock", "rosgraph_msgs/msg/Clock", f"/world/{world.name}/clock", "gz.msgs.Clock",
                     "GZ_TO_ROS"),
        BridgedTopic("camera/image_raw", "sensor_msgs/msg/Image", GZ_IMAGE_TOPIC, "gz.msgs.Image", "GZ_TO_ROS"),
        BridgedTopic("camera/camera_info", "sensor_msgs/msg/CameraInfo", GZ_CAMERA_INFO_TOPIC,
                     "gz.msgs.CameraInfo", "GZ_TO_ROS"),
        BridgedTopic("odom", "nav_msgs/msg/Odometry", GZ_ODOMETRY_TOPIC, "gz.msgs.Odometry", "GZ_TO_ROS"),
        BridgedTopic("/tf", "tf2_msgs/msg/TFMessage", GZ_TF_TOPIC, "gz.msgs.Pose_V", "GZ_TO_ROS"),
        BridgedTopic("cmd_vel", "geometry_msgs/msg/Twist", GZ_CMD_VEL_TOPIC, "gz.msgs.Twist", "ROS_TO_GZ"),
    ]


def bridge_yaml(world: World) -> str:
    """Return the ros_gz_bridge YAML configuration (parameter_bridge's config_file)."""
    entries = [{
        "ros_topic_name": topic.ros_topic,
        "gz_topic_name": topic.gz_topic,
        "ros_type_name": topic.ros_type,
        "gz_type_name": topic.gz_type,
        "direction": topic.direction,
    } for topic in bridge_topics(world)]
    header = f"# ros_gz_bridge configuration for {ROBOT_NAME} in world {world.name}; generated by omni_agent.sim.gazebo\n"
    return header + yaml.safe_dump(entries, sort_keys=False)


# ------------------------------------------------------------ files, spawn

def spawn_arguments(world: World, robot_file: pathlib.Path) -> List[str]:
    """Return the arguments of `ros2 run ros_gz_sim create` that put the robot at its start pose."""
    start = world.start_pose
    return ["-world", world.name, "-file", str(robot_file), "-name", ROBOT_NAME,
            "-x", _number(start.x), "-y", _number(start.y), "-z", _number(SPAWN_HEIGHT_M), "-Y", _number(start.yaw)]


def write_gazebo_files(out_dir, world: World, camera: Optional[CameraConfig] = None) -> GazeboFiles:
    """Write home.sdf, robot.sdf and bridge.yaml into `out_dir` (created if missing)."""
    directory = pathlib.Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    files = GazeboFiles(directory / WORLD_FILE_NAME, directory / ROBOT_FILE_NAME, directory / BRIDGE_FILE_NAME)
    files.world_sdf.write_text(world_sdf(world), encoding="utf-8")
    files.robot_sdf.write_text(robot_sdf(camera), encoding="utf-8")
    files.bridge_yaml.write_text(bridge_yaml(world), encoding="utf-8")
    return files
