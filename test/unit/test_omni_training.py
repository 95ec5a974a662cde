"""Training on a small real data set: data preparation, one process, and a two-process DDP step (gloo)."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from omni_agent.model.checkpoint import load_checkpoint
from omni_agent.model.dataset import OmniData
from omni_agent.model.train import TrainConfig, default_label_space, train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Real speech (Piper and espeak-ng), real recordings, sim renders and photos, cut down."""
    from omni_agent.model.prepare import prepare_data
    folder = tmp_path_factory.mktemp("omni_data")
    prepare_data(folder, seed=0, max_clips=40, scenes=8, max_instructions=120, imagenet_classes=40)
    return folder


def test_prepared_data_parts(small_data):
    data = OmniData(small_data / "features", default_label_space())
    assert data.clips["train"], "no training clips"
    assert data.clips["real"], "the pocketsphinx recordings are missing"
    assert any(data.audio_rows[c]["text"] == "go forward ten meters" for c in data.clips["real"])
    assert any(".chatter." in data.audio_rows[c]["template"] for c in data.clips["train"]), "no chatter clips"
    assert data.texts["train"] and data.object_prompts
    assert data.object_regions["train"], "no labelled object regions in the sim renders"
    assert len(data.protos["train"]) + len(data.protos["test"]) == 40
    assert data.feature_dims == {"audio": 512, "text": 384, "image": 1280}


@pytest.mark.parametrize("schedule", ["progressive", "end_to_end"])
def test_training_schedule_saves_checkpoint(small_data, tmp_path, schedule):
    config = TrainConfig(data_dir=str(small_data), out=str(tmp_path / "ckpt"), schedule=schedule,
                         stage_steps=[3, 3, 3], batch_size=16, eval_every=3, bf16=schedule == "end_to_end",
                         gradient_checkpointing=True)
    summary = train(config)
    expected = ["1-unimodal", "2-alignment", "3-joint"] if schedule == "progressive" else ["end_to_end"]
    assert list(summary["stage_seconds"]) == expected
    assert (tmp_path / "ckpt" / "curves.png").is_file()
    curves = json.loads((tmp_path / "ckpt" / "curves.json").read_text())
    assert curves["step"][-1] == 9
    losses = {k: [x for x in v if x is not None] for k, v in curves.items() if k.startswith("loss/")}
    assert "loss/joint" in losses
    assert "loss/grounding" in losses
    for name, values in losses.items():
        assert values and torch.isfinite(torch.tensor(values)).all(), name
    assert 0.0 <= curves["val/exact_match"][-1] <= 1.0
    model = load_checkpoint(tmp_path / "ckpt")
    assert model.training_info["train"]["schedule"] == schedule
    assert set(model.config.labels) == {"action", "object", "place", "direction", "amount", "language"}


def test_training_ddp_two_processes(small_data, tmp_path):
    """torchrun with two processes and gloo on loopback: replicas stay identical after the steps."""
    with socket.socket() as probe:           # a free port on loopback for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr",
               "127.0.0.1", "--master-port", str(port), "-m", "omni_agent.model.train", "--data-dir", str(small_data),
               "--out", str(tmp_path / "ddp"), "--stage-steps", "2", "2", "2", "--batch-size", "8",
               "--eval-every", "1000", "--threads", "1"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout[completed.stdout.index("{"):])
    assert summary["world_size"] == 2
    assert summary["ranks_in_sync"] is True
    assert load_checkpoint(tmp_path / "ddp").training_info["world_size"] == 2
