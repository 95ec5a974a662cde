#!/usr/bin/env python3
"""Measure the latency from the end of a spoken command to model_result and goal_pose.

The benchmark compares the understanding paths of omni_model_node, set by its
understanding_model parameter: "omni" (the Omni model on the Whisper encoder's
features, before the transcript when it is confident) and "command_parser"
(Whisper transcript, then the rule-based parser). For each path, one after the
other, it starts omni_model_node and planner_node as their own processes on a
random ROS domain over loopback DDS, and stops them before the next path. It
publishes a continuous real-time stream of 16 kHz S16LE AudioChunk messages of
512 samples to audio/chunk, as a microphone would: silence, with each
recording played into it in turn.

End of speech is the wall time at which this process published the chunk
that contains the recording's last voiced sample (see find_speech_end). The
two latencies are the arrival times of model_result and of goal_pose in this
process minus the end of speech. The components come from the model node's
log ("[utt-N] end of speech" and "[utt-N] result ... s after end of speech
(from ...)") and from the Transcript message (Whisper processing time).

Each path first plays every recording once as an uncounted warm-up. The
measured trials then go round the recordings --repeats times. Every trial is
kept: a result that differs from the recording's expected command counts as a
miss in the accuracy and is listed with the transcript and the model's result.

Writes results/latency.json (raw samples) and the node logs of each path
beside it, and prints Markdown tables. With --markdown FILE it also writes or
replaces the section "End of speech to result and goal_pose" of FILE. It
asserts nothing about the numbers.

Run inside the project environment:
    scripts/env.sh python scripts/benchmark_latency.py --repeats 5
"""
from __future__ import annotations

import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from omni_agent.dds import apply_loopback_defaults, random_test_domain_id  # noqa: E402

# DDS must stay on 127.0.0.1, so the loopback settings go into the environment
# before rclpy loads. The node processes inherit this environment. A random
# domain keeps the benchmark apart from tests that run at the same time.
DOMAIN_ID = random_test_domain_id()
apply_loopback_defaults(os.environ, domain_id=DOMAIN_ID)

import argparse  # noqa: E402
import datetime  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Dict, List, Optional, Tuple  # noqa: E402

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402

from omni_agent.audio import MODEL_SAMPLE_RATE_HZ  # noqa: E402
from omni_agent.audio.chunk import FORMAT_S16LE, encode_chunk  # noqa: E402
from omni_agent.audio.resample import resample  # noqa: E402
from omni_agent.audio.sources import load_audio_file  # noqa: E402
from omni_agent.audio.tts import SynthesisError, synthesize  # noqa: E402
from omni_agent.audio.vad import SileroVad, find_utterances  # noqa: E402
from omni_agent.msg import AgentStatus, AudioChunk, ModelResult, Transcript  # noqa: E402
from omni_agent.nodes.common import AUDIO_QOS, COMMAND_QOS, stamp_to_s  # noqa: E402
from omni_agent.planning.planner import STEP_NAVIGATE  # noqa: E402

logger = logging.getLogger("benchmark_latency")

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")
CHUNK_SAMPLES = 512
CHUNK_S = CHUNK_SAMPLES / MODEL_SAMPLE_RATE_HZ
SECTION_TITLE = "End of speech to result and goal_pose"
# Earlier titles of the same section, replaced in place by update_markdown.
FORMER_SECTION_TITLES = ("End of speech to goal_pose",)
DEFAULT_OUTPUT = REPO / "results" / "latency.json"

# Values of omni_model_node's understanding_model parameter that the benchmark compares.
OMNI = "omni"
COMMAND_PARSER = "command_parser"
PATHS = (OMNI, COMMAND_PARSER)

# Targets for the omni path. The benchmark reports whether they are met and exits 0 either way.
TARGET_P50_S = 0.350        # end of speech to goal_pose
TARGET_P95_S = 0.600
TARGET_SPEEDUP = 2.0        # command_parser latency / omni latency, at p50 and at p95
TARGET_RSS_BYTES = 1.5e9

# Energy detector for the last voiced sample of a recording, on 10 ms frames.
ENERGY_FRAME_SAMPLES = 160
# A frame is voiced when its RMS level is within this many dB of the loudest frame...
ENERGY_BELOW_PEAK_DB = 40.0
# ...and at least this many dB above the noise floor (the 10th percentile of
# the frame levels), so that the hiss of a real recording does not count.
ENERGY_ABOVE_FLOOR_DB = 15.0
# Voiced frames count only in runs of at least this many (20 ms). The release
# of a final stop, such as the t of Piper's "Turn left.", lasts two frames,
# while the noise click after the last word of goforward.raw (2.52 s) lasts one.
ENERGY_MIN_RUN_FRAMES = 2

# Log format of the node processes. The VAD close time is read from {time}.
NODE_LOG_FORMAT = "[{severity}] [{time}] [{name}]: {message}"
END_OF_SPEECH_LOG = re.compile(r"\[(\d+\.\d+)\] \[omni_model_node\]: \[(utt-\d+)\] end of speech")
# "[utt-3] result 0.04 s after end of speech (from audio features): ...". The
# time runs from the VAD close to the publication, on the node's clock. On the
# omni path the brackets name what the result was computed from. The
# command_parser path writes no brackets.
RESULT_LOG = re.compile(r"\[omni_model_node\]: \[(utt-\d+)\] result (\d+\.\d+) s after end of speech"
                        r"(?: \(([^)]*)\))?:")
FROM_AUDIO = "from audio features"
FROM_AUDIO_AND_TRANSCRIPT = "from audio + transcript"
BACKEND_LOG = re.compile(r"understanding model '([^']+)'")
CHECKPOINT_LOG = re.compile(r"Omni model (\S+) \((\d+) parameters")

# AgentStatus states after which an utterance needs nothing more from the nodes.
DECIDED_STATES = (AgentStatus.EXECUTING, AgentStatus.DONE, AgentStatus.REJECTED, AgentStatus.FAILED)


# --- recordings ---------------------------------------------------------------

@dataclass(frozen=True)
class CommandSpec:
    """A spoken command and the model result it must give to count as understood."""

    name: str                             # label in tables and in --only
    text: str                             # the words spoken
    action: str                           # expected ModelResult.action
    place: str = ""
    forward_m: float = 0.0
    turn_rad: float = 0.0
    path: Optional[pathlib.Path] = None   # a recorded file, or None when Piper speaks `text`

    def matches(self, result: ModelResult) -> bool:
        """Return True if `result` is the command this recording speaks."""
        return (result.action == self.action
                and result.place == self.place
                and math.isclose(result.forward_m, self.forward_m, abs_tol=1e-3)
                and math.isclose(result.left_m, 0.0, abs_tol=1e-3)
                and math.isclose(result.turn_rad, self.turn_rad, abs_tol=1e-3))


