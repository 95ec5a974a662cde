"""The cached features as training and evaluation batches.

OmniData loads a feature folder (prepare.py) and builds batches of these kinds:
- "audio_task" / "text_task": one language modality -> the five task slots;
- "image_region": image regions -> the object each region shows;
- "align_audio_text": a clip and its text, for contrastive alignment;
- "align_image_text": one object region and a text naming the object;
- "joint": random subsets of audio, text and a camera view showing the named
  object -> task slots and the grounding target (which region is the object).
"""
from __future__ import annotations

import pathlib
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from omni_agent.model.features import TokenStore, read_jsonl, read_meta
from omni_agent.model.labels import NONE, LabelSpace, TaskLabel
from omni_agent.model.omni import pad_tokens

GROUNDED_ACTIONS = ("bring", "pick", "place")
MAX_AUDIO_TOKENS = 256
MAX_TEXT_TOKENS = 48
#: Classes of the spoken-language head (the result's language field).
LANGUAGES = ("en", "zh")


@dataclass
class Batch:
    """Model inputs and the targets of one batch."""

    features: Dict[str, tuple]
    image_boxes: Optional[torch.Tensor] = None
    task: Dict[str, torch.Tensor] = field(default_factory=dict)        # slot -> (batch,) class index
    groups: Dict[str, torch.Tensor] = field(default_factory=dict)      # modality -> (batch,) pairing ids for InfoNCE
    grounding: Optional[torch.Tensor] = None                           # (batch, n_image_tokens) bool: correct regions
    regions: Optional[torch.Tensor] = None                             # (batch, n_image_tokens) object index, -1 = ignore
    rows: List[dict] = field(default_factory=list)


