"""`omni-agent sim-run`: the spoken fetch task, closed loop in the embedded simulator.

sim_node (MuJoCo) runs in its own process, and microphone_node,
omni_model_node and planner_node in this one on a multi-threaded executor,
all over loopback DDS. The spoken
command reaches the microphone node through a PulseAudio virtual microphone
when PulseAudio is installed, or as a played file otherwise. A recorder node
writes what happens into the output folder:

- run.mcap      every message on the command, status, pose and camera topics
- run.mp4/.gif  the head camera beside a top view, with the sim time and status
- path.png      the robot's path, the object's track and the hand-over point
- summary.txt   what was heard and planned, each step's status and times
- result.json   the same, machine-readable (used by the tests)
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

DEFAULT_COMMAND = "Go to the kitchen and bring me the apple."
TERMINAL = ("done", "rejected", "failed")
#: Every Nth head-camera image goes into the MCAP file (10 Hz camera -> 2 Hz).
CAMERA_RECORD_EVERY = 5


@dataclass
class RunOptions:
    command: str = DEFAULT_COMMAND
    audio: Optional[str] = None
    out: Optional[str] = None
    model: str = "tiny.en"
    language: str = "auto"
    real_time_factor: float = 1.0
    closed_doors: Tuple[str, ...] = ()
    virtual_microphone: bool = True
    timeout_s: float = 600.0          # wall time
    sim_timeout_s: float = 300.0      # sim time after the command was heard
    video: bool = True
    domain_id: Optional[int] = None


@dataclass
class RunReport:
    """The outcome and evidence of one run, written to result.json."""

    command: str
    audio_path: str = ""
    audio_input: str = ""
    heard: List[str] = field(default_factory=list)
    results: List[dict] = field(default_factory=list)
    statuses: List[dict] = field(default_factory=list)
    outcome: str = "no command heard"
    outcome_reason: str = ""
    utterance_id: str = ""
    object_label: str = ""
    hand_over_point: Optional[List[float]] = None
    object_final_position: Optional[List[float]] = None
    object_distance_m: Optional[float] = None
    sim_time_s: float = 0.0
    wall_time_s: float = 0.0
    files: Dict[str, str] = field(default_factory=dict)


def run_sim(options: RunOptions) -> RunReport:
    """Run the closed loop once and write the artefacts; returns the report."""
    from omni_agent import assets, dds

    from omni_agent.sim.world import load_world

    world = load_world()
    for door in options.closed_doors:
        world = world.with_door(door, closed=True)  # raises for an unknown door, before anything starts
    dds.apply_loopback_defaults(os.environ, domain_id=options.domain_id)
    out_dir = pathlib.Path(options.out or f"results/sim-run-{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    audio_path = pathlib.Path(options.audio) if options.audio else assets.spoken(options.command)
    if not audio_path.is_file():
        raise FileNotFoundError(f"audio file {audio_path} not found; pass an existing file to --audio")
    report = RunReport(command=options.command if not options.audio else "", audio_path=str(audio_path))

    microphone = None
    if options.virtual_microphone:
        from omni_agent.audio.virtual_mic import VirtualMicrophone, VirtualMicrophoneError

        if VirtualMicrophone.available():
            try:
                microphone = VirtualMicrophone(16000).start()
                os.environ.update(microphone.env)  # before PortAudio is first imported
            except VirtualMicrophoneError as error:
                print(f"sim-run: virtual microphone unavailable ({error}); playing the file instead")
                microphone = None
    report.audio_input = "PulseAudio virtual microphone" if microphone else "audio file source"
    try:
        _run_graph(options, report, audio_path, microphone, out_dir)
    finally:
        if microphone is not None:
            microphone.stop()
    (out_dir / "result.json").write_text(json.dumps(report.__dict__, indent=2, ensure_ascii=False))
    report.files["result"] = str(out_dir / "result.json")
    return report


def _run_graph(options: RunOptions, report: RunReport, audio_path: pathlib.Path, microphone,
               out_dir: pathlib.Path) -> None:
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from omni_agent.nodes.common import stop_graph
    from omni_agent.nodes.microphone_node import MicrophoneNode
    from omni_agent.nodes.omni_model_node import OmniModelNode
    from omni_agent.nodes.planner_node import PlannerNode

    sim_time = [Parameter("use_sim_time", value=True)]
    if microphone is not None:
        audio_params = [Parameter("source", value="device")]
    else:
        audio_params = [Parameter("files", value=[str(audio_path)]), Parameter("gap_s", value=1.0)]

    # The simulator runs in its own process, as Gazebo would: its physics loop
    # must not share one Python interpreter lock with Whisper and the recorder.
    simulator = _start_sim_process(options, out_dir)
    rclpy.init()
    nodes, executor, spinner, recorder = [], None, None, None
    started_wall = time.monotonic()
    try:
        recorder = RunRecorder(out_dir, options.video, options.closed_doors)
        nodes.append(recorder)
        if not recorder.wait_for(lambda: recorder.sim_time_s > 0.0 or simulator.poll() is not None, 120.0,
                                 spin=True) or simulator.poll() is not None:
            raise RuntimeError(f"sim_node did not start; its log: {out_dir / 'sim_node.log'}")
        model = OmniModelNode(parameter_overrides=sim_time + [
            Parameter("whisper_model", value=options.model), Parameter("language", value=options.language)])
        nodes.append(model)
        planner = PlannerNode(parameter_overrides=sim_time + [
            Parameter("navigation_interface", value="action"),
            Parameter("navigate_action_type", value=_navigate_action_type())])
        nodes.append(planner)
        mic_node = MicrophoneNode(parameter_overrides=sim_time + audio_params)
        nodes.append(mic_node)

        executor = MultiThreadedExecutor(num_threads=6)
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()

        if microphone is not None:
            # PortAudio's first capture callback can come a second or two after the
            # stream opens: speak only once the model node receives audio.
            if not recorder.wait_for(lambda: model.audio_received, 60.0):
                raise RuntimeError("the microphone node published no audio within 60 s; see its log above")
            threading.Thread(target=microphone.play, args=(audio_path,), daemon=True).start()
        _wait_for_outcome(recorder, options)
    finally:
        stop_graph(executor, spinner, nodes)
        _stop_process(simulator)
    report.wall_time_s = time.monotonic() - started_wall
    if recorder is not None:
        recorder.finish(report)


def _navigate_action_type() -> str:
    """Nav2's action type where installed, else the same-shaped type built with omni_agent."""
    try:
        import nav2_msgs.action  # noqa: F401

        return "nav2_msgs/action/NavigateToPose"
    except ImportError:
        return "omni_agent_test_msgs/action/NavigateToPose"


