"""Evaluation of an Omni checkpoint on the cached held-out data (`omni-agent eval`).

Metrics:
- command exact match (action + object + place) and motion match (direction +
  amount) per split (held-out voices, held-out phrasings, real recordings) and
  language, from audio alone, as the model node serves it;
- retrieval R@1 / R@5 audio <-> text and image region <-> object text;
- grounding accuracy: the region the model picks for "bring me the X" shows X;
- DAR attention share on the named object's region, and fusion weights;
- the streaming threshold: for each confidence threshold, the share of
  utterances whose audio-only result would go out before the transcript, and
  how often those early results are right (`early_result_report`).
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from omni_agent.model.dataset import GROUNDED_ACTIONS, Batch, OmniData
from omni_agent.model.labels import TaskLabel, motion_of
from omni_agent.model.omni import OmniModel, OmniOutput
from omni_agent.model.result import DEFAULT_MIN_CONFIDENCE, sure_from_audio
from omni_agent.model.runtime import OmniRuntime, result_from_slots

BATCH = 64


def _forward(model: OmniModel, batch: Batch) -> OmniOutput:
    with torch.inference_mode():
        return model(batch.features, batch.image_boxes)


def predicted_labels(model: OmniModel, output: OmniOutput) -> List[TaskLabel]:
    slots = {slot: classes for slot, classes in model.config.labels.items() if slot in TaskLabel.__dataclass_fields__}
    indices = {slot: output.logits[slot].argmax(-1).tolist() for slot in slots}
    return [TaskLabel(**{slot: slots[slot][indices[slot][row]] for slot in slots})
            for row in range(len(indices["action"]))]


def command_match(predicted: TaskLabel, target: TaskLabel) -> bool:
    """Exact match on action, object and place."""
    return (predicted.action, predicted.object, predicted.place) == (target.action, target.object, target.place)


def motion_match(predicted: TaskLabel, target: TaskLabel) -> bool:
    """Same relative motion, counting an unsaid amount as the default one."""
    return np.allclose(motion_of(predicted.direction, predicted.amount), motion_of(target.direction, target.amount),
                       atol=1e-3)


def understanding_scores(pairs: Sequence[tuple]) -> Dict[str, float]:
    """pairs: (predicted TaskLabel, target TaskLabel) -> exact match rates."""
    if not pairs:
        return {"n": 0}
    command = np.mean([command_match(p, t) for p, t in pairs])
    full = np.mean([command_match(p, t) and motion_match(p, t) for p, t in pairs])
    moves = [(p, t) for p, t in pairs if t.action == "move"]
    return {"n": len(pairs), "exact_match": float(command), "exact_match_with_motion": float(full),
            "motion_match_on_moves": float(np.mean([motion_match(p, t) for p, t in moves])) if moves else None}


def understand_clips(model: OmniModel, data: OmniData, clips: Sequence[int]) -> List[TaskLabel]:
    labels = []
    for start in range(0, len(clips), BATCH):
        batch = data.language_task("audio", clips[start:start + BATCH])
        labels += predicted_labels(model, _forward(model, batch))
    return labels


def understanding_report(model: OmniModel, data: OmniData) -> Dict[str, Dict]:
    report = {}
    for split in ("heldout_voice", "heldout_phrasing", "real"):
        clips = data.clips[split]
        rows = [data.audio_rows[clip] for clip in clips]
        report.update(_scores_by_language(split, rows, understand_clips(model, data, clips)))
    texts = data.texts["heldout"]
    predicted = []
    for start in range(0, len(texts), BATCH):
        predicted += predicted_labels(model, _forward(model, data.language_task("text", texts[start:start + BATCH])))
    rows = [data.text_rows[index] for index in texts]
    report.update(_scores_by_language("text_heldout_phrasing", rows, predicted))
    return report


def _scores_by_language(prefix: str, rows: Sequence[dict], predicted: Sequence[TaskLabel]) -> Dict[str, Dict]:
    """Score predictions against the rows' labels, one entry "<prefix>/<language>" per language."""
    by_language = defaultdict(list)
    for row, label in zip(rows, predicted):
        by_language[row["language"]].append((label, TaskLabel(**row["label"])))
    return {f"{prefix}/{language}": understanding_scores(pairs) for language, pairs in sorted(by_language.items())}


