"""launch/robot.launch.py and config/omni_agent.yaml, checked without `launch`.

`launch` and `launch_ros` are not installed here, so the launch file runs
against small stand-in modules, defined below, that record the arguments of
each action. The parameters file is checked with real rclpy: each node class
is built in its own context, which reads config/omni_agent.yaml through
--params-file as the node process started by `ros2 launch` does.
"""
from __future__ import annotations

import array
import ast
import contextlib
import importlib
import importlib.util
import inspect
import math
import os
import pathlib
import re
import sys
import types
import wave
from typing import Dict, Iterator, List, NamedTuple, Sequence

import cv2
import numpy as np
import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

REPO = pathlib.Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "robot.launch.py"
PARAMS_FILE = REPO / "config" / "omni_agent.yaml"
PLACES_FILE = REPO / "config" / "places.yaml"
PACKAGE = "omni_agent"

#: Node name (also its executable and module name) -> node class in that module.
NODE_CLASSES = {
    "camera_node": "CameraNode",
    "microphone_node": "MicrophoneNode",
    "image_frontend_node": "ImageFrontendNode",
    "omni_model_node": "OmniModelNode",
    "planner_node": "PlannerNode",
}

#: Launch argument -> expected default. The stand-in FindPackageShare resolves
#: to the repository, whose config/ folder is installed as share/omni_agent/config.
ARGUMENT_DEFAULTS = {
    "use_sim_time": "false",
    "namespace": "",
    "log_level": "info",
    "params_file": str(PARAMS_FILE),
    "start_camera": "true",
    "camera_source": "0",
    "audio_source": "device",
    "audio_device": "",
    "whisper_model": "tiny.en",
    "language": "auto",
    "places_file": str(PLACES_FILE),
    "image_frontend": "inprocess",
    "image_precision": "float32",
}

#: Launch argument -> its allowed values, which launch checks before it starts anything.
ARGUMENT_CHOICES = {
    "image_frontend": ["inprocess", "node"],
    "image_precision": ["float32", "bfloat16"],
}

#: Launch argument -> (node, parameter, value type) for each parameter it sets.
#: The type is the one the node declares, which launch_ros must pass on.
ARGUMENT_PARAMETERS = {
    "use_sim_time": [(node_name, "use_sim_time", bool) for node_name in NODE_CLASSES],
    "camera_source": [("camera_node", "source", str)],
    "audio_source": [("microphone_node", "source", str)],
    "audio_device": [("microphone_node", "device", str)],
    "whisper_model": [("omni_model_node", "whisper_model", str)],
    "language": [("omni_model_node", "language", str)],
    "places_file": [("planner_node", "places_file", str), ("omni_model_node", "places_file", str)],
    "image_precision": [("image_frontend_node", "precision", str)],
}

#: (node, parameter) -> its string value for each value of the image_frontend
#: launch argument. The value is computed from the argument, not copied.
IMAGE_FRONTEND_PARAMETERS = {
    ("omni_model_node", "image_features_topic"): {"inprocess": "", "node": "camera/image_features"},
}

#: Parameters that rclpy declares on every node, without a description.
ROS_BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}

#: Node parameters that the params file leaves out on purpose, with the reason.
PARAMETERS_LEFT_OUT = {
    ("microphone_node", "files"): "declared without a default, and rcl reads an empty list as unset",
}

#: Environment variables and files that would pin DDS to one machine.
DDS_SETTINGS = (
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_LOCALHOST_ONLY",
    "ROS_STATIC_PEERS",
    "ROS_DOMAIN_ID",
    "FASTRTPS_DEFAULT_PROFILES_FILE",
    "FASTDDS_DEFAULT_PROFILES_FILE",
    "CYCLONEDDS_URI",
    "fastdds_loopback",
)


# --- stand-ins for launch, launch_ros and ament_index_python -----------------
#
# The signatures follow the current launch and launch_ros sources, so a
# misspelled or removed keyword fails here as it would under `ros2 launch`.

class FakeLaunchDescription:
    def __init__(self, initial_entities=None, *, deprecated_reason=None):
        self.entities = list(initial_entities or [])

    def add_action(self, action) -> None:
        self.entities.append(action)


class FakeDeclareLaunchArgument:
    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        self.name = name
        self.default_value = default_value
        self.description = description
        self.choices = choices


