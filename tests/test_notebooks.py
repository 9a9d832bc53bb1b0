"""Every notebook runs end to end through the runner with the smoke profile."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SUMMARY = "06_summary"  # writes README.md from the folder's records, no figure of its own


def _summary_inputs(folder: Path) -> None:
    """Give the summary a folder with a figure, two observations and a table to read."""
    import matplotlib.pyplot as plt

    from toscore.plots import save_figure
    from toscore.runs import record_figure, record_observation

    save_figure(plt.figure(), folder, "e2_trend")
    record_figure(folder, "e2_trend", "An empty test figure.", experiment="E2")
    record_observation(folder, "E2", "barcodes and TO-scores decrease as networks grow",
                       supported=True, statistic="rho", value=-0.75, detail="n=4")
    record_observation(folder, "E5", "minima with shorter segments generalize better",
                       supported=False, statistic="error difference", value=0.5)
    pd.DataFrame({"depth": [1, 2], "to_score": [0.2, 0.1]}).to_csv(folder / "e2_scores.csv",
                                                                     index=False)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Run a notebook once with the smoke profile; return its output folder."""
    runs = {}

    def run(stem: str) -> Path:
        if stem not in runs:
            output_dir = tmp_path_factory.mktemp(stem)
            if stem == SUMMARY:
                _summary_inputs(output_dir)
            command = [sys.executable, "-m", "toscore.reproduce", "--profile", "smoke",
                       "--only", stem, "-p", "output_dir", str(output_dir)]
            env = {**os.environ, "MPLBACKEND": "Agg"}
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                    timeout=600)
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            runs[stem] = output_dir
        return runs[stem]

    return run


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_with_smoke_profile(stem, smoke_run):
    output_dir = smoke_run(stem)
    if stem == SUMMARY:
        readme = (output_dir / "README.md").read_text()
        assert "![An empty test figure.](e2_trend.png)" in readme
        assert "| **supported** | rho | -0.75 | n=4 |" in readme
        assert "| **not supported** | error difference | 0.5 |" in readme
        assert "[e2_scores.csv](e2_scores.csv): 2 rows" in readme
        return
    assert list(output_dir.rglob("*.png")), f"{stem} wrote no PNG figure"
    assert list(output_dir.rglob("*.pdf")), f"{stem} wrote no PDF figure"
    assert list(output_dir.rglob("*.csv")), f"{stem} wrote no CSV table"


def test_depth_width_tables_are_consistent(smoke_run):
    tmp_path = smoke_run("02_to_score_depth_width")
    segments = pd.read_csv(tmp_path / "e2_segments.csv")
    scores = pd.read_csv(tmp_path / "e2_scores.csv")

    # Recompute every TO-score from the saved raw segments.
    for _, row in scores.iterrows():
        rows = segments[(segments["dataset"] == row["dataset"]) & (segments["depth"] == row["depth"])
                        & (segments["width"] == row["width"])]
        finite = rows.loc[~rows["essential"], "length"].to_numpy()
        assert len(rows) == row["n_minima"]
        assert rows["essential"].sum() == 1  # the minima graph is complete, so connected
        assert np.all(finite >= 0)
        assert row["to_score"] == pytest.approx(np.linalg.norm(finite), rel=1e-12, abs=1e-15)
        global_minimum = rows.loc[rows["essential"], "birth"].item()
        assert global_minimum == pytest.approx(rows["birth"].min())

    for row in scores.itertuples():
        name = f"e2_{row.dataset}_barcode_depth{row.depth}_width{row.width}.png"
        assert (tmp_path / "barcodes" / name).is_file()
    for dataset in scores["dataset"].unique():
        assert (tmp_path / f"e2_{dataset}_to_score_depth_width.pdf").is_file()


