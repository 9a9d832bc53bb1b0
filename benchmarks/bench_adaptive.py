"""Adaptive pair selection vs optimizing every pair, on the minima of a small MLP.

Trains N minima of a fully connected network on digits with ``toscore.train_minima``,
then computes ``toscore.minima_barcode`` twice with the same path settings, once with
``pair_selection="all"`` and once with ``"adaptive"``. Prints the gradient evaluations
(``settings["gradient_evaluations"]``, points times NEB steps), the saving, the wall
times and the difference of the finite bars, matched after sorting by death. The target:
every bar within 1e-3 of the all-pairs one with fewer evaluations.

The script also counts the optimization passes: how many pairs each pass optimized and
how many NEB steps ran one after another. It wraps toscore's private
``toscore.paths._optimize_paths`` for this and leaves its arguments and results as they are.

Run ``python benchmarks/bench_adaptive.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

import toscore
import toscore.paths
from bench_engine import format_table, header_lines, machine_info, markdown_table, write_csv

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-3


@contextlib.contextmanager
def count_passes():
    """Yield a list that collects ``(pairs, sequential NEB steps)`` of every optimization pass."""
    passes = []
    original = toscore.paths._optimize_paths

    def counting(objective, paths, values_at_ends, rows, **settings):
        passes.append((len(rows), settings["n_steps"] * (settings["n_insertions"] + 1)))
        return original(objective, paths, values_at_ends, rows, **settings)

    toscore.paths._optimize_paths = counting
    try:
        yield passes
    finally:
        toscore.paths._optimize_paths = original


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-minima", type=int, default=8, help="minima to train (default 8)")
    parser.add_argument("--depth", type=int, default=1, help="hidden layers of the mlp")
    parser.add_argument("--width", type=int, default=16, help="units per hidden layer")
    parser.add_argument("--epochs", type=int, default=60, help="training epochs per minimum")
    parser.add_argument("--n-points", type=int, default=8, help="points per path at the start")
    parser.add_argument("--n-steps", type=int, default=200, help="NEB steps per round")
    parser.add_argument("--n-insertions", type=int, default=4, help="points inserted per path")
    parser.add_argument("--weight-decay", type=float, default=1e-5,
                        help="L2 coefficient of the path objective")
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda"')
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch.set_num_threads (default: all available cores; use 1 on a "
                             "machine busy with other processes)")
    parser.add_argument("--quick", action="store_true",
                        help="4 minima, 10 epochs, 30 NEB steps, 1 insertion")
    parser.add_argument("--write", action="store_true",
                        help="write bench_adaptive.{csv,md} next to this script")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_minima, args.epochs, args.n_steps, args.n_insertions = 4, 10, 30, 1
    for name in ("n_minima", "epochs", "n_steps", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.n_minima < 3:
        parser.error(f"--n-minima must be >= 3 for pairs to choose from; got {args.n_minima}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was requested but torch finds no CUDA device")
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    device = toscore.resolve_device(args.device)
    lines = header_lines("adaptive pair selection vs all pairs", machine_info(device))
    lines.append(f"network: mlp depth {args.depth} width {args.width} on digits; "
                 f"{args.n_minima} minima, {args.epochs} epochs; paths: n_points "
                 f"{args.n_points}, n_steps {args.n_steps}, n_insertions {args.n_insertions}, "
                 f"weight decay {args.weight_decay:g}")
    print("\n".join(lines), flush=True)

    data = toscore.load_dataset("digits")
    model = toscore.build_model({"name": "mlp", "input_dim": data.input_dim, "depth": args.depth,
                                 "width": args.width, "n_classes": data.n_classes})
    started = time.perf_counter()
    minima = toscore.train_minima(model, data.train, data.test, seeds=range(args.n_minima),
                                  epochs=args.epochs, device=device)
    losses = minima.table["train_loss"]
    print(f"trained {args.n_minima} minima in {time.perf_counter() - started:.1f} s; "
          f"train loss {losses.min():.4f} to {losses.max():.4f}", flush=True)
    finite_minima = minima.parameters[minima.finite.to(minima.parameters.device)]
    objective = toscore.NetworkObjective(model, "cross_entropy", data.train, args.weight_decay,
                                         device=device)
    settings = dict(n_points=args.n_points, n_steps=args.n_steps, n_insertions=args.n_insertions)

    results, rows = {}, []
    for selection in ("all", "adaptive"):
        started = time.perf_counter()
        with count_passes() as passes:
            results[selection] = toscore.minima_barcode(objective, finite_minima,
                                                        pair_selection=selection, **settings)
        seconds = time.perf_counter() - started
        rows.append({"pair_selection": selection, "seconds": seconds,
                     "passes": ", ".join(str(pairs) for pairs, _ in passes),
                     "sequential_steps": sum(steps for _, steps in passes),
                     "evaluations": results[selection].settings["gradient_evaluations"],
                     "finite_bars": len(results[selection].barcode.death),
                     "to_score": results[selection].to_score()})
        print(f"  {selection}: {seconds:.1f} s", flush=True)

    deaths = [np.sort(results[s].barcode.death) for s in ("all", "adaptive")]
    births = [np.sort(results[s].barcode.birth) for s in ("all", "adaptive")]
    same_count = len(deaths[0]) == len(deaths[1])
    segments = [{"bar": i, "death_all": a, "death_adaptive": b, "difference": b - a}
                for i, (a, b) in enumerate(zip(*deaths))] if same_count else []
    largest = (max(float(np.abs(deaths[1] - deaths[0]).max(initial=0.0)),
                   float(np.abs(births[1] - births[0]).max(initial=0.0)))
               if same_count else float("inf"))
    saving = 1 - rows[1]["evaluations"] / rows[0]["evaluations"]
    met = same_count and largest <= TOLERANCE and rows[1]["evaluations"] < rows[0]["evaluations"]
    for row in rows:
        row["saving"] = 1 - row["evaluations"] / rows[0]["evaluations"]
        if row["pair_selection"] == "all":
            row.update(max_bar_difference=0.0, target="", TARGET="")
        else:
            row.update(max_bar_difference=largest, target=f"<= {TOLERANCE:g}, fewer evaluations",
                       TARGET="met" if met else "not met")

    columns = [("pair_selection", "pair_selection", ""), ("evaluations", "gradient evaluations", "d"),
               ("saving", "saving", ".1%"), ("seconds", "wall s", ".1f"),
               ("passes", "pairs per pass", ""), ("sequential_steps", "NEB steps in sequence", "d"),
               ("finite_bars", "finite bars", "d"), ("to_score", "TO-score", ".5f"),
               ("max_bar_difference", "max bar diff", ".2e"), ("target", "target", ""),
               ("TARGET", "TARGET", "")]
    segment_columns = [("bar", "bar (by death)", "d"), ("death_all", "death, all", ".6f"),
                       ("death_adaptive", "death, adaptive", ".6f"),
                       ("difference", "difference", ".2e")]
    table = format_table(rows, columns)
    detail = format_table(segments, segment_columns) if segments else "finite bar counts differ"
    summary = (f"adaptive saves {saving:.1%} of the gradient evaluations; largest bar difference "
               f"{largest:.2e} (target <= {TOLERANCE:g}): {'met' if met else 'not met'}")
    print("\n" + table + "\n\n" + detail + "\n\n" + summary)

    if args.write:
        write_csv(HERE / "bench_adaptive.csv", rows)
        markdown = ["# " + lines[0], ""] + [f"- {line}" for line in lines[1:]]
        markdown += ["", markdown_table(rows, columns), ""]
        markdown += [markdown_table(segments, segment_columns) if segments else detail, "", summary]
        (HERE / "bench_adaptive.md").write_text("\n".join(markdown) + "\n", encoding="utf-8")
        print(f"\nwrote {HERE / 'bench_adaptive.csv'} and {HERE / 'bench_adaptive.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
