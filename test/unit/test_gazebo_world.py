"""The Gazebo files (world SDF, robot SDF, bridge YAML), the CLI that writes
them, and launch/sim.launch.py run against stand-in launch modules.

Gazebo is not installed here, so the SDF is checked as XML against the
World it was generated from, not loaded by gz-sim.
"""
import ast
import importlib
import importlib.util
import math
import pathlib
import sys
import types
import xml.etree.ElementTree as ET

import pytest
import yaml

from omni_agent import cli
from omni_agent.sim import gazebo
from omni_agent.sim.world import load_world

REPO = pathlib.Path(__file__).resolve().parents[2]
NODES_DIR = REPO / "omni_agent" / "nodes"
SIM_LAUNCH = REPO / "launch" / "sim.launch.py"
ROBOT_LAUNCH = REPO / "launch" / "robot.launch.py"
NUMERIC_TAGS = {"pose", "size", "radius", "length", "mass", "ixx", "iyy", "izz", "ixy", "ixz", "iyz",
                "max_step_size", "real_time_factor", "real_time_update_rate", "gravity", "horizontal_fov",
                "near", "far", "update_rate", "normal", "ambient", "diffuse", "specular", "direction"}

WALL_ON_DOOR_WORLD = """
name: door_test
wall_height: 1.0
wall_thickness: 0.2
walls:
  - {from: [0.0, 0.0], to: [6.0, 0.0]}
doors:
  middle_door: {center: [2.0, 0.0], width: 1.0, axis: x}
rooms:
  hall: {min: [0.0, -2.0], max: [6.0, 2.0]}
furniture: {}
objects: {}
robot:
  start_pose: {x: 1.0, y: 1.0, yaw: 0.5}
places: {}
"""


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def world_root(world):
    return ET.fromstring(gazebo.world_sdf(world))


@pytest.fixture(scope="module")
def robot_root():
    return ET.fromstring(gazebo.robot_sdf())


def models_by_name(world_root):
    return {model.get("name"): model for model in world_root.find("world").findall("model")}


def floats(text):
    return [float(value) for value in text.split()]


def pose_of(element):
    pose = element.find("pose")
    return floats(pose.text) if pose is not None else [0.0] * 6


# ------------------------------------------------------------------ world SDF

def test_world_sdf_has_every_world_entry(world, world_root):
    models = models_by_name(world_root)
    assert world_root.tag == "sdf"
    assert world_root.get("version") == gazebo.SDF_VERSION
    assert world_root.find("world").get("name") == world.name
    for index in range(len(world.walls)):
        assert f"wall_{index}" in models
    for name in list(world.doors) + list(world.furniture) + list(world.objects):
        assert name in models, f"model {name} missing from the world SDF"
    for room in world.rooms:
        assert f"floor_{room}" in models
    assert "ground_plane" in models


def test_world_sdf_numbers_are_finite(world_root):
    checked = 0
    for element in world_root.iter():
        if element.tag in NUMERIC_TAGS and element.text is not None:
            values = floats(element.text)
            assert values, f"<{element.tag}> is empty"
            assert all(math.isfinite(v) for v in values), f"<{element.tag}>{element.text}</{element.tag}>"
            checked += 1
    assert checked > 100
    for size in world_root.iter("size"):
        assert all(v > 0 for v in floats(size.text)), f"non-positive size {size.text}"


def test_world_sdf_has_ros_systems(world_root):
    plugins = {plugin.get("name"): plugin for plugin in world_root.find("world").findall("plugin")}
    for system in ("Physics", "UserCommands", "SceneBroadcaster", "Sensors", "Contact"):
        assert f"gz::sim::systems::{system}" in plugins
    assert plugins["gz::sim::systems::Sensors"].findtext("render_engine") == "ogre2"
    assert plugins["gz::sim::systems::Physics"].get("filename") == "gz-sim-physics-system"
    physics = world_root.find("world/physics")
    assert float(physics.findtext("max_step_size")) > 0
    lights = world_root.find("world").findall("light")
    assert [light.get("type") for light in lights] == ["directional"]


