"""Throughput of toscore's batched evaluation against a per-point loop.

Every workload evaluates the loss and its gradient at P parameter vectors, as one step
of path optimization (P path points) or of minima training (P networks) does. Two
implementations run on the same data and the same points:

- toscore: ``toscore.value_and_grad`` on a :class:`toscore.NetworkObjective` (the
  shared-input GEMM plan for plain MLPs, ``vmap`` over ``functional_call`` otherwise),
  in chunks of ``max_points_per_call`` points;
- a per-point loop as research code of this field writes it, with one module. For each
  point the loop copies the parameters in from a numpy array (``vector_to_parameters``
  from a tensor made from numpy), runs a forward and a backward pass, and copies the
  gradient out to numpy.

Throughput is points x samples per second. FLOP/s count forward plus backward as three
times the forward FLOPs (2 per multiply-add) of the linear and convolution layers, and
are compared with two GEMM references measured on the same machine at the same
precision: GEMMs of the layer shapes, ``(P * out, in * kernel) @ (in * kernel, n *
spatial)``, and a square 2048 x 2048 matmul. On the CPU every case runs in a fresh
subprocess, and peak memory is the rise of its resident set (VmHWM after resetting it).
On CUDA it is the rise of ``torch.cuda.max_memory_allocated``.

Run ``python benchmarks/bench_engine.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

import toscore
from toscore import NetworkObjective, build_model, initial_parameters, load_dataset, value_and_grad

HERE = Path(__file__).resolve().parent
FULL = 1347  # training examples of digits with the default 25 % test split
MLP = {"name": "mlp", "input_dim": 64, "depth": 2, "width": 32, "n_classes": 10}
CNN = {"name": "cnn", "input_shape": (1, 8, 8), "n_conv": 2, "channels": 16, "n_classes": 10}
PRECISIONS = ("fp32", "tf32", "bf16")
LARGE_GEMM = 2048
TRAIN_LR, TRAIN_MOMENTUM = 0.05, 0.9  # train_minima's defaults


# Machine description and table output, shared by the other benchmark scripts.


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, else the platform module's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(device: torch.device | None = None) -> dict[str, str]:
    """Describe the CPU, cores, versions, threads and accelerator as labelled strings."""
    cores = os.cpu_count()
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    info = {
        "cpu": cpu_model(),
        "cores": f"{cores} ({available} available to this process)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "toscore": toscore.__version__,
        "torch threads": str(torch.get_num_threads()),
    }
    if device is not None:
        info["device"] = str(device)
        if device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cells(rows: list[dict], columns: list[tuple[str, str, str]]) -> list[list[str]]:
    """Format the header and the cells; ``columns`` are ``(key, header, format spec)``."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                line.append("-")
            else:
                line.append(format(value, spec) if spec else str(value))
        cells.append(line)
    return cells


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Format a right-aligned plain-text table. A missing value prints as '-'."""
    cells = _cells(rows, columns)
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    text = ["  ".join(cell.rjust(width) for cell, width in zip(line, widths)) for line in cells]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def markdown_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Format the same table in GitHub markdown."""
    cells = _cells(rows, columns)
    lines = ["| " + " | ".join(line) + " |" for line in cells]
    lines.insert(1, "|" + "---:|" * len(columns))
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write dict rows with the union of their keys as columns."""
    keys: list[str] = []
    for row in rows:
        keys += [key for key in row if key not in keys]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def header_lines(title: str, info: dict[str, str]) -> list[str]:
    """Return the title, command line and machine lines printed above every table."""
    command = " ".join([Path(sys.executable).name, *sys.argv])
    return [title, f"command: {command}"] + [f"{key}: {value}" for key, value in info.items()]


# Precision, synchronization and measurement helpers.


def set_precision(precision: str) -> None:
    """Turn TF32 on for "tf32" and off otherwise, for matmuls and cuDNN convolutions alike.

    cuDNN allows TF32 by default; turning it off makes "fp32" a true float32 reference.
    Neither flag changes anything on the CPU.
    """
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def precision_context(precision: str, device: torch.device):
    """Return a bfloat16 autocast context for "bf16", an empty context otherwise."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0). Return False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _release_free_heap() -> None:
    # Return freed heap pages to the system, so the next peak starts from a clean base.
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measure_peak(fn, device: torch.device):
    """Run ``fn`` once; return its result and the rise of memory in MiB (None: unknown).

    CPU: VmHWM minus VmRSS before the call. CUDA: max_memory_allocated minus
    memory_allocated before the call.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    _release_free_heap()
    if not _reset_peak_rss():
        return fn(), None
    base = _status_kib("VmRSS")
    result = fn()
    return result, (_status_kib("VmHWM") - base) / 1024


def time_interleaved(functions, repeats: int, max_seconds: float, min_repeats: int = 3):
    """Return the median seconds of each function, timed in turn so load changes hit all alike.

    Stops after ``repeats`` rounds, or after ``min_repeats`` rounds once ``max_seconds``
    have passed. Every function synchronizes before it returns.
    """
    samples: list[list[float]] = [[] for _ in functions]
    start = time.perf_counter()
    while True:
        for fn, times in zip(functions, samples):
            tic = time.perf_counter()
            fn()
            times.append(time.perf_counter() - tic)
        done = len(samples[0])
        if done >= repeats or (done >= min_repeats and time.perf_counter() - start > max_seconds):
            return [statistics.median(times) for times in samples]


def large_gemm_flops(device: torch.device, precision: str, repeats: int = 5) -> float:
    """Measure the FLOP/s of a square ``LARGE_GEMM`` matmul at the given precision."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(LARGE_GEMM, LARGE_GEMM, device=device, generator=generator)
    b = torch.randn(LARGE_GEMM, LARGE_GEMM, device=device, generator=generator)

    def run():
        with precision_context(precision, device):
            a @ b
        synchronize(device)

    run()  # warm-up
    (seconds,) = time_interleaved([run], repeats, max_seconds=5.0)
    return 2 * LARGE_GEMM**3 / seconds


