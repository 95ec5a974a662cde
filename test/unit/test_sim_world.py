"""The MuJoCo model of the home: geometry, physics of the base, rendering and detection."""
import copy
import math

import numpy as np
import pytest

from omni_agent.model.result import Pose2D
from omni_agent.sim.detection import SimGroundTruthDetector
from omni_agent.sim.mjcf import build_mjcf, door_boxes, wall_boxes
from omni_agent.sim.robot import ROBOT
from omni_agent.sim.simulator import Simulator, SimulatorError
from omni_agent.sim.world import Wall, load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture
def sim(world):
    simulator = Simulator(world)
    yield simulator
    simulator.close()


@pytest.fixture
def kitchen_sim(world):
    """A simulator with the robot standing at the kitchen place, objects settled."""
    simulator = Simulator(world)
    simulator.set_base_pose(world.places["kitchen"])
    simulator.step_for(0.5)
    yield simulator
    simulator.close()


def _box_covers(box, x, y):
    cos_yaw, sin_yaw = math.cos(box.yaw), math.sin(box.yaw)
    dx, dy = x - box.center[0], y - box.center[1]
    along, across = cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy
    return abs(along) <= box.half_size[0] and abs(across) <= box.half_size[1]


# --- model ---------------------------------------------------------------------------------


def test_model_names_geoms_for_segmentation(sim):
    names = set(sim.geom_names)
    assert {"object:apple", "object:banana", "furniture:kitchen_table", "floor:kitchen", "wall:0"} <= names
    assert not any(name.startswith("door:") for name in names)       # both doors are open
    assert sim.object_names == ("apple", "banana", "cup", "orange", "bottle")


def test_closed_door_becomes_panel(world):
    closed = world.with_door("kitchen_door", closed=True)
    with Simulator(closed) as simulator:
        assert "door:kitchen_door" in simulator.geom_names
        assert "door:bedroom_door" not in simulator.geom_names
    panel = door_boxes(closed)[0]
    assert _box_covers(panel, 1.0, 2.0)
    assert _box_covers(panel, 1.0, 2.55)


def test_wall_through_door_is_split(world):
    # One wall along x = 1 over both doors: the builder must leave both gaps open.
    edited = copy.deepcopy(world)
    edited.walls = [Wall((1.0, -4.0), (1.0, 4.0))]
    boxes = wall_boxes(edited)

    assert [box.name for box in boxes] == ["wall:0.0", "wall:0.1", "wall:0.2"]
    for door in edited.doors.values():
        assert not any(_box_covers(box, *door.center) for box in boxes)
    assert any(_box_covers(box, 1.0, 0.0) for box in boxes)
    assert any(_box_covers(box, 1.0, 3.0) for box in boxes)


def test_door_gap_keeps_full_width(world):
    boxes = wall_boxes(world)
    door = world.doors["kitchen_door"]
    edge_y = door.center[1] - door.width / 2.0
    assert not any(_box_covers(box, door.center[0], edge_y + 0.01) for box in boxes)
    assert any(_box_covers(box, door.center[0], edge_y - 0.01) for box in boxes)


def test_mjcf_rejects_bad_timestep(world):
    with pytest.raises(ValueError, match="timestep"):
        build_mjcf(world, timestep=0.0)


def test_objects_rest_on_support(sim, world):
    sim.step_for(1.0)
    for name, item in world.objects.items():
        support = world.furniture[item.support]
        x, y, z = sim.object_pose(name)
        assert z == pytest.approx(support.top_z + item.half_height, abs=0.003), name
        assert math.hypot(x - item.xy[0], y - item.xy[1]) < 0.005, name
        assert sim.object_speed(name) < 0.01, name


def test_seed_sets_object_offsets(world):
    positions = []
    for seed in (3, 3, 4):
        with Simulator(world, seed=seed, object_jitter_m=0.02) as simulator:
            positions.append(simulator.object_pose("apple"))
    assert positions[0] == positions[1]
    assert positions[0] != positions[2]
    assert math.dist(positions[0][:2], world.objects["apple"].xy) <= 0.02 * math.sqrt(2.0)


# --- base ----------------------------------------------------------------------------------


def test_base_starts_at_start_pose(sim, world):
    pose = sim.base_pose()
    assert (pose.x, pose.y, pose.yaw) == pytest.approx((world.start_pose.x, world.start_pose.y, world.start_pose.yaw))
    assert pose.frame_id == "map"


