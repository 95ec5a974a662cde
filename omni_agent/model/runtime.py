"""Serving the Omni model: front-ends + trained checkpoint -> CommandResult, without ROS.

    runtime = OmniRuntime()                       # packaged checkpoint, packaged front-ends
    prediction = runtime.understand(audio=samples_16k)          # streaming path: audio features only
    prediction = runtime.understand(text="go to the kitchen", image=rgb)

Precision is chosen per modality. The text path runs INT8 (dynamic
quantisation of MiniLM's and the text adapter's linear layers). The audio path
is the int8 CTranslate2 Whisper encoder. The image path runs in float32, or in
bfloat16 where the CPU has fast bf16.
"""
from __future__ import annotations

import logging
import math
import pathlib
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from omni_agent.model.checkpoint import PACKAGED_CHECKPOINT, load_checkpoint
from omni_agent.model.labels import NONE, TaskLabel, motion_of
from omni_agent.model.omni import OmniModel, OmniOutput, pad_tokens
from omni_agent.model.result import (ACTION_BRING, ACTION_MOVE, ACTION_NAVIGATE, ACTION_PICK, ACTION_PLACE,
                                     ACTION_UNKNOWN, CommandResult, is_complete)

LOG = logging.getLogger("omni_agent.runtime")
# torch 2.13 marks torch.ao dynamic quantisation as deprecated and warns on every quantised call;
# the INT8 text path still runs through it.
warnings.filterwarnings("ignore", message=r".*quantize_per_(tensor|channel).*")
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")
SOURCE_NAME = "omni_model"
#: Slots whose probability counts towards the result's confidence, per action.
_USED_SLOTS = {
    ACTION_NAVIGATE: ("action", "place"), ACTION_MOVE: ("action", "direction", "amount"),
    ACTION_BRING: ("action", "object", "place"), ACTION_PICK: ("action", "object", "place"),
    ACTION_PLACE: ("action", "object", "place"),
}


@dataclass
class ModalityInput:
    """Front-end features of one request, keyed by modality."""

    features: Dict[str, "object"]          # modality -> FrontendOutput
    image_size: Optional[tuple] = None      # (width, height) of the camera frame

    @property
    def key(self) -> frozenset:
        """The combination of modalities present: requests batch together only with the same key."""
        return frozenset(self.features)


@dataclass
class OmniPrediction:
    """Prediction for one request: the result and the evidence it came from."""

    result: CommandResult
    label: TaskLabel
    slot_confidence: Dict[str, float]
    importance: Dict[str, float]                         # fusion weight per present modality
    routing: Dict[str, Dict[str, float]] = field(default_factory=dict)   # query modality -> key modality -> alpha
    grounding: Optional[dict] = None                     # {"box": [x0, y0, x1, y1] px, "probability": p}
    timings_ms: Dict[str, float] = field(default_factory=dict)


def romanize_for_text_encoder(text: str) -> str:
    """Chinese characters -> toneless pinyin syllables; other text unchanged.

    MiniLM's vocabulary lacks most CJK characters (they become [UNK]), but
    its word pieces cover pinyin syllables, so Mandarin reaches the text
    encoder as pinyin.
    """
    from omni_agent.model.vocabulary import has_cjk
    if not has_cjk(text):
        return text
    from pypinyin import Style, lazy_pinyin
    return " ".join(lazy_pinyin(text, style=Style.NORMAL, errors="default"))


