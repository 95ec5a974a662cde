"""Omni model checkpoints: weights in safetensors, the config as JSON beside them.

A checkpoint is a folder:
    model.safetensors   the trainable weights (front-ends are not included)
    config.json         {"config": OmniConfig.to_dict(), "training": {...}}
"""
from __future__ import annotations

import json
import pathlib
from typing import Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from omni_agent.model.omni import OmniConfig, OmniModel

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PACKAGED_CHECKPOINT = pathlib.Path(__file__).resolve().parent / "checkpoints" / "omni-small"


class CheckpointError(RuntimeError):
    """A checkpoint folder that is missing, incomplete or does not match the model code."""


def save_checkpoint(model: OmniModel, folder: Union[str, pathlib.Path], training: Optional[dict] = None) -> pathlib.Path:
    """Write model.safetensors and config.json into folder (created if needed)."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().to(torch.float32).contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps({"config": model.config.to_dict(), "training": training or {}},
                                                 indent=1, ensure_ascii=False) + "\n")
    return folder


def read_config(folder: Union[str, pathlib.Path]) -> Tuple[OmniConfig, dict]:
    """Return (config, training info) of a checkpoint folder."""
    folder = pathlib.Path(folder).expanduser()
    config_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise CheckpointError(f"Omni checkpoint folder {folder} does not exist; train one with 'omni-agent train' "
                              f"or pass the folder that holds {WEIGHTS_FILE} and {CONFIG_FILE}")
    if not config_path.is_file():
        raise CheckpointError(f"{config_path} is missing; an Omni checkpoint needs {CONFIG_FILE} beside "
                              f"{WEIGHTS_FILE}; train a checkpoint with 'omni-agent train' or pass a complete folder")
    try:
        data = json.loads(config_path.read_text())
        config = OmniConfig.from_dict(data["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path} is not a valid Omni config: {error}") from error
    return config, data.get("training", {})


def load_checkpoint(folder: Union[str, pathlib.Path] = PACKAGED_CHECKPOINT, device: str = "cpu") -> OmniModel:
    """Build the model from config.json and load model.safetensors; errors name the file and the mismatch."""
    folder = pathlib.Path(folder).expanduser()
    config, training = read_config(folder)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path} is missing; the checkpoint folder has {CONFIG_FILE} but no weights")
    try:
        state = load_file(str(weights_path), device=device)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights_path} cannot be read as safetensors: {error}") from error
    model = OmniModel(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(name for name in set(expected) & set(state) if expected[name].shape != state[name].shape)
    if missing or unexpected or wrong_shape:
        details = []
        if missing:
            details.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            details.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if wrong_shape:
            name = wrong_shape[0]
            details.append(f"shape mismatch in {len(wrong_shape)} tensors, e.g. {name}: file "
                           f"{tuple(state[name].shape)} vs model {tuple(expected[name].shape)}")
        raise CheckpointError(f"{weights_path} does not match its {CONFIG_FILE}: " + "; ".join(details)
                              + ". Retrain, or use the config.json saved with these weights")
    model.load_state_dict(state)
    model.training_info = training
    return model.eval()
