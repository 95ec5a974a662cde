"""Spoken commands through real nodes over DDS: microphone -> model -> planner -> goal_pose.

The model node and planner node run in their own processes for the whole
module. Each test feeds audio through a microphone node process or publishes
audio chunks itself, then checks the messages on the output topics.
"""
import math
import pathlib
import time

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image
from std_msgs.msg import String

from omni_agent.audio.chunk import encode_chunk
from omni_agent.audio.resample import resample
from omni_agent.audio.sources import load_audio_file
from omni_agent.audio.tts import synthesize
from omni_agent.msg import AgentStatus, AudioChunk, ModelResult, Transcript
from omni_agent.nodes.common import AUDIO_QOS, COMMAND_QOS, SENSOR_QOS
from ros_harness import REPO, NodeProcess, RosHarness

pytestmark = pytest.mark.ros

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")
RESULT_TIMEOUT_S = 90.0
KITCHEN = yaml.safe_load((REPO / "config" / "places.yaml").read_text())["places"]["kitchen"]["pose"]


@pytest.fixture(scope="module")
def graph():
    if not GOFORWARD.is_file():
        pytest.fail(f"{GOFORWARD} is missing; install Debian's pocketsphinx-testdata (make setup)")
    harness = RosHarness("pipeline_test")
    model = NodeProcess("omni_model_node", {"partial_interval_s": 0.0})
    planner = NodeProcess("planner_node")
    try:
        harness.transcripts = harness.collect(Transcript, "transcript", COMMAND_QOS)
        harness.results = harness.collect(ModelResult, "model_result", COMMAND_QOS)
        harness.goals = harness.collect(PoseStamped, "goal_pose", COMMAND_QOS)
        harness.statuses = harness.collect(AgentStatus, "agent_status", COMMAND_QOS)
        harness.audio_pub = harness.node.create_publisher(AudioChunk, "audio/chunk", AUDIO_QOS)
        harness.odom_pub = harness.node.create_publisher(Odometry, "odom", SENSOR_QOS)
        harness.image_pub = harness.node.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
        harness.text_pub = harness.node.create_publisher(String, "command_text", COMMAND_QOS)
        model.wait_for_output("listening on audio/chunk", 120)
        planner.wait_for_output("planner ready", 60)
        harness.wait_for_subscribers(harness.audio_pub)
        harness.wait_for_subscribers(harness.odom_pub)
        harness.model, harness.planner = model, planner
        yield harness
    finally:
        model.stop()
        planner.stop()
        harness.close()


def publish_odom(graph, x, y, yaw):
    msg = Odometry()
    msg.header.frame_id = "odom"
    msg.child_frame_id = "base_link"
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    for _ in range(3):  # best effort: send a few
        graph.odom_pub.publish(msg)


def publish_audio(graph, samples, rate, channels=1, sample_format="S16LE", chunk_samples=512, trailing_silence_s=1.0):
    """Publish mono float samples as AudioChunk messages, followed by silence."""
    samples = np.concatenate([samples, np.zeros(int(trailing_silence_s * rate), np.float32)])
    for start in range(0, samples.size, chunk_samples):
        block = samples[start:start + chunk_samples]
        interleaved = np.repeat(block, channels) if channels > 1 else block
        msg = AudioChunk()
        msg.sample_rate, msg.channels, msg.sample_format = rate, channels, sample_format
        msg.data = encode_chunk(interleaved, sample_format)
        graph.audio_pub.publish(msg)


def wait_new(graph, items, count_before, what):
    """Return the first item after count_before; on timeout, fail with what the nodes did."""
    try:
        graph.wait_for(lambda: len(items) > count_before, RESULT_TIMEOUT_S, what)
    except AssertionError as error:
        results = [(r.utterance_id, r.action, r.transcript) for r in graph.results[-3:]]
        statuses = [(s.utterance_id, s.state, s.reason) for s in graph.statuses[-3:]]
        raise AssertionError(f"{error}\nlast results: {results}\nlast statuses: {statuses}\n"
                             f"model node log:\n{graph.model.output()[-2000:]}") from None
    return items[count_before]