@pytest.mark.parametrize("yaw", [0.0, math.pi / 2.0, 2.4])
@pytest.mark.parametrize("vx,vy", [(0.3, 0.0), (0.0, 0.2), (0.2, -0.15)])
def test_base_velocity_is_in_base_link(sim, yaw, vx, vy):
    sim.set_base_pose(Pose2D(-1.0, -1.0, yaw))
    sim.set_base_velocity(vx, vy, 0.0)
    sim.step_for(1.0)
    pose = sim.base_pose()
    # REP-103: x forward, y left, so the map motion is the command rotated by yaw.
    expected_dx = vx * math.cos(yaw) - vy * math.sin(yaw)
    expected_dy = vx * math.sin(yaw) + vy * math.cos(yaw)
    assert pose.x + 1.0 == pytest.approx(expected_dx, abs=0.02)
    assert pose.y + 1.0 == pytest.approx(expected_dy, abs=0.02)
    assert pose.yaw == pytest.approx(yaw, abs=0.01)
    measured_vx, measured_vy, _ = sim.base_velocity()
    assert measured_vx == pytest.approx(vx, abs=0.01)
    assert measured_vy == pytest.approx(vy, abs=0.01)


def test_base_turns_counter_clockwise(sim):
    sim.set_base_velocity(0.0, 0.0, 0.5)
    sim.step_for(1.0)
    assert sim.base_pose().yaw == pytest.approx(0.5, abs=0.03)


def test_base_stops_at_wall(sim):
    # From (-1, -1) facing +x, the wall at x = 1 (0.1 m thick) is ahead.
    sim.set_base_velocity(0.5, 0.0, 0.0)
    sim.step_for(8.0)
    front_limit = 1.0 - 0.05 - ROBOT.base_half_length
    x = sim.base_pose().x
    assert x <= front_limit + 0.01
    assert x >= front_limit - 0.05                   # it did reach the wall
    assert abs(sim.base_velocity()[0]) < 0.01


def test_zero_velocity_stops_within_tenth_second(sim):
    sim.set_base_velocity(0.5, 0.0, 0.4)
    sim.step_for(1.0)
    assert sim.base_velocity()[0] == pytest.approx(0.5, abs=0.02)

    sim.set_base_velocity(0.0, 0.0, 0.0)
    sim.step_for(0.1)
    vx, vy, wz = sim.base_velocity()
    assert abs(vx) < 0.01
    assert abs(vy) < 0.01
    assert abs(wz) < 0.01
    stopped_at = sim.base_pose()
    sim.step_for(0.5)
    assert math.hypot(sim.base_pose().x - stopped_at.x, sim.base_pose().y - stopped_at.y) < 0.005


def test_time_advances_by_steps(sim):
    sim.step(10)
    assert sim.time_s == pytest.approx(10 * sim.timestep)
    sim.step_for(0.1)
    assert sim.time_s == pytest.approx(10 * sim.timestep + 0.1)


# --- arm and gripper -----------------------------------------------------------------------


def test_arm_joints_reach_targets(sim):
    sim.set_lift_height(0.9)
    sim.set_arm_extension(0.3)
    sim.set_gripper_opening(0.05)
    sim.step_for(3.0)
    assert sim.lift_height() == pytest.approx(0.9, abs=0.005)
    assert sim.arm_extension() == pytest.approx(0.3, abs=0.005)
    assert sim.gripper_opening() == pytest.approx(0.05, abs=0.005)
    x, y, z = sim.grasp_point()
    assert x == pytest.approx(-1.0 + ROBOT.grasp_x + 0.3, abs=0.01)
    assert y == pytest.approx(-1.0, abs=0.005)
    assert z == pytest.approx(0.9, abs=0.01)


def test_joint_speed_is_limited(sim):
    sim.set_lift_height(1.0)
    sim.step_for(0.4)
    # From 0.5 m at 0.25 m/s: about 0.1 m in 0.4 s, far from the target.
    assert sim.lift_height() == pytest.approx(0.6, abs=0.02)


def test_gripper_closing_on_nothing_holds_nothing(sim):
    sim.set_gripper_opening(0.0)
    sim.step_for(2.0)
    assert sim.gripper_opening() < 0.004
    assert sim.holding is None


@pytest.mark.parametrize("call,value,message", [
    ("set_lift_height", 2.0, "lift height 2.000 m is outside"),
    ("set_arm_extension", -0.1, "arm extension"),
    ("set_gripper_opening", float("nan"), "gripper opening must be a finite number"),
])
def test_joint_command_out_of_range(sim, call, value, message):
    with pytest.raises(ValueError, match=message):
        getattr(sim, call)(value)


def test_invalid_base_velocity(sim):
    with pytest.raises(ValueError, match="finite"):
        sim.set_base_velocity(float("nan"), 0.0, 0.0)


def test_invalid_constructor_arguments(world):
    with pytest.raises(ValueError, match="camera_width"):
        Simulator(world, camera_width=8)
    with pytest.raises(ValueError, match="timestep"):
        Simulator(world, timestep=0.5)


def test_unknown_object(sim):
    with pytest.raises(KeyError, match="unknown object 'pear'"):
        sim.object_pose("pear")


