"""Helpers for tests that run real nodes over DDS.

`RosHarness` owns one rclpy context, one test node and a background executor.
`NodeProcess` starts an omni_agent node in its own process, as
`ros2 run omni_agent <node>` would, and keeps its log for assertions.
"""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, List, Optional

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from omni_agent.dds import clean_zombie_shared_memory

REPO = pathlib.Path(__file__).resolve().parent.parent


class RosHarness:
    """One rclpy context and test node, spun in a background thread."""

    def __init__(self, name: str = "test_harness"):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # the context shut down while spinning
            pass

    def collect(self, msg_type, topic: str, qos) -> List[Any]:
        """Subscribe to `topic` and return the list its messages are appended to."""
        received: List[Any] = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Wait until predicate() is true; fail the test with `what` after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")

    def wait_for_subscribers(self, publisher, count: int = 1, timeout_s: float = 20.0) -> None:
        """Wait until `publisher` has matched `count` subscriptions (discovery)."""
        self.wait_for(lambda: publisher.get_subscription_count() >= count, timeout_s,
                      f"{count} subscriber(s) on {publisher.topic_name}")

    def wait_for_publishers(self, topic: str, count: int = 1, timeout_s: float = 20.0) -> None:
        """Wait until `topic` has `count` publishers (discovery)."""
        self.wait_for(lambda: self.node.count_publishers(topic) >= count, timeout_s,
                      f"{count} publisher(s) on {topic}")

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self._thread.join(timeout=2.0)


class NodeProcess:
    """An omni_agent node in its own Python process with ROS parameters."""

    def __init__(self, module: str, params: Optional[dict] = None, env: Optional[dict] = None,
                 name: Optional[str] = None):
        args = [sys.executable, "-u", "-m", f"omni_agent.nodes.{module}", "--ros-args"]
        if name:
            args += ["-r", f"__node:={name}"]
        for key, value in (params or {}).items():
            args += ["-p", f"{key}:={_param_text(value)}"]
        self.log_file = tempfile.NamedTemporaryFile(prefix=f"{module}-", suffix=".log", delete=False)
        process_env = dict(os.environ)
        # Line-buffered logs, so that tests can wait for a log line as it happens.
        process_env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "1"
        process_env["RCUTILS_LOGGING_USE_STDOUT"] = "0"
        process_env.update(env or {})
        process_env.setdefault("PYTHONPATH", "")
        process_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), process_env["PYTHONPATH"]) if p)
        self.module = module
        self._output_at_stop: Optional[str] = None
        self.process = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        env=process_env, cwd=str(REPO), start_new_session=True)

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        if self._output_at_stop is not None:
            return self._output_at_stop
        self.log_file.flush()
        return pathlib.Path(self.log_file.name).read_text(errors="replace")

    def wait_for_output(self, text: str, timeout_s: float) -> None:
        """Wait until the node has logged `text`; fail with its log otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.module} did not log {text!r} within {timeout_s:.0f} s "
                             f"(alive={self.alive()}); its log:\n{self.output()[-4000:]}")

    def stop(self, timeout_s: float = 10.0) -> int:
        if self.alive():
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
                # A killed participant leaves its shared-memory files, which later nodes would trip on.
                clean_zombie_shared_memory()
        self._output_at_stop = self.output()
        self.log_file.close()
        pathlib.Path(self.log_file.name).unlink(missing_ok=True)
        return self.process.returncode


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) if not isinstance(v, str) else f"'{v}'" for v in value) + "]"
    return str(value)
