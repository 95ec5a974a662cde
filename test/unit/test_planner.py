"""Tests of pose geometry, the planner's decisions and the task tracker."""
import math
import pathlib

import pytest

from omni_agent.model.command_parser import CommandParser
from omni_agent.model.result import (
    ACTION_BRING,
    ACTION_MOVE,
    ACTION_NAVIGATE,
    ACTION_PICK,
    ACTION_PLACE,
    ACTION_STOP,
    ACTION_UNKNOWN,
    CommandResult,
    Pose2D,
)
from omni_agent.model.vocabulary import load_vocabulary
from omni_agent.planning.geometry import (
    compose,
    distance,
    normalize_angle,
    quaternion_to_yaw,
    yaw_to_quaternion,
)
from omni_agent.planning.planner import (
    ACCEPTED,
    DONE,
    EXECUTING,
    FAILED,
    REJECTED,
    STEP_HAND_OVER,
    STEP_NAVIGATE,
    STEP_PICK,
    STEP_PLACE,
    Planner,
    PlannerConfig,
    TaskTracker,
    TrackerConfig,
)

DATA_DIR = pathlib.Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def vocabulary():
    return load_vocabulary(str(DATA_DIR / "places.yaml"), str(DATA_DIR / "objects.yaml"))


@pytest.fixture
def planner(vocabulary):
    return Planner(vocabulary)


@pytest.fixture
def robot():
    return Pose2D(1.0, 2.0, math.pi / 2)


def make_result(action, uid="u1", confidence=1.0, **fields):
    return CommandResult(action, confidence=confidence, utterance_id=uid, **fields)


def assert_pose(pose, x, y, yaw):
    assert pose.x == pytest.approx(x)
    assert pose.y == pytest.approx(y)
    assert normalize_angle(pose.yaw - yaw) == pytest.approx(0.0, abs=1e-9)


def select_statuses(events, uid):
    return [event for event in events if event.kind == "status" and event.utterance_id == uid]


# --- geometry --------------------------------------------------------------------

@pytest.mark.parametrize("yaw, forward_m, left_m, x, y", [
    (0.0, 2.0, 0.0, 3.0, 2.0),
    (0.0, 0.0, 1.0, 1.0, 3.0),
    (math.pi / 2, 2.0, 0.0, 1.0, 4.0),
    (math.pi / 2, 0.0, 1.0, 0.0, 2.0),
    (math.pi, 2.0, 1.0, -1.0, 1.0),
    (-math.pi / 2, 1.0, 1.0, 2.0, 1.0),
])
def test_compose_in_rotated_frame(yaw, forward_m, left_m, x, y):
    pose = compose(Pose2D(1.0, 2.0, yaw, "odom"), forward_m, left_m, 0.0)

    assert_pose(pose, x, y, yaw)
    assert pose.frame_id == "odom"


def test_compose_turn_wraps_yaw():
    pose = compose(Pose2D(0.0, 0.0, 3.0), 0.0, 0.0, 1.0)

    assert pose.yaw == pytest.approx(4.0 - 2 * math.pi)


def test_compose_moves_before_turning():
    pose = compose(Pose2D(0.0, 0.0, 0.0), 1.0, 0.0, math.pi / 2)

    assert_pose(pose, 1.0, 0.0, math.pi / 2)


@pytest.mark.parametrize("angle, wrapped", [
    (0.0, 0.0),
    (3 * math.pi / 2, -math.pi / 2),
    (-3 * math.pi / 2, math.pi / 2),
    (2 * math.pi, 0.0),
    (math.pi, -math.pi),
    (-math.pi, -math.pi),
    (7.0, 7.0 - 2 * math.pi),
    (-20.0, -20.0 + 6 * math.pi),
])
def test_normalize_angle(angle, wrapped):
    assert normalize_angle(angle) == pytest.approx(wrapped, abs=1e-12)


