"""Training of the Omni model: three progressive stages, or end to end for the ablation.

    omni-agent train                      # prepare data if needed, train, save the checkpoint
    torchrun --nproc-per-node 2 -m omni_agent.model.train --out /tmp/omni   # the same, with DDP

Stages (progressive, the default):
1. unimodal: front-ends stay frozen (pretrained); adapters, the shared encoder
   and the heads are warmed on one modality at a time (audio -> task,
   text -> task, image regions -> object);
2. alignment: InfoNCE between a clip and its text, and between an object
   region and a text naming the object;
3. joint: spoken instructions with random extra modalities (text, a camera
   view) -> task slots and grounding, with a smaller share of the stage 1 and
   2 losses so they are not forgotten.
"end_to_end" trains all stage 3 losses plus alignment from the first step for
the same number of steps.

DDP: under torchrun (WORLD_SIZE > 1) the same loop runs in every process with
gloo on CPU or NCCL on GPUs; each rank draws different batches.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import pathlib
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from omni_agent.model.checkpoint import PACKAGED_CHECKPOINT, save_checkpoint
from omni_agent.model.dataset import LANGUAGES, Batch, OmniData
from omni_agent.model.features import DEFAULT_DATA_DIR
from omni_agent.model.labels import LabelSpace
from omni_agent.model.omni import OmniConfig, OmniModel, OmniOutput

LOG = logging.getLogger("omni_agent.train")


@dataclass
class TrainConfig:
    """Options of `omni-agent train`; every field is also a command-line option."""

    data_dir: str = str(DEFAULT_DATA_DIR)
    out: str = str(PACKAGED_CHECKPOINT)
    schedule: str = "progressive"          # "progressive" | "end_to_end"
    stage_steps: List[int] = field(default_factory=lambda: [400, 400, 900])
    batch_size: int = 48
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    bf16: bool = False                    # autocast to bfloat16 (CPU or GPU)
    gradient_checkpointing: bool = False
    threads: int = 2
    eval_every: int = 100
    adapter: str = "shared_lora"
    routing: str = "dar"
    fusion: str = "importance"
    width: int = 128
    lora_rank: int = 8
    max_clips: int = 6000                 # size of the generated speech set (prepare step)
    scenes: int = 240                     # simulator views (prepare step)

    def __post_init__(self):
        if self.schedule not in ("progressive", "end_to_end"):
            raise ValueError(f"invalid schedule {self.schedule!r}; use 'progressive' or 'end_to_end'")
        if len(self.stage_steps) != 3 or min(self.stage_steps) < 0:
            raise ValueError(f"invalid stage_steps {self.stage_steps}; pass three step counts of 0 or more")


def info_nce(a: torch.Tensor, b: torch.Tensor, group_a: torch.Tensor, group_b: torch.Tensor,
             logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised a (n, p) and b (n, p); same group id = positive pair."""
    logits = logit_scale.exp().clamp(max=100) * a @ b.t()
    positives = (group_a[:, None] == group_b[None, :]).to(logits.dtype)
    loss_ab = -(F.log_softmax(logits, dim=1) * positives / positives.sum(1, keepdim=True)).sum(1).mean()
    loss_ba = -(F.log_softmax(logits.t(), dim=1) * positives.t() / positives.t().sum(1, keepdim=True)).sum(1).mean()
    return (loss_ab + loss_ba) / 2


def task_loss(output: OmniOutput, batch: Batch) -> torch.Tensor:
    return sum(F.cross_entropy(output.logits[slot].float(), target) for slot, target in batch.task.items())


def grounding_loss(output: OmniOutput, batch: Batch) -> Optional[torch.Tensor]:
    if output.grounding is None or batch.grounding is None:
        return None
    rows = batch.grounding.any(dim=1)
    if not rows.any():
        return None
    scores = output.grounding[rows].float()
    positives = batch.grounding[rows]
    # Any region showing the named object is right: -log of the probability mass on them.
    return -(torch.logsumexp(scores.masked_fill(~positives, -1e4), 1) - torch.logsumexp(scores, 1)).mean()