COMMANDS = (
    CommandSpec("goforward.raw", "go forward ten meters", "move", forward_m=10.0, path=GOFORWARD),
    CommandSpec("kitchen", "Go to the kitchen.", "navigate", place="kitchen"),
    CommandSpec("bedroom", "Go to the bedroom.", "navigate", place="bedroom"),
    CommandSpec("living_room", "Go to the living room.", "navigate", place="living_room"),
    CommandSpec("move_back", "Move back two meters.", "move", forward_m=-2.0),
    CommandSpec("turn_left", "Turn left.", "move", turn_rad=math.pi / 2),
    CommandSpec("charging_station", "Go to the charging station.", "navigate", place="charging_station"),
    CommandSpec("go_forward_three", "Go forward three meters.", "move", forward_m=3.0),
)


@dataclass
class Recording:
    """The 16 kHz samples of one command and where its speech ends."""

    spec: CommandSpec
    path: pathlib.Path
    samples: np.ndarray
    speech_end_sample: int              # index of the last voiced sample (energy detector)
    silero_end_sample: Optional[int]    # end of the last utterance found by Silero VAD offline


def load_recording(spec: CommandSpec, vad: SileroVad) -> Recording:
    """Load or synthesise a command and locate its end of speech."""
    if spec.path is not None:
        if not spec.path.is_file():
            raise FileNotFoundError(
                f"recording not found: {spec.path}; install Debian's pocketsphinx-testdata "
                f"(scripts/setup.sh does), or leave the recording out with --only")
        path = spec.path
    else:
        try:
            path = synthesize(spec.text)
        except SynthesisError as error:
            raise SynthesisError(f"could not synthesise {spec.text!r} with Piper: {error}") from error
    samples, rate = load_audio_file(path)
    samples = resample(samples, rate, MODEL_SAMPLE_RATE_HZ).astype(np.float32)
    utterances = find_utterances(samples, vad)
    silero_end = utterances[-1].end_sample if utterances else None
    return Recording(spec, path, samples, find_speech_end(samples), silero_end)


def find_speech_end(samples: np.ndarray) -> int:
    """Return the index of the last voiced sample, from 10 ms frame energies.

    The result is the end of the last run of ENERGY_MIN_RUN_FRAMES or more
    voiced frames. The ENERGY_* constants define what counts as voiced.
    """
    frame_count = samples.size // ENERGY_FRAME_SAMPLES
    if frame_count == 0:
        raise ValueError(f"recording of {samples.size} samples is shorter than one "
                         f"{ENERGY_FRAME_SAMPLES}-sample frame")
    frames = samples[:frame_count * ENERGY_FRAME_SAMPLES].reshape(frame_count, ENERGY_FRAME_SAMPLES)
    level_db = 20.0 * np.log10(np.maximum(np.sqrt(np.mean(frames ** 2, axis=1)), 1e-7))
    threshold_db = max(level_db.max() - ENERGY_BELOW_PEAK_DB,
                       np.percentile(level_db, 10) + ENERGY_ABOVE_FLOOR_DB)
    voiced = level_db >= threshold_db
    run_length = 0
    last_run_end = None
    for index, is_voiced in enumerate(voiced):
        run_length = run_length + 1 if is_voiced else 0
        if run_length >= ENERGY_MIN_RUN_FRAMES:
            last_run_end = index
    if last_run_end is None:    # no run is long enough, so the loudest frame is used instead
        last_run_end = int(np.argmax(level_db))
    return int((last_run_end + 1) * ENERGY_FRAME_SAMPLES - 1)


# --- node processes and memory ----------------------------------------------------

class NodeProcess:
    """An omni_agent node module in its own process, logging to a file."""

    def __init__(self, module: str, params: Dict[str, str], log_path: pathlib.Path):
        args = [sys.executable, "-u", "-m", f"omni_agent.nodes.{module}", "--ros-args"]
        for name, value in params.items():
            args += ["-p", f"{name}:={value}"]
        environment = dict(os.environ)    # carries the loopback DDS settings
        environment["RCUTILS_LOGGING_BUFFERED_STREAM"] = "1"
        environment["RCUTILS_CONSOLE_OUTPUT_FORMAT"] = NODE_LOG_FORMAT
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO), environment.get("PYTHONPATH", "")) if p)
        self.module = module
        self.log_path = log_path
        self._log_file = open(log_path, "w")
        self.process = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT,
                                        env=environment, cwd=str(REPO), start_new_session=True)
        logger.info("started %s (pid %d), log %s", module, self.process.pid, log_path)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        """Wait until the node logs `text`, or raise RuntimeError if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log_text():
                return
            if not self.alive():
                raise RuntimeError(f"{self.module} exited with code {self.process.returncode} before "
                                   f"logging {text!r}; its log {self.log_path} ends with:\n"
                                   f"{self.log_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.module} did not log {text!r} within {timeout_s:.0f} s; "
                           f"see its log {self.log_path}")

    def peak_rss_bytes(self) -> Optional[int]:
        """Return VmHWM, the kernel's record of the process's peak resident set, or None."""
        try:
            status = pathlib.Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else None

    def stop(self, timeout_s: float = 10.0) -> Optional[int]:
        """Send SIGINT to the node's process group, then SIGKILL after timeout_s."""
        if self.alive():
            os.killpg(self.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) did not stop within %.0f s of SIGINT; sending SIGKILL",
                               self.module, self.pid, timeout_s)
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        self._log_file.close()
        logger.info("stopped %s (exit code %s)", self.module, self.process.returncode)
        return self.process.returncode


class MemorySampler:
    """Sample the RSS of some processes every `period_s` and keep each one's maximum."""

    def __init__(self, pids: Dict[str, int], period_s: float = 0.1):
        self.period_s = period_s
        self.peak_bytes: Dict[str, int] = {name: 0 for name in pids}
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            for name, process in self._processes.items():
                try:
                    rss = process.memory_info().rss
                except psutil.Error:    # the process has ended, so its earlier samples stand
                    continue
                self.peak_bytes[name] = max(self.peak_bytes[name], rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)


# --- the benchmark's own node: audio out, results in ------------------------------------

