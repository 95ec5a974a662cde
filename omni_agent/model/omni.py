"""The Omni model: adapters, shared encoder, Dynamic Attention Routing, fusion, heads.

Inputs are front-end feature tokens (see frontends.py), one entry per modality
that is present:

    features[modality] = (tokens, mask)
    tokens.shape = (batch_size, n_tokens, feature_dim of that front-end)
    mask.shape   = (batch_size, n_tokens), True for real tokens

A modality may be missing from the dict, or present for only some rows of the
batch (rows without it have an all-False mask). The routing and fusion weights
handle missing modalities: they are renormalised over the modalities present
in each row, so no zero padding reaches the result.

The flow (the design is described in docs/model.md):
1. ModalityAdapter: per-modality input projection into the shared width, then an
   adapter block whose weights are shared by all modalities plus a low-rank
   (LoRA) factor per modality ("full" variant: one block per modality).
2. SharedEncoder: one Transformer encoder, the same weights for every modality.
3. DynamicAttentionRouting: each modality's pooled vector queries the tokens of
   every present modality, with one softmax per modality group, mixed by
   routing coefficients from a gating network. The query/key interaction of a
   pair (query modality, key modality) is a shared matrix plus low-rank factors
   ("full" variant: one matrix per pair). The "concat" variant is plain
   attention with one softmax over all tokens.
4. ImportanceFusion: sigmoid scores of each modality's pooled features,
   normalised over the present modalities, weight the routed vectors
   ("uniform" variant: equal weights).
5. Heads: contrastive projections per modality (retrieval), the task head (five
   slots of labels.LabelSpace), grounding (which image region the spoken object
   is) and a region label head (what object a region shows).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

MODALITIES: Tuple[str, ...] = ("audio", "text", "image")
LANGUAGE_MODALITIES: Tuple[str, ...] = ("audio", "text")

Features = Dict[str, Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class OmniConfig:
    """Model dimensions and the variant switches used by the ablations."""

    modalities: Tuple[str, ...] = MODALITIES
    feature_dims: Dict[str, int] = field(default_factory=lambda: {"audio": 512, "text": 384, "image": 1280})
    frontends: Dict[str, str] = field(default_factory=lambda: {
        "audio": "whisper:base", "text": "minilm", "image": "efficientnet_lite0"})
    width: int = 128                  # shared width d
    heads: int = 4
    encoder_layers: int = 2
    ff_mult: int = 2
    dropout: float = 0.1
    max_positions: int = 512          # maximum tokens per modality
    lora_rank: int = 8
    adapter: str = "shared_lora"      # "shared_lora" | "full"
    routing: str = "dar"              # "dar" | "concat"
    fusion: str = "importance"        # "importance" | "uniform"
    projection_dim: int = 128         # contrastive space
    gradient_checkpointing: bool = False
    labels: Dict[str, List[str]] = field(default_factory=dict)   # LabelSpace.to_dict()

    def __post_init__(self):
        choices = {"adapter": ("shared_lora", "full"), "routing": ("dar", "concat"),
                   "fusion": ("importance", "uniform")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"invalid OmniConfig.{name}={getattr(self, name)!r}; use one of {allowed}")
        if self.width % self.heads:
            raise ValueError(f"invalid width {self.width}: it must be divisible by heads={self.heads}")
        missing = [m for m in self.modalities if m not in self.feature_dims]
        if missing:
            raise ValueError(f"feature_dims is missing modalities {missing}; add their front-end widths")
        self.modalities = tuple(self.modalities)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "OmniConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown OmniConfig fields {unknown}; the checkpoint is from a different version")
        return cls(**data)


class LowRankShared(nn.Module):
    """A linear map shared by several groups plus a rank-r correction per group.

    weight(g) = W + U_g V_g. With groups=1 and rank=0 it is a plain nn.Linear.
    """

    def __init__(self, dim_in: int, dim_out: int, groups: int, rank: int):
        super().__init__()
        self.shared = nn.Linear(dim_in, dim_out)
        self.rank = rank
        if rank > 0:
            self.down = nn.Parameter(torch.randn(groups, dim_in, rank) / math.sqrt(dim_in))
            self.up = nn.Parameter(torch.zeros(groups, rank, dim_out))   # starts as the shared map

    def forward(self, x: torch.Tensor, group: int) -> torch.Tensor:
        out = self.shared(x)
        if self.rank > 0:
            out = out + (x @ self.down[group]) @ self.up[group]
        return out


class PerGroupLinear(nn.Module):
    """One full linear map per group (the quadratic-growth baseline)."""

    def __init__(self, dim_in: int, dim_out: int, groups: int):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(dim_in, dim_out) for _ in range(groups))

    def forward(self, x: torch.Tensor, group: int) -> torch.Tensor:
        return self.maps[group](x)


def grouped_linear(config: OmniConfig, dim_in: int, dim_out: int, groups: int) -> nn.Module:
    if config.adapter == "shared_lora":
        return LowRankShared(dim_in, dim_out, groups, config.lora_rank)
    return PerGroupLinear(dim_in, dim_out, groups)


class ModalityAdapter(nn.Module):
    """Adapter that maps front-end tokens of every modality to tokens of the shared width.

    The input projection is per modality (front-end widths differ); the adapter
    block after it is shared with a low-rank factor per modality.
    """

    def __init__(self, config: OmniConfig):
        super().__init__()
        d = config.width
        self.index = {m: i for i, m in enumerate(config.modalities)}
        self.norm_in = nn.ModuleDict({m: nn.LayerNorm(config.feature_dims[m]) for m in config.modalities})
        self.project = nn.ModuleDict({m: nn.Linear(config.feature_dims[m], d) for m in config.modalities})
        self.block_in = grouped_linear(config, d, config.ff_mult * d, len(config.modalities))
        self.block_out = grouped_linear(config, config.ff_mult * d, d, len(config.modalities))
        self.norm_block = nn.LayerNorm(d)
        self.modality_embedding = nn.Parameter(torch.zeros(len(config.modalities), d))
        self.position = nn.Embedding(config.max_positions, d)
        self.box_embedding = nn.Linear(4, d)       # image regions: where the region is
        self.dropout = nn.Dropout(config.dropout)
        self.max_positions = config.max_positions

    def forward(self, modality: str, tokens: torch.Tensor, boxes: Optional[torch.Tensor] = None) -> torch.Tensor:
        """tokens.shape = (batch, n, feature_dim[modality]); boxes (image only) = (batch, n, 4) in [0, 1]."""
        n = tokens.shape[1]
        if n > self.max_positions:
            raise ValueError(f"{modality} has {n} tokens; the model takes at most {self.max_positions} "
                             f"(shorten the input or retrain with a larger max_positions)")
        group = self.index[modality]
        x = self.project[modality](self.norm_in[modality](tokens))
        x = x + self.block_out(F.gelu(self.block_in(self.norm_block(x), group)), group)
        if modality == "image" and boxes is not None:
            x = x + self.box_embedding(boxes)
        else:
            x = x + self.position(torch.arange(n, device=tokens.device))
        return self.dropout(x + self.modality_embedding[group])


class SharedEncoder(nn.Module):
    """Modality-agnostic Transformer encoder: the same weights for every modality."""

    def __init__(self, config: OmniConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(config.width, config.heads, config.ff_mult * config.width, config.dropout,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(config.encoder_layers))
        self.norm = nn.LayerNorm(config.width)
        self.gradient_checkpointing = config.gradient_checkpointing

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x.shape = (batch, n, d); mask = (batch, n), True for real tokens. Rows without tokens stay finite."""
        # A row with no real token would make every attention score -inf; let it see its first slot.
        safe_mask = mask.clone()
        safe_mask[~mask.any(dim=1), 0] = True
        padding = ~safe_mask
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = checkpoint(layer, x, None, padding, use_reentrant=False)
            else:
                x = layer(x, src_key_padding_mask=padding)
        return self.norm(x)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average x (batch, n, d) over the real tokens of mask (batch, n) -> (batch, d); rows without tokens give 0."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Compute a softmax over the entries where mask is True; it is exactly 0 elsewhere and in empty rows."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=dim) * mask.to(scores.dtype)
    return weights / weights.sum(dim=dim, keepdim=True).clamp(min=1e-12)