# One case: the same points through toscore and through the per-point loop.


def layer_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Return ``(out, in * kernel, spatial outputs)`` of each linear and convolution layer.

    The sizes are per example: one example's layer is a ``(out, in * kernel) @ (in *
    kernel, spatial outputs)`` product.
    """
    shapes = []

    def record(module, _inputs, output):
        if isinstance(module, nn.Linear):
            shapes.append((module.out_features, module.in_features, 1))
        elif isinstance(module, nn.modules.conv._ConvNd):
            kernel = module.in_channels // module.groups * math.prod(module.kernel_size)
            shapes.append((module.out_channels, kernel, output[0, 0].numel()))

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros(2, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def layer_gemm_seconds(shapes, n_points: int, batch: int, device, precision, repeats, max_seconds):
    """Time plain GEMMs with the forward FLOPs of P networks on ``batch`` examples (median s).

    Layer ``(out, k, s)`` becomes ``(P * out, k) @ (k, batch * s)``, split over points
    so that one product has at most 2**24 output elements.
    """
    generator = torch.Generator(device=device).manual_seed(1)
    operands = []
    for out, k, spatial in shapes:
        columns = batch * spatial
        chunk = max(1, min(n_points, 2**24 // (out * columns)))
        a = torch.randn(chunk * out, k, device=device, generator=generator)
        b = torch.randn(k, columns, device=device, generator=generator)
        operands.append((a, b, *divmod(n_points, chunk), out))

    def run():
        with precision_context(precision, device):
            for a, b, full_chunks, rest, out in operands:
                for _ in range(full_chunks):
                    a @ b
                if rest:
                    a[: rest * out] @ b
        synchronize(device)

    run()
    (seconds,) = time_interleaved([run], repeats, max_seconds)
    return seconds


def run_case(spec: dict, device: torch.device, precision: str, repeats: int,
             max_seconds: float) -> dict:
    """Measure one case (see the module docstring) and return a flat dict of results."""
    set_precision(precision)
    data = load_dataset("digits", layout=spec["layout"])
    model = build_model(spec["model"])
    n_points = spec["points"]
    batch = spec["batch"] or len(data.train_x)
    training = spec["step"] == "train"
    shapes = layer_shapes(model, data.input_shape)
    macs = sum(out * k * spatial for out, k, spatial in shapes)

    theta = initial_parameters(model, range(n_points)).to(device)  # (P, D)
    theta_numpy = theta.cpu().numpy().copy()
    if training:
        objective = NetworkObjective(model, "cross_entropy", data.train, device=device,
                                     max_points_per_call=spec["mpc"])
        generator = torch.Generator().manual_seed(0)
        rows = torch.randperm(len(data.train_x), generator=generator)[:batch].to(device)
    else:
        objective = NetworkObjective(model, "cross_entropy",
                                     (data.train_x[:batch], data.train_y[:batch]),
                                     device=device, max_points_per_call=spec["mpc"])
        rows = None
    inputs, targets = objective.inputs, objective.targets
    velocity = torch.zeros_like(theta)

    def toscore_step():
        with precision_context(precision, device):
            if training:
                with torch.enable_grad():
                    points = theta.detach().requires_grad_(True)
                    values = objective.loss_on(points, inputs[rows], targets[rows])  # (P,)
                    (grads,) = torch.autograd.grad(values.sum(), points)  # (P, D)
                velocity.mul_(TRAIN_MOMENTUM).add_(grads)
                theta.sub_(TRAIN_LR * velocity)
            else:
                values, grads = value_and_grad(objective, theta)
        synchronize(device)
        return values.detach(), grads

    module = build_model(spec["model"]).to(device)
    parameters = list(module.parameters())
    loop_velocity = np.zeros_like(theta_numpy)

    def loop_step():
        x, y = (inputs[rows], targets[rows]) if training else (inputs, targets)
        values = np.empty(n_points, dtype=np.float32)
        grads = np.empty_like(theta_numpy)
        for p in range(n_points):
            vector_to_parameters(torch.tensor(theta_numpy[p], device=device), parameters)
            module.zero_grad(set_to_none=True)
            with precision_context(precision, device):
                loss = F.cross_entropy(module(x), y)
            loss.backward()
            values[p] = loss.item()
            grads[p] = parameters_to_vector([q.grad for q in parameters]).cpu().numpy()
        if training:
            loop_velocity[:] = TRAIN_MOMENTUM * loop_velocity + grads
            theta_numpy[:] -= TRAIN_LR * loop_velocity
        return values, grads

    # First calls: warm-up, peak memory and agreement, all from the same starting points.
    (values, grads), toscore_mib = measure_peak(toscore_step, device)
    result = {"D": int(theta.shape[1]), "macs": macs, "batch": batch,
              "mpc_used": objective.max_points_per_call, "toscore_mib": toscore_mib}
    functions = [toscore_step]
    if spec["baseline"]:
        (loop_values, loop_grads), result["loop_mib"] = measure_peak(loop_step, device)
        grads64 = grads.double().cpu().numpy()
        result["value_diff"] = float(np.abs(values.double().cpu().numpy() - loop_values).max())
        scale = max(float(np.abs(loop_grads).max()), 1e-30)
        result["grad_diff"] = float(np.abs(grads64 - loop_grads).max()) / scale
        functions.append(loop_step)

    seconds = time_interleaved(functions, repeats, max_seconds)
    result["toscore_s"] = seconds[0]
    result["loop_s"] = seconds[1] if spec["baseline"] else None
    if spec["gemm"]:
        result["gemm_s"] = layer_gemm_seconds(shapes, n_points, batch, device, precision,
                                              repeats, max_seconds / 2)
    return result


# Cases, targets and the driver.


def cases(quick: bool) -> tuple[list[dict], list[dict]]:
    """Return the main cases and the ``max_points_per_call`` sweep as specs for :func:`run_case`."""
    def spec(group, label, points, batch=None, model=MLP, layout="flat", step="path",
             mpc=None, baseline=True, gemm=True):
        return dict(group=group, label=label, points=points, batch=batch, model=model,
                    layout=layout, step=step, mpc=mpc, baseline=baseline, gemm=gemm)

    path_points = 16 if quick else 448
    main = [spec("a", "path step", path_points, b) for b in (32, 128, 512, None)]
    main.append(spec("b", "minima training", 8, 128, step="train"))
    main.append(spec("c", "cnn path step", 4 if quick else 64, model=CNN, layout="channels_first"))
    for points in ((8, 32) if quick else (8, 32, 128, 512)):
        main.append(spec("d", "points sweep", points))
    for width in ((16, 32) if quick else (16, 32, 64, 128)):
        main.append(spec("d", f"width {width}", 16 if quick else 128, model={**MLP, "width": width}))
    chunk_sizes = (1, 4, 16, None) if quick else (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, None)
    sweep = [spec("chunks", "path step", path_points, mpc=m, baseline=False, gemm=False)
             for m in chunk_sizes]
    return main, sweep


def target(row: dict) -> tuple[str, bool | None]:
    """Return a row's target as text and whether it is met (None: the row has no target)."""
    ratio = row.get("ratio")
    if row["group"] == "a" and row["batch"] == FULL:
        met = ratio >= 1 and row["of_large"] >= 0.5
        return "ratio >= 1 and >= 50% of GEMM 2048^2", met
    if row["group"] == "a" and row["batch"] == 128:
        return "ratio >= 5", ratio >= 5
    if row["group"] == "a":
        return "ratio >= 1", ratio >= 1
    if row["group"] == "b":
        return "ratio >= 5", ratio >= 5
    return "", None


