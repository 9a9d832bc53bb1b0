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


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Run a notebook once with the smoke profile; return its output folder."""
    runs = {}

    def run(stem: str) -> Path:
        if stem not in runs:
            output_dir = tmp_path_factory.mktemp(stem)
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
