"""Artefacts of a simulated run: a video, a path plot, an MCAP log and a text summary.

- `VideoRecorder` writes the head camera and the top view side by side, with
  a caption line, to an MP4 file and optionally to a small animated GIF.
- `plot_path` draws the world from above with the robot's path, the tracks
  of objects and the hand-over point, to a PNG file.
- `McapRecorder` writes ROS 2 messages to an MCAP file that ros2 bag,
  Foxglove and mcap_ros2 can read.
- `write_summary` writes a one-screen text summary of the run.

This module imports no ROS package at module level. McapRecorder needs the
message packages in the ament index (AMENT_PREFIX_PATH), which
scripts/env.sh sets up. OpenCV, matplotlib and Pillow are imported when used.
"""
from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from omni_agent.sim.world import World

PathLike = Union[str, pathlib.Path]

# --- video -------------------------------------------------------------------

#: Height of the caption line under the two panels, in pixels (one more after an odd panel height).
CAPTION_HEIGHT_PX = 24


class VideoRecorder:
    """Record the head camera and the top view side by side to an MP4 and optionally a GIF.

    Each frame shows the camera image on the left and the top view on the
    right, both scaled to `panel_height` pixels, with a caption line under
    them (sim time and status text). The panel widths come from the first
    frame's aspect ratios, and later frames are scaled to the same size.
    The MP4 uses OpenCV's mp4v codec at `fps` frames per second. When
    `gif_path` is given, every `gif_every`-th frame, scaled to `gif_width`
    pixels wide, goes into an animated GIF that plays at the same speed as
    the video. GIF frames are kept in memory until close().
    """

    def __init__(self, path: PathLike, fps: float = 5.0, panel_height: int = 240,
                 gif_path: Optional[PathLike] = None, gif_every: int = 5, gif_width: int = 320):
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps {fps!r} is invalid; use a positive number of frames per second, such as 5")
        if not (isinstance(panel_height, int) and 16 <= panel_height <= 1080):
            raise ValueError(f"panel_height {panel_height!r} is invalid; use 16 to 1080 pixels")
        if not (isinstance(gif_every, int) and gif_every >= 1):
            raise ValueError(f"gif_every {gif_every!r} is invalid; use a positive integer (1 keeps every frame)")
        if not (isinstance(gif_width, int) and 16 <= gif_width <= 1920):
            raise ValueError(f"gif_width {gif_width!r} is invalid; use 16 to 1920 pixels")
        self.path = pathlib.Path(path)
        self.fps = float(fps)
        self.panel_height = panel_height
        self.gif_path = pathlib.Path(gif_path) if gif_path is not None else None
        self.gif_every = gif_every
        self.gif_width = gif_width

        self.frame_count = 0
        self.gif_frame_count = 0
        #: (width, height) of every video frame in pixels; None until the first frame.
        self.frame_size: Optional[Tuple[int, int]] = None
        self._panel_widths: Optional[Tuple[int, int]] = None
        self._writer = None
        self._gif_frames: List[np.ndarray] = []
        self._closed = False

    def add_frame(self, camera_rgb: np.ndarray, top_view_rgb: np.ndarray, sim_time_s: float,
                  status: str = "") -> None:
        """Append one frame made of the two (H, W, 3) uint8 RGB images and a caption."""
        if self._closed:
            raise RuntimeError(f"the video recorder for {self.path} is closed; create a new VideoRecorder")
        camera_rgb = _check_rgb(camera_rgb, "camera_rgb")
        top_view_rgb = _check_rgb(top_view_rgb, "top_view_rgb")
        if self._panel_widths is None:
            self._panel_widths = (_scaled_width(camera_rgb, self.panel_height),
                                  _scaled_width(top_view_rgb, self.panel_height))
        frame = compose_frame(camera_rgb, top_view_rgb, self._panel_widths, self.panel_height,
                              f"t = {sim_time_s:7.2f} s  {status}")
        if self._writer is None:
            self._open_writer(frame.shape[1], frame.shape[0])

        import cv2

        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if self.gif_path is not None and self.frame_count % self.gif_every == 0:
            self._gif_frames.append(_resize_to_width(frame, self.gif_width))
            self.gif_frame_count += 1
        self.frame_count += 1

    def _open_writer(self, width: int, height: int) -> None:
        import cv2

        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV could not open {self.path} for an mp4v video of {width}x{height} "
                               f"pixels; check that the folder is writable and the name ends in .mp4")
        self._writer = writer
        self.frame_size = (width, height)

    def close(self) -> None:
        """Finish the MP4 file and write the GIF. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self.gif_path is not None and self._gif_frames:
            write_gif(self.gif_path, self._gif_frames, frame_duration_s=self.gif_every / self.fps)
        self._gif_frames = []

    def __enter__(self) -> "VideoRecorder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def compose_frame(camera_rgb: np.ndarray, top_view_rgb: np.ndarray, panel_widths: Tuple[int, int],
                  panel_height: int, caption: str) -> np.ndarray:
    """Place two RGB images side by side at the given sizes, with a caption line under them."""
    import cv2

    left = cv2.resize(camera_rgb, (panel_widths[0], panel_height), interpolation=cv2.INTER_AREA)
    right = cv2.resize(top_view_rgb, (panel_widths[1], panel_height), interpolation=cv2.INTER_AREA)
    width = panel_widths[0] + panel_widths[1]
    # One more caption row after an odd panel height keeps the frame height even.
    caption_height = CAPTION_HEIGHT_PX + panel_height % 2
    caption_bar = np.full((caption_height, width, 3), 24, dtype=np.uint8)
    text = _fit_text(caption, width - 8)
    cv2.putText(caption_bar, text, (4, CAPTION_HEIGHT_PX - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (240, 240, 240), 1, cv2.LINE_AA)
    return np.vstack([np.hstack([left, right]), caption_bar])


def write_gif(path: PathLike, frames: Sequence[np.ndarray], frame_duration_s: float) -> pathlib.Path:
    """Write RGB frames as an animated GIF that loops, showing each for `frame_duration_s` seconds."""
    from PIL import Image

    if not frames:
        raise ValueError(f"no frames to write to {path}; add at least one frame")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(frame) for frame in frames]
    # Pillow takes milliseconds, but GIF stores hundredths of a second, so 10 ms is the shortest.
    duration_ms = max(10, int(round(frame_duration_s * 1000.0)))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=True)
    return path


def _check_rgb(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB image, got shape {image.shape} "
                         f"and dtype {image.dtype}")
    return np.ascontiguousarray(image)


def _scaled_width(image: np.ndarray, height: int) -> int:
    # MP4 codecs store 4:2:0 chroma, which needs even frame sizes.
    width = int(round(image.shape[1] * height / image.shape[0]))
    return max(2, width + (width % 2))


def _resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    import cv2

    height = max(1, int(round(image.shape[0] * width / image.shape[1])))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _fit_text(text: str, max_width_px: int) -> str:
    """Shorten `text` with '...' until it fits `max_width_px` in the caption font."""
    import cv2

    # NOTE: OpenCV's Hershey fonts draw ASCII only, so other characters
    # (Chinese transcripts, for example) are shown as '?'.
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    for length in range(len(text), 0, -1):
        candidate = text if length == len(text) else text[:length].rstrip() + "..."
        (width, _), _ = cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        if width <= max_width_px:
            return candidate
    return ""


# --- path plot ---------------------------------------------------------------

Point = Union[Sequence[float], Any]   # (x, y[, ...]) or an object with .x and .y, such as Pose2D


def plot_path(world: World, poses: Sequence[Point], object_tracks: Mapping[str, Sequence[Point]],
              out_png: PathLike, hand_over_point: Optional[Point] = None, title: str = "",
              dpi: int = 100) -> pathlib.Path:
    """Draw the world from above with the robot path, object tracks and the hand-over point.

    The plot shows the rooms, walls, doors (open ones dashed, closed ones as
    solid panels), furniture and named places of `world`. `poses` is the
    robot's path in map coordinates: Pose2D objects or (x, y[, yaw]) tuples.
    Its start and end are marked, with the heading where yaws are given.
    `object_tracks` maps an object name to its positions, (x, y[, z]) in map.
    Returns the path of the PNG written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    (min_x, min_y), (max_x, max_y) = world.bounds
    margin = 0.4
    width_m, height_m = max_x - min_x + 2 * margin, max_y - min_y + 2 * margin
    # The legend takes about 2.8 inches to the right of the map.
    figure = Figure(figsize=(10.0, max(3.0, 7.2 * height_m / width_m) + 0.8), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)

    _draw_world(axes, world)
    _draw_robot_path(axes, poses)
    for index, (name, track) in enumerate(sorted(object_tracks.items())):
        _draw_object_track(axes, name, track, index)
    if hand_over_point is not None:
        x, y = _xy(hand_over_point)
        axes.plot([x], [y], marker="*", markersize=16, color="gold", markeredgecolor="black",
                  linestyle="none", label="hand-over point", zorder=6)

    axes.set_xlim(min_x - margin, max_x + margin)
    axes.set_ylim(min_y - margin, max_y + margin)
    axes.set_aspect("equal")
    axes.set_xlabel(f"x [m] ({world.frame_id})")
    axes.set_ylabel(f"y [m] ({world.frame_id})")
    axes.set_title(title or f"{world.name}: robot path")
    axes.grid(True, linewidth=0.3, alpha=0.5)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()

    out_png = pathlib.Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, format="png")
    return out_png