def test_world_sdf_furniture_poses(world, world_root):
    models = models_by_name(world_root)
    for item in world.furniture.values():
        model = models[item.name]
        assert model.findtext("static") == "true"
        x, y, z = pose_of(model)[:3]
        assert (x, y) == pytest.approx(item.center)
        assert z == pytest.approx(item.size[2] / 2)
        assert floats(model.find("link/collision/geometry/box/size").text) == pytest.approx(item.size)


def test_world_sdf_objects_have_inertia(world, world_root):
    models = models_by_name(world_root)
    for obj in world.objects.values():
        model = models[obj.name]
        assert model.findtext("static") in (None, "false"), f"{obj.name} must be dynamic"
        x, y, z = pose_of(model)[:3]
        assert (x, y, z) == pytest.approx((obj.xy[0], obj.xy[1], obj.z))
        inertial = model.find("link/inertial")
        assert float(inertial.findtext("mass")) == pytest.approx(obj.mass)
        ixx, iyy, izz = (float(inertial.findtext(f"inertia/{axis}")) for axis in ("ixx", "iyy", "izz"))
        assert min(ixx, iyy, izz) > 0
        # Principal moments of a real body satisfy the triangle inequality.
        assert ixx + iyy >= izz
        assert iyy + izz >= ixx
        assert ixx + izz >= iyy
        geometry = model.find("link/collision/geometry")[0]
        expected = {"sphere": "sphere", "cylinder": "cylinder", "capsule": "capsule", "box": "box"}[obj.shape]
        assert geometry.tag == expected


def test_world_sdf_supported_object_rests_on_furniture(world, world_root):
    models = models_by_name(world_root)
    apple = world.objects["apple"]
    table = world.furniture[apple.support]
    radius = float(models["apple"].find("link/collision/geometry/sphere/radius").text)
    assert pose_of(models["apple"])[2] - radius == pytest.approx(table.size[2])


def test_closed_door_blocks_open_door_does_not(world):
    open_root = ET.fromstring(gazebo.world_sdf(world.with_door("kitchen_door", False)))
    closed_root = ET.fromstring(gazebo.world_sdf(world.with_door("kitchen_door", True)))
    open_door = models_by_name(open_root)["kitchen_door"]
    closed_door = models_by_name(closed_root)["kitchen_door"]
    assert open_door.findall(".//collision") == []
    assert len(closed_door.findall(".//collision")) == 1
    size = floats(closed_door.find(".//collision/geometry/box/size").text)
    assert size[0] == pytest.approx(world.doors["kitchen_door"].width)
    assert size[2] == pytest.approx(world.wall_height)
    x, y = pose_of(closed_door.find("link"))[:2]
    assert (x, y) == pytest.approx(world.doors["kitchen_door"].center)


def test_door_on_wall_cuts_gap(tmp_path):
    path = tmp_path / "world.yaml"
    path.write_text(WALL_ON_DOOR_WORLD)
    world = load_world(str(path))
    wall = models_by_name(ET.fromstring(gazebo.world_sdf(world)))["wall_0"]
    pieces = []
    for link in wall.findall("link"):
        x = pose_of(link)[0]
        length = floats(link.find("collision/geometry/box/size").text)[0]
        pieces.append((x - length / 2, x + length / 2))
    assert sorted(pieces) == [pytest.approx((0.0, 1.5)), pytest.approx((2.5, 6.0))]


def test_wall_without_door_is_one_piece(world, world_root):
    wall = models_by_name(world_root)["wall_0"]
    links = wall.findall("link")
    assert len(links) == 1
    assert floats(links[0].find("collision/geometry/box/size").text)[0] == pytest.approx(world.walls[0].length)


