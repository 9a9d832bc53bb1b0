"""Run the toscore notebooks with papermill under a parameter profile.

``python -m toscore.reproduce --profile cpu`` executes every notebook
``notebooks/NN_name.ipynb`` in number order. Each notebook's parameters come from its
own ``parameters`` cell, then from ``notebooks/profiles/<profile>/<stem>.yaml`` when that
file exists, then from ``-p NAME VALUE`` options. Every value is checked against the
type of its default before anything runs. Executed copies go to
``runs/<profile>/notebooks/``, figures to ``figures/<profile>/`` (the notebooks'
``output_dir``), wall times to ``runs/<profile>/timings.json``. After each notebook the
run manifest ``<output_dir>/MANIFEST.json`` is updated: versions, device, commit, date
and wall time, per notebook.

``--dry-run`` executes each notebook only up to and including its cell tagged ``plan``,
with ``dry_run=True``, into ``runs/<profile>/dry-run/``, and prints the table that cell
shows: every configuration is built and sized without training, so a faulty profile
fails in seconds on any machine.

All paths are resolved from the repository root by :class:`Layout`. The root is the
folder above this file that contains ``notebooks/`` and ``pyproject.toml``, or the
folder named by the ``TOSCORE_ROOT`` environment variable.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .params import coerce_parameters, notebook_parameters

__all__ = [
    "Layout",
    "Notebook",
    "Run",
    "find_root",
    "main",
    "plan_output",
    "plan_runs",
    "truncate_at_plan",
    "update_manifest",
]

logger = logging.getLogger("toscore")

ROOT_ENV = "TOSCORE_ROOT"
DEFAULT_PROFILE = "cpu"
KERNEL_NAME = "python3"
REQUIRED_PARAMETERS = ("output_dir", "device", "dry_run")
# Set by the runner from --dry-run; a profile or -p must not set it.
RUNNER_PARAMETERS = ("dry_run",)
# A notebook that declares this parameter gets the profile name unless a file or -p sets it.
PROFILE_PARAMETER = "profile"
PLAN_TAG = "plan"
MANIFEST_NAME = "MANIFEST.json"
MANIFEST_PACKAGES = (
    "torch",
    "numpy",
    "scipy",
    "pandas",
    "ripser",
    "papermill",
    "seaborn",
    "scikit-learn",
    "mnist1d",
)
_NOTEBOOK_NAME = re.compile(r"^(\d+)_([A-Za-z0-9][A-Za-z0-9_-]*)\.ipynb$")


@dataclass(frozen=True)
class Layout:
    """Every path the runner reads or writes, derived from the repository root.

    Parameters
    ----------
    root : Path
        The repository root (the folder containing ``notebooks/``).
    """

    root: Path

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def profiles(self) -> Path:
        return self.notebooks / "profiles"

    def profile_dir(self, profile: str) -> Path:
        return self.profiles / profile

    def profile_file(self, profile: str, stem: str) -> Path:
        return self.profile_dir(profile) / f"{stem}.yaml"

    def output_dir(self, profile: str) -> str:
        """Return the default ``output_dir`` parameter, relative to the root (the kernel's cwd)."""
        return f"figures/{profile}"

    def run_dir(self, profile: str) -> Path:
        return self.root / "runs" / profile

    def executed_dir(self, profile: str) -> Path:
        return self.run_dir(profile) / "notebooks"

    def executed_notebook(self, profile: str, stem: str) -> Path:
        return self.executed_dir(profile) / f"{stem}.ipynb"

    def timings(self, profile: str) -> Path:
        return self.run_dir(profile) / "timings.json"

    def dry_run_dir(self, profile: str) -> Path:
        return self.run_dir(profile) / "dry-run"

    def dry_run_notebook(self, profile: str, stem: str) -> Path:
        return self.dry_run_dir(profile) / f"{stem}.ipynb"

    def manifest(self, output_dir: str) -> Path:
        """Return the manifest of an ``output_dir`` parameter (relative to the root or absolute)."""
        return self.root / output_dir / MANIFEST_NAME

    def relative(self, path: Path) -> str:
        """Return ``path`` relative to the root when it lies below it, for messages."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


@dataclass(frozen=True)
class Notebook:
    """A notebook ``NN_name.ipynb``: its number, stem and short name."""

    number: int
    stem: str
    name: str
    path: Path


@dataclass
class Run:
    """One notebook execution: the values to inject and where each came from."""

    notebook: Notebook
    parameters: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)


def find_root() -> Path:
    """Locate the repository root.

    Returns
    -------
    Path
        ``$TOSCORE_ROOT`` when set, else the closest folder above this module that
        contains both ``notebooks/`` and ``pyproject.toml``.

    Raises
    ------
    FileNotFoundError
        If ``$TOSCORE_ROOT`` has no ``notebooks/`` folder or no root is found.
    """
    override = os.environ.get(ROOT_ENV)
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / "notebooks").is_dir():
            raise FileNotFoundError(
            f"{ROOT_ENV}={override} has no notebooks/ folder; point it at the repository root"
        )
        return root
    for folder in Path(__file__).resolve().parents:
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise FileNotFoundError(
        f"repository root not found: no folder above {Path(__file__).resolve()} contains both "
        "notebooks/ and pyproject.toml; "
        f"set {ROOT_ENV} to the repository root"
    )


def discover_notebooks(layout: Layout) -> list[Notebook]:
    """Find the notebooks ``notebooks/NN_name.ipynb``, sorted by number then stem."""
    found = []
    for path in layout.notebooks.glob("*.ipynb"):
        match = _NOTEBOOK_NAME.match(path.name)
        if match:
            found.append(Notebook(int(match[1]), path.stem, match[2], path))
    return sorted(found, key=lambda notebook: (notebook.number, notebook.stem))


def discover_profiles(layout: Layout) -> list[str]:
    """List the profile names, which are the folders in ``notebooks/profiles``."""
    if not layout.profiles.is_dir():
        return []
    return sorted(
        path.name
        for path in layout.profiles.iterdir()
        if path.is_dir() and not path.name.startswith(".")
    )


def select_notebooks(notebooks: Sequence[Notebook], only: Sequence[str]) -> list[Notebook]:
    """Keep the notebooks named in ``only`` (stem or short name), in number order.

    Raises
    ------
    ValueError
        If a name matches no notebook; the message lists the valid names.
    """
    if not only:
        return list(notebooks)
    unknown = [name for name in only if not any(name in (nb.stem, nb.name) for nb in notebooks)]
    if unknown:
        valid = [nb.stem for nb in notebooks]
        hints = [_did_you_mean(name, valid + [nb.name for nb in notebooks]) for name in unknown]
        raise ValueError(
            f"unknown notebook {', '.join(f'{n!r}{h}' for n, h in zip(unknown, hints))}; "
            f"valid names: {', '.join(valid) or '(none)'} (the part after the number "
            "works too)"
        )
    return [nb for nb in notebooks if nb.stem in only or nb.name in only]


def load_profile(path: Path) -> dict[str, Any]:
    """Read a profile file: a YAML mapping of parameter names to values; ``{}`` if absent.

    Raises
    ------
    ValueError
        If the file is not valid YAML or does not hold a mapping with string keys.
    """
    import yaml

    if not path.is_file():
        return {}
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if content is None:
        return {}
    if not isinstance(content, dict) or not all(isinstance(key, str) for key in content):
        raise ValueError(
            f"{path} must hold a mapping of parameter names to values; got "
            f"{type(content).__name__}"
        )
    return content


def plan_runs(
    layout: Layout,
    profile: str,
    notebooks: Sequence[Notebook],
    cli_parameters: Sequence[tuple[str, str]] = (),
    dry_run: bool = False,
) -> list[Run]:
    """Resolve and check the parameters of every selected notebook.

    For each notebook the defaults of its parameters cell are overridden by the profile
    file, then by ``cli_parameters``; ``output_dir`` is set to ``figures/<profile>``
    unless one of those gives it, and so is ``profile`` to the profile name in the
    notebooks that have that parameter. ``dry_run`` is always set, from the argument
    of the same name. A command-line parameter applies to each selected notebook that
    has it.

    Parameters
    ----------
    layout : Layout
    profile : str
    notebooks : sequence of Notebook
        The notebooks to run, in order.
    cli_parameters : sequence of (str, str)
        ``(name, value)`` pairs from ``-p``; later pairs win.
    dry_run : bool
        The value of every notebook's ``dry_run`` parameter.

    Returns
    -------
    list of Run
        One per notebook, with coerced values.

    Raises
    ------
    ValueError
        Listing every problem found: a parameters cell that cannot be read, a missing
        ``output_dir``, ``device`` or ``dry_run`` parameter, an unknown name or a badly
        typed value in a profile file, a ``-p`` name that no selected notebook has,
        ``dry_run`` set by a profile file or ``-p``.
    """
    problems = []
    defaults_by_stem = {}
    for notebook in notebooks:
        try:
            defaults_by_stem[notebook.stem] = notebook_parameters(notebook.path)
        except ValueError as err:
            problems.append(str(err))

    cli = dict(cli_parameters)
    known = {name for defaults in defaults_by_stem.values() for name in defaults}
    for name in cli:
        if name in RUNNER_PARAMETERS:
            problems.append(f"-p {name}: set by the runner; use --dry-run instead")
        elif defaults_by_stem and name not in known:
            problems.append(
                f"-p {name}: no selected notebook has a parameter {name!r}"
                f"{_did_you_mean(name, sorted(known))}; valid names: {', '.join(sorted(known))}"
            )

    runs = []
    for notebook in notebooks:
        defaults = defaults_by_stem.get(notebook.stem)
        if defaults is None:
            continue
        missing = [name for name in REQUIRED_PARAMETERS if name not in defaults]
        if missing:
            problems.append(
                f"{notebook.stem}: the parameters cell must define {_and(missing)} "
                f"(every notebook takes {_and(REQUIRED_PARAMETERS)})"
            )
            continue
        profile_path = layout.profile_file(profile, notebook.stem)
        try:
            from_profile = load_profile(profile_path)
        except ValueError as err:
            problems.append(str(err))
            continue
        reserved = [name for name in RUNNER_PARAMETERS if name in from_profile]
        if reserved:
            problems.append(
                f"{notebook.stem} ({layout.relative(profile_path)}): {', '.join(reserved)} "
                "is set by the runner (--dry-run), not by a profile file"
            )
            continue

        # Checked per source, so each message says where the faulty value came from.
        from_cli = {
            name: value
            for name, value in cli.items()
            if name in defaults and name not in RUNNER_PARAMETERS
        }
        parameters, sources, failed = {}, {}, False
        for origin, overrides in (
            (layout.relative(profile_path), from_profile),
            ("command line", from_cli),
        ):
            try:
                parameters.update(coerce_parameters(defaults, overrides))
            except ValueError as err:
                problems.append(f"{notebook.stem} ({origin}): {err}")
                failed = True
            sources.update(dict.fromkeys(overrides, origin))
        if failed:
            continue
        if "output_dir" not in parameters:
            parameters["output_dir"] = layout.output_dir(profile)
            sources["output_dir"] = f"profile {profile}"
        if PROFILE_PARAMETER in defaults and PROFILE_PARAMETER not in parameters:
            try:
                parameters.update(coerce_parameters(defaults, {PROFILE_PARAMETER: profile}))
            except ValueError as err:
                problems.append(f"{notebook.stem} (profile name): {err}")
                continue
            sources[PROFILE_PARAMETER] = f"profile {profile}"
        try:
            parameters.update(coerce_parameters(defaults, {"dry_run": dry_run}))
        except ValueError as err:
            problems.append(f"{notebook.stem} (parameters cell): {err}")
            continue
        sources["dry_run"] = "--dry-run" if dry_run else "runner"
        runs.append(Run(notebook, parameters, sources))

    if problems:
        raise ValueError("\n".join(problems))
    return runs


def stray_profile_files(layout: Layout, profile: str, notebooks: Sequence[Notebook]) -> list[Path]:
    """List the files of a profile folder that the runner never reads (``.yml``, typos)."""
    folder = layout.profile_dir(profile)
    if not folder.is_dir():
        return []
    stems = {notebook.stem for notebook in notebooks}
    return sorted(
        path
        for path in folder.iterdir()
        if not path.name.startswith(".") and not (path.suffix == ".yaml" and path.stem in stems)
    )


def _plan_cells(notebook: Any) -> list[int]:
    return [
        index
        for index, cell in enumerate(notebook.cells)
        if PLAN_TAG in cell.get("metadata", {}).get("tags", [])
    ]


def truncate_at_plan(path: str | Path) -> Any:
    """Return a notebook's cells up to and including its one cell tagged ``plan``.

    Parameters
    ----------
    path : str or Path
        Path to an ``.ipynb`` file.

    Returns
    -------
    nbformat.NotebookNode
        A copy of the notebook, metadata included, without the cells after the plan cell.

    Raises
    ------
    ValueError
        If no cell or more than one cell carries the ``plan`` tag.
    """
    import nbformat

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    tagged = _plan_cells(notebook)
    if len(tagged) != 1:
        found = "none" if not tagged else f"{len(tagged)}, cells {_and([i + 1 for i in tagged])}"
        raise ValueError(
            f"notebook {path.stem}: a dry run executes the notebook up to its cell tagged "
            f"{PLAN_TAG!r}, so exactly one cell must carry that tag; found {found}"
        )
    notebook.cells = notebook.cells[: tagged[0] + 1]
    return notebook


def plan_output(executed: str | Path) -> str | None:
    """Return the ``text/plain`` results that an executed notebook's plan cell displayed.

    Parameters
    ----------
    executed : str or Path
        An executed copy of a notebook with a cell tagged ``plan``.

    Returns
    -------
    str or None
        The plain-text form of every result and display output of the plan cell, in
        order, separated by blank lines (stream output such as log lines left out);
        None when the cell displayed nothing or is absent.
    """
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    texts = []
    for index in _plan_cells(notebook):
        for output in notebook.cells[index].get("outputs", []):
            if output.get("output_type") in ("execute_result", "display_data"):
                text = output.get("data", {}).get("text/plain")
                if text:
                    texts.append(text if isinstance(text, str) else "".join(text))
    return "\n\n".join(texts) if texts else None


@contextlib.contextmanager
def _interpreter_kernel(dry_run: bool = False, env: dict[str, str] | None = None) -> Iterator[None]:
    """Make the ``python3`` kernel run this interpreter, with a non-interactive backend.

    A kernelspec in a temporary folder put first on ``JUPYTER_PATH`` shadows any other
    ``python3`` kernelspec (for example a user-level one pointing to another Python).
    For a dry run the kernel shows whole tables, as wide as the terminal, since the plan
    tables are printed from their plain-text form.
    """
    from ipykernel.kernelspec import get_kernel_dict

    with tempfile.TemporaryDirectory(prefix="toscore-kernel-") as folder:
        spec_dir = Path(folder, "kernels", KERNEL_NAME)
        spec_dir.mkdir(parents=True)
        # The argv starts with sys.executable. Kernel-side log notices would interleave
        # with the runner's progress lines, so only errors are logged.
        arguments = ["--IPKernelApp.log_level=ERROR"]
        if dry_run:
            width = max(shutil.get_terminal_size((160, 24)).columns, 100)
            arguments += [
                "--IPKernelApp.exec_lines=import pandas as _toscore_pandas",
                "--IPKernelApp.exec_lines=_toscore_pandas.set_option('display.max_rows', 1000, "
                f"'display.max_columns', None, 'display.width', {width})",
                "--IPKernelApp.exec_lines=del _toscore_pandas",
            ]
        spec = get_kernel_dict(extra_arguments=arguments)
        spec["display_name"] = f"Python 3 ({sys.executable})"
        spec["env"] = {"MPLBACKEND": "Agg", **(env or {})}
        (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [folder, previous]))
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous


def _injectable(value: Any) -> Any:
    """Turn tuples into lists, because papermill writes only JSON-like values as literals."""
    if isinstance(value, (list, tuple)):
        return [_injectable(item) for item in value]
    if isinstance(value, dict):
        return {key: _injectable(item) for key, item in value.items()}
    return value


def _executed_copy(layout: Layout, profile: str, run: Run) -> Path:
    if run.parameters.get("dry_run"):
        return layout.dry_run_notebook(profile, run.notebook.stem)
    return layout.executed_notebook(profile, run.notebook.stem)


def _execute(layout: Layout, profile: str, run: Run) -> None:
    """Execute a notebook, or in a dry run its cells up to the plan cell, with papermill.

    A kernel that dies (killed, out of memory) raises ``DeadKernelError`` within about
    a second: nbclient polls the kernel process while it waits for a cell's reply.
    """
    import nbformat
    import papermill

    output = _executed_copy(layout, profile, run)
    output.parent.mkdir(parents=True, exist_ok=True)
    # A copy left by an earlier run would misplace the failing cell if this one fails early.
    output.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="toscore-plan-") as scratch:
        if run.parameters["dry_run"]:
            source = Path(scratch, run.notebook.path.name)
            nbformat.write(truncate_at_plan(run.notebook.path), source)
        else:
            source = run.notebook.path
            (layout.root / run.parameters["output_dir"]).mkdir(parents=True, exist_ok=True)
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=_injectable(run.parameters),
            cwd=str(layout.root),
            kernel_name=KERNEL_NAME,
            language="python",
            progress_bar=sys.stderr.isatty(),
            log_output=False,
        )


def _describe_failure(layout: Layout, profile: str, run: Run, error: BaseException) -> str:
    """Format the failed notebook, its failing cell, the error and the executed copy."""
    from papermill.exceptions import PapermillExecutionError

    output = _executed_copy(layout, profile, run)
    if isinstance(error, PapermillExecutionError):
        summary = f"{error.ename}: {error.evalue}"
    else:
        summary = f"{type(error).__name__}: {error}".rstrip(": ")
    cell = _failed_cell(output)
    kind = "dry run of notebook" if run.parameters.get("dry_run") else "notebook"
    lines = [f"{kind} {run.notebook.stem} failed (profile {profile})"]
    if cell is None:
        lines.append("  failing cell: none (no cell had started)")
    else:
        label, number, _, node = cell
        total = _cell_count(run.notebook.path)
        first_line = next((line for line in node.source.splitlines() if line.strip()), "")
        lines.append(
            f"  {label}: cell {number} of {total} in {layout.relative(run.notebook.path)} "
            f"(In [{node.get('execution_count')}] in the executed copy): {first_line}"
        )
    lines.append(f"  error: {summary}")
    lines.append(
        f"  executed copy: {layout.relative(output) if output.is_file() else 'not written'}"
    )
    return "\n".join(lines)


def _failed_cell(executed: Path) -> tuple[str, int, int, Any] | None:
    """Locate the cell where a run stopped.

    Returns ``(label, 1-based cell number in the source notebook, number of cells,
    cell)``, or None when no cell had started.
    """
    import nbformat

    try:
        notebook = nbformat.read(executed, as_version=4)
    except Exception:  # an unreadable copy only costs the cell location
        return None
    # Papermill adds an injected-parameters cell and error-marker cells; skip them so the
    # number refers to the source notebook.
    added = {"injected-parameters", "papermill-error-cell-tag"}
    source_cells = [
        cell
        for cell in notebook.cells
        if not added.intersection(cell.get("metadata", {}).get("tags", []))
    ]
    started = []
    for number, cell in enumerate(source_cells, start=1):
        timing = cell.get("metadata", {}).get("papermill", {})
        if timing.get("status") in ("failed", "running"):
            return "failing cell", number, len(source_cells), cell
        if timing.get("start_time"):
            started.append((number, cell))
    # A dead kernel leaves no failed mark; the run stopped in the last cell it started.
    if started:
        number, cell = started[-1]
        return "last cell started", number, len(source_cells), cell
    return None


def _cell_count(path: Path) -> int | str:
    import nbformat

    try:
        return len(nbformat.read(path, as_version=4).cells)
    except Exception:  # only the message loses a number
        return "?"


def _write_timings(layout: Layout, profile: str, seconds: dict[str, float], failed: str | None):
    record = {
        "profile": profile,
        "notebooks": {stem: round(value, 3) for stem, value in seconds.items()},
        "total": round(sum(seconds.values()), 3),
        "failed": failed,
    }
    path = layout.timings(profile)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


# Runs in a child interpreter: importing torch and asking for CUDA devices there keeps
# the runner free of a CUDA context while notebooks use the GPU.
_ENVIRONMENT_SCRIPT = """
import json, os, platform, sys
from importlib import metadata

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as lines:
            for line in lines:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None

device = {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "platform": platform.platform()}
if hasattr(os, "sched_getaffinity"):
    device["cpu_cores_available"] = len(os.sched_getaffinity(0))
try:
    import torch
    device["torch_threads"] = torch.get_num_threads()
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    device["cuda"] = [torch.cuda.get_device_name(index) for index in range(count)]
except Exception as error:
    device["torch_error"] = f"{type(error).__name__}: {error}"
print(json.dumps({
    "python": platform.python_version(),
    "packages": {name: version(name) for name in json.loads(sys.argv[1])},
    "device": device,
}))
"""


def _git_state(root: Path) -> dict[str, Any]:
    """Return ``{"commit": sha or None, "dirty": bool or None}`` of the checkout at ``root``.

    ``dirty`` means tracked or untracked files outside ``figures/`` and ``runs/`` differ
    from the commit; run outputs do not count.
    """

    def git(*arguments: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *arguments], cwd=root, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--", ".", ":(exclude)figures", ":(exclude)runs")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def _environment() -> dict[str, Any]:
    """Python and package versions and the device, as the kernels see them."""
    try:
        result = subprocess.run(
            [sys.executable, "-c", _ENVIRONMENT_SCRIPT, json.dumps(MANIFEST_PACKAGES)],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        logger.warning("could not record the environment in the manifest: %s", error)
        return {"python": sys.version.split()[0], "packages": {}, "device": {}}


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def update_manifest(path: str | Path, profile: str, stem: str, entry: dict[str, Any],
                    run: dict[str, Any]) -> dict[str, Any]:
    """Record one notebook's execution in a run manifest, keeping the other notebooks.

    Parameters
    ----------
    path : str or Path
        The manifest, ``<output_dir>/MANIFEST.json``; created when missing.
    profile : str
        The run's profile. A manifest of another profile is replaced, with a warning.
    stem : str
        The notebook whose entry is replaced.
    entry : dict
        That notebook's record: ``status``, ``wall_time_s``, ``date_utc`` and the keys
        of ``run`` as they were when it ran.
    run : dict
        The current run: ``commit``, ``dirty``, ``date_utc``, ``command``, ``python``,
        ``packages``, ``device``; stored at the top level.

    Returns
    -------
    dict
        The manifest written: ``profile``, the keys of ``run``, ``notebooks`` (stem to
        entry, sorted by stem) and ``total_wall_time_s`` (the sum over the entries).
    """
    path = Path(path)
    notebooks: dict[str, Any] = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            logger.warning("%s is unreadable (%s); starting a new manifest", path, error)
            previous = {}
        if previous.get("profile") == profile:
            notebooks = dict(previous.get("notebooks", {}))
        elif previous:
            logger.warning(
                "%s belongs to profile %r, not %r; starting a new manifest",
                path,
                previous.get("profile"),
                profile,
            )
    notebooks[stem] = entry
    manifest = {
        "profile": profile,
        **run,
        "notebooks": dict(sorted(notebooks.items())),
        "total_wall_time_s": round(
            sum(float(item.get("wall_time_s") or 0.0) for item in notebooks.values()), 3
        ),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)  # an interrupted write never leaves half a manifest
    return manifest


class _Manifests:
    """Write each finished notebook into the manifest of its output folder."""

    def __init__(self, layout: Layout, profile: str, command: str) -> None:
        self.layout = layout
        self.profile = profile
        self.started = _utc_now()
        self.command = command
        self.git = _git_state(layout.root)
        self._environment: dict[str, Any] | None = None

    def record(self, run: Run, status: str, seconds: float) -> None:
        if self._environment is None:
            self._environment = _environment()
        current = {
            **self.git,
            "date_utc": self.started,
            "command": self.command,
            **self._environment,
        }
        entry = {
            "status": status,
            "wall_time_s": round(seconds, 3),
            **current,
            "date_utc": _utc_now(),
        }
        path = self.layout.manifest(run.parameters["output_dir"])
        try:
            update_manifest(path, self.profile, run.notebook.stem, entry, current)
        except OSError as error:
            logger.warning("could not write %s: %s", path, error)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Map every file below ``folder`` to (modification time, size); None if it is absent."""
    if not folder.exists():
        return None
    return {
        path.relative_to(folder).as_posix(): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in folder.rglob("*")
        if path.is_file()
    }


def _dry_run_writes(before: dict | None, after: dict | None, folder: str) -> str | None:
    """Describe what a dry run changed in the output folder, or None when nothing.

    NOTE: another process writing into the same folder meanwhile (a full run of the same
    profile) is blamed on the notebook too; the snapshots cannot tell writers apart.
    """
    if before == after:
        return None
    if before is None:
        return f"created {folder}"
    changed = sorted(name for name in after or {} if (after or {})[name] != before.get(name))
    removed = sorted(set(before) - set(after or {}))
    parts = [f"wrote {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}"] if changed else []
    if removed:
        parts.append(f"removed {', '.join(removed[:5])}")
    return f"{'; '.join(parts)} in {folder}"


def _dry_run(layout: Layout, profile: str, runs: Sequence[Run]) -> int:
    """Execute every notebook up to its plan cell and print its plan table."""
    problems = []
    for run in runs:
        try:
            truncate_at_plan(run.notebook.path)
        except ValueError as err:
            problems.append(str(err))
    if problems:
        print("error: dry run not possible, nothing was run:\n" + "\n".join(problems), file=sys.stderr)
        return 2

    failed = []
    start_all = time.perf_counter()
    with _interpreter_kernel(dry_run=True):
        for index, run in enumerate(runs, start=1):
            stem = run.notebook.stem
            output = layout.dry_run_notebook(profile, stem)
            print(f"[{index}/{len(runs)}] {stem} (profile {profile}, dry run)", flush=True)
            print(f"    {layout.relative(run.notebook.path)} up to its plan cell -> "
                  f"{layout.relative(output)}")
            for name, value in run.parameters.items():
                print(f"    {name} = {value!r}  ({run.sources.get(name, 'notebook')})")
            sys.stdout.flush()
            folder = layout.root / run.parameters["output_dir"]
            before = _snapshot(folder)
            start = time.perf_counter()
            try:
                _execute(layout, profile, run)
            except KeyboardInterrupt:
                print(f"interrupted during {stem}", file=sys.stderr)
                return 130
            except Exception as error:  # reported; the other notebooks are still checked
                print(_describe_failure(layout, profile, run, error), file=sys.stderr, flush=True)
                failed.append(stem)
                continue
            changes = _dry_run_writes(before, _snapshot(folder), run.parameters["output_dir"])
            if changes:
                print(
                    f"dry run of notebook {stem} failed (profile {profile})\n"
                    f"  error: the cells up to the plan cell {changes}; they must not write "
                    "outputs (move that work after the plan cell)",
                    file=sys.stderr,
                    flush=True,
                )
                failed.append(stem)
                continue
            table = plan_output(output)
            print(f"    plan of {stem} ({time.perf_counter() - start:.1f} s):")
            if table is None:
                print("    (the plan cell displayed no table)")
            else:
                print("\n".join(f"    {line}" for line in table.splitlines()))
            sys.stdout.flush()

    elapsed = time.perf_counter() - start_all
    if failed:
        print(
            f"dry run failed for {len(failed)} of {len(runs)} notebook(s): {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    print(
        f"dry run passed: {len(runs)} notebook(s) planned in {elapsed:.1f} s; executed copies "
        f"in {layout.relative(layout.dry_run_dir(profile))}"
    )
    return 0


def _and(items: Sequence[Any]) -> str:
    """Join ``["a", "b", "c"]`` as ``"a, b and c"``."""
    items = [str(item) for item in items]
    return " and ".join(filter(None, [", ".join(items[:-1]), items[-1]])) if items else ""


def _did_you_mean(name: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _list(layout: Layout, notebooks: Sequence[Notebook], profiles: Sequence[str]) -> str:
    lines = [f"notebooks in {layout.relative(layout.notebooks)}/:"]
    lines += [f"  {nb.stem}" for nb in notebooks] or ["  (none)"]
    lines.append(f"profiles in {layout.relative(layout.profiles)}/ (default {DEFAULT_PROFILE}):")
    for profile in profiles:
        files = sorted(
            nb.stem for nb in notebooks if layout.profile_file(profile, nb.stem).is_file()
        )
        lines.append(f"  {profile}: parameter files for {', '.join(files) or 'no notebook'}")
    if not profiles:
        lines.append("  (none)")
    return "\n".join(lines)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m toscore.reproduce",
        description=(
            "Execute the toscore notebooks (notebooks/NN_name.ipynb) in number order with "
            "papermill. Parameters: the notebook's parameters cell, overridden by "
            "notebooks/profiles/<profile>/<stem>.yaml, overridden by -p. Executed copies "
            "go to runs/<profile>/notebooks/, figures to figures/<profile>/, the run "
            "manifest (versions, device, commit, wall times) to "
            "figures/<profile>/MANIFEST.json."
        ),
    )
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help="parameter profile: a folder of notebooks/profiles (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this notebook, by stem (02_to_score_depth_width) or by the part "
        "after the number (to_score_depth_width); repeatable",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter in every selected notebook that has it, after the profile "
        "file; VALUE is converted to the type of the default; repeatable",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the notebooks and profiles, then exit"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="recompute every minima and barcode artifact instead of reusing those saved "
        "in runs/<profile>/cache/ by an earlier (possibly interrupted) run",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every parameter, then execute each notebook only up to its cell "
        "tagged plan with dry_run=True (synthetic data where a dataset is missing) and "
        "print the table of configurations and sizes it shows; writes only "
        "runs/<profile>/dry-run/",
    )
    return parser


