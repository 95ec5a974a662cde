"""omni_model_node with the Omni model over DDS: real recordings, real photos, fallback and image features."""
import time

import numpy as np
import pytest
import skimage.data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from omni_agent import assets
from omni_agent.audio.chunk import encode_chunk
from omni_agent.audio.resample import resample
from omni_agent.audio.sources import load_audio_file
from omni_agent.msg import AgentStatus, AudioChunk, ModelResult, Transcript
from omni_agent.nodes.common import AUDIO_QOS, COMMAND_QOS, SENSOR_QOS
from ros_harness import NodeProcess, RosHarness

pytestmark = pytest.mark.ros

GOFORWARD = "/usr/share/pocketsphinx/test/data/goforward.raw"
TIMEOUT_S = 90.0


def publish_audio(harness, publisher, samples, rate=16000, chunk=512, silence_s=1.0):
    samples = np.concatenate([np.zeros(int(0.3 * rate), np.float32), samples,
                              np.zeros(int(silence_s * rate), np.float32)])
    for start in range(0, samples.size, chunk):
        msg = AudioChunk()
        msg.sample_rate, msg.channels, msg.sample_format = rate, 1, "S16LE"
        msg.data = encode_chunk(samples[start:start + chunk], "S16LE")
        publisher.publish(msg)
        time.sleep(0.002)


def image_msg(rgb):
    msg = Image()
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding, msg.step = "rgb8", rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    return msg


@pytest.fixture(scope="module")
def harness():
    h = RosHarness("omni_node_test")
    h.results = h.collect(ModelResult, "model_result", COMMAND_QOS)
    h.transcripts = h.collect(Transcript, "transcript", COMMAND_QOS)
    h.statuses = h.collect(AgentStatus, "agent_status", COMMAND_QOS)
    h.audio_pub = h.node.create_publisher(AudioChunk, "audio/chunk", AUDIO_QOS)
    h.text_pub = h.node.create_publisher(String, "command_text", COMMAND_QOS)
    h.image_pub = h.node.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
    yield h
    h.close()


@pytest.fixture(scope="module")
def omni_node(harness):
    node = NodeProcess("omni_model_node")      # the defaults: the Omni model and its packaged checkpoint
    try:
        node.wait_for_output("listening on audio/chunk", 180)
        harness.wait_for_subscribers(harness.audio_pub)
        yield node
    finally:
        node.stop()


def new_item(harness, items, before, what, predicate=lambda item: True):
    harness.wait_for(lambda: any(predicate(i) for i in items[before:]), TIMEOUT_S, what)
    return next(i for i in items[before:] if predicate(i))


def test_node_recording_streams_result(harness, omni_node):
    """A clear command is published from the audio features, before its transcript."""
    samples, rate = load_audio_file(assets.spoken("Go to the kitchen."))
    before = len(harness.results), len(harness.transcripts)
    publish_audio(harness, harness.audio_pub, resample(samples, rate, 16000))
    result = new_item(harness, harness.results, before[0], "an Omni result for 'go to the kitchen'")
    transcript = new_item(harness, harness.transcripts, before[1], "its final transcript", lambda t: t.is_final)
    assert result.source == "omni_model"
    assert (result.action, result.place) == ("navigate", "kitchen")
    assert result.utterance_id == transcript.utterance_id
    assert "kitchen" in transcript.text.lower()
    assert result.transcript == "", "the streaming result does not wait for the transcript"
    omni_node.wait_for_output(f"[{result.utterance_id}] result", 10)
    assert "(from audio features)" in omni_node.output()
    assert "Omni model" in omni_node.output()


def test_node_keeps_spoken_order(harness, omni_node):
    """A sure command does not overtake an earlier one that waits for its transcript."""
    goforward, rate = load_audio_file(GOFORWARD)
    kitchen, kitchen_rate = load_audio_file(assets.spoken("Go to the kitchen."))
    before = len(harness.results)
    publish_audio(harness, harness.audio_pub, resample(goforward, rate, 16000))
    publish_audio(harness, harness.audio_pub, resample(kitchen, kitchen_rate, 16000))
    harness.wait_for(lambda: len(harness.results) >= before + 2, TIMEOUT_S, "results for both commands")
    first, second = harness.results[before:before + 2]
    assert (first.action, second.action) == ("move", "navigate")
    assert int(first.utterance_id.split("-")[1]) < int(second.utterance_id.split("-")[1])


