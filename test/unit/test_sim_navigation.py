"""Occupancy grid, A* planning and the path follower, driving the MuJoCo robot."""
import copy
import math

import pytest

from omni_agent.model.result import Pose2D
from omni_agent.sim.navigation import (
    CANCELED,
    FAILED,
    FOLLOWING,
    IDLE,
    PLANNING,
    SUCCEEDED,
    AStarPlanner,
    NavigationConfig,
    NavigationController,
    OccupancyGrid,
    PlanningError,
    navigate,
    path_length,
)
from omni_agent.sim.simulator import Simulator
from omni_agent.sim.world import load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def planner(world):
    return AStarPlanner(world)


@pytest.fixture
def sim(world):
    simulator = Simulator(world)
    yield simulator
    simulator.close()


def _crossing_y(path, wall_x):
    """Return the y where the polyline crosses the vertical line x = wall_x, or None."""
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        if (x0 - wall_x) * (x1 - wall_x) <= 0.0 and x0 != x1:
            return y0 + (wall_x - x0) / (x1 - x0) * (y1 - y0)
    return None


def _sample(path, step=0.02):
    for (x0, y0), (x1, y1) in zip(path, path[1:]):
        count = max(int(math.dist((x0, y0), (x1, y1)) / step), 1)
        for i in range(count + 1):
            yield x0 + (x1 - x0) * i / count, y0 + (y1 - y0) * i / count


# --- grid and planner ----------------------------------------------------------------------


def test_grid_marks_walls_and_door_gaps(world):
    grid = OccupancyGrid(world)
    assert grid.occupied[grid.cell_of(1.0, 0.5)]          # wall between living room and kitchen
    assert not grid.occupied[grid.cell_of(1.0, 2.0)]      # kitchen door gap
    assert not grid.lethal[grid.cell_of(1.0, 2.0)]
    assert grid.occupied[grid.cell_of(3.0, 3.0)]          # kitchen table
    assert grid.lethal[grid.cell_of(3.0, 2.5)]            # next to the table
    assert not grid.occupied[grid.cell_of(-1.0, -1.0)]
    assert grid.occupied[grid.cell_of(-5.3, 0.0)]         # outside the house


def test_grid_closed_door_is_occupied(world):
    grid = OccupancyGrid(world.with_door("kitchen_door", closed=True))
    assert grid.occupied[grid.cell_of(1.0, 2.0)]


def test_astar_path_through_kitchen_door(planner, world):
    path = planner.plan((world.start_pose.x, world.start_pose.y), world.places["kitchen"])
    assert path[0] == (world.start_pose.x, world.start_pose.y)
    assert path[-1] == (3.0, 2.1)
    door = world.doors["kitchen_door"]
    crossing = _crossing_y(path, door.center[0])
    assert crossing is not None
    assert abs(crossing - door.center[1]) < door.width / 2.0 - 0.25
    # Simplified: a handful of corners, not one point per cell.
    assert len(path) <= 6
    assert path_length(path) < 1.3 * math.dist(path[0], path[-1])


def test_path_keeps_clear_of_obstacles(planner, world):
    path = planner.plan((world.start_pose.x, world.start_pose.y), world.places["bedroom"])
    grid = planner.grid
    for x, y in _sample(path):
        assert not grid.occupied[grid.cell_of(x, y)], (x, y)
        near_end = min(math.dist((x, y), path[0]), math.dist((x, y), path[-1])) < 0.4
        if not near_end:
            assert not grid.lethal[grid.cell_of(x, y)], (x, y)


def test_plan_fails_behind_closed_door(world):
    closed = AStarPlanner(world.with_door("kitchen_door", closed=True))
    with pytest.raises(PlanningError) as error:
        closed.plan((-1.0, -1.0), world.places["kitchen"])
    message = str(error.value)
    assert message.startswith("no path to (3.00, 2.10): the goal is unreachable or blocked")
    assert "(door kitchen_door closed?)" in message


def test_plan_names_only_blocking_door(world):
    both = world.with_door("kitchen_door", closed=True).with_door("bedroom_door", closed=True)
    with pytest.raises(PlanningError) as error:
        AStarPlanner(both).plan((-1.0, -1.0), world.places["bedroom"])
    assert "(door bedroom_door closed?)" in str(error.value)


def test_plan_goal_inside_obstacle(planner):
    with pytest.raises(PlanningError, match=r"goal \(3.00, 3.00\) is inside an obstacle"):
        planner.plan((-1.0, -1.0), Pose2D(3.0, 3.0, 0.0))


def test_plan_goal_outside_map(planner):
    with pytest.raises(PlanningError, match=r"goal \(9.00, 0.00\) is outside the map"):
        planner.plan((-1.0, -1.0), Pose2D(9.0, 0.0, 0.0))