def _start_sim_process(options: RunOptions, out_dir: pathlib.Path):
    import subprocess
    import sys

    params = {"real_time_factor": float(options.real_time_factor),
              "top_view_rate_hz": 5.0 if options.video else 0.0}
    args = [sys.executable, "-m", "omni_agent.nodes.sim_node", "--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    if options.closed_doors:
        args += ["-p", "closed_doors:=[" + ",".join(f"'{d}'" for d in options.closed_doors) + "]"]
    log = open(out_dir / "sim_node.log", "w")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pathlib.Path(__file__).resolve().parent.parent),
                                                    env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop_process(process) -> None:
    import signal
    import subprocess

    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_outcome(recorder: "RunRecorder", options: RunOptions) -> None:
    deadline = time.monotonic() + options.timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if recorder.outcome() in TERMINAL:
            recorder.wait_for(lambda: False, 1.0)  # let the last messages arrive
            return
        heard_at = recorder.heard_at_sim_s
        if heard_at is not None and recorder.sim_time_s - heard_at > options.sim_timeout_s:
            recorder.timed_out = f"no final status within {options.sim_timeout_s:.0f} s of sim time"
            return
    recorder.timed_out = f"no final status within {options.timeout_s:.0f} s of wall time"


def RunRecorder(out_dir: pathlib.Path, video: bool, closed_doors=()):  # noqa: N802 (builds the class lazily)
    return _recorder_class()(out_dir, video, closed_doors)


