"""Summary page of one profile's outputs: figures with captions, tables and verdicts.

The experiment notebooks leave in their output folder (``figures/<profile>/``) the files
this module reads:

- ``figures.json``: figure name (path without suffix, relative to the folder) to
  ``{"caption", "experiment"}``, written by :func:`toscore.runs.record_figure`;
- ``observations.json``: ``"<experiment>: <observation>"`` to ``{"experiment",
  "observation", "supported", "statistic", "value", "detail"}``, written by
  :func:`toscore.runs.record_observation`;
- every ``*.csv`` table;
- ``MANIFEST.json``, written by the runner (:mod:`toscore.reproduce`): profile, commit,
  dates, versions, device and wall time per notebook.

:func:`build_readme` turns them into a Markdown page, ``README.md`` of the same folder;
:func:`build_index` writes the page of the ``figures/`` folder that explains the profiles.

An observation counts as evidence for one of the two observations of Barannikov et al.
(arXiv:2012.15834) when its text starts with that observation's wording (case ignored): "barcodes and TO-scores decrease
as networks grow" or "minima with shorter segments generalize better". Any other
observation of experiment E1 is evidence for E1's agreement check; the remaining ones
are listed under their own wording.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import pandas as pd

__all__ = [
    "CLAIMS",
    "Claim",
    "SummaryInputs",
    "build_index",
    "build_readme",
    "input_table",
    "read_inputs",
    "verdict_rows",
    "write_summary",
]

FIGURES_FILE = "figures.json"
OBSERVATIONS_FILE = "observations.json"
MANIFEST_FILE = "MANIFEST.json"
SUMMARY_NOTEBOOK = "06_summary"  # the notebook that calls write_summary
README_FILE = "README.md"
COMMITTED_PROFILE = "cpu"

EXPERIMENTS = {
    "E1": "barcodes of toy functions and of small networks",
    "E2": "TO-score against depth and width, fully connected networks",
    "E3": "TO-score against depth and width, convolutional networks",
    "E4": "small against large architecture",
    "E5": "minima segments and generalization",
    "E6": "transformers",
}

PROFILES = {
    "smoke": "tiny settings that execute every cell in seconds, for continuous integration; "
    "its numbers mean nothing",
    "cpu": "real results on data available offline (scikit-learn's digits, MNIST-1D) with "
    "networks and path optimization sized for a 2-core CPU",
    "paper": "the paper's settings: torchvision datasets (MNIST, Fashion-MNIST, CIFAR, "
    "SVHN), paper-sized networks, a GPU and hours of compute",
}


@dataclass(frozen=True)
class Claim:
    """A statement the summary gives a verdict on.

    ``prefix`` (lower case) selects observations whose text starts with it;
    ``experiment`` selects the remaining observations of that experiment.
    """

    key: str
    text: str
    prefix: str | None = None
    experiment: str | None = None


CLAIMS = (
    Claim("1", "Barcodes and TO-scores decrease as networks grow",
          prefix="barcodes and to-scores decrease as networks grow"),
    Claim("2", "Minima with shorter segments generalize better",
          prefix="minima with shorter segments generalize better"),
    Claim("E1", "E1 agreement: the minima barcode from optimized paths agrees with the "
          "barcode of sampled points where both apply", experiment="E1"),
)

_VERDICTS = {True: "supported", False: "not supported", None: "undecided"}


@dataclass
class SummaryInputs:
    """Everything the summary reads from one output folder.

    Attributes
    ----------
    folder : Path
    figures : dict of str to dict
        Contents of ``figures.json`` (empty when absent).
    observations : dict of str to dict
        Contents of ``observations.json`` (empty when absent).
    manifest : dict or None
        Contents of ``MANIFEST.json``; None when absent.
    tables : list of dict
        One per CSV, sorted by path: ``path`` (relative, POSIX), ``rows``, ``columns``
        (list of str), ``error`` (None, or why the file could not be read).
    """

    folder: Path
    figures: dict[str, dict]
    observations: dict[str, dict]
    manifest: dict | None
    tables: list[dict]


def _read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None


def _csv_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.rglob("*.csv")
        if not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def read_inputs(folder: str | Path) -> SummaryInputs:
    """Read the figure and observation records, the manifest and every CSV of a folder.

    The manifest's entry for the summary notebook itself is left out: when the notebook
    reads it, that entry still describes an earlier run.

    Parameters
    ----------
    folder : str or Path
        An output folder such as ``figures/cpu``; it may be absent or empty.

    Returns
    -------
    SummaryInputs

    Raises
    ------
    ValueError
        If ``figures.json``, ``observations.json`` or ``MANIFEST.json`` is not valid
        JSON or not a JSON object.
    """
    folder = Path(folder)
    records = {}
    for name, default in ((FIGURES_FILE, {}), (OBSERVATIONS_FILE, {}), (MANIFEST_FILE, None)):
        content = _read_json(folder / name, default)
        if content is not None and not isinstance(content, dict):
            raise ValueError(
                f"{folder / name} must hold a JSON object; got {type(content).__name__}"
            )
        records[name] = content
    manifest = records[MANIFEST_FILE]
    if manifest and isinstance(manifest.get("notebooks"), dict):
        # The summary notebook reads the manifest while it runs. Its own entry there
        # describes an earlier run, whose commit and time do not belong to these results.
        notebooks = {stem: entry for stem, entry in manifest["notebooks"].items()
                     if stem != SUMMARY_NOTEBOOK}
        if len(notebooks) < len(manifest["notebooks"]):
            total = sum(float(entry.get("wall_time_s") or 0.0) for entry in notebooks.values())
            manifest = {**manifest, "notebooks": notebooks, "total_wall_time_s": total}
        records[MANIFEST_FILE] = manifest
    tables = []
    for path in _csv_files(folder):
        entry = {"path": path.relative_to(folder).as_posix(), "rows": None, "columns": [],
                 "error": None}
        try:
            frame = pd.read_csv(path)
            entry.update(rows=len(frame), columns=[str(column) for column in frame.columns])
        except (OSError, ValueError) as err:  # pandas' parser errors are ValueErrors
            entry["error"] = f"{type(err).__name__}: {err}"
        tables.append(entry)
    return SummaryInputs(folder, records[FIGURES_FILE], records[OBSERVATIONS_FILE],
                         records[MANIFEST_FILE], tables)


def input_table(folder: str | Path) -> pd.DataFrame:
    """List the files the summary of ``folder`` reads, for a notebook's plan cell.

    Returns
    -------
    DataFrame
        One row per file, with columns ``file`` (relative path), ``kind``, ``present``
        (bool) and ``entries`` (notebooks of the manifest, figures, observations or CSV
        rows; None when the file is absent or unreadable).
    """
    folder = Path(folder)
    rows = []
    for name, kind, key in ((MANIFEST_FILE, "run manifest", "notebooks"),
                            (FIGURES_FILE, "figure captions", None),
                            (OBSERVATIONS_FILE, "observation verdicts", None)):
        path = folder / name
        entries = None
        if path.is_file():
            try:
                content = json.loads(path.read_text(encoding="utf-8"))
                entries = len(content.get(key, {}) if key else content)
            except (ValueError, AttributeError):
                pass
        rows.append({"file": name, "kind": kind, "present": path.is_file(), "entries": entries})
    for path in _csv_files(folder):
        try:
            entries = len(pd.read_csv(path))
        except (OSError, ValueError):
            entries = None
        rows.append({"file": path.relative_to(folder).as_posix(), "kind": "table",
                     "present": True, "entries": entries})
    table = pd.DataFrame(rows, columns=["file", "kind", "present", "entries"])
    table["entries"] = table["entries"].astype("Int64")  # counts, with <NA> for missing
    return table


def _claim_of(entry: dict) -> Claim | None:
    text = str(entry.get("observation", "")).strip().lower()
    for claim in CLAIMS:
        if claim.prefix is not None and text.startswith(claim.prefix):
            return claim
    for claim in CLAIMS:
        if claim.experiment is not None and entry.get("experiment") == claim.experiment:
            return claim
    return None


def _experiment_order(name: str) -> tuple:
    match = re.fullmatch(r"[Ee](\d+)", name or "")
    return (0, int(match[1]), "") if match else (1, 0, name or "")


def verdict_rows(observations: dict[str, dict]) -> list[dict]:
    """Turn recorded observations into the rows of the verdict table.

    Parameters
    ----------
    observations : dict of str to dict
        The contents of ``observations.json``.

    Returns
    -------
    list of dict
        Keys ``claim``, ``experiment``, ``verdict`` ("supported", "not supported",
        "undecided" or "not run"), ``statistic``, ``value`` (float or None) and
        ``detail`` (prefixed by the recorded wording of the observation when it
        differs from the claim). First every entry of each claim of :data:`CLAIMS` in order, sorted
        by experiment, or one "not run" row for a claim without evidence; then the
        observations that match no claim, under their own text.
    """
    by_claim: dict[str, list[dict]] = {claim.key: [] for claim in CLAIMS}
    others = []
    for entry in observations.values():
        claim = _claim_of(entry)
        (by_claim[claim.key] if claim else others).append(entry)

    def row(claim_text: str, entry: dict) -> dict:
        supported = entry.get("supported")
        wording = " ".join(str(entry.get("observation", "")).split())
        detail = str(entry.get("detail", ""))
        if wording.lower() != claim_text.lower():
            # The experiment's own wording (such as "... grow deeper and wider") is kept.
            detail = f"{wording}: {detail}" if detail else wording
        return {
            "claim": claim_text,
            "experiment": str(entry.get("experiment", "")),
            "verdict": _VERDICTS.get(supported if supported is None else bool(supported)),
            "statistic": str(entry.get("statistic", "")),
            "value": entry.get("value"),
            "detail": detail,
        }

    def order(entry: dict) -> tuple:
        return _experiment_order(str(entry.get("experiment", ""))), str(entry.get("observation"))

    rows = []
    for claim in CLAIMS:
        entries = sorted(by_claim[claim.key], key=order)
        if not entries:
            rows.append({"claim": claim.text, "experiment": claim.experiment or "",
                         "verdict": "not run", "statistic": "", "value": None,
                         "detail": "no experiment of this run recorded evidence"})
        rows += [row(claim.text, entry) for entry in entries]
    for entry in sorted(others, key=order):
        rows.append(row(str(entry.get("observation", "")), entry))
    return rows


def _cell(text: Any) -> str:
    """Make text safe for one cell of a Markdown table."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _number(value: Any) -> str:
    if value is None:
        return ""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return _cell(value)
    return "n/a" if math.isnan(value) else f"{value:.3g}"


