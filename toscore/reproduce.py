"""Run the toscore notebooks with papermill under a parameter profile.

``python -m toscore.reproduce --profile cpu`` executes every notebook
``notebooks/NN_name.ipynb`` in number order. Each notebook's parameters come from its
own ``parameters`` cell, then from ``notebooks/profiles/<profile>/<stem>.yaml`` when that
file exists, then from ``-p NAME VALUE`` options. Every value is checked against the
type of its default before anything runs. Executed copies go to
``runs/<profile>/notebooks/``, figures to ``figures/<profile>/`` (the notebooks'
``output_dir``), wall times to ``runs/<profile>/timings.json``.

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
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from .params import coerce_parameters, notebook_parameters

__all__ = ["Layout", "Notebook", "Run", "find_root", "main", "plan_runs"]

logger = logging.getLogger("toscore")

ROOT_ENV = "TOSCORE_ROOT"
DEFAULT_PROFILE = "cpu"
KERNEL_NAME = "python3"
REQUIRED_PARAMETERS = ("output_dir", "device")
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
) -> list[Run]:
    """Resolve and check the parameters of every selected notebook.

    For each notebook the defaults of its parameters cell are overridden by the profile
    file, then by ``cli_parameters``; ``output_dir`` is set to ``figures/<profile>``
    unless one of those gives it. A command-line parameter applies to each selected
    notebook that has it.

    Parameters
    ----------
    layout : Layout
    profile : str
    notebooks : sequence of Notebook
        The notebooks to run, in order.
    cli_parameters : sequence of (str, str)
        ``(name, value)`` pairs from ``-p``; later pairs win.

    Returns
    -------
    list of Run
        One per notebook, with coerced values.

    Raises
    ------
    ValueError
        Listing every problem found: a parameters cell that cannot be read, a missing
        ``output_dir`` or ``device`` parameter, an unknown name or a badly typed value
        in a profile file, a ``-p`` name that no selected notebook has.
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
        if defaults_by_stem and name not in known:
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
                f"{notebook.stem}: the parameters cell must define {' and '.join(missing)} "
                f"(every notebook takes {', '.join(REQUIRED_PARAMETERS)})"
            )
            continue
        profile_path = layout.profile_file(profile, notebook.stem)
        try:
            from_profile = load_profile(profile_path)
        except ValueError as err:
            problems.append(str(err))
            continue

        # Checked per source, so each message says where the faulty value came from.
        from_cli = {name: value for name, value in cli.items() if name in defaults}
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


@contextlib.contextmanager
def _interpreter_kernel() -> Iterator[None]:
    """Make the ``python3`` kernel run this interpreter, with a non-interactive backend.

    A kernelspec in a temporary folder put first on ``JUPYTER_PATH`` shadows any other
    ``python3`` kernelspec (for example a user-level one pointing to another Python).
    """
    from ipykernel.kernelspec import get_kernel_dict

    with tempfile.TemporaryDirectory(prefix="toscore-kernel-") as folder:
        spec_dir = Path(folder, "kernels", KERNEL_NAME)
        spec_dir.mkdir(parents=True)
        # The argv starts with sys.executable. Kernel-side log notices would interleave
        # with the runner's progress lines, so only errors are logged.
        spec = get_kernel_dict(extra_arguments=["--IPKernelApp.log_level=ERROR"])
        spec["display_name"] = f"Python 3 ({sys.executable})"
        spec["env"] = {"MPLBACKEND": "Agg"}
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


def _execute(layout: Layout, profile: str, run: Run) -> None:
    import papermill

    output = layout.executed_notebook(profile, run.notebook.stem)
    output.parent.mkdir(parents=True, exist_ok=True)
    # A copy left by an earlier run would misplace the failing cell if this one fails early.
    output.unlink(missing_ok=True)
    (layout.root / run.parameters["output_dir"]).mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(run.notebook.path),
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

    output = layout.executed_notebook(profile, run.notebook.stem)
    if isinstance(error, PapermillExecutionError):
        summary = f"{error.ename}: {error.evalue}"
    else:
        summary = f"{type(error).__name__}: {error}".rstrip(": ")
    cell = _failed_cell(output)
    lines = [f"notebook {run.notebook.stem} failed (profile {profile})"]
    if cell is None:
        lines.append("  failing cell: none (no cell had started)")
    else:
        label, number, total, node = cell
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
            "go to runs/<profile>/notebooks/, figures to figures/<profile>/."
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
        "--dry-run",
        action="store_true",
        help="check every parameter and print what would run, without executing",
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
        every check passed), 1 when a notebook failed, 2 for invalid options or
        parameters (nothing is executed then), 130 when interrupted.
    """
    parser = _build_parser()
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
        runs = plan_runs(layout, args.profile, selected, [tuple(pair) for pair in args.parameter])
    except ValueError as err:
        print(f"error: invalid parameters, nothing was run:\n{err}", file=sys.stderr)
        return 2

    if args.dry_run:
        for index, run in enumerate(runs, start=1):
            print(f"[{index}/{len(runs)}] {run.notebook.stem} (profile {args.profile})")
            output = layout.executed_notebook(args.profile, run.notebook.stem)
            print(f"    {layout.relative(run.notebook.path)} -> {layout.relative(output)}")
            for name, value in run.parameters.items():
                print(f"    {name} = {value!r}  ({run.sources.get(name, '')})")
        print(f"all parameters valid; {len(runs)} notebook(s) would run (dry run)")
        return 0

    seconds: dict[str, float] = {}
    with _interpreter_kernel():
        for index, run in enumerate(runs, start=1):
            stem = run.notebook.stem
            logger.info("[%d/%d] %s (profile %s)", index, len(runs), stem, args.profile)
            start = time.perf_counter()
            try:
                _execute(layout, args.profile, run)
            except KeyboardInterrupt:
                _write_timings(layout, args.profile, seconds, stem)
                print(f"interrupted during {stem}", file=sys.stderr)
                return 130
            except Exception as error:  # any failure ends the run, with a report
                seconds[stem] = time.perf_counter() - start
                _write_timings(layout, args.profile, seconds, stem)
                print(_describe_failure(layout, args.profile, run, error), file=sys.stderr)
                return 1
            seconds[stem] = time.perf_counter() - start
            _write_timings(layout, args.profile, seconds, None)
            logger.info("      %s done in %.1f s", stem, seconds[stem])

    logger.info(
        "%d notebook(s) ran in %.1f s; executed copies in %s, timings in %s",
        len(runs),
        sum(seconds.values()),
        layout.relative(layout.executed_dir(args.profile)),
        layout.relative(layout.timings(args.profile)),
    )
    return 0


if __name__ == "__main__":
    _configure_logging()
    sys.exit(main())
