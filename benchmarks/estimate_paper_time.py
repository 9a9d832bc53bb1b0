"""Estimate the GPU time of the paper profile from its floating-point work.

For every notebook of a profile, the script reads the profile's parameter file, counts
the forward FLOPs of one example through each model with ``torch.utils.flop_counter``
(on the meta device: nothing is allocated), and multiplies by the work the settings ask
for:

- training: ``n_minima * epochs * n_train`` examples, 3 forward passes' worth each
  (forward and backward);
- paths: every pair of minima, every interior point of every NEB round, ``n_steps``
  steps per round, each a value and gradient over the path examples (3 forward
  passes' worth), plus the dense re-evaluation after each round (forward only).

The time at a sustained throughput is work / throughput. Elementwise operations,
data movement and Python overhead are not counted, so the result is a lower bound at
that throughput; the sustained throughput itself is the assumption to state. E1 (2-D
functions and a small network) is left out: it takes under a minute on a CPU.

Usage::

    python benchmarks/estimate_paper_time.py                  # paper profile
    python benchmarks/estimate_paper_time.py --tflops 20 60   # other throughputs
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

import toscore
from toscore.comparison import cnn_configs, complete_config

PROFILES = Path(__file__).resolve().parents[1] / "notebooks" / "profiles"


def forward_flops(config: dict) -> float:
    """Count the forward FLOPs of one example (matrix products and convolutions only)."""
    shape = tuple(config["input_shape"]) if "input_shape" in config else (config["input_dim"],)
    with torch.device("meta"):
        model = toscore.build_model(config).eval()
        example = torch.empty(1, *shape)
    with FlopCounterMode(display=False) as counter:
        model(example)
    return float(counter.get_total_flops())


def training_flops(flops: float, n_minima: int, epochs: int, n_train: int) -> float:
    return 3.0 * flops * n_minima * epochs * n_train


def path_flops(flops: float, n_minima: int, n_examples: int, settings: dict) -> float:
    """Count the FLOPs of NEB on every pair (``pair_selection="all"``), dense re-evaluation too."""
    pairs = n_minima * (n_minima - 1) / 2
    n_points, n_insertions = settings["n_points"], settings["n_insertions"]
    total = 0.0
    for round_index in range(n_insertions + 1):
        interior = n_points - 2 + round_index
        segments = interior + 1
        total += 3.0 * interior * settings["n_steps"]  # value and gradient per NEB step
        total += segments * settings["dense"]  # dense re-evaluation, forward only
    return pairs * total * n_examples * flops


def _n_train(dataset: str, n_train: int) -> int:
    full = toscore.datasets.dataset_info(dataset)["n_train"]
    return min(n_train, full) if n_train else full


def _shape(dataset: str, layout: str) -> tuple[tuple[int, ...], int]:
    info = toscore.datasets.dataset_info(dataset, layout=layout)
    return info["input_shape"], info["n_classes"]


def _work(label: str, config: dict, profile: dict, n_train: int, *, epochs: int | None = None,
          path_minima: int | None = None, path_examples: int | None = None) -> tuple:
    """Return ``(label, training FLOPs, path FLOPs)`` of one model config under a profile."""
    flops = forward_flops(config)
    epochs = profile["epochs"] if epochs is None else epochs
    path_minima = path_minima or profile["n_minima"]
    return (label, training_flops(flops, profile["n_minima"], epochs, n_train),
            path_flops(flops, path_minima, path_examples or n_train, profile))


def work_e2(profile: dict) -> list[tuple]:
    rows = []
    for dataset in profile["datasets"]:
        (dim,), n_classes = _shape(dataset, "flat")
        n_train = _n_train(dataset, profile["n_train"])
        for depth in profile["depths"]:
            for width in profile["widths"]:
                config = dict(name="mlp", input_dim=dim, depth=depth, width=width,
                              n_classes=n_classes)
                rows.append(_work(f"{dataset} mlp {depth}x{width}", config, profile, n_train))
    return rows


def work_e3(profile: dict) -> list[tuple]:
    shape, n_classes = _shape(profile["dataset"], "channels_first")
    n_train = _n_train(profile["dataset"], profile["n_train"])
    configs = cnn_configs(shape, n_classes, profile["n_convs"], profile["channels"],
                          profile["batch_norms"], head=profile.get("head", "flatten"))
    return [_work(f"cnn {c['n_conv']}x{c['channels']} bn={c['batch_norm']}", c, profile, n_train)
            for c in configs]


def work_e4(profile: dict) -> list[tuple]:
    shape, n_classes = _shape(profile["dataset"], "channels_first")
    n_train = _n_train(profile["dataset"], profile["n_train"])
    return [_work(profile[role]["name"], complete_config(profile[role], shape, n_classes),
                  profile, n_train)
            for role in ("small_model", "large_model")]


def work_e5(profile: dict) -> list[tuple]:
    rows = []
    for dataset in profile["datasets"]:
        shape, n_classes = _shape(dataset, "channels_first")
        n_train = _n_train(dataset, profile["n_train"])
        for depth in profile["depths"]:
            config = dict(name=profile["model"], input_shape=shape, depth=depth,
                          width=profile["width"], n_classes=n_classes)
            # Both groups are trained, then one joint barcode covers all their minima.
            rows.append(_work(f"{dataset} {profile['model']}-{depth}", config, profile, n_train,
                              epochs=profile["type1_epochs"] + profile["type2_epochs"],
                              path_minima=2 * profile["n_minima"],
                              path_examples=min(profile.get("path_examples") or n_train, n_train)))
    return rows


NOTEBOOKS = {
    "02_to_score_depth_width": work_e2,
    "03_to_score_cnn": work_e3,
    "04_small_vs_large": work_e4,
    "05_minima_generalization": work_e5,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--tflops", type=float, nargs="+", default=[10.0, 30.0, 100.0],
                        help="sustained throughputs (TFLOP/s) to convert work into time")
    args = parser.parse_args()

    header = f"{'notebook':<26} {'training PFLOP':>15} {'paths PFLOP':>12}"
    header += "".join(f" {f'h at {t:g} TF/s':>13}" for t in args.tflops)
    print(header)
    totals = [0.0, 0.0]
    for stem, work in NOTEBOOKS.items():
        parameters = yaml.safe_load((PROFILES / args.profile / f"{stem}.yaml").read_text())
        rows = work(parameters)
        train, paths = sum(r[1] for r in rows), sum(r[2] for r in rows)
        totals[0] += train
        totals[1] += paths
        hours = "".join(f" {(train + paths) / (t * 1e12) / 3600:>13.1f}" for t in args.tflops)
        print(f"{stem:<26} {train / 1e15:>15.1f} {paths / 1e15:>12.1f}{hours}")
    total = sum(totals)
    hours = "".join(f" {total / (t * 1e12) / 3600:>13.1f}" for t in args.tflops)
    print(f"{'all':<26} {totals[0] / 1e15:>15.1f} {totals[1] / 1e15:>12.1f}{hours}")
    print(f"\n{math.fsum(totals) / 1e15:.1f} PFLOP of matrix products and convolutions in all.")


if __name__ == "__main__":
    main()