class FakeLaunchConfiguration:
    def __init__(self, variable_name, *, default=None):
        self.variable_name = variable_name
        self.default = default


class FakePathJoinSubstitution:
    def __init__(self, substitutions):
        self.substitutions = list(substitutions)


class FakeTextSubstitution:
    def __init__(self, *, text):
        self.text = text


class FakeFindPackageShare:
    def __init__(self, package):
        self.package = package


class FakePythonExpression:
    def __init__(self, expression):
        self.expression = expression


class FakeIfCondition:
    def __init__(self, predicate_expression):
        self.predicate_expression = predicate_expression


class FakeParameterValue:
    def __init__(self, value, *, value_type=None):
        self.value = value
        self.value_type = value_type


class FakeAction:
    """Stand-in for the actions and conditions that the tests do not inspect."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs


class FakeSetEnvironmentVariable(FakeAction):
    pass


#: Keyword arguments that launch_ros Node forwards to launch's ExecuteProcess.
EXECUTE_PROCESS_OPTIONS = {
    "output", "respawn", "respawn_delay", "emulate_tty", "additional_env", "env", "cwd",
    "sigterm_timeout", "sigkill_timeout", "prefix", "shell", "log_cmd", "on_exit",
    "cached_output", "condition",
}


class FakeNode:
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None,
                 parameters=None, remappings=None, ros_arguments=None, arguments=None, **kwargs):
        unknown = sorted(set(kwargs) - EXECUTE_PROCESS_OPTIONS)
        if unknown:
            raise TypeError(f"Node() got unexpected keyword arguments {unknown}")
        self.executable = executable
        self.package = package
        self.name = name
        self.namespace = namespace
        self.parameters = parameters
        self.ros_arguments = ros_arguments
        self.arguments = arguments
        self.options = kwargs


def fake_get_package_share_directory(package_name: str) -> str:
    if package_name != PACKAGE:
        raise LookupError(f"package {package_name!r} not found")
    return str(REPO)


def build_stand_in_modules() -> Dict[str, types.ModuleType]:
    """Build the stand-in modules, keyed by their import name."""
    contents = {
        "launch": {"LaunchDescription": FakeLaunchDescription},
        "launch.actions": {
            "DeclareLaunchArgument": FakeDeclareLaunchArgument,
            "OpaqueFunction": FakeAction,
            "GroupAction": FakeAction,
            "LogInfo": FakeAction,
            "SetEnvironmentVariable": FakeSetEnvironmentVariable,
        },
        "launch.substitutions": {
            "LaunchConfiguration": FakeLaunchConfiguration,
            "PathJoinSubstitution": FakePathJoinSubstitution,
            "TextSubstitution": FakeTextSubstitution,
            "PythonExpression": FakePythonExpression,
        },
        "launch.conditions": {"IfCondition": FakeIfCondition, "UnlessCondition": FakeAction},
        "launch_ros": {},
        "launch_ros.actions": {"Node": FakeNode, "PushRosNamespace": FakeAction},
        "launch_ros.substitutions": {"FindPackageShare": FakeFindPackageShare},
        "launch_ros.parameter_descriptions": {"ParameterValue": FakeParameterValue},
        "ament_index_python": {},
        "ament_index_python.packages": {"get_package_share_directory": fake_get_package_share_directory},
    }
    modules = {}
    for name, attributes in contents.items():
        module = types.ModuleType(name)
        module.__path__ = []  # a package, so that submodules can be imported
        module.__dict__.update(attributes)
        modules[name] = module
    for name, module in modules.items():
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(modules[parent], child, module)
    return modules


@pytest.fixture
def launch_description(monkeypatch) -> FakeLaunchDescription:
    """Run generate_launch_description() of robot.launch.py against the stand-ins."""
    for name, module in build_stand_in_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("robot_launch_under_test", LAUNCH_FILE)
    launch_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_module)
    description = launch_module.generate_launch_description()
    assert isinstance(description, FakeLaunchDescription)
    return description


def resolve(value, configuration: Dict[str, str]) -> str:
    """Evaluate a stand-in substitution to text, with `configuration` as the launch arguments."""
    if isinstance(value, str):
        return value
    if isinstance(value, FakeTextSubstitution):
        return value.text
    if isinstance(value, FakeLaunchConfiguration):
        return configuration[value.variable_name]
    if isinstance(value, FakeFindPackageShare):
        return fake_get_package_share_directory(value.package)
    if isinstance(value, FakePathJoinSubstitution):
        return os.path.join(*(resolve(part, configuration) for part in value.substitutions))
    if isinstance(value, FakePythonExpression):
        # launch's PythonExpression returns str(eval(text)) with the math module in scope.
        return str(eval(resolve(value.expression, configuration), {"math": math}))
    if isinstance(value, (list, tuple)):
        return "".join(resolve(part, configuration) for part in value)
    raise TypeError(f"cannot resolve {value!r}")


def condition_holds(condition: FakeIfCondition, configuration: Dict[str, str]) -> bool:
    """Evaluate an IfCondition as launch does: 'true' or '1' starts the action, and 'false' or '0' skips it.

    launch strips the text and compares it in lower case; any other text is an error.
    """
    text = resolve(condition.predicate_expression, configuration).strip().lower()
    assert text in ("true", "1", "false", "0"), f"IfCondition cannot evaluate {text!r}"
    return text in ("true", "1")


def configuration_name(value) -> str:
    """Return the launch argument that `value` reads, unwrapping a ParameterValue."""
    if isinstance(value, FakeParameterValue):
        value = value.value
    if isinstance(value, FakeLaunchConfiguration):
        return value.variable_name
    raise AssertionError(f"{value!r} is not a LaunchConfiguration")


def declared_arguments(description: FakeLaunchDescription) -> Dict[str, FakeDeclareLaunchArgument]:
    return {entity.name: entity for entity in description.entities
            if isinstance(entity, FakeDeclareLaunchArgument)}


def launched_nodes(description: FakeLaunchDescription) -> Dict[str, FakeNode]:
    return {entity.name: entity for entity in description.entities if isinstance(entity, FakeNode)}


def argument_overrides(node: FakeNode) -> dict:
    """Return the parameter dict that follows the params file in `node.parameters`."""
    assert isinstance(node.parameters[-1], dict), f"{node.name}: the last parameters entry is not a dict"
    return node.parameters[-1]


# --- the launch file ----------------------------------------------------------

def test_launch_file_defines_entry_point():
    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}

    assert "generate_launch_description" in functions
    arguments = functions["generate_launch_description"].args
    assert arguments.args == []
    assert arguments.posonlyargs == []
    assert arguments.kwonlyargs == []


def test_launch_declares_arguments_with_defaults(launch_description):
    declared = declared_arguments(launch_description)

    assert sorted(declared) == sorted(ARGUMENT_DEFAULTS)
    for name, expected in ARGUMENT_DEFAULTS.items():
        assert resolve(declared[name].default_value, {}) == expected, f"default of {name}"
        assert declared[name].description, f"launch argument {name} has no description"
    for name, choices in ARGUMENT_CHOICES.items():
        assert declared[name].choices == choices, f"choices of {name}"
        assert ARGUMENT_DEFAULTS[name] in choices, f"default of {name}"


def test_launch_describes_each_node(launch_description):
    nodes = launched_nodes(launch_description)

    assert sorted(nodes) == sorted(NODE_CLASSES)
    for name, node in nodes.items():
        assert node.package == PACKAGE, name
        assert node.executable == name, name
        assert node.options.get("output") == "screen", name
        assert node.options.get("respawn") is False, name
        assert configuration_name(node.namespace) == "namespace", name


def test_launch_sets_log_level_of_each_node(launch_description):
    for name, node in launched_nodes(launch_description).items():
        command_line = list(node.arguments or [])
        if node.ros_arguments:
            command_line += ["--ros-args", *node.ros_arguments]
        assert "--log-level" in command_line, name
        position = command_line.index("--log-level")

        assert "--ros-args" in command_line[:position], f"{name}: --log-level is outside --ros-args"
        assert configuration_name(command_line[position + 1]) == "log_level", name


def test_launch_reads_params_file_before_overrides(launch_description):
    for name, node in launched_nodes(launch_description).items():
        assert len(node.parameters) == 2, name
        assert configuration_name(node.parameters[0]) == "params_file", name
        assert isinstance(node.parameters[1], dict), name


def test_launch_arguments_map_to_node_parameters(launch_description):
    nodes = launched_nodes(launch_description)
    expected_keys = {name: set() for name in NODE_CLASSES}

    for argument, targets in ARGUMENT_PARAMETERS.items():
        for node_name, parameter, value_type in targets:
            expected_keys[node_name].add(parameter)
            overrides = argument_overrides(nodes[node_name])
            assert parameter in overrides, f"{argument} does not set {node_name} {parameter}"
            value = overrides[parameter]

            assert configuration_name(value) == argument, f"{node_name} {parameter}"
            # launch_ros reads a bare substitution with YAML rules ("0" becomes 0),
            # which is right only for booleans. Strings need value_type=str.
            actual_type = value.value_type if isinstance(value, FakeParameterValue) else None
            allowed_types = (bool, None) if value_type is bool else (value_type,)
            assert actual_type in allowed_types, f"{node_name} {parameter} is passed as {actual_type}"

    for node_name, parameter in IMAGE_FRONTEND_PARAMETERS:
        expected_keys[node_name].add(parameter)
    for node_name, node in nodes.items():
        assert set(argument_overrides(node)) == expected_keys[node_name], node_name


@pytest.mark.parametrize("image_frontend", ARGUMENT_CHOICES["image_frontend"])
def test_image_frontend_argument_selects_encoder(launch_description, image_frontend):
    configuration = dict(ARGUMENT_DEFAULTS, image_frontend=image_frontend)
    nodes = launched_nodes(launch_description)

    frontend_condition = nodes["image_frontend_node"].options.get("condition")
    assert isinstance(frontend_condition, FakeIfCondition)
    assert condition_holds(frontend_condition, configuration) == (image_frontend == "node")
    for (node_name, parameter), values in IMAGE_FRONTEND_PARAMETERS.items():
        value = argument_overrides(nodes[node_name])[parameter]
        assert isinstance(value, FakeParameterValue), f"{node_name} {parameter}"
        assert value.value_type is str, f"{node_name} {parameter} is passed as {value.value_type}"
        assert resolve(value.value, configuration) == values[image_frontend], f"{node_name} {parameter}"


@pytest.mark.parametrize("start_camera,expected", [("true", True), ("false", False)])
def test_start_camera_argument_selects_camera_node(launch_description, start_camera, expected):
    condition = launched_nodes(launch_description)["camera_node"].options.get("condition")

    assert isinstance(condition, FakeIfCondition)
    assert condition_holds(condition, dict(ARGUMENT_DEFAULTS, start_camera=start_camera)) == expected


def test_other_nodes_start_unconditionally(launch_description):
    nodes = launched_nodes(launch_description)

    for name in ("microphone_node", "omni_model_node", "planner_node"):
        assert nodes[name].options.get("condition") is None, name


def test_launch_leaves_dds_settings_alone(launch_description):
    tree = ast.parse(LAUNCH_FILE.read_text())
    docstring = ast.get_docstring(tree, clean=False)
    texts = [node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value != docstring]

    actions = [entity for entity in launch_description.entities
               if isinstance(entity, FakeSetEnvironmentVariable)]
    assert actions == []
    for setting in DDS_SETTINGS:
        assert not [text for text in texts if setting in text], setting


# --- executables and installed files -------------------------------------------

def cmake_install_block(kind: str) -> str:
    """Return the text of the first install(<kind> ...) call in CMakeLists.txt."""
    cmake = (REPO / "CMakeLists.txt").read_text()
    match = re.search(rf"install\(\s*{kind}\b(.*?)\)", cmake, re.DOTALL)
    assert match, f"CMakeLists.txt has no install({kind} ...)"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(NODE_CLASSES))
def test_node_executable_installed(name):
    script = REPO / "bin" / name

    assert script.is_file()
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert f"bin/{name}" in cmake_install_block("PROGRAMS").split()
    assert f"from omni_agent.nodes.{name} import main" in script.read_text()
    module = importlib.import_module(f"omni_agent.nodes.{name}")
    assert callable(getattr(module, "main", None)), f"omni_agent.nodes.{name} has no main()"


def test_cmake_installs_launch_and_config():
    block = cmake_install_block("DIRECTORY launch")
    assert "config" in block.split()
    assert "share/${PROJECT_NAME}" in block.split()


def test_referenced_files_exist(launch_description):
    declared = declared_arguments(launch_description)
    paths = [resolve(declared[name].default_value, {}) for name in ("params_file", "places_file")]
    params = yaml.safe_load(PARAMS_FILE.read_text())
    for section in params.values():
        for key, value in section["ros__parameters"].items():
            if key.endswith("_file") and value:
                paths.append(str(REPO / value))

    assert paths
    for path in paths:
        assert pathlib.Path(path).is_file(), f"{path} does not exist"
        assert pathlib.Path(path).resolve().is_relative_to(REPO / "config"), path


# --- the parameters file, against the real nodes -------------------------------

def test_params_file_sections_match_nodes():
    params = yaml.safe_load(PARAMS_FILE.read_text())

    # A plain `camera_node:` key matches only /camera_node, so namespace:=robot1
    # would silently drop the file. /**/camera_node matches in any namespace.
    assert sorted(params) == sorted(f"/**/{name}" for name in NODE_CLASSES)
    for key, section in params.items():
        assert list(section) == ["ros__parameters"], key
        assert section["ros__parameters"], key


class StartedNode(NamedTuple):
    node: Node
    #: Parameters that rcl read from the params files for this node name.
    file_values: Dict[str, object]
    #: Default value of each parameter the node class declared.
    defaults: Dict[str, object]


def with_recorded_defaults(node_class: type, defaults: dict) -> type:
    """Return a subclass of `node_class` that stores each declared default in `defaults`."""

    class RecordingNode(node_class):
        def declare_parameter(self, name, value=None, descriptor=None, ignore_override=False):
            defaults[name] = value
            return super().declare_parameter(name, value, descriptor, ignore_override)

    return RecordingNode


def plain_value(value):
    """Return a parameter value with arrays as lists, for comparison."""
    if isinstance(value, (list, tuple, array.array)):
        return list(value)
    return value


def read_params_for(node_name: str, context: Context) -> Dict[str, object]:
    """Return what rcl reads for `node_name` from the --params-file options of `context`."""
    probe = Node(node_name, context=context, automatically_declare_parameters_from_overrides=True)
    try:
        parameters = probe.get_parameters_by_prefix("")
        return {name: plain_value(parameter.value) for name, parameter in parameters.items()
                if name not in ROS_BUILTIN_PARAMETERS}
    finally:
        probe.destroy_node()


@contextlib.contextmanager
def started_node(node_name: str, params_files: Sequence[pathlib.Path], overrides: List[Parameter],
                 extra_ros_args: Sequence[str] = ()) -> Iterator[StartedNode]:
    """Build the node class in its own context with the params files and `overrides`.

    The params files reach the node as `ros2 launch` passes them, through
    --params-file in the command line. `overrides` stand for the
    launch-argument values.
    """
    ros_args = ["--ros-args", *extra_ros_args]
    for path in params_files:
        ros_args += ["--params-file", str(path)]
    context = Context()
    rclpy.init(context=context, args=ros_args, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    node = None
    try:
        file_values = read_params_for(node_name, context)
        module = importlib.import_module(f"omni_agent.nodes.{node_name}")
        node_class = getattr(module, NODE_CLASSES[node_name])
        defaults: Dict[str, object] = {}
        node = with_recorded_defaults(node_class, defaults)(context=context, parameter_overrides=overrides)
        yield StartedNode(node, file_values, defaults)
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.shutdown(context=context)


def undeclared_parameters(node: Node, file_values: Dict[str, object]) -> List[str]:
    """Return the params-file keys that `node` does not declare, which rclpy ignores silently."""
    return sorted(name for name in file_values if not node.has_parameter(name))


def write_test_sources(folder: pathlib.Path) -> Dict[str, str]:
    """Write an image and a WAV file, so that camera_node and microphone_node need no hardware."""
    image = folder / "frame.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, dtype=np.uint8))
    audio = folder / "silence.wav"
    with wave.open(str(audio), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(np.zeros(16000, dtype=np.int16).tobytes())
    return {"camera_source": str(image), "audio_source": str(audio)}


def launch_overrides(node_name: str, folder: pathlib.Path) -> List[Parameter]:
    """Return the parameters that the launch arguments set on `node_name`, as rclpy overrides.

    The values are the argument defaults, except the camera and audio sources,
    which point at files written to `folder`.
    """
    values = dict(ARGUMENT_DEFAULTS)
    values.update(write_test_sources(folder))
    overrides = []
    for argument, targets in ARGUMENT_PARAMETERS.items():
        for target_node, parameter, value_type in targets:
            if target_node != node_name:
                continue
            text = values[argument]
            value = yaml.safe_load(text) if value_type is bool else value_type(text)
            overrides.append(Parameter(parameter, value=value))
    for (target_node, parameter), choices in IMAGE_FRONTEND_PARAMETERS.items():
        if target_node == node_name:
            overrides.append(Parameter(parameter, value=choices[values["image_frontend"]]))
    return overrides


def mapped_parameters(node_name: str) -> List[str]:
    mapped = [parameter for targets in ARGUMENT_PARAMETERS.values()
              for target_node, parameter, _ in targets if target_node == node_name]
    mapped += [parameter for target_node, parameter in IMAGE_FRONTEND_PARAMETERS if target_node == node_name]
    return mapped


def test_node_classes_accept_context_and_overrides():
    for node_name, class_name in NODE_CLASSES.items():
        module = importlib.import_module(f"omni_agent.nodes.{node_name}")
        parameters = inspect.signature(getattr(module, class_name).__init__).parameters.values()
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters), (
            f"{class_name}.__init__ takes no **kwargs, so context= and parameter_overrides= "
            f"cannot reach rclpy's Node")


@pytest.mark.ros
@pytest.mark.parametrize("node_name", sorted(NODE_CLASSES))
def test_params_file_matches_node(node_name, tmp_path):
    overrides = launch_overrides(node_name, tmp_path)
    with started_node(node_name, [PARAMS_FILE], overrides) as started:
        node = started.node
        declared = set(node.get_parameters_by_prefix("")) - ROS_BUILTIN_PARAMETERS
        left_out = {parameter for (name, parameter) in PARAMETERS_LEFT_OUT if name == node_name}

        assert declared, f"{node_name} declares no parameters"
        assert started.file_values, f"no section of {PARAMS_FILE.name} matches {node_name}"
        assert undeclared_parameters(node, started.file_values) == []
        assert [p for p in mapped_parameters(node_name) if not node.has_parameter(p)] == []
        assert sorted(declared - set(started.file_values) - left_out) == [], "missing from the params file"

        descriptors = node.describe_parameters(sorted(declared))
        undescribed = [name for name, descriptor in zip(sorted(declared), descriptors)
                       if not descriptor.description.strip()]
        assert undescribed == []

        # The file documents the defaults: same value and same type (15 is not 15.0).
        differing = {
            name: (value, started.defaults.get(name))
            for name, value in started.file_values.items()
            if type(value) is not type(started.defaults.get(name))
            or value != plain_value(started.defaults.get(name))
        }
        assert differing == {}, "params file value != node default"


@pytest.mark.ros
def test_params_check_reports_unknown_key(tmp_path):
    params = yaml.safe_load(PARAMS_FILE.read_text())
    section = {"/**/planner_node": params["/**/planner_node"]}
    section["/**/planner_node"]["ros__parameters"]["goal_tolerance_meters"] = 0.3
    bad_file = tmp_path / "unknown_key.yaml"
    bad_file.write_text(yaml.safe_dump(section))

    with started_node("planner_node", [bad_file], []) as started:
        assert undeclared_parameters(started.node, started.file_values) == ["goal_tolerance_meters"]


@pytest.mark.ros
@pytest.mark.parametrize("dict_key", ["/**", "/robot1/planner_node"])
def test_params_file_namespace_and_precedence(dict_key, tmp_path):
    # launch_ros writes a parameter dict to a temporary file keyed by the node's
    # full name, or by /** (older releases, or no name given), and passes it
    # after params_file.
    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["/**/planner_node"]["ros__parameters"]["map_frame"] = "robot1_map"
    params_copy = tmp_path / "omni_agent.yaml"
    params_copy.write_text(yaml.safe_dump(params))
    launch_dict = tmp_path / "launch_params.yaml"
    launch_dict.write_text(yaml.safe_dump({dict_key: {"ros__parameters": {"min_confidence": 0.5}}}))

    with started_node("planner_node", [params_copy, launch_dict], [],
                      extra_ros_args=["-r", "__ns:=/robot1"]) as started:
        node = started.node
        assert node.get_fully_qualified_name() == "/robot1/planner_node"
        assert node.get_parameter("map_frame").value == "robot1_map"
        assert node.get_parameter("min_confidence").value == 0.5
