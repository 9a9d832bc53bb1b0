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


def test_minima_generalization_tables_are_consistent(smoke_run):
    from scipy.stats import spearmanr

    from toscore import graph_barcode

    folder = smoke_run("05_minima_generalization")
    minima = pd.read_csv(folder / "e5_minima.csv")
    saddles = pd.read_csv(folder / "e5_saddles.csv")
    statistics = pd.read_csv(folder / "e5_group_statistics.csv")
    correlation = pd.read_csv(folder / "e5_correlation.csv")

    for configuration, rows in minima.groupby("configuration"):
        kept = rows[~rows["excluded"]].reset_index(drop=True)
        assert set(kept["group"]) == {"type 1", "type 2"}
        assert kept["seed"].is_unique
        assert kept["essential"].sum() == 1  # one joint barcode over both types

        # Rebuild the joint barcode from the saved saddles of every pair.
        pairs = saddles[saddles["configuration"] == configuration]
        assert len(pairs) == len(kept) * (len(kept) - 1) // 2
        vertex = {seed: i for i, seed in enumerate(kept["seed"])}
        edges = np.column_stack([pairs["seed_i"].map(vertex), pairs["seed_j"].map(vertex)])
        bars = graph_barcode(kept["birth"].to_numpy(), edges, pairs["saddle"].to_numpy())
        lengths = np.zeros(len(kept))  # minima without a bar die at their own value
        lengths[bars.birth_vertex] = bars.lengths
        lengths[bars.essential_vertex] = np.inf
        np.testing.assert_allclose(kept["length"], lengths, rtol=1e-12, atol=1e-15)

        # Per-type means, and the pooled correlation without the global minimum.
        by_group = statistics[statistics["configuration"] == configuration].set_index("group")
        finite = kept[~kept["essential"]]
        for name, own in kept.groupby("group"):
            assert by_group.loc[name, "test_error_mean"] == pytest.approx(own["test_error"].mean())
            own_finite = finite[finite["group"] == name]["length"]
            if len(own_finite):
                assert by_group.loc[name, "length_mean"] == pytest.approx(own_finite.mean())
        pooled = correlation[(correlation["configuration"] == configuration)
                             & (correlation["scope"] == "all")].iloc[0]
        assert pooled["n"] == len(finite)
        expected = spearmanr(finite["length"], finite["test_error"]).statistic
        assert pooled["rho"] == pytest.approx(expected, abs=1e-12)


def test_cnn_depth_width_tables_are_consistent(smoke_run):
    import yaml
    from scipy.stats import spearmanr

    folder = smoke_run("03_to_score_cnn")
    profile = yaml.safe_load((ROOT / "notebooks/profiles/smoke/03_to_score_cnn.yaml").read_text())
    segments = pd.read_csv(folder / "e3_segments.csv")
    scores = pd.read_csv(folder / "e3_scores.csv")
    trends = pd.read_csv(folder / "e3_trends.csv")
    keys = ["batch_norm", "n_conv", "channels"]
    grid = {(b, n, c) for b in profile["batch_norms"] for n in profile["n_convs"]
            for c in profile["channels"]}
    assert set(scores[keys].itertuples(index=False, name=None)) == grid

    # Recompute every TO-score (ord 2) from the saved raw segments.
    for row in scores.itertuples():
        rows = segments[(segments["batch_norm"] == row.batch_norm) & (segments["n_conv"] == row.n_conv)
                        & (segments["channels"] == row.channels) & ~segments["excluded"]]
        assert len(rows) == row.n_minima
        assert rows["essential"].sum() == 1
        finite = rows.loc[~rows["essential"], "length"].to_numpy()
        assert np.all(finite >= 0)
        assert row.to_score == pytest.approx(np.linalg.norm(finite), rel=1e-12, abs=1e-15)
        assert row.norm_ord == 2

    # Recompute the Spearman trends within each batch-norm setting.
    for row in trends.itertuples():
        part = scores[scores["batch_norm"] == row.batch_norm]
        assert row.n == len(part)
        if part["to_score"].nunique() > 1:
            expected = spearmanr(part[row.size], part["to_score"]).statistic
            assert row.rho == pytest.approx(expected, abs=1e-12)
        else:
            assert np.isnan(row.rho)
    for row in scores.itertuples():
        name = f"e3_barcode_nconv{row.n_conv}_ch{row.channels}_bn{int(row.batch_norm)}.png"
        assert (folder / "barcodes" / name).is_file()


def test_small_vs_large_tables_are_consistent(smoke_run):
    folder = smoke_run("04_small_vs_large")
    segments = pd.read_csv(folder / "e4_segments.csv")
    summary = pd.read_csv(folder / "e4_summary.csv").set_index("architecture")
    statistics = pd.read_csv(folder / "e4_statistics.csv", index_col=0)["value"]
    roles = segments.drop_duplicates("role").set_index("role")["architecture"]
    assert set(roles.index) == {"small", "large"}

    finite = {}
    for role, label in roles.items():
        rows = segments[(segments["architecture"] == label) & ~segments["excluded"]]
        assert rows["essential"].sum() == 1
        finite[role] = rows.loc[~rows["essential"], "length"].to_numpy()
        assert summary.loc[label, "to_score"] == pytest.approx(np.linalg.norm(finite[role]), abs=1e-15)
        assert summary.loc[label, "test_accuracy_mean"] == pytest.approx(rows["test_accuracy"].mean())
        assert summary.loc[label, "n_finite_segments"] == len(finite[role])

    # U counts the (small, large) pairs with the longer small segment, ties counting 1/2.
    small, large = finite["small"][:, None], finite["large"][None, :]
    u_statistic = float(np.sum(small > large) + 0.5 * np.sum(small == large))
    assert float(statistics["u_statistic"]) == pytest.approx(u_statistic)
    score_small = summary.loc[roles["small"], "to_score"]
    score_large = summary.loc[roles["large"], "to_score"]
    if score_small > 0:
        assert float(statistics["to_score_ratio"]) == pytest.approx(score_large / score_small)
    assert (folder / "e4_barcodes.png").is_file()
    assert (folder / "e4_comparison.pdf").is_file()