def _configure_logging() -> None:
    """Send progress lines to stderr, for the command line only (library users keep theirs)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        0 when every selected notebook ran (or, with ``--list`` / ``--dry-run``, when
        every check passed), 1 when a notebook (or its dry run) failed, 2 for invalid
        options or parameters or a notebook without a plan cell in a dry run (nothing
        is executed then), 130 when interrupted.
    """
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)

    try:
        layout = Layout(find_root())
    except FileNotFoundError as err:
        parser.error(str(err))
    notebooks = discover_notebooks(layout)
    profiles = discover_profiles(layout)

    if args.list:
        print(_list(layout, notebooks, profiles))
        return 0

    if args.profile not in profiles:
        parser.error(
            f"unknown profile {args.profile!r}{_did_you_mean(args.profile, profiles)}; valid "
            f"profiles (folders of {layout.relative(layout.profiles)}): "
            f"{', '.join(profiles) or '(none)'}"
        )
    if not notebooks:
        parser.error(f"no notebooks named NN_name.ipynb in {layout.notebooks}")
    try:
        selected = select_notebooks(notebooks, args.only)
    except ValueError as err:
        parser.error(str(err))

    if not args.only:
        for path in stray_profile_files(layout, args.profile, notebooks):
            logger.warning(
                "%s is never read: profile files are named <notebook stem>.yaml",
                layout.relative(path),
            )
    try:
        runs = plan_runs(
            layout,
            args.profile,
            selected,
            [tuple(pair) for pair in args.parameter],
            dry_run=args.dry_run,
        )
    except ValueError as err:
        print(f"error: invalid parameters, nothing was run:\n{err}", file=sys.stderr)
        return 2

    if args.dry_run:
        return _dry_run(layout, args.profile, runs)

    seconds: dict[str, float] = {}
    manifests = _Manifests(
        layout, args.profile, shlex.join(["python", "-m", "toscore.reproduce", *argv])
    )
    # Artifacts saved by an interrupted run are reused unless --fresh is given.
    cache_dir = os.environ.get("TOSCORE_CACHE_DIR") or str(layout.run_dir(args.profile) / "cache")
    cache = {"TOSCORE_CACHE_DIR": cache_dir,
             "TOSCORE_FRESH": "1" if args.fresh else "0"}
    with _interpreter_kernel(env=cache):
        for index, run in enumerate(runs, start=1):
            stem = run.notebook.stem
            logger.info("[%d/%d] %s (profile %s)", index, len(runs), stem, args.profile)
            start = time.perf_counter()
            try:
                _execute(layout, args.profile, run)
            except KeyboardInterrupt:
                _write_timings(layout, args.profile, seconds, stem)
                manifests.record(run, "interrupted", time.perf_counter() - start)
                print(f"interrupted during {stem}", file=sys.stderr)
                return 130
            except Exception as error:  # any failure ends the run, with a report
                seconds[stem] = time.perf_counter() - start
                _write_timings(layout, args.profile, seconds, stem)
                manifests.record(run, "failed", seconds[stem])
                print(_describe_failure(layout, args.profile, run, error), file=sys.stderr)
                return 1
            seconds[stem] = time.perf_counter() - start
            _write_timings(layout, args.profile, seconds, None)
            manifests.record(run, "completed", seconds[stem])
            logger.info("      %s done in %.1f s", stem, seconds[stem])

    logger.info(
        "%d notebook(s) ran in %.1f s; executed copies in %s, timings in %s, manifest in %s",
        len(runs),
        sum(seconds.values()),
        layout.relative(layout.executed_dir(args.profile)),
        layout.relative(layout.timings(args.profile)),
        ", ".join(
            sorted({layout.relative(layout.manifest(run.parameters["output_dir"])) for run in runs})
        ),
    )
    return 0


if __name__ == "__main__":
    _configure_logging()
    sys.exit(main())