def _xy(point: Point) -> Tuple[float, float]:
    if hasattr(point, "x") and hasattr(point, "y"):
        return float(point.x), float(point.y)
    return float(point[0]), float(point[1])


def _yaw(point: Point) -> Optional[float]:
    if hasattr(point, "yaw"):
        return float(point.yaw)
    if not hasattr(point, "x") and len(point) >= 3:
        return float(point[2])
    return None


def _draw_world(axes, world: World) -> None:
    from matplotlib.patches import Polygon, Rectangle

    from omni_agent.sim.mjcf import door_boxes, wall_boxes

    for room in world.rooms.values():
        axes.add_patch(Rectangle(room.min, room.max[0] - room.min[0], room.max[1] - room.min[1],
                                 facecolor=room.floor_color, alpha=0.35, edgecolor="none", zorder=0))
        axes.text((room.min[0] + room.max[0]) / 2.0, room.max[1] - 0.3, room.name.replace("_", " "),
                  ha="center", va="top", fontsize=9, color="dimgray", zorder=1)
    for box in wall_boxes(world):
        axes.add_patch(Polygon(_box_corners(box), closed=True, facecolor="0.25", edgecolor="none", zorder=2))
    for box in door_boxes(world):
        axes.add_patch(Polygon(_box_corners(box), closed=True, facecolor=(0.50, 0.33, 0.20),
                               edgecolor="black", linewidth=0.5, zorder=2))
    for door in world.doors.values():
        along = (1.0, 0.0) if door.axis == "x" else (0.0, 1.0)
        half = door.width / 2.0
        ends_x = [door.center[0] - along[0] * half, door.center[0] + along[0] * half]
        ends_y = [door.center[1] - along[1] * half, door.center[1] + along[1] * half]
        if not door.closed:
            axes.plot(ends_x, ends_y, linestyle="--", color="seagreen", linewidth=1.2, zorder=2)
        state = "closed" if door.closed else "open"
        axes.annotate(f"{door.name.replace('_', ' ')} ({state})", door.center, xytext=(4, 4),
                      textcoords="offset points", fontsize=7, color="saddlebrown" if door.closed else "seagreen",
                      zorder=3)
    for item in world.furniture.values():
        corner = (item.center[0] - item.size[0] / 2.0, item.center[1] - item.size[1] / 2.0)
        axes.add_patch(Rectangle(corner, item.size[0], item.size[1], facecolor=item.color, alpha=0.8,
                                 edgecolor="black", linewidth=0.5, zorder=2))
        axes.text(item.center[0], item.center[1], item.name.replace("_", " "), ha="center", va="center",
                  fontsize=6, zorder=3)
    for name, pose in world.places.items():
        axes.plot([pose.x], [pose.y], marker="D", markersize=4, color="purple", linestyle="none", zorder=3)
        axes.annotate(name.replace("_", " "), (pose.x, pose.y), xytext=(4, -9), textcoords="offset points",
                      fontsize=7, color="purple", zorder=3)


