"""Loopback-only DDS settings for the processes omni_agent starts by itself.

The demo (`omni-agent run`), the tests and the benchmarks call
`apply_loopback_defaults()` before rclpy is initialised, so their DDS traffic
stays on 127.0.0.1 whatever the calling shell exports. The node executables
started by `ros2 run` / `ros2 launch` do not call it: a robot deployment
chooses its own discovery range and domain.

This module does not import rclpy, so it can run before the ROS libraries load.
"""
from __future__ import annotations

import os
import pathlib
import random
import shutil
import subprocess
import sys
from typing import MutableMapping, Optional

#: Domain used by the demo when the environment names none (or domain 0).
DEFAULT_DEMO_DOMAIN_ID = 42
PROFILE_NAME = "fastdds_loopback.xml"


def find_loopback_profile() -> Optional[pathlib.Path]:
    """Return the path of the loopback Fast DDS profile, or None if not found.

    Looks beside the source tree first (a --symlink-install build resolves to
    it), then in the installed share folder of the package.
    """
    source_config = pathlib.Path(__file__).resolve().parent.parent / "config" / PROFILE_NAME
    if source_config.is_file():
        return source_config
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = pathlib.Path(get_package_share_directory("omni_agent")) / "config" / PROFILE_NAME
        if installed.is_file():
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    return None


def apply_loopback_defaults(
    environ: MutableMapping[str, str] = os.environ,
    domain_id: Optional[int] = None,
) -> dict:
    """Force loopback-only discovery and a non-zero domain in `environ`.

    `domain_id` overrides the domain; otherwise a non-zero ROS_DOMAIN_ID from
    the environment is kept and 0 or unset becomes DEFAULT_DEMO_DOMAIN_ID.
    Returns the variables that were set, for logging.
    """
    if domain_id is None:
        current = environ.get("ROS_DOMAIN_ID", "").strip()
        domain_id = int(current) if current.isdigit() and int(current) != 0 else DEFAULT_DEMO_DOMAIN_ID
    if not 1 <= domain_id <= 101:
        raise ValueError(f"ROS domain id {domain_id} is out of range; use 1..101")

    settings = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(domain_id),
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
    }
    # An old-style variable would override the discovery range in Jazzy.
    environ.pop("ROS_LOCALHOST_ONLY", None)
    environ.pop("ROS_STATIC_PEERS", None)
    profile = find_loopback_profile()
    if profile is not None:
        settings["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(profile)
        settings["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    # rclpy.init needs a writable log folder; HOME may be unset under CI.
    if "ROS_LOG_DIR" not in environ and "HOME" not in environ:
        settings["ROS_LOG_DIR"] = "/tmp/omni_agent_ros_log"
    environ.update(settings)
    return settings


def random_test_domain_id(rng: Optional[random.Random] = None) -> int:
    """Return a random domain in 1..100, so parallel test runs do not meet."""
    return (rng or random.SystemRandom()).randint(1, 100)


def clean_zombie_shared_memory(timeout_s: float = 30.0) -> bool:
    """Remove Fast DDS shared-memory files that no live process uses (`fastdds shm clean`).

    A DDS process that is killed leaves its /dev/shm segments and port
    files behind. A later participant that gets the same port number can
    then miss large messages such as camera images, which travel over
    shared memory. The tool removes only segments that no process holds, so
    it is safe beside running nodes. Returns False when the tool is not
    installed or fails.
    """
    tool = pathlib.Path(sys.executable).with_name("fastdds")
    command = [str(tool)] if tool.exists() else [shutil.which("fastdds") or "fastdds"]
    try:
        completed = subprocess.run(command + ["shm", "clean"], capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0
