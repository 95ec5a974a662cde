"""Navigation for the simulated robot: occupancy grid, A* planner and path follower.

The grid comes from the world description (walls, closed doors, furniture),
not from sensors. The follower turns the robot's pose into base velocity
commands in base_link (REP-103), bounded in speed and acceleration, until
the goal pose is reached within tolerance, and reports why when it cannot.
Nothing here depends on ROS or on MuJoCo: `NavigationController` takes
poses and sim time and returns commands, so a ROS node can feed it odometry.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from omni_agent.model.result import Pose2D
from omni_agent.planning.geometry import normalize_angle
from omni_agent.sim.mjcf import Box, obstacle_boxes
from omni_agent.sim.robot import ROBOT, RobotGeometry
from omni_agent.sim.world import World

IDLE = "idle"
PLANNING = "planning"
FOLLOWING = "following"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
ACTIVE_STATES = (PLANNING, FOLLOWING)

Point = Tuple[float, float]


class PlanningError(Exception):
    """No path could be planned. The message gives the reason and what to check."""


@dataclass
class NavigationConfig:
    """Planner and follower settings. Lengths in metres, angles in radians, times in seconds."""

    resolution_m: float = 0.05
    safety_margin_m: float = 0.05           # added to the robot's inscribed radius for the lethal zone
    cost_radius_m: float = 0.8              # obstacles raise the cost of cells up to this far away
    cost_weight: float = 5.0                # how strongly paths keep away from obstacles
    escape_radius_m: float = 0.4            # near the start and goal, paths may cross the lethal zone
    max_linear_speed: float = 0.5
    max_angular_speed: float = 1.0
    max_linear_accel: float = 0.5
    max_angular_accel: float = 1.5
    lookahead_m: float = 0.3
    heading_switch_m: float = 0.75          # nearer than this the robot turns to the goal's yaw
    goal_tolerance_m: float = 0.03
    yaw_tolerance_rad: float = 0.03
    replan_distance_m: float = 0.5          # replan when pushed this far off the path
    stuck_timeout_s: float = 5.0
    stuck_progress_m: float = 0.05
    timeout_factor: float = 3.0             # time limit = factor * estimated time + timeout_margin_s
    timeout_margin_s: float = 20.0

    def validate(self) -> None:
        """Raise ValueError for a setting that cannot work."""
        for name in ("resolution_m", "max_linear_speed", "max_angular_speed", "max_linear_accel",
                     "max_angular_accel", "lookahead_m", "goal_tolerance_m", "yaw_tolerance_rad",
                     "stuck_timeout_s", "timeout_factor"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0.0):
                raise ValueError(f"NavigationConfig.{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class BaseCommand:
    """A base velocity in base_link: vx forward, vy left (m/s), wz counter-clockwise (rad/s)."""

    vx: float = 0.0
    vy: float = 0.0
    wz: float = 0.0


class OccupancyGrid:
    """A 2-D grid over the map: obstacles, their inflation and a cost for nearness.

    Row i, column j is the cell whose lower-left corner is at
    origin + (j, i) * resolution in map. `occupied` marks cells that overlap
    an obstacle or lie outside every room. `lethal` marks cells within the
    robot's inscribed radius plus the safety margin of an obstacle, where
    the robot's centre must not go. `cost` rises quadratically from 0 at
    `cost_radius_m` (at least the circumscribed radius plus the margin) from
    an obstacle to 1 at the lethal zone, so paths keep to the middle of
    doorways and free space.
    """

    def __init__(self, world: World, resolution_m: float = 0.05, geometry: RobotGeometry = ROBOT,
                 safety_margin_m: float = 0.05, cost_radius_m: float = 0.8):
        if not resolution_m > 0.0:
            raise ValueError(f"grid resolution must be > 0 metres, got {resolution_m!r}")
        self.world = world
        self.resolution = float(resolution_m)
        (min_x, min_y), (max_x, max_y) = world.bounds
        self.origin = (min_x - 0.5, min_y - 0.5)
        self.cols = int(math.ceil((max_x - min_x + 1.0) / self.resolution))
        self.rows = int(math.ceil((max_y - min_y + 1.0) / self.resolution))
        xs = self.origin[0] + (np.arange(self.cols) + 0.5) * self.resolution
        ys = self.origin[1] + (np.arange(self.rows) + 0.5) * self.resolution
        self._x, self._y = np.meshgrid(xs, ys)

        inside = np.zeros((self.rows, self.cols), dtype=bool)
        for room in world.rooms.values():
            inside |= ((self._x >= room.min[0]) & (self._x <= room.max[0])
                       & (self._y >= room.min[1]) & (self._y <= room.max[1]))
        self.occupied = ~inside
        for box in obstacle_boxes(world):
            self.occupied |= self._box_mask(box, pad=self.resolution / 2.0)

        self.distance = ndimage.distance_transform_edt(~self.occupied) * self.resolution
        self.lethal_radius = geometry.inscribed_radius + safety_margin_m
        self.cost_radius = max(cost_radius_m, geometry.circumscribed_radius + safety_margin_m)
        # NOTE: only the inscribed radius is lethal, so in a passage narrower
        # than the circumscribed diameter the base's corners can touch an
        # obstacle. The controller's stuck check then ends the run.
        self.lethal = self.distance <= self.lethal_radius
        span = self.cost_radius - self.lethal_radius
        self.cost = np.clip((self.cost_radius - self.distance) / span, 0.0, 1.0) ** 2
        self.cost[self.lethal] = 1.0

    def _box_mask(self, box: Box, pad: float) -> np.ndarray:
        cos_yaw, sin_yaw = math.cos(box.yaw), math.sin(box.yaw)
        dx, dy = self._x - box.center[0], self._y - box.center[1]
        along = cos_yaw * dx + sin_yaw * dy
        across = -sin_yaw * dx + cos_yaw * dy
        return (np.abs(along) <= box.half_size[0] + pad) & (np.abs(across) <= box.half_size[1] + pad)

    def cell_of(self, x: float, y: float) -> Tuple[int, int]:
        """Return the (row, column) of the cell containing map point (x, y)."""
        return (int(math.floor((y - self.origin[1]) / self.resolution)),
                int(math.floor((x - self.origin[0]) / self.resolution)))

    def center_of(self, row: int, col: int) -> Point:
        """Return the map (x, y) of a cell's centre."""
        return (self.origin[0] + (col + 0.5) * self.resolution, self.origin[1] + (row + 0.5) * self.resolution)

    def in_bounds(self, row: int, col: int) -> bool:
        return 0 <= row < self.rows and 0 <= col < self.cols

    def footprint_collides(self, pose: Pose2D, half_length: float, half_width: float) -> bool:
        """Return whether a base_link-centred rectangle at `pose` overlaps an occupied cell."""
        cos_yaw, sin_yaw = math.cos(pose.yaw), math.sin(pose.yaw)
        dx, dy = self._x - pose.x, self._y - pose.y
        along = cos_yaw * dx + sin_yaw * dy
        across = -sin_yaw * dx + cos_yaw * dy
        inside = (np.abs(along) <= half_length) & (np.abs(across) <= half_width)
        return bool(np.any(self.occupied & inside))