def _box_corners(box) -> np.ndarray:
    cos_yaw, sin_yaw = math.cos(box.yaw), math.sin(box.yaw)
    hx, hy = box.half_size[0], box.half_size[1]
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        dx, dy = sx * hx, sy * hy
        corners.append((box.center[0] + cos_yaw * dx - sin_yaw * dy, box.center[1] + sin_yaw * dx + cos_yaw * dy))
    return np.array(corners)


def _draw_robot_path(axes, poses: Sequence[Point]) -> None:
    if not len(poses):
        return
    points = np.array([_xy(p) for p in poses])
    axes.plot(points[:, 0], points[:, 1], color="royalblue", linewidth=1.8, label="robot path", zorder=4)
    for pose, marker, color, label in ((poses[0], "o", "green", "start"), (poses[-1], "s", "red", "end")):
        x, y = _xy(pose)
        axes.plot([x], [y], marker=marker, markersize=8, color=color, markeredgecolor="black",
                  linestyle="none", label=f"robot {label}", zorder=5)
        yaw = _yaw(pose)
        if yaw is not None:
            axes.arrow(x, y, 0.45 * math.cos(yaw), 0.45 * math.sin(yaw), width=0.03, head_width=0.15,
                       color=color, length_includes_head=True, zorder=5)


