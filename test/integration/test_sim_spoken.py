"""The main job, closed loop: a spoken command through the audio path to the simulated robot.

Each test runs `omni-agent sim-run` as a user would: Piper speaks the
command into a PulseAudio virtual microphone (or the microphone node plays
the file where PulseAudio is missing), and the model, planner and simulator
nodes run over loopback DDS. The run's result.json is the evidence.
"""
import json
import os
import subprocess
import sys

import pytest

from ros_harness import REPO

pytestmark = pytest.mark.ros


def sim_run(tmp_path, *args):
    out = tmp_path / "run"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    completed = subprocess.run(
        [sys.executable, "-m", "omni_agent.cli", "sim-run", "--out", str(out), "--real-time-factor", "5",
         "--domain-id", os.environ["ROS_DOMAIN_ID"], "--timeout", "400", *args],
        capture_output=True, text=True, timeout=500, env=env, cwd=str(REPO))
    result_file = out / "result.json"
    assert result_file.is_file(), f"no result.json; stdout:\n{completed.stdout[-3000:]}\nstderr:\n{completed.stderr[-3000:]}"
    report = json.loads(result_file.read_text())
    report["_stdout"] = completed.stdout
    report["_returncode"] = completed.returncode
    return report, out


@pytest.mark.parametrize("label", ["apple", "banana"])
def test_spoken_fetch_brings_object_to_hand_over_point(tmp_path, label):
    report, out = sim_run(tmp_path, "--command", f"Go to the kitchen and bring me the {label}.")
    assert report["outcome"] == "done", report["_stdout"][-3000:]
    assert report["_returncode"] == 0
    assert report["results"][0]["action"] == "bring"
    assert report["results"][0]["object_label"] == label
    assert report["results"][0]["place"] == "kitchen"
    assert report["object_distance_m"] is not None
    assert report["object_distance_m"] <= 0.3
    steps = [s["step"] for s in report["statuses"] if s["state"] == "done" and s["step"]]
    assert steps == ["navigate", "pick", "navigate", "hand_over"]
    for name in ("run.mcap", "path.png", "summary.txt", "run.mp4", "run.gif"):
        assert (out / name).is_file(), name
        assert (out / name).stat().st_size > 0, name
    assert label in (out / "summary.txt").read_text()


def test_spoken_piano_is_rejected_with_reason(tmp_path):
    report, _ = sim_run(tmp_path, "--command", "Bring me the piano.", "--no-video")
    assert report["outcome"] == "rejected"
    assert "piano" in report["outcome_reason"]
    assert "cannot be grasped" in report["outcome_reason"]
    assert report["_returncode"] == 1