def finish_row(spec: dict, result: dict, large_flops: float) -> dict:
    row = {"group": spec["group"], "case": spec["label"], "P": spec["points"],
           "mpc": "default" if spec["mpc"] is None else spec["mpc"], **result}
    samples = row["P"] * row["batch"]
    flops = 6 * row["macs"] * samples  # forward + backward = 3 x (2 x multiply-adds)
    row["toscore_rate"] = samples / row["toscore_s"]
    row["toscore_gflops"] = flops / row["toscore_s"] / 1e9
    row["of_large"] = flops / row["toscore_s"] / large_flops
    if row.get("loop_s"):
        row["loop_rate"] = samples / row["loop_s"]
        row["ratio"] = row["loop_s"] / row["toscore_s"]
    if row.get("gemm_s"):
        # The reference does only the forward products, 2 x multiply-adds.
        row["gemm_gflops"] = 2 * row["macs"] * samples / row["gemm_s"] / 1e9
        row["of_gemm"] = row["toscore_gflops"] / row["gemm_gflops"]
    row["chunks"] = math.ceil(row["P"] / row["mpc_used"])
    if row["group"] != "chunks":
        text, met = target(row)
        row["target"] = text
        if met is None:
            row["TARGET"] = ""
        else:
            row["TARGET"] = "met" if met else "not met"
    return row


