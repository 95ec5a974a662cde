"""Test set-up shared by the unit and integration tests.

DDS is forced onto loopback here, before anything imports rclpy, with a
random non-zero domain for this test session; node processes started by the
tests inherit it. This does not depend on the calling shell.
"""
import os
import sys
import pathlib

from omni_agent import dds

TEST_DOMAIN_ID = dds.random_test_domain_id()
dds.apply_loopback_defaults(os.environ, domain_id=TEST_DOMAIN_ID)
# Shared-memory files of DDS processes killed in earlier runs would block image delivery.
dds.clean_zombie_shared_memory()

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