class AStarPlanner:
    """A* on an `OccupancyGrid`, 8-connected, with paths kept away from obstacles by the cost layer."""

    def __init__(self, world: World, config: Optional[NavigationConfig] = None, geometry: RobotGeometry = ROBOT):
        self.world = world
        self.config = config or NavigationConfig()
        self.config.validate()
        self.geometry = geometry
        self.grid = OccupancyGrid(world, self.config.resolution_m, geometry, self.config.safety_margin_m,
                                  self.config.cost_radius_m)

    def plan(self, start: Point, goal: Pose2D) -> List[Point]:
        """Return a simplified path of map points from `start` to the goal's (x, y).

        Raises PlanningError when the goal is outside the map, inside an
        obstacle, or not reachable. The message names the goal, and also the
        door when a closed door is the cause.
        """
        grid = self.grid
        label = f"({goal.x:.2f}, {goal.y:.2f})"
        goal_cell = grid.cell_of(goal.x, goal.y)
        if not grid.in_bounds(*goal_cell) or self.world.room_at(goal.x, goal.y) is None:
            raise PlanningError(f"goal {label} is outside the map; use a point inside a room")
        margin = 0.02
        if grid.footprint_collides(goal, self.geometry.base_half_length + margin,
                                   self.geometry.base_half_width + margin):
            raise PlanningError(f"goal {label} is inside an obstacle; choose a free pose")
        start_cell = grid.cell_of(*start)
        if not grid.in_bounds(*start_cell):
            raise PlanningError(f"start ({start[0]:.2f}, {start[1]:.2f}) is outside the map")
        escape_cells = int(round(self.config.escape_radius_m / grid.resolution))
        cells = astar(grid, start_cell, goal_cell, self.config.cost_weight, escape_cells)
        if cells is None:
            hint = self._closed_door_hint(start, goal)
            raise PlanningError(f"no path to {label}: the goal is unreachable or blocked{hint}")
        points = simplify_path(grid, cells, escape_cells)
        if len(points) < 2:
            points = [points[0], points[0]]
        points[0] = (float(start[0]), float(start[1]))
        points[-1] = (float(goal.x), float(goal.y))
        return points

    def _closed_door_hint(self, start: Point, goal: Pose2D) -> str:
        """Name the closed doors whose opening alone would give a path, as ' (door d closed?)'."""
        culprits = []
        for door in self.world.doors.values():
            if not door.closed:
                continue
            opened = AStarPlanner(self.world.with_door(door.name, closed=False), self.config, self.geometry)
            cells = astar(opened.grid, opened.grid.cell_of(*start), opened.grid.cell_of(goal.x, goal.y),
                          self.config.cost_weight, int(round(self.config.escape_radius_m / opened.grid.resolution)))
            if cells is not None:
                culprits.append(door.name)
        if not culprits:
            return ""
        return f" (door {culprits[0]} closed?)" if len(culprits) == 1 else f" (doors {', '.join(culprits)} closed?)"


