"""Start the omni_agent nodes on a robot: camera, microphone, model and planner.

With image_frontend:=node the image encoder runs in a fifth node,
image_frontend_node, which publishes camera/image_features; omni_model_node
then reads those features instead of encoding camera frames itself.

Examples:

    ros2 launch omni_agent robot.launch.py
    ros2 launch omni_agent robot.launch.py camera_source:=/dev/video2 audio_device:=USB
    ros2 launch omni_agent robot.launch.py whisper_model:=base language:=zh
    ros2 launch omni_agent robot.launch.py namespace:=robot1 use_sim_time:=true log_level:=debug
    ros2 launch omni_agent robot.launch.py audio_source:=/data/command.wav camera_source:=/data/frames
    ros2 launch omni_agent robot.launch.py params_file:=/etc/robot/omni_agent.yaml
    ros2 launch omni_agent robot.launch.py image_frontend:=node image_precision:=bfloat16
    ros2 launch omni_agent robot.launch.py --show-args

Each node reads params_file first and then the launch arguments that map to
its parameters, so the arguments win. launch_ros passes both to the node as
--params-file options in that order, and rclpy keeps the last value it reads.

This file sets no DDS options: the robot's environment (ROS_DOMAIN_ID,
ROS_AUTOMATIC_DISCOVERY_RANGE, RMW profiles) decides discovery.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "omni_agent"
#: Topic of image_frontend_node's features, relative so that it follows the namespace.
IMAGE_FEATURES_TOPIC = "camera/image_features"


def _declare_arguments() -> list:
    share = FindPackageShare(PACKAGE)
    return [
        DeclareLaunchArgument(
            "use_sim_time", default_value="false",
            description="Use simulation time from the /clock topic in every node: true or false"),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="ROS namespace of all nodes. Empty starts them in the root namespace"),
        DeclareLaunchArgument(
            "log_level", default_value="info",
            description="Log level of all nodes: debug, info, warn, error or fatal"),
        DeclareLaunchArgument(
            "params_file", default_value=PathJoinSubstitution([share, "config", "omni_agent.yaml"]),
            description="YAML parameters file for the nodes. The other launch arguments "
                        "override the parameters they map to"),
        DeclareLaunchArgument(
            "start_camera", default_value="true",
            description="Start camera_node: true or false. sim.launch.py sets false, because "
                        "the simulator publishes the camera topics itself"),
        DeclareLaunchArgument(
            "camera_source", default_value="0",
            description="camera_node source: device index ('0'), device path, video or image file, "
                        "image folder, or rtsp://, http:// or https:// URL"),
        DeclareLaunchArgument(
            "audio_source", default_value="device",
            description="microphone_node source: 'device' to record audio_device, or the path of "
                        "an audio file to play"),
        DeclareLaunchArgument(
            "audio_device", default_value="",
            description="microphone_node input device: a part of its name or its PortAudio index. "
                        "Empty selects the default input"),
        DeclareLaunchArgument(
            "whisper_model", default_value="tiny.en",
            description="omni_model_node Whisper model: 'tiny.en' (English), 'base' "
                        "(multilingual) or a CTranslate2 model folder"),
        DeclareLaunchArgument(
            "language", default_value="auto",
            description="omni_model_node recognition language: 'auto' (English or Mandarin), "
                        "'en' or 'zh'"),
        DeclareLaunchArgument(
            "places_file", default_value=PathJoinSubstitution([share, "config", "places.yaml"]),
            description="YAML file of named places, read by omni_model_node and planner_node"),
        DeclareLaunchArgument(
            "image_frontend", default_value="inprocess", choices=["inprocess", "node"],
            description="Where camera frames are encoded: 'inprocess' in omni_model_node, or 'node' "
                        "in image_frontend_node, which publishes " + IMAGE_FEATURES_TOPIC
                        + " for omni_model_node"),
        DeclareLaunchArgument(
            "image_precision", default_value="float32", choices=["float32", "bfloat16"],
            description="image_frontend_node encoder precision: 'float32' or 'bfloat16'. Used "
                        "with image_frontend:=node"),
    ]


def _by_image_frontend(node_value: str, inprocess_value: str) -> PythonExpression:
    """Return a substitution: node_value with image_frontend:=node, else inprocess_value.

    Both values are Python literals, because PythonExpression evaluates the
    text. The argument's choices limit image_frontend to 'inprocess' or
    'node', so its quoted value cannot change the expression.
    """
    return PythonExpression(
        [f"{node_value} if '", LaunchConfiguration("image_frontend"), f"' == 'node' else {inprocess_value}"])


def _text_argument(name: str) -> ParameterValue:
    """Return launch argument `name` as a string parameter value.

    launch_ros reads a bare substitution in a parameter dict with YAML rules,
    which would turn camera_source:=0 into an integer that camera_node rejects
    (it declares source as a string). Some launch_ros releases also raise on
    an empty value such as the default audio_device. value_type=str passes
    the text unchanged. Each node gets its own instance because
    ParameterValue stores its evaluated value.
    """
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def _robot_node(executable: str, overrides: dict, condition=None) -> Node:
    """Describe one node: params_file first, then `overrides` from the launch arguments."""
    launch_overrides = {
        "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
        **overrides,
    }
    return Node(
        package=PACKAGE,
        executable=executable,
        name=executable,
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), launch_overrides],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        respawn=False,
        condition=condition,
    )


def generate_launch_description() -> LaunchDescription:
    nodes = [
        _robot_node("camera_node", {"source": _text_argument("camera_source")},
                    condition=IfCondition(LaunchConfiguration("start_camera"))),
        _robot_node("microphone_node", {
            "source": _text_argument("audio_source"),
            "device": _text_argument("audio_device"),
        }),
        _robot_node("image_frontend_node", {"precision": _text_argument("image_precision")},
                    condition=IfCondition(_by_image_frontend("True", "False"))),
        _robot_node("omni_model_node", {
            "whisper_model": _text_argument("whisper_model"),
            "language": _text_argument("language"),
            "places_file": _text_argument("places_file"),
            # Empty: omni_model_node encodes camera frames itself.
            "image_features_topic": ParameterValue(
                _by_image_frontend(repr(IMAGE_FEATURES_TOPIC), "''"), value_type=str),
        }),
        _robot_node("planner_node", {"places_file": _text_argument("places_file")}),
    ]
    return LaunchDescription(_declare_arguments() + nodes)