@dataclass
class Playback:
    """One signal played into the audio stream, with the wall time each chunk was published."""

    samples: np.ndarray
    send_wall_s: List[float] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class AudioStreamer:
    """Publish AudioChunk messages paced in real time: silence, or the signal being played.

    Chunk k of the stream is published once its last sample would have been
    captured, at start + (k + 1) * 32 ms on the monotonic clock. A chunk that
    is late because the machine is busy goes out at once, as a microphone's
    buffered audio would, and the lateness is recorded.
    """

    def __init__(self, publisher):
        self._publisher = publisher
        self._queue: List[Playback] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.max_late_s = 0.0
        self._thread = threading.Thread(target=self._run, name="audio-streamer", daemon=True)
        self._thread.start()

    def play(self, samples: np.ndarray) -> Playback:
        playback = Playback(np.asarray(samples, dtype=np.float32))
        with self._lock:
            self._queue.append(playback)
        return playback

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        silence = np.zeros(CHUNK_SAMPLES, dtype=np.float32)
        start = time.monotonic()
        index = 0
        current: Optional[Playback] = None
        offset = 0
        while not self._stop.is_set():
            due = start + (index + 1) * CHUNK_S
            delay = due - time.monotonic()
            if delay > 0:
                if self._stop.wait(delay):
                    return
            else:
                self.max_late_s = max(self.max_late_s, -delay)
            if current is None:
                with self._lock:
                    current = self._queue.pop(0) if self._queue else None
                offset = 0
            if current is None:
                block = silence
            else:
                block = np.zeros(CHUNK_SAMPLES, dtype=np.float32)
                part = current.samples[offset:offset + CHUNK_SAMPLES]
                block[:part.size] = part
            send_wall = time.time()
            self._publish(block, send_wall)
            if current is not None:
                current.send_wall_s.append(send_wall)
                offset += CHUNK_SAMPLES
                if offset >= current.samples.size:
                    current.done.set()
                    current = None
            index += 1

    def _publish(self, block: np.ndarray, send_wall: float) -> None:
        msg = AudioChunk()
        capture_start = send_wall - CHUNK_S     # the first sample of the chunk
        msg.header.stamp.sec = int(capture_start)
        msg.header.stamp.nanosec = int((capture_start % 1.0) * 1e9)
        msg.header.frame_id = "microphone"
        msg.sample_rate = MODEL_SAMPLE_RATE_HZ
        msg.channels = 1
        msg.sample_format = FORMAT_S16LE
        msg.data = encode_chunk(block, FORMAT_S16LE)
        self._publisher.publish(msg)


class Probe:
    """The benchmark's node: publishes audio, stores every output message with its arrival time."""

    def __init__(self):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = Node("latency_benchmark", context=self.context)
        self._lock = threading.Lock()
        self.received: Dict[str, List[Tuple[float, object]]] = {
            "transcript": [], "model_result": [], "goal_pose": [], "agent_status": []}
        for topic, msg_type in (("transcript", Transcript), ("model_result", ModelResult),
                                ("goal_pose", PoseStamped), ("agent_status", AgentStatus)):
            self.node.create_subscription(msg_type, topic, self._receiver(topic), COMMAND_QOS)
        self.audio_pub = self.node.create_publisher(AudioChunk, "audio/chunk", AUDIO_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="probe-executor", daemon=True)
        self._thread.start()

    def _receiver(self, topic: str):
        def receive(msg) -> None:
            arrival = time.time()
            with self._lock:
                self.received[topic].append((arrival, msg))
        return receive

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:   # the context was shut down while spinning
            pass

    def marks(self) -> Dict[str, int]:
        with self._lock:
            return {topic: len(items) for topic, items in self.received.items()}

    def since(self, marks: Dict[str, int]) -> Dict[str, List[Tuple[float, object]]]:
        with self._lock:
            return {topic: list(items[marks[topic]:]) for topic, items in self.received.items()}

    def wait_until_matched(self, timeout_s: float) -> None:
        """Wait until both nodes are discovered on the topics the benchmark uses."""
        node = self.node
        conditions = {
            "omni_model_node subscribed to audio/chunk": lambda: self.audio_pub.get_subscription_count() >= 1,
            "a transcript publisher": lambda: node.count_publishers("transcript") >= 1,
            "a model_result publisher": lambda: node.count_publishers("model_result") >= 1,
            "planner_node subscribed to model_result": lambda: node.count_subscribers("model_result") >= 2,
            "a goal_pose publisher": lambda: node.count_publishers("goal_pose") >= 1,
        }
        deadline = time.monotonic() + timeout_s
        for description, condition in conditions.items():
            while not condition():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {description} on "
                                       f"ROS domain {DOMAIN_ID}")
                time.sleep(0.05)
        # Another graph on this random domain would mix its messages into the results.
        extra = {
            "audio/chunk publishers": node.count_publishers("audio/chunk") - 1,
            "audio/chunk subscribers": node.count_subscribers("audio/chunk") - 1,
            "goal_pose publishers": node.count_publishers("goal_pose") - 1,
        }
        crowded = {endpoint: count for endpoint, count in extra.items() if count > 0}
        if crowded:
            raise RuntimeError(f"ROS domain {DOMAIN_ID} has other participants ({crowded}); "
                               f"another program uses it, so run the benchmark again")

    def wait_until_nodes_left(self, timeout_s: float) -> None:
        """Wait until stopped nodes have left the ROS graph, so that the next ones are matched afresh."""
        node = self.node
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = {
                "model_result publishers": node.count_publishers("model_result"),
                "goal_pose publishers": node.count_publishers("goal_pose"),
                "audio/chunk subscribers": self.audio_pub.get_subscription_count(),
            }
            if not any(remaining.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for the stopped nodes to leave "
                                   f"the ROS graph of domain {DOMAIN_ID} ({remaining}); run the benchmark again")
            time.sleep(0.05)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)


# --- one trial -------------------------------------------------------------------------

@dataclass
class TrialSettings:
    lead_silence_s: float     # silence played before the recording, inside the playback
    settle_s: float           # silence after the playback before an outcome is accepted
    gap_s: float              # silence after an outcome before the next trial
    timeout_s: float          # time after the playback at which a trial is given up


def run_trial(recording: Recording, streamer: AudioStreamer, probe: Probe, settings: TrialSettings) -> dict:
    """Play one recording and return its sample: the model's result and the latencies in seconds."""
    lead = int(round(settings.lead_silence_s * MODEL_SAMPLE_RATE_HZ))
    signal_samples = np.concatenate([np.zeros(lead, np.float32), recording.samples])
    end_chunk = (lead + recording.speech_end_sample) // CHUNK_SAMPLES

    marks = probe.marks()
    playback = streamer.play(signal_samples)
    if not playback.done.wait(signal_samples.size / MODEL_SAMPLE_RATE_HZ + settings.timeout_s):
        raise RuntimeError("the audio streamer stopped publishing; see the log above")
    speech_end_wall = playback.send_wall_s[end_chunk]
    outputs, timed_out = wait_for_outcome(probe, marks, settings, time.monotonic(), speech_end_wall)

    sample = describe_outcome(recording.spec, outputs, speech_end_wall)
    sample["timed_out"] = timed_out
    time.sleep(settings.gap_s)
    return sample