EARLY_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def early_result_report(model: OmniModel, data: OmniData, clips: Sequence[int],
                        thresholds: Sequence[float] = EARLY_THRESHOLDS) -> Dict[str, Dict]:
    """Score the model node's early result (audio alone, before the transcript) per threshold.

    The node sends the audio-only result at once when it is complete and its
    confidence reaches omni_min_confidence; otherwise it waits for the
    transcript. For each threshold this gives the share of clips sent early
    ("coverage") and the exact match with motion of those ("precision").
    """
    model.eval()
    slots = {slot: classes for slot, classes in model.config.labels.items() if slot in TaskLabel.__dataclass_fields__}
    rows = []
    for start in range(0, len(clips), BATCH):
        chunk = clips[start:start + BATCH]
        output = _forward(model, data.language_task("audio", chunk))
        probabilities = {slot: torch.softmax(output.logits[slot].float(), -1) for slot in slots}
        for row, clip in enumerate(chunk):
            chosen = {slot: int(probabilities[slot][row].argmax()) for slot in slots}
            label = TaskLabel(**{slot: slots[slot][chosen[slot]] for slot in slots})
            confidence = {slot: float(probabilities[slot][row, chosen[slot]]) for slot in slots}
            result = result_from_slots(label, confidence)
            target = TaskLabel(**data.audio_rows[clip]["label"])
            rows.append((result, command_match(label, target) and motion_match(label, target)))
    report = {}
    for threshold in thresholds:
        early = [right for result, right in rows if sure_from_audio(result, threshold)]
        report[f"{threshold:.2f}"] = {"n": len(rows), "coverage": len(early) / max(len(rows), 1),
                                      "precision": float(np.mean(early)) if early else None}
    return report


def recall_at(similarity: np.ndarray, relevant: np.ndarray, ks=(1, 5)) -> Dict[str, float]:
    """similarity (n_queries, n_gallery); relevant (n_queries, n_gallery) bool -> R@k (any relevant in top k)."""
    order = np.argsort(-similarity, axis=1)
    hits = np.take_along_axis(relevant, order, axis=1)
    return {f"R@{k}": float(hits[:, :k].any(axis=1).mean()) for k in ks}


def _embeddings(model: OmniModel, batches) -> Dict[str, np.ndarray]:
    collected = defaultdict(list)
    for batch in batches:
        output = _forward(model, batch)
        for modality, embedding in output.embeddings.items():
            collected[modality].append(embedding.float().numpy())
    return {m: np.concatenate(v) for m, v in collected.items()}


def audio_text_retrieval(model: OmniModel, data: OmniData, clips: Sequence[int]) -> Dict[str, float]:
    """Score retrieval between clips and the unique texts spoken in them, both ways."""
    texts = sorted({data.text_index[data.audio_rows[c]["text"]] for c in clips})
    audio = _embeddings(model, (data.language_task("audio", clips[s:s + BATCH]) for s in range(0, len(clips), BATCH)))
    text = _embeddings(model, (data.language_task("text", texts[s:s + BATCH]) for s in range(0, len(texts), BATCH)))
    clip_text = np.array([data.text_index[data.audio_rows[c]["text"]] for c in clips])
    relevant = clip_text[:, None] == np.array(texts)[None, :]
    similarity = audio["audio"] @ text["text"].T
    result = {f"audio->text {k}": v for k, v in recall_at(similarity, relevant).items()}
    result.update({f"text->audio {k}": v for k, v in recall_at(similarity.T, relevant.T).items()})
    result["n_clips"], result["n_texts"] = len(clips), len(texts)
    return result