MAIN_COLUMNS = [
    ("group", "id", ""), ("case", "case", ""), ("P", "P", "d"), ("batch", "batch", "d"),
    ("D", "D", "d"), ("toscore_rate", "toscore pt*smp/s", ".3g"),
    ("loop_rate", "loop pt*smp/s", ".3g"), ("ratio", "ratio", ".2f"),
    ("toscore_mib", "toscore MiB", ".1f"), ("loop_mib", "loop MiB", ".1f"),
    ("toscore_gflops", "toscore GFLOP/s", ".3g"), ("gemm_gflops", "layer GEMM GFLOP/s", ".3g"),
    ("of_gemm", "of layer GEMM", ".0%"), ("of_large", "of GEMM 2048^2", ".0%"),
    ("grad_diff", "max rel dgrad", ".1e"), ("target", "target", ""), ("TARGET", "TARGET", ""),
]
CHUNK_COLUMNS = [
    ("mpc", "max_points_per_call", ""), ("mpc_used", "used", "d"), ("chunks", "calls", "d"),
    ("toscore_rate", "pt*smp/s", ".3g"), ("toscore_mib", "MiB", ".1f"),
    ("toscore_gflops", "GFLOP/s", ".3g"), ("of_large", "of GEMM 2048^2", ".0%"),
]