def wait_for_outcome(probe: Probe, marks: Dict[str, int], settings: TrialSettings, playback_done: float,
                     speech_end_wall: float) -> Tuple[Dict[str, list], bool]:
    """Wait until every final transcript of the trial is decided, and return the messages and whether it timed out.

    An utterance is decided by an EXECUTING, DONE, REJECTED or FAILED status.
    After EXECUTING a navigate step, the wait goes on until goal_pose has
    arrived too, because the two topics are delivered independently. The
    other steps (pick, place, hand over) publish no goal_pose.
    """
    deadline = playback_done + settings.timeout_s
    while True:
        outputs = probe.since(marks)
        finals = {msg.utterance_id for _, msg in outputs["transcript"] if msg.is_final}
        statuses = [msg for _, msg in outputs["agent_status"] if msg.utterance_id in finals]
        decided = {msg.utterance_id for msg in statuses if msg.state in DECIDED_STATES}
        navigating = any(msg.state == AgentStatus.EXECUTING and msg.step == STEP_NAVIGATE for msg in statuses)
        have_goal = any(arrival > speech_end_wall for arrival, _ in outputs["goal_pose"])
        settled = time.monotonic() >= playback_done + settings.settle_s
        if settled and finals and decided == finals and (have_goal or not navigating):
            return outputs, False
        if time.monotonic() > deadline:
            return outputs, True
        time.sleep(0.01)


def describe_outcome(spec: CommandSpec, outputs: Dict[str, list], speech_end_wall: float) -> dict:
    """Match the trial's messages to one utterance and return its result, correctness and latencies.

    The components that come from the model node's log are added later by
    add_log_components, once the node has stopped and its log is complete.
    """
    finals = [(arrival, msg) for arrival, msg in outputs["transcript"] if msg.is_final]
    partials = [msg for _, msg in outputs["transcript"] if not msg.is_final]
    sample = {
        "speech_end_wall_s": speech_end_wall,
        "utterance_ids": [msg.utterance_id for _, msg in finals],
        "transcripts": [msg.text for _, msg in finals],
        "partial_transcripts": len(partials),
        "correct": False,
    }
    results = [(arrival, msg) for arrival, msg in outputs["model_result"]
               if msg.utterance_id in sample["utterance_ids"]]
    statuses = [msg for _, msg in outputs["agent_status"] if msg.utterance_id in sample["utterance_ids"]]
    sample["rejections"] = [msg.reason for msg in statuses
                            if msg.state in (AgentStatus.REJECTED, AgentStatus.FAILED)]
    if not results:
        return sample

    result_arrival, result = results[-1]
    transcript = next(msg for _, msg in finals if msg.utterance_id == result.utterance_id)
    sample.update({
        "utterance_id": result.utterance_id,
        "action": result.action,
        "place": result.place,
        "object_label": result.object_label,
        "forward_m": result.forward_m,
        "left_m": result.left_m,
        "turn_rad": result.turn_rad,
        "confidence": result.confidence,
        "source": result.source,
        "correct": spec.matches(result),
        "result_latency_s": result_arrival - speech_end_wall,
        "whisper_s": float(transcript.processing_time_s),
        "audio_duration_s": float(transcript.audio_duration_s),
        "transcription_start_wall_s": stamp_to_s(transcript.header.stamp) - transcript.processing_time_s,
    })
    goals = [arrival for arrival, _ in outputs["goal_pose"] if arrival > speech_end_wall]
    if goals:
        sample["goal_latency_s"] = goals[0] - speech_end_wall
        sample["result_to_goal_s"] = goals[0] - result_arrival
    return sample


def read_model_log(log_text: str) -> Dict[str, dict]:
    """Return, per utterance id, the VAD close wall time and the result's node time and basis from a model log."""
    events: Dict[str, dict] = {}
    for match in END_OF_SPEECH_LOG.finditer(log_text):
        events.setdefault(match.group(2), {})["vad_close_wall_s"] = float(match.group(1))
    for match in RESULT_LOG.finditer(log_text):
        entry = events.setdefault(match.group(1), {})
        entry["node_s"] = float(match.group(2))
        entry["basis"] = match.group(3)
    return events


def add_log_components(sample: dict, events: Dict[str, dict], path: str, log_path: pathlib.Path) -> None:
    """Add VAD close, node time, basis and (command_parser only) worker wait from the model log to a sample."""
    utterance_id = sample.get("utterance_id")
    if utterance_id is None:
        return
    event = events.get(utterance_id, {})
    if "node_s" in event:
        sample["node_s"] = event["node_s"]
        sample["basis"] = event["basis"]
    else:
        logger.warning("no 'result' log line for %s in %s; its node time is left out", utterance_id, log_path)
    vad_close_wall = event.get("vad_close_wall_s")
    if vad_close_wall is None:
        logger.warning("no 'end of speech' log line for %s in %s; its VAD close time is left out",
                       utterance_id, log_path)
        return
    sample["vad_close_s"] = vad_close_wall - sample["speech_end_wall_s"]
    # The omni path transcribes after computing the result, so a wait before its transcription is no stage of it.
    if path == COMMAND_PARSER:
        sample["worker_wait_s"] = sample["transcription_start_wall_s"] - vad_close_wall


def describe_trial(sample: dict) -> str:
    """Describe a trial in one line for the progress log."""
    parts = []
    if "result_latency_s" in sample:
        parts.append(f"model_result {sample['result_latency_s'] * 1000:.0f} ms")
    if "goal_latency_s" in sample:
        parts.append(f"goal_pose {sample['goal_latency_s'] * 1000:.0f} ms")
    verdict = "correct" if sample["correct"] else f"miss: {failure_reason(sample)}"
    return ", ".join(parts + [verdict])


# --- statistics and reports -----------------------------------------------------------

LATENCIES = ("result_latency_s", "goal_latency_s")
# Per-stage columns of the per-recording tables, per path.
STAGES = {
    COMMAND_PARSER: ("vad_close_s", "worker_wait_s", "whisper_s", "result_to_goal_s"),
    OMNI: ("vad_close_s", "node_s", "result_to_goal_s"),
}
STAGE_HEADINGS = {
    "vad_close_s": "VAD close p50 ms",
    "worker_wait_s": "worker wait p50 ms",
    "whisper_s": "Whisper p50 ms",
    "node_s": "VAD close → result p50 ms",
    "result_to_goal_s": "result → goal p50 ms",
}


def summarize(values: List[float]) -> Optional[dict]:
    """Return n, p50, p95 (numpy's linear interpolation), mean and max, or None when empty."""
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    return {"n": int(array.size), "p50": float(np.percentile(array, 50)), "p95": float(np.percentile(array, 95)),
            "mean": float(array.mean()), "max": float(array.max())}


def summarize_samples(samples: List[dict], names: List[str]) -> Dict[str, dict]:
    """Summarize accuracy, latencies and stages per recording and over all recordings ("all").

    The latencies include every trial that got the message, whether its result
    was correct or not. A trial without a result counts as a miss.
    """
    groups = {name: [s for s in samples if s["recording"] == name] for name in names}
    groups["all"] = list(samples)
    summary = {}
    for name, group in groups.items():
        results = [s for s in group if "result_latency_s" in s]
        correct = sum(1 for s in group if s["correct"])
        entry = {
            "trials": len(group),
            "correct": correct,
            "accuracy": correct / len(group) if group else None,
            "results": len(results),
            "results_with_basis": sum(1 for s in results if s.get("basis")),
            "from_audio_features": sum(1 for s in results if s.get("basis") == FROM_AUDIO),
            "timed_out": sum(1 for s in group if s["timed_out"]),
        }
        for key in LATENCIES + tuple(STAGE_HEADINGS):
            entry[key] = summarize([s[key] for s in group if key in s])
        summary[name] = entry
    return summary