class DynamicAttentionRouting(nn.Module):
    """Cross-modal attention with one softmax per modality group, mixed by gated routing coefficients.

    For a query vector q of modality m:
        out = sum_k alpha_{m,k} * softmax(q K_k^T / sqrt(d)) V_k
    where K_k, V_k are the tokens of modality k projected by the (m, k) pair's
    maps, and alpha_m = masked softmax of a gating network over the modalities
    present in that row. With routing="concat" the groups share one softmax and
    there is no gate (plain attention over concatenated tokens).
    """

    def __init__(self, config: OmniConfig):
        super().__init__()
        m = len(config.modalities)
        d = config.width
        self.modalities = config.modalities
        self.heads = config.heads
        self.routing = config.routing
        self.query = grouped_linear(config, d, d, m)
        # The pair (query modality, key modality) interaction: group index = q * m + k.
        self.key = grouped_linear(config, d, d, m * m)
        self.value = grouped_linear(config, d, d, m * m)
        self.out = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.gate = nn.Sequential(nn.Linear(d + m, d), nn.GELU(), nn.Linear(d, m))
        self.last_routing: Optional[torch.Tensor] = None      # (batch, m_query, m_key), for inspection
        self.last_attention: Dict[str, torch.Tensor] = {}     # key modality -> (batch, m_query, heads, n)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)   # (b, heads, n, dh)

    def forward(self, pooled: torch.Tensor, encoded: Dict[str, Tuple[torch.Tensor, torch.Tensor]],
                present: torch.Tensor) -> torch.Tensor:
        """pooled (batch, m, d): one query per modality; encoded[k] = (tokens (b, n_k, d), mask (b, n_k));
        present (batch, m) bool. Returns the routed vectors (batch, m, d)."""
        b, m, d = pooled.shape
        q_norm = self.norm(pooled)
        outputs = []
        routing_rows = []
        maps: Dict[str, List[torch.Tensor]] = {}
        for qi in range(m):
            q = self._split(self.query(q_norm[:, qi:qi + 1], qi))                       # (b, h, 1, dh)
            group_outputs, group_scores, group_masks, group_values = [], [], [], []
            for ki, key_modality in enumerate(self.modalities):
                if key_modality not in encoded:
                    continue
                tokens, mask = encoded[key_modality]
                k = self._split(self.key(tokens, qi * m + ki))
                v = self._split(self.value(tokens, qi * m + ki))
                scores = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)         # (b, h, 1, n)
                token_mask = mask[:, None, None, :]
                if self.routing == "dar":
                    attention = masked_softmax(scores, token_mask)
                    maps.setdefault(key_modality, []).append(attention[:, :, 0].detach())    # (b, h, n)
                    group_outputs.append((ki, attention @ v))                           # (b, h, 1, dh)
                else:
                    group_scores.append(scores)
                    group_masks.append(token_mask.expand_as(scores))
                    group_values.append(v)
            if self.routing == "dar":
                gate_in = torch.cat([pooled[:, qi], present.to(pooled.dtype)], dim=-1)
                alpha = masked_softmax(self.gate(gate_in), present)                      # (b, m)
                routing_rows.append(alpha)
                mixed = torch.zeros_like(q)
                for ki, group_out in group_outputs:
                    mixed = mixed + alpha[:, ki, None, None, None] * group_out
            else:
                attention = masked_softmax(torch.cat(group_scores, -1), torch.cat(group_masks, -1))
                mixed = attention @ torch.cat(group_values, dim=2)
            outputs.append(mixed.transpose(1, 2).reshape(b, 1, d))
        if routing_rows:
            self.last_routing = torch.stack(routing_rows, dim=1).detach()
        self.last_attention = {key: torch.stack(per_query, dim=1) for key, per_query in maps.items()}
        return pooled + self.out(torch.cat(outputs, dim=1))