def test_infinite_number_is_rejected(world):
    broken = world.with_door("kitchen_door", False)
    broken.furniture["sofa"].size = (float("inf"), 1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        gazebo.world_sdf(broken)


# ------------------------------------------------------------------ robot SDF

def node_default(node_file, parameter):
    """The default value of `declare(self, parameter, default, ...)` in a node module."""
    tree = ast.parse((NODES_DIR / node_file).read_text())
    for call in ast.walk(tree):
        if (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "declare"
                and len(call.args) >= 3 and isinstance(call.args[1], ast.Constant)
                and call.args[1].value == parameter):
            return ast.literal_eval(call.args[2])
    raise AssertionError(f"{node_file} declares no parameter {parameter}")


def test_robot_sdf_camera(robot_root):
    sensors = robot_root.findall(".//sensor")
    assert [s.get("type") for s in sensors] == ["camera"]
    sensor = sensors[0]
    camera = gazebo.CameraConfig()
    assert int(sensor.findtext("camera/image/width")) == camera.width
    assert int(sensor.findtext("camera/image/height")) == camera.height
    assert camera.width > 0
    assert camera.height > 0
    assert sensor.findtext("topic") == gazebo.GZ_IMAGE_TOPIC
    assert sensor.findtext("camera/camera_info_topic") == gazebo.GZ_CAMERA_INFO_TOPIC
    assert float(sensor.findtext("update_rate")) > 0
    assert sensor.findtext("camera/optical_frame_id") == node_default("camera_node.py", "frame_id")
    hfov_deg = math.degrees(float(sensor.findtext("camera/horizontal_fov")))
    assert hfov_deg == pytest.approx(node_default("camera_node.py", "hfov_deg"), abs=1e-3)


def test_robot_sdf_links_and_joints(robot_root):
    model = robot_root.find("model")
    assert model.get("name") == gazebo.ROBOT_NAME
    links = {link.get("name"): link for link in model.findall("link")}
    assert gazebo.BASE_FRAME in links
    for link in links.values():
        mass = float(link.findtext("inertial/mass"))
        assert mass > 0
        assert math.isfinite(mass)
    joints = {joint.get("name"): joint for joint in model.findall("joint")}
    assert set(joints) == {"left_wheel_joint", "right_wheel_joint"}
    for joint in joints.values():
        assert joint.findtext("parent") in links
        assert joint.findtext("child") in links
    left_y = pose_of(links["left_wheel"])[1]
    right_y = pose_of(links["right_wheel"])[1]
    assert left_y > 0 > right_y


def test_robot_sdf_drive_and_odometry(robot_root):
    plugins = {plugin.get("name"): plugin for plugin in robot_root.find("model").findall("plugin")}
    drive = plugins["gz::sim::systems::DiffDrive"]
    odometry = plugins["gz::sim::systems::OdometryPublisher"]
    assert drive.findtext("topic") == gazebo.GZ_CMD_VEL_TOPIC
    assert drive.findtext("left_joint") == "left_wheel_joint"
    assert float(drive.findtext("wheel_radius")) > 0
    assert odometry.findtext("odom_topic") == gazebo.GZ_ODOMETRY_TOPIC
    assert odometry.findtext("tf_topic") == gazebo.GZ_TF_TOPIC
    assert odometry.findtext("odom_frame") == gazebo.ODOM_FRAME
    assert odometry.findtext("robot_base_frame") == gazebo.BASE_FRAME
    # The wheel odometry must stay off the bridged topics: it starts at zero at the spawn pose.
    assert drive.findtext("odom_topic") != gazebo.GZ_ODOMETRY_TOPIC
    assert drive.findtext("tf_topic") != gazebo.GZ_TF_TOPIC


# ------------------------------------------------------------------ bridge

def message_imports(tree):
    """Map names imported with `from pkg.msg import Name` to 'pkg/msg/Name'."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith(".msg"):
            package = node.module.split(".")[0]
            for alias in node.names:
                names[alias.asname or alias.name] = f"{package}/msg/{alias.name}"
    return names


#: Topics that come from a node parameter, so the scan cannot read them: (module, attribute).
PARAMETER_TOPICS = {("omni_model_node", "image_features_topic")}


def module_constants(tree):
    """Map module-level NAME = "string" assignments to their values."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value.value
    return constants


def node_topics():
    """Return {topic: {(ros_type, 'publisher' or 'subscription', module)}} from omni_agent/nodes/*.py."""
    topics = {}
    for path in sorted(NODES_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        types_by_name = message_imports(tree)
        constants = module_constants(tree)
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr in ("create_publisher", "create_subscription")):
                continue
            type_node, topic_node = call.args[0], call.args[1]
            if isinstance(topic_node, ast.Attribute) and (path.stem, topic_node.attr) in PARAMETER_TOPICS:
                continue
            if isinstance(topic_node, ast.Name) and topic_node.id in constants:
                topic = constants[topic_node.id]
            else:
                assert isinstance(topic_node, ast.Constant), f"{path.name}: topic of {call.func.attr} is not a literal"
                topic = topic_node.value
            kind = "publisher" if call.func.attr == "create_publisher" else "subscription"
            ros_type = types_by_name.get(getattr(type_node, "id", None), "unknown")
            topics.setdefault(topic.lstrip("/"), set()).add((ros_type, kind, path.stem))
    return topics


@pytest.fixture(scope="module")
def bridge_entries(world):
    return yaml.safe_load(gazebo.bridge_yaml(world))


def test_node_topic_scan_finds_nodes():
    topics = node_topics()
    assert ("nav_msgs/msg/Odometry", "subscription", "planner_node") in topics["odom"]
    assert ("sensor_msgs/msg/Image", "publisher", "camera_node") in topics["camera/image_raw"]


def test_bridge_yaml_fields(bridge_entries):
    assert isinstance(bridge_entries, list) and bridge_entries
    keys = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
    for entry in bridge_entries:
        assert set(entry) == keys
        assert entry["direction"] in ("GZ_TO_ROS", "ROS_TO_GZ")
        assert entry["gz_type_name"].startswith("gz.msgs.")
        package, kind, name = entry["ros_type_name"].split("/")
        assert kind == "msg"
        module = importlib.import_module(f"{package}.msg")
        assert hasattr(module, name), f"{entry['ros_type_name']} does not exist"


def test_bridge_matches_node_topics(bridge_entries):
    topics = node_topics()
    global_topics = {"/clock", "/tf"}
    for entry in bridge_entries:
        ros_topic = entry["ros_topic_name"]
        if ros_topic in global_topics:
            continue
        used = topics.get(ros_topic.lstrip("/"))
        assert used, f"no omni_agent node uses the bridged topic {ros_topic}"
        assert {ros_type for ros_type, _, _ in used} == {entry["ros_type_name"]}, ros_topic
        kinds = {kind for _, kind, _ in used}
        if entry["direction"] == "ROS_TO_GZ":
            assert "publisher" in kinds, f"no node publishes {ros_topic}, which is bridged to Gazebo"


def test_bridge_replaces_camera_node(bridge_entries):
    from_gazebo = {entry["ros_topic_name"].lstrip("/"): entry["ros_type_name"]
                   for entry in bridge_entries if entry["direction"] == "GZ_TO_ROS"}
    camera_topics = {topic: ros_type for topic, uses in node_topics().items()
                     for ros_type, kind, module in uses if module == "camera_node" and kind == "publisher"}
    assert camera_topics
    for topic, ros_type in camera_topics.items():
        assert from_gazebo.get(topic) == ros_type, f"camera_node's {topic} is not bridged from Gazebo"


def test_bridge_clock_matches_rclpy(bridge_entries, world):
    from rclpy import time_source

    clock = [entry for entry in bridge_entries if entry["gz_type_name"] == "gz.msgs.Clock"]
    assert len(clock) == 1
    assert clock[0]["ros_topic_name"] == time_source.CLOCK_TOPIC
    package, _, name = clock[0]["ros_type_name"].split("/")
    assert getattr(importlib.import_module(f"{package}.msg"), name) is time_source.rosgraph_msgs.msg.Clock
    assert clock[0]["gz_topic_name"] == f"/world/{world.name}/clock"


def test_bridge_tf_is_tf2_message(bridge_entries):
    from tf2_msgs.msg import TFMessage

    tf = [entry for entry in bridge_entries if entry["ros_topic_name"] == "/tf"]
    assert len(tf) == 1
    assert tf[0]["ros_type_name"] == "tf2_msgs/msg/TFMessage"
    assert tf[0]["gz_type_name"] == "gz.msgs.Pose_V"
    assert TFMessage.get_fields_and_field_types() == {"transforms": "sequence<geometry_msgs/TransformStamped>"}


def test_bridge_gz_topics_exist_in_sdf(bridge_entries, robot_root, world):
    published = {element.text for element in robot_root.iter()
                 if element.tag in ("topic", "camera_info_topic", "odom_topic", "tf_topic")}
    published.add(f"/world/{world.name}/clock")
    for entry in bridge_entries:
        assert entry["gz_topic_name"] in published, f"nothing in Gazebo uses {entry['gz_topic_name']}"


# ------------------------------------------------------------------ CLI

def test_cli_writes_gazebo_files(tmp_path, world, capsys):
    out = tmp_path / "gz"
    assert cli.main(["gazebo-world", "--out", str(out)]) == 0
    assert (out / "home.sdf").read_text() == gazebo.world_sdf(world)
    assert (out / "robot.sdf").read_text() == gazebo.robot_sdf()
    assert yaml.safe_load((out / "bridge.yaml").read_text()) == yaml.safe_load(gazebo.bridge_yaml(world))
    assert "home.sdf" in capsys.readouterr().out


def test_cli_reports_missing_world(tmp_path, capsys):
    code = cli.main(["gazebo-world", "--out", str(tmp_path), "--world", str(tmp_path / "missing.yaml")])
    assert code == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert not (tmp_path / "home.sdf").exists()


# ------------------------------------------------------------------ launch file

class LaunchRecorder:
    """Stand-in launch, launch_ros and ament_index_python modules that record what is built."""

    def __init__(self, shares):
        self.shares = shares
        self.modules = {}
        recorder = self

        class Action:
            def __init__(self, *args, **kwargs):
                self.args, self.kwargs = args, kwargs

        class LaunchDescription(Action):
            pass

        class DeclareLaunchArgument(Action):
            pass

        class LogInfo(Action):
            pass

        class OpaqueFunction(Action):
            pass

        class IncludeLaunchDescription(Action):
            @property
            def arguments(self):
                return dict(self.kwargs.get("launch_arguments", ()))

        class PythonLaunchDescriptionSource(Action):
            pass

        class Node(Action):
            pass

        class LaunchConfiguration:
            def __init__(self, name):
                self.name = name

            def perform(self, context):
                return context.launch_configurations[self.name]

        def get_package_share_directory(package):
            if package not in recorder.shares:
                raise LookupError(f"package {package} not found")
            return str(recorder.shares[package])

        self.classes = types.SimpleNamespace(
            LaunchDescription=LaunchDescription, DeclareLaunchArgument=DeclareLaunchArgument, LogInfo=LogInfo,
            OpaqueFunction=OpaqueFunction, IncludeLaunchDescription=IncludeLaunchDescription,
            PythonLaunchDescriptionSource=PythonLaunchDescriptionSource, Node=Node,
            LaunchConfiguration=LaunchConfiguration)
        self._module("launch", LaunchDescription=LaunchDescription)
        self._module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument, LogInfo=LogInfo,
                     OpaqueFunction=OpaqueFunction, IncludeLaunchDescription=IncludeLaunchDescription)
        self._module("launch.launch_description_sources", PythonLaunchDescriptionSource=PythonLaunchDescriptionSource)
        self._module("launch.substitutions", LaunchConfiguration=LaunchConfiguration)
        self._module("launch_ros")
        self._module("launch_ros.actions", Node=Node)
        self._module("ament_index_python")
        self._module("ament_index_python.packages", get_package_share_directory=get_package_share_directory)

    def _module(self, name, **attributes):
        module = types.ModuleType(name)
        for key, value in attributes.items():
            setattr(module, key, value)
        self.modules[name] = module