def latency_stats(report: dict, path: str, latency: str) -> Optional[dict]:
    """Return the overall statistics of one latency of a path, or None if the path or the latency is missing."""
    path_report = report["paths"].get(path)
    return None if path_report is None else path_report["summary"]["all"][latency]


def compute_speedups(report: dict) -> Dict[str, Dict[str, Optional[float]]]:
    """Return command_parser time / omni time per latency, at p50 and p95 (None where a number is missing)."""
    speedups: Dict[str, Dict[str, Optional[float]]] = {}
    for latency in LATENCIES:
        omni = latency_stats(report, OMNI, latency)
        parser = latency_stats(report, COMMAND_PARSER, latency)
        speedups[latency] = {
            stat: parser[stat] / omni[stat] if omni and parser and omni[stat] > 0 else None
            for stat in ("p50", "p95")}
    return speedups


def peak_bytes(path_report: dict, node: str = "omni_model_node") -> Optional[int]:
    """Return the larger of a node's VmHWM and sampled peak RSS in one path, or None if neither was read."""
    memory = path_report["memory"][node]
    values = [v for v in (memory["vm_hwm_bytes"], memory["sampled_peak_rss_bytes"]) if v]
    return max(values) if values else None


def milliseconds(stats: Optional[dict], key: str) -> str:
    return "–" if stats is None else f"{stats[key] * 1000:.0f}"


def milliseconds_with_unit(stats: Optional[dict], key: str) -> str:
    return "–" if stats is None else f"{stats[key] * 1000:.0f} ms"


def format_speedup(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.2f}x"


def format_share(count: int, total: int) -> str:
    return "–" if total == 0 else f"{count} of {total} ({count / total:.0%})"


def verdict_at_most(value: Optional[float], limit: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value <= limit else "not met"


def verdict_at_least(value: Optional[float], limit: Optional[float]) -> str:
    if value is None or limit is None:
        return "not measured"
    return "met" if value >= limit else "not met"


def target_rows(report: dict) -> List[Tuple[str, str, str]]:
    """Return (target, measured, verdict) rows for the omni path's targets, computed from the report."""
    goal = latency_stats(report, OMNI, "goal_latency_s")
    parser_goal = latency_stats(report, COMMAND_PARSER, "goal_latency_s")
    speedups = report["speedups"]["goal_latency_s"]
    rows = []
    for stat, limit in (("p50", TARGET_P50_S), ("p95", TARGET_P95_S)):
        rows.append((f"omni: end of speech → goal_pose {stat} ≤ {limit * 1000:.0f} ms",
                     milliseconds_with_unit(goal, stat), verdict_at_most(goal[stat] if goal else None, limit)))
    for stat in ("p50", "p95"):
        rows.append((f"omni ≥ {TARGET_SPEEDUP:g}x faster than command_parser to goal_pose at {stat}",
                     f"{format_speedup(speedups[stat])} ({milliseconds_with_unit(parser_goal, stat)} / "
                     f"{milliseconds_with_unit(goal, stat)})",
                     verdict_at_least(speedups[stat], TARGET_SPEEDUP)))

    accuracies = {path: report["paths"][path]["summary"]["all"]["accuracy"] if path in report["paths"] else None
                  for path in PATHS}
    measured = " vs ".join(f"{path} " + ("–" if accuracies[path] is None else f"{accuracies[path]:.0%}")
                           for path in PATHS)
    rows.append(("omni accuracy ≥ command_parser accuracy", measured,
                 verdict_at_least(accuracies[OMNI], accuracies[COMMAND_PARSER])))

    peak = peak_bytes(report["paths"][OMNI]) if OMNI in report["paths"] else None
    rows.append((f"omni: omni_model_node RSS ≤ {TARGET_RSS_BYTES / 1e9:.1f} GB",
                 "–" if peak is None else f"{peak / 1e9:.2f} GB", verdict_at_most(peak, TARGET_RSS_BYTES)))
    return rows


def comparison_table(report: dict) -> str:
    """Return the Markdown table that puts the paths side by side, one column each."""
    paths = list(report["paths"])
    overall = {path: report["paths"][path]["summary"]["all"] for path in paths}
    rows = [
        ("measured trials", lambda path, entry: str(entry["trials"])),
        ("correct", lambda path, entry: format_share(entry["correct"], entry["trials"])),
        ("trials with model_result / goal_pose",
         lambda path, entry: f"{entry['results']} / {entry['goal_latency_s']['n'] if entry['goal_latency_s'] else 0}"),
        ("results from audio features, without waiting for the transcript",
         lambda path, entry: format_share(entry["from_audio_features"], entry["results_with_basis"])
         if path == OMNI else "–"),
    ]
    for latency, label in (("result_latency_s", "model_result"), ("goal_latency_s", "goal_pose")):
        rows.append((f"end of speech → {label} p50 / p95 / mean ms",
                     lambda path, entry, latency=latency: " / ".join(
                         milliseconds(entry[latency], key) for key in ("p50", "p95", "mean"))))
    for node in ("omni_model_node", "planner_node"):
        rows.append((f"{node} peak RSS",
                     lambda path, entry, node=node: format_bytes(peak_bytes(report["paths"][path], node))))

    lines = ["| | " + " | ".join(paths) + " |", "| --- |" + " ---: |" * len(paths)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(path, overall[path]) for path in paths) + " |")
    return "\n".join(lines)


def speedup_sentence(report: dict) -> str:
    """Return one sentence with the speed-up of omni over command_parser, or an empty string."""
    if not all(path in report["paths"] for path in PATHS):
        return ""
    speedups = report["speedups"]
    return ("Speed-up of omni over command_parser (command_parser time / omni time): to model_result "
            f"{format_speedup(speedups['result_latency_s']['p50'])} at p50 and "
            f"{format_speedup(speedups['result_latency_s']['p95'])} at p95; to goal_pose "
            f"{format_speedup(speedups['goal_latency_s']['p50'])} at p50 and "
            f"{format_speedup(speedups['goal_latency_s']['p95'])} at p95.")