def _link(path: str) -> str:
    return quote(path, safe="/-_.~")


def _short(commit: str | None) -> str:
    return commit[:10] if commit else "unknown"


def _title(profile: str, manifest: dict | None) -> list[str]:
    if not manifest:
        return [f"# Results of the `{profile}` profile (date and commit unknown)", "",
                f"This folder has no {MANIFEST_FILE}: the runner "
                "(`python -m toscore.reproduce`) writes it, so these outputs were not "
                "produced by a full run, or it was removed."]
    notebooks = manifest.get("notebooks", {}) or {}
    dates = sorted({str(entry.get("date_utc", ""))[:10] for entry in notebooks.values()
                    if entry.get("date_utc")}) or [str(manifest.get("date_utc", ""))[:10]]
    date = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    commits = sorted({(entry.get("commit"), bool(entry.get("dirty")))
                      for entry in notebooks.values()}
                     or {(manifest.get("commit"), bool(manifest.get("dirty")))},
                     key=lambda item: (item[0] or "", item[1]))
    commit_text = ", ".join(
        f"`{_short(commit)}`" + (" with uncommitted changes" if dirty else "")
        for commit, dirty in commits)
    lines = [f"# Results of the `{profile}` profile, {date} (UTC), commit {commit_text}"]
    if manifest.get("profile") not in (None, profile):
        lines += ["", f"Note: {MANIFEST_FILE} names the profile `{manifest.get('profile')}`."]
    return lines


