"""The simulated home as plain data, loaded from config/world.yaml.

One description feeds both simulators: the embedded MuJoCo model and the
generated Gazebo SDF world. Units: metres, radians, kilograms; frame `map`.
"""
from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import yaml

from omni_agent.model.result import Pose2D

DEFAULT_WORLD = pathlib.Path(__file__).resolve().parent.parent.parent / "config" / "world.yaml"
SHAPES = ("sphere", "capsule", "cylinder", "box")


def _default_world() -> pathlib.Path:
    """Return the package's world file: in the source tree, or installed under <prefix>/share (pip)."""
    import sys

    installed = pathlib.Path(sys.prefix) / "share" / "omni_agent" / "config" / "world.yaml"
    return DEFAULT_WORLD if DEFAULT_WORLD.is_file() or not installed.is_file() else installed


class WorldError(ValueError):
    """An invalid world description."""


@dataclass
class Wall:
    start: Tuple[float, float]
    end: Tuple[float, float]

    @property
    def length(self) -> float:
        return math.dist(self.start, self.end)


@dataclass
class Door:
    name: str
    center: Tuple[float, float]
    width: float
    axis: str          # "x" or "y": the direction the wall (and the gap) runs along
    closed: bool = False


@dataclass
class Room:
    name: str
    min: Tuple[float, float]
    max: Tuple[float, float]
    floor_color: Tuple[float, float, float] = (0.7, 0.7, 0.7)

    def contains(self, x: float, y: float) -> bool:
        return self.min[0] <= x <= self.max[0] and self.min[1] <= y <= self.max[1]


@dataclass
class Furniture:
    name: str
    room: str
    center: Tuple[float, float]
    size: Tuple[float, float, float]     # full extents x, y, z
    color: Tuple[float, float, float]

    @property
    def top_z(self) -> float:
        return self.size[2]


@dataclass
class WorldObject:
    name: str
    shape: str
    size: Tuple[float, ...]
    support: str
    xy: Tuple[float, float]
    color: Tuple[float, float, float]
    mass: float
    z: float = 0.0       # centre height, computed from the supporting furniture

    @property
    def half_height(self) -> float:
        if self.shape == "sphere":
            return self.size[0]
        if self.shape == "capsule":
            return self.size[0]          # lying on its side
        if self.shape == "cylinder":
            return self.size[1]
        return self.size[2]


@dataclass
class World:
    name: str
    frame_id: str
    wall_height: float
    wall_thickness: float
    walls: List[Wall]
    doors: Dict[str, Door]
    rooms: Dict[str, Room]
    furniture: Dict[str, Furniture]
    objects: Dict[str, WorldObject]
    start_pose: Pose2D
    places: Dict[str, Pose2D]
    source: Optional[pathlib.Path] = None
    place_aliases: Dict[str, List[str]] = field(default_factory=dict)

    @property
    def bounds(self) -> Tuple[Tuple[float, float], Tuple[float, float]]:
        """(min xy, max xy) over all rooms."""
        xs = [r.min[0] for r in self.rooms.values()] + [r.max[0] for r in self.rooms.values()]
        ys = [r.min[1] for r in self.rooms.values()] + [r.max[1] for r in self.rooms.values()]
        return (min(xs), min(ys)), (max(xs), max(ys))

    def room_at(self, x: float, y: float) -> Optional[str]:
        for room in self.rooms.values():
            if room.contains(x, y):
                return room.name
        return None

    def with_door(self, name: str, closed: bool) -> "World":
        """Return a copy of the world with one door opened or closed."""
        if name not in self.doors:
            raise WorldError(f"unknown door {name!r}; the world's doors are {sorted(self.doors)}")
        import copy

        world = copy.deepcopy(self)
        world.doors[name].closed = closed
        return world


def _pair(value, what: str) -> Tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise WorldError(f"{what} must be [x, y], got {value!r}")
    return float(value[0]), float(value[1])


def _pose(value, what: str, frame_id: str) -> Pose2D:
    if not isinstance(value, dict) or not {"x", "y"} <= set(value):
        raise WorldError(f"{what} must have x and y (metres) and yaw (radians), got {value!r}")
    return Pose2D(float(value["x"]), float(value["y"]), float(value.get("yaw", 0.0)), frame_id)


def load_world(path: Optional[str] = None) -> World:
    """Load and check a world description; errors name the file and the entry."""
    source = pathlib.Path(path) if path else _default_world()
    if not source.is_file():
        raise FileNotFoundError(f"world file {source} not found; pass an existing YAML file")
    try:
        doc = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise WorldError(f"{source} is not valid YAML: {error}") from error
    frame_id = doc.get("frame_id", "map")
    try:
        walls = [Wall(_pair(w["from"], "wall from"), _pair(w["to"], "wall to")) for w in doc.get("walls", [])]
        doors = {name: Door(name, _pair(d["center"], f"door {name} center"), float(d["width"]),
                            str(d.get("axis", "y")), bool(d.get("closed", False)))
                 for name, d in (doc.get("doors") or {}).items()}
        rooms = {name: Room(name, _pair(r["min"], f"room {name} min"), _pair(r["max"], f"room {name} max"),
                            tuple(r.get("floor_color", (0.7, 0.7, 0.7))))
                 for name, r in (doc.get("rooms") or {}).items()}
        furniture = {name: Furniture(name, str(f.get("room", "")), _pair(f["center"], f"{name} center"),
                                     tuple(float(v) for v in f["size"]), tuple(f.get("color", (0.5, 0.5, 0.5))))
                     for name, f in (doc.get("furniture") or {}).items()}
        objects = {}
        for name, o in (doc.get("objects") or {}).items():
            if o.get("shape") not in SHAPES:
                raise WorldError(f"object {name} has shape {o.get('shape')!r}; use one of {SHAPES}")
            objects[name] = WorldObject(name, o["shape"], tuple(float(v) for v in o["size"]), str(o["support"]),
                                        _pair(o["xy"], f"object {name} xy"), tuple(o.get("color", (0.5,) * 3)),
                                        float(o.get("mass", 0.1)))
        places = {name: _pose(p.get("pose"), f"place {name} pose", frame_id)
                  for name, p in (doc.get("places") or {}).items()}
        aliases = {name: list(p.get("aliases", [])) for name, p in (doc.get("places") or {}).items()}
        start = _pose((doc.get("robot") or {}).get("start_pose"), "robot start_pose", frame_id)
    except KeyError as error:
        raise WorldError(f"{source}: missing key {error} in an entry") from error

    for obj in objects.values():
        if obj.support not in furniture:
            raise WorldError(f"object {obj.name} rests on {obj.support!r}, which is not a furniture entry of {source}")
        support = furniture[obj.support]
        obj.z = support.top_z + obj.half_height
    for door in doors.values():
        if door.axis not in ("x", "y"):
            raise WorldError(f"door {door.name} axis must be 'x' or 'y', got {door.axis!r}")
    return World(str(doc.get("name", source.stem)), frame_id, float(doc.get("wall_height", 1.2)),
                 float(doc.get("wall_thickness", 0.1)), walls, doors, rooms, furniture, objects,
                 start, places, source, aliases)