def recording_table(path: str, summary: Dict[str, dict]) -> str:
    """Return the per-recording Markdown table of one path, with that path's stages."""
    stages = STAGES[path]
    headings = ["recording", "trials", "correct", "model_result p50 ms", "goal_pose n", "goal_pose p50 ms",
                "p95 ms", "mean ms", "max ms"] + [STAGE_HEADINGS[stage] for stage in stages]
    if path == OMNI:
        headings.append("from audio features")
    lines = ["| " + " | ".join(headings) + " |", "| --- |" + " ---: |" * (len(headings) - 1)]
    for name, entry in summary.items():
        goal = entry["goal_latency_s"]
        cells = [f"**{name}**" if name == "all" else name, str(entry["trials"]), str(entry["correct"]),
                 milliseconds(entry["result_latency_s"], "p50"), str(goal["n"] if goal else 0)]
        cells += [milliseconds(goal, key) for key in ("p50", "p95", "mean", "max")]
        cells += [milliseconds(entry[stage], "p50") for stage in stages]
        if path == OMNI:
            cells.append(format_share(entry["from_audio_features"], entry["results_with_basis"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_description() -> dict:
    """Return the CPU, core count, RAM, OS, Python and library versions of this machine."""
    cpu = "unknown"
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", pathlib.Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    os_name = platform.platform()
    try:
        match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?$', pathlib.Path("/etc/os-release").read_text(), re.MULTILINE)
        if match:
            os_name = f"{match.group(1)} (Linux {platform.release()})"
    except OSError:
        pass
    versions = {}
    for package in ("faster-whisper", "ctranslate2", "onnxruntime", "silero-vad", "torch"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_bytes": psutil.virtual_memory().total,
        "os": os_name,
        "python": platform.python_version(),
        "versions": versions,
        "rclpy": rclpy_description(),
    }


def rclpy_description() -> str:
    """Return the ROS distribution and version of rclpy, e.g. "jazzy (ros-jazzy-rclpy 7.1.6)"."""
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"] or ""
        match = re.fullmatch(r"ros-([a-z]+)-rclpy", name.lower())
        if match:
            return f"{match.group(1)} ({name} {distribution.version})"
    distro = os.environ.get("ROS_DISTRO", "unknown distribution")
    try:
        return f"{distro} (rclpy {importlib.metadata.version('rclpy')})"
    except importlib.metadata.PackageNotFoundError:
        return distro


def format_bytes(value: Optional[int]) -> str:
    return "not read" if value is None else f"{value / 2 ** 20:.0f} MiB"


def markdown_section(report: dict) -> str:
    """Return the "End of speech to result and goal_pose" section of docs/benchmarks.md."""
    lines = [f"## {SECTION_TITLE}", "", f"Measured {report['date']} with:", "", "```", report["command"], "```", ""]
    lines += machine_lines(report)
    lines += DEFINITION_LINES
    lines += [report["tables"]["comparison"], ""]
    sentence = speedup_sentence(report)
    if sentence:
        lines += [sentence, ""]
    lines += ["| target | measured | result |", "| --- | ---: | --- |"]
    lines += [f"| {target} | {measured} | {verdict} |" for target, measured, verdict in report["targets"]]
    lines.append("")
    for path, table in report["tables"]["recordings"].items():
        lines += [f"### {path}, per recording", "", table, ""]
        lines += miss_lines(path, report["paths"][path])
    return "\n".join(lines)


DEFINITION_LINES = [
    "How the numbers are measured:",
    "",
    "- Paths: the understanding_model parameter of omni_model_node. On the omni path the Omni model reads the "
    "Whisper encoder's features of the utterance. A complete result with confidence ≥ omni_min_confidence is "
    "published at once (\"from audio features\"), and any other waits for the transcript and is computed again "
    "(\"from audio + transcript\"). On the command_parser path the rule-based parser reads the Whisper transcript. "
    "Each path runs its own omni_model_node and planner_node, started after the previous path's nodes stopped.",
    "- End of speech: the wall time at which the benchmark published the 32 ms audio chunk that contains the "
    "recording's last voiced sample (10 ms frame energy). Audio is published in real time, as from a microphone.",
    "- End of speech → model_result and → goal_pose: arrival of the message in the benchmark process minus the "
    "end of speech. Both include every trial that got the message, whether its result was right or not.",
    "- Correct: the trial's last model_result has the recording's expected action, place and distances. A trial "
    "without a result (rejected or timed out) counts as a miss. Every miss is listed below its path's table.",
    "- Results from audio features: omni results whose log line says \"from audio features\", so they did not "
    "wait for the transcript.",
    "- VAD close: end of speech to the model node's log line \"end of speech\".",
    "- VAD close → result: the model node's own time from that log line to publishing model_result, as its "
    "\"result … s after end of speech\" log line gives it.",
    "- Worker wait (command_parser only): from the VAD close to the start of the final transcription. The model "
    "node has one worker thread, so this is mostly a partial transcription that was still running.",
    "- Whisper: processing_time_s of the final Transcript message.",
    "- Result → goal: arrival of model_result to arrival of goal_pose, both in the benchmark process.",
    "- Speed-up: command_parser time divided by omni time at the same percentile. Percentiles use numpy's linear "
    "interpolation, so with few repeats p95 is close to the maximum.",
    "- Peak RSS: the larger of the process's VmHWM and its RSS sampled every 0.1 s.",
    "",
]


def machine_lines(report: dict) -> List[str]:
    machine = report["machine"]
    versions = machine["versions"]
    settings = report["settings"]
    load_start, load_end = report["load_average_1min"]
    path_texts = []
    for path, path_report in report["paths"].items():
        text = f"{path} (omni_model_node parameters: {path_report['model_params_text']}"
        checkpoint = path_report.get("checkpoint")
        if checkpoint:
            text += (f"; checkpoint {checkpoint['path']}, {checkpoint['parameters']} parameters, "
                     f"model.safetensors sha256 {checkpoint['sha256_prefix'] or 'not read'}")
        path_texts.append(text + ")")
    lateness = " and ".join(f"{path_report['audio_max_late_s'] * 1000:.0f} ms ({path})"
                            for path, path_report in report["paths"].items())
    warm_up = ", ".join(f"{path} {sum(1 for s in path_report['warm_up'] if s['correct'])} of "
                        f"{len(path_report['warm_up'])} correct" for path, path_report in report["paths"].items())
    return [
        f"- CPU: {machine['cpu']}, {machine['logical_cores']} logical cores "
        f"({machine['usable_cores']} usable by the benchmark), RAM {machine['ram_bytes'] / 2 ** 30:.1f} GiB",
        f"- OS: {machine['os']}; Python {machine['python']}",
        f"- faster-whisper {versions['faster-whisper']}, ctranslate2 {versions['ctranslate2']}, "
        f"onnxruntime {versions['onnxruntime']}, silero-vad {versions['silero-vad']}, torch {versions['torch']}, "
        f"rclpy {machine['rclpy']}",
        f"- Load average (1 min) {load_start:.2f} at the start and {load_end:.2f} at the end. Audio chunks went "
        f"out at most {lateness} late",
        "- Paths, in the order they ran: " + "; ".join(path_texts),
        f"- Repeats per recording: {settings['repeats']} per path, after one uncounted warm-up pass ({warm_up})",
        "- Recordings: " + "; ".join(
            f"{r['name']} \"{r['text']}\" (speech ends at {r['speech_end_s']:.2f} s)" for r in report["recordings"]),
        "",
    ]


def miss_lines(path: str, path_report: dict) -> List[str]:
    """Return the Markdown list of a path's measured trials whose result was not the expected command."""
    misses = [s for s in path_report["samples"] if not s["correct"]]
    if not misses:
        return []
    lines = [f"Misses on the {path} path:", ""]
    lines += [f"- {s['recording']}, repeat {s['repeat'] + 1}: {failure_reason(s)}" for s in misses]
    lines.append("")
    return lines


def describe_result(sample: dict) -> str:
    """Describe the model result of a sample in words, e.g. "navigate bedroom" or "move forward 2.00 m"."""
    parts = [sample["action"]]
    parts += [value for value in (sample["place"], sample["object_label"]) if value]
    for key, label, unit in (("forward_m", "forward", "m"), ("left_m", "left", "m"), ("turn_rad", "turn", "rad")):
        if abs(sample[key]) >= 1e-3:
            parts.append(f"{label} {sample[key]:.2f} {unit}")
    return " ".join(parts)


def failure_reason(sample: dict) -> str:
    """Describe in words the transcripts, result and rejections of a trial without the expected result."""
    transcripts = " / ".join(repr(text) for text in sample["transcripts"]) or "no transcript"
    reason = f"heard {transcripts}"
    if "action" in sample:
        basis = f", {sample['basis']}" if sample.get("basis") else ""
        reason += f", result {describe_result(sample)} (confidence {sample['confidence']:.2f}{basis})"
    else:
        reason += ", no model_result"
    if sample["rejections"]:
        reason += f", rejected: {'; '.join(sample['rejections'])}"
    if sample["timed_out"]:
        reason += ", timed out"
    return reason


def update_markdown(path: pathlib.Path, section: str) -> None:
    """Replace the section titled SECTION_TITLE (or a former title) in `path`, or append it.

    The file is created if it is missing.
    """
    headings = {f"## {title}" for title in (SECTION_TITLE,) + FORMER_SECTION_TITLES}
    lines = path.read_text().splitlines() if path.is_file() else ["# Benchmarks", ""]
    replacement = section.rstrip("\n").splitlines() + [""]
    start = next((i for i, line in enumerate(lines) if line.strip() in headings), None)
    if start is None:
        if lines and lines[-1].strip():
            lines.append("")
        lines += replacement
    else:
        end = next((i for i in range(start + 1, len(lines)) if re.match(r"#{1,2} ", lines[i])), len(lines))
        lines[start:end] = replacement
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("\n".join(lines).rstrip("\n") + "\n")
    temporary.replace(path)


# --- main ------------------------------------------------------------------------------

def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure end of speech to model_result and goal_pose latency through omni_model_node and "
                    "planner_node over loopback DDS, for each understanding path of omni_model_node.")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), metavar="PATH",
                        help="understanding_model values of omni_model_node to measure, one after the other "
                             f"({' or '.join(PATHS)}; default: {' '.join(PATHS)})")
    parser.add_argument("--repeats", type=int, default=5, help="measured trials per recording and path (default 5)")
    parser.add_argument("--partial-interval-s", type=float, default=None,
                        help="omni_model_node partial_interval_s in seconds; 0 disables partial "
                             "transcripts (default: the node's default)")
    parser.add_argument("--model-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="another omni_model_node parameter for every path, e.g. vad_min_silence_s:=0.3 "
                             "(repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        choices=[spec.name for spec in COMMANDS],
                        help="measure only this recording (repeatable; default: all)")

    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT,
                        help=f"JSON file for the raw samples (default {DEFAULT_OUTPUT.relative_to(REPO)})")
    parser.add_argument("--markdown", type=pathlib.Path, default=None,
                        help=f"Markdown file whose section '{SECTION_TITLE}' is written or replaced")

    parser.add_argument("--lead-silence-s", type=float, default=0.5,
                        help="silence played right before each recording, in seconds (default 0.5)")
    parser.add_argument("--gap-s", type=float, default=1.0,
                        help="silence after a trial's outcome before the next recording, in seconds (default 1.0)")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="seconds after a recording has been played within which its outcome must "
                             "arrive, or the trial counts as timed out (default 30)")
    parser.add_argument("--startup-timeout-s", type=float, default=180.0,
                        help="seconds allowed for the nodes of a path to load and be discovered (default 180)")

    args = parser.parse_args(argv)
    args.paths = list(dict.fromkeys(args.paths))    # drops repeats and keeps the order
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    for name in ("partial_interval_s", "lead_silence_s", "gap_s"):
        value = getattr(args, name)
        if value is not None and not value >= 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0 seconds, got {value}")
    for name in ("timeout_s", "startup_timeout_s"):
        value = getattr(args, name)
        if not value > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0 seconds, got {value}")
    for item in args.model_param:
        if ":=" not in item:
            parser.error(f"--model-param {item!r} is invalid; write NAME:=VALUE, e.g. vad_min_silence_s:=0.3")
        if item.split(":=", 1)[0] == "understanding_model":
            parser.error("--model-param cannot set understanding_model; choose the paths with --paths")
    return args


