"""The summary page built from hand-written figure, observation, manifest and CSV files."""

import json
import re

import pandas as pd
import pytest

from toscore import runs, summary

FIGURES = {
    "e2_digits_to_score_depth_width": {"caption": "TO-score on digits against depth and width.",
                                       "experiment": "E2"},
    "barcodes/e1_toy_barcode": {"caption": "Barcode of a two-basin toy function.",
                                "experiment": "E1"},
    "e10_extra": {"caption": "A figure of a tenth experiment.", "experiment": "E10"},
}

OBSERVATIONS = {
    "E2: barcodes and TO-scores decrease as networks grow deeper and wider": {
        "experiment": "E2", "supported": True, "value": -0.5,
        "observation": "barcodes and TO-scores decrease as networks grow deeper and wider",
        "statistic": "largest Spearman rho", "detail": "digits depth: rho=-0.50 | p=0.3",
    },
    "E3: Barcodes and TO-scores decrease as networks grow": {
        "experiment": "E3", "supported": None, "value": float("nan"),
        "observation": "Barcodes and TO-scores decrease as networks grow",
        "statistic": "largest Spearman rho", "detail": "too few configurations",
    },
    "E5: minima with shorter segments generalize better": {
        "experiment": "E5", "supported": False, "value": 0.0123,
        "observation": "minima with shorter segments generalize better",
        "statistic": "test error difference", "detail": "type 2 minus type 1",
    },
    "E4: the larger network trains to lower loss": {
        "experiment": "E4", "supported": True, "value": 1.0,
        "observation": "the larger network trains to lower loss",
        "statistic": "loss ratio", "detail": "",
    },
}

MANIFEST = {
    "profile": "cpu", "commit": "b" * 40, "dirty": False, "date_utc": "2025-03-02T09:00:00+00:00",
    "command": "python -m toscore.reproduce --profile cpu --only 02_x",
    "python": "3.11.7", "packages": {"torch": "2.14.1"},
    "device": {"cpu": "Example CPU", "cpu_cores": 2, "torch_threads": 2, "cuda": []},
    "notebooks": {
        "01_x": {"status": "completed", "wall_time_s": 60.0, "commit": "a" * 40, "dirty": True,
                 "date_utc": "2025-03-01T10:00:00+00:00"},
        "02_x": {"status": "completed", "wall_time_s": 120.0, "commit": "b" * 40, "dirty": False,
                 "date_utc": "2025-03-02T10:00:00+00:00"},
    },
    "total_wall_time_s": 180.0,
}


def _folder(path, *, figures=FIGURES, observations=OBSERVATIONS, manifest=MANIFEST, pngs=True):
    path.mkdir(parents=True, exist_ok=True)
    (path / "figures.json").write_text(json.dumps(figures))
    (path / "observations.json").write_text(json.dumps(observations))
    if manifest is not None:
        (path / "MANIFEST.json").write_text(json.dumps(manifest))
    if pngs:
        for name in figures:
            (path / f"{name}.png").parent.mkdir(parents=True, exist_ok=True)
            (path / f"{name}.png").write_bytes(b"\x89PNG")
    pd.DataFrame({"depth": [1, 2, 3], "to_score": [0.3, 0.2, 0.1]}).to_csv(
        path / "e2_scores.csv", index=False)
    (path / "barcodes").mkdir(exist_ok=True)
    pd.DataFrame({"birth": [0.1] * 5}).to_csv(path / "barcodes" / "e1_segments.csv", index=False)
    return path


def _table_rows(markdown, header):
    """Cells of the Markdown table that follows the line ``header``."""
    lines = markdown.splitlines()
    start = next(i for i in range(lines.index(header), len(lines)) if lines[i].startswith("|"))
    rows = []
    for line in lines[start + 2:]:  # after the column names and the separator
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


@pytest.fixture
def readme(tmp_path):
    folder = _folder(tmp_path / "cpu")
    return summary.build_readme(summary.read_inputs(folder), "cpu")


def test_figures_embedded_under_experiment(readme):
    lines = readme.splitlines()
    positions = {}
    for name, entry in FIGURES.items():
        image = f"![{entry['caption']}]({name}.png)"
        assert image in lines
        assert f"*{entry['caption']}*" in readme
        positions[entry["experiment"]] = lines.index(image)
    headings = {experiment: next(i for i, line in enumerate(lines)
                                 if line.startswith(f"### {experiment}")
                                 and line[4 + len(experiment):5 + len(experiment)] in ("", ":"))
                for experiment in ("E1", "E2", "E10")}
    # Natural order E1 < E2 < E10, each figure below its own heading.
    assert headings["E1"] < positions["E1"] < headings["E2"] < positions["E2"] < headings["E10"]
    assert headings["E10"] < positions["E10"]
    assert "missing" not in readme


def test_verdict_table_rows(readme):
    rows = _table_rows(readme, "## The paper's observations in this run")
    claim1, claim2, agreement = (claim.text for claim in summary.CLAIMS)
    assert [row[:3] for row in rows] == [
        [claim1, "E2", "**supported**"],
        [claim1, "E3", "**undecided**"],
        [claim2, "E5", "**not supported**"],
        [agreement, "E1", "**not run**"],
        ["the larger network trains to lower loss", "E4", "**supported**"],
    ]
    assert all(len(row) == 6 for row in rows)  # the "|" inside a detail is escaped
    assert rows[0][3:] == ["largest Spearman rho", "-0.5",
                           "barcodes and TO-scores decrease as networks grow deeper and wider: "
                           "digits depth: rho=-0.50 \\| p=0.3"]
    assert rows[1][4] == "n/a"
    assert rows[2][3:] == ["test error difference", "0.0123", "type 2 minus type 1"]


