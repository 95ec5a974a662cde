"""`omni-agent run`: the four nodes in one process, over real DDS.

The camera, microphone, model and planner nodes run on one multi-threaded
executor, exactly the nodes that `ros2 launch omni_agent robot.launch.py`
starts as separate processes. A monitor node prints every transcript,
result, goal and status as it arrives. By default DDS stays on loopback.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time
from typing import Dict, List


def run_graph(args) -> int:
    from omni_agent import assets, dds

    if args.ros_network == "loopback":
        settings = dds.apply_loopback_defaults(os.environ, domain_id=args.domain_id)
        network = f"loopback only, ROS_DOMAIN_ID={settings['ROS_DOMAIN_ID']}"
    else:
        network = (f"as set in the environment (ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}, "
                   f"discovery {os.environ.get('ROS_AUTOMATIC_DISCOVERY_RANGE', 'SUBNET')})")

    # rclpy must be imported after the DDS environment is final.
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from omni_agent.nodes.camera_node import CameraNode
    from omni_agent.nodes.common import stop_graph
    from omni_agent.nodes.microphone_node import MicrophoneNode
    from omni_agent.nodes.omni_model_node import OmniModelNode
    from omni_agent.nodes.planner_node import PlannerNode

    if args.device is not None:
        audio_params = [Parameter("source", value="device"), Parameter("device", value=args.device)]
        audio_text = f"audio device {args.device or '(default input)'}"
    else:
        files = [str(p) for p in (args.audio or [assets.recording("goforward.raw"),
                                                  assets.spoken("Go to the kitchen.")])]
        for path in files:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"audio file {path} not found; pass existing files to --audio")
        audio_params = [Parameter("files", value=files), Parameter("gap_s", value=1.0)]
        audio_text = "audio files " + ", ".join(files)
    image = args.image or str(assets.photo("coffee"))
    _check_camera_source(image)
    places = [Parameter("places_file", value=args.places)] if args.places else []

    print(f"omni-agent run: DDS {network}")
    print(f"  camera: {image}\n  microphone: {audio_text}\n  Whisper model: {args.model}\n", flush=True)

    rclpy.init()
    nodes = []
    executor = spinner = None
    try:
        camera = CameraNode(parameter_overrides=[Parameter("source", value=image)])
        nodes.append(camera)
        model = OmniModelNode(parameter_overrides=[Parameter("whisper_model", value=args.model),
                                                   Parameter("language", value=args.language)] + places)
        nodes.append(model)
        planner = PlannerNode(parameter_overrides=places)
        nodes.append(planner)
        monitor = Monitor()
        nodes.append(monitor)
        microphone = MicrophoneNode(parameter_overrides=audio_params)
        nodes.append(microphone)
        executor = MultiThreadedExecutor(num_threads=6)
        for node in nodes:
            executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        finished = _wait_until_done(microphone, model, monitor, args.timeout, args.device is not None)
    except KeyboardInterrupt:
        finished = True
        print("\ninterrupted")
    finally:
        stop_graph(executor, spinner, nodes)
    if nodes and isinstance(nodes[-1], MicrophoneNode):
        monitor.print_summary()
    if not finished:
        print(f"omni-agent run: stopped after --timeout {args.timeout:.0f} s before every command was decided",
              file=sys.stderr)
        return 1
    return 0


def _check_camera_source(source: str) -> None:
    """Reject a camera source that names a missing file before any node starts."""
    from omni_agent.vision.camera_source import SourceError, parse_source

    try:
        parse_source(source)
    except SourceError as error:
        raise FileNotFoundError(f"--image {source!r}: {error}") from error


def _wait_until_done(microphone, model, monitor, timeout_s: float, live: bool) -> bool:
    """Wait for the playlist to end and every utterance to be decided (files only)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if live:
            continue  # a live microphone runs until Ctrl-C or the timeout
        idle = microphone.playlist_finished.is_set() and not model.busy and monitor.all_decided()
        if not idle:
            quiet_since = None
            continue
        quiet_since = quiet_since or time.monotonic()
        if time.monotonic() - quiet_since >= 1.0:  # let the last statuses arrive
            return True
    return live