def region_loss(output: OmniOutput, batch: Batch) -> Optional[torch.Tensor]:
    if output.region_logits is None or batch.regions is None or not (batch.regions >= 0).any():
        return None
    logits = output.region_logits.float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.regions.reshape(-1), ignore_index=-1)


class StepLoss(torch.nn.Module):
    """Loss module that computes every loss component of one step in one forward call.

    DDP then gets one forward and one backward per step.
    """

    def __init__(self, model: OmniModel, bf16: bool):
        super().__init__()
        self.model = model
        self.bf16 = bf16

    def _run(self, batch: Batch) -> OmniOutput:
        device = next(self.model.parameters()).device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self.model(batch.features, batch.image_boxes)

    def forward(self, batches: Dict[str, Batch], weights: Dict[str, float]) -> Dict[str, torch.Tensor]:
        losses: Dict[str, Optional[torch.Tensor]] = {}
        for name, batch in batches.items():
            output = self._run(batch)
            if name in ("audio_task", "text_task"):
                losses[name] = task_loss(output, batch)
            elif name == "image_region":
                losses[name] = region_loss(output, batch)
            elif name.startswith("align_"):
                a, b = name[len("align_"):].split("_")
                a = "image" if a == "proto" else a
                losses[name] = info_nce(output.embeddings[a], output.embeddings[b], batch.groups[a],
                                        batch.groups[b], self.model.logit_scale)
            elif name == "joint":
                losses[name] = task_loss(output, batch)
                losses["grounding"] = grounding_loss(output, batch)
        weights = dict(weights, grounding=weights.get("joint", 0.0))
        return {name: weights[name] * value for name, value in losses.items() if value is not None}