def _draw_object_track(axes, name: str, track: Sequence[Point], index: int) -> None:
    if not len(track):
        return
    colors = ("darkorange", "crimson", "teal", "olive", "magenta")
    color = colors[index % len(colors)]
    points = np.array([_xy(p) for p in track])
    axes.plot(points[:, 0], points[:, 1], color=color, linewidth=1.4, linestyle="-", label=f"{name} track",
              zorder=4)
    axes.plot(points[:1, 0], points[:1, 1], marker="^", markersize=7, color=color, markeredgecolor="black",
              linestyle="none", label=f"{name} start", zorder=5)
    axes.plot(points[-1:, 0], points[-1:, 1], marker="v", markersize=7, color=color, markeredgecolor="black",
              linestyle="none", label=f"{name} end", zorder=5)


# --- MCAP --------------------------------------------------------------------

# The separator between message definitions in a ROS 2 schema is a line of
# 80 '=' characters, as rosbag2 writes it and mcap_ros2 splits it.
_DEFINITION_SEPARATOR = "=" * 80


class MessageDefinitionError(LookupError):
    """A ROS 2 message type whose .msg definition cannot be found or read."""


def message_type_name(msg_type: type) -> str:
    """Return the full name, such as 'geometry_msgs/msg/PoseStamped', of a generated rclpy message class."""
    module = getattr(msg_type, "__module__", "")
    parts = module.split(".")
    if len(parts) < 2 or parts[1] != "msg" or not hasattr(msg_type, "get_fields_and_field_types"):
        raise TypeError(f"{msg_type!r} is not a generated ROS 2 message class; pass a class such as "
                        f"std_msgs.msg.String")
    return f"{parts[0]}/msg/{msg_type.__name__}"


def _msg_file(package: str, name: str) -> pathlib.Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        share = pathlib.Path(get_package_share_directory(package))
    except PackageNotFoundError as error:
        raise MessageDefinitionError(
            f"message package {package!r} not found in the ament index; source its workspace "
            f"(for this project: run under scripts/env.sh) so that AMENT_PREFIX_PATH includes it") from error
    path = share / "msg" / f"{name}.msg"
    if not path.is_file():
        raise MessageDefinitionError(f"{path} not found; package {package} installs no .msg file for {name}")
    return path


def message_definition(type_name: str) -> str:
    """Return the ROS 2 message definition of `type_name` with its nested types, as MCAP stores it.

    `type_name` is 'pkg/msg/Type' or 'pkg/Type'. The text is the type's
    .msg file, followed by each nested type once (depth first), each after a
    separator line of 80 '=' and a 'MSG: pkg/Type' line. This is the
    concatenated format that rosbag2 writes and mcap_ros2 parses. The .msg
    files are found through the ament index. Raises MessageDefinitionError
    when a package or .msg file is not found.
    """
    definitions = _load_definitions(type_name)
    sections = [definitions[0][1].rstrip("\n")]
    for nested_name, text, _ in definitions[1:]:
        sections.append(f"{_DEFINITION_SEPARATOR}\nMSG: {nested_name}\n{text.rstrip()}")
    return "\n".join(sections) + "\n"


