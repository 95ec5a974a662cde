"""The design's claims, measured (`omni-agent ablate`).

Each variant is trained with several seeds and evaluated on the same
held-out data.

Variants (each differs from "omni" in one switch):
    omni         progressive 3-stage training, shared low-rank adapters, DAR, importance fusion
    end_to_end   all losses from the first step, same number of steps
    full_pairs   one full interaction block per modality pair instead of shared + low-rank
    concat       plain attention over concatenated tokens instead of DAR
    uniform      equal fusion weights instead of the importance predictor
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time
from dataclasses import replace
from typing import Dict, List

import numpy as np

from omni_agent.model.features import DEFAULT_DATA_DIR

VARIANTS: Dict[str, dict] = {
    "omni": {},
    "end_to_end": {"schedule": "end_to_end"},
    "full_pairs": {"adapter": "full"},
    "concat": {"routing": "concat"},
    "uniform": {"fusion": "uniform"},
}


def headline(report: Dict) -> Dict[str, float]:
    """Pick the numbers compared across variants from one evaluate() report."""
    understanding = report["understanding"]

    def mean_of(prefix):
        values = [v["exact_match"] for k, v in understanding.items() if k.startswith(prefix) and v.get("n")]
        return float(np.mean(values)) if values else float("nan")

    return {
        "exact_match heldout voices": mean_of("heldout_voice/"),
        "exact_match heldout phrasings": mean_of("heldout_phrasing/"),
        "audio->text R@1": report["retrieval_audio_text"]["audio->text R@1"],
        "text->audio R@1": report["retrieval_audio_text"]["text->audio R@1"],
        "image->text R@1 (sim regions)": report["retrieval_image_text"].get("image->text R@1", float("nan")),
        "image->text R@1 (unseen ImageNet classes)": report["retrieval_imagenet_heldout"]["image->text R@1"],
        "grounding accuracy": report["grounding"].get("accuracy", float("nan")),
        "parameters": report["parameters"]["total"],
        "routing+adapter parameters": report["parameters"]["routing"] + report["parameters"]["adapter"],
    }


def run(variants: List[str], seeds: List[int], stage_steps: List[int], data_dir: str, out_dir: pathlib.Path) -> Dict:
    from omni_agent.model.dataset import OmniData
    from omni_agent.model.evaluate import evaluate
    from omni_agent.model.train import TrainConfig, default_label_space, train

    data = OmniData(pathlib.Path(data_dir).expanduser() / "features", default_label_space())
    results: Dict[str, Dict] = {}
    for name in variants:
        runs = []
        for seed in seeds:
            config = replace(TrainConfig(data_dir=data_dir, out=str(out_dir / f"{name}-seed{seed}"), seed=seed,
                                         stage_steps=list(stage_steps), eval_every=10 ** 9), **VARIANTS[name])
            started = time.perf_counter()
            summary = train(config, data, quick_eval=False)
            report = evaluate(summary["model"], data)
            numbers = headline(report)
            numbers["train seconds"] = round(time.perf_counter() - started, 1)
            runs.append({"seed": seed, **numbers})
            print(json.dumps({"variant": name, **runs[-1]}), flush=True)
        keys = [k for k in runs[0] if k != "seed"]
        results[name] = {"runs": runs,
                         "mean": {k: float(np.mean([r[k] for r in runs])) for k in keys},
                         "std": {k: float(np.std([r[k] for r in runs])) for k in keys}}
    return results


def markdown(results: Dict) -> str:
    """Format one table: mean ± std over seeds for each variant."""
    keys = [k for k in next(iter(results.values()))["mean"] if k != "train seconds"] + ["train seconds"]
    lines = ["| variant | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, result in results.items():
        cells = []
        for key in keys:
            mean, std = result["mean"][key], result["std"][key]
            cells.append(f"{mean:.0f}" if "parameters" in key or "seconds" in key else f"{mean:.3f} ± {std:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="omni-agent ablate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--stage-steps", nargs=3, type=int, default=[200, 200, 350], metavar=("S1", "S2", "S3"))
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR))
    p.add_argument("--out", default="results/ablations", help="folder for the checkpoints and results.json")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = run(args.variants, args.seeds, args.stage_steps, args.data_dir, out)
    (out / "results.json").write_text(json.dumps({"seeds": args.seeds, "stage_steps": args.stage_steps,
                                                  "results": results}, indent=1) + "\n")
    table = markdown(results)
    (out / "results.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