@pytest.mark.parametrize("yaw", [0.0, 0.3, math.pi / 2, -math.pi / 2, 3.0, -3.0])
def test_quaternion_round_trip(yaw):
    quaternion = yaw_to_quaternion(yaw)

    assert quaternion_to_yaw(*quaternion) == pytest.approx(yaw)
    assert math.fsum(c * c for c in quaternion) == pytest.approx(1.0)


def test_quaternion_of_quarter_turn():
    x, y, z, w = yaw_to_quaternion(math.pi / 2)

    assert (x, y) == (0.0, 0.0)
    assert z == pytest.approx(math.sqrt(0.5))
    assert w == pytest.approx(math.sqrt(0.5))


def test_distance_ignores_yaw():
    assert distance(Pose2D(0.0, 0.0, 1.0), Pose2D(3.0, 4.0, -2.0)) == pytest.approx(5.0)


# --- Planner decisions -------------------------------------------------------------

def test_plan_move_from_robot_pose(planner, robot):
    decision = planner.plan(make_result(ACTION_MOVE, forward_m=2.0, left_m=1.0), robot)

    assert decision.accepted
    assert decision.utterance_id == "u1"
    assert [step.kind for step in decision.steps] == [STEP_NAVIGATE]
    assert_pose(decision.steps[0].goal, 0.0, 4.0, math.pi / 2)


def test_plan_turn_only(planner, robot):
    decision = planner.plan(make_result(ACTION_MOVE, turn_rad=-math.pi / 2), robot)

    assert decision.accepted
    assert_pose(decision.steps[0].goal, 1.0, 2.0, 0.0)


def test_plan_navigate_to_place(planner, vocabulary, robot):
    decision = planner.plan(make_result(ACTION_NAVIGATE, place="kitchen"), robot)

    assert decision.accepted
    assert [step.kind for step in decision.steps] == [STEP_NAVIGATE]
    assert decision.steps[0].goal == vocabulary.place_poses["kitchen"]
    assert decision.steps[0].place == "kitchen"


def test_plan_unknown_place(planner, vocabulary, robot):
    decision = planner.plan(make_result(ACTION_NAVIGATE, place="garage"), robot)

    assert not decision.accepted
    assert "unknown place 'garage'" in decision.reason
    for name in vocabulary.place_names():
        assert name in decision.reason


def test_plan_navigate_without_place(planner, robot):
    decision = planner.plan(make_result(ACTION_NAVIGATE), robot)

    assert not decision.accepted
    assert "names no place" in decision.reason


def test_plan_unknown_object(planner, robot):
    decision = planner.plan(make_result(ACTION_BRING, object_label="unicorn"), robot)

    assert not decision.accepted
    assert "unknown object 'unicorn'" in decision.reason
    assert "apple" in decision.reason


@pytest.mark.parametrize("action", [ACTION_BRING, ACTION_PICK])
def test_plan_ungraspable_object(planner, robot, action):
    decision = planner.plan(make_result(action, object_label="piano"), robot)

    assert not decision.accepted
    assert decision.reason.startswith("the piano cannot be grasped by this robot; it can grasp: ")
    assert "apple" in decision.reason
    assert "piano" not in decision.reason.split("it can grasp: ")[1]


def test_plan_pick_without_object(planner, robot):
    decision = planner.plan(make_result(ACTION_PICK), robot)

    assert not decision.accepted
    assert "names no object" in decision.reason


def test_plan_low_confidence(planner, robot):
    result = make_result(ACTION_NAVIGATE, confidence=0.2, place="kitchen", transcript="go to the kitchen")

    decision = planner.plan(result, robot)

    assert not decision.accepted
    assert "confidence 0.20" in decision.reason
    assert "min_confidence=0.25" in decision.reason


def test_plan_unknown_action(planner, robot):
    decision = planner.plan(make_result(ACTION_UNKNOWN, transcript="sing a song"), robot)

    assert not decision.accepted
    assert "'sing a song'" in decision.reason


