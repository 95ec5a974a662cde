"""sim_node: the embedded MuJoCo simulator behind the ROS interfaces of a Nav2 robot.

Publishes `/clock`, the head camera (`camera/image_raw` bgr8 and
`camera/camera_info`, optional `camera/depth` 32FC1), `odom` (nav_msgs/Odometry,
odom -> base_link, pose and twist) at 30 Hz of sim time, `/tf` (map -> odom,
which is identity, and odom -> base_link) and `/tf_static` (base_link ->
camera_optical). All stamps are sim time. Camera images are rendered only while
something subscribes to them. `sim/object_poses` (tf2_msgs/TFMessage) is ground
truth for tests and run summaries. It has one transform from map to the centre
of each object, whose child_frame_id is the object's name. Its rotation is
always identity. `sim/top_view` (bgr8, 640x480, image up is map +y) shows
the whole house from above for run videos. It is off unless
`top_view_rate_hz` > 0.

Commands, as Nav2's bt_navigator and a manipulation stack take them:
- `goal_pose` (PoseStamped in map): fire-and-forget navigation goal.
- `navigate_to_pose` action (nav2_msgs/action/NavigateToPose, or a type with
  the same fields): feedback at 5 Hz of sim time, cancel, and preemption. A
  new goal from either source preempts the running one, which ends aborted, as
  in Nav2's SimpleActionServer. Failures end aborted with error_code and
  error_msg (no path, a closed door, stuck, timed out, emergency stop).
- `cmd_vel` (Twist in base_link) drives the base while no goal is active. A
  command older than `cmd_vel_timeout_s` of sim time counts as zero, so a
  publisher that dies does not leave the robot driving.
- `manipulation_goal` (pick, place, hand_over) runs on the simulated arm and
  reports on `manipulation_status`: EXECUTING, then DONE or FAILED with a reason.
  The newest goal wins: a navigation goal cancels a running manipulation and a
  manipulation goal aborts a running navigation goal.
- `e_stop` (std_msgs/Bool): true stops the base within one control period
  (10 ms of sim time), cancels navigation and manipulation with the reason
  "emergency stop", and rejects new goals until false releases it.

Threading: MuJoCo's OpenGL context belongs to the thread that created it, so
one thread creates the `Simulator`, steps it, runs the controllers, renders
and publishes. ROS callbacks never call MuJoCo. They only queue commands under
a lock, and the sim thread applies them at the start of its next 10 ms
control period. The thread paces sim time to `real_time_factor` of wall time.
With 0 it runs as fast as the CPU allows, and then a cmd_vel publisher that
runs on wall time can look stale between its messages.

Action serving: rclpy's ActionServer runs each goal's execute callback on the
MultiThreadedExecutor, in a ReentrantCallbackGroup. The callback checks the
goal and queues it for the sim thread, which plans, drives and records the
outcome. The callback then waits on a threading.Event that the sim thread sets
at the end, and every 20 ms of wall time it publishes the newest feedback and
forwards a cancel request. Only the executor threads touch goal handles.

Goal stamps: sim_node runs on sim time. A goal whose stamp differs from the
sim clock by more than `goal_stamp_tolerance_s` is rejected. Its default,
10 s, is tf2's default cache length (BUFFER_CORE_DEFAULT_CACHE_TIME). The
usual cause is a goal stamped in wall time by a node without use_sim_time, so
the reason names both times and the fix. A zero stamp means "now". Like Nav2's
bt_navigator, the action accepts such a goal at the protocol level and then
aborts it with TF_ERROR and the reason in error_msg, so that the client learns
why. Goals must be in the map frame, because sim_node has no TF buffer to
transform other frames.
"""
from __future__ import annotations

import collections
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional, Tuple

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TransformStamped, Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool
from tf2_msgs.msg import TFMessage

from omni_agent.model.result import Pose2D
from omni_agent.msg import AgentStatus, ManipulationGoal
from omni_agent.nodes.common import COMMAND_QOS, SENSOR_QOS, LogLimiter, declare, run_node, stamp_to_s
from omni_agent.nodes.navigate_action import load_action_type
from omni_agent.planning.geometry import quaternion_to_yaw, yaw_to_quaternion
from omni_agent.sim import manipulation as manipulation_states
from omni_agent.sim import navigation as navigation_states
from omni_agent.sim.manipulation import HAND_OVER, PICK, PLACE, ManipulationController
from omni_agent.sim.navigation import NavigationController
from omni_agent.sim.simulator import GL_BACKEND, Simulator
from omni_agent.sim.world import World, load_world
from omni_agent.vision.image import bgr_to_image_fields

#: The sim thread applies commands and steps physics in periods of this much sim time.
CONTROL_PERIOD_S = 0.01
#: NavigationController and ManipulationController run at 20 Hz of sim time.
CONTROLLER_PERIOD_S = 0.05
ODOM_PERIOD_S = 1.0 / 30.0
FEEDBACK_PERIOD_S = 0.2
OBJECT_POSES_PERIOD_S = 0.1
TOP_VIEW_SIZE = (640, 480)
#: The execute callback checks for new feedback, a cancel request and the end of its goal this often (wall time).
EXECUTE_POLL_S = 0.02
#: When the sim thread falls this far behind real_time_factor, pacing restarts from now instead of catching up.
MAX_PACING_LAG_S = 0.5