def precision_check(device: torch.device, precision: str, quick: bool) -> dict:
    """Compare a minima barcode at ``precision`` with float32: the largest bar difference.

    The minima are trained once in float32; both barcodes use the same minima and the
    same settings, so only the arithmetic of path optimization and evaluation differs.
    """
    set_precision("fp32")
    data = load_dataset("digits")
    model = build_model({**MLP, "depth": 1, "width": 16})
    n_minima, epochs, steps = (4, 10, 30) if quick else (6, 40, 100)
    minima = toscore.train_minima(model, data.train, seeds=range(n_minima), epochs=epochs,
                                  device=device)
    objective = NetworkObjective(model, "cross_entropy", data.train, 1e-5, device=device)
    settings = dict(n_points=6, n_steps=steps, n_insertions=2)
    reference = toscore.minima_barcode(objective, minima.parameters, **settings)
    set_precision(precision)
    with precision_context(precision, device):
        other = toscore.minima_barcode(objective, minima.parameters, **settings)
    set_precision("fp32")
    deaths = np.sort(reference.barcode.death), np.sort(other.barcode.death)
    births = np.sort(reference.barcode.birth), np.sort(other.barcode.birth)
    same_count = len(deaths[0]) == len(deaths[1])
    difference = float(max(np.abs(deaths[0] - deaths[1]).max(initial=0.0),
                           np.abs(births[0] - births[1]).max(initial=0.0))) if same_count else math.inf
    return {"bars_fp32": len(deaths[0]), f"bars_{precision}": len(deaths[1]),
            "max_difference": difference, "met": same_count and difference <= 1e-3}


