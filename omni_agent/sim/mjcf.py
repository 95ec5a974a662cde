"""Build a MuJoCo MJCF model of the home world and the robot.

Each geom's name states its kind, so a segmentation image maps to names.
The kinds are `object:<name>`, `furniture:<name>`, `wall:<i>`,
`door:<name>` (a closed door's panel), `floor:<room>` and `robot:<part>`.
When a door gap splits wall i, its pieces are `wall:<i>.<k>`. Each object
is a free body of the same name, resting on its support.
This module only writes XML and does not import MuJoCo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from omni_agent.sim.robot import (
    CONAFFINITY_OBJECT,
    CONTYPE_FLOOR,
    CONTYPE_OBJECT,
    CONTYPE_STATIC,
    GRIPPER_BODY,
    ROBOT,
    RobotGeometry,
    format_numbers,
    robot_actuator_xml,
    robot_body_xml,
)
from omni_agent.sim.world import World, WorldObject

OBJECT_PREFIX = "object:"
FURNITURE_PREFIX = "furniture:"
WALL_PREFIX = "wall:"
DOOR_PREFIX = "door:"
FLOOR_PREFIX = "floor:"
GRASP_WELD_PREFIX = "grasp:"
RECIPIENT_HAND_BODY = "recipient_hand"
TOP_VIEW_CAMERA = "top_view"

# The offscreen framebuffer bounds every render size, in pixels.
MAX_RENDER_WIDTH = 1280
MAX_RENDER_HEIGHT = 1024
DOOR_COLOR = (0.50, 0.33, 0.20)
WALL_COLOR = (0.92, 0.90, 0.86)
# Objects start this far above their support so they do not start in contact.
OBJECT_DROP_M = 0.001


@dataclass(frozen=True)
class Box:
    """An upright box in the map frame: centre (x, y, z), half sizes, yaw about +z."""

    name: str
    center: Tuple[float, float, float]
    half_size: Tuple[float, float, float]
    yaw: float
    color: Tuple[float, float, float]


def wall_boxes(world: World) -> List[Box]:
    """Return the wall boxes, with the door gaps cut out of any wall that spans a door.

    A wall that spans no door keeps the name `wall:<i>`, with i its index in
    the world file. A wall cut by a door becomes pieces `wall:<i>.<k>`. A
    wall end that meets another wall is extended by half the thickness, so
    corners are closed. Free ends, such as the edges of a door gap, stay
    where they are.
    """
    boxes = []
    half_thickness = world.wall_thickness / 2.0
    half_height = world.wall_height / 2.0
    for index, wall in enumerate(world.walls):
        length = wall.length
        if length <= 1e-9:
            continue
        ux = (wall.end[0] - wall.start[0]) / length
        uy = (wall.end[1] - wall.start[1]) / length
        pieces = [(0.0, length)]
        for door in world.doors.values():
            along_axis = abs(uy) if door.axis == "y" else abs(ux)
            if along_axis < 0.999:
                continue
            dx, dy = door.center[0] - wall.start[0], door.center[1] - wall.start[1]
            if abs(dx * uy - dy * ux) > half_thickness:
                continue                        # the door is not on this wall's line
            middle = dx * ux + dy * uy
            pieces = _subtract_interval(pieces, middle - door.width / 2.0, middle + door.width / 2.0)
        yaw = math.atan2(uy, ux)
        extend_start = _meets_other_wall(world, index, wall.start, half_thickness)
        extend_end = _meets_other_wall(world, index, wall.end, half_thickness)
        for k, (begin, end) in enumerate(pieces):
            begin_ext = begin - (half_thickness if extend_start and begin <= 1e-9 else 0.0)
            end_ext = end + (half_thickness if extend_end and end >= length - 1e-9 else 0.0)
            middle = (begin_ext + end_ext) / 2.0
            name = f"{WALL_PREFIX}{index}" if pieces == [(0.0, length)] else f"{WALL_PREFIX}{index}.{k}"
            boxes.append(Box(name,
                             (wall.start[0] + ux * middle, wall.start[1] + uy * middle, half_height),
                             ((end_ext - begin_ext) / 2.0, half_thickness, half_height), yaw, WALL_COLOR))
    return boxes


def _meets_other_wall(world: World, index: int, point: Tuple[float, float], tolerance: float) -> bool:
    """Return whether `point` lies on a wall other than wall `index` (within `tolerance` metres)."""
    for other_index, other in enumerate(world.walls):
        if other_index == index or other.length <= 1e-9:
            continue
        ux = (other.end[0] - other.start[0]) / other.length
        uy = (other.end[1] - other.start[1]) / other.length
        dx, dy = point[0] - other.start[0], point[1] - other.start[1]
        along = min(max(dx * ux + dy * uy, 0.0), other.length)
        if math.hypot(dx - along * ux, dy - along * uy) <= tolerance + 1e-9:
            return True
    return False


def _subtract_interval(pieces: List[Tuple[float, float]], cut_begin: float,
                       cut_end: float) -> List[Tuple[float, float]]:
    result = []
    for begin, end in pieces:
        if cut_end <= begin or cut_begin >= end:
            result.append((begin, end))
            continue
        if cut_begin - begin > 1e-3:
            result.append((begin, cut_begin))
        if end - cut_end > 1e-3:
            result.append((cut_end, end))
    return result


def door_boxes(world: World) -> List[Box]:
    """Return a solid panel for each closed door. Open doors are gaps and get no box."""
    boxes = []
    for door in world.doors.values():
        if not door.closed:
            continue
        yaw = math.pi / 2.0 if door.axis == "y" else 0.0
        boxes.append(Box(f"{DOOR_PREFIX}{door.name}", (door.center[0], door.center[1], world.wall_height / 2.0),
                         (door.width / 2.0, world.wall_thickness / 2.0, world.wall_height / 2.0), yaw, DOOR_COLOR))
    return boxes


def furniture_boxes(world: World) -> List[Box]:
    """Return one box per furniture entry, standing on the floor."""
    return [Box(f"{FURNITURE_PREFIX}{item.name}", (item.center[0], item.center[1], item.size[2] / 2.0),
                (item.size[0] / 2.0, item.size[1] / 2.0, item.size[2] / 2.0), 0.0, tuple(item.color))
            for item in world.furniture.values()]


def obstacle_boxes(world: World) -> List[Box]:
    """Return every static box the robot can collide with: walls, closed doors and furniture."""
    return wall_boxes(world) + door_boxes(world) + furniture_boxes(world)


def object_rest_position(item: WorldObject) -> Tuple[float, float, float]:
    """Return the centre (x, y, z) of an object resting on its support, in map."""
    return item.xy[0], item.xy[1], item.z + OBJECT_DROP_M


def _box_geom(box: Box, collision: str) -> str:
    f = format_numbers
    return (f'<geom name="{box.name}" type="box" pos="{f(*box.center)}" size="{f(*box.half_size)}" '
            f'euler="{f(0, 0, math.degrees(box.yaw))}" rgba="{f(*box.color, 1)}" {collision}/>')


def _object_body(item: WorldObject, position: Tuple[float, float, float]) -> str:
    f = format_numbers
    name = f"{OBJECT_PREFIX}{item.name}"
    # A capsule lies on its side with its axis along map y, so a gripper
    # approaching along y grasps it across its thickness.
    axis = ' zaxis="0 1 0"' if item.shape == "capsule" else ""
    half_sizes = item.size if item.shape != "box" else item.size[:3]
    collision = f'contype="{CONTYPE_OBJECT}" conaffinity="{CONAFFINITY_OBJECT}"'
    return (f'<body name="{name}" pos="{f(*position)}">'
            f'<freejoint name="{name}"/>'
            f'<geom name="{name}" type="{item.shape}" size="{f(*half_sizes)}"{axis} mass="{f(item.mass)}" '
            f'rgba="{f(*item.color, 1)}" condim="6" friction="1.0 0.01 0.001" {collision}/>'
            f'</body>')


def build_mjcf(world: World, geometry: RobotGeometry = ROBOT, timestep: float = 0.002,
               object_positions: Optional[Dict[str, Tuple[float, float, float]]] = None) -> str:
    """Return the MJCF XML of the world with the robot at the map origin.

    `object_positions` overrides an object's resting centre (x, y, z) in map;
    the simulator sets the robot's start pose through its joints.
    """
    if not timestep > 0.0:
        raise ValueError(f"timestep must be positive (seconds), got {timestep!r}")
    f = format_numbers
    positions = object_positions or {}
    static = f'contype="{CONTYPE_STATIC}" conaffinity="0"'
    (min_x, min_y), (max_x, max_y) = world.bounds
    center_x, center_y = (min_x + max_x) / 2.0, (min_y + max_y) / 2.0
    extent = max(max_x - min_x, max_y - min_y)
    # The top-view camera looks straight down from a height that fits the
    # whole house into a 4:3 image with fovy 45 degrees.
    top_height = 1.1 * max((max_y - min_y) / 2.0, (max_x - min_x) / 2.0 * 0.75) / math.tan(math.radians(22.5)) + 1.0

    floors = []
    for room in world.rooms.values():
        half_x = (room.max[0] - room.min[0]) / 2.0
        half_y = (room.max[1] - room.min[1]) / 2.0
        floors.append(f'<geom name="{FLOOR_PREFIX}{room.name}" type="box" '
                      f'pos="{f((room.min[0] + room.max[0]) / 2.0, (room.min[1] + room.max[1]) / 2.0, -0.01)}" '
                      f'size="{f(half_x, half_y, 0.01)}" rgba="{f(*room.floor_color, 1)}" '
                      f'contype="{CONTYPE_FLOOR}" conaffinity="0"/>')
    statics = [_box_geom(box, static) for box in obstacle_boxes(world)]
    objects = [_object_body(item, positions.get(item.name, object_rest_position(item)))
               for item in world.objects.values()]
    welds = [f'<weld name="{GRASP_WELD_PREFIX}{item.name}" body1="{GRIPPER_BODY}" '
             f'body2="{OBJECT_PREFIX}{item.name}" active="false" solref="0.005 1"/>'
             for item in world.objects.values()]
    newline = "\n    "
    return f"""<mujoco model="{world.name}">
  <compiler angle="degree" autolimits="true"/>
  <option timestep="{f(timestep)}" integrator="implicitfast"/>
  <statistic extent="{f(extent)}" center="{f(center_x, center_y, 0.6)}"/>
  <visual>
    <global offwidth="{MAX_RENDER_WIDTH}" offheight="{MAX_RENDER_HEIGHT}"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
    <map znear="0.005" zfar="5"/>
  </visual>
  <worldbody>
    <light name="sun" directional="true" pos="0 0 5" dir="0.2 0.3 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <camera name="{TOP_VIEW_CAMERA}" pos="{f(center_x, center_y, top_height)}" xyaxes="1 0 0 0 1 0" fovy="45"/>
    {newline.join(floors)}
    {newline.join(statics)}
    {newline.join(objects)}
    <body name="{RECIPIENT_HAND_BODY}" mocap="true" pos="0 0 -2">
      <geom name="recipient_hand" type="box" size="0.07 0.06 0.01" rgba="0.87 0.70 0.58 1" {static}/>
    </body>
    {robot_body_xml(geometry)}
  </worldbody>
  <actuator>{robot_actuator_xml(geometry)}
  </actuator>
  <equality>
    {newline.join(welds)}
  </equality>
</mujoco>
"""