def test_plan_motion_too_long(planner, robot):
    decision = planner.plan(make_result(ACTION_MOVE, forward_m=15.0, left_m=15.0), robot)

    assert not decision.accepted
    assert "21.2 m" in decision.reason
    assert "max_motion_m=20.0" in decision.reason


def test_plan_motion_limit_configurable(vocabulary, robot):
    planner = Planner(vocabulary, PlannerConfig(max_motion_m=5.0))

    assert planner.plan(make_result(ACTION_MOVE, forward_m=5.0), robot).accepted
    assert not planner.plan(make_result(ACTION_MOVE, forward_m=-5.5), robot).accepted


def test_plan_zero_move(planner, robot):
    decision = planner.plan(make_result(ACTION_MOVE), robot)

    assert not decision.accepted
    assert "zero distance" in decision.reason


def test_plan_bring_with_place(planner, vocabulary, robot):
    decision = planner.plan(make_result(ACTION_BRING, object_label="apple", place="kitchen"), robot)

    assert decision.accepted
    assert [step.kind for step in decision.steps] == [STEP_NAVIGATE, STEP_PICK, STEP_NAVIGATE, STEP_HAND_OVER]
    assert decision.steps[0].goal == vocabulary.place_poses["kitchen"]
    assert decision.steps[1].object_label == "apple"
    assert decision.steps[2].goal == robot
    assert decision.steps[2].place == "speaker"
    assert decision.steps[3].object_label == "apple"


def test_plan_bring_without_place(planner, robot):
    decision = planner.plan(make_result(ACTION_BRING, object_label="cup"), robot)

    assert [step.kind for step in decision.steps] == [STEP_PICK, STEP_HAND_OVER]


def test_plan_pick_at_place(planner, robot):
    decision = planner.plan(make_result(ACTION_PICK, object_label="book", place="bedroom"), robot)

    assert [step.kind for step in decision.steps] == [STEP_NAVIGATE, STEP_PICK]


def test_plan_place_held_object(planner, robot):
    decision = planner.plan(make_result(ACTION_PLACE, place="kitchen"), robot)

    assert decision.accepted
    assert [step.kind for step in decision.steps] == [STEP_NAVIGATE, STEP_PLACE]
    assert "the held object" in decision.steps[1].description


def test_plan_place_needs_place(planner, robot):
    decision = planner.plan(make_result(ACTION_PLACE, object_label="cup"), robot)

    assert not decision.accepted


def test_plan_stop(planner, robot):
    decision = planner.plan(make_result(ACTION_STOP), robot)

    assert decision.accepted
    assert decision.is_stop
    assert decision.steps == []


def test_plan_parsed_mandarin_bring(planner, vocabulary, robot):
    result = CommandParser(vocabulary).parse("去厨房把苹果拿给我")

    decision = planner.plan(result, robot)

    assert decision.accepted
    assert [step.kind for step in decision.steps] == [STEP_NAVIGATE, STEP_PICK, STEP_NAVIGATE, STEP_HAND_OVER]


# --- TaskTracker -------------------------------------------------------------------

def start_navigate(planner, tracker, robot, uid="u1", place="kitchen", now_s=0.0):
    decision = planner.plan(make_result(ACTION_NAVIGATE, uid=uid, place=place), robot)
    return tracker.start(decision, now_s)


def test_tracker_start_navigate(planner, vocabulary, robot):
    tracker = TaskTracker()

    events = start_navigate(planner, tracker, robot)

    assert [event.kind for event in events] == ["status", "goal", "status"]
    assert events[0].state == ACCEPTED
    assert events[1].step.goal == vocabulary.place_poses["kitchen"]
    assert events[2].state == EXECUTING
    assert tracker.active


def test_tracker_pose_far_from_goal(planner, robot):
    tracker = TaskTracker()
    start_navigate(planner, tracker, robot)

    assert tracker.on_pose(Pose2D(3.0, 2.5, math.pi / 2), 1.0) == []
    assert tracker.active