class OmniRuntime:
    """Front-ends and the trained model for inference (thread-safe: one forward pass at a time)."""

    def __init__(self, checkpoint: Union[str, pathlib.Path, None] = None, vocabulary=None,
                 text_int8: bool = True, image_dtype: str = "float32", load_image: bool = True,
                 load_text: bool = True, cpu_threads: int = 2):
        from omni_agent.model.frontends import create_frontend
        from omni_agent.model.vocabulary import load_vocabulary

        started = time.perf_counter()
        torch.set_num_threads(cpu_threads)
        self.checkpoint = pathlib.Path(checkpoint or PACKAGED_CHECKPOINT).expanduser()
        self.model: OmniModel = load_checkpoint(self.checkpoint)
        self.vocabulary = vocabulary or load_vocabulary()
        config = self.model.config
        self.text_int8 = text_int8
        if text_int8:
            # INT8 on the text path: MiniLM's linear layers (in the front-end) and the text adapter's.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantized = torch.ao.quantization.quantize_dynamic(
                    torch.nn.Sequential(self.model.adapter.project["text"]), {torch.nn.Linear}, dtype=torch.qint8)
            self.model.adapter.project["text"] = quantized[0]
        audio_name, _, audio_model = config.frontends.get("audio", "whisper:base").partition(":")
        audio_options = {"model": audio_model or "base", "cpu_threads": cpu_threads}
        audio_options.update(self.model.training_info.get("data", {}).get("frontend_options", {}).get("audio", {}))
        self.frontends = {"audio": create_frontend("audio", audio_name, **audio_options)}
        if load_text:
            self.frontends["text"] = create_frontend("text", config.frontends.get("text"), int8=text_int8)
        if load_image:
            self.frontends["image"] = create_frontend("image", config.frontends.get("image"), dtype=image_dtype)
        for modality, frontend in self.frontends.items():
            if frontend.feature_dim != config.feature_dims[modality]:
                raise ValueError(f"the {modality} front-end gives {frontend.feature_dim}-wide features but the "
                                 f"checkpoint {self.checkpoint} expects {config.feature_dims[modality]}; use the "
                                 f"front-end it was trained with ({config.frontends.get(modality)})")
        self._lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started
        LOG.info("Omni model %s loaded in %.1f s (%d parameters; front-ends %s)", self.checkpoint,
                 self.load_seconds, self.model.parameter_counts()["total"], ", ".join(self.frontends))

    # Features -------------------------------------------------------------------
    def encode(self, audio: Optional[np.ndarray] = None, text: Optional[str] = None,
               image: Optional[np.ndarray] = None, image_boxes: Optional[np.ndarray] = None) -> ModalityInput:
        """Run the front-ends on what is given; at least one input is needed."""
        if audio is None and not text and image is None:
            raise ValueError("nothing to understand: pass audio samples, a text or an image")
        features, size = {}, None
        if audio is not None:
            features["audio"] = self.frontends["audio"].encode(np.asarray(audio, dtype=np.float32))
        if text:
            features["text"] = self._frontend("text").encode(romanize_for_text_encoder(text))
        if image is not None:
            features["image"] = self._frontend("image").encode(image, boxes=image_boxes)
            size = (image.shape[1], image.shape[0])
        return ModalityInput(features, size)

    def _frontend(self, modality: str):
        if modality not in self.frontends:
            raise ValueError(f"this runtime was created without the {modality} front-end "
                             f"(load_{modality}=False); create it with load_{modality}=True")
        return self.frontends[modality]

    # Model ----------------------------------------------------------------------
    def predict_batch(self, inputs: Sequence[ModalityInput], utterance_ids: Sequence[str] = ()) -> List[OmniPrediction]:
        """Run one forward pass for requests with the same modality combination."""
        if not inputs:
            return []
        keys = {item.key for item in inputs}
        if len(keys) != 1:
            raise ValueError(f"a batch must have one modality combination, got {sorted(map(sorted, keys))}")
        config = self.model.config
        started = time.perf_counter()
        features, image_boxes = {}, None
        for modality in inputs[0].key:
            tokens, mask = pad_tokens([item.features[modality].tokens for item in inputs], config.feature_dims[modality])
            features[modality] = (tokens, mask)
            if modality == "image":
                image_boxes = torch.zeros(len(inputs), tokens.shape[1], 4)
                for row, item in enumerate(inputs):
                    width, height = item.image_size
                    boxes = item.features["image"].boxes / np.array([width, height, width, height], np.float32)
                    image_boxes[row, :len(boxes)] = torch.as_tensor(np.clip(boxes, 0, 1))
        with self._lock, torch.inference_mode():
            output = self.model(features, image_boxes)
        model_ms = (time.perf_counter() - started) * 1000
        ids = list(utterance_ids) or [""] * len(inputs)
        return [self._prediction(output, row, item, ids[row], model_ms) for row, item in enumerate(inputs)]

    def _prediction(self, output: OmniOutput, row: int, item: ModalityInput, utterance_id: str,
                    model_ms: float) -> OmniPrediction:
        config = self.model.config
        chosen, confidence = {}, {}
        for slot, classes in config.labels.items():
            probabilities = torch.softmax(output.logits[slot][row].float(), -1)
            index = int(probabilities.argmax())
            chosen[slot], confidence[slot] = classes[index], float(probabilities[index])
        label = TaskLabel(**{slot: value for slot, value in chosen.items() if slot in TaskLabel.__dataclass_fields__})
        present = {m: bool(output.present[row, i]) for i, m in enumerate(config.modalities)}
        importance = {m: round(float(output.importance[row, i]), 3)
                      for i, m in enumerate(config.modalities) if present[m]}
        routing = {}
        if output.routing is not None:
            for qi, query in enumerate(config.modalities):
                if present[query]:
                    routing[query] = {k: round(float(output.routing[row, qi, ki]), 3)
                                      for ki, k in enumerate(config.modalities) if present[k]}
        grounding = None
        if output.grounding is not None and item.image_size is not None and label.object != NONE:
            scores = output.grounding[row].float()
            n = len(item.features["image"].boxes)
            probabilities = torch.softmax(scores[:n], -1)
            region = int(probabilities.argmax())
            grounding = {"box": [round(float(v), 1) for v in item.features["image"].boxes[region]],
                         "probability": round(float(probabilities[region]), 3), "region": region}
        result = self.to_result(label, confidence, utterance_id)
        result.language = chosen.get("language", "")
        if grounding is not None and result.object_label:
            result.object_box = tuple(grounding["box"])
        parts = [f"{slot} {chosen[slot]} {confidence[slot]:.2f}" for slot in _USED_SLOTS.get(label.action, ("action",))]
        result.detail = "; ".join([", ".join(parts), "fusion " + " ".join(f"{m}={w:.2f}" for m, w in importance.items())]
                                  + ([f"object at {grounding['box']}"] if grounding else []))
        return OmniPrediction(result, label, confidence, importance, routing, grounding, {"model": round(model_ms, 2)})

    def to_result(self, label: TaskLabel, confidence: Dict[str, float], utterance_id: str = "") -> CommandResult:
        """Convert task slots into the CommandResult the planner takes."""
        return result_from_slots(label, confidence, utterance_id)

    def understand(self, audio: Optional[np.ndarray] = None, text: Optional[str] = None,
                   image: Optional[np.ndarray] = None, image_boxes: Optional[np.ndarray] = None,
                   utterance_id: str = "") -> OmniPrediction:
        """Run the front-ends and the model for one request."""
        started = time.perf_counter()
        item = self.encode(audio, text, image, image_boxes)
        frontend_ms = (time.perf_counter() - started) * 1000
        prediction = self.predict_batch([item], [utterance_id])[0]
        prediction.timings_ms["frontends"] = round(frontend_ms, 2)
        if text:
            from omni_agent.model.vocabulary import has_cjk
            prediction.result.language = "zh" if has_cjk(text) else "en"
            prediction.result.transcript = text
        return prediction

    def describe(self, image: Optional[np.ndarray] = None, threshold: float = 0.5,
                 features: Optional[ModalityInput] = None) -> str:
        """Return a short description of a camera view: the vocabulary objects the region head finds.

        Pass the image, or its front-end features (image_frontend_node) as a ModalityInput.
        """
        item = features if features is not None else self.encode(image=image)
        with self._lock, torch.inference_mode():
            tokens, mask = pad_tokens([item.features["image"].tokens], self.model.config.feature_dims["image"])
            width, height = item.image_size
            boxes = torch.as_tensor(item.features["image"].boxes / np.array([width, height, width, height],
                                                                            np.float32))[None]
            output = self.model({"image": (tokens, mask)}, boxes)
        probabilities = torch.softmax(output.region_logits[0, 1:].float(), -1)
        objects = self.model.config.labels["object"]
        seen = {}
        for region in probabilities:
            index = int(region.argmax())
            if objects[index] != NONE and float(region[index]) >= threshold:
                seen[objects[index]] = max(seen.get(objects[index], 0.0), float(region[index]))
        if not seen:
            return "I do not see any object I know."
        names = sorted(seen, key=seen.get, reverse=True)
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        return f"I see {listed}."


def result_from_slots(label: TaskLabel, confidence: Dict[str, float], utterance_id: str = "") -> CommandResult:
    """Convert task slots into the CommandResult the planner takes.

    The confidence is the product of the probabilities of the slots the
    action uses (action and place for navigate, direction and amount for a move).
    """
    action = label.action
    result = CommandResult(action=action, source=SOURCE_NAME, utterance_id=utterance_id, language="")
    if action in (ACTION_BRING, ACTION_PICK, ACTION_PLACE) and label.object != NONE:
        result.object_label = label.object
    if action in (ACTION_NAVIGATE, ACTION_BRING, ACTION_PICK, ACTION_PLACE) and label.place != NONE:
        result.place = label.place
    if action == ACTION_MOVE:
        result.forward_m, result.left_m, result.turn_rad = motion_of(label.direction, label.amount)
        if label.direction == NONE:
            result.action = ACTION_UNKNOWN     # a move without a direction is not executable
    result.confidence = float(math.prod(confidence[s] for s in _USED_SLOTS.get(action, ("action",))))
    return result
