"""Run omni_agent in Gazebo (gz-sim Harmonic): the simulated home, the robot, the bridge and the four nodes.

Examples:

    ros2 launch omni_agent sim.launch.py
    ros2 launch omni_agent sim.launch.py headless:=true audio_source:=/data/command.wav
    ros2 launch omni_agent sim.launch.py world_file:=/data/my_world.yaml output_dir:=/tmp/my_world

What it starts:

1. Gazebo through ros_gz_sim's gz_sim.launch.py, running the generated world.
2. `ros_gz_sim create`, which spawns the robot model at the world's start pose.
3. `ros_gz_bridge parameter_bridge` with the generated bridge.yaml: /clock,
   camera/image_raw, camera/camera_info, odom and /tf from Gazebo, cmd_vel to it.
4. robot.launch.py from this folder with use_sim_time:=true and
   start_camera:=false (Gazebo's camera replaces camera_node), and the audio
   arguments passed through.

The Gazebo files are generated when the launch runs: an OpaqueFunction
loads world_file and writes home.sdf, robot.sdf and bridge.yaml through
omni_agent.sim.gazebo into output_dir (a new temporary folder when empty).
So Gazebo always shows the world file as it is at launch, and no generated
file is kept in the package. `omni-agent gazebo-world --out DIR` writes the
same files for inspection or for running `gz sim` by hand.

Needs Gazebo Harmonic with ros_gz_sim and ros_gz_bridge (Debian packages
ros-jazzy-ros-gz), and omni_agent importable in the launch process (source
the workspace's install/setup.bash).

"""
import pathlib
import tempfile

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, LogInfo, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

LAUNCH_DIR = pathlib.Path(__file__).parent
DEFAULT_WORLD_FILE = LAUNCH_DIR.parent / "config" / "world.yaml"
ROBOT_LAUNCH_FILE = LAUNCH_DIR / "robot.launch.py"
TRUE_WORDS = ("true", "1", "yes", "on")

#: robot.launch.py arguments that this file declares too and passes on unchanged.
PASSED_THROUGH = {
    "audio_source": ("device", "microphone_node source: 'device' to record audio_device, or the path of "
                               "an audio file to play"),
    "audio_device": ("", "microphone_node input device: a part of its name or its PortAudio index; "
                         "empty selects the default input"),
    "namespace": ("", "ROS namespace of the four nodes and of the bridge's robot topics; empty is the root "
                      "namespace"),
}


def _declare_arguments() -> list:
    arguments = [
        DeclareLaunchArgument(
            "world_file", default_value=str(DEFAULT_WORLD_FILE),
            description="World description YAML that the Gazebo world is generated from"),
        DeclareLaunchArgument(
            "output_dir", default_value="",
            description="Folder for the generated home.sdf, robot.sdf and bridge.yaml. Empty creates a new "
                        "temporary folder"),
        DeclareLaunchArgument(
            "headless", default_value="false",
            description="true runs only the Gazebo server, without its window"),
    ]
    for name, (default, description) in PASSED_THROUGH.items():
        arguments.append(DeclareLaunchArgument(name, default_value=default, description=description))
    return arguments


def _start_gazebo(context) -> list:
    """Write the Gazebo files for world_file, then start Gazebo, the spawner and the bridge."""
    from omni_agent.sim.gazebo import spawn_arguments, write_gazebo_files
    from omni_agent.sim.world import load_world

    world = load_world(LaunchConfiguration("world_file").perform(context))
    output_dir = LaunchConfiguration("output_dir").perform(context) or tempfile.mkdtemp(prefix="omni_agent_gazebo_")
    files = write_gazebo_files(output_dir, world)
    headless = LaunchConfiguration("headless").perform(context).strip().lower() in TRUE_WORDS

    # -r starts the simulation at once, so that /clock runs. -s runs the server without a window.
    gz_args = " ".join(["-r"] + (["-s"] if headless else []) + [str(files.world_sdf)])
    gz_sim_launch = pathlib.Path(get_package_share_directory("ros_gz_sim")) / "launch" / "gz_sim.launch.py"
    return [
        LogInfo(msg=f"Gazebo files for world {world.name} written to {output_dir}"),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(gz_sim_launch)),
            launch_arguments={"gz_args": gz_args, "on_exit_shutdown": "true"}.items()),
        Node(
            package="ros_gz_sim",
            executable="create",
            name="spawn_robot",
            arguments=spawn_arguments(world, files.robot_sdf),
            output="screen"),
        Node(
            package="ros_gz_bridge",
            executable="parameter_bridge",
            name="gz_bridge",
            namespace=LaunchConfiguration("namespace"),
            parameters=[{"config_file": str(files.bridge_yaml), "use_sim_time": True}],
            output="screen"),
    ]


def generate_launch_description() -> LaunchDescription:
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(ROBOT_LAUNCH_FILE)),
        launch_arguments={
            "use_sim_time": "true",
            "start_camera": "false",
            **{name: LaunchConfiguration(name) for name in PASSED_THROUGH},
        }.items())
    return LaunchDescription(_declare_arguments() + [OpaqueFunction(function=_start_gazebo), robot])