def _load_definitions(type_name: str) -> List[Tuple[str, str, Any]]:
    """Return (pkg/Type, .msg text, parsed specification) for a type and each type nested in it, depth first."""
    from rosidl_adapter.parser import parse_message_string

    parts = type_name.split("/")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != "msg"):
        raise ValueError(f"message type name {type_name!r} is invalid; use 'pkg/msg/Type' or 'pkg/Type'")

    definitions: List[Tuple[str, str, Any]] = []
    seen = set()
    pending = [f"{parts[0]}/{parts[-1]}"]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        package, name = current.split("/")
        text = _msg_file(package, name).read_text(encoding="utf-8")
        spec = parse_message_string(package, name, text)
        definitions.append((current, text, spec))
        nested = [f"{field.type.pkg_name}/{field.type.type}" for field in spec.fields
                  if not field.type.is_primitive_type()]
        # Reversed, so that the first nested field's type is written first.
        pending.extend(reversed([n for n in nested if n not in seen]))
    return definitions


def _check_encodable(type_name: str) -> None:
    """Raise NotImplementedError for a type that mcap_ros2 0.6 cannot encode."""
    for nested_name, _, spec in _load_definitions(type_name):
        for field in spec.fields:
            if field.type.type == "wstring":
                raise NotImplementedError(f"{type_name} cannot be recorded: field {nested_name}.{field.name} "
                                          f"is a wstring, which mcap_ros2 does not encode")
            if field.type.is_array and field.default_value is not None:
                raise NotImplementedError(f"{type_name} cannot be recorded: array field {nested_name}.{field.name} "
                                          f"has a default value, which mcap_ros2 0.6 rejects when encoding")


def message_to_plain(message: Any) -> Any:
    """Convert an rclpy message to nested dicts and lists that mcap_ros2's encoder accepts.

    rclpy stores fixed-size numeric arrays as numpy arrays and `byte` values
    as 1-byte `bytes`, which the encoder of mcap_ros2 0.6 rejects.
    """
    if hasattr(message, "get_fields_and_field_types"):
        return {name: message_to_plain(getattr(message, name)) for name in message.get_fields_and_field_types()}
    if isinstance(message, np.ndarray):
        return message.tolist()
    if isinstance(message, bytes) and len(message) == 1:
        return message[0]
    if isinstance(message, list):
        if message and all(isinstance(item, bytes) for item in message):
            return b"".join(message)
        return [message_to_plain(item) for item in message]
    if isinstance(message, np.generic):
        return message.item()
    return message