class OmniData:
    """Features and metadata of one prepared data folder."""

    def __init__(self, features_dir: pathlib.Path, label_space: LabelSpace):
        features_dir = pathlib.Path(features_dir).expanduser()
        self.meta = read_meta(features_dir)
        self.labels = label_space
        self.audio = TokenStore.load(features_dir / "audio.npz")
        self.audio_rows = read_jsonl(features_dir / "audio.jsonl")
        self.text = TokenStore.load(features_dir / "text.npz")
        self.text_rows = read_jsonl(features_dir / "text.jsonl")
        self.image = TokenStore.load(features_dir / "image.npz")
        self.image_rows = read_jsonl(features_dir / "image.jsonl")
        self.proto = TokenStore.load(features_dir / "proto.npz")
        self.proto_text = TokenStore.load(features_dir / "proto_text.npz")
        self.proto_rows = read_jsonl(features_dir / "proto.jsonl")
        self.protos = {split: [i for i, row in enumerate(self.proto_rows) if row["split"] == split]
                       for split in ("train", "test")}
        self.feature_dims = {"audio": self.audio.tokens.shape[1], "text": self.text.tokens.shape[1],
                             "image": self.image.tokens.shape[1]}
        self.text_index = {}
        for i, row in enumerate(self.text_rows):
            if row["kind"] == "instruction":
                self.text_index.setdefault(row["text"], i)
        self.object_prompts: Dict[str, List[int]] = {}
        for i, row in enumerate(self.text_rows):
            if row["kind"] == "object_name" and row["object"] in label_space.objects:
                self.object_prompts.setdefault(row["object"], []).append(i)

        def clip_split(row):
            if row["source"] == "real":
                return "real"
            if row["phrasing_split"] == "heldout":
                return "heldout_phrasing"
            return "heldout_voice" if row["voice_split"] == "heldout" else "train"

        self.clip_split = [clip_split(row) for row in self.audio_rows]
        self.clips = {split: [i for i, s in enumerate(self.clip_split) if s == split]
                      for split in ("train", "heldout_voice", "heldout_phrasing", "real")}
        self.texts = {split: [i for i, row in enumerate(self.text_rows)
                              if row["kind"] == "instruction" and row["split"] == split]
                      for split in ("train", "heldout")}
        self.images = {split: [i for i, row in enumerate(self.image_rows) if row["split"] == split]
                       for split in ("train", "test")}
        # Regions with an object: (image index, token index, object label)
        self.object_regions = {split: [(i, t, label) for i in self.images[split]
                                       for t, label in enumerate(self.image_rows[i]["regions"])
                                       if label != NONE and label in label_space.objects]
                               for split in self.images}
        self.images_with = {split: {} for split in self.images}
        for split, regions in self.object_regions.items():
            for i, _, label in regions:
                if i not in self.images_with[split].setdefault(label, []):
                    self.images_with[split][label].append(i)

    # Helpers ------------------------------------------------------------------
    def task_targets(self, labels: Sequence[dict], languages: Sequence[str] = ()) -> Dict[str, torch.Tensor]:
        encoded = [self.labels.encode(TaskLabel(**label)) for label in labels]
        targets = {slot: torch.tensor([e[slot] for e in encoded]) for slot in self.labels.slots}
        if languages:
            targets["language"] = torch.tensor([LANGUAGES.index(language) for language in languages])
        return targets

    def _audio(self, clips: Sequence[Optional[int]]):
        return pad_tokens([None if c is None else self.audio[c] for c in clips], self.feature_dims["audio"],
                          MAX_AUDIO_TOKENS)

    def _text(self, texts: Sequence[Optional[int]]):
        return pad_tokens([None if t is None else self.text[t] for t in texts], self.feature_dims["text"],
                          MAX_TEXT_TOKENS)

    def _image(self, images: Sequence[Optional[int]]):
        tokens, mask = pad_tokens([None if i is None else self.image[i] for i in images], self.feature_dims["image"])
        boxes = torch.zeros(len(images), tokens.shape[1], 4)
        for row, i in enumerate(images):
            if i is not None:
                b = self.image.boxes_of(i)
                boxes[row, :len(b)] = torch.as_tensor(b)
        return (tokens, mask), boxes

    # Batches ------------------------------------------------------------------
    def language_task(self, modality: str, indices: Sequence[int]) -> Batch:
        """Audio clips or instruction texts alone -> task targets."""
        if modality == "audio":
            rows = [self.audio_rows[i] for i in indices]
            features = {"audio": self._audio(indices)}
        else:
            rows = [self.text_rows[i] for i in indices]
            features = {"text": self._text(indices)}
        labelled = all("label" in r for r in rows)
        targets = self.task_targets([r["label"] for r in rows], [r["language"] for r in rows]) if labelled else {}
        return Batch(features, task=targets, rows=rows)

    def image_region(self, images: Sequence[int]) -> Batch:
        image, boxes = self._image(images)
        regions = torch.full(image[1].shape, -1, dtype=torch.long)
        for row, i in enumerate(images):
            for t, label in enumerate(self.image_rows[i]["regions"]):
                if t > 0 and label in self.labels.objects:
                    regions[row, t] = self.labels.objects.index(label)
        return Batch({"image": image}, image_boxes=boxes, regions=regions,
                     rows=[self.image_rows[i] for i in images])

    def align_audio_text(self, clips: Sequence[int]) -> Batch:
        texts = [self.text_index[self.audio_rows[c]["text"]] for c in clips]
        group = torch.tensor(texts)
        return Batch({"audio": self._audio(clips), "text": self._text(texts)}, groups={"audio": group, "text": group},
                     rows=[self.audio_rows[c] for c in clips])

    def align_image_text(self, regions: Sequence[tuple], rng: random.Random) -> Batch:
        """regions: (image index, token index, label). Each region becomes a one-token image input."""
        tokens = torch.stack([torch.as_tensor(self.image[i][t], dtype=torch.float32) for i, t, _ in regions])[:, None]
        boxes = torch.stack([torch.as_tensor(self.image.boxes_of(i)[t]) for i, t, _ in regions])[:, None]
        texts = [rng.choice(self.object_prompts[label]) for _, _, label in regions]
        group = torch.tensor([self.labels.objects.index(label) for _, _, label in regions])
        return Batch({"image": (tokens, torch.ones(len(regions), 1, dtype=torch.bool)), "text": self._text(texts)},
                     image_boxes=boxes, groups={"image": group, "text": group})

    def align_proto_text(self, classes: Sequence[int]) -> Batch:
        """ImageNet class prototypes (one-token images covering the whole view) and the class names."""
        tokens = torch.stack([torch.as_tensor(self.proto[c], dtype=torch.float32) for c in classes])
        boxes = torch.tensor([[[0.0, 0.0, 1.0, 1.0]]]).expand(len(classes), 1, 4)
        text = pad_tokens([self.proto_text[c] for c in classes], self.feature_dims["text"], MAX_TEXT_TOKENS)
        group = torch.tensor(list(classes))
        return Batch({"image": (tokens, torch.ones(len(classes), 1, dtype=torch.bool)), "text": text},
                     image_boxes=boxes, groups={"image": group, "text": group})

    def joint(self, clips: Sequence[int], rng: random.Random, split: str = "train",
              p_text: float = 0.3, p_image: float = 0.6, p_audio_only_text: float = 0.15) -> Batch:
        """Spoken instructions with random extra modalities; grounded when the image shows the named object."""
        rows = [self.audio_rows[c] for c in clips]
        audio_ids, text_ids, image_ids = [], [], []
        for clip, row in zip(clips, rows):
            use_text_only = rng.random() < p_audio_only_text
            audio_ids.append(None if use_text_only else clip)
            text_ids.append(self.text_index[row["text"]] if use_text_only or rng.random() < p_text else None)
            label = row["label"]["object"]
            candidates = self.images_with[split].get(label, [])
            if candidates and rng.random() < p_image:
                image_ids.append(rng.choice(candidates))
            elif rng.random() < p_image / 3 and self.images[split]:
                image_ids.append(rng.choice(self.images[split]))     # a view that may not show the object
            else:
                image_ids.append(None)
        features = {}
        if any(a is not None for a in audio_ids):
            features["audio"] = self._audio(audio_ids)
        if any(t is not None for t in text_ids):
            features["text"] = self._text(text_ids)
        boxes = grounding = None
        if any(i is not None for i in image_ids):
            features["image"], boxes = self._image(image_ids)
            grounding = torch.zeros(features["image"][1].shape, dtype=torch.bool)
            for row_index, (i, row) in enumerate(zip(image_ids, rows)):
                if i is not None and row["label"]["action"] in GROUNDED_ACTIONS:
                    for t, label in enumerate(self.image_rows[i]["regions"]):
                        grounding[row_index, t] = t > 0 and label == row["label"]["object"]
        return Batch(features, image_boxes=boxes,
                     task=self.task_targets([r["label"] for r in rows], [r["language"] for r in rows]),
                     grounding=grounding, rows=rows)