def test_closed_simulator_rejects_step(world):
    simulator = Simulator(world)
    simulator.close()
    with pytest.raises(SimulatorError, match="closed"):
        simulator.step()


# --- camera --------------------------------------------------------------------------------


def test_rgb_render_is_not_blank(kitchen_sim):
    rgb = kitchen_sim.render_rgb()
    assert rgb.shape == (240, 320, 3)
    assert rgb.dtype == np.uint8
    assert rgb.std() > 20.0
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50


def test_depth_render_in_metres(kitchen_sim):
    depth = kitchen_sim.render_depth()
    assert depth.shape == (240, 320)
    assert np.all(np.isfinite(depth))
    # The table top edge is about 0.5 m ahead of and 0.5 m below the camera.
    # Nothing in view is nearer than that or beyond the kitchen's far wall.
    assert 0.4 < float(depth.min()) < 1.0
    assert float(depth.max()) < 4.0


def test_apple_in_segmentation_at_kitchen(kitchen_sim):
    segmentation = kitchen_sim.render_segmentation()
    assert segmentation.geom_ids.shape == (240, 320)
    labels = segmentation.labels()
    assert "object:apple" in labels
    assert "furniture:kitchen_table" in labels
    apple = segmentation.mask("object:apple")
    assert apple.sum() > 200

    # The segmented pixels really show the red apple.
    rgb = kitchen_sim.render_rgb().astype(float)
    red, green, blue = (rgb[apple][:, channel].mean() for channel in range(3))
    assert red > 2.0 * green
    assert red > 2.0 * blue
    assert kitchen_sim.render_segmentation().name_image()[apple][0] == "object:apple"


def test_apple_absent_from_start_view(sim):
    assert "object:apple" not in sim.render_segmentation().labels()


def test_intrinsics_project_onto_segmentation(kitchen_sim):
    intrinsics = kitchen_sim.camera_intrinsics()
    assert (intrinsics.width, intrinsics.height) == (320, 240)
    assert (intrinsics.cx, intrinsics.cy) == (159.5, 119.5)
    camera = kitchen_sim.camera_pose()
    center = np.array(kitchen_sim.object_pose("apple"))
    optical = camera.rotation.T @ (center - camera.position)
    u = intrinsics.fx * optical[0] / optical[2] + intrinsics.cx
    v = intrinsics.fy * optical[1] / optical[2] + intrinsics.cy
    rows, cols = np.nonzero(kitchen_sim.render_segmentation().mask("object:apple"))
    assert u == pytest.approx(cols.mean(), abs=1.0)
    assert v == pytest.approx(rows.mean(), abs=1.0)


def test_camera_optical_frame_in_base(kitchen_sim):
    camera = kitchen_sim.camera_pose_in_base()
    assert camera.frame_id == "base_link"
    assert camera.position[2] == pytest.approx(ROBOT.camera_z)
    z_axis = camera.rotation[:, 2]                    # optical z: forward and down
    assert z_axis[0] > 0.7
    assert z_axis[2] < -0.4
    assert camera.rotation[:, 0] == pytest.approx([0.0, -1.0, 0.0], abs=1e-6)    # optical x: right
    x, y, z, w = camera.quaternion
    assert x * x + y * y + z * z + w * w == pytest.approx(1.0)


def test_top_view_render(sim):
    image = sim.render_top_view(320, 240)
    assert image.shape == (240, 320, 3)
    assert image.std() > 20.0
    with pytest.raises(ValueError, match="render size"):
        sim.render_top_view(4000, 3000)


# --- detection -----------------------------------------------------------------------------


def test_detector_finds_table_objects(kitchen_sim):
    detections = SimGroundTruthDetector().detect(kitchen_sim)
    by_label = {detection.label: detection for detection in detections}
    assert set(by_label) == {"apple", "banana", "cup"}
    for label, detection in by_label.items():
        true_center = kitchen_sim.object_pose(label)
        assert math.dist(detection.bounds_center, true_center) < 0.03, label
        assert math.dist(detection.position, true_center) < 0.06, label
        u_min, v_min, u_max, v_max = detection.bbox
        assert 0 <= u_min < u_max < 320
        assert 0 <= v_min < v_max < 240
        assert detection.pixel_count > 100
        assert detection.frame_id == "map"
    assert [d.pixel_count for d in detections] == sorted((d.pixel_count for d in detections), reverse=True)


def test_detector_ignores_small_objects(kitchen_sim):
    apple_pixels = int(kitchen_sim.render_segmentation().mask("object:apple").sum())
    detector = SimGroundTruthDetector(min_pixels=apple_pixels + 1)
    assert "apple" not in [detection.label for detection in detector.detect(kitchen_sim)]
    assert detector.find(kitchen_sim, "apple") is None


def test_detector_rejects_bad_min_pixels():
    with pytest.raises(ValueError, match="min_pixels"):
        SimGroundTruthDetector(min_pixels=0)