class McapRecorder:
    """Write ROS 2 messages to an MCAP file (ros2 profile, CDR encoding).

    Register each topic with its rclpy message class, then write messages
    with their log time. Topics of one type share one schema.
    """

    def __init__(self, path: PathLike):
        from mcap_ros2.writer import Writer

        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = open(self.path, "wb")
        try:
            self._writer = Writer(self._stream)
        except BaseException:
            self._stream.close()
            raise
        self._schemas: Dict[str, Any] = {}        # type name -> mcap Schema
        self._topics: Dict[str, Tuple[type, Any]] = {}
        self.message_count = 0
        self._closed = False

    @property
    def topics(self) -> Dict[str, str]:
        """Registered topics and the full name of each one's message type."""
        return {topic: message_type_name(msg_type) for topic, (msg_type, _) in self._topics.items()}

    def register(self, topic: str, msg_type: type) -> None:
        """Register `topic` with the rclpy message class `msg_type`.

        Registering a topic again with the same type does nothing. Raises
        ValueError for another type, MessageDefinitionError when the type's
        .msg files are not in the ament index, and NotImplementedError for a
        type that mcap_ros2 cannot encode (wstring fields, array fields with
        default values).
        """
        self._check_open()
        if not topic:
            raise ValueError("topic must not be empty")
        type_name = message_type_name(msg_type)
        if topic in self._topics:
            registered = self._topics[topic][0]
            if registered is not msg_type:
                raise ValueError(f"topic {topic!r} is registered with {message_type_name(registered)}, "
                                 f"not {type_name}; use another topic name")
            return
        schema = self._schemas.get(type_name)
        if schema is None:
            _check_encodable(type_name)
            schema = self._writer.register_msgdef(type_name, message_definition(type_name))
            self._schemas[type_name] = schema
        self._topics[topic] = (msg_type, schema)

    def write(self, topic: str, message: Any, log_time_ns: int, publish_time_ns: Optional[int] = None) -> None:
        """Write one message of a registered topic. Times are in nanoseconds, and publish time defaults to log time."""
        self._check_open()
        if topic not in self._topics:
            raise KeyError(f"topic {topic!r} is not registered; call register({topic!r}, <message class>) first")
        msg_type, schema = self._topics[topic]
        if not isinstance(message, msg_type):
            raise TypeError(f"topic {topic!r} carries {message_type_name(msg_type)}, "
                            f"got {type(message).__module__}.{type(message).__name__}")
        if not isinstance(log_time_ns, (int, np.integer)) or log_time_ns < 0:
            raise ValueError(f"log_time_ns {log_time_ns!r} is invalid; use a non-negative integer in nanoseconds")
        self._writer.write_message(topic, schema, message_to_plain(message), log_time=int(log_time_ns),
                                   publish_time=None if publish_time_ns is None else int(publish_time_ns),
                                   sequence=self.message_count)
        self.message_count += 1

    def close(self) -> None:
        """Write the MCAP summary and close the file. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.finish()
        finally:
            self._stream.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the MCAP recorder for {self.path} is closed; create a new McapRecorder")

    def __enter__(self) -> "McapRecorder":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --- summary -----------------------------------------------------------------

@dataclass
class StepRecord:
    """One status of a step of the run, with the times at which it was reported."""

    step: str             # e.g. "navigate", "pick", "hand_over"
    status: str           # e.g. "executing", "done", "failed"
    sim_time_s: float     # simulated time since the run started
    wall_time_s: float    # wall-clock time since the run started
    detail: str = ""      # the status reason, if any


def format_summary(heard: Union[str, Sequence[str]], planned: Union[str, Sequence[str]],
                   steps: Sequence[StepRecord], result: str, object_distance_m: Optional[float] = None,
                   object_name: str = "", title: str = "Run summary") -> str:
    """Return the text that write_summary writes."""
    heard_lines = [text for text in ([heard] if isinstance(heard, str) else heard) if text]
    planned_lines = [text for text in ([planned] if isinstance(planned, str) else planned) if text]
    lines = [title, "=" * len(title), ""]
    lines.append("Heard:")
    lines.extend(f"  {text!r}" for text in heard_lines)
    if not heard_lines:
        lines.append("  (nothing)")
    lines.append("Planned:")
    lines.extend(f"  {index}. {text}" for index, text in enumerate(planned_lines, start=1))
    if not planned_lines:
        lines.append("  (no plan)")
    lines.append("Steps:")
    lines.append(f"  {'step':<12} {'status':<10} {'sim time':>9} {'wall time':>10}  detail")
    for record in steps:
        lines.append(f"  {record.step:<12} {record.status:<10} {record.sim_time_s:>7.2f} s "
                     f"{record.wall_time_s:>8.2f} s  {record.detail}".rstrip())
    if not steps:
        lines.append("  (no step reported)")
    lines.append(f"Result: {result}")
    if object_distance_m is not None:
        object_phrase = f"the {object_name}" if object_name else "the object"
        lines.append(f"Distance from {object_phrase} to the hand-over point: {object_distance_m:.3f} m")
    return "\n".join(lines) + "\n"


def write_summary(path: PathLike, heard: Union[str, Sequence[str]], planned: Union[str, Sequence[str]],
                  steps: Sequence[StepRecord], result: str, object_distance_m: Optional[float] = None,
                  object_name: str = "", title: str = "Run summary") -> str:
    """Write a one-screen text summary of a run and return its text.

    It lists what was heard, the planned steps, each step status with its
    sim time and wall time, the final result and, when given, the distance
    from the object to the hand-over point in metres.
    """
    text = format_summary(heard, planned, steps, result, object_distance_m, object_name, title)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return text

