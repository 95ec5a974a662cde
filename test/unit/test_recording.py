"""Run artefacts: MP4 and GIF video, path plot, MCAP log and text summary."""
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from omni_agent.model.result import Pose2D
from omni_agent.sim.recording import (
    CAPTION_HEIGHT_PX,
    McapRecorder,
    MessageDefinitionError,
    StepRecord,
    VideoRecorder,
    message_definition,
    plot_path,
    write_summary,
)
from omni_agent.sim.world import load_world

RED = (200, 30, 30)
BLUE = (30, 30, 200)


def solid(height, width, color):
    return np.full((height, width, 3), color, dtype=np.uint8)


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return frames, fps


# --- video -------------------------------------------------------------------

def test_video_frames_and_size(tmp_path):
    path = tmp_path / "run.mp4"
    with VideoRecorder(path, fps=5.0, panel_height=240) as recorder:
        for index in range(12):
            recorder.add_frame(solid(240, 320, RED), solid(480, 640, BLUE), 0.2 * index, "navigate: executing")

    frames, fps = read_video(path)
    assert recorder.frame_count == 12
    assert recorder.frame_size == (640, 240 + CAPTION_HEIGHT_PX)
    assert len(frames) == 12
    assert frames[0].shape == (240 + CAPTION_HEIGHT_PX, 640, 3)
    assert fps == pytest.approx(5.0)
    middle = frames[6]
    assert np.abs(middle[120, 160].astype(int) - RED).max() < 40
    assert np.abs(middle[120, 480].astype(int) - BLUE).max() < 40


def test_video_caption_drawn(tmp_path):
    path = tmp_path / "run.mp4"
    with VideoRecorder(path) as recorder:
        recorder.add_frame(solid(240, 320, RED), solid(240, 320, BLUE), 1.5, "")
        recorder.add_frame(solid(240, 320, RED), solid(240, 320, BLUE), 1.5, "pick: executing " * 3)

    frames, _ = read_video(path)
    short_caption = frames[0][240:].astype(int)
    long_caption = frames[1][240:].astype(int)
    assert short_caption.max() > 150          # the sim time is drawn in light text
    assert np.count_nonzero(long_caption > 150) > np.count_nonzero(short_caption > 150)


def test_video_later_frames_resized(tmp_path):
    path = tmp_path / "run.mp4"
    with VideoRecorder(path, panel_height=120) as recorder:
        recorder.add_frame(solid(240, 320, RED), solid(480, 480, BLUE), 0.0)
        recorder.add_frame(solid(100, 100, RED), solid(300, 900, BLUE), 0.2)

    frames, _ = read_video(path)
    assert recorder.frame_size == (160 + 120, 120 + CAPTION_HEIGHT_PX)
    assert [frame.shape for frame in frames] == [(120 + CAPTION_HEIGHT_PX, 280, 3)] * 2


def test_video_odd_sizes_made_even(tmp_path):
    path = tmp_path / "run.mp4"
    with VideoRecorder(path, panel_height=121) as recorder:
        recorder.add_frame(solid(100, 133, RED), solid(100, 101, BLUE), 0.0, "x" * 500)

    frames, _ = read_video(path)
    width, height = recorder.frame_size
    assert width % 2 == 0
    assert height == 121 + CAPTION_HEIGHT_PX + 1
    assert frames[0].shape == (height, width, 3)