AUTO_ACTION_TYPES = ("nav2_msgs/action/NavigateToPose", "omni_agent_test_msgs/action/NavigateToPose")
E_STOP_REASON = "emergency stop"
E_STOP_ENGAGED_REASON = "emergency stop engaged; publish false on e_stop to release it"

# NavigateToPose result codes, as defined in omni_agent_test_msgs/action/NavigateToPose and in the Nav2
# releases whose result has error_code.
ERROR_UNKNOWN = 9000
ERROR_TF = 9002
ERROR_TIMEOUT = 9003

SUCCEEDED = "succeeded"
ABORTED = "aborted"
CANCELED = "canceled"

#: /tf_static: one message with all static transforms, kept for subscribers that join later.
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: /tf and /clock: reliable, so subscribers of either reliability match.
STREAM_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.VOLATILE)


def time_msg(seconds: float) -> Time:
    """Return a builtin_interfaces/Time for `seconds` of sim time."""
    sec = int(math.floor(seconds))
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def next_time(scheduled_s: float, period_s: float, now_s: float) -> float:
    """Return the next due time of a periodic task that was due at `scheduled_s`.

    Adding the period to the schedule, not to now, keeps the average rate when
    the period is not a whole number of control periods (30 Hz on 10 ms steps).
    """
    following = scheduled_s + period_s
    return following if following > now_s else now_s + period_s


def duration_msg(seconds: float, duration):
    """Fill a builtin_interfaces/Duration with `seconds` (negative values become 0) and return it."""
    seconds = max(float(seconds), 0.0)
    duration.sec = int(seconds)
    duration.nanosec = min(int(round((seconds - duration.sec) * 1e9)), 999_999_999)
    return duration


@dataclass
class NavigationSnapshot:
    """The state of a navigation goal at one sim time, for action feedback."""

    time_s: float
    pose: Pose2D
    distance_remaining_m: float
    estimated_time_remaining_s: float
    navigation_time_s: float


@dataclass
class NavigationRequest:
    """One navigation goal from goal_pose or the action, shared by a callback and the sim thread.

    The sim thread writes the outcome fields and sets `done`. The node's lock
    guards `feedback` and `feedback_count`.
    """

    goal_id: str
    source: str                       # "goal_pose" or "navigate_to_pose"
    pose: Pose2D
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""                 # SUCCEEDED, ABORTED or CANCELED
    error_code: int = 0
    reason: str = ""
    started_s: float = 0.0
    feedback: Optional[NavigationSnapshot] = None
    feedback_count: int = 0
    cancel_queued: bool = False       # a cancel is on its way to the sim thread


@dataclass
class ManipulationRequest:
    utterance_id: str
    action: str
    object_label: str