def test_plan_goal_next_to_furniture(planner, world):
    # The bedroom place is 0.3 m from the bed: inside the inflation, but the
    # robot's rectangle fits there, so a path must exist.
    path = planner.plan((-1.0, -1.0), world.places["bedroom"])
    assert path[-1] == (2.5, -2.7)


def test_config_rejects_zero_speed(world):
    with pytest.raises(ValueError, match="max_linear_speed"):
        NavigationController(world, NavigationConfig(max_linear_speed=0.0))


# --- controller on the simulator -----------------------------------------------------------


def test_navigate_start_to_kitchen(sim, world):
    goal = world.places["kitchen"]
    result = navigate(sim, goal)

    assert result.state == SUCCEEDED, result.reason
    assert result.duration_s < 30.0
    assert math.hypot(result.pose.x - goal.x, result.pose.y - goal.y) < 0.06
    assert abs(result.pose.yaw - goal.yaw) < 0.06
    assert world.room_at(result.pose.x, result.pose.y) == "kitchen"
    states = [feedback.state for feedback in result.feedback]
    assert states[0] == PLANNING
    assert FOLLOWING in states
    distances = [feedback.distance_remaining_m for feedback in result.feedback if feedback.state == FOLLOWING]
    assert distances[0] > 5.0
    assert distances[-1] < distances[0]
    assert result.feedback[1].estimated_time_remaining_s > distances[0] / NavigationConfig().max_linear_speed


def test_commands_respect_speed_and_acceleration(sim, world):
    config = NavigationConfig()
    controller = NavigationController(world, config)
    controller.start(world.places["kitchen"], sim.time_s)
    period = 0.05
    previous = None
    for _ in range(200):
        command = controller.update(sim.base_pose(), sim.time_s)
        assert math.hypot(command.vx, command.vy) <= config.max_linear_speed + 1e-9
        assert abs(command.wz) <= config.max_angular_speed + 1e-9
        if previous is not None:
            change = math.hypot(command.vx - previous.vx, command.vy - previous.vy)
            assert change <= config.max_linear_accel * period + 1e-9
            assert abs(command.wz - previous.wz) <= config.max_angular_accel * period + 1e-9
        previous = command
        sim.set_base_velocity(command.vx, command.vy, command.wz)
        sim.step_for(period)
    assert controller.state == FOLLOWING


def test_navigate_into_closed_kitchen_fails(world):
    closed = world.with_door("kitchen_door", closed=True)
    with Simulator(closed) as simulator:
        result = navigate(simulator, world.places["kitchen"])
    assert result.state == FAILED
    assert "no path to (3.00, 2.10)" in result.reason
    assert "door kitchen_door closed?" in result.reason
    assert result.duration_s < 1.0


def test_navigate_to_obstacle_fails(sim):
    result = navigate(sim, Pose2D(-3.0, 0.5, 0.0))                # the coffee table
    assert result.state == FAILED
    assert "inside an obstacle" in result.reason


def test_stuck_robot_fails_with_reason(world):
    # The controller's map lacks the kitchen table, the simulation has it:
    # the straight path to the far side of the table runs into it.
    no_table = copy.deepcopy(world)
    del no_table.furniture["kitchen_table"]
    config = NavigationConfig(stuck_timeout_s=2.0)
    with Simulator(world) as simulator:
        simulator.set_base_pose(Pose2D(3.0, 2.1, math.pi / 2.0))
        controller = NavigationController(no_table, config)
        result = navigate(simulator, Pose2D(3.0, 3.7, 0.0), controller=controller)
    assert result.state == FAILED
    assert result.reason.startswith("robot stuck for 2.0 s")
    assert result.pose.y < 2.6                                    # held back by the table
    assert result.duration_s < 10.0


def test_cancel_stops_commands(sim, world):
    controller = NavigationController(world)
    assert controller.state == IDLE
    controller.start(world.places["kitchen"], sim.time_s)
    for _ in range(20):
        command = controller.update(sim.base_pose(), sim.time_s)
        sim.set_base_velocity(command.vx, command.vy, command.wz)
        sim.step_for(0.05)
    assert math.hypot(command.vx, command.vy) > 0.1
    controller.cancel()
    assert controller.state == CANCELED
    assert controller.done
    command = controller.update(sim.base_pose(), sim.time_s)
    assert (command.vx, command.vy, command.wz) == (0.0, 0.0, 0.0)


def test_invalid_goal_rejected(world):
    controller = NavigationController(world)
    with pytest.raises(ValueError, match="finite"):
        controller.start(Pose2D(float("nan"), 0.0, 0.0), 0.0)
    with pytest.raises(ValueError, match="frame 'base_link'"):
        controller.start(Pose2D(1.0, 0.0, 0.0, "base_link"), 0.0)