def test_tracker_pose_wrong_heading(planner, robot):
    tracker = TaskTracker()
    start_navigate(planner, tracker, robot)

    assert tracker.on_pose(Pose2D(4.0, 2.5, 0.0), 1.0) == []


def test_tracker_navigate_completes(planner, robot):
    tracker = TaskTracker()
    start_navigate(planner, tracker, robot)

    events = tracker.on_pose(Pose2D(4.2, 2.4, math.pi / 2 + 0.2), 5.0)

    assert [event.state for event in events] == [DONE, DONE]
    assert events[0].step.kind == STEP_NAVIGATE
    assert events[-1].step is None
    assert not tracker.active


def test_tracker_navigation_report(planner, robot):
    tracker = TaskTracker()
    start_navigate(planner, tracker, robot)

    events = tracker.on_navigation_report(False, "planner found no path", 3.0)

    assert [event.state for event in events] == [FAILED]
    assert "planner found no path" in events[0].reason
    assert not tracker.active


def start_pick(planner, tracker, robot, uid="u1"):
    decision = planner.plan(make_result(ACTION_PICK, uid=uid, object_label="cup"), robot)
    return tracker.start(decision, 1.0)


def test_tracker_start_manipulation(planner, robot):
    tracker = TaskTracker()

    events = start_pick(planner, tracker, robot)

    assert [event.kind for event in events] == ["status", "manipulation", "status"]
    assert events[1].step.object_label == "cup"


def test_tracker_manipulation_success(planner, robot):
    tracker = TaskTracker()
    start_pick(planner, tracker, robot)

    events = tracker.on_manipulation_report("u1", True, "", 4.0)

    assert [event.state for event in events] == [DONE, DONE]
    assert events[-1].step is None
    assert not tracker.active


def test_tracker_manipulation_failure(planner, robot):
    tracker = TaskTracker()
    start_pick(planner, tracker, robot)

    events = tracker.on_manipulation_report("u1", False, "gripper slipped", 4.0)

    assert [event.state for event in events] == [FAILED]
    assert "gripper slipped" in events[0].reason
    assert not tracker.active


def test_tracker_ignores_other_report(planner, robot):
    tracker = TaskTracker()
    start_pick(planner, tracker, robot)

    assert tracker.on_manipulation_report("u0", True, "", 4.0) == []
    assert tracker.on_pose(Pose2D(1.0, 2.0, math.pi / 2), 4.0) == []
    assert tracker.active


def test_tracker_navigate_timeout(planner, robot):
    tracker = TaskTracker(TrackerConfig(navigate_timeout_s=30.0))
    start_navigate(planner, tracker, robot, now_s=100.0)

    before = tracker.tick(129.0)
    after = tracker.tick(131.0)

    assert before == []
    assert [event.state for event in after] == [FAILED]
    assert "did not finish within 30 s" in after[0].reason
    assert not tracker.active


def test_tracker_manipulation_timeout(planner, robot):
    tracker = TaskTracker(TrackerConfig(manipulation_timeout_s=10.0))
    start_pick(planner, tracker, robot)

    events = tracker.tick(12.0)

    assert [event.state for event in events] == [FAILED]
    assert "within 10 s" in events[0].reason


def test_tracker_timeout_waits_for_sim_clock(planner, robot):
    tracker = TaskTracker(TrackerConfig(manipulation_timeout_s=10.0))
    decision = planner.plan(make_result(ACTION_PICK, uid="u1", object_label="cup"), robot)
    tracker.start(decision, 0.0)  # use_sim_time before the first /clock message

    assert tracker.tick(30.0) == []  # timing starts here
    assert tracker.tick(39.0) == []
    assert [event.state for event in tracker.tick(41.0)] == [FAILED]


