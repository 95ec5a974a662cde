#!/usr/bin/env python3
"""Measure the latency from the end of a spoken command to goal_pose.

The benchmark starts omni_model_node and planner_node as their own processes
on a random ROS domain over loopback DDS. It publishes a continuous real-time
stream of 16 kHz S16LE AudioChunk messages of 512 samples to audio/chunk, as
a microphone would: silence, with each recording played into it in turn.

End of speech is the wall time at which this process published the chunk
that contains the recording's last voiced sample (see find_speech_end). Latency
is the arrival time of goal_pose in this process minus the end of speech.
The components come from the model node's log line "[utt-N] end of speech"
(VAD close) and from the Transcript message (Whisper processing time).

Every recording is first played once as a check that is not counted: a
recording whose command is not understood is dropped and reported. The
measured trials then go round the recordings --repeats times.

Writes results/latency.json (raw samples) and the node logs beside it, and
prints a Markdown table. With
--markdown FILE it also writes or replaces the section "End of speech to
goal_pose" of FILE. It asserts nothing about the numbers.

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

logger = logging.getLogger("benchmark_latency")

GOFORWARD = pathlib.Path("/usr/share/pocketsphinx/test/data/goforward.raw")
CHUNK_SAMPLES = 512
CHUNK_S = CHUNK_SAMPLES / MODEL_SAMPLE_RATE_HZ
SECTION_TITLE = "End of speech to goal_pose"
DEFAULT_OUTPUT = REPO / "results" / "latency.json"

# Targets for comparison. The benchmark reports whether they are met and exits 0 either way.
TARGET_P50_S = 0.350
TARGET_P95_S = 0.600
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


def run_trial(recording: Recording, streamer: AudioStreamer, probe: Probe, model: NodeProcess,
              settings: TrialSettings) -> dict:
    """Play one recording and return its sample: outcome, latency and components in seconds."""
    lead = int(round(settings.lead_silence_s * MODEL_SAMPLE_RATE_HZ))
    signal_samples = np.concatenate([np.zeros(lead, np.float32), recording.samples])
    end_chunk = (lead + recording.speech_end_sample) // CHUNK_SAMPLES

    marks = probe.marks()
    playback = streamer.play(signal_samples)
    if not playback.done.wait(signal_samples.size / MODEL_SAMPLE_RATE_HZ + settings.timeout_s):
        raise RuntimeError("the audio streamer stopped publishing; see the log above")
    speech_end_wall = playback.send_wall_s[end_chunk]
    outputs, timed_out = wait_for_outcome(probe, marks, settings, time.monotonic(), speech_end_wall)

    sample = describe_outcome(recording.spec, outputs, speech_end_wall, model)
    sample["timed_out"] = timed_out
    time.sleep(settings.gap_s)
    return sample


def wait_for_outcome(probe: Probe, marks: Dict[str, int], settings: TrialSettings, playback_done: float,
                     speech_end_wall: float) -> Tuple[Dict[str, list], bool]:
    """Wait until every final transcript of the trial is decided, and return the messages and whether it timed out.

    An utterance is decided by an EXECUTING, DONE, REJECTED or FAILED status.
    After EXECUTING the wait goes on until goal_pose has arrived too, because
    the two topics are delivered independently.
    """
    deadline = playback_done + settings.timeout_s
    while True:
        outputs = probe.since(marks)
        finals = {msg.utterance_id for _, msg in outputs["transcript"] if msg.is_final}
        statuses = [msg for _, msg in outputs["agent_status"] if msg.utterance_id in finals]
        decided = {msg.utterance_id for msg in statuses if msg.state in DECIDED_STATES}
        executing = any(msg.state == AgentStatus.EXECUTING for msg in statuses)
        have_goal = any(arrival > speech_end_wall for arrival, _ in outputs["goal_pose"])
        settled = time.monotonic() >= playback_done + settings.settle_s
        if settled and finals and decided == finals and (have_goal or not executing):
            return outputs, False
        if time.monotonic() > deadline:
            return outputs, True
        time.sleep(0.01)


def describe_outcome(spec: CommandSpec, outputs: Dict[str, list], speech_end_wall: float,
                     model: NodeProcess) -> dict:
    """Match the trial's messages to one utterance and compute its latency and components."""
    finals = [(arrival, msg) for arrival, msg in outputs["transcript"] if msg.is_final]
    partials = [msg for _, msg in outputs["transcript"] if not msg.is_final]
    sample = {
        "speech_end_wall_s": speech_end_wall,
        "utterance_ids": [msg.utterance_id for _, msg in finals],
        "transcripts": [msg.text for _, msg in finals],
        "partial_transcripts": len(partials),
        "understood": False,
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
        "forward_m": result.forward_m,
        "turn_rad": result.turn_rad,
        "understood": spec.matches(result),
        "whisper_s": float(transcript.processing_time_s),
        "audio_duration_s": float(transcript.audio_duration_s),
    })
    goals = [arrival for arrival, _ in outputs["goal_pose"] if arrival > speech_end_wall]
    if not goals:
        return sample

    goal_arrival = goals[0]
    sample["latency_s"] = goal_arrival - speech_end_wall
    sample["result_to_goal_s"] = goal_arrival - result_arrival
    vad_close_wall = find_vad_close(model, result.utterance_id)
    if vad_close_wall is not None:
        transcription_start = stamp_to_s(transcript.header.stamp) - transcript.processing_time_s
        sample["vad_close_s"] = vad_close_wall - speech_end_wall
        sample["worker_wait_s"] = transcription_start - vad_close_wall
    return sample