def test_gif_every_nth_frame(tmp_path):
    gif_path = tmp_path / "run.gif"
    with VideoRecorder(tmp_path / "run.mp4", fps=5.0, gif_path=gif_path, gif_every=5, gif_width=200) as recorder:
        for index in range(12):
            recorder.add_frame(solid(240, 320, RED), solid(240, 320, BLUE), 0.2 * index, "done")

    assert recorder.gif_frame_count == 3      # frames 0, 5 and 10
    with Image.open(gif_path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 3
        assert gif.size == (200, round((240 + CAPTION_HEIGHT_PX) * 200 / 640))
        assert gif.info["duration"] == 1000   # 5 frames at 5 fps
        assert gif.info["loop"] == 0


def test_video_without_gif(tmp_path):
    with VideoRecorder(tmp_path / "run.mp4") as recorder:
        recorder.add_frame(solid(240, 320, RED), solid(240, 320, BLUE), 0.0)

    assert recorder.gif_frame_count == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.mp4"]


def test_video_rejects_bad_image(tmp_path):
    with VideoRecorder(tmp_path / "run.mp4") as recorder:
        with pytest.raises(ValueError, match="camera_rgb"):
            recorder.add_frame(np.zeros((240, 320, 3), dtype=np.float32), solid(240, 320, BLUE), 0.0)
        with pytest.raises(ValueError, match="top_view_rgb"):
            recorder.add_frame(solid(240, 320, RED), np.zeros((240, 320), dtype=np.uint8), 0.0)


def test_video_closed_rejects_frames(tmp_path):
    recorder = VideoRecorder(tmp_path / "run.mp4")
    recorder.add_frame(solid(240, 320, RED), solid(240, 320, BLUE), 0.0)
    recorder.close()
    recorder.close()

    with pytest.raises(RuntimeError, match="closed"):
        recorder.add_frame(solid(240, 320, RED), solid(240, 320, BLUE), 0.2)


@pytest.mark.parametrize("arguments", [{"fps": 0}, {"panel_height": 4}, {"gif_every": 0}, {"gif_width": 2}])
def test_video_invalid_settings(tmp_path, arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        VideoRecorder(tmp_path / "run.mp4", **arguments)


# --- path plot ---------------------------------------------------------------

ROYAL_BLUE = (65, 105, 225)       # the robot path
GOLD = (255, 215, 0)              # the hand-over point
DARK_ORANGE = (255, 140, 0)       # the first object track
DOOR_BROWN = (128, 84, 51)        # a closed door's panel


def count_color(image, color, tolerance=12):
    return int(np.count_nonzero(np.all(np.abs(image[..., :3].astype(int) - color) <= tolerance, axis=-1)))


@pytest.fixture
def world():
    return load_world()


def test_plot_path_draws_everything(tmp_path, world):
    world = world.with_door("kitchen_door", closed=True)
    poses = [Pose2D(-1.0 + 0.1 * i, -1.0 + 0.05 * i, 0.3) for i in range(40)]
    track = [(2.75, 2.75, 0.79), (2.9, 2.5, 0.9), (3.0, 2.3, 0.9)]

    out = plot_path(world, poses, {"apple": track}, tmp_path / "plots" / "path.png", hand_over_point=(3.2, 1.0, 0.9),
                    title="bring the apple")

    assert out == tmp_path / "plots" / "path.png"
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 300
    assert image.shape[1] > 400
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100
    assert count_color(image, ROYAL_BLUE) > 200
    assert count_color(image, GOLD) > 50
    assert count_color(image, DARK_ORANGE) > 20
    assert count_color(image, DOOR_BROWN, tolerance=4) > 20


def test_plot_path_without_path(tmp_path, world):
    out = plot_path(world, [], {}, tmp_path / "empty.png")

    image = np.asarray(Image.open(out).convert("RGB"))
    assert count_color(image, ROYAL_BLUE) == 0
    assert count_color(image, GOLD) == 0
    assert count_color(image, DOOR_BROWN, tolerance=4) == 0    # every door is open


def test_plot_path_accepts_tuples(tmp_path, world):
    poses = [(-1.0, -1.0), (0.0, -1.0), (0.0, 1.0, math.pi / 2)]

    out = plot_path(world, poses, {}, tmp_path / "tuples.png")

    assert count_color(np.asarray(Image.open(out).convert("RGB")), ROYAL_BLUE) > 100


# --- MCAP --------------------------------------------------------------------

@pytest.fixture
def ros_messages():
    msg = pytest.importorskip("omni_agent.msg", reason="needs the colcon-built messages (run under scripts/env.sh)")
    geometry = pytest.importorskip("geometry_msgs.msg")
    sensor = pytest.importorskip("sensor_msgs.msg")
    nav = pytest.importorskip("nav_msgs.msg")
    pytest.importorskip("mcap_ros2")
    return msg, geometry, sensor, nav


def stamp(message, sec, nanosec):
    message.header.stamp.sec = sec
    message.header.stamp.nanosec = nanosec
    return message


def sample_messages(msg, geometry, sensor, nav):
    transcript = stamp(msg.Transcript(utterance_id="u1", text="bring me the apple", language="en",
                                      is_final=True, audio_duration_s=1.5, processing_time_s=0.25,
                                      confidence=0.875), 12, 500)
    result = msg.ModelResult(utterance_id="u1", action=msg.ModelResult.ACTION_BRING, object_label="apple",
                             place="kitchen", forward_m=0.5, left_m=-0.25, turn_rad=1.5,
                             has_target_pose=True, confidence=0.75, transcript="bring me the apple",
                             language="en", source="command_parser")
    result.target_pose.header.frame_id = "map"
    result.target_pose.pose.position.x = 3.0
    result.target_pose.pose.orientation.w = 1.0
    status = stamp(msg.AgentStatus(utterance_id="u1", state=msg.AgentStatus.DONE, step="pick",
                                   reason="grasped the apple"), 13, 0)
    pose = stamp(geometry.PoseStamped(), 14, 250)
    pose.header.frame_id = "map"
    pose.pose.position.x, pose.pose.position.y = 1.25, -2.5
    pose.pose.orientation.z, pose.pose.orientation.w = 0.6, 0.8
    image = stamp(sensor.Image(height=2, width=3, encoding="rgb8", is_bigendian=0, step=9,
                               data=bytes(range(18))), 14, 500)
    image.header.frame_id = "camera_optical"
    odometry = stamp(nav.Odometry(child_frame_id="base_link"), 15, 0)
    odometry.header.frame_id = "odom"
    odometry.pose.pose.position.x = 0.5
    odometry.pose.covariance = [float(i) for i in range(36)]
    odometry.twist.twist.angular.z = -0.3
    return {"transcript": transcript, "model_result": result, "agent_status": status,
            "goal_pose": pose, "camera/image_raw": image, "odom": odometry}


def test_mcap_round_trip(tmp_path, ros_messages):
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    messages = sample_messages(*ros_messages)
    path = tmp_path / "run.mcap"
    with McapRecorder(path) as recorder:
        for offset, (topic, message) in enumerate(messages.items()):
            recorder.register(topic, type(message))
            recorder.write(topic, message, log_time_ns=1_000_000_000 + offset)
    assert recorder.message_count == 6
    assert recorder.topics["odom"] == "nav_msgs/msg/Odometry"

    # rclpy reads each record back as the message that was written.
    with open(path, "rb") as stream:
        records = list(make_reader(stream).iter_messages())
    assert [channel.topic for _, channel, _ in records] == list(messages)
    for schema, channel, record in records:
        original = messages[channel.topic]
        assert schema.encoding == "ros2msg"
        assert channel.message_encoding == "cdr"
        assert deserialize_message(record.data, type(original)) == original


@pytest.mark.filterwarnings("ignore::DeprecationWarning:mcap_ros2.reader")
def test_mcap_read_by_mcap_ros2(tmp_path, ros_messages):
    from mcap_ros2.reader import read_ros2_messages

    messages = sample_messages(*ros_messages)
    path = tmp_path / "run.mcap"
    with McapRecorder(path) as recorder:
        for offset, (topic, message) in enumerate(messages.items()):
            recorder.register(topic, type(message))
            recorder.write(topic, message, log_time_ns=2_000_000_000 + offset)

    decoded = {item.channel.topic: item for item in read_ros2_messages(str(path))}
    assert sorted(decoded) == sorted(messages)
    assert decoded["transcript"].schema.name == "omni_agent/msg/Transcript"
    assert decoded["transcript"].log_time_ns == 2_000_000_000
    transcript = decoded["transcript"].ros_msg
    assert transcript.text == "bring me the apple"
    assert transcript.is_final is True
    assert transcript.confidence == pytest.approx(0.875)
    assert (transcript.header.stamp.sec, transcript.header.stamp.nanosec) == (12, 500)
    result = decoded["model_result"].ros_msg
    assert result.action == "bring"
    assert result.left_m == pytest.approx(-0.25)
    assert result.target_pose.pose.position.x == pytest.approx(3.0)
    status = decoded["agent_status"].ros_msg
    assert status.state == 3
    assert status.reason == "grasped the apple"
    pose = decoded["goal_pose"].ros_msg
    assert (pose.pose.position.x, pose.pose.position.y, pose.pose.orientation.z) == (1.25, -2.5, 0.6)
    image = decoded["camera/image_raw"].ros_msg
    assert (image.height, image.width, image.encoding, image.step) == (2, 3, "rgb8", 9)
    assert bytes(image.data) == bytes(range(18))
    odometry = decoded["odom"].ros_msg
    assert odometry.child_frame_id == "base_link"
    assert list(odometry.pose.covariance) == [float(i) for i in range(36)]
    assert odometry.twist.twist.angular.z == pytest.approx(-0.3)


def test_mcap_one_schema_per_type(tmp_path, ros_messages):
    from mcap.reader import make_reader

    _, geometry, _, _ = ros_messages
    path = tmp_path / "run.mcap"
    with McapRecorder(path) as recorder:
        recorder.register("goal_pose", geometry.PoseStamped)
        recorder.register("goal_pose", geometry.PoseStamped)
        recorder.register("robot_pose", geometry.PoseStamped)
        recorder.write("goal_pose", geometry.PoseStamped(), 1)
        recorder.write("robot_pose", geometry.PoseStamped(), 2)

    with open(path, "rb") as stream:
        summary = make_reader(stream).get_summary()
    assert len(summary.schemas) == 1
    assert sorted(channel.topic for channel in summary.channels.values()) == ["goal_pose", "robot_pose"]


def test_mcap_misuse_rejected(tmp_path, ros_messages):
    msg, geometry, _, _ = ros_messages
    with McapRecorder(tmp_path / "run.mcap") as recorder:
        recorder.register("goal_pose", geometry.PoseStamped)
        with pytest.raises(ValueError, match="registered with geometry_msgs/msg/PoseStamped"):
            recorder.register("goal_pose", msg.AgentStatus)
        with pytest.raises(KeyError, match="not registered"):
            recorder.write("agent_status", msg.AgentStatus(), 1)
        with pytest.raises(TypeError, match="carries geometry_msgs/msg/PoseStamped"):
            recorder.write("goal_pose", msg.AgentStatus(), 1)
        with pytest.raises(ValueError, match="log_time_ns"):
            recorder.write("goal_pose", geometry.PoseStamped(), -1)
        with pytest.raises(TypeError, match="not a generated ROS 2 message class"):
            recorder.register("text", str)

    with pytest.raises(RuntimeError, match="closed"):
        recorder.write("goal_pose", geometry.PoseStamped(), 1)


def test_mcap_unencodable_type_rejected(tmp_path, ros_messages):
    test_msgs = pytest.importorskip("test_msgs.msg")
    with McapRecorder(tmp_path / "run.mcap") as recorder:
        with pytest.raises(NotImplementedError, match="wstring"):
            recorder.register("wstrings", test_msgs.WStrings)
        with pytest.raises(NotImplementedError, match="default value"):
            recorder.register("arrays", test_msgs.Arrays)


def test_message_definition_nested_types(ros_messages):
    text = message_definition("geometry_msgs/msg/PoseStamped")

    sections = text.split("=" * 80 + "\n")
    assert "std_msgs/Header header" in sections[0]
    assert "Pose pose" in sections[0]
    names = [section.splitlines()[0] for section in sections[1:]]
    assert names == ["MSG: std_msgs/Header", "MSG: builtin_interfaces/Time", "MSG: geometry_msgs/Pose",
                     "MSG: geometry_msgs/Point", "MSG: geometry_msgs/Quaternion"]
    assert "int32 sec" in sections[2]


def test_message_definition_missing_package(ros_messages):
    with pytest.raises(MessageDefinitionError, match="no_such_msgs"):
        message_definition("no_such_msgs/msg/Thing")
    with pytest.raises(MessageDefinitionError, match="NoSuchType.msg"):
        message_definition("std_msgs/msg/NoSuchType")
    with pytest.raises(ValueError, match="invalid"):
        message_definition("std_msgs/srv/Empty")


# --- summary -----------------------------------------------------------------

def test_summary_contents(tmp_path):
    steps = [StepRecord("navigate", "executing", 0.4, 0.9),
             StepRecord("navigate", "done", 21.6, 9.25, "reached kitchen"),
             StepRecord("pick", "failed", 30.0, 12.5, "apple slipped")]

    text = write_summary(tmp_path / "out" / "summary.txt", heard=["bring me the apple"],
                         planned=["navigate to kitchen", "pick apple", "hand over apple"], steps=steps,
                         result="FAILED at pick", object_distance_m=1.23456, object_name="apple")

    assert (tmp_path / "out" / "summary.txt").read_text(encoding="utf-8") == text
    lines = text.splitlines()
    assert lines[0] == "Run summary"
    assert "  'bring me the apple'" in lines
    assert "  2. pick apple" in lines
    assert "  navigate     done         21.60 s     9.25 s  reached kitchen" in lines
    assert "  pick         failed       30.00 s    12.50 s  apple slipped" in lines
    assert "Result: FAILED at pick" in lines
    assert lines[-1] == "Distance from the apple to the hand-over point: 1.235 m"
    assert len(lines) <= 24


def test_summary_empty_run(tmp_path):
    text = write_summary(tmp_path / "summary.txt", heard=[], planned="", steps=[], result="nothing heard")

    assert "Heard:\n  (nothing)\n" in text
    assert "Planned:\n  (no plan)\n" in text
    assert "  (no step reported)" in text
    assert "Result: nothing heard" in text
    assert "hand-over point" not in text
