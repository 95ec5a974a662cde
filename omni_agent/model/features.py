"""Front-end features of the training and evaluation data, computed once and cached.

The front-ends are frozen, so training reads their outputs from disk instead of
running Whisper, MiniLM and EfficientNet at every step. A cache is a folder of
TokenStore files (all token rows of one kind in one float16 array plus
offsets) and a meta.json that records which data and front-ends made it.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

DEFAULT_DATA_DIR = pathlib.Path.home() / ".cache" / "omni_agent" / "omni_data"


@dataclass
class TokenStore:
    """Variable-length token arrays stored as one (total_rows, dim) array and row offsets."""

    tokens: np.ndarray      # float16 (total_rows, dim)
    offsets: np.ndarray     # int64 (n_items + 1,)
    boxes: Optional[np.ndarray] = None   # float32 (total_rows, 4), image stores only

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index]:self.offsets[index + 1]]

    def boxes_of(self, index: int) -> np.ndarray:
        return self.boxes[self.offsets[index]:self.offsets[index + 1]]

    @classmethod
    def build(cls, arrays: Sequence[np.ndarray], boxes: Optional[Sequence[np.ndarray]] = None) -> "TokenStore":
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(a) for a in arrays])
        tokens = np.concatenate([np.asarray(a, dtype=np.float16) for a in arrays]) if arrays else np.zeros((0, 1), np.float16)
        stacked_boxes = np.concatenate([np.asarray(b, dtype=np.float32) for b in boxes]) if boxes else None
        return cls(tokens, offsets, stacked_boxes)

    def save(self, path: pathlib.Path) -> None:
        arrays = {"tokens": self.tokens, "offsets": self.offsets}
        if self.boxes is not None:
            arrays["boxes"] = self.boxes
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: pathlib.Path) -> "TokenStore":
        with np.load(path) as data:
            return cls(data["tokens"], data["offsets"], data["boxes"] if "boxes" in data else None)


def write_meta(folder: pathlib.Path, meta: dict) -> None:
    (folder / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


def read_meta(folder: pathlib.Path) -> Dict:
    path = folder / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; build the feature cache with 'omni-agent train --prepare-only'")
    return json.loads(path.read_text())


def normalised_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale pixel boxes (n, 4) to [0, 1] of the image size."""
    scale = np.array([width, height, width, height], dtype=np.float32)
    return np.clip(np.asarray(boxes, dtype=np.float32) / scale, 0.0, 1.0)


def write_jsonl(path: pathlib.Path, rows: List[dict]) -> None:
    with open(path, "w") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: pathlib.Path) -> List[dict]:
    with open(path) as source:
        return [json.loads(line) for line in source if line.strip()]