def run_isolated(spec: dict, args) -> dict:
    """Run one case in a fresh interpreter, so that its peak memory is its own."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec),
               "--device", "cpu", "--threads", str(args.threads), "--precision", args.precision,
               "--repeats", str(args.repeats), "--max-seconds", str(args.max_seconds)]
    completed = subprocess.run(command, capture_output=True, text=True)
    for line in completed.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"benchmark case {spec} failed with exit code {completed.returncode}; "
                       f"its error output follows:\n{completed.stderr}")


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto",
                        help='"auto" (CUDA when available, else CPU), "cpu" or "cuda"')
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch.set_num_threads (default: all available cores; use 1 on a "
                             "machine busy with other processes)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32; tf32 matmuls and convolutions (CUDA only); bf16 autocast. "
                             "tf32 and bf16 also compare a minima barcode with fp32")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per case (median)")
    parser.add_argument("--max-seconds", type=float, default=4.0,
                        help="stop repeating a case after this long, once 3 repetitions are done")
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--in-process", action="store_true",
                        help="run every case in this process (always on CUDA); CPU peak "
                             "memory then includes what earlier cases left allocated")
    parser.add_argument("--write", action="store_true",
                        help="write bench_engine_<device>_<precision>.{csv,md} next to this script")
    parser.add_argument("--worker", help=argparse.SUPPRESS)

    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    if args.device not in ("auto", "cpu") and not args.device.startswith("cuda"):
        parser.error(f'--device must be "auto", "cpu" or "cuda[:N]"; got {args.device!r}')
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device} was requested but torch finds no CUDA device")
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    torch.set_num_threads(args.threads)
    device = toscore.resolve_device(args.device)
    if args.worker:
        result = run_case(json.loads(args.worker), device, args.precision, args.repeats,
                          args.max_seconds)
        print("RESULT " + json.dumps(result))
        return 0

    info = machine_info(device)
    info["precision"] = args.precision
    set_precision(args.precision)
    large = large_gemm_flops(device, args.precision)
    info[f"GEMM {LARGE_GEMM}^2"] = f"{large / 1e9:.3g} GFLOP/s"
    memory = "peak CUDA memory allocated" if device.type == "cuda" else "peak resident-set rise"
    lines = header_lines("toscore batched engine vs per-point loop", info)
    lines += [f"memory: {memory} during one step, MiB; rates: points x samples per second",
              "ratio: loop time / toscore time; max rel dgrad: largest gradient difference "
              "between the two, relative to the largest gradient entry", ""]
    print("\n".join(lines), flush=True)

    main_specs, sweep_specs = cases(args.quick)
    isolated = device.type == "cpu" and not args.in_process
    done: dict[str, dict] = {}
    rows, sweep_rows = [], []
    for spec in main_specs + sweep_specs:
        key = json.dumps({k: v for k, v in spec.items() if k not in ("group", "label")}, sort_keys=True)
        if key not in done:
            started = time.perf_counter()
            done[key] = (run_isolated(spec, args) if isolated
                         else run_case(spec, device, args.precision, args.repeats, args.max_seconds))
            print(f"  {spec['group']:>6} {spec['label']:<16} P={spec['points']:<4} "
                  f"batch={spec['batch'] or 'all'} max_points_per_call={spec['mpc'] or 'default'}: "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        row = finish_row(spec, done[key], large)
        (sweep_rows if spec["group"] == "chunks" else rows).append(row)
    for row in sweep_rows:
        if row["mpc"] == "default":
            row["mpc"] = f"default ({row['mpc_used']})"

    main_table = format_table(rows, MAIN_COLUMNS)
    sweep_title = (f"max_points_per_call sweep: path step, P={sweep_specs[0]['points']}, "
                   f"all {rows[3]['batch']} examples, toscore only")
    sweep_table = format_table(sweep_rows, CHUNK_COLUMNS)
    targeted = [row for row in rows if row["TARGET"]]
    summary = f"targets met: {sum(row['TARGET'] == 'met' for row in targeted)} of {len(targeted)}"
    print("\n" + main_table + "\n\n" + summary + "\n\n" + sweep_title + "\n" + sweep_table)

    check = None
    if args.precision != "fp32":
        check = precision_check(device, args.precision, args.quick)
        note = ""
        if args.precision == "tf32" and device.type == "cpu":
            note = " (tf32 changes nothing on the CPU)"
        print(f"\nminima barcode at {args.precision} vs fp32{note}: {check['bars_fp32']} finite bars, "
              f"max difference of births and deaths {check['max_difference']:.2e}; "
              f"target <= 1e-3: {'met' if check['met'] else 'not met'}")

    if args.write:
        stem = HERE / f"bench_engine_{device.type}_{args.precision}"
        write_csv(stem.with_suffix(".csv"), rows + sweep_rows)
        markdown = ["# " + lines[0], ""] + [f"- {line}" for line in lines[1:] if line] + [
            "", markdown_table(rows, MAIN_COLUMNS), "", summary, "", sweep_title, "",
            markdown_table(sweep_rows, CHUNK_COLUMNS)]
        if check is not None:
            markdown += ["", f"minima barcode at {args.precision} vs fp32: max difference "
                             f"{check['max_difference']:.2e} ({'met' if check['met'] else 'not met'})"]
        stem.with_suffix(".md").write_text("\n".join(markdown) + "\n", encoding="utf-8")
        print(f"\nwrote {stem.with_suffix('.csv')} and {stem.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
