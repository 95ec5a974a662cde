"""Tests of the loopback DDS defaults, applied to plain dictionaries."""
import pathlib
import random
import xml.etree.ElementTree as ElementTree

import pytest

from omni_agent import dds

FASTDDS_NAMESPACE = "{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}"
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")


def test_sets_localhost_range():
    environ = {}

    dds.apply_loopback_defaults(environ)

    assert environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert environ["RMW_IMPLEMENTATION"] == "rmw_fastrtps_cpp"


def test_keeps_nonzero_domain():
    environ = {"ROS_DOMAIN_ID": "17"}

    dds.apply_loopback_defaults(environ)

    assert environ["ROS_DOMAIN_ID"] == "17"


@pytest.mark.parametrize("current", [None, "0", "", "  ", "abc", "-3"])
def test_replaces_zero_or_unset_domain(current):
    environ = {} if current is None else {"ROS_DOMAIN_ID": current}

    dds.apply_loopback_defaults(environ)

    assert environ["ROS_DOMAIN_ID"] == str(dds.DEFAULT_DEMO_DOMAIN_ID)


def test_explicit_domain_wins():
    environ = {"ROS_DOMAIN_ID": "17"}

    dds.apply_loopback_defaults(environ, domain_id=23)

    assert environ["ROS_DOMAIN_ID"] == "23"


@pytest.mark.parametrize("domain_id", [1, 101])
def test_domain_limits_accepted(domain_id):
    environ = {}

    dds.apply_loopback_defaults(environ, domain_id=domain_id)

    assert environ["ROS_DOMAIN_ID"] == str(domain_id)


@pytest.mark.parametrize("domain_id", [0, -1, 102, 232])
def test_domain_out_of_range(domain_id):
    environ = {}

    with pytest.raises(ValueError) as error:
        dds.apply_loopback_defaults(environ, domain_id=domain_id)

    assert f"domain id {domain_id}" in str(error.value)
    assert environ == {}


def test_environment_domain_out_of_range():
    with pytest.raises(ValueError, match="domain id 150"):
        dds.apply_loopback_defaults({"ROS_DOMAIN_ID": "150"})


def test_removes_old_variables():
    environ = {"ROS_LOCALHOST_ONLY": "0", "ROS_STATIC_PEERS": "192.0.2.10", "HOME": "/root"}

    dds.apply_loopback_defaults(environ)

    assert "ROS_LOCALHOST_ONLY" not in environ
    assert "ROS_STATIC_PEERS" not in environ


def test_returns_settings_applied():
    environ = {"HOME": "/root"}

    settings = dds.apply_loopback_defaults(environ, domain_id=5)

    for name, value in settings.items():
        assert environ[name] == value
    assert settings["ROS_DOMAIN_ID"] == "5"


def test_log_dir_only_without_home():
    without_home = {}
    with_home = {"HOME": "/root"}

    dds.apply_loopback_defaults(without_home)
    dds.apply_loopback_defaults(with_home)

    assert without_home["ROS_LOG_DIR"]
    assert "ROS_LOG_DIR" not in with_home


def test_keeps_other_variables():
    environ = {"PATH": "/usr/bin", "ROS_LOG_DIR": "/var/log/ros"}

    dds.apply_loopback_defaults(environ)

    assert environ["PATH"] == "/usr/bin"
    assert environ["ROS_LOG_DIR"] == "/var/log/ros"


@pytest.fixture(scope="module")
def profile_path():
    environ = {}
    dds.apply_loopback_defaults(environ)
    return pathlib.Path(environ[PROFILE_VARIABLES[0]])


def test_profile_variables_set():
    environ = {}

    dds.apply_loopback_defaults(environ)

    paths = {environ[name] for name in PROFILE_VARIABLES}
    assert len(paths) == 1
    assert pathlib.Path(paths.pop()).is_file()


def test_profile_parses(profile_path):
    root = ElementTree.parse(profile_path).getroot()

    assert root.tag == FASTDDS_NAMESPACE + "dds"


def test_profile_disables_builtin_transports(profile_path):
    root = ElementTree.parse(profile_path).getroot()

    values = [element.text.strip() for element in root.iter(FASTDDS_NAMESPACE + "useBuiltinTransports")]

    assert values == ["false"]


def test_profile_has_no_multicast(profile_path):
    root = ElementTree.parse(profile_path).getroot()

    tags = [element.tag for element in root.iter()]

    assert [tag for tag in tags if "multicast" in tag.lower()] == []


def test_profile_addresses_are_loopback(profile_path):
    root = ElementTree.parse(profile_path).getroot()

    addresses = [element.text.strip() for element in root.iter(FASTDDS_NAMESPACE + "address")]

    assert addresses
    assert set(addresses) == {"127.0.0.1"}


def test_random_test_domain_range():
    rng = random.Random(7)

    domains = [dds.random_test_domain_id(rng) for _ in range(500)]

    assert min(domains) >= 1
    assert max(domains) <= 100