def _run_section(manifest: dict | None) -> list[str]:
    if not manifest:
        return []
    lines = ["## Run", "",
             f"From [{MANIFEST_FILE}]({MANIFEST_FILE}), which also lists package versions.", "",
             "| notebook | status | wall time | finished (UTC) | commit |",
             "|---|---|---:|---|---|"]
    for stem, entry in (manifest.get("notebooks", {}) or {}).items():
        seconds = entry.get("wall_time_s")
        wall = "" if seconds is None else f"{float(seconds):.0f} s"
        commit = _short(entry.get("commit")) + (" (dirty)" if entry.get("dirty") else "")
        lines.append(f"| {_cell(stem)} | {_cell(entry.get('status', ''))} | {wall} | "
                     f"{_cell(entry.get('date_utc', ''))} | {_cell(commit)} |")
    total = manifest.get("total_wall_time_s")
    if total is not None:
        lines += ["", f"Total wall time: {float(total):.0f} s ({float(total) / 3600:.2f} h)."]
    device = manifest.get("device") or {}
    if device:
        parts = [str(device.get("cpu") or "unknown CPU")]
        if device.get("cpu_cores"):
            parts.append(f"{device['cpu_cores']} cores")
        if device.get("torch_threads"):
            parts.append(f"{device['torch_threads']} torch threads")
        cuda = device.get("cuda") or []
        parts.append("CUDA: " + ", ".join(cuda) if cuda else "no CUDA device")
        lines.append(f"Device: {'; '.join(parts)}. Python {manifest.get('python', '?')}.")
    return lines + [""]