def image_text_retrieval(model: OmniModel, data: OmniData, split: str = "test") -> Dict[str, float]:
    """Object regions vs the names of the objects ("the apple"): image -> text and text -> image."""
    regions = data.object_regions[split]
    if not regions:
        return {"n_regions": 0}
    names = sorted({label for _, _, label in regions})
    prompts = []
    for name in names:
        english = [i for i in data.object_prompts[name] if data.text_rows[i]["language"] == "en"]
        prompts.append(english[min(1, len(english) - 1)])     # "the <name>"
    rng = random.Random(0)
    image = _embeddings(model, (data.align_image_text(regions[s:s + BATCH], rng)
                                for s in range(0, len(regions), BATCH)))["image"]
    text = _embeddings(model, [data.language_task("text", prompts)])["text"]
    relevant = np.array([[label == name for name in names] for _, _, label in regions])
    similarity = image @ text.T
    result = {f"image->text {k}": v for k, v in recall_at(similarity, relevant).items()}
    result.update({f"text->image {k}": v for k, v in recall_at(similarity.T, relevant.T).items()})
    result["n_regions"], result["n_names"] = len(regions), len(names)
    result["chance image->text R@1"] = 1.0 / len(names)
    return result


def prototype_retrieval(model: OmniModel, data: OmniData) -> Dict[str, float]:
    """Held-out ImageNet classes (never trained on): prototype -> class name and name -> prototype."""
    classes = data.protos["test"]
    embeddings = _embeddings(model, (data.align_proto_text(classes[s:s + BATCH]) for s in range(0, len(classes), BATCH)))
    similarity = embeddings["image"] @ embeddings["text"].T
    relevant = np.eye(len(classes), dtype=bool)
    result = {f"image->text {k}": v for k, v in recall_at(similarity, relevant).items()}
    result.update({f"text->image {k}": v for k, v in recall_at(similarity.T, relevant.T).items()})
    result["n_classes"], result["chance R@1"] = len(classes), 1.0 / len(classes)
    return result


def grounding_report(model: OmniModel, data: OmniData, clips: Sequence[int], split: str = "test",
                     seed: int = 0) -> Dict[str, float]:
    """Held-out spoken 'bring/pick/put the X' + a test view showing X: is the chosen region X?"""
    rng = random.Random(seed)
    usable = [c for c in clips if data.audio_rows[c]["label"]["action"] in GROUNDED_ACTIONS
              and data.images_with[split].get(data.audio_rows[c]["label"]["object"])]
    if not usable:
        return {"n": 0}
    correct, attention_share, uniform_share, chance = [], [], [], []
    for start in range(0, len(usable), BATCH):
        chunk = usable[start:start + BATCH]
        images = [rng.choice(data.images_with[split][data.audio_rows[c]["label"]["object"]]) for c in chunk]
        image_features, boxes = data._image(images)
        batch = Batch({"audio": data._audio(chunk), "image": image_features}, image_boxes=boxes)
        output = _forward(model, batch)
        picked = output.grounding.argmax(-1).tolist()
        attention = model.routing.last_attention.get("image")          # (b, m_query, heads, n)
        audio_query = model.modality_index["audio"]
        for row, (clip, image) in enumerate(zip(chunk, images)):
            regions = data.image_rows[image]["regions"]
            target = data.audio_rows[clip]["label"]["object"]
            correct.append(regions[picked[row]] == target)
            chance.append(sum(r == target for r in regions[1:]) / max(1, len(regions) - 1))
            if attention is not None:
                weights = attention[row, audio_query].mean(0)[:len(regions)].numpy()
                on_target = sum(w for w, r in zip(weights, regions) if r == target)
                attention_share.append(float(on_target))
                uniform_share.append(sum(r == target for r in regions) / len(regions))
    result = {"n": len(correct), "accuracy": float(np.mean(correct)), "chance": float(np.mean(chance))}
    if attention_share:
        result["dar_attention_on_object"] = float(np.mean(attention_share))
        result["uniform_attention_on_object"] = float(np.mean(uniform_share))
    return result