class ImportanceFusion(nn.Module):
    """Fusion that weights each modality's routed vector by a predicted importance (normalised over present ones)."""

    def __init__(self, config: OmniConfig):
        super().__init__()
        self.fusion = config.fusion
        d = config.width
        self.score = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Linear(d // 2, 1))
        self.last_weights: Optional[torch.Tensor] = None

    def forward(self, routed: torch.Tensor, pooled: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """routed, pooled (batch, m, d); present (batch, m) -> fused (batch, d)."""
        if self.fusion == "importance":
            importance = torch.sigmoid(self.score(pooled)).squeeze(-1) * present.to(pooled.dtype)
        else:
            importance = present.to(pooled.dtype)
        weights = importance / importance.sum(dim=1, keepdim=True).clamp(min=1e-6)
        self.last_weights = weights.detach()
        return (weights.unsqueeze(-1) * routed).sum(dim=1)


@dataclass
class OmniOutput:
    """Outputs of one forward pass (tensors on the model's device)."""

    logits: Dict[str, torch.Tensor]          # slot -> (batch, n_classes)
    embeddings: Dict[str, torch.Tensor]      # modality -> (batch, projection_dim), L2-normalised
    present: torch.Tensor                    # (batch, m) bool
    routing: Optional[torch.Tensor]          # (batch, m, m) DAR coefficients, rows sum to 1 over present modalities
    importance: torch.Tensor                 # (batch, m) fusion weights
    grounding: Optional[torch.Tensor] = None     # (batch, n_image_tokens) scores; token 0 (whole image) masked out
    region_logits: Optional[torch.Tensor] = None  # (batch, n_image_tokens, n_objects)


class OmniModel(nn.Module):
    """The whole trainable part of the Omni model (front-ends excluded)."""

    def __init__(self, config: OmniConfig):
        super().__init__()
        if not config.labels:
            raise ValueError("OmniConfig.labels is empty; build it with LabelSpace.to_dict()")
        self.config = config
        d = config.width
        self.adapter = ModalityAdapter(config)
        self.encoder = SharedEncoder(config)
        self.routing = DynamicAttentionRouting(config)
        self.fusion = ImportanceFusion(config)
        self.projection = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, config.projection_dim))
            for m in config.modalities})
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.task_trunk = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Dropout(config.dropout))
        self.task_heads = nn.ModuleDict({slot: nn.Linear(d, len(classes)) for slot, classes in config.labels.items()})
        self.ground_query = nn.Linear(d, d)
        self.ground_key = nn.Linear(d, d)
        self.region_head = nn.Linear(d, len(config.labels["object"]))

    @property
    def modality_index(self) -> Dict[str, int]:
        return {m: i for i, m in enumerate(self.config.modalities)}

    def forward(self, features: Features, image_boxes: Optional[torch.Tensor] = None) -> OmniOutput:
        """features[m] = (tokens (b, n_m, feature_dim_m), mask (b, n_m)); image_boxes (b, n_image, 4) in [0, 1]."""
        unknown = sorted(set(features) - set(self.config.modalities))
        if unknown:
            raise ValueError(f"modalities {unknown} are not in this model (it has {list(self.config.modalities)})")
        if not features:
            raise ValueError("no modality given; pass at least one of " + ", ".join(self.config.modalities))
        first = next(iter(features.values()))[0]
        b, device, dtype = first.shape[0], first.device, first.dtype
        m = len(self.config.modalities)
        pooled_rows = [torch.zeros(b, self.config.width, device=device, dtype=dtype) for _ in range(m)]
        present_rows = [torch.zeros(b, dtype=torch.bool, device=device) for _ in range(m)]
        encoded: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        embeddings: Dict[str, torch.Tensor] = {}
        for modality, (tokens, mask) in features.items():
            expected = self.config.feature_dims[modality]
            if tokens.dim() != 3 or tokens.shape[-1] != expected or mask.shape != tokens.shape[:2]:
                raise ValueError(f"{modality} tokens have shape {tuple(tokens.shape)} and mask {tuple(mask.shape)}; "
                                 f"expected (batch, n, {expected}) and (batch, n)")
            i = self.modality_index[modality]
            boxes = image_boxes if modality == "image" else None
            x = self.encoder(self.adapter(modality, tokens, boxes), mask)
            encoded[modality] = (x, mask)
            pooled_rows[i] = masked_mean(x, mask)
            present_rows[i] = mask.any(dim=1)
            embeddings[modality] = F.normalize(self.projection[modality](pooled_rows[i]), dim=-1)
        pooled = torch.stack(pooled_rows, dim=1)        # (b, m, d)
        present = torch.stack(present_rows, dim=1)      # (b, m)
        routed = self.routing(pooled, encoded, present)
        fused = self.fusion(routed, pooled, present)
        trunk = self.task_trunk(fused)
        logits = {slot: head(trunk) for slot, head in self.task_heads.items()}
        grounding = region_logits = None
        if "image" in encoded:
            image_tokens, image_mask = encoded["image"]
            language = [self.modality_index[l] for l in LANGUAGE_MODALITIES if l in encoded]
            if language:
                weights = present[:, language].to(dtype)
                query = (routed[:, language] * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True).clamp(min=1)
                scores = (self.ground_key(image_tokens) @ self.ground_query(query).unsqueeze(-1)).squeeze(-1)
                scores = scores / math.sqrt(self.config.width)
                region_mask = image_mask.clone()
                region_mask[:, 0] = False                      # token 0 is the whole image, not a region
                grounding = scores.masked_fill(~region_mask, torch.finfo(scores.dtype).min)
            region_logits = self.region_head(image_tokens)
        return OmniOutput(logits, embeddings, present, self.routing.last_routing, self.fusion.last_weights,
                          grounding, region_logits)

    def parameter_counts(self) -> Dict[str, int]:
        """Trainable parameters per part (for the adapter ablation)."""
        parts = {"adapter": self.adapter, "encoder": self.encoder, "routing": self.routing, "fusion": self.fusion,
                 "projection": self.projection, "heads": nn.ModuleList([self.task_trunk, self.task_heads,
                                                                        self.ground_query, self.ground_key,
                                                                        self.region_head])}
        counts = {name: sum(p.numel() for p in part.parameters()) for name, part in parts.items()}
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts


def pad_tokens(sequences: Sequence[Optional[torch.Tensor]], feature_dim: int,
               max_tokens: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length token arrays (n_i, feature_dim) into (batch, n_max, feature_dim) plus a mask.

    None marks a row without this modality (all-False mask row).
    """
    lengths = [0 if s is None else min(len(s), max_tokens or len(s)) for s in sequences]
    n = max(max(lengths), 1)
    tokens = torch.zeros(len(sequences), n, feature_dim)
    mask = torch.zeros(len(sequences), n, dtype=torch.bool)
    for row, (sequence, length) in enumerate(zip(sequences, lengths)):
        if sequence is not None and length:
            tokens[row, :length] = torch.as_tensor(sequence[:length], dtype=torch.float32)
            mask[row, :length] = True
    return tokens, mask
