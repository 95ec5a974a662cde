"""Pick, place and hand-over on the MuJoCo robot, and the whole fetch task in closed loop."""
import math

import pytest

from omni_agent.model.result import Pose2D
from omni_agent.sim.manipulation import (
    CANCELED,
    FAILED,
    HAND_OVER,
    PICK,
    RUNNING,
    ManipulationController,
    run_manipulation,
)
from omni_agent.sim.navigation import navigate
from omni_agent.sim.robot import ROBOT
from omni_agent.sim.simulator import Simulator
from omni_agent.sim.world import load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture
def kitchen_sim(world):
    """A simulator with the robot at the kitchen place, facing the table."""
    simulator = Simulator(world)
    simulator.set_base_pose(world.places["kitchen"])
    simulator.step_for(0.3)
    yield simulator
    simulator.close()


def _pick(sim, label):
    controller = ManipulationController(sim)
    controller.pick(label)
    return controller, run_manipulation(sim, controller)


def _fetch(world, label, seed=0, object_jitter_m=0.0):
    """Run the fetch task: go to the kitchen, pick `label`, return to the start, hand it over.

    Returns the hand-over point and the object's final position, both in map.
    """
    with Simulator(world, seed=seed, object_jitter_m=object_jitter_m) as sim:
        commanded_at = sim.base_pose()
        outbound = navigate(sim, world.places["kitchen"])
        assert outbound.succeeded, outbound.reason

        controller = ManipulationController(sim)
        controller.pick(label)
        picked = run_manipulation(sim, controller)
        assert picked.succeeded, picked.reason
        assert sim.holding == label

        back = navigate(sim, commanded_at)
        assert back.succeeded, back.reason
        assert sim.holding == label

        hand_over_point = sim.hand_over_point()
        controller.hand_over()
        handed = run_manipulation(sim, controller)
        assert handed.succeeded, handed.reason
        assert sim.holding is None
        sim.step_for(1.0)
        return hand_over_point, sim.object_pose(label), sim.time_s


@pytest.mark.parametrize("label", ["apple", "banana"])
def test_fetch_and_hand_over(world, label):
    hand_over_point, final, duration_s = _fetch(world, label)
    assert math.dist(final, hand_over_point) < 0.3
    assert final[2] > 0.5                     # resting on the person's hand, not on the floor
    assert duration_s < 90.0


def test_fixed_seed_repeats_exactly(world):
    first = _fetch(world, "apple", seed=7, object_jitter_m=0.01)
    second = _fetch(world, "apple", seed=7, object_jitter_m=0.01)
    assert first[1] == second[1]
    assert first[2] == second[2]


def test_pick_moves_object_with_gripper(kitchen_sim):
    _, result = _pick(kitchen_sim, "apple")
    assert result.succeeded, result.reason
    assert result.action == PICK
    table_top = 0.75
    assert kitchen_sim.object_pose("apple")[2] > table_top + 0.04 + 0.05     # lifted off the table

    # The weld holds: the apple follows the lift and the base.
    kitchen_sim.set_lift_height(1.0)
    kitchen_sim.set_base_velocity(-0.2, 0.0, 0.0)
    kitchen_sim.step_for(1.5)
    kitchen_sim.set_base_velocity(0.0, 0.0, 0.0)
    kitchen_sim.step_for(0.5)
    grasp = kitchen_sim.grasp_point()
    apple = kitchen_sim.object_pose("apple")
    assert apple[2] == pytest.approx(1.0, abs=0.03)
    assert math.dist(apple, grasp) < 0.03


def test_pick_not_visible(world):
    with Simulator(world) as sim:
        _, result = _pick(sim, "apple")
    assert result.state == FAILED
    assert result.reason == "the apple is not visible from here"
    assert result.duration_s < 5.0


def test_pick_out_of_reach(world):
    with Simulator(world) as sim:
        sim.set_base_pose(Pose2D(3.0, 1.5, math.pi / 2.0))      # the apple is 1.3 m away
        sim.step_for(0.2)
        _, result = _pick(sim, "apple")
    assert result.state == FAILED
    assert result.reason.startswith("out of reach: 1.3 m away")


def test_pick_while_holding(kitchen_sim):
    controller, result = _pick(kitchen_sim, "banana")
    assert result.succeeded, result.reason
    controller.pick("apple")
    assert controller.state == FAILED
    assert controller.reason.startswith("already holding the banana")


def test_place_and_hand_over_need_object(kitchen_sim):
    controller = ManipulationController(kitchen_sim)
    controller.place()
    assert controller.state == FAILED
    assert controller.reason.startswith("nothing to place")
    controller.hand_over()
    assert controller.state == FAILED
    assert controller.reason.startswith("nothing to hand over")