def fusion_report(model: OmniModel, data: OmniData, clips: Sequence[int], seed: int = 0) -> Dict[str, Dict]:
    """Mean fusion weights and DAR routing of the audio query, for audio + a camera view, per action."""
    rng = random.Random(seed)
    by_action = defaultdict(lambda: defaultdict(list))
    images = data.images["test"] or data.images["train"]
    for start in range(0, len(clips), BATCH):
        chunk = clips[start:start + BATCH]
        image_features, boxes = data._image([rng.choice(images) for _ in chunk])
        output = _forward(model, Batch({"audio": data._audio(chunk), "image": image_features}, image_boxes=boxes))
        for row, clip in enumerate(chunk):
            action = data.audio_rows[clip]["label"]["action"]
            for i, modality in enumerate(model.config.modalities):
                if output.present[row, i]:
                    by_action[action][f"importance/{modality}"].append(float(output.importance[row, i]))
                    if output.routing is not None:
                        audio = model.modality_index["audio"]
                        by_action[action][f"audio_routes_to/{modality}"].append(float(output.routing[row, audio, i]))
    return {action: {k: round(float(np.mean(v)), 3) for k, v in values.items()}
            for action, values in sorted(by_action.items())}


def quick_metrics(model: OmniModel, data: OmniData, limit: int = 256) -> Dict[str, float]:
    """Cheap metrics for the training curves: held-out-voice exact match and audio -> text R@1."""
    clips = data.clips["heldout_voice"][:limit] or data.clips["train"][:limit]
    predicted = understand_clips(model, data, clips)
    match = np.mean([command_match(p, TaskLabel(**data.audio_rows[c]["label"])) for c, p in zip(clips, predicted)])
    retrieval = audio_text_retrieval(model, data, clips)
    model.train()
    return {"exact_match": float(match), "audio->text R@1": retrieval["audio->text R@1"]}


def evaluate(model: OmniModel, data: OmniData) -> Dict:
    """Compute every metric of the report for one model."""
    model.eval()
    heldout = data.clips["heldout_voice"] + data.clips["heldout_phrasing"]
    return {
        "understanding": understanding_report(model, data),
        "retrieval_audio_text": audio_text_retrieval(model, data, heldout),
        "retrieval_image_text": image_text_retrieval(model, data),
        "retrieval_imagenet_heldout": prototype_retrieval(model, data),
        "grounding": grounding_report(model, data, heldout),
        "fusion": fusion_report(model, data, heldout[:512]),
        "early_result": {split: early_result_report(model, data, data.clips[split])
                         for split in ("heldout_voice", "heldout_phrasing", "real")},
        "parameters": model.parameter_counts(),
    }


def transcribe_clips(data: OmniData, clips: Sequence[int], english_model: str = "tiny.en",
                     mandarin_model: str = "base") -> Dict[int, object]:
    """Whisper transcriptions of the clips, as the model node makes them: {clip: Transcription}.

    English clips use english_model (the model node's default), Mandarin
    clips mandarin_model with language "zh".
    """
    from omni_agent.audio.asr import WhisperTranscriber
    from omni_agent.model.speech_data import read_wav

    transcribers, transcriptions = {}, {}
    for clip in clips:
        language = data.audio_rows[clip]["language"]
        if language not in transcribers:
            transcribers[language] = WhisperTranscriber(english_model if language == "en" else mandarin_model,
                                                        language)
        transcriptions[clip] = transcribers[language].transcribe(read_wav(data.audio_rows[clip]["wav"]))
    return transcriptions


def parser_baseline(data: OmniData, clips: Sequence[int], transcriptions: Dict[int, object]) -> Dict[str, Dict]:
    """Score the transcribe-then-parse path (Whisper, then the command parser) on the same clips."""
    from omni_agent.model.command_parser import CommandParser
    from omni_agent.model.labels import label_from_result
    from omni_agent.model.vocabulary import load_vocabulary

    parser = CommandParser(load_vocabulary())
    by_key = defaultdict(list)
    for clip in clips:
        row, transcription = data.audio_rows[clip], transcriptions[clip]
        predicted = TaskLabel()
        if transcription.accepted:
            predicted = label_from_result(parser.parse(transcription.text, row["language"]))
        by_key[f"{data.clip_split[clip]}/{row['language']}"].append((predicted, TaskLabel(**row["label"])))
    report = {key: understanding_scores(pairs) for key, pairs in sorted(by_key.items())}
    seconds = [transcriptions[clip].processing_time_s for clip in clips]
    report["transcribe_seconds_median"] = float(np.median(seconds)) if seconds else None
    return report


