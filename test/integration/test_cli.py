"""The omni-agent command line, run as a user would run it."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from omni_agent import assets
from ros_harness import REPO

KITCHEN = yaml.safe_load((REPO / "config" / "places.yaml").read_text())["places"]["kitchen"]["pose"]


def omni_agent(*args, timeout=300):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "omni_agent.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(REPO))


@pytest.mark.ros
def test_run_prints_transcripts_goals_and_statuses():
    completed = omni_agent("run", "--domain-id", os.environ["ROS_DOMAIN_ID"])
    out = completed.stdout
    assert completed.returncode == 0, completed.stderr[-3000:]
    expected = ["DDS loopback only", "'Go forward 10 meters.'", "move forward=10.00 m",
                "goal_pose   x=10.00 m y=0.00 m yaw=0.00 rad in frame map",
                "'Go to the kitchen.'", "navigate place=kitchen",
                f"goal_pose   x={KITCHEN['x']:.2f} m y={KITCHEN['y']:.2f} m",
                "utt-2 accepted: navigate to kitchen"]
    missing = [line for line in expected if line not in out]
    assert not missing, f"missing from the output: {missing}\nstdout:\n{out}\nstderr:\n{completed.stderr[-3000:]}"


def test_understand_prints_json_result():
    completed = omni_agent("understand", "--audio", str(assets.recording("goforward.raw")), "--json")
    assert completed.returncode == 0, completed.stderr
    record = json.loads(completed.stdout)
    assert "forward" in record["transcript"].lower()
    assert record["result"]["action"] == "move"
    assert record["result"]["forward_m"] == pytest.approx(10.0)
    assert record["result"]["source"] == "omni_model"
    modalities = {"audio": {"audio"}, "audio + transcript": {"audio", "text"}}[record["omni"]["decided_from"]]
    assert set(record["omni"]["fusion_weights"]) == modalities
    assert set(record["omni"]["slot_confidence"]) >= {"action", "object", "place", "direction", "amount"}


def test_understand_decides_again_with_the_transcript():
    """No audio-only result is sure enough at --min-confidence 1, so the transcript joins the decision."""
    completed = omni_agent("understand", "--audio", str(assets.recording("goforward.raw")), "--json",
                           "--min-confidence", "1")
    assert completed.returncode == 0, completed.stderr
    record = json.loads(completed.stdout)
    assert record["omni"]["decided_from"] == "audio + transcript"
    assert set(record["omni"]["fusion_weights"]) == {"audio", "text"}
    assert record["result"]["forward_m"] == pytest.approx(10.0)
    assert "forward" in record["result"]["transcript"].lower()


def test_understand_prints_one_line_per_utterance():
    completed = omni_agent("understand", "--audio", str(assets.recording("goforward.raw")))
    assert completed.returncode == 0, completed.stderr
    assert "heard 'Go forward 10 meters.' -> move forward=10.00 m left=0.00 m turn=0 deg" in completed.stdout
    assert "omni_model, from audio" in completed.stdout


def test_understand_with_the_command_parser():
    completed = omni_agent("understand", "--audio", str(assets.recording("goforward.raw")), "--json",
                           "--understanding", "command_parser")
    assert completed.returncode == 0, completed.stderr
    record = json.loads(completed.stdout)
    assert record["result"]["source"] == "command_parser"
    assert record["result"]["forward_m"] == pytest.approx(10.0)


def test_understand_with_a_missing_checkpoint_names_it(tmp_path):
    completed = omni_agent("understand", "--audio", str(assets.recording("goforward.raw")),
                           "--checkpoint", str(tmp_path / "nowhere"))
    assert completed.returncode == 2
    assert str(tmp_path / "nowhere") in completed.stderr
    assert "omni-agent train" in completed.stderr


def test_understand_reports_missing_file():
    completed = omni_agent("understand", "--audio", "/nonexistent/command.wav", "--json")
    assert completed.returncode == 2
    assert "/nonexistent/command.wav" in completed.stderr


def test_understand_silence_is_no_command(tmp_path):
    from omni_agent.audio.tts import write_wav
    import numpy as np

    silence = tmp_path / "silence.wav"
    write_wav(silence, np.zeros(16000 * 5, np.float32), 16000)
    completed = omni_agent("understand", "--audio", str(silence), "--json")
    assert completed.returncode == 3
    assert json.loads(completed.stdout)["error"] == "no speech detected"