class Trainer:
    """Training run state of one process (one of several under DDP)."""

    def __init__(self, config: TrainConfig, data: OmniData, model_config: OmniConfig):
        self.config = config
        self.data = data
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        self.device = torch.device(f"cuda:{self.rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu")
        torch.manual_seed(config.seed)                 # same initial weights on every rank
        self.model = OmniModel(model_config).to(self.device)
        self.net = StepLoss(self.model, config.bf16)
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)            # each batch kind uses a different part of the model
        self.rng = random.Random(config.seed * 1000 + self.rank)   # different batches per rank
        self.curves: Dict[str, List] = {"step": [], "stage": []}
        self.step = 0

    # Batches --------------------------------------------------------------------
    def _sample(self, population: List, k: Optional[int] = None):
        return self.rng.choices(population, k=k or self.config.batch_size)

    def _to_device(self, batch: Batch) -> Batch:
        batch.features = {m: (t.to(self.device), mask.to(self.device)) for m, (t, mask) in batch.features.items()}
        if batch.image_boxes is not None:
            batch.image_boxes = batch.image_boxes.to(self.device)
        batch.task = {k: v.to(self.device) for k, v in batch.task.items()}
        batch.groups = {k: v.to(self.device) for k, v in batch.groups.items()}
        if batch.grounding is not None:
            batch.grounding = batch.grounding.to(self.device)
        if batch.regions is not None:
            batch.regions = batch.regions.to(self.device)
        return batch

    def batches(self, components: Dict[str, float]) -> Dict[str, Batch]:
        """Draw one batch per loss component of this step."""
        data, out = self.data, {}
        for name in components:
            if name in ("audio_task", "text_task"):
                modality = name.split("_")[0]
                population = data.clips["train"] if modality == "audio" else data.texts["train"]
                out[name] = data.language_task(modality, self._sample(population))
            elif name == "image_region":
                out[name] = data.image_region(self._sample(data.images["train"], 16))
            elif name == "align_audio_text":
                out[name] = data.align_audio_text(self._sample(data.clips["train"]))
            elif name == "align_image_text":
                out[name] = data.align_image_text(self._sample(data.object_regions["train"]), self.rng)
            elif name == "align_proto_text":
                out[name] = data.align_proto_text(self._sample(data.protos["train"]))
            elif name == "joint":
                out[name] = data.joint(self._sample(data.clips["train"]), self.rng)
            else:
                raise ValueError(f"unknown loss component {name!r}")
        return {name: self._to_device(batch) for name, batch in out.items()}

    # Stages ---------------------------------------------------------------------
    def plan(self) -> List[Dict]:
        s1, s2, s3 = self.config.stage_steps
        stage1 = {"audio_task": 1.0, "text_task": 1.0, "image_region": 1.0}
        stage2 = {"align_audio_text": 1.0, "align_image_text": 1.0, "align_proto_text": 1.0}
        stage3 = {"joint": 1.0, "align_audio_text": 0.3, "align_image_text": 0.3, "align_proto_text": 0.3,
                  "image_region": 0.3, "text_task": 0.3}
        if self.config.schedule == "end_to_end":
            everything = {"joint": 1.0, "align_audio_text": 1.0, "align_image_text": 1.0, "align_proto_text": 1.0,
                          "image_region": 1.0, "text_task": 1.0, "audio_task": 1.0}
            return [{"name": "end_to_end", "steps": s1 + s2 + s3, "components": everything}]
        return [{"name": "1-unimodal", "steps": s1, "components": stage1},
                {"name": "2-alignment", "steps": s2, "components": stage2},
                {"name": "3-joint", "steps": s3, "components": stage3}]

    def run(self, evaluate=None) -> Dict:
        """Train every stage; evaluate(model) -> dict of metrics is called every eval_every steps on rank 0."""
        timings = {}
        for stage in self.plan():
            if stage["steps"] == 0:
                continue
            started = time.perf_counter()
            optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.config.lr,
                                          weight_decay=self.config.weight_decay)
            warmup = min(50, stage["steps"] // 5 + 1)
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
                0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / stage["steps"])))))
            bar = tqdm(range(stage["steps"]), desc=f"stage {stage['name']}", disable=self.rank != 0, unit="step")
            for _ in bar:
                self.net.train()
                losses = self.net(self.batches(stage["components"]), stage["components"])
                total = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                self.step += 1
                bar.set_postfix(loss=f"{total.item():.3f}")
                if self.rank == 0 and (self.step % self.config.eval_every == 0 or _ == stage["steps"] - 1):
                    self._record(stage["name"], losses, evaluate)
            timings[stage["name"]] = round(time.perf_counter() - started, 1)
        return timings

    def _record(self, stage: str, losses: Dict[str, torch.Tensor], evaluate) -> None:
        self.curves["step"].append(self.step)
        self.curves["stage"].append(stage)
        values = {f"loss/{k}": float(v.detach()) for k, v in losses.items()}
        if evaluate is not None:
            self.model.eval()
            values.update({f"val/{k}": v for k, v in evaluate(self.model).items()})
        for key, value in values.items():
            series = self.curves.setdefault(key, [])
            series.extend([None] * (len(self.curves["step"]) - 1 - len(series)))    # None: not in that stage
            series.append(value)