@pytest.fixture
def sim_launch(monkeypatch, tmp_path):
    """Load launch/sim.launch.py with stand-in modules; return (module, recorder)."""
    gz_share = tmp_path / "share" / "ros_gz_sim"
    (gz_share / "launch").mkdir(parents=True)
    recorder = LaunchRecorder({"ros_gz_sim": gz_share})
    for name, module in recorder.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("sim_launch_under_test", SIM_LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, recorder


def run_opaque_function(module, recorder, overrides):
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities
                if isinstance(e, recorder.classes.DeclareLaunchArgument)}
    opaque = [e for e in entities if isinstance(e, recorder.classes.OpaqueFunction)]
    assert len(opaque) == 1
    context = types.SimpleNamespace(launch_configurations={**declared, **overrides})
    return entities, opaque[0].kwargs["function"](context)


def nodes_of(actions, recorder, executable):
    return [a for a in actions if isinstance(a, recorder.classes.Node) and a.kwargs["executable"] == executable]


def test_sim_launch_parses():
    tree = ast.parse(SIM_LAUNCH.read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_sim_launch_starts_gazebo_spawn_and_bridge(sim_launch, tmp_path, world):
    module, recorder = sim_launch
    out = tmp_path / "generated"
    _, actions = run_opaque_function(module, recorder, {"output_dir": str(out), "headless": "true"})

    includes = [a for a in actions if isinstance(a, recorder.classes.IncludeLaunchDescription)]
    assert len(includes) == 1
    gz_source = includes[0].args[0].args[0]
    assert pathlib.Path(gz_source) == tmp_path / "share" / "ros_gz_sim" / "launch" / "gz_sim.launch.py"
    gz_args = includes[0].arguments["gz_args"].split()
    assert "-r" in gz_args
    assert "-s" in gz_args
    assert pathlib.Path(gz_args[-1]) == out / "home.sdf"
    assert ET.parse(out / "home.sdf").getroot().find("world").get("name") == world.name

    spawn = nodes_of(actions, recorder, "create")
    assert len(spawn) == 1
    assert spawn[0].kwargs["package"] == "ros_gz_sim"
    arguments = spawn[0].kwargs["arguments"]
    options = dict(zip(arguments[::2], arguments[1::2]))
    assert options["-world"] == world.name
    assert pathlib.Path(options["-file"]) == out / "robot.sdf"
    assert ET.parse(options["-file"]).getroot().find("model").get("name") == options["-name"]
    assert float(options["-x"]) == pytest.approx(world.start_pose.x)
    assert float(options["-y"]) == pytest.approx(world.start_pose.y)
    assert float(options["-Y"]) == pytest.approx(world.start_pose.yaw)

    bridge = nodes_of(actions, recorder, "parameter_bridge")
    assert len(bridge) == 1
    assert bridge[0].kwargs["package"] == "ros_gz_bridge"
    parameters = bridge[0].kwargs["parameters"][0]
    assert parameters["use_sim_time"] is True
    assert yaml.safe_load(pathlib.Path(parameters["config_file"]).read_text()) == \
        yaml.safe_load(gazebo.bridge_yaml(world))


def test_sim_launch_gui_mode_has_no_server_flag(sim_launch, tmp_path):
    module, recorder = sim_launch
    _, actions = run_opaque_function(module, recorder, {"output_dir": str(tmp_path / "gui")})
    include = [a for a in actions if isinstance(a, recorder.classes.IncludeLaunchDescription)][0]
    assert "-s" not in include.arguments["gz_args"].split()


def test_sim_launch_uses_world_file(sim_launch, tmp_path):
    module, recorder = sim_launch
    world_file = tmp_path / "world.yaml"
    world_file.write_text(WALL_ON_DOOR_WORLD)
    _, actions = run_opaque_function(module, recorder, {"output_dir": str(tmp_path / "w"),
                                                        "world_file": str(world_file)})
    arguments = nodes_of(actions, recorder, "create")[0].kwargs["arguments"]
    assert arguments[arguments.index("-world") + 1] == "door_test"
    assert float(arguments[arguments.index("-Y") + 1]) == pytest.approx(0.5)


def test_sim_launch_includes_robot_launch(sim_launch):
    module, recorder = sim_launch
    entities = module.generate_launch_description().args[0]
    includes = [e for e in entities if isinstance(e, recorder.classes.IncludeLaunchDescription)]
    assert len(includes) == 1
    assert pathlib.Path(includes[0].args[0].args[0]).resolve() == ROBOT_LAUNCH.resolve()
    arguments = includes[0].arguments
    assert arguments["use_sim_time"] == "true"
    assert arguments["start_camera"] == "false"
    for name in ("audio_source", "audio_device"):
        assert isinstance(arguments[name], recorder.classes.LaunchConfiguration)
        assert arguments[name].name == name


def test_sim_launch_passes_only_robot_arguments(sim_launch):
    module, recorder = sim_launch
    robot_tree = ast.parse(ROBOT_LAUNCH.read_text())
    robot_arguments = {call.args[0].value for call in ast.walk(robot_tree)
                       if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "DeclareLaunchArgument"}
    entities = module.generate_launch_description().args[0]
    include = [e for e in entities if isinstance(e, recorder.classes.IncludeLaunchDescription)][0]
    assert set(include.arguments) <= robot_arguments