def node_decision_report(runtime, data: OmniData, clips: Sequence[int], transcriptions: Dict[int, object],
                         min_confidence: float, planner_min_confidence: float = 0.25) -> Dict[str, Dict]:
    """Score the model node's whole Omni decision rule on the clips (the parser baseline's sample).

    As in omni_model_node: the audio-only result counts when it is complete
    and at least min_confidence sure. Otherwise the node waits for the
    transcript: one that Whisper rejects makes no command, and an accepted
    one is added as the text modality and the model decides again. A final
    result below planner_min_confidence counts as no command, as
    planner_node rejects it. runtime is an OmniRuntime.
    """
    from omni_agent.model.speech_data import read_wav

    by_key, early = defaultdict(list), defaultdict(int)
    for clip in clips:
        row, transcription = data.audio_rows[clip], transcriptions[clip]
        key = f"{data.clip_split[clip]}/{row['language']}"
        item = runtime.encode(audio=read_wav(row["wav"]))
        prediction = runtime.predict_batch([item])[0]
        if sure_from_audio(prediction.result, min_confidence):
            early[key] += 1
            predicted = prediction.label
        else:
            predicted = TaskLabel()
            if transcription.accepted:
                item.features["text"] = runtime.encode(text=transcription.text).features["text"]
                prediction = runtime.predict_batch([item])[0]
                if prediction.result.confidence >= planner_min_confidence:
                    predicted = prediction.label
        by_key[key].append((predicted, TaskLabel(**row["label"])))
    report = {"min_confidence": min_confidence, "text_int8": runtime.text_int8}
    for key, pairs in sorted(by_key.items()):
        report[key] = understanding_scores(pairs)
        report[key]["decided_from_audio_alone"] = early[key] / len(pairs)
    return report


def sample_clips(data: OmniData, per_group: int, seed: int = 0) -> List[int]:
    """Up to per_group clips of every (split, language) group, for the slower parser baseline."""
    rng = random.Random(seed)
    chosen = []
    for split in ("heldout_voice", "heldout_phrasing", "real"):
        for language in ("en", "zh"):
            group = [c for c in data.clips[split] if data.audio_rows[c]["language"] == language]
            chosen += group if len(group) <= per_group else sorted(rng.sample(group, per_group))
    return chosen


def main(argv=None) -> int:
    import argparse
    import json
    import pathlib

    from omni_agent.model.checkpoint import PACKAGED_CHECKPOINT, load_checkpoint
    from omni_agent.model.features import DEFAULT_DATA_DIR
    from omni_agent.model.train import default_label_space

    p = argparse.ArgumentParser(prog="omni-agent eval", description="Evaluate an Omni checkpoint (docs/model.md).")
    p.add_argument("--checkpoint", default=str(PACKAGED_CHECKPOINT))
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="prepared data (omni-agent train --prepare-only)")
    p.add_argument("--parser-baseline", type=int, default=0, metavar="N",
                   help="also score Whisper + command parser on up to N clips per split and language")
    p.add_argument("--quantisation", type=int, default=0, metavar="N",
                   help="also compare INT8 vs float32 text on N held-out instructions and bf16 vs float32 images")
    p.add_argument("--min-confidence", type=float, nargs="+", default=[0.6, 0.8, DEFAULT_MIN_CONFIDENCE, 0.9],
                   metavar="P",
                   help="omni_min_confidence values of the node's decision rule to score with --parser-baseline")
    p.add_argument("--out", help="write the report as JSON here")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = OmniData(pathlib.Path(args.data_dir).expanduser() / "features", default_label_space())
    model = load_checkpoint(args.checkpoint)
    report = {"checkpoint": args.checkpoint, "omni": evaluate(model, data)}
    if args.parser_baseline:
        clips = sample_clips(data, args.parser_baseline)
        report["omni_on_parser_sample"] = understanding_on(model, data, clips)
        transcriptions = transcribe_clips(data, clips)
        report["parser_baseline"] = parser_baseline(data, clips, transcriptions)
        report["node_decision"] = {}
        for text_int8 in (True, False):
            runtime = OmniRuntime(args.checkpoint, text_int8=text_int8, load_image=False)
            for threshold in args.min_confidence:
                name = f"min_confidence {threshold:.2f}, text {'int8' if text_int8 else 'float32'}"
                report["node_decision"][name] = node_decision_report(runtime, data, clips, transcriptions, threshold)
    if args.quantisation:
        report["quantisation"] = quantisation_report(args.checkpoint, args.quantisation)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def understanding_on(model: OmniModel, data: OmniData, clips: Sequence[int]) -> Dict[str, Dict]:
    """Omni exact match on a given clip list, grouped like parser_baseline."""
    by_key = defaultdict(list)
    for clip, label in zip(clips, understand_clips(model, data, clips)):
        row = data.audio_rows[clip]
        by_key[f"{data.clip_split[clip]}/{row['language']}"].append((label, TaskLabel(**row["label"])))
    return {key: understanding_scores(pairs) for key, pairs in sorted(by_key.items())}