def find_vad_close(model: NodeProcess, utterance_id: str) -> Optional[float]:
    """Return the wall time of the model node's "end of speech" log line for an utterance."""
    for _ in range(20):     # the line is written before the result, but the file may lag
        for match in END_OF_SPEECH_LOG.finditer(model.log_text()):
            if match.group(2) == utterance_id:
                return float(match.group(1))
        time.sleep(0.05)
    logger.warning("no 'end of speech' log line for %s in %s; its VAD close time is left out",
                   utterance_id, model.log_path)
    return None


# --- statistics and reports -----------------------------------------------------------

COMPONENTS = ("vad_close_s", "worker_wait_s", "whisper_s", "result_to_goal_s")


def summarize(values: List[float]) -> Optional[dict]:
    """Return n, p50, p95 (numpy's linear interpolation), mean and max, or None when empty."""
    if not values:
        return None
    array = np.asarray(values, dtype=np.float64)
    return {"n": int(array.size), "p50": float(np.percentile(array, 50)), "p95": float(np.percentile(array, 95)),
            "mean": float(array.mean()), "max": float(array.max())}


def summarize_samples(samples: List[dict], names: List[str]) -> Dict[str, dict]:
    """Summarize latency and components per recording and over all recordings ("all")."""
    groups = {name: [s for s in samples if s["recording"] == name] for name in names}
    groups["all"] = list(samples)
    summary = {}
    for name, group in groups.items():
        measured = [s for s in group if s["understood"] and "latency_s" in s]
        entry = {"trials": len(group), "failed": len(group) - len(measured),
                 "latency_s": summarize([s["latency_s"] for s in measured])}
        for component in COMPONENTS:
            entry[component] = summarize([s[component] for s in measured if component in s])
        summary[name] = entry
    return summary


def milliseconds(stats: Optional[dict], key: str) -> str:
    return "–" if stats is None else f"{stats[key] * 1000:.0f}"