def wait_outcome(graph, utterance_id):
    """Wait until the planner or model has decided on an utterance; return its statuses."""
    decided = (AgentStatus.EXECUTING, AgentStatus.DONE, AgentStatus.REJECTED, AgentStatus.FAILED)
    graph.wait_for(lambda: any(s.utterance_id == utterance_id and s.state in decided for s in graph.statuses),
                   RESULT_TIMEOUT_S, f"a decision on {utterance_id}")
    return [s for s in graph.statuses if s.utterance_id == utterance_id]


def play_through_microphone(graph, files, realtime=False):
    """Run a microphone node on a playlist and return it once the playlist has ended."""
    mic = NodeProcess("microphone_node", {"files": [str(f) for f in files], "realtime": realtime, "gap_s": 1.0})
    try:
        mic.wait_for_output("playlist ended", 120)
    finally:
        mic.stop()


def settle(graph, quiet_s=3.0, timeout_s=60.0):
    """Wait until no result or status has arrived for quiet_s, so late outputs of earlier tests are counted."""
    deadline = time.monotonic() + timeout_s
    last = (len(graph.results), len(graph.statuses))
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = (len(graph.results), len(graph.statuses))
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return


def final_transcripts(graph, start):
    return [t for t in graph.transcripts[start:] if t.is_final]


def test_go_forward_recording_gives_goal_ahead(graph):
    publish_odom(graph, 0.0, 0.0, 0.0)
    counts = len(graph.results), len(graph.goals), len(graph.transcripts)
    play_through_microphone(graph, [GOFORWARD])
    result = wait_new(graph, graph.results, counts[0], "a model result for 'go forward ten meters'")
    goal = wait_new(graph, graph.goals, counts[1], "a goal_pose")
    # The Omni model (the default) can send its result before the transcript, so wait for it.
    graph.wait_for(lambda: final_transcripts(graph, counts[2]), RESULT_TIMEOUT_S, "the final transcript")
    transcript = final_transcripts(graph, counts[2])[0]
    assert result.source == "omni_model"
    assert "forward" in transcript.text.lower()
    assert transcript.language == "en"
    assert result.action == "move"
    assert result.forward_m == pytest.approx(10.0)
    assert result.utterance_id == transcript.utterance_id
    assert goal.header.frame_id == "map"
    assert goal.pose.position.x == pytest.approx(10.0, abs=1e-6)
    assert goal.pose.position.y == pytest.approx(0.0, abs=1e-6)


def test_relative_goal_uses_odometry_pose(graph):
    publish_odom(graph, 2.0, 1.0, math.pi / 2)
    counts = len(graph.goals)
    samples, rate = load_audio_file(GOFORWARD)
    publish_audio(graph, samples, rate)
    goal = wait_new(graph, graph.goals, counts, "a goal_pose from odometry")
    assert goal.pose.position.x == pytest.approx(2.0, abs=1e-3)
    assert goal.pose.position.y == pytest.approx(11.0, abs=1e-3)
    publish_odom(graph, 0.0, 0.0, 0.0)


def test_go_to_kitchen_speech_gives_kitchen_goal(graph):
    counts = len(graph.results), len(graph.goals)
    play_through_microphone(graph, [synthesize("Go to the kitchen.")])
    result = wait_new(graph, graph.results, counts[0], "a model result for 'go to the kitchen'")
    goal = wait_new(graph, graph.goals, counts[1], "the kitchen goal_pose")
    assert result.action == "navigate"
    assert result.place == "kitchen"
    assert goal.header.frame_id == "map"
    assert goal.pose.position.x == pytest.approx(KITCHEN["x"])
    assert goal.pose.position.y == pytest.approx(KITCHEN["y"])
    assert 2 * math.atan2(goal.pose.orientation.z, goal.pose.orientation.w) == pytest.approx(KITCHEN["yaw"], abs=1e-3)