def test_place_puts_object_on_table(kitchen_sim):
    controller, result = _pick(kitchen_sim, "apple")
    assert result.succeeded, result.reason
    controller.place()
    placed = run_manipulation(kitchen_sim, controller)
    assert placed.succeeded, placed.reason
    assert kitchen_sim.holding is None
    kitchen_sim.step_for(1.0)
    _, y, z = kitchen_sim.object_pose("apple")
    assert z == pytest.approx(0.75 + 0.04, abs=0.005)          # on the table top
    assert 2.6 < y < 3.4
    assert kitchen_sim.arm_extension() < 0.01                  # arm retracted afterwards


def test_place_without_support_ahead(kitchen_sim):
    _, result = _pick(kitchen_sim, "apple")
    assert result.succeeded, result.reason
    # Turn to face the empty middle of the kitchen. The held apple moves along.
    kitchen_sim.set_base_pose(Pose2D(2.75, 1.5, -math.pi / 2.0))
    assert math.dist(kitchen_sim.object_pose("apple"), kitchen_sim.grasp_point()) < 0.03

    controller = ManipulationController(kitchen_sim)
    controller.place()
    result = run_manipulation(kitchen_sim, controller)
    assert result.state == FAILED
    assert result.reason.startswith("nothing to place the apple on: no furniture within 1.1 m")
    assert kitchen_sim.holding == "apple"


def test_grasp_fails_when_object_moves_away(kitchen_sim):
    controller = ManipulationController(kitchen_sim)
    controller.pick("apple")
    while controller.update() == RUNNING and controller.phase != "extending the arm":
        kitchen_sim.step_for(0.05)
    assert controller.phase == "extending the arm"
    kitchen_sim.set_object_position("apple", (2.2, 3.2, 0.79))    # off to the side of the gripper
    result = run_manipulation(kitchen_sim, controller)
    assert result.state == FAILED
    assert result.reason == "grasp failed: the gripper closed without holding the apple"
    assert kitchen_sim.holding is None


def test_hand_over_point_out_of_reach(kitchen_sim):
    controller, result = _pick(kitchen_sim, "cup")
    assert result.succeeded, result.reason
    pose = kitchen_sim.base_pose()
    controller.hand_over((pose.x - 2.0, pose.y, 0.9))
    result = run_manipulation(kitchen_sim, controller)
    assert result.state == FAILED
    assert result.action == HAND_OVER
    assert result.reason.startswith("hand-over point out of reach: 2.0 m away")
    assert kitchen_sim.holding == "cup"


def test_hand_over_at_given_point(kitchen_sim):
    controller, result = _pick(kitchen_sim, "apple")
    assert result.succeeded, result.reason
    pose = kitchen_sim.base_pose()
    # 0.1 m nearer than the default point and 0.1 m to the right: the base moves to line up.
    point = (pose.x + 0.1, pose.y + 0.5, 1.0)
    controller.hand_over(point)
    result = run_manipulation(kitchen_sim, controller)
    assert result.succeeded, result.reason
    kitchen_sim.step_for(0.5)
    assert math.dist(kitchen_sim.object_pose("apple"), point) < 0.05


def test_cancel_holds_joints(kitchen_sim):
    controller = ManipulationController(kitchen_sim)
    controller.pick("apple")
    for _ in range(10):
        controller.update()
        kitchen_sim.step_for(0.05)
    controller.cancel()
    assert controller.state == CANCELED
    lift = kitchen_sim.lift_height()
    kitchen_sim.step_for(1.0)
    assert kitchen_sim.lift_height() == pytest.approx(lift, abs=0.01)
    assert controller.update() == CANCELED


def test_rejects_second_action_while_running(kitchen_sim):
    controller = ManipulationController(kitchen_sim)
    controller.pick("apple")
    with pytest.raises(RuntimeError, match="pick action is running"):
        controller.pick("banana")


def test_rejects_bad_arguments(kitchen_sim):
    controller = ManipulationController(kitchen_sim)
    with pytest.raises(ValueError, match="object_label"):
        controller.pick("")
    with pytest.raises(ValueError, match="hand_over_point"):
        controller.hand_over((1.0, float("nan"), 0.9))


def test_hand_over_offset_is_reachable():
    forward, left, up = ROBOT.hand_over_offset
    assert ROBOT.min_reach <= forward <= ROBOT.max_reach
    assert ROBOT.lift_min <= up <= ROBOT.lift_max
    assert left == 0.0