def _figure_section(figures: dict[str, dict], folder: Path) -> list[str]:
    lines = ["## Figures", ""]
    if not figures:
        return lines + ["No figure was recorded.", ""]
    groups: dict[str, list[tuple[str, dict]]] = {}
    for name, entry in figures.items():
        groups.setdefault(str(entry.get("experiment") or "other"), []).append((name, entry))
    for experiment in sorted(groups, key=_experiment_order):
        title = EXPERIMENTS.get(experiment)
        lines += [f"### {experiment}" + (f": {title}" if title else ""), ""]
        for name, entry in sorted(groups[experiment]):
            caption = " ".join(str(entry.get("caption", "")).split())
            png = f"{name}.png"
            lines.append(f"![{caption.replace(']', ')').replace('[', '(')}]({_link(png)})")
            lines.append("")
            note = "" if (folder / png).is_file() else f" (missing: {png})"
            pdf = f" ([PDF]({_link(name + '.pdf')}))" if (folder / f"{name}.pdf").is_file() else ""
            lines += [f"*{caption}*{pdf}{note}", ""]
    return lines


def _verdict_section(observations: dict[str, dict]) -> list[str]:
    lines = ["## The paper's observations in this run", "",
             "| observation | experiment | verdict | statistic | value | detail |",
             "|---|---|---|---|---:|---|"]
    for row in verdict_rows(observations):
        lines.append(
            f"| {_cell(row['claim'])} | {_cell(row['experiment'])} | **{row['verdict']}** | "
            f"{_cell(row['statistic'])} | {_number(row['value'])} | {_cell(row['detail'])} |")
    return lines + [""]