def test_unknown_place_is_rejected_with_reason(graph):
    counts = len(graph.statuses), len(graph.goals)
    samples, rate = load_audio_file(synthesize("Go to the garage."))
    publish_audio(graph, samples, rate)
    graph.wait_for(lambda: any(s.state == AgentStatus.REJECTED for s in graph.statuses[counts[0]:]),
                   RESULT_TIMEOUT_S, "a REJECTED status for the unknown place")
    rejected = [s for s in graph.statuses[counts[0]:] if s.state == AgentStatus.REJECTED][0]
    assert "garage" in rejected.reason
    assert "kitchen" in rejected.reason  # lists the known places
    assert len(graph.goals) == counts[1]


@pytest.mark.parametrize("rate,channels,sample_format", [
    (44100, 1, "S16LE"),
    (48000, 2, "F32LE"),
])
def test_other_rates_and_formats_are_resampled(graph, rate, channels, sample_format):
    samples, source_rate = load_audio_file(GOFORWARD)
    counts = len(graph.results)
    publish_audio(graph, resample(samples, source_rate, rate), rate, channels, sample_format,
                  chunk_samples=rate // 50)
    result = wait_new(graph, graph.results, counts, f"a result from {rate} Hz {channels}-channel audio")
    assert result.action == "move"
    assert result.forward_m == pytest.approx(10.0)


def test_chunks_not_matching_vad_window(graph):
    samples, rate = load_audio_file(GOFORWARD)
    counts = len(graph.results)
    publish_audio(graph, samples, rate, chunk_samples=300)
    result = wait_new(graph, graph.results, counts, "a result from 300-sample chunks")
    assert result.forward_m == pytest.approx(10.0)


def test_nan_and_inf_samples_are_reported_and_survived(graph):
    samples, rate = load_audio_file(GOFORWARD)
    corrupted = samples.copy()
    corrupted[100:110] = np.nan
    corrupted[5000:5003] = np.inf
    counts = len(graph.results)
    publish_audio(graph, corrupted, rate, sample_format="F32LE")
    result = wait_new(graph, graph.results, counts, "a result despite NaN/Inf samples")
    assert result.forward_m == pytest.approx(10.0)
    assert "NaN/Inf samples" in graph.model.output()
    assert graph.model.alive()


def test_clipping_is_reported(graph):
    samples, rate = load_audio_file(GOFORWARD)
    clipped = np.clip(samples * 20.0, -1.0, 1.0)
    counts = len(graph.transcripts)
    publish_audio(graph, clipped, rate)
    graph.wait_for(lambda: final_transcripts(graph, counts), RESULT_TIMEOUT_S, "a transcript of clipped audio")
    wait_outcome(graph, final_transcripts(graph, counts)[0].utterance_id)
    assert "clipping" in graph.model.output()
    assert graph.model.alive()


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_ten_seconds_without_speech_give_no_command(graph, kind):
    rate = 16000
    rng = np.random.default_rng(7)
    samples = np.zeros(10 * rate, np.float32) if kind == "silence" else \
        rng.normal(0.0, 0.05, 10 * rate).astype(np.float32)
    settle(graph)   # a clipped recording can split into two utterances whose second result comes late
    counts = len(graph.results), len(graph.goals)
    publish_audio(graph, samples, rate)
    # A real command afterwards proves the node handled the 10 s before it.
    speech, speech_rate = load_audio_file(GOFORWARD)
    publish_audio(graph, speech, speech_rate)
    result = wait_new(graph, graph.results, counts[0], "the result of the command after the " + kind)
    goal = wait_new(graph, graph.goals, counts[1], "the goal of the command after the " + kind)
    assert result.forward_m == pytest.approx(10.0)
    assert goal.pose.position.x == pytest.approx(10.0)
    assert len(graph.results) == counts[0] + 1, [(r.utterance_id, r.action, r.detail, r.transcript) for r in graph.results[counts[0] - 2:]]
    assert len(graph.goals) == counts[1] + 1


@pytest.mark.parametrize("sample_format,data,expected", [
    ("U8", bytes(512), "unsupported sample_format 'U8'"),
    ("S16LE", bytes(511), "not a whole number"),
])
def test_invalid_audio_format_is_logged(graph, sample_format, data, expected):
    msg = AudioChunk()
    msg.sample_rate, msg.channels, msg.sample_format, msg.data = 16000, 1, sample_format, data
    graph.audio_pub.publish(msg)
    graph.model.wait_for_output(expected, 30)
    assert graph.model.alive()


@pytest.mark.parametrize("width,height,encoding,expected", [
    (0, 0, "rgb8", "empty image"),
    (4, 2, "yuv422_yuy2", "yuv422_yuy2"),
])
def test_bad_images_are_logged_and_dropped(graph, width, height, encoding, expected):
    graph.wait_for_subscribers(graph.image_pub)
    msg = Image()
    msg.width, msg.height, msg.encoding = width, height, encoding
    msg.step = width * 2
    msg.data = bytes(msg.step * height)
    graph.image_pub.publish(msg)
    graph.model.wait_for_output(expected, 30)
    assert graph.model.alive()


def test_text_command_with_unknown_object_is_rejected(graph):
    graph.wait_for_subscribers(graph.text_pub)
    counts = len(graph.statuses)
    graph.text_pub.publish(String(data="bring me the xylophone"))
    graph.wait_for(lambda: any(s.state == AgentStatus.REJECTED for s in graph.statuses[counts:]),
                   RESULT_TIMEOUT_S, "a REJECTED status")
    rejected = [s for s in graph.statuses[counts:] if s.state == AgentStatus.REJECTED][0]
    assert "xylophone" in rejected.reason
    assert graph.planner.alive()


@pytest.mark.pulseaudio
def test_virtual_microphone_command_gives_goal(graph, tmp_path):
    """PortAudio capture of a PulseAudio virtual source, all the way to goal_pose."""
    from pulse import PulseServer
    from omni_agent.audio.tts import write_wav

    publish_odom(graph, 0.0, 0.0, 0.0)
    samples, rate = load_audio_file(GOFORWARD)
    # A second of silence before the words, as a speaker pauses before a command.
    # NOTE: in runs of the whole suite the first second of playback sometimes did not reach the
    # capture stream, so the command arrived as 'for 10 meters.'. The cause is not known.
    samples = np.concatenate([np.zeros(rate, np.float32), samples])
    wav = tmp_path / "goforward.wav"
    write_wav(wav, samples, rate)
    counts = len(graph.results), len(graph.goals)
    chunks = graph.collect(AudioChunk, "audio/chunk", AUDIO_QOS)
    with PulseServer(sample_rate=16000) as pulse:
        mic = NodeProcess("microphone_node", {"source": "device"}, env=pulse.env)
        try:
            mic.wait_for_output("opened at 16000 Hz", 60)
            # The first capture callback can come a second or two after the stream opens.
            graph.wait_for(lambda: len(chunks) >= 10, 60, "audio chunks from the virtual microphone")
            pulse.play(wav)
            try:
                result = wait_new(graph, graph.results, counts[0], "a result from the virtual microphone")
                goal = wait_new(graph, graph.goals, counts[1], "a goal from the virtual microphone")
            except AssertionError as error:
                raise AssertionError(f"{error}\n{len(chunks)} chunks received from the microphone node; "
                                     f"its log:\n{mic.output()[-2000:]}") from None
        finally:
            mic.stop()
    assert result.action == "move"
    assert result.forward_m == pytest.approx(10.0)
    assert goal.pose.position.x == pytest.approx(10.0)
