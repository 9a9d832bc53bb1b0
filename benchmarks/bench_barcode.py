"""H0 barcodes of random graphs: toscore.graph_barcode vs ripser vs a pure-Python loop.

Each graph has ``n_edges`` distinct random edges on about ``n_edges / 8`` vertices and
random distinct vertex values. An edge enters the filtration at the larger value of its
two endpoints (lower-star filtration). Three implementations compute its H0 barcode:

- ``toscore.graph_barcode`` (scipy's minimum spanning tree on edge ranks, then a
  Python union-find over the forest);
- ripser on a sparse distance matrix with the vertex values on the diagonal and the
  edge values off it. ripser computes in float32, so the vertex values are drawn as
  float32 numbers, and every filtration value is then exact in both precisions;
- Kruskal's algorithm with a union-find and the elder rule in plain Python, written here.

The finite bars of all three must agree to 1e-6. ripser's time excludes building its
sparse matrix. Run ``python benchmarks/bench_barcode.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import ripser as ripser_package
import scipy
from ripser import ripser
from scipy.sparse import coo_matrix

import toscore
from bench_engine import format_table, header_lines, machine_info, markdown_table, write_csv

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-6
PYTHON_LIMIT_S = 60.0


def random_graph(n_edges: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Vertex values ``(n_vertices,)`` and distinct edges ``(n_edges, 2)`` without loops."""
    rng = np.random.default_rng(seed)
    n_vertices = max(n_edges // 8, 8)
    # Distinct values in (0, 1), exact in float32: ripser computes in float32.
    values = ((rng.permutation(n_vertices) + 1) / (n_vertices + 1)).astype(np.float32)
    values = values.astype(np.float64)
    pairs = np.empty((0, 2), dtype=np.int64)
    while len(pairs) < n_edges:
        draw = rng.integers(0, n_vertices, size=(2 * n_edges, 2))
        draw = np.sort(draw[draw[:, 0] != draw[:, 1]], axis=1)
        pairs = np.unique(np.concatenate([pairs, draw]), axis=0)
    edges = pairs[rng.permutation(len(pairs))[:n_edges]]
    return values, edges


def toscore_bars(values: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Finite bars ``(n, 2)`` and the number of infinite bars from graph_barcode."""
    barcode = toscore.graph_barcode(values, edges)
    return np.stack([barcode.birth, barcode.death], axis=1), len(barcode.essential_birth)


def ripser_matrix(values: np.ndarray, edges: np.ndarray):
    """Sparse distance matrix for a lower-star filtration: values on the diagonal."""
    n_vertices = len(values)
    diagonal = np.arange(n_vertices)
    weights = np.maximum(values[edges[:, 0]], values[edges[:, 1]])
    rows = np.concatenate([diagonal, edges[:, 0]])
    columns = np.concatenate([diagonal, edges[:, 1]])
    data = np.concatenate([values, weights])
    return coo_matrix((data, (rows, columns)), shape=(n_vertices, n_vertices))


def ripser_bars(matrix) -> tuple[np.ndarray, int]:
    diagram = ripser(matrix, distance_matrix=True, maxdim=0)["dgms"][0].astype(np.float64)
    finite = np.isfinite(diagram[:, 1])
    return diagram[finite], int((~finite).sum())


def python_bars(values: np.ndarray, edges: np.ndarray,
                deadline: float) -> tuple[np.ndarray, int] | None:
    """Kruskal with the elder rule in plain Python; None once ``deadline`` has passed."""
    value = values.tolist()
    n_vertices = len(value)
    pairs = edges.tolist()
    weight = [max(value[u], value[v]) for u, v in pairs]
    order = sorted(range(len(pairs)), key=weight.__getitem__)  # stable: ties by row
    parent = list(range(n_vertices))
    oldest = list(range(n_vertices))  # at each root: the lowest vertex of its component

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    bars = []
    for count, row in enumerate(order):
        if count % 65536 == 0 and time.perf_counter() > deadline:
            return None
        u, v = pairs[row]
        root_u, root_v = find(u), find(v)
        if root_u == root_v:
            continue
        old_u, old_v = oldest[root_u], oldest[root_v]
        if (value[old_u], old_u) > (value[old_v], old_v):
            root_u, root_v, old_u, old_v = root_v, root_u, old_v, old_u
        if weight[row] > value[old_v]:  # the younger component dies; zero-length bars dropped
            bars.append((value[old_v], weight[row]))
        parent[root_v] = root_u
    n_components = sum(1 for v in range(n_vertices) if find(v) == v)
    return np.array(bars, dtype=np.float64).reshape(-1, 2), n_components


def bar_difference(bars_a: np.ndarray, bars_b: np.ndarray) -> float:
    """Largest difference between finite bars sorted by (birth, death); inf if counts differ."""
    if len(bars_a) != len(bars_b):
        return float("inf")
    if len(bars_a) == 0:
        return 0.0
    sort_a = bars_a[np.lexsort((bars_a[:, 1], bars_a[:, 0]))]
    sort_b = bars_b[np.lexsort((bars_b[:, 1], bars_b[:, 0]))]
    return float(np.abs(sort_a - sort_b).max())


def median_time(fn, repeats: int):
    """Result of the first call and the median wall time of ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        tic = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - tic)
    return result, statistics.median(times)


def measure(n_edges: int, repeats: int) -> dict:
    values, edges = random_graph(n_edges)
    row = {"edges": n_edges, "vertices": len(values)}
    (mine, mine_infinite), row["toscore_s"] = median_time(lambda: toscore_bars(values, edges),
                                                          repeats)
    matrix = ripser_matrix(values, edges)
    (theirs, theirs_infinite), row["ripser_s"] = median_time(lambda: ripser_bars(matrix), repeats)
    row["finite_bars"] = len(mine)
    row["components"] = mine_infinite
    row["diff_ripser"] = bar_difference(mine, theirs)
    if theirs_infinite != mine_infinite:
        row["diff_ripser"] = float("inf")

    tic = time.perf_counter()
    python = python_bars(values, edges, deadline=tic + PYTHON_LIMIT_S)
    if python is None:
        row["python_note"] = f"skipped: over {PYTHON_LIMIT_S:.0f} s"
    else:
        row["python_s"] = time.perf_counter() - tic
        row["diff_python"] = bar_difference(mine, python[0])
        if python[1] != mine_infinite:
            row["diff_python"] = float("inf")
        row["python_ratio"] = row["python_s"] / row["toscore_s"]
    row["ripser_ratio"] = row["ripser_s"] / row["toscore_s"]
    agree = row["diff_ripser"] <= TOLERANCE and row.get("diff_python", 0.0) <= TOLERANCE
    row["agree"] = "yes" if agree else "NO"

    met = row["ripser_ratio"] >= 1
    text = "toscore <= ripser"
    if n_edges >= 10**6:
        met = met and row["toscore_s"] < 1.0
        text += ", < 1 s"
    row["target"] = text
    row["TARGET"] = "met" if met else "not met"
    return row


COLUMNS = [
    ("edges", "edges", "d"), ("vertices", "vertices", "d"), ("finite_bars", "finite bars", "d"),
    ("components", "components", "d"), ("toscore_s", "toscore s", ".3g"),
    ("ripser_s", "ripser s", ".3g"), ("python_s", "python s", ".3g"),
    ("ripser_ratio", "ripser/toscore", ".2f"), ("python_ratio", "python/toscore", ".2f"),
    ("diff_ripser", "max diff ripser", ".1e"), ("diff_python", "max diff python", ".1e"),
    ("agree", "agree", ""), ("python_note", "note", ""), ("target", "target", ""),
    ("TARGET", "TARGET", ""),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of toscore and ripser per graph (median)")
    parser.add_argument("--quick", action="store_true",
                        help="graphs of 10^3 and 10^4 edges instead of 10^4 to 10^6")
    parser.add_argument("--write", action="store_true",
                        help="write bench_barcode.{csv,md} next to this script")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")

    sizes = (10**3, 10**4) if args.quick else (10**4, 10**5, 10**6)
    info = machine_info()
    info.update({"scipy": scipy.__version__, "ripser": ripser_package.__version__})
    lines = header_lines("H0 barcode of a lower-star graph filtration", info)
    lines += [f"times: median of {args.repeats} runs (python: one run, stopped after "
              f"{PYTHON_LIMIT_S:.0f} s); ripser's excludes building its sparse matrix",
              f"max diff: largest difference of the finite bars from toscore's, sorted by "
              f"(birth, death); agree: all within {TOLERANCE:g}", ""]
    print("\n".join(lines), flush=True)

    rows = []
    for n_edges in sizes:
        rows.append(measure(n_edges, args.repeats))
        print(f"  {n_edges} edges done", flush=True)
    table = format_table(rows, COLUMNS)
    targets = f"targets met: {sum(row['TARGET'] == 'met' for row in rows)} of {len(rows)}"
    print("\n" + table + "\n\n" + targets)

    if args.write:
        write_csv(HERE / "bench_barcode.csv", rows)
        markdown = ["# " + lines[0], ""] + [f"- {line}" for line in lines[1:] if line]
        markdown += ["", markdown_table(rows, COLUMNS), "", targets]
        (HERE / "bench_barcode.md").write_text("\n".join(markdown) + "\n", encoding="utf-8")
        print(f"\nwrote {HERE / 'bench_barcode.csv'} and {HERE / 'bench_barcode.md'}")
    return 0 if all(row["agree"] == "yes" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