def astar(grid: OccupancyGrid, start: Tuple[int, int], goal: Tuple[int, int], cost_weight: float,
          escape_cells: int) -> Optional[List[Tuple[int, int]]]:
    """Return the cheapest 8-connected cell path from start to goal, or None.

    Occupied cells are never entered. Lethal cells are entered only within
    `escape_cells` of the start or the goal, so a robot that is close to
    furniture can leave and a goal next to furniture can be reached. A step
    costs its length times (1 + cost_weight * cell cost).
    """
    rows, cols = grid.rows, grid.cols
    occupied = grid.occupied.ravel().tolist()
    lethal = grid.lethal.ravel().tolist()
    cost = grid.cost.ravel().tolist()
    start_index = start[0] * cols + start[1]
    goal_index = goal[0] * cols + goal[1]
    if occupied[start_index] or occupied[goal_index]:
        return None
    escape_sq = escape_cells * escape_cells

    def passable(row: int, col: int, index: int) -> bool:
        if occupied[index]:
            return False
        if not lethal[index]:
            return True
        return ((row - start[0]) ** 2 + (col - start[1]) ** 2 <= escape_sq
                or (row - goal[0]) ** 2 + (col - goal[1]) ** 2 <= escape_sq)

    diagonal = math.sqrt(2.0)
    moves = [(-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0),
             (-1, -1, diagonal), (-1, 1, diagonal), (1, -1, diagonal), (1, 1, diagonal)]

    def heuristic(row: int, col: int) -> float:
        dr, dc = abs(row - goal[0]), abs(col - goal[1])
        return (dr + dc) + (diagonal - 2.0) * min(dr, dc)

    best = {start_index: 0.0}
    parent = {start_index: -1}
    frontier = [(heuristic(*start), 0.0, start_index)]
    closed = set()
    while frontier:
        _, g_cost, index = heapq.heappop(frontier)
        if index == goal_index:
            path = []
            while index != -1:
                path.append(divmod(index, cols))
                index = parent[index]
            return path[::-1]
        if index in closed:
            continue
        closed.add(index)
        row, col = divmod(index, cols)
        for dr, dc, length in moves:
            next_row, next_col = row + dr, col + dc
            if not (0 <= next_row < rows and 0 <= next_col < cols):
                continue
            next_index = next_row * cols + next_col
            if next_index in closed or not passable(next_row, next_col, next_index):
                continue
            if dr and dc and (occupied[row * cols + next_col] or occupied[next_row * cols + col]):
                continue                        # no cutting an obstacle's corner
            new_cost = g_cost + length * (1.0 + cost_weight * cost[next_index])
            if new_cost < best.get(next_index, math.inf):
                best[next_index] = new_cost
                parent[next_index] = index
                heapq.heappush(frontier, (new_cost + heuristic(next_row, next_col), new_cost, next_index))
    return None