class SimNode(Node):
    """Runs the MuJoCo simulation in its own thread and serves the robot's ROS interfaces."""

    def __init__(self, **kwargs):
        super().__init__("sim_node", **kwargs)
        self._declare_parameters()
        self.world = self._load_world()
        self.action_type, self.action_type_name = self._resolve_action_type(self.navigate_action_type)

        self._lock = threading.Lock()
        self._commands: Deque[Tuple[str, Any]] = collections.deque()
        self._cmd_vel: Optional[Tuple[float, float, float, float]] = None   # vx, vy, wz, sim time received
        self._sim_time_s = 0.0
        self._e_stop_requested = False
        self._requests: List[NavigationRequest] = []      # goals the sim thread has not finished
        self._action_requests: Dict[str, NavigationRequest] = {}  # running action goals by goal id
        self._goal_pose_count = 0
        self._limiter = LogLimiter(self.get_logger())
        self.failure: Optional[BaseException] = None

        # The simulator is created first, so that a node that cannot simulate never offers its interfaces.
        self._stop = threading.Event()
        self._created = threading.Event()
        self._interfaces_ready = threading.Event()
        self._startup_error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name="sim_node_simulation", daemon=True)
        self._thread.start()
        self._created.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error
        try:
            self._create_interfaces()
        except BaseException:
            self._stop.set()
            self._thread.join()
            raise
        self._interfaces_ready.set()

    # --- set-up (executor thread) ----------------------------------------------------------

    def _declare_parameters(self) -> None:
        self.world_file = declare(self, "world_file", "",
                                  "World description YAML file; empty uses the package's config/world.yaml")
        self.closed_doors = list(self.declare_parameter(
            "closed_doors", Parameter.Type.STRING_ARRAY,
            ParameterDescriptor(description="Names of doors of the world file to close, for example "
                                            "['bedroom_door'], to test navigation into a blocked room")).value or [])
        self.seed = declare(self, "seed", 0, "Seed of the random offsets of the objects' start positions")
        self.object_jitter_m = declare(self, "object_jitter_m", 0.0,
                                       "Each object starts up to this far from its world file position along x "
                                       "and y, drawn from seed [m]; 0 keeps the world file's positions")

        self.camera_width = declare(self, "camera_width", 320, "Head camera image width in pixels")
        self.camera_height = declare(self, "camera_height", 240, "Head camera image height in pixels")
        self.camera_rate_hz = declare(self, "camera_rate_hz", 10.0,
                                      "Head camera frame rate in frames per second of sim time")
        self.publish_depth = declare(self, "publish_depth", False,
                                     "Also publish camera/depth (32FC1, metres along the optical axis)")

        self.top_view_rate_hz = declare(self, "top_view_rate_hz", 0.0,
                                        "Frame rate of sim/top_view, the house seen from above, in frames per "
                                        "second of sim time; 0 publishes none")
        self.real_time_factor = declare(self, "real_time_factor", 1.0,
                                        "Sim seconds per wall second; 0 runs the simulation as fast as the CPU allows")

        self.navigate_action_type = declare(
            self, "navigate_action_type", "auto",
            "Action type served on navigate_to_pose, as 'package/action/Name'. 'auto' serves "
            "nav2_msgs/action/NavigateToPose if installed, else omni_agent_test_msgs/action/NavigateToPose, "
            "else no action; 'none' serves no action")
        self.goal_stamp_tolerance_s = declare(
            self, "goal_stamp_tolerance_s", 10.0,
            "Goals stamped further than this from the sim clock are rejected [s of sim time]; a zero stamp means now")
        self.cmd_vel_timeout_s = declare(self, "cmd_vel_timeout_s", 0.5,
                                         "A cmd_vel older than this counts as zero velocity [s of sim time]")
        self._check_parameters()

    def _check_parameters(self) -> None:
        if not self.camera_rate_hz > 0.0:
            raise ValueError(f"parameter camera_rate_hz is {self.camera_rate_hz}; set a frame rate > 0")
        if not self.top_view_rate_hz >= 0.0:
            raise ValueError(f"parameter top_view_rate_hz is {self.top_view_rate_hz}; use 0 (off) or a frame rate > 0")
        if not self.real_time_factor >= 0.0:
            raise ValueError(f"parameter real_time_factor is {self.real_time_factor}; use 0 (as fast as possible) "
                             f"or a factor > 0")
        if not self.goal_stamp_tolerance_s > 0.0:
            raise ValueError(f"parameter goal_stamp_tolerance_s is {self.goal_stamp_tolerance_s}; use a value > 0")
        if not self.object_jitter_m >= 0.0:
            raise ValueError(f"parameter object_jitter_m is {self.object_jitter_m}; use a distance >= 0 metres")
        if not self.cmd_vel_timeout_s > 0.0:
            raise ValueError(f"parameter cmd_vel_timeout_s is {self.cmd_vel_timeout_s}; use a value > 0")

    def _load_world(self) -> World:
        world = load_world(self.world_file or None)
        for door in self.closed_doors:
            world = world.with_door(door, closed=True)
        return world

    def _resolve_action_type(self, name: str) -> Tuple[Any, str]:
        """Return (action type, its name) for the navigate_to_pose server, or (None, "") to serve none."""
        if name == "none":
            return None, ""
        if name == "auto":
            for candidate in AUTO_ACTION_TYPES:
                try:
                    return load_action_type(candidate), candidate
                except ImportError:
                    continue
            return None, ""
        try:
            return load_action_type(name), name
        except ImportError as error:
            raise ValueError(f"navigate_action_type {name} cannot be loaded: {error}; install it, or set "
                             f"navigate_action_type to 'auto' or 'none'") from error

    def _create_interfaces(self) -> None:
        self.clock_publisher = self.create_publisher(Clock, "/clock", STREAM_QOS)
        self.image_publisher = self.create_publisher(Image, "camera/image_raw", SENSOR_QOS)
        self.info_publisher = self.create_publisher(CameraInfo, "camera/camera_info", SENSOR_QOS)
        self.depth_publisher = (self.create_publisher(Image, "camera/depth", SENSOR_QOS)
                                if self.publish_depth else None)
        self.top_view_publisher = (self.create_publisher(Image, "sim/top_view", SENSOR_QOS)
                                   if self.top_view_rate_hz > 0.0 else None)
        self.odom_publisher = self.create_publisher(Odometry, "odom", STREAM_QOS)
        self.tf_publisher = self.create_publisher(TFMessage, "/tf", STREAM_QOS)
        self.tf_static_publisher = self.create_publisher(TFMessage, "/tf_static", TF_STATIC_QOS)
        self.object_poses_publisher = self.create_publisher(TFMessage, "sim/object_poses", STREAM_QOS)
        self.manipulation_status_publisher = self.create_publisher(AgentStatus, "manipulation_status", COMMAND_QOS)

        self.create_subscription(Twist, "cmd_vel", self._on_cmd_vel, COMMAND_QOS)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal_pose, COMMAND_QOS)
        self.create_subscription(ManipulationGoal, "manipulation_goal", self._on_manipulation_goal, COMMAND_QOS)
        self.create_subscription(Bool, "e_stop", self._on_e_stop, COMMAND_QOS)

        self.action_server = None
        if self.action_type is not None:
            self.action_server = ActionServer(
                self, self.action_type, "navigate_to_pose", execute_callback=self._execute_navigation,
                goal_callback=lambda request: GoalResponse.ACCEPT,
                cancel_callback=self._on_cancel_request,
                callback_group=ReentrantCallbackGroup())

    # --- ROS callbacks (executor threads): check, then queue for the sim thread --------------

    def _queue(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._commands.append((kind, payload))

    def _queue_navigation(self, request: NavigationRequest) -> None:
        """Queue a goal for the sim thread and record it, so that close() can end it if it never starts."""
        with self._lock:
            self._requests.append(request)
            self._commands.append(("navigate", request))

    def _on_cmd_vel(self, msg: Twist) -> None:
        values = (msg.linear.x, msg.linear.y, msg.angular.z)
        if not all(math.isfinite(v) for v in values):
            self._limiter.log("warning", "cmd_vel invalid", f"cmd_vel ignored: velocities must be finite, got {values}")
            return
        with self._lock:
            self._cmd_vel = (*values, self._sim_time_s)

    def _on_e_stop(self, msg: Bool) -> None:
        with self._lock:
            self._e_stop_requested = bool(msg.data)
            self._commands.append(("e_stop", (bool(msg.data), self._sim_time_s)))

    def _on_goal_pose(self, msg: PoseStamped) -> None:
        self._goal_pose_count += 1
        goal_id = f"goal_pose-{self._goal_pose_count}"
        pose, reason, _ = self._check_goal(msg)
        if reason:
            self.get_logger().warning(f"navigation goal {goal_id} rejected: {reason}")
            return
        self._queue_navigation(NavigationRequest(goal_id, "goal_pose", pose))

    def _on_manipulation_goal(self, msg: ManipulationGoal) -> None:
        request = ManipulationRequest(msg.utterance_id, msg.action, msg.object_label.strip())
        self.get_logger().info(f"[{request.utterance_id}] manipulation goal received: {request.action} "
                               f"{request.object_label!r}")
        self._queue("manipulate", request)

    def _check_goal(self, msg: PoseStamped) -> Tuple[Optional[Pose2D], str, int]:
        """Return (goal pose, "", 0) for a valid goal, or (None, reason, result code) for one to reject."""
        frame = msg.header.frame_id
        if frame != self.world.frame_id:
            return None, (f"goal frame_id is {frame!r} but sim_node accepts only {self.world.frame_id!r} goals; "
                          f"transform the goal into {self.world.frame_id!r}"), ERROR_TF
        stamp_s = stamp_to_s(msg.header.stamp)
        with self._lock:
            now_s = self._sim_time_s
            e_stop = self._e_stop_requested
        if stamp_s != 0.0 and abs(stamp_s - now_s) > self.goal_stamp_tolerance_s:
            return None, (f"goal stamp {stamp_s:.3f} s differs from the simulation time {now_s:.3f} s by more than "
                          f"goal_stamp_tolerance_s={self.goal_stamp_tolerance_s:g} s; stamp goals with the node "
                          f"clock under use_sim_time (use_sim_time:=true), or leave the stamp zero for 'now'"), ERROR_TF
        position, q = msg.pose.position, msg.pose.orientation
        norm = math.sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w)
        if not all(math.isfinite(v) for v in (position.x, position.y, norm)) or norm < 1e-6:
            return None, (f"goal pose must have finite x, y and a non-zero orientation quaternion, got "
                          f"({position.x}, {position.y}) and ({q.x}, {q.y}, {q.z}, {q.w}); use w=1 for yaw 0"), \
                ERROR_UNKNOWN
        if e_stop:
            return None, E_STOP_ENGAGED_REASON, ERROR_UNKNOWN
        return Pose2D(position.x, position.y, quaternion_to_yaw(q.x, q.y, q.z, q.w), frame), "", 0

    def _on_cancel_request(self, goal_handle) -> CancelResponse:
        """Accept a cancel and pass it to the sim thread at once, not at the next poll of the goal."""
        goal_id = bytes(goal_handle.goal_id.uuid).hex()[:8]
        with self._lock:
            request = self._action_requests.get(goal_id)
            if request is not None and not request.cancel_queued:
                request.cancel_queued = True
                self._commands.append(("cancel", request))
        return CancelResponse.ACCEPT

    def _execute_navigation(self, goal_handle):
        """Run one navigate_to_pose goal: check it, hand it to the sim thread, relay feedback and the result."""
        goal_id = bytes(goal_handle.goal_id.uuid).hex()[:8]
        pose, reason, code = self._check_goal(goal_handle.request.pose)
        if reason:
            self.get_logger().warning(f"navigation goal {goal_id} rejected: {reason}")
            goal_handle.abort()
            return self._navigation_result(code, reason)

        request = NavigationRequest(goal_id, "navigate_to_pose", pose)
        with self._lock:
            self._action_requests[goal_id] = request
        self._queue_navigation(request)
        feedback_sent = 0
        while not request.done.wait(EXECUTE_POLL_S):
            if goal_handle.is_cancel_requested:
                with self._lock:
                    if not request.cancel_queued:
                        request.cancel_queued = True
                        self._commands.append(("cancel", request))
            with self._lock:
                snapshot, count = request.feedback, request.feedback_count
            if snapshot is not None and count != feedback_sent and goal_handle.is_active:
                goal_handle.publish_feedback(self._navigation_feedback(snapshot))
                feedback_sent = count

        with self._lock:
            self._action_requests.pop(goal_id, None)
        if request.outcome == SUCCEEDED:
            goal_handle.succeed()
        elif request.outcome == CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return self._navigation_result(request.error_code, request.reason)

    def _navigation_result(self, code: int, reason: str):
        result = self.action_type.Result()
        if hasattr(result, "error_code"):
            result.error_code = code
        if hasattr(result, "error_msg"):
            result.error_msg = reason
        return result

    def _navigation_feedback(self, snapshot: NavigationSnapshot):
        feedback = self.action_type.Feedback()
        stamp = time_msg(snapshot.time_s)
        feedback.current_pose = pose_stamped(snapshot.pose, stamp)
        duration_msg(snapshot.navigation_time_s, feedback.navigation_time)
        duration_msg(snapshot.estimated_time_remaining_s, feedback.estimated_time_remaining)
        feedback.number_of_recoveries = 0
        feedback.distance_remaining = float(snapshot.distance_remaining_m)
        return feedback

    # --- the sim thread --------------------------------------------------------------------

    def _run(self) -> None:
        """Create the simulator, then step, control and publish until close()."""
        try:
            self.sim = Simulator(self.world, camera_width=int(self.camera_width),
                                 camera_height=int(self.camera_height), seed=int(self.seed),
                                 object_jitter_m=self.object_jitter_m)
        except Exception as error:  # reported by the constructor, which raises it
            self._startup_error = error
            self._created.set()
            return
        try:
            # Render once now, so that a missing OpenGL fails at start and not at the first subscriber.
            self.sim.render_rgb()
            self.navigation = NavigationController(self.world, geometry=self.sim.geometry)
            self.manipulation = ManipulationController(self.sim)
        except Exception as error:  # reported by the constructor, which raises it
            self.sim.close()
            self._startup_error = error
            self._created.set()
            return
        self._created.set()
        try:
            while not self._interfaces_ready.wait(0.1):
                if self._stop.is_set():
                    return
            self._publish_static_transforms()
            self._log_start()
            self._loop()
        except Exception as error:  # a bug or a sim core failure ends the node, so that no goal waits forever
            if self._stop.is_set() or not self.context.ok():
                # Shutdown (for example SIGINT) invalidates the publishers while this thread may still use them.
                self._finish_all_requests("sim_node is shutting down")
                return
            self.failure = error
            self.get_logger().error(f"the simulation thread failed at sim time {self.sim.time_s:.3f} s: "
                                    f"{type(error).__name__}: {error}; shutting sim_node down")
            self._finish_all_requests(f"sim_node failed: {error}")
            if self.context.ok():
                rclpy.shutdown(context=self.context)
        finally:
            self.sim.close()

    def _log_start(self) -> None:
        start = self.sim.base_pose()
        doors = ", ".join(self.closed_doors) or "none"
        action = f"serving navigate_to_pose ({self.action_type_name})" if self.action_type is not None else \
            "no navigate_to_pose action (navigate_action_type found no type; goal_pose still works)"
        pace = "as fast as possible" if self.real_time_factor == 0.0 else f"real_time_factor {self.real_time_factor:g}"
        self.get_logger().info(
            f"sim_node ready: world {self.world.name} from {self.world.source}, closed doors: {doors}; robot at "
            f"({start.x:.2f}, {start.y:.2f}, yaw {start.yaw:.2f}) in {self.world.frame_id}; camera "
            f"{self.camera_width}x{self.camera_height} at {self.camera_rate_hz:g} Hz; GL backend "
            f"{GL_BACKEND or 'chosen by MuJoCo'}; {pace}; {action}")

    def _loop(self) -> None:
        sim = self.sim
        steps = max(1, int(round(CONTROL_PERIOD_S / sim.timestep)))
        self._active: Optional[NavigationRequest] = None
        self._manipulation_request: Optional[ManipulationRequest] = None
        self._manipulation_phase = ""
        self._e_stop = False
        self._cmd_vel_timed_out = True
        self._next_controller_s = 0.0
        self._next_feedback_s = 0.0
        self._next_odom_s = 0.0
        self._next_camera_s = 0.0
        self._next_objects_s = 0.0
        self._next_top_view_s = 0.0
        wall_origin, sim_origin = time.monotonic(), sim.time_s

        while not self._stop.is_set() and self.context.ok():
            with self._lock:
                commands = list(self._commands)
                self._commands.clear()
            for kind, payload in commands:
                self._apply_command(kind, payload)
            with self._lock:
                cmd_vel = self._cmd_vel        # read after the commands, which may clear it
            self._control(cmd_vel)
            sim.step(steps)
            now_s = sim.time_s
            with self._lock:
                self._sim_time_s = now_s
            self._publish(now_s)

            if self.real_time_factor > 0.0:
                delay = wall_origin + (now_s - sim_origin) / self.real_time_factor - time.monotonic()
                if delay > 0.0:
                    self._stop.wait(delay)
                elif delay < -MAX_PACING_LAG_S:
                    wall_origin, sim_origin = time.monotonic(), now_s

    # --- commands (sim thread) -------------------------------------------------------------

    def _apply_command(self, kind: str, payload: Any) -> None:
        if kind == "e_stop":
            self._set_e_stop(*payload)
        elif kind == "navigate":
            self._start_navigation(payload)
        elif kind == "cancel":
            if payload is self._active:
                self.navigation.cancel()
                self.sim.set_base_velocity(0.0, 0.0, 0.0)
                self._finish_navigation(CANCELED, 0, "canceled by the client")
        elif kind == "manipulate":
            self._start_manipulation(payload)

    def _set_e_stop(self, engaged: bool, received_s: float) -> None:
        if engaged == self._e_stop:
            return
        self._e_stop = engaged
        now_s = self.sim.time_s
        with self._lock:
            self._cmd_vel = None          # only a cmd_vel sent after this change moves the base
        if not engaged:
            self.get_logger().info(f"emergency stop released at sim time {now_s:.3f} s")
            return
        self.sim.set_base_velocity(0.0, 0.0, 0.0)
        self.get_logger().warning(f"emergency stop engaged at sim time {now_s:.3f} s (message received at sim time "
                                  f"{received_s:.3f} s): base stopped, goals cancelled")
        if self._active is not None:
            self.navigation.cancel()
            self._finish_navigation(ABORTED, ERROR_UNKNOWN, E_STOP_REASON)
        if self._manipulation_request is not None:
            self.manipulation.cancel()
            self._finish_manipulation(AgentStatus.FAILED, E_STOP_REASON)

    def _start_navigation(self, request: NavigationRequest) -> None:
        now_s = self.sim.time_s
        if self._e_stop:
            self._complete(request, ABORTED, ERROR_UNKNOWN, E_STOP_ENGAGED_REASON)
            self.get_logger().warning(f"navigation goal {request.goal_id} rejected: {E_STOP_ENGAGED_REASON}")
            return
        if self._active is not None:
            self.navigation.cancel()
            self._finish_navigation(ABORTED, ERROR_UNKNOWN, f"preempted by navigation goal {request.goal_id}")
        if self._manipulation_request is not None:
            # NOTE: cancel() keeps the arm where it stopped, so the robot may drive with the arm raised or extended.
            self.manipulation.cancel()
            self._finish_manipulation(AgentStatus.FAILED, f"cancelled by navigation goal {request.goal_id}")
        self.navigation.start(request.pose, now_s)
        request.started_s = now_s
        self._active = request
        self._next_controller_s = now_s
        self._next_feedback_s = now_s
        pose = request.pose
        self.get_logger().info(f"navigation goal {request.goal_id} accepted from {request.source}: "
                               f"({pose.x:.2f}, {pose.y:.2f}, yaw {pose.yaw:.2f}) in {pose.frame_id}")

    def _finish_navigation(self, outcome: str, code: int, reason: str) -> None:
        request = self._active
        self._active = None
        duration_s = self.sim.time_s - request.started_s
        if outcome == SUCCEEDED:
            pose = self.sim.base_pose()
            self.get_logger().info(f"navigation goal {request.goal_id} succeeded after {duration_s:.1f} s of sim "
                                   f"time at ({pose.x:.2f}, {pose.y:.2f}, yaw {pose.yaw:.2f})")
        else:
            self.get_logger().warning(f"navigation goal {request.goal_id} {outcome} after {duration_s:.1f} s of "
                                      f"sim time: {reason}")
        self._complete(request, outcome, code, reason)

    def _complete(self, request: NavigationRequest, outcome: str, code: int, reason: str) -> None:
        request.outcome, request.error_code, request.reason = outcome, code, reason
        with self._lock:
            if request in self._requests:
                self._requests.remove(request)
        request.done.set()

    def _finish_all_requests(self, reason: str) -> None:
        with self._lock:
            pending = list(self._requests)
            self._requests.clear()
        for request in pending:
            if not request.done.is_set():
                request.outcome, request.error_code, request.reason = ABORTED, ERROR_UNKNOWN, reason
                request.done.set()

    def _start_manipulation(self, request: ManipulationRequest) -> None:
        uid = request.utterance_id
        if self._e_stop:
            self._publish_manipulation_status(request, AgentStatus.FAILED, E_STOP_ENGAGED_REASON)
            return
        if request.action not in (PICK, PLACE, HAND_OVER):
            self._publish_manipulation_status(
                request, AgentStatus.FAILED,
                f"unknown manipulation action {request.action!r}; use {PICK!r}, {PLACE!r} or {HAND_OVER!r}")
            return

        if self._manipulation_request is not None:
            self.manipulation.cancel()
            self._finish_manipulation(AgentStatus.FAILED, f"preempted by manipulation goal {uid}")
        if self._active is not None:
            self.navigation.cancel()
            self._finish_navigation(ABORTED, ERROR_UNKNOWN, f"preempted by manipulation goal {uid}")

        try:
            if request.action == PICK:
                self.manipulation.pick(request.object_label)
            elif request.action == PLACE:
                self.manipulation.place()
            else:
                self.manipulation.hand_over()
        except ValueError as error:
            self._publish_manipulation_status(request, AgentStatus.FAILED, str(error))
            return

        # place and hand_over act on the held object, so the statuses and logs name it.
        request.object_label = request.object_label or self.manipulation.object_label
        self._manipulation_request = request
        self._manipulation_phase = ""
        self._manipulation_started_s = self.sim.time_s
        self._next_controller_s = self.sim.time_s
        if self.manipulation.done:  # failed at once, for example a pick while holding something
            self._finish_manipulation(AgentStatus.FAILED, self.manipulation.reason)
            return
        self._publish_manipulation_status(request, AgentStatus.EXECUTING, self._describe(request))

    def _finish_manipulation(self, state: int, reason: str) -> None:
        request = self._manipulation_request
        self._manipulation_request = None
        duration_s = self.sim.time_s - self._manipulation_started_s
        if state == AgentStatus.DONE:
            reason = f"{self._describe(request)} succeeded in {duration_s:.1f} s of sim time"
        self._publish_manipulation_status(request, state, reason)

    @staticmethod
    def _describe(request: ManipulationRequest) -> str:
        if request.action == PICK:
            return f"pick up the {request.object_label}"
        target = f"the {request.object_label}" if request.object_label else "the held object"
        if request.action == PLACE:
            return f"place {target}"
        return f"hand over {target}"

    # --- control (sim thread) --------------------------------------------------------------

    def _control(self, cmd_vel: Optional[Tuple[float, float, float, float]]) -> None:
        sim = self.sim
        now_s = sim.time_s
        if self._e_stop:
            sim.set_base_velocity(0.0, 0.0, 0.0)
            return
        if self._active is not None:
            if now_s >= self._next_controller_s - 1e-9:
                self._next_controller_s = now_s + CONTROLLER_PERIOD_S
                self._update_navigation(now_s)
            self._ignore_cmd_vel(cmd_vel, "a navigation goal")
            return
        if self._manipulation_request is not None:
            if now_s >= self._next_controller_s - 1e-9:
                self._next_controller_s = now_s + CONTROLLER_PERIOD_S
                self._update_manipulation()
            self._ignore_cmd_vel(cmd_vel, "a manipulation goal")
            return
        self._drive(cmd_vel, now_s)

    def _update_navigation(self, now_s: float) -> None:
        command = self.navigation.update(self.sim.base_pose(), now_s)
        self.sim.set_base_velocity(command.vx, command.vy, command.wz)
        state = self.navigation.state
        if state == navigation_states.SUCCEEDED:
            self._finish_navigation(SUCCEEDED, 0, "")
        elif state == navigation_states.FAILED:
            reason = self.navigation.reason
            self._finish_navigation(ABORTED, ERROR_TIMEOUT if reason.startswith("timed out") else ERROR_UNKNOWN,
                                    reason)
        elif now_s >= self._next_feedback_s - 1e-9:
            self._next_feedback_s = now_s + FEEDBACK_PERIOD_S
            request = self._active
            snapshot = NavigationSnapshot(now_s, self.sim.base_pose(), self.navigation.distance_remaining,
                                          self.navigation.estimated_time_remaining_s, now_s - request.started_s)
            with self._lock:
                request.feedback = snapshot
                request.feedback_count += 1
        if self._active is None:
            self.sim.set_base_velocity(0.0, 0.0, 0.0)

    def _update_manipulation(self) -> None:
        controller = self.manipulation
        state = controller.update()
        request = self._manipulation_request
        if state == manipulation_states.SUCCEEDED:
            self._finish_manipulation(AgentStatus.DONE, "")
        elif state in (manipulation_states.FAILED, manipulation_states.CANCELED):
            self._finish_manipulation(AgentStatus.FAILED, controller.reason)
        elif controller.phase and controller.phase != self._manipulation_phase:
            self._manipulation_phase = controller.phase
            self._publish_manipulation_status(request, AgentStatus.EXECUTING, controller.phase)

    def _ignore_cmd_vel(self, cmd_vel, owner: str) -> None:
        if cmd_vel is not None and self.sim.time_s - cmd_vel[3] <= self.cmd_vel_timeout_s \
                and any(cmd_vel[:3]):
            self._limiter.log("info", "cmd_vel ignored", f"cmd_vel ignored while {owner} is active")

    def _drive(self, cmd_vel, now_s: float) -> None:
        if cmd_vel is None:
            self.sim.set_base_velocity(0.0, 0.0, 0.0)
            return
        vx, vy, wz, received_s = cmd_vel
        if now_s - received_s > self.cmd_vel_timeout_s:
            if not self._cmd_vel_timed_out and any((vx, vy, wz)):
                self.get_logger().info(
                    f"cmd_vel timed out at sim time {now_s:.3f} s: the last message, received at sim time "
                    f"{received_s:.3f} s, is older than cmd_vel_timeout_s={self.cmd_vel_timeout_s:g} s; base stopped")
            self._cmd_vel_timed_out = True
            self.sim.set_base_velocity(0.0, 0.0, 0.0)
            return
        self._cmd_vel_timed_out = False
        self.sim.set_base_velocity(vx, vy, wz)

    # --- publishing (sim thread) -----------------------------------------------------------

    def _publish(self, now_s: float) -> None:
        stamp = time_msg(now_s)
        clock = Clock()
        clock.clock = stamp
        self.clock_publisher.publish(clock)
        if now_s >= self._next_odom_s - 1e-9:
            self._next_odom_s = next_time(self._next_odom_s, ODOM_PERIOD_S, now_s)
            self._publish_odometry(stamp)
        if now_s >= self._next_camera_s - 1e-9:
            self._next_camera_s = next_time(self._next_camera_s, 1.0 / self.camera_rate_hz, now_s)
            self._publish_camera(stamp)
        if now_s >= self._next_objects_s - 1e-9:
            self._next_objects_s = now_s + OBJECT_POSES_PERIOD_S
            if self.object_poses_publisher.get_subscription_count() > 0:
                self._publish_object_poses(stamp)
        if self.top_view_publisher is not None and now_s >= self._next_top_view_s - 1e-9:
            self._next_top_view_s = next_time(self._next_top_view_s, 1.0 / self.top_view_rate_hz, now_s)
            if self.top_view_publisher.get_subscription_count() > 0:
                self._publish_top_view(stamp)

    def _publish_odometry(self, stamp) -> None:
        pose = self.sim.base_pose()
        vx, vy, wz = self.sim.base_velocity()
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = "odom"
        odom.child_frame_id = "base_link"
        odom.pose.pose = pose_stamped(pose, stamp).pose
        odom.twist.twist.linear.x, odom.twist.twist.linear.y, odom.twist.twist.angular.z = vx, vy, wz
        self.odom_publisher.publish(odom)

        # map -> odom is identity, because odometry here is the simulator's true pose and never drifts.
        map_to_odom = transform(self.world.frame_id, "odom", stamp, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
        odom_to_base = transform("odom", "base_link", stamp, (pose.x, pose.y, 0.0), yaw_to_quaternion(pose.yaw))
        self.tf_publisher.publish(TFMessage(transforms=[map_to_odom, odom_to_base]))

    def _publish_static_transforms(self) -> None:
        camera = self.sim.camera_pose_in_base()
        camera_transform = transform("base_link", "camera_optical", time_msg(self.sim.time_s),
                                     tuple(float(v) for v in camera.position), camera.quaternion)
        self.tf_static_publisher.publish(TFMessage(transforms=[camera_transform]))

    def _publish_camera(self, stamp) -> None:
        want_image = self.image_publisher.get_subscription_count() > 0
        want_info = self.info_publisher.get_subscription_count() > 0
        want_depth = self.depth_publisher is not None and self.depth_publisher.get_subscription_count() > 0
        if want_image:
            rgb = self.sim.render_rgb()
            height, width, encoding, step, data = bgr_to_image_fields(np.ascontiguousarray(rgb[:, :, ::-1]))
            self.image_publisher.publish(image_msg(stamp, height, width, encoding, step, data))
        if want_depth:
            depth = np.ascontiguousarray(self.sim.render_depth(), dtype=np.float32)
            height, width = depth.shape
            self.depth_publisher.publish(image_msg(stamp, height, width, "32FC1", width * 4, depth.tobytes()))
        if want_info:
            self.info_publisher.publish(self._camera_info(stamp))

    def _camera_info(self, stamp) -> CameraInfo:
        k = self.sim.camera_intrinsics()
        info = CameraInfo()
        info.header.stamp = stamp
        info.header.frame_id = CAMERA_FRAME
        info.width, info.height = k.width, k.height
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def _publish_object_poses(self, stamp) -> None:
        transforms = [transform(self.world.frame_id, name, stamp, self.sim.object_pose(name), (0.0, 0.0, 0.0, 1.0))
                      for name in self.sim.object_names]
        self.object_poses_publisher.publish(TFMessage(transforms=transforms))

    def _publish_top_view(self, stamp) -> None:
        rgb = self.sim.render_top_view(*TOP_VIEW_SIZE)
        height, width, encoding, step, data = bgr_to_image_fields(np.ascontiguousarray(rgb[:, :, ::-1]))
        image = image_msg(stamp, height, width, encoding, step, data)
        image.header.frame_id = self.world.frame_id
        self.top_view_publisher.publish(image)

    def _publish_manipulation_status(self, request: ManipulationRequest, state: int, reason: str) -> None:
        msg = AgentStatus()
        msg.header.stamp = time_msg(self.sim.time_s)
        msg.utterance_id = request.utterance_id
        msg.state = state
        msg.step = request.action
        msg.reason = reason
        self.manipulation_status_publisher.publish(msg)
        text = f"[{request.utterance_id}] {request.action} {request.object_label!r}"
        if state == AgentStatus.FAILED:
            self.get_logger().warning(f"{text} failed: {reason}")
        elif state == AgentStatus.DONE:
            self.get_logger().info(f"{text} done: {reason}")
        elif not self._manipulation_phase:
            self.get_logger().info(f"{text} started: {reason}")

    # --- life cycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the sim thread, which closes the renderer, and end the goals still waiting."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10.0)
        self._finish_all_requests("sim_node is shutting down")
        if self.action_server is not None:
            self.action_server.destroy()
            self.action_server = None


CAMERA_FRAME = "camera_optical"


def pose_stamped(pose: Pose2D, stamp) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = pose.frame_id
    msg.pose.position.x, msg.pose.position.y = float(pose.x), float(pose.y)
    qx, qy, qz, qw = yaw_to_quaternion(pose.yaw)
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = qx, qy, qz, qw
    return msg


def transform(parent: str, child: str, stamp, translation, rotation) -> TransformStamped:
    """Return a TransformStamped from `parent` to `child`. `rotation` is a quaternion (x, y, z, w)."""
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    msg.transform.translation.x, msg.transform.translation.y, msg.transform.translation.z = \
        (float(v) for v in translation)
    r = msg.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in rotation)
    return msg


def image_msg(stamp, height: int, width: int, encoding: str, step: int, data: bytes) -> Image:
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = CAMERA_FRAME
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = step
    msg.data = data
    return msg


def main(args=None):
    nodes: List[SimNode] = []

    def create() -> SimNode:
        node = SimNode()
        nodes.append(node)
        return node

    run_node(create, args)
    if nodes and nodes[0].failure is not None:
        sys.exit(1)


if __name__ == "__main__":
    main()