def test_tracker_stop_cancels_task(planner, robot):
    tracker = TaskTracker()
    start_navigate(planner, tracker, robot, uid="u1")

    events = tracker.start(planner.plan(make_result(ACTION_STOP, uid="u2"), robot), 2.0)

    assert [event.kind for event in events] == ["halt", "status", "status"]
    assert events[0].utterance_id == "u1"
    assert [event.state for event in select_statuses(events, "u1")] == [FAILED]
    assert "cancelled by stop command u2" in select_statuses(events, "u1")[0].reason
    assert [event.state for event in select_statuses(events, "u2")] == [DONE]
    assert not tracker.active


def test_tracker_stop_when_idle(planner, robot):
    tracker = TaskTracker()

    events = tracker.start(planner.plan(make_result(ACTION_STOP, uid="u2"), robot), 0.0)

    assert [event.kind for event in events] == ["halt", "status"]
    assert events[1].state == DONE


def test_tracker_new_command_preempts(planner, robot):
    tracker = TaskTracker()
    start_navigate(planner, tracker, robot, uid="u1")

    events = start_navigate(planner, tracker, robot, uid="u2", place="bedroom", now_s=3.0)

    old = select_statuses(events, "u1")
    assert [event.state for event in old] == [FAILED]
    assert "preempted" in old[0].reason
    assert [event.state for event in select_statuses(events, "u2")] == [ACCEPTED, EXECUTING]
    assert tracker.utterance_id == "u2"


def test_tracker_rejected_decision(planner, robot):
    tracker = TaskTracker()

    events = tracker.start(planner.plan(make_result(ACTION_NAVIGATE, place="garage"), robot), 0.0)

    assert [event.state for event in events] == [REJECTED]
    assert "garage" in events[0].reason


def test_tracker_bring_runs_all_steps(planner, vocabulary, robot):
    tracker = TaskTracker()
    kitchen = vocabulary.place_poses["kitchen"]
    events = tracker.start(planner.plan(make_result(ACTION_BRING, object_label="apple", place="kitchen"), robot), 0.0)

    events += tracker.on_pose(kitchen, 10.0)
    events += tracker.on_manipulation_report("u1", True, "picked", 20.0)
    events += tracker.on_pose(robot, 30.0)
    events += tracker.on_manipulation_report("u1", True, "handed over", 40.0)

    goals = [event.step.goal for event in events if event.kind == "goal"]
    manipulations = [event.step.kind for event in events if event.kind == "manipulation"]
    assert goals == [kitchen, robot]
    assert manipulations == [STEP_PICK, STEP_HAND_OVER]
    assert events[-1].state == DONE
    assert events[-1].step is None


def test_every_command_ends_terminal(planner, vocabulary, robot):
    tracker = TaskTracker(TrackerConfig(navigate_timeout_s=60.0))
    events = []
    events += tracker.start(planner.plan(make_result(ACTION_NAVIGATE, uid="rejected", place="garage"), robot), 0.0)
    events += start_navigate(planner, tracker, robot, uid="preempted", now_s=1.0)
    events += start_navigate(planner, tracker, robot, uid="stopped", now_s=2.0)
    events += tracker.start(planner.plan(make_result(ACTION_STOP, uid="stop"), robot), 3.0)
    events += start_navigate(planner, tracker, robot, uid="timed_out", now_s=4.0)
    events += tracker.tick(70.0)
    events += start_pick(planner, tracker, robot, uid="failed")
    events += tracker.on_manipulation_report("failed", False, "", 80.0)
    events += start_navigate(planner, tracker, robot, uid="done", place="bedroom", now_s=90.0)
    events += tracker.on_pose(vocabulary.place_poses["bedroom"], 95.0)

    expected = {"rejected": REJECTED, "preempted": FAILED, "stopped": FAILED, "stop": DONE,
                "timed_out": FAILED, "failed": FAILED, "done": DONE}
    for uid, state in expected.items():
        assert select_statuses(events, uid)[-1].state == state, uid
    assert not tracker.active