def plot_curves(curves: Dict[str, List], path: pathlib.Path) -> None:
    """Plot the loss and validation curves against the step into path (two panels)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = curves["step"]
    losses = [k for k in curves if k.startswith("loss/")]
    metrics = [k for k in curves if k.startswith("val/")]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    def padded(key):
        values = curves[key] + [None] * (len(steps) - len(curves[key]))
        return [math.nan if value is None else value for value in values]

    for key in losses:
        values = padded(key)
        axes[0].plot(steps, values, label=key[5:])
    axes[0].set_yscale("log")
    axes[0].set_title("training losses (weighted)")
    for key in metrics:
        values = padded(key)
        axes[1].plot(steps, values, label=key[4:])
    axes[1].set_ylim(0, 1)
    axes[1].set_title("validation (held-out voices)")
    for axis in axes:
        axis.set_xlabel("step")
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def model_config_for(config: TrainConfig, data: OmniData) -> OmniConfig:
    return OmniConfig(feature_dims=data.feature_dims, width=config.width, lora_rank=config.lora_rank,
                      adapter=config.adapter, routing=config.routing, fusion=config.fusion,
                      gradient_checkpointing=config.gradient_checkpointing,
                      labels={**data.labels.to_dict(), "language": list(LANGUAGES)},
                      frontends=data.meta.get("frontends", OmniConfig().frontends))


def default_label_space() -> LabelSpace:
    from omni_agent.model.vocabulary import load_vocabulary
    vocabulary = load_vocabulary()
    return LabelSpace.from_vocabulary(list(vocabulary.objects), vocabulary.place_names())


def train(config: TrainConfig, data: Optional[OmniData] = None, quick_eval: bool = True) -> Dict:
    """Run one training and return its summary; prepares the data first when its feature folder is missing."""
    from omni_agent.model.evaluate import quick_metrics

    torch.set_num_threads(config.threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    if data is None:
        features_dir = pathlib.Path(config.data_dir).expanduser() / "features"
        if not (features_dir / "meta.json").is_file():
            from omni_agent.model.prepare import prepare_data
            if dist.is_initialized() and dist.get_rank() != 0:
                dist.barrier()                     # rank 0 prepares; the others wait for it
            else:
                prepare_data(pathlib.Path(config.data_dir), config.seed, config.max_clips, config.scenes)
                if dist.is_initialized():
                    dist.barrier()
        data = OmniData(features_dir, default_label_space())
    trainer = Trainer(config, data, model_config_for(config, data))
    started = time.perf_counter()
    timings = trainer.run((lambda model: quick_metrics(model, data)) if quick_eval else None)
    in_sync = None
    if trainer.world > 1:
        # DDP keeps replicas identical; check it with one checksum per rank.
        checksum = torch.stack([p.detach().double().sum() for p in trainer.model.parameters()]).sum().reshape(1)
        gathered = [torch.zeros_like(checksum) for _ in range(trainer.world)]
        dist.all_gather(gathered, checksum)
        in_sync = all(torch.equal(g, gathered[0]) for g in gathered)
    summary = {"train": asdict(config), "stage_seconds": timings, "ranks_in_sync": in_sync,
               "seconds": round(time.perf_counter() - started, 1), "world_size": trainer.world,
               "parameters": trainer.model.parameter_counts(), "data": data.meta,
               "torch": torch.__version__}
    if trainer.rank == 0 and config.out:
        out = pathlib.Path(config.out).expanduser()
        save_checkpoint(trainer.model, out, summary)
        (out / "curves.json").write_text(json.dumps(trainer.curves) + "\n")
        if len(trainer.curves["step"]) > 0:
            plot_curves(trainer.curves, out / "curves.png")
        LOG.info("saved %s (%.0f s of training)", out, summary["seconds"])
    summary["model"] = trainer.model
    return summary


def parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="omni-agent train", description="Train the Omni model (see docs/model.md).")
    p.add_argument("--data-dir", default=defaults.data_dir, help="generated data and feature cache")
    p.add_argument("--out", default=defaults.out, help="checkpoint folder to write")
    p.add_argument("--schedule", choices=("progressive", "end_to_end"), default=defaults.schedule)
    p.add_argument("--stage-steps", type=int, nargs=3, default=defaults.stage_steps, metavar=("S1", "S2", "S3"))
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--threads", type=int, default=defaults.threads, help="torch CPU threads per process")
    p.add_argument("--eval-every", type=int, default=defaults.eval_every)
    p.add_argument("--adapter", choices=("shared_lora", "full"), default=defaults.adapter)
    p.add_argument("--routing", choices=("dar", "concat"), default=defaults.routing)
    p.add_argument("--fusion", choices=("importance", "uniform"), default=defaults.fusion)
    p.add_argument("--width", type=int, default=defaults.width)
    p.add_argument("--lora-rank", type=int, default=defaults.lora_rank)
    p.add_argument("--max-clips", type=int, default=defaults.max_clips)
    p.add_argument("--scenes", type=int, default=defaults.scenes)
    p.add_argument("--prepare-only", action="store_true", help="build the data and feature cache, then stop")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f for f in TrainConfig.__dataclass_fields__}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = config_from_args(args)
    if args.prepare_only:
        from omni_agent.model.prepare import prepare_data
        print(prepare_data(pathlib.Path(config.data_dir), config.seed, config.max_clips, config.scenes))
        return 0
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = 0
    if distributed:
        if os.environ.get("MASTER_ADDR", "") in ("127.0.0.1", "localhost", "::1"):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")     # one machine: keep gloo on loopback
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = dist.get_rank()
    try:
        summary = train(config)
    finally:
        if distributed:
            dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "model"}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