def test_e1_observation_is_agreement_evidence():
    entry = {"experiment": "E1", "observation": "minima barcode matches the sampled barcode",
             "supported": True, "statistic": "max |birth difference|", "value": 1e-4,
             "detail": "3 toy functions"}
    rows = summary.verdict_rows({"E1: x": entry})
    agreement = [row for row in rows if row["claim"] == summary.CLAIMS[2].text]
    assert [(row["verdict"], row["value"]) for row in agreement] == [("supported", 1e-4)]
    assert [row["verdict"] for row in rows if row["claim"] != summary.CLAIMS[2].text] == [
        "not run", "not run"]


def test_title_and_run_section_from_the_manifest(readme):
    title = readme.splitlines()[0]
    assert title.startswith("# Results of the `cpu` profile, 2025-03-01 to 2025-03-02 (UTC)")
    assert "`aaaaaaaaaa` with uncommitted changes" in title
    assert "`bbbbbbbbbb`" in title
    rows = _table_rows(readme, "## Run")
    assert [row[:3] for row in rows] == [["01_x", "completed", "60 s"],
                                         ["02_x", "completed", "120 s"]]
    assert "Total wall time: 180 s (0.05 h)." in readme
    assert "Example CPU; 2 cores; 2 torch threads; no CUDA device" in readme


def test_summary_notebook_entry_is_left_out(tmp_path):
    # The summary notebook's entry is from an earlier run when it reads the manifest.
    stale = {"status": "completed", "wall_time_s": 5.0, "commit": "c" * 40, "dirty": False,
             "date_utc": "2024-12-31T10:00:00+00:00"}
    manifest = {**MANIFEST, "notebooks": {**MANIFEST["notebooks"], "06_summary": stale},
                "total_wall_time_s": 185.0}
    folder = _folder(tmp_path / "cpu", manifest=manifest)
    text = summary.build_readme(summary.read_inputs(folder), "cpu")
    assert text.splitlines()[0].startswith(
        "# Results of the `cpu` profile, 2025-03-01 to 2025-03-02 (UTC)")
    assert "cccccccccc" not in text
    assert "| 06_summary |" not in text
    assert "Total wall time: 180 s (0.05 h)." in text


def test_tables_are_listed_with_their_sizes(readme):
    assert ("- [barcodes/e1_segments.csv](barcodes/e1_segments.csv): 5 rows; columns birth"
            in readme)
    assert "- [e2_scores.csv](e2_scores.csv): 3 rows; columns depth, to_score" in readme


def test_without_manifest_and_figures(tmp_path):
    folder = _folder(tmp_path / "smoke", manifest=None, pngs=False)
    text = summary.build_readme(summary.read_inputs(folder), "smoke")
    assert text.startswith("# Results of the `smoke` profile (date and commit unknown)")
    assert "## Run" not in text
    assert "(missing: barcodes/e1_toy_barcode.png)" in text
    empty = summary.build_readme(summary.read_inputs(tmp_path / "absent"), "smoke")
    assert "No figure was recorded." in empty
    assert "No CSV table was written." in empty
    verdicts = _table_rows(empty, "## The paper's observations in this run")
    assert [row[2] for row in verdicts] == ["**not run**"] * 3


def test_reads_run_helper_files(tmp_path):
    folder = tmp_path / "cpu"
    runs.record_figure(folder, "e2_trend", "A trend.", experiment="E2")
    runs.record_observation(folder, "E2", "barcodes and TO-scores decrease as networks grow "
                            "deeper and wider", supported=False, statistic="rho", value=0.25)
    inputs = summary.read_inputs(folder)
    text = summary.build_readme(inputs, "cpu")
    assert "![A trend.](e2_trend.png)" in text
    first = summary.verdict_rows(inputs.observations)[0]
    assert (first["claim"], first["verdict"], first["value"]) == (
        summary.CLAIMS[0].text, "not supported", 0.25)


@pytest.mark.parametrize("profile, folder_name, index", [
    ("cpu", "cpu", True), ("smoke", "smoke", False), ("cpu", "elsewhere", False)])
def test_index_only_for_cpu_folder(tmp_path, profile, folder_name,
                                                                index):
    folder = _folder(tmp_path / "figures" / folder_name)
    written = summary.write_summary(folder, profile, profiles=["cpu", "paper", "smoke"])
    assert written[0] == folder / "README.md"
    assert (folder / "README.md").read_text().startswith(f"# Results of the `{profile}` profile")
    assert (tmp_path / "figures" / "README.md").is_file() == index
    assert len(written) == 1 + index
    if index:
        page = (tmp_path / "figures" / "README.md").read_text()
        assert "[cpu/README.md](cpu/README.md)" in page
        assert [line[:9] for line in page.splitlines() if line.startswith("- `")] == [
            "- `cpu`: ", "- `paper`", "- `smoke`"]


def test_input_table_counts_entries(tmp_path):
    folder = _folder(tmp_path / "cpu")
    table = summary.input_table(folder).set_index("file")
    assert table.loc["MANIFEST.json", "entries"] == 2
    assert table.loc["figures.json", "entries"] == len(FIGURES)
    assert table.loc["observations.json", "entries"] == len(OBSERVATIONS)
    assert table.loc["e2_scores.csv", "entries"] == 3
    assert table.loc["barcodes/e1_segments.csv", "entries"] == 5
    absent = summary.input_table(tmp_path / "absent")
    assert list(absent["present"]) == [False, False, False]
    assert absent["entries"].isna().all()


@pytest.mark.parametrize("name, content, message", [
    ("figures.json", "{not json", "figures.json is not valid JSON"),
    ("observations.json", "[1, 2]", "observations.json must hold a JSON object; got list"),
])
def test_malformed_records_are_rejected(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        summary.read_inputs(tmp_path)