def model_parameters(args: argparse.Namespace, path: str) -> Dict[str, str]:
    params = {"understanding_model": path}
    params.update(item.split(":=", 1) for item in args.model_param)
    if args.partial_interval_s is not None:
        params["partial_interval_s"] = repr(float(args.partial_interval_s))
    return params


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    load_start = os.getloadavg()[0]
    specs = [spec for spec in COMMANDS if not args.only or spec.name in args.only]
    logger.info("ROS domain %d, loopback DDS; loading %d recordings", DOMAIN_ID, len(specs))
    try:
        vad = SileroVad()
        recordings = [load_recording(spec, vad) for spec in specs]
    except (FileNotFoundError, SynthesisError, ValueError) as error:
        logger.error("%s", error)
        return 1

    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        report = run_benchmark(args, recordings)
    except RuntimeError as error:
        logger.error("%s", error)
        return 1
    report["load_average_1min"] = [load_start, os.getloadavg()[0]]
    write_outputs(args, report)
    return 0


def run_benchmark(args: argparse.Namespace, recordings: List[Recording]) -> dict:
    """Measure each path of args.paths in turn with the same recordings and repeats.

    Returns the report without its summary, which write_outputs adds.
    """
    settings = TrialSettings(args.lead_silence_s, settle_s=1.0, gap_s=args.gap_s, timeout_s=args.timeout_s)
    report = build_report(args, recordings)
    probe = streamer = None
    try:
        probe = Probe()
        streamer = AudioStreamer(probe.audio_pub)
        for index, path in enumerate(args.paths):
            if index > 0:
                probe.wait_until_nodes_left(args.startup_timeout_s)
            report["paths"][path] = run_path(args, path, recordings, probe, streamer, settings)
    finally:
        if streamer is not None:
            streamer.stop()
        if probe is not None:
            probe.close()
    return report