def quantisation_report(checkpoint, count: int = 200, scenes: int = 40) -> Dict[str, Dict]:
    """Per-modality precision, measured: INT8 vs float32 text path, bfloat16 vs float32 image path.

    Text: held-out typed instructions through OmniRuntime with and without
    INT8 (exact match and agreement, median front-end + model time). Image:
    'bring me the X' with a fresh simulator view showing X (grounding
    accuracy, median image encode time).
    """
    import time

    from omni_agent.model.image_data import render_sim_scenes
    from omni_agent.model.instructions import generate_instructions
    from omni_agent.model.runtime import OmniRuntime

    rng = random.Random(0)
    heldout = [i for i in generate_instructions(seed=0) if i.split == "heldout"]
    texts = rng.sample(heldout, min(count, len(heldout)))
    report: Dict[str, Dict] = {}
    labels = {}
    for name, int8 in (("text_float32", False), ("text_int8", True)):
        runtime = OmniRuntime(checkpoint, text_int8=int8, load_image=False)
        times, correct, predicted = [], [], []
        for instruction in texts:
            started = time.perf_counter()
            label = runtime.understand(text=instruction.text).label
            times.append(time.perf_counter() - started)
            predicted.append(label)
            correct.append(command_match(label, instruction.label) and motion_match(label, instruction.label))
        labels[name] = predicted
        report[name] = {"n": len(texts), "exact_match_with_motion": float(np.mean(correct)),
                        "median_ms": round(1000 * float(np.median(times)), 2)}
    report["text_int8"]["agreement_with_float32"] = float(np.mean(
        [a == b for a, b in zip(labels["text_float32"], labels["text_int8"])]))

    views = [v for v in render_sim_scenes(scenes, seed=7) if v.objects]
    for precision in ("float32", "bfloat16"):
        runtime = OmniRuntime(checkpoint, image_dtype=precision, load_text=True)
        correct, times = [], []
        for view in views:
            label, box = view.objects[0]
            if label not in runtime.model.config.labels["object"]:
                continue
            started = time.perf_counter()
            item = runtime.encode(image=view.rgb, image_boxes=np.stack([b for _, b in view.objects]))
            times.append(time.perf_counter() - started)
            item.features.update(runtime.encode(text=f"bring me the {label}").features)
            prediction = runtime.predict_batch([item])[0]
            region = prediction.grounding["region"] if prediction.grounding else 0
            correct.append(region >= 1 and view.objects[region - 1][0] == label)
        report[f"image_{precision}"] = {"n": len(correct), "grounding_accuracy": float(np.mean(correct)),
                                        "median_encode_ms": round(1000 * float(np.median(times)), 2)}
    return report


if __name__ == "__main__":
    raise SystemExit(main())
