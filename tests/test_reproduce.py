"""End-to-end tests of the notebook runner on small repositories built in tmp_path.

The runner is started as ``python -m toscore.reproduce`` with ``TOSCORE_ROOT`` pointing
at the temporary repository; most checks that execute nothing call ``main`` in-process.
The last test runs the dry run of the paper profile on the real notebooks.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from toscore import reproduce

ROOT = Path(__file__).resolve().parent.parent

WRITER_PARAMETERS = """\
n = 2  # a count
lr = 0.5  # a rate
sizes = (1, 2)  # a tuple
device = "auto"  # torch device
output_dir = "figures/default"  # where outputs go
profile = "none"  # the runner sets it
dry_run = False  # set by the runner
"""

BARE = 'device = "auto"\noutput_dir = "figures/default"\ndry_run = False'

WRITER_BODY = """\
import json, os, sys
from pathlib import Path
import matplotlib
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)
record = {
    "n": n, "n_type": type(n).__name__, "lr": lr, "sizes": list(sizes),
    "output_dir": output_dir, "executable": sys.executable, "cwd": os.getcwd(),
    "backend": matplotlib.get_backend().lower(), "profile": profile, "dry_run": dry_run,
}
(out / "record.json").write_text(json.dumps(record))
"""


# The plan cell of 01_writer: a table of its parameters, which the dry run must print.
PLAN_TABLE = """\
import pandas as pd
pd.DataFrame({"n": [n, 10 * n], "lr": [lr, lr / 2]})
"""


def _notebook(path, parameters, *cells):
    cells = [new_code_cell(parameters, metadata={"tags": ["parameters"]}), *cells]
    nbformat.write(new_notebook(cells=cells), path)


def _plan(source):
    return new_code_cell(source, metadata={"tags": ["plan"]})


def _repository(root, profiles=("cpu", "smoke")):
    notebooks = root / "notebooks"
    for profile in profiles:
        (notebooks / "profiles" / profile).mkdir(parents=True)
    _notebook(
        notebooks / "01_writer.ipynb",
        WRITER_PARAMETERS,
        _plan(PLAN_TABLE),
        new_code_cell(WRITER_BODY),
    )
    _notebook(
        notebooks / "02_fails.ipynb",
        BARE,
        new_code_cell("x = 1"),
        new_markdown_cell("The next cell fails."),
        new_code_cell("y = x + 1\nraise RuntimeError('cell four fails')"),
    )
    _notebook(
        notebooks / "03_after.ipynb",
        BARE,
        _plan("planned = 'after'"),
        new_code_cell("open('after.txt', 'w').write('ran')"),
    )
    return root


def _run(root, *args, timeout=300, env=None):
    env = {**os.environ, "TOSCORE_ROOT": str(root), **(env or {})}
    # Started elsewhere than the root: every path must come from TOSCORE_ROOT.
    return subprocess.run(
        [sys.executable, "-m", "toscore.reproduce", *args],
        cwd=root.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """Run every notebook of a repository under the smoke profile, once for the module."""
    root = _repository(tmp_path_factory.mktemp("repo") / "repo")
    root.mkdir(exist_ok=True)
    # PyYAML reads 1e-3 as a string; the runner must still pass a float.
    (root / "notebooks/profiles/smoke/01_writer.yaml").write_text("lr: 1e-3\n")
    result = _run(root, "--profile", "smoke", "-p", "n", "3")
    return root, result


def test_notebook_writes_into_the_profile_output_dir(full_run):
    root, _ = full_run
    record = json.loads((root / "figures/smoke/record.json").read_text())
    assert record["output_dir"] == "figures/smoke"
    assert Path(record["cwd"]) == root.resolve()
    assert record["executable"] == sys.executable
    assert record["backend"] == "agg"
    assert (record["profile"], record["dry_run"]) == ("smoke", False)


def test_command_line_and_profile_values_are_coerced(full_run):
    root, _ = full_run
    record = json.loads((root / "figures/smoke/record.json").read_text())
    assert (record["n"], record["n_type"]) == (3, "int")
    assert record["lr"] == 0.001
    assert record["sizes"] == [1, 2]


def test_failing_cell_stops_the_run_and_is_reported(full_run):
    root, result = full_run
    assert result.returncode == 1
    assert "[1/3] 01_writer (profile smoke)" in result.stderr
    assert "[2/3] 02_fails (profile smoke)" in result.stderr
    assert "notebook 02_fails failed (profile smoke)" in result.stderr
    # Cells of 02_fails: parameters, x = 1, markdown, the raising cell.
    assert "failing cell: cell 4 of 4 in notebooks/02_fails.ipynb" in result.stderr
    assert "RuntimeError: cell four fails" in result.stderr
    assert "executed copy: runs/smoke/notebooks/02_fails.ipynb" in result.stderr
    executed = nbformat.read(root / "runs/smoke/notebooks/02_fails.ipynb", as_version=4)
    errors = [output.get("ename") for cell in executed.cells for output in cell.get("outputs", [])]
    assert "RuntimeError" in errors
    assert "[3/3]" not in result.stderr
    assert not (root / "after.txt").exists()


def test_executed_copies_and_timings_are_written(full_run):
    root, _ = full_run
    executed = nbformat.read(root / "runs/smoke/notebooks/01_writer.ipynb", as_version=4)
    assert executed.metadata.papermill.parameters == {
        "n": 3, "lr": 0.001, "output_dir": "figures/smoke", "profile": "smoke", "dry_run": False}
    timings = json.loads((root / "runs/smoke/timings.json").read_text())
    assert timings["profile"] == "smoke"
    assert set(timings["notebooks"]) == {"01_writer", "02_fails"}
    assert timings["failed"] == "02_fails"
    assert timings["total"] == pytest.approx(sum(timings["notebooks"].values()), abs=0.01)


def test_unknown_profile_parameter_fails_before_execution(tmp_path):
    root = _repository(tmp_path / "repo")
    (root / "notebooks/profiles/cpu/03_after.yaml").write_text("devise: cpu\n")
    result = _run(root)
    assert result.returncode == 2
    assert "unknown parameter 'devise' (did you mean 'device'?)" in result.stderr
    assert "notebooks/profiles/cpu/03_after.yaml" in result.stderr
    # Nothing ran, not even the notebooks before the faulty one.
    assert not (root / "runs").exists()
    assert not (root / "figures").exists()


def test_list_prints_notebooks_and_profiles(tmp_path):
    root = _repository(tmp_path / "repo")
    (root / "notebooks/profiles/smoke/01_writer.yaml").write_text("n: 1\n")
    (root / "notebooks/scratch.ipynb").write_text("{}")  # not NN_name: ignored
    result = _run(root, "--list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1:4] == ["  01_writer", "  02_fails", "  03_after"]
    assert "scratch" not in result.stdout
    assert "  cpu: parameter files for no notebook" in lines
    assert "  smoke: parameter files for 01_writer" in lines


# --- checks that execute nothing: in-process ------------------------------------------


@pytest.fixture
def repo(tmp_path, monkeypatch):
    root = _repository(tmp_path / "repo")
    monkeypatch.setenv("TOSCORE_ROOT", str(root))
    return root


def test_bad_command_line_value_is_rejected(repo, capsys):
    assert reproduce.main(["-p", "n", "abc"]) == 2
    err = capsys.readouterr().err
    assert "nothing was run" in err
    assert "01_writer (command line): parameter 'n' got 'abc' (str); expected an int" in err
    assert not (repo / "runs").exists()


def test_cli_name_missing_everywhere(repo, capsys):
    assert reproduce.main(["--only", "fails", "-p", "n", "3"]) == 2
    err = capsys.readouterr().err
    assert "-p n: no selected notebook has a parameter 'n'" in err
    assert "valid names: device, dry_run, output_dir" in err


def test_unknown_profile_lists_the_valid_ones(repo, capsys):
    with pytest.raises(SystemExit) as info:
        reproduce.main(["--profile", "papr"])
    assert info.value.code == 2
    assert "unknown profile 'papr'" in capsys.readouterr().err
    (repo / "notebooks/profiles/paper").mkdir()
    with pytest.raises(SystemExit):
        reproduce.main(["--profile", "papr"])
    err = capsys.readouterr().err
    assert "(did you mean 'paper'?)" in err
    assert "valid profiles (folders of notebooks/profiles): cpu, paper, smoke" in err


def test_unknown_only_name_lists_the_valid_ones(repo, capsys):
    with pytest.raises(SystemExit) as info:
        reproduce.main(["--only", "02_fail"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown notebook '02_fail' (did you mean '02_fails'?)" in err
    assert "valid names: 01_writer, 02_fails, 03_after" in err




def test_only_stems_and_short_names(repo, capsys):
    names = ["after", "01_writer", "writer"]
    args = [arg for name in names for arg in ("--only", name)]
    assert reproduce.main([*args, "--dry-run", "-p", "lr", "2"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] 01_writer (profile cpu, dry run)" in out
    assert "[2/2] 03_after (profile cpu, dry run)" in out
    assert "lr = 2.0  (command line)" in out
    assert "output_dir = 'figures/cpu'  (profile cpu)" in out
    assert "profile = 'cpu'  (profile cpu)" in out
    assert "dry_run = True  (--dry-run)" in out
    assert "02_fails" not in out
    assert not (repo / "runs/cpu/notebooks").exists()


def test_output_dir_from_the_profile_wins(repo, capsys):
    (repo / "notebooks/profiles/cpu/01_writer.yaml").write_text("output_dir: figures/custom\nsizes: [3]\n")
    assert reproduce.main(["--dry-run", "--only", "writer"]) == 0
    out = capsys.readouterr().out
    assert "output_dir = 'figures/custom'  (notebooks/profiles/cpu/01_writer.yaml)" in out
    assert "sizes = (3,)" in out
    assert not (repo / "figures").exists()


@pytest.mark.parametrize("parameters, missing", [
    ("n = 1", "output_dir, device and dry_run"),
    ('device = "cpu"\noutput_dir = "x"', "dry_run"),
])
def test_notebook_without_required_parameters_is_rejected(repo, capsys, parameters, missing):
    _notebook(repo / "notebooks/04_bare.ipynb", parameters, _plan("pass"))
    assert reproduce.main(["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert (f"04_bare: the parameters cell must define {missing} "
            "(every notebook takes output_dir, device and dry_run)") in err
    assert not (repo / "runs").exists()


def test_profile_file_must_be_a_mapping(repo, capsys):
    (repo / "notebooks/profiles/cpu/01_writer.yaml").write_text("- 1\n- 2\n")
    assert reproduce.main(["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "01_writer.yaml must hold a mapping of parameter names to values; got list" in err


def test_dry_run_is_set_by_the_runner_only(repo, capsys):
    (repo / "notebooks/profiles/cpu/03_after.yaml").write_text("dry_run: true\n")
    assert reproduce.main(["-p", "dry_run", "true"]) == 2
    err = capsys.readouterr().err
    assert "-p dry_run: set by the runner; use --dry-run instead" in err
    assert ("03_after (notebooks/profiles/cpu/03_after.yaml): dry_run is set by the runner "
            "(--dry-run), not by a profile file") in err
    assert not (repo / "runs").exists()


@pytest.mark.parametrize("tags, found", [([], "none"), (["plan", "plan"], "2, cells 2 and 3")])
def test_dry_run_needs_exactly_one_plan_cell(repo, capsys, tags, found):
    cells = [new_code_cell("x = 1", metadata={"tags": [tag]}) for tag in tags] or [
        new_code_cell("x = 1")]
    _notebook(repo / "notebooks/04_noplan.ipynb", BARE, *cells)
    assert reproduce.main(["--dry-run", "--only", "writer", "--only", "noplan"]) == 2
    err = capsys.readouterr().err
    assert "dry run not possible, nothing was run" in err
    assert ("notebook 04_noplan: a dry run executes the notebook up to its cell tagged 'plan', "
            f"so exactly one cell must carry that tag; found {found}") in err
    assert not (repo / "runs").exists()


def test_truncate_at_plan_cell(repo):
    truncated = reproduce.truncate_at_plan(repo / "notebooks/03_after.ipynb")
    source = nbformat.read(repo / "notebooks/03_after.ipynb", as_version=4)
    assert [cell.source for cell in truncated.cells] == [cell.source for cell in source.cells[:2]]
    assert truncated.cells[-1].metadata.tags == ["plan"]


# --- dry run: executes up to the plan cell ---------------------------------------------


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """Dry-run every notebook of a repository whose 02_fails has a failing plan cell."""
    root = _repository(tmp_path_factory.mktemp("dry") / "repo")
    _notebook(
        root / "notebooks/02_fails.ipynb",
        BARE,
        new_code_cell("x = 1"),
        _plan("raise ValueError('bad configuration')"),
        new_code_cell("never = True"),
    )
    _notebook(
        root / "notebooks/04_writes.ipynb",
        BARE,
        new_code_cell("import pathlib\npathlib.Path(output_dir).mkdir(parents=True)"),
        _plan("pass"),
    )
    result = _run(root, "--profile", "smoke", "--dry-run", "-p", "n", "3")
    return root, result


def test_dry_run_prints_each_plan_table(dry_run):
    _, result = dry_run
    expected = pd.DataFrame({"n": [3, 30], "lr": [0.5, 0.25]}).to_string()
    for line in expected.splitlines():
        assert f"    {line}\n" in result.stdout
    assert "[1/4] 01_writer (profile smoke, dry run)" in result.stdout
    assert "[3/4] 03_after (profile smoke, dry run)" in result.stdout
    assert "    (the plan cell displayed no table)" in result.stdout  # 03_after assigns only


def test_dry_run_stops_after_the_plan_cell(dry_run):
    root, _ = dry_run
    # 01_writer's cell after the plan would write record.json, 03_after's after.txt.
    assert not (root / "after.txt").exists()
    assert not (root / "figures/smoke/record.json").exists()
    executed = nbformat.read(root / "runs/smoke/dry-run/01_writer.ipynb", as_version=4)
    assert [cell.source.strip() for cell in executed.cells[-2:]] == [
        "# Parameters\nn = 3\noutput_dir = \"figures/smoke\"\nprofile = \"smoke\"\ndry_run = True",
        PLAN_TABLE.strip()]  # papermill's injected cell, then the plan cell, nothing after
    assert executed.metadata.papermill.parameters["dry_run"] is True
    assert not (root / "runs/smoke/notebooks").exists()
    assert not (root / "runs/smoke/timings.json").exists()


def test_dry_run_reports_every_failure(dry_run):
    root, result = dry_run
    assert result.returncode == 1
    assert "dry run of notebook 02_fails failed (profile smoke)" in result.stderr
    assert "failing cell: cell 3 of 4 in notebooks/02_fails.ipynb" in result.stderr
    assert "ValueError: bad configuration" in result.stderr
    assert "executed copy: runs/smoke/dry-run/02_fails.ipynb" in result.stderr
    # The notebook that creates its output folder before the plan cell is caught.
    assert "dry run of notebook 04_writes failed (profile smoke)" in result.stderr
    assert "created figures/smoke; they must not write outputs" in result.stderr
    assert "dry run failed for 2 of 4 notebook(s): 02_fails, 04_writes" in result.stderr
    # Only 04_writes' own folder: nothing else under figures/, and no manifest.
    assert [path.relative_to(root).as_posix() for path in (root / "figures").rglob("*")] == [
        "figures/smoke"]


# --- manifest ---------------------------------------------------------------------------


def test_manifest_of_a_full_run(full_run):
    root, _ = full_run
    manifest = json.loads((root / "figures/smoke/MANIFEST.json").read_text())
    assert set(manifest) == {"profile", "commit", "dirty", "date_utc", "command", "python",
                             "packages", "device", "notebooks", "total_wall_time_s"}
    assert manifest["profile"] == "smoke"
    assert manifest["command"] == "python -m toscore.reproduce --profile smoke -p n 3"
    assert (manifest["commit"], manifest["dirty"]) == (None, None)  # not a git checkout
    assert manifest["python"] == ".".join(map(str, sys.version_info[:3]))
    assert set(manifest["packages"]) == set(reproduce.MANIFEST_PACKAGES)
    assert manifest["packages"]["pandas"] == pd.__version__
    assert manifest["device"]["cpu_cores"] == os.cpu_count()
    import torch

    assert manifest["device"]["torch_threads"] == torch.get_num_threads()
    assert manifest["device"]["cuda"] == [
        torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    notebooks = manifest["notebooks"]
    assert {stem: entry["status"] for stem, entry in notebooks.items()} == {
        "01_writer": "completed", "02_fails": "failed"}
    timings = json.loads((root / "runs/smoke/timings.json").read_text())
    for stem, entry in notebooks.items():
        assert entry["wall_time_s"] == pytest.approx(timings["notebooks"][stem], abs=1e-3)
        assert entry["date_utc"] >= manifest["date_utc"]
    assert manifest["total_wall_time_s"] == pytest.approx(
        sum(entry["wall_time_s"] for entry in notebooks.values()), abs=1e-3)


def test_manifest_merges_only_runs(repo):
    (repo / "figures/cpu").mkdir(parents=True)
    (repo / "figures/cpu/MANIFEST.json").write_text(json.dumps(
        {"profile": "cpu", "notebooks": {"09_old": {"status": "completed", "wall_time_s": 5.0,
                                                    "date_utc": "2020-01-01T00:00:00+00:00"}}}))
    assert reproduce.main(["--only", "after"]) == 0
    first = json.loads((repo / "figures/cpu/MANIFEST.json").read_text())
    assert reproduce.main(["--only", "writer", "-p", "n", "4"]) == 0
    second = json.loads((repo / "figures/cpu/MANIFEST.json").read_text())
    assert set(second["notebooks"]) == {"01_writer", "03_after", "09_old"}
    assert second["notebooks"]["03_after"] == first["notebooks"]["03_after"]
    assert second["notebooks"]["09_old"]["wall_time_s"] == 5.0
    assert second["notebooks"]["03_after"]["command"] == "python -m toscore.reproduce --only after"
    assert second["command"] == second["notebooks"]["01_writer"]["command"] == (
        "python -m toscore.reproduce --only writer -p n 4")
    assert second["notebooks"]["01_writer"]["date_utc"] >= first["notebooks"]["03_after"]["date_utc"]
    assert second["total_wall_time_s"] == pytest.approx(
        5.0 + second["notebooks"]["01_writer"]["wall_time_s"]
        + first["notebooks"]["03_after"]["wall_time_s"], abs=2e-3)


def test_manifest_of_other_profile_replaced(tmp_path):
    path = tmp_path / "MANIFEST.json"
    run = {"commit": "c", "dirty": False, "date_utc": "d", "command": "x"}
    reproduce.update_manifest(path, "cpu", "01_a", {"status": "completed", "wall_time_s": 2.0}, run)
    reproduce.update_manifest(path, "cpu", "02_b", {"status": "failed", "wall_time_s": 1.5}, run)
    kept = json.loads(path.read_text())
    assert list(kept["notebooks"]) == ["01_a", "02_b"]
    assert kept["total_wall_time_s"] == 3.5
    written = reproduce.update_manifest(path, "paper", "02_b", {"wall_time_s": 1.0}, run)
    assert json.loads(path.read_text()) == written
    assert (written["profile"], list(written["notebooks"]), written["total_wall_time_s"]) == (
        "paper", ["02_b"], 1.0)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_ignores_run_outputs(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "figures").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "figures/e2.csv").write_text("x\n1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / "figures/e2.csv").write_text("x\n2\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs/copy.ipynb").write_text("{}")
    assert reproduce._git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "code.py").write_text("a = 2\n")
    assert reproduce._git_state(tmp_path) == {"commit": head, "dirty": True}


# --- a kernel that dies ------------------------------------------------------------------


class _Hang(Exception):
    pass


def _hang(signum, frame):
    raise _Hang("the runner still waited for the dead kernel after 60 s")


@pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="needs SIGALRM")
@pytest.mark.parametrize("kill", ["os._exit(3)", "os.kill(os.getpid(), signal.SIGKILL)"])
def test_dead_kernel_fails_promptly(repo, capsys, kill):
    _notebook(
        repo / "notebooks/04_dies.ipynb",
        BARE,
        new_code_cell(f"import os, signal\n{kill}"),
        new_code_cell("never = True"),
    )
    # A hang guard, not a benchmark: nbclient notices a dead kernel within about a second,
    # so 60 s leaves room for a slow kernel start.
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(60)
    try:
        code = reproduce.main(["--only", "dies"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err
    assert code == 1
    assert "notebook 04_dies failed (profile cpu)" in err
    assert "last cell started: cell 2 of 3 in notebooks/04_dies.ipynb" in err
    assert "DeadKernelError" in err
    assert "executed copy: runs/cpu/notebooks/04_dies.ipynb" in err
    assert json.loads((repo / "runs/cpu/timings.json").read_text())["failed"] == "04_dies"
    manifest = json.loads((repo / "figures/cpu/MANIFEST.json").read_text())
    assert manifest["notebooks"]["04_dies"]["status"] == "failed"


# --- the real notebooks -------------------------------------------------------------------

REAL_NOTEBOOKS = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_every_notebook_has_a_profile_file(profile):
    missing = [stem for stem in REAL_NOTEBOOKS
               if not (ROOT / "notebooks/profiles" / profile / f"{stem}.yaml").is_file()]
    assert not missing, f"no notebooks/profiles/{profile}/<stem>.yaml for {missing}"


@pytest.mark.slow
def test_paper_profile_dry_run_passes(tmp_path):
    """Every notebook plans the paper's settings, on synthetic data, without a GPU."""
    # The real notebooks and profiles under a scratch root: outputs land in tmp_path, and
    # an empty data folder proves that no dataset is needed.
    root = tmp_path / "repo"
    root.mkdir()
    (root / "notebooks").symlink_to(ROOT / "notebooks", target_is_directory=True)
    (tmp_path / "data").mkdir()
    result = _run(root, "--profile", "paper", "--dry-run", timeout=1800,
                  env={"TOSCORE_DATA": str(tmp_path / "data"), "CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"dry run passed: {len(REAL_NOTEBOOKS)} notebook(s) planned" in result.stdout
    assert not (root / "figures").exists()