def test_toy_barcode_tables_are_consistent(smoke_run):
    import json

    tmp_path = smoke_run("01_toy_barcodes")
    bars = pd.read_csv(tmp_path / "e1_bars.csv")
    segments = pd.read_csv(tmp_path / "e1_segments.csv")
    scores = pd.read_csv(tmp_path / "e1_scores.csv")

    # Every TO-score is the Euclidean norm of the saved finite segment lengths.
    for row in scores.itertuples():
        rows = segments[(segments["function"] == row.function) & (segments["algorithm"] == row.algorithm)]
        finite = rows.loc[~rows["essential"], "death"] - rows.loc[~rows["essential"], "birth"]
        assert row.norm_ord == 2
        assert row.to_score == pytest.approx(np.linalg.norm(finite), rel=1e-12, abs=1e-15)
        assert row.n_finite_segments == len(finite)

    # The paired bars are the saved segments, and the differences follow from them.
    for function in bars["function"].unique():
        table = bars[(bars["function"] == function) & ~bars["essential"]]
        for algorithm, side in (("point_cloud", "1"), ("minima_paths", "2")):
            rows = segments[(segments["function"] == function) & (segments["algorithm"] == algorithm)
                            & ~segments["essential"]]
            assert sorted(table[f"death_{side}"].dropna()) == pytest.approx(sorted(rows["death"]))
        matched = table[table["matched"]]
        expected = (matched["death_2"] - matched["death_1"]).abs() / (matched["death_1"] - matched["birth_1"])
        np.testing.assert_allclose(matched["relative_difference"], expected, rtol=1e-12)
        within = (matched["death_2"] - matched["death_1"]).abs() <= matched["tolerance"]
        assert (matched["within_tolerance"].astype(bool) == within).all()

    # The recorded observation is the largest relative difference over matched bars.
    entry = json.loads((tmp_path / "observations.json").read_text())[
        "E1: algorithm 2 (minima and paths) agrees with algorithm 1 (point cloud)"]
    finite = bars[~bars["essential"]]
    assert entry["value"] == pytest.approx(finite["relative_difference"].max())
    agrees = finite["matched"].all() and finite["within_tolerance"].astype(bool).all()
    assert entry["supported"] == bool(agrees)


def _runner(output_dir: Path, cache_dir: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "toscore.reproduce", "--profile", "smoke", "--only",
               "02_to_score_depth_width", "-p", "output_dir", str(output_dir), *extra]
    env = {**os.environ, "MPLBACKEND": "Agg", "TOSCORE_CACHE_DIR": str(cache_dir)}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGKILL"])
def test_interrupted_run_resumes_to_identical_tables(tmp_path, signal_name):
    import signal
    import time

    reference = _runner(tmp_path / "reference", tmp_path / "cache-reference")
    assert reference.wait(timeout=600) == 0, reference.stderr.read()[-3000:]

    cache = tmp_path / "cache"
    interrupted = _runner(tmp_path / "resumed", cache)
    deadline = time.monotonic() + 600
    while len(list(cache.glob("barcode/*.sha256"))) < 2:
        assert interrupted.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    interrupted.send_signal(getattr(signal, signal_name))
    assert interrupted.wait(timeout=120) != 0
    assert not (tmp_path / "resumed" / "e2_scores.csv").exists()

    resumed = _runner(tmp_path / "resumed", cache)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()[-3000:]
    for name in ("e2_segments.csv", "e2_scores.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "resumed" / name),
                                      pd.read_csv(tmp_path / "reference" / name))


def test_fresh_run_ignores_saved_artifacts(tmp_path):
    cache = tmp_path / "cache"
    assert _runner(tmp_path / "first", cache).wait(timeout=600) == 0
    saved = {path: path.stat().st_mtime_ns for path in cache.rglob("*.npz")}
    assert saved
    assert _runner(tmp_path / "again", cache).wait(timeout=600) == 0
    assert {path: path.stat().st_mtime_ns for path in cache.rglob("*.npz")} == saved
    assert _runner(tmp_path / "fresh", cache, "--fresh").wait(timeout=600) == 0
    rewritten = {path: path.stat().st_mtime_ns for path in cache.rglob("*.npz")}
    assert all(rewritten[path] > mtime for path, mtime in saved.items())