def run_path(args: argparse.Namespace, path: str, recordings: List[Recording], probe: Probe,
             streamer: AudioStreamer, settings: TrialSettings) -> dict:
    """Start omni_model_node with understanding_model `path` and a planner_node, measure, and stop both.

    Returns the path's part of the report: parameters, checkpoint, memory,
    warm-up samples and measured samples.
    """
    params = model_parameters(args, path)
    nodes: List[NodeProcess] = []
    sampler = None
    try:
        model = NodeProcess("omni_model_node", params, node_log_path(args, path, "omni_model_node"))
        nodes.append(model)
        planner = NodeProcess("planner_node", {}, node_log_path(args, path, "planner_node"))
        nodes.append(planner)
        sampler = MemorySampler({"omni_model_node": model.pid, "planner_node": planner.pid})
        model.wait_for_log("listening on audio/chunk", args.startup_timeout_s)
        planner.wait_for_log("planner ready", args.startup_timeout_s)
        check_understanding_model(model, path)
        probe.wait_until_matched(args.startup_timeout_s)
        streamer.max_late_s = 0.0
        logger.info("%s: nodes ready and matched; playing %d recordings once as a warm-up", path, len(recordings))

        warm_up = play_round(recordings, streamer, probe, settings, f"{path} warm-up")
        samples = []
        for repeat in range(args.repeats):
            for sample in play_round(recordings, streamer, probe, settings, f"{path} repeat {repeat + 1}"):
                sample["repeat"] = repeat
                samples.append(sample)

        # VmHWM must be read before the processes end.
        sampler.stop()
        memory = {name: {"vm_hwm_bytes": node.peak_rss_bytes(), "sampled_peak_rss_bytes": sampler.peak_bytes[name]}
                  for name, node in (("omni_model_node", model), ("planner_node", planner))}
        audio_max_late_s = streamer.max_late_s
    finally:
        if sampler is not None:
            sampler.stop()
        for node in nodes:
            node.stop()

    # The log is complete once the node has stopped.
    log_text = model.log_text()
    events = read_model_log(log_text)
    for sample in warm_up + samples:
        add_log_components(sample, events, path, model.log_path)
    return {
        "model_params": params,
        "model_params_text": ", ".join(f"{k}={v}" for k, v in params.items()),
        "checkpoint": describe_checkpoint(log_text),
        "model_log": str(model.log_path),
        "planner_log": str(planner.log_path),
        "memory": memory,
        "audio_max_late_s": audio_max_late_s,
        "warm_up": warm_up,
        "samples": samples,
    }


def node_log_path(args: argparse.Namespace, path: str, node: str) -> pathlib.Path:
    """Return the log file of a node of one path, beside the JSON output."""
    return args.output.with_name(f"{args.output.stem}_{path}_{node}.log")


def check_understanding_model(model: NodeProcess, path: str) -> None:
    """Raise RuntimeError unless the model node logged that it runs understanding model `path`.

    Without a usable Omni checkpoint, the node falls back to the command parser
    and logs it, and timing that fallback as the omni path would be wrong.
    """
    match = BACKEND_LOG.search(model.log_text())
    if match is None:
        raise RuntimeError(f"omni_model_node did not log its understanding model; see its log {model.log_path}")
    if match.group(1) != path:
        raise RuntimeError(f"omni_model_node runs understanding model {match.group(1)!r} instead of {path!r}; "
                           f"its log {model.log_path} contains the reason (for 'omni', a missing or unusable "
                           f"checkpoint)")


def describe_checkpoint(log_text: str) -> Optional[dict]:
    """Return the Omni checkpoint that the model node logged, with the sha256 prefix of its weights, or None."""
    match = CHECKPOINT_LOG.search(log_text)
    if match is None:
        return None
    weights = pathlib.Path(match.group(1)) / "model.safetensors"
    digest = None
    if weights.is_file():
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    return {"path": match.group(1), "parameters": int(match.group(2)), "sha256_prefix": digest}


def play_round(recordings: List[Recording], streamer: AudioStreamer, probe: Probe, settings: TrialSettings,
               label: str) -> List[dict]:
    """Play every recording once and return one sample per trial, logging each outcome."""
    samples = []
    for recording in recordings:
        sample = run_trial(recording, streamer, probe, settings)
        sample["recording"] = recording.spec.name
        samples.append(sample)
        log = logger.info if sample["correct"] else logger.warning
        log("%s %s: %s", label, recording.spec.name, describe_trial(sample))
    return samples


def build_report(args: argparse.Namespace, recordings: List[Recording]) -> dict:
    """Return the report's settings, machine and recordings. run_benchmark adds the paths."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "scripts/env.sh python scripts/benchmark_latency.py " + shlex.join(sys.argv[1:]),
        "ros_domain_id": DOMAIN_ID,
        "machine": machine_description(),
        "settings": {
            "paths": args.paths,
            "repeats": args.repeats,
            "chunk_samples": CHUNK_SAMPLES,
            "sample_rate_hz": MODEL_SAMPLE_RATE_HZ,
            "lead_silence_s": args.lead_silence_s,
            "gap_s": args.gap_s,
            "timeout_s": args.timeout_s,
        },
        "recordings": [{
            "name": r.spec.name, "text": r.spec.text, "path": str(r.path),
            "duration_s": r.samples.size / MODEL_SAMPLE_RATE_HZ,
            "speech_end_s": (r.speech_end_sample + 1) / MODEL_SAMPLE_RATE_HZ,
            "silero_speech_end_s": None if r.silero_end_sample is None else r.silero_end_sample / MODEL_SAMPLE_RATE_HZ,
        } for r in recordings],
        "paths": {},
    }


def write_outputs(args: argparse.Namespace, report: dict) -> None:
    """Add the summaries, speed-ups and targets to the report, write the JSON (and Markdown) and print the tables."""
    names = [r["name"] for r in report["recordings"]]
    for path_report in report["paths"].values():
        path_report["summary"] = summarize_samples(path_report["samples"], names)
    report["speedups"] = compute_speedups(report)
    report["targets"] = target_rows(report)
    report["tables"] = {
        "comparison": comparison_table(report),
        "recordings": {path: recording_table(path, path_report["summary"])
                       for path, path_report in report["paths"].items()},
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", args.output)
    for path, path_report in report["paths"].items():
        if path_report["audio_max_late_s"] > CHUNK_S:
            logger.warning("%s: audio chunks went out up to %.0f ms late because the machine was busy, so the "
                           "audio stream was not quite real time", path, path_report["audio_max_late_s"] * 1000)
    print(report["tables"]["comparison"])
    print()
    sentence = speedup_sentence(report)
    if sentence:
        print(sentence)
        print()
    for target, measured, verdict in report["targets"]:
        print(f"- {target}: {measured}, {verdict}")
    for path, table in report["tables"]["recordings"].items():
        print()
        print(f"{path}, per recording:")
        print(table)
    if args.markdown is not None:
        update_markdown(args.markdown, markdown_section(report))
        logger.info("updated the section '%s' of %s", SECTION_TITLE, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