def simplify_path(grid: OccupancyGrid, cells: Sequence[Tuple[int, int]], escape_cells: int = 0,
                  clearance_slack_m: float = 0.05) -> List[Point]:
    """Return the path's corner points, replacing runs of cells by straight segments.

    A shortcut is taken only if no cell on it is occupied. Away from the
    path's ends it must also avoid lethal cells and pass at most
    `clearance_slack_m` closer to an obstacle than the stretch of A* path it
    replaces. Clearances beyond the grid's cost radius count as equal.
    Within `escape_cells` of the start and the goal, where A* may cross the
    lethal zone, clearances are not compared, because a start beside
    furniture would otherwise allow any shortcut.
    """
    if len(cells) <= 2:
        return [grid.center_of(*cell) for cell in cells]
    cell_array = np.array(cells)
    (start_row, start_col), (goal_row, goal_col) = cells[0], cells[-1]

    def away_from_ends(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        from_start = (rows - start_row) ** 2 + (cols - start_col) ** 2
        from_goal = (rows - goal_row) ** 2 + (cols - goal_col) ** 2
        return (from_start > escape_cells ** 2) & (from_goal > escape_cells ** 2)

    def clearance(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Return the obstacle distance capped at the cost radius, and the cap itself near the path's ends."""
        values = np.minimum(grid.distance[rows, cols], grid.cost_radius)
        return np.where(away_from_ends(rows, cols), values, grid.cost_radius)

    stretch_clearance = clearance(cell_array[:, 0], cell_array[:, 1])

    def shortcut_ok(first: int, last: int) -> bool:
        (r0, c0), (r1, c1) = cells[first], cells[last]
        samples = int(max(abs(r1 - r0), abs(c1 - c0)) * 2) + 2
        rows = np.rint(np.linspace(r0, r1, samples)).astype(int)
        cols = np.rint(np.linspace(c0, c1, samples)).astype(int)
        if np.any(grid.occupied[rows, cols]):
            return False
        if np.any(grid.lethal[rows, cols] & away_from_ends(rows, cols)):
            return False
        line = float(clearance(rows, cols).min())
        return line >= float(stretch_clearance[first:last + 1].min()) - clearance_slack_m

    points = [grid.center_of(*cells[0])]
    anchor, end = 0, 1
    while end < len(cells) - 1:
        if shortcut_ok(anchor, end + 1):
            end += 1
            continue
        points.append(grid.center_of(*cells[end]))
        anchor, end = end, end + 1
    points.append(grid.center_of(*cells[-1]))
    return points


def path_length(points: Sequence[Point]) -> float:
    """Return the length of a polyline in metres."""
    return sum(math.dist(points[i], points[i + 1]) for i in range(len(points) - 1))


@dataclass
class NavigationFeedback:
    """Progress of a running navigation goal."""

    state: str
    distance_remaining_m: float
    estimated_time_remaining_s: float
    elapsed_s: float
    replans: int


class NavigationController:
    """Drive the base to a goal pose: plan, follow the path, and report success or a reason for failure.

    Call `start(goal, time_s)`, then `update(pose, time_s)` at a steady
    control rate (for example 20 Hz of sim time) and send the returned
    `BaseCommand` to the base, until `done`. `cancel()` stops at once. The
    controller never waits forever: it fails when the robot makes no
    progress for `stuck_timeout_s` or the whole run exceeds its time limit.
    """

    def __init__(self, world: World, config: Optional[NavigationConfig] = None, geometry: RobotGeometry = ROBOT):
        self.config = config or NavigationConfig()
        self.config.validate()
        self.planner = AStarPlanner(world, self.config, geometry)
        self.state = IDLE
        self.reason = ""
        self.goal: Optional[Pose2D] = None
        self.path: List[Point] = []
        self.replans = 0
        self._segment = 0
        self._command = BaseCommand()
        self._last_time: Optional[float] = None
        self._start_time = 0.0
        self._deadline = math.inf
        self._best_progress = math.inf
        self._best_progress_time = 0.0
        self._distance_remaining = 0.0
        self._yaw_error = 0.0
        self._elapsed = 0.0

    @property
    def done(self) -> bool:
        """Whether the last goal ended (succeeded, failed or canceled)."""
        return self.state in (SUCCEEDED, FAILED, CANCELED)

    @property
    def distance_remaining(self) -> float:
        """Path length from the robot to the goal in metres (0 before a path exists)."""
        return self._distance_remaining

    @property
    def estimated_time_remaining_s(self) -> float:
        """Estimate of the time to the goal at the configured top speeds, in seconds."""
        c = self.config
        return self._distance_remaining / c.max_linear_speed + abs(self._yaw_error) / c.max_angular_speed

    def feedback(self) -> NavigationFeedback:
        """Return the current state, distance, time estimate and replan count."""
        return NavigationFeedback(self.state, self._distance_remaining, self.estimated_time_remaining_s,
                                  self._elapsed, self.replans)

    def start(self, goal: Pose2D, time_s: float) -> None:
        """Accept a new goal pose in map, replacing any running goal. Planning runs on the next update."""
        values = (goal.x, goal.y, goal.yaw)
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise ValueError(f"goal must have finite x, y (metres) and yaw (radians), got {goal!r}")
        frame_id = self.planner.world.frame_id
        if goal.frame_id != frame_id:
            raise ValueError(f"goal is in frame {goal.frame_id!r}, but the planner works in {frame_id!r}; "
                             "transform the goal first")
        self.goal = Pose2D(float(goal.x), float(goal.y), normalize_angle(float(goal.yaw)), goal.frame_id)
        self.state = PLANNING
        self.reason = ""
        self.path = []
        self.replans = 0
        self._start_time = float(time_s)
        self._last_time = None
        self._deadline = math.inf
        self._distance_remaining = 0.0
        self._elapsed = 0.0

    def cancel(self) -> None:
        """Stop following the current goal. The next command is zero."""
        if self.state in ACTIVE_STATES:
            self.state = CANCELED
            self.reason = "canceled"
        self._command = BaseCommand()

    def update(self, pose: Pose2D, time_s: float) -> BaseCommand:
        """Advance the controller with the robot's current map pose and return the base command."""
        if self.state not in ACTIVE_STATES:
            self._command = BaseCommand()
            return self._command
        self._elapsed = time_s - self._start_time
        if self.state == PLANNING:
            if not self._plan(pose, time_s):
                return self._stop()
            self.state = FOLLOWING
            c = self.config
            estimate = path_length(self.path) / c.max_linear_speed + math.pi / c.max_angular_speed
            self._deadline = time_s + c.timeout_factor * estimate + c.timeout_margin_s
        return self._follow(pose, time_s)

    # --- planning -------------------------------------------------------------------------

    def _plan(self, pose: Pose2D, time_s: float) -> bool:
        try:
            self.path = self.planner.plan((pose.x, pose.y), self.goal)
        except PlanningError as error:
            self._fail(str(error))
            return False
        self._segment = 0
        self._best_progress = math.inf
        self._best_progress_time = time_s
        return True

    def _fail(self, reason: str) -> None:
        self.state = FAILED
        self.reason = reason

    def _stop(self) -> BaseCommand:
        self._command = BaseCommand()
        return self._command

    # --- following ------------------------------------------------------------------------

    def _follow(self, pose: Pose2D, time_s: float) -> BaseCommand:
        c = self.config
        goal = self.goal
        position = (pose.x, pose.y)
        projection, cross_track = self._project(position)
        if cross_track > c.replan_distance_m:
            self.replans += 1
            if not self._plan(pose, time_s):
                return self._stop()
            projection, cross_track = self._project(position)

        remaining_path = cross_track + self._length_from(projection)
        goal_distance = math.hypot(goal.x - pose.x, goal.y - pose.y)
        self._yaw_error = normalize_angle(goal.yaw - pose.yaw)
        self._distance_remaining = remaining_path if goal_distance > c.goal_tolerance_m else 0.0

        if goal_distance <= c.goal_tolerance_m and abs(self._yaw_error) <= c.yaw_tolerance_rad:
            self.state = SUCCEEDED
            return self._stop()
        progress = remaining_path + 0.3 * abs(self._yaw_error)
        if progress < self._best_progress - c.stuck_progress_m:
            self._best_progress, self._best_progress_time = progress, time_s
        elif time_s - self._best_progress_time > c.stuck_timeout_s:
            self._fail(f"robot stuck for {c.stuck_timeout_s:.1f} s at ({pose.x:.2f}, {pose.y:.2f}), "
                       f"{remaining_path:.2f} m from the goal")
            return self._stop()
        if time_s > self._deadline:
            self._fail(f"timed out after {self._elapsed:.1f} s with {remaining_path:.2f} m to go")
            return self._stop()

        target = self._lookahead(projection, goal_distance)
        return self._limit(self._velocity_toward(pose, target, goal_distance), time_s)

    def _project(self, position: Point) -> Tuple[Tuple[int, float], float]:
        """Return the closest path point at or after the current segment and its distance.

        The point is given as (segment index, fraction along the segment).
        """
        if len(self.path) < 2:
            return (0, 1.0), (math.dist(position, self.path[0]) if self.path else 0.0)
        best = ((self._segment, 0.0), math.inf)
        for index in range(self._segment, len(self.path) - 1):
            (x0, y0), (x1, y1) = self.path[index], self.path[index + 1]
            dx, dy = x1 - x0, y1 - y0
            length_sq = dx * dx + dy * dy
            fraction = 0.0 if length_sq == 0.0 else ((position[0] - x0) * dx + (position[1] - y0) * dy) / length_sq
            fraction = min(max(fraction, 0.0), 1.0)
            distance = math.hypot(x0 + fraction * dx - position[0], y0 + fraction * dy - position[1])
            if distance < best[1] - 1e-9:
                best = ((index, fraction), distance)
        self._segment = best[0][0]
        return best

    def _length_from(self, projection: Tuple[int, float]) -> float:
        index, fraction = projection
        if index >= len(self.path) - 1:
            return 0.0
        length = (1.0 - fraction) * math.dist(self.path[index], self.path[index + 1])
        return length + path_length(self.path[index + 1:])

    def _lookahead(self, projection: Tuple[int, float], goal_distance: float) -> Point:
        """Return the path point `lookahead_m` ahead of the projection (the goal when nearer)."""
        if goal_distance <= self.config.lookahead_m or len(self.path) < 2:
            return self.goal.x, self.goal.y
        index, fraction = projection
        (x0, y0), (x1, y1) = self.path[index], self.path[index + 1]
        point = (x0 + fraction * (x1 - x0), y0 + fraction * (y1 - y0))
        left = self.config.lookahead_m
        while index < len(self.path) - 1:
            segment_end = self.path[index + 1]
            span = math.dist(point, segment_end)
            if span >= left:
                ratio = left / span
                return point[0] + ratio * (segment_end[0] - point[0]), point[1] + ratio * (segment_end[1] - point[1])
            left -= span
            point = segment_end
            index += 1
        return self.goal.x, self.goal.y

    def _velocity_toward(self, pose: Pose2D, target: Point, goal_distance: float) -> BaseCommand:
        """Return the unlimited command: translate toward `target`, turn to the travel direction or the goal yaw."""
        c = self.config
        dx, dy = target[0] - pose.x, target[1] - pose.y
        direction = math.hypot(dx, dy)
        # Slow down so that the robot can stop at the goal within the acceleration limit.
        speed = min(c.max_linear_speed, math.sqrt(2.0 * c.max_linear_accel * 0.8 * goal_distance),
                    1.5 * goal_distance)
        if goal_distance <= c.goal_tolerance_m:
            speed = 0.0
        vx_map = vy_map = 0.0
        if direction > 1e-9:
            vx_map, vy_map = speed * dx / direction, speed * dy / direction
        if goal_distance > c.heading_switch_m and direction > 1e-9:
            yaw_error = normalize_angle(math.atan2(dy, dx) - pose.yaw)
        else:
            yaw_error = self._yaw_error
        wz = math.copysign(min(c.max_angular_speed, 2.0 * abs(yaw_error),
                               math.sqrt(2.0 * c.max_angular_accel * 0.8 * abs(yaw_error))), yaw_error)
        cos_yaw, sin_yaw = math.cos(pose.yaw), math.sin(pose.yaw)
        return BaseCommand(cos_yaw * vx_map + sin_yaw * vy_map, -sin_yaw * vx_map + cos_yaw * vy_map, wz)

    def _limit(self, wanted: BaseCommand, time_s: float) -> BaseCommand:
        """Limit the change from the last command to the acceleration limits over the elapsed time."""
        c = self.config
        dt = 0.05 if self._last_time is None else max(time_s - self._last_time, 0.0)
        self._last_time = time_s
        previous = self._command
        dvx, dvy = wanted.vx - previous.vx, wanted.vy - previous.vy
        change = math.hypot(dvx, dvy)
        max_change = c.max_linear_accel * dt
        if change > max_change:
            dvx, dvy = dvx * max_change / change, dvy * max_change / change
        max_turn_change = c.max_angular_accel * dt
        dwz = min(max(wanted.wz - previous.wz, -max_turn_change), max_turn_change)
        self._command = BaseCommand(previous.vx + dvx, previous.vy + dvy, previous.wz + dwz)
        return self._command


@dataclass
class NavigationResult:
    """The outcome of `navigate`: final state, reason on failure, sim time used and final pose."""

    state: str
    reason: str
    duration_s: float
    pose: Pose2D
    feedback: List[NavigationFeedback] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.state == SUCCEEDED


def navigate(sim, goal: Pose2D, config: Optional[NavigationConfig] = None, control_period_s: float = 0.05,
             controller: Optional[NavigationController] = None) -> NavigationResult:
    """Drive `sim` (an `omni_agent.sim.simulator.Simulator`) to `goal` in map and return the outcome.

    Runs the controller at `control_period_s` of sim time and steps the
    simulator in between. It always returns because the controller's stuck
    and time limits end every run. The base is stopped at the end.
    """
    if not control_period_s > 0.0:
        raise ValueError(f"control_period_s must be > 0 seconds, got {control_period_s!r}")
    controller = controller or NavigationController(sim.world, config, sim.geometry)
    start_time = sim.time_s
    controller.start(goal, start_time)
    feedback = [controller.feedback()]
    while not controller.done:
        command = controller.update(sim.base_pose(), sim.time_s)
        feedback.append(controller.feedback())
        sim.set_base_velocity(command.vx, command.vy, command.wz)
        if controller.done:
            break
        sim.step_for(control_period_s)
    sim.set_base_velocity(0.0, 0.0, 0.0)
    return NavigationResult(controller.state, controller.reason, sim.time_s - start_time, sim.base_pose(), feedback)