def markdown_table(summary: Dict[str, dict]) -> str:
    lines = ["| recording | n | failed | p50 ms | p95 ms | mean ms | max ms "
             "| VAD close p50 ms | worker wait p50 ms | Whisper p50 ms | result → goal p50 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, entry in summary.items():
        latency = entry["latency_s"]
        n = latency["n"] if latency else 0
        cells = [f"**{name}**" if name == "all" else name, str(n), str(entry["failed"])]
        cells += [milliseconds(latency, key) for key in ("p50", "p95", "mean", "max")]
        cells += [milliseconds(entry[component], "p50") for component in COMPONENTS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_rows(summary: Dict[str, dict], memory: Dict[str, dict]) -> List[Tuple[str, str, str]]:
    """Return (target, measured, verdict) rows for the latency and memory targets."""
    overall = summary["all"]["latency_s"]
    model_peak = max(v for v in (memory["omni_model_node"]["vm_hwm_bytes"],
                                 memory["omni_model_node"]["sampled_peak_rss_bytes"]) if v is not None)

    def verdict(value: Optional[float], limit: float) -> str:
        if value is None:
            return "not measured"
        return "met" if value <= limit else "not met"

    p50 = overall["p50"] if overall else None
    p95 = overall["p95"] if overall else None
    return [
        (f"p50 ≤ {TARGET_P50_S * 1000:.0f} ms", milliseconds(overall, "p50") + " ms", verdict(p50, TARGET_P50_S)),
        (f"p95 ≤ {TARGET_P95_S * 1000:.0f} ms", milliseconds(overall, "p95") + " ms", verdict(p95, TARGET_P95_S)),
        (f"omni_model_node RSS ≤ {TARGET_RSS_BYTES / 1e9:.1f} GB", f"{model_peak / 1e9:.2f} GB",
         verdict(model_peak, TARGET_RSS_BYTES)),
    ]


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
    for package in ("faster-whisper", "ctranslate2", "onnxruntime", "silero-vad"):
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


def markdown_section(report: dict, table: str) -> str:
    """Return the "End of speech to goal_pose" section of docs/benchmarks.md."""
    lines = [f"## {SECTION_TITLE}", "", f"Measured {report['date']} with:", "", "```", report["command"], "```", ""]
    lines += machine_lines(report)
    lines += DEFINITION_LINES
    lines += [table, ""]
    lines += outcome_lines(report)
    lines += ["| target | measured | result |", "| --- | ---: | --- |"]
    lines += [f"| {target} | {measured} | {verdict} |" for target, measured, verdict in report["targets"]]
    lines.append("")
    return "\n".join(lines)


DEFINITION_LINES = [
    "How the columns are measured:",
    "",
    "- End of speech: the wall time at which the benchmark published the 32 ms audio chunk that contains the "
    "recording's last voiced sample (10 ms frame energy). Audio is published in real time, as from a microphone.",
    "- Latency (p50 … max): arrival of goal_pose in the benchmark process minus the end of speech.",
    "- VAD close: end of speech to the model node's log line \"end of speech\".",
    "- Worker wait: from that log line to the start of the final transcription. The model node has one "
    "worker thread, so this is mostly a partial transcription that was still running.",
    "- Whisper: processing_time_s of the final Transcript message.",
    "- Result → goal: arrival of model_result to arrival of goal_pose, both in the benchmark process.",
    "- failed: trials without the expected goal_pose (misheard, rejected or timed out); they are left out of "
    "the times. Percentiles use numpy's linear interpolation, so with few repeats p95 is close to the maximum.",
    "",
]


def machine_lines(report: dict) -> List[str]:
    machine = report["machine"]
    versions = machine["versions"]
    settings = report["settings"]
    load_start, load_end = report["load_average_1min"]
    return [
        f"- CPU: {machine['cpu']}, {machine['logical_cores']} logical cores "
        f"({machine['usable_cores']} usable by the benchmark), RAM {machine['ram_bytes'] / 2 ** 30:.1f} GiB",
        f"- OS: {machine['os']}; Python {machine['python']}",
        f"- faster-whisper {versions['faster-whisper']}, ctranslate2 {versions['ctranslate2']}, "
        f"onnxruntime {versions['onnxruntime']}, silero-vad {versions['silero-vad']}, rclpy {machine['rclpy']}",
        f"- Load average (1 min) {load_start:.2f} at the start and {load_end:.2f} at the end; audio chunks "
        f"went out at most {report['audio_max_late_s'] * 1000:.0f} ms late",
        f"- omni_model_node parameters: {settings['model_params_text']}. Repeats per recording: "
        f"{settings['repeats']}, after one uncounted check pass",
        "- Recordings: " + "; ".join(
            f"{r['name']} \"{r['text']}\" (speech ends at {r['speech_end_s']:.2f} s)" for r in report["recordings"]),
        "",
    ]


def outcome_lines(report: dict) -> List[str]:
    memory = report["memory"]
    model, planner = memory["omni_model_node"], memory["planner_node"]
    lines = [
        f"Peak resident memory: omni_model_node {format_bytes(model['vm_hwm_bytes'])} (VmHWM; "
        f"{format_bytes(model['sampled_peak_rss_bytes'])} sampled every 0.1 s), planner_node "
        f"{format_bytes(planner['vm_hwm_bytes'])} (VmHWM; {format_bytes(planner['sampled_peak_rss_bytes'])} sampled).",
        "",
    ]
    if report["dropped"]:
        lines += ["Dropped because the check pass did not understand them:", ""]
        lines += [f"- {item['recording']}: {item['reason']}" for item in report["dropped"]]
        lines.append("")
    failed = [s for s in report["samples"] if not (s["understood"] and "latency_s" in s)]
    if failed:
        lines += ["Failed trials:", ""]
        lines += [f"- {s['recording']}, repeat {s['repeat'] + 1}: {failure_reason(s)}" for s in failed]
        lines.append("")
    return lines


def failure_reason(sample: dict) -> str:
    """Describe in words why a trial gave no matching goal_pose."""
    transcripts = " / ".join(repr(text) for text in sample["transcripts"]) or "no transcript"
    reason = f"heard {transcripts}"
    if "action" in sample:
        reason += (f", result {sample['action']} {sample['place']} forward {sample['forward_m']:.2f} m "
                   f"turn {sample['turn_rad']:.2f} rad")
    if sample["rejections"]:
        reason += f", rejected: {'; '.join(sample['rejections'])}"
    if sample["timed_out"]:
        reason += ", timed out"
    return reason


def update_markdown(path: pathlib.Path, section: str) -> None:
    """Replace the section titled SECTION_TITLE in `path`, or append it to the file (created if missing)."""
    heading = f"## {SECTION_TITLE}"
    lines = path.read_text().splitlines() if path.is_file() else ["# Benchmarks", ""]
    replacement = section.rstrip("\n").splitlines() + [""]
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
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
        description="Measure end of speech to goal_pose latency through omni_model_node and planner_node "
                    "over loopback DDS.")
    parser.add_argument("--repeats", type=int, default=5, help="measured trials per recording (default 5)")
    parser.add_argument("--partial-interval-s", type=float, default=None,
                        help="omni_model_node partial_interval_s in seconds; 0 disables partial "
                             "transcripts (default: the node's default)")
    parser.add_argument("--model-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="another omni_model_node parameter, e.g. vad_min_silence_s:=0.3 (repeatable)")
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
                        help="seconds allowed for the nodes to load and be discovered (default 180)")

    args = parser.parse_args(argv)
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
    return args


def model_parameters(args: argparse.Namespace) -> Dict[str, str]:
    params = dict(item.split(":=", 1) for item in args.model_param)
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
    """Run the check pass and the measured trials between starting and stopping the nodes.

    Returns the report without its summary, which write_outputs adds.
    """
    params = model_parameters(args)
    settings = TrialSettings(args.lead_silence_s, settle_s=1.0, gap_s=args.gap_s, timeout_s=args.timeout_s)
    nodes: List[NodeProcess] = []
    probe = streamer = sampler = None
    try:
        model = NodeProcess("omni_model_node", params, args.output.with_name("latency_omni_model_node.log"))
        nodes.append(model)
        planner = NodeProcess("planner_node", {}, args.output.with_name("latency_planner_node.log"))
        nodes.append(planner)
        sampler = MemorySampler({"omni_model_node": model.pid, "planner_node": planner.pid})
        probe = Probe()
        model.wait_for_log("listening on audio/chunk", args.startup_timeout_s)
        planner.wait_for_log("planner ready", args.startup_timeout_s)
        probe.wait_until_matched(args.startup_timeout_s)
        streamer = AudioStreamer(probe.audio_pub)
        logger.info("nodes ready and matched; playing %d recordings once as a check", len(recordings))

        checks, dropped, understood = check_recordings(recordings, streamer, probe, model, settings)
        if not understood:
            raise RuntimeError("no recording was understood in the check pass, so nothing can be measured; "
                               f"see {model.log_path}")
        samples = measure(understood, args.repeats, streamer, probe, model, settings)

        # VmHWM must be read before the processes end.
        sampler.stop()
        memory = {name: {"vm_hwm_bytes": node.peak_rss_bytes(), "sampled_peak_rss_bytes": sampler.peak_bytes[name]}
                  for name, node in (("omni_model_node", model), ("planner_node", planner))}
        report = build_report(args, params, recordings, [r.spec.name for r in understood], memory)
        report.update(audio_max_late_s=streamer.max_late_s, dropped=dropped, checks=checks, samples=samples)
        return report
    finally:
        if streamer is not None:
            streamer.stop()
        if sampler is not None:
            sampler.stop()
        for node in nodes:
            node.stop()
        if probe is not None:
            probe.close()


def check_recordings(recordings: List[Recording], streamer: AudioStreamer, probe: Probe, model: NodeProcess,
                     settings: TrialSettings) -> Tuple[List[dict], List[dict], List[Recording]]:
    """Play each recording once, uncounted, and sort out those whose command was not understood.

    Returns the check samples, the dropped recordings with reasons, and the understood recordings.
    """
    checks, dropped, understood = [], [], []
    for recording in recordings:
        sample = run_trial(recording, streamer, probe, model, settings)
        sample["recording"] = recording.spec.name
        checks.append(sample)
        if sample["understood"] and "latency_s" in sample:
            understood.append(recording)
            logger.info("check %s: understood (heard %r)", recording.spec.name, sample["transcripts"])
            continue
        reason = failure_reason(sample)
        dropped.append({"recording": recording.spec.name, "text": recording.spec.text, "reason": reason})
        logger.warning("check %s (%r): not understood, dropped: %s", recording.spec.name,
                       recording.spec.text, reason)
    return checks, dropped, understood


def measure(recordings: List[Recording], repeats: int, streamer: AudioStreamer, probe: Probe,
            model: NodeProcess, settings: TrialSettings) -> List[dict]:
    """Play the recordings round-robin `repeats` times and return one sample per trial."""
    samples = []
    for repeat in range(repeats):
        for recording in recordings:
            sample = run_trial(recording, streamer, probe, model, settings)
            sample.update(recording=recording.spec.name, repeat=repeat)
            samples.append(sample)
            if sample["understood"] and "latency_s" in sample:
                logger.info("repeat %d %s: %.0f ms", repeat + 1, recording.spec.name, sample["latency_s"] * 1000)
            else:
                logger.warning("repeat %d %s: no matching goal_pose: %s", repeat + 1, recording.spec.name,
                               failure_reason(sample))
    return samples


def build_report(args: argparse.Namespace, params: Dict[str, str], recordings: List[Recording],
                 measured_names: List[str], memory: Dict[str, dict]) -> dict:
    """Return the report's settings, machine, recordings and memory. The caller adds the samples."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "scripts/env.sh python scripts/benchmark_latency.py " + shlex.join(sys.argv[1:]),
        "ros_domain_id": DOMAIN_ID,
        "machine": machine_description(),
        "settings": {
            "repeats": args.repeats,
            "model_params": params,
            "model_params_text": ", ".join(f"{k}={v}" for k, v in params.items()) or "node defaults",
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
        "measured_recordings": measured_names,
        "memory": memory,
    }


def write_outputs(args: argparse.Namespace, report: dict) -> None:
    """Add the summary and targets to the report, write the JSON (and Markdown) and print the table."""
    report["summary"] = summarize_samples(report["samples"], report["measured_recordings"])
    report["targets"] = target_rows(report["summary"], report["memory"])
    table = markdown_table(report["summary"])
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    logger.info("wrote %s", args.output)
    if report["audio_max_late_s"] > CHUNK_S:
        logger.warning("audio chunks went out up to %.0f ms late because the machine was busy, so the "
                       "audio stream was not quite real time", report["audio_max_late_s"] * 1000)
    print(table)
    print()
    for target, measured, verdict in report["targets"]:
        print(f"- {target}: {measured}, {verdict}")
    if args.markdown is not None:
        update_markdown(args.markdown, markdown_section(report, table))
        logger.info("updated the section '%s' of %s", SECTION_TITLE, args.markdown)


if __name__ == "__main__":
    sys.exit(main())