def _recorder_class():
    import numpy as np
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Odometry
    from rclpy.node import Node
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from tf2_msgs.msg import TFMessage

    from omni_agent.msg import AgentStatus, ManipulationGoal, ModelResult, Transcript
    from omni_agent.nodes.common import COMMAND_QOS, SENSOR_QOS
    from omni_agent.planning.planner import STATE_NAMES
    from omni_agent.sim.recording import McapRecorder, StepRecord, VideoRecorder, plot_path, write_summary
    from omni_agent.sim.robot import RobotGeometry
    from omni_agent.sim.world import load_world
    from omni_agent.vision.image import image_to_rgb

    topics = {
        "transcript": Transcript, "model_result": ModelResult, "agent_status": AgentStatus,
        "goal_pose": PoseStamped, "manipulation_goal": ManipulationGoal, "manipulation_status": AgentStatus,
    }

    class _RunRecorder(Node):
        """Record the run: MCAP, video frames, path, statuses."""

        def __init__(self, out_dir: pathlib.Path, video: bool, closed_doors=()):
            super().__init__("omni_agent_run_recorder")
            self.out_dir = out_dir
            self.closed_doors = tuple(closed_doors)
            self.lock = threading.Lock()
            self.started_wall = time.monotonic()
            self.sim_time_s = 0.0
            self.heard_at_sim_s: Optional[float] = None
            self.timed_out = ""
            self.transcripts: List[Transcript] = []
            self.results: List[ModelResult] = []
            self.statuses: List[Tuple[AgentStatus, float, float]] = []
            self.poses: List[Tuple[float, float, float]] = []
            self.object_positions: Dict[str, Tuple[float, float, float]] = {}
            self.object_tracks: Dict[str, List[Tuple[float, float, float]]] = {}
            self.pose_at_command: Optional[Tuple[float, float, float]] = None
            self.latest_camera = None
            self.camera_count = 0
            self.last_progress_print_s = -1e9
            self.video = VideoRecorder(out_dir / "run.mp4", fps=5.0, gif_path=out_dir / "run.gif") if video else None
            self.mcap = McapRecorder(out_dir / "run.mcap")
            for topic, msg_type in topics.items():
                self.mcap.register(topic, msg_type)
                self.create_subscription(msg_type, topic, self._recorder_for(topic), COMMAND_QOS)
            for topic, msg_type, callback in (("odom", Odometry, self._on_odom),
                                              ("sim/object_poses", TFMessage, self._on_objects)):
                self.mcap.register(topic, msg_type)
                self.create_subscription(msg_type, topic, callback, SENSOR_QOS)
            self.mcap.register("camera/image_raw", Image)
            self.create_subscription(Image, "camera/image_raw", self._on_camera, SENSOR_QOS)
            self.create_subscription(Image, "sim/top_view", self._on_top_view, SENSOR_QOS)
            self.create_subscription(Clock, "/clock", self._on_clock, SENSOR_QOS)

        # --- callbacks ---------------------------------------------------------
        def _stamp_ns(self) -> int:
            return int(self.sim_time_s * 1e9)

        def _recorder_for(self, topic: str):
            def record(msg) -> None:
                with self.lock:
                    self.mcap.write(topic, msg, self._stamp_ns())
                    if topic == "transcript" and msg.is_final:
                        self.transcripts.append(msg)
                        if self.heard_at_sim_s is None:
                            self.heard_at_sim_s = self.sim_time_s
                        print(f"[sim {self.sim_time_s:6.1f} s] heard      {msg.utterance_id} {msg.text!r}", flush=True)
                    elif topic == "model_result":
                        self.results.append(msg)
                        if self.pose_at_command is None and self.poses:
                            self.pose_at_command = self.poses[-1]
                        print(f"[sim {self.sim_time_s:6.1f} s] result     {msg.utterance_id} {msg.action} "
                              f"object={msg.object_label or '-'} place={msg.place or '-'}", flush=True)
                    elif topic == "agent_status":
                        self.statuses.append((msg, self.sim_time_s, time.monotonic() - self.started_wall))
                        if msg.state == AgentStatus.EXECUTING and msg.reason.startswith("navigating"):
                            if self.sim_time_s - self.last_progress_print_s < 2.0:
                                return  # progress reports: print one every 2 s of sim time
                            self.last_progress_print_s = self.sim_time_s
                        step = f" {msg.step}" if msg.step else ""
                        print(f"[sim {self.sim_time_s:6.1f} s] status     {msg.utterance_id} "
                              f"{STATE_NAMES.get(msg.state, msg.state)}{step}: {msg.reason}", flush=True)
            return record

        def _on_clock(self, msg) -> None:
            self.sim_time_s = msg.clock.sec + msg.clock.nanosec * 1e-9

        def _on_odom(self, msg) -> None:
            q = msg.pose.pose.orientation
            yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
            with self.lock:
                self.poses.append((msg.pose.pose.position.x, msg.pose.pose.position.y, yaw))
                self.mcap.write("odom", msg, self._stamp_ns())

        def _on_objects(self, msg) -> None:
            with self.lock:
                for transform in msg.transforms:
                    t = transform.transform.translation
                    position = (t.x, t.y, t.z)
                    self.object_positions[transform.child_frame_id] = position
                    track = self.object_tracks.setdefault(transform.child_frame_id, [])
                    if not track or math.dist(track[-1], position) > 0.02:
                        track.append(position)
                self.mcap.write("sim/object_poses", msg, self._stamp_ns())

        def _on_camera(self, msg) -> None:
            with self.lock:
                self.latest_camera = msg
                self.camera_count += 1
                if self.camera_count % CAMERA_RECORD_EVERY == 1:  # keep the MCAP file small
                    self.mcap.write("camera/image_raw", msg, self._stamp_ns())

        def _on_top_view(self, msg) -> None:
            if self.video is None or self.latest_camera is None:
                return
            camera = self.latest_camera
            rgb = image_to_rgb(camera.height, camera.width, camera.encoding, camera.step, bytes(camera.data))
            top = image_to_rgb(msg.height, msg.width, msg.encoding, msg.step, bytes(msg.data))
            with self.lock:
                status = self.statuses[-1][0] if self.statuses else None
                text = f"{STATE_NAMES.get(status.state, '')} {status.step}: {status.reason}" if status else "waiting"
                self.video.add_frame(rgb, top, self.sim_time_s, text)

        # --- outcome -------------------------------------------------------------
        def wait_for(self, predicate, timeout_s: float, spin: bool = False) -> bool:
            """Wait until predicate() is true; spin this node meanwhile if no executor does."""
            import rclpy

            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if predicate():
                    return True
                if spin:
                    rclpy.spin_once(self, timeout_sec=0.05)
                else:
                    time.sleep(0.05)
            return False

        def command_id(self) -> str:
            with self.lock:
                return self.results[0].utterance_id if self.results else ""

        def outcome(self) -> str:
            uid = self.command_id()
            with self.lock:
                for status, _, _ in self.statuses:
                    if status.utterance_id != uid:
                        continue
                    if status.state in (AgentStatus.REJECTED, AgentStatus.FAILED):
                        return STATE_NAMES[status.state]
                    if status.state == AgentStatus.DONE and not status.step:
                        return "done"
                # A transcript that was not a command ends with a REJECTED status from the model.
                for status, _, _ in self.statuses:
                    if not uid and status.state == AgentStatus.REJECTED:
                        return "rejected"
            return ""

        def finish(self, report: RunReport) -> None:
            """Close the files and fill the report (call after the executor stopped)."""
            self.mcap.close()
            if self.video is not None:
                self.video.close()
            report.sim_time_s = self.sim_time_s
            report.heard = [t.text for t in self.transcripts]
            report.results = [{"utterance_id": r.utterance_id, "action": r.action, "object_label": r.object_label,
                               "place": r.place, "confidence": round(r.confidence, 3), "source": r.source}
                              for r in self.results]
            report.statuses = [{"utterance_id": s.utterance_id, "state": STATE_NAMES.get(s.state, str(s.state)),
                                "step": s.step, "reason": s.reason, "sim_time_s": round(sim_s, 2),
                                "wall_time_s": round(wall_s, 2)} for s, sim_s, wall_s in self.statuses]
            report.utterance_id = self.command_id()
            report.outcome = self.outcome() or ("timed out: " + self.timed_out if self.timed_out else "unfinished")
            final = [s for s, _, _ in self.statuses if s.utterance_id == report.utterance_id]
            report.outcome_reason = final[-1].reason if final else ""
            if self.results:
                report.object_label = self.results[0].object_label
            if self.pose_at_command is not None:
                x, y, yaw = self.pose_at_command
                offset = RobotGeometry().hand_over_offset
                report.hand_over_point = [x + offset[0] * math.cos(yaw) - offset[1] * math.sin(yaw),
                                          y + offset[0] * math.sin(yaw) + offset[1] * math.cos(yaw), offset[2]]
            position = self.object_positions.get(report.object_label)
            if position is not None:
                report.object_final_position = [round(v, 4) for v in position]
                if report.hand_over_point is not None:
                    report.object_distance_m = round(math.dist(position, report.hand_over_point), 4)
            self._write_files(report)

        def _write_files(self, report: RunReport) -> None:
            files = {"mcap": self.out_dir / "run.mcap"}
            if self.video is not None and self.video.frame_count:
                files["video"] = self.out_dir / "run.mp4"
                files["gif"] = self.out_dir / "run.gif"
            tracks = {name: track for name, track in self.object_tracks.items() if name == report.object_label}
            world = load_world()
            for door in self.closed_doors:
                world = world.with_door(door, closed=True)
            heard = (report.heard[0] if report.heard else report.command).rstrip(".")
            plot_path(world, self.poses, tracks, self.out_dir / "path.png",
                      hand_over_point=tuple(report.hand_over_point) if report.hand_over_point else None,
                      title=f"{heard}: {report.outcome}")
            files["path_plot"] = self.out_dir / "path.png"
            steps = [StepRecord(s["step"] or "command", s["state"], s["sim_time_s"], s["wall_time_s"], s["reason"])
                     for s in report.statuses if s["utterance_id"] == report.utterance_id]
            planned = [s["reason"] for s in report.statuses
                       if s["utterance_id"] == report.utterance_id and s["state"] == "accepted"]
            text = write_summary(self.out_dir / "summary.txt", report.heard, planned, steps,
                                 f"{report.outcome}: {report.outcome_reason}", report.object_distance_m,
                                 report.object_label)
            files["summary"] = self.out_dir / "summary.txt"
            report.files = {name: str(path) for name, path in files.items()}
            print("\n" + text)

    return _RunRecorder
