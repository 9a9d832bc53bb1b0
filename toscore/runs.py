"""Run bookkeeping: repository paths, seeding and provenance records."""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

__all__ = ["repo_root", "seed_everything", "provenance", "write_provenance", "record_figure",
           "record_observation"]

_PACKAGES = ("torch", "numpy", "scipy", "pandas", "ripser", "scikit-learn", "papermill", "seaborn")


def repo_root() -> Path:
    """Root of the toscore checkout: ``TOSCORE_ROOT`` if set, else the folder above the package."""
    if "TOSCORE_ROOT" in os.environ:
        return Path(os.environ["TOSCORE_ROOT"]).resolve()
    return Path(__file__).resolve().parent.parent


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def provenance(parameters: dict | None = None, device=None) -> dict:
    """Record of what produced a result: parameters, versions, commit, device, time (UTC)."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "parameters": parameters or {},
        "toscore_commit": _git_commit(),
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "device": str(device) if device is not None else None,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }


def write_provenance(directory, name: str, parameters: dict | None = None, device=None) -> Path:
    """Write :func:`provenance` as ``<directory>/<name>.json`` and return the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(provenance(parameters, device), indent=2, default=str) + "\n")
    return path


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root(), capture_output=True,
                                text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def record_figure(directory, name: str, caption: str, experiment: str) -> Path:
    """Register a saved figure with a one-sentence caption for the profile's summary.

    ``name`` is the figure's path relative to ``directory`` without the suffix (the PNG
    and PDF written by :func:`toscore.plots.save_figure`). Entries accumulate in
    ``<directory>/figures.json`` keyed by ``name``; rerunning a notebook replaces them.
    """
    return _update_json(Path(directory) / "figures.json", name,
                        {"caption": caption, "experiment": experiment})


def record_observation(directory, experiment: str, observation: str, supported: bool | None,
                       statistic: str, value: float, detail: str = "") -> Path:
    """Register whether a run supports one of the paper's observations, with its statistic.

    Entries accumulate in ``<directory>/observations.json`` keyed by ``experiment`` and
    ``observation``; ``supported`` is None when the run cannot decide.
    """
    key = f"{experiment}: {observation}"
    return _update_json(Path(directory) / "observations.json", key, {
        "experiment": experiment, "observation": observation,
        "supported": None if supported is None else bool(supported),
        "statistic": statistic, "value": float(value), "detail": detail,
    })


def _update_json(path: Path, key: str, entry: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = json.loads(path.read_text()) if path.exists() else {}
    entries[key] = entry
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)  # atomic, so an interrupted run never leaves half a file
    return path