def _make_monitor_class():
    from geometry_msgs.msg import PoseStamped
    from rclpy.node import Node

    from omni_agent.msg import AgentStatus, ManipulationGoal, ModelResult, Transcript
    from omni_agent.nodes.common import COMMAND_QOS
    from omni_agent.planning.planner import STATE_NAMES

    decided_states = (AgentStatus.EXECUTING, AgentStatus.DONE, AgentStatus.REJECTED, AgentStatus.FAILED)

    class Monitor(Node):
        """Print what the graph produces, as it happens."""

        def __init__(self):
            super().__init__("omni_agent_monitor")
            self.started = time.monotonic()
            self.heard: Dict[str, str] = {}
            self.decided: Dict[str, str] = {}
            self.lines: List[str] = []
            self._lock = threading.Lock()
            self.create_subscription(Transcript, "transcript", self._on_transcript, COMMAND_QOS)
            self.create_subscription(ModelResult, "model_result", self._on_result, COMMAND_QOS)
            self.create_subscription(PoseStamped, "goal_pose", self._on_goal, COMMAND_QOS)
            self.create_subscription(ManipulationGoal, "manipulation_goal", self._on_manipulation, COMMAND_QOS)
            self.create_subscription(AgentStatus, "agent_status", self._on_status, COMMAND_QOS)

        def all_decided(self) -> bool:
            with self._lock:
                return all(uid in self.decided for uid in self.heard)

        def _print(self, kind: str, text: str) -> None:
            line = f"[{time.monotonic() - self.started:6.2f} s] {kind:<11} {text}"
            with self._lock:
                self.lines.append(line)
            print(line, flush=True)

        def _on_transcript(self, msg) -> None:
            if not msg.is_final:
                self._print("hearing", f"{msg.utterance_id} {msg.text!r} ...")
                return
            with self._lock:
                self.heard[msg.utterance_id] = msg.text
            self._print("transcript", f"{msg.utterance_id} {msg.text!r} ({msg.language}, confidence "
                                      f"{msg.confidence:.2f}, {msg.audio_duration_s:.2f} s of audio, "
                                      f"transcribed in {msg.processing_time_s:.2f} s)")

        def _on_result(self, msg) -> None:
            details = []
            if msg.object_label:
                details.append(f"object={msg.object_label}")
            if msg.place:
                details.append(f"place={msg.place}")
            if msg.action == "move":
                details.append(f"forward={msg.forward_m:.2f} m left={msg.left_m:.2f} m "
                               f"turn={math.degrees(msg.turn_rad):.0f} deg")
            self._print("result", f"{msg.utterance_id} {msg.action} {' '.join(details)} "
                                  f"(confidence {msg.confidence:.2f}, {msg.source})")

        def _on_goal(self, msg) -> None:
            q = msg.pose.orientation
            yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
            self._print("goal_pose", f"x={msg.pose.position.x:.2f} m y={msg.pose.position.y:.2f} m "
                                     f"yaw={yaw:.2f} rad in frame {msg.header.frame_id}")

        def _on_manipulation(self, msg) -> None:
            self._print("manipulate", f"{msg.utterance_id} {msg.action} {msg.object_label}")

        def _on_status(self, msg) -> None:
            if msg.state in decided_states:
                # The latest state counts: a goal that was executing can later be preempted.
                finished = msg.state != AgentStatus.DONE or not msg.step
                state = STATE_NAMES[msg.state] if finished or msg.state != AgentStatus.DONE else "executing"
                with self._lock:
                    self.decided[msg.utterance_id] = state
            step = f" {msg.step}" if msg.step else ""
            self._print("status", f"{msg.utterance_id} {STATE_NAMES.get(msg.state, msg.state)}{step}: {msg.reason}")

        def print_summary(self) -> None:
            print(f"\nsummary: {len(self.heard)} command(s) heard")
            for uid, text in self.heard.items():
                print(f"  {uid}: {text!r} -> {self.decided.get(uid, 'no decision')}")
            if "executing" in self.decided.values():
                print("  (no robot or navigation server runs in this demo, so nothing reports arrival "
                      "and accepted goals stay 'executing')")

    return Monitor


def Monitor():  # noqa: N802 (a factory that reads like the class it builds)
    return _make_monitor_class()()