def test_node_text_and_view_grounded(harness, omni_node):
    harness.wait_for_subscribers(harness.image_pub)
    harness.wait_for_subscribers(harness.text_pub)
    before = len(harness.results)
    for _ in range(3):
        harness.image_pub.publish(image_msg(skimage.data.coffee()))
        time.sleep(0.1)
    harness.text_pub.publish(String(data="bring me the cup"))
    result = new_item(harness, harness.results, before, "a result for 'bring me the cup'")
    assert result.source == "omni_model"
    assert (result.action, result.object_label) == ("bring", "cup")
    assert result.has_object_box
    x0, y0, x1, y1 = result.object_box
    assert 0 <= x0 < x1 <= 600
    assert 0 <= y0 < y1 <= 400
    assert "fusion text=" in result.detail
    assert "image=" in result.detail


def test_node_describe_answer(harness, omni_node):
    before = len(harness.results)
    harness.image_pub.publish(image_msg(skimage.data.coffee()))
    time.sleep(0.1)
    harness.text_pub.publish(String(data="what do you see"))
    result = new_item(harness, harness.results, before, "a describe result")
    assert result.action == "describe"
    assert result.detail.startswith(("I see", "I do not see"))


def test_node_missing_checkpoint_fallback(harness, omni_node, tmp_path):
    omni_node.stop()            # one model node at a time on the topics
    node = NodeProcess("omni_model_node", {"omni_checkpoint": str(tmp_path / "nowhere")})
    try:
        node.wait_for_output("listening on audio/chunk", 180)
        assert "Falling back to the command parser" in node.output()
        assert "understanding model 'command_parser (fallback)'" in node.output()
        harness.wait_for_subscribers(harness.text_pub)
        before = len(harness.results)
        harness.text_pub.publish(String(data="go to the kitchen"))
        result = new_item(harness, harness.results, before, "a parser result")
        assert result.source == "command_parser"
        assert (result.action, result.place) == ("navigate", "kitchen")
    finally:
        node.stop()


def test_node_image_features_topic(harness):
    """Modality-separated deployment: image_frontend_node encodes, omni_model_node reads the features."""
    frontend = NodeProcess("image_frontend_node", {"max_rate_hz": 0.0})
    node = NodeProcess("omni_model_node", {"image_features_topic": "camera/image_features"})
    try:
        frontend.wait_for_output("listening on", 120)
        node.wait_for_output("listening on audio/chunk", 180)
        assert "image from camera/image_features" in node.output()
        harness.wait_for_subscribers(harness.image_pub, count=2)     # the model node and the front-end node
        harness.wait_for_subscribers(harness.text_pub)
        before = len(harness.results)
        harness.image_pub.publish(image_msg(skimage.data.coffee()))
        node.wait_for_output("receiving image features on camera/image_features", 60)
        harness.image_pub.publish(image_msg(skimage.data.coffee()))
        time.sleep(0.3)
        harness.text_pub.publish(String(data="bring me the cup"))
        result = new_item(harness, harness.results, before, "a result with image features from the topic")
        assert (result.action, result.object_label) == ("bring", "cup")
        assert result.has_object_box, "the image features from the other node were used"
    finally:
        node.stop()
        frontend.stop()


def test_node_unsure_result_waits_for_transcript(harness):
    """An audio-only result below omni_min_confidence is decided again from audio + transcript."""
    node = NodeProcess("omni_model_node", {"omni_min_confidence": 1.0})     # nothing is sure enough
    try:
        node.wait_for_output("listening on audio/chunk", 180)
        harness.wait_for_subscribers(harness.audio_pub)
        samples, rate = load_audio_file(GOFORWARD)
        before = len(harness.results)
        publish_audio(harness, harness.audio_pub, resample(samples, rate, 16000))
        result = new_item(harness, harness.results, before, "a result from audio + transcript")
        assert result.source == "omni_model"
        assert (result.action, result.forward_m) == ("move", pytest.approx(10.0))
        assert "forward" in result.transcript.lower(), "the result waited for the transcript"
        node.wait_for_output(f"[{result.utterance_id}] result", 10)
        assert "(from audio + transcript)" in node.output()
    finally:
        node.stop()



def test_node_rejects_min_confidence_outside_0_1():
    node = NodeProcess("omni_model_node", {"omni_min_confidence": 1.5})
    try:
        node.wait_for_output("omni_min_confidence 1.5 is outside 0..1", 120)
        assert node.process.wait(timeout=30) == 2
        assert "failed to start" in node.output()
        assert "Traceback" not in node.output()
    finally:
        node.stop()