def _table_section(tables: list[dict]) -> list[str]:
    lines = ["## Tables", ""]
    if not tables:
        return lines + ["No CSV table was written.", ""]
    for table in tables:
        link = f"[{table['path']}]({_link(table['path'])})"
        if table["error"]:
            lines.append(f"- {link}: unreadable ({_cell(table['error'])})")
            continue
        columns = table["columns"]
        shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
        lines.append(f"- {link}: {table['rows']} rows; columns {shown}")
    return lines + [""]


def build_readme(inputs: SummaryInputs, profile: str) -> str:
    """Build the summary page of one profile's output folder.

    Parameters
    ----------
    inputs : SummaryInputs
        What :func:`read_inputs` read from the folder.
    profile : str
        The profile name, for the title.

    Returns
    -------
    str
        Markdown: a title with profile, date and commit (from the manifest), the verdict
        table for the paper's observations, every recorded figure embedded with its
        caption and grouped by experiment, the list of CSV tables, and the run record.
        Links are relative to the folder.
    """
    lines = _title(profile, inputs.manifest)
    lines += ["", "Generated by `notebooks/06_summary.ipynb` from the files of this folder.", ""]
    lines += _verdict_section(inputs.observations)
    lines += _figure_section(inputs.figures, inputs.folder)
    lines += _table_section(inputs.tables)
    lines += _run_section(inputs.manifest)
    return "\n".join(lines).rstrip() + "\n"


def build_index(profiles: Sequence[str], committed: str = COMMITTED_PROFILE) -> str:
    """Build the page of the ``figures/`` folder: where the committed run is, what profiles are.

    Parameters
    ----------
    profiles : sequence of str
        The profile names (folders of ``notebooks/profiles``).
    committed : str
        The profile whose outputs are committed to the repository.

    Returns
    -------
    str
        Markdown linking ``<committed>/README.md`` and describing every profile.
    """
    lines = [
        "# Figures", "",
        f"[{committed}/README.md]({committed}/README.md) summarizes the committed reference "
        f"run (profile `{committed}`): every figure with its caption, the tables, and "
        "whether the run supports the paper's observations.", "",
        "Each folder holds the outputs of one parameter profile, a folder of "
        "`notebooks/profiles/` with one YAML file of parameter values per notebook:", "",
    ]
    for name in profiles:
        description = PROFILES.get(name, "a profile of this checkout")
        mark = " Its outputs are committed." if name == committed else ""
        lines.append(f"- `{name}`: {description}.{mark}")
    lines += [
        "",
        "Regenerate a folder with `./reproduce.sh --profile PROFILE`; first check it in "
        "seconds with `./reproduce.sh --profile PROFILE --dry-run`, which builds every "
        "configuration on synthetic data and prints its size. Every folder's "
        "`MANIFEST.json` records the commit, date, package versions, device and wall time "
        "of each notebook.",
    ]
    return "\n".join(lines) + "\n"


def write_summary(folder: str | Path, profile: str, profiles: Sequence[str] = ()) -> list[Path]:
    """Write ``<folder>/README.md`` and, for the committed profile, the index one level up.

    Parameters
    ----------
    folder : str or Path
        The profile's output folder, such as ``figures/cpu``.
    profile : str
        The profile name.
    profiles : sequence of str
        Every profile name, for the index page.

    Returns
    -------
    list of Path
        The pages written: the summary, then the index ``<folder>/../README.md`` when
        ``profile`` is the committed one (``cpu``) and ``folder`` is named after it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / README_FILE]
    written[0].write_text(build_readme(read_inputs(folder), profile), encoding="utf-8")
    # Only in the usual layout figures/<profile>/: an output folder given elsewhere must
    # not get a page written beside it.
    if profile == COMMITTED_PROFILE and folder.name == profile:
        index = folder.parent / README_FILE
        index.write_text(build_index(list(profiles) or [profile], committed=profile),
                         encoding="utf-8")
        written.append(index)
    return written
