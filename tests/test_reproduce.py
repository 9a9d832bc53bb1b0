"""End-to-end tests of the notebook runner on small repositories built in tmp_path.

The runner is started as ``python -m toscore.reproduce`` with ``TOSCORE_ROOT`` pointing
at the temporary repository; checks that execute nothing call ``main`` in-process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from toscore import reproduce

WRITER_PARAMETERS = """\
n = 2  # a count
lr = 0.5  # a rate
sizes = (1, 2)  # a tuple
device = "auto"  # torch device
output_dir = "figures/default"  # where outputs go
"""

WRITER_BODY = """\
import json, os, sys
from pathlib import Path
import matplotlib
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)
record = {
    "n": n, "n_type": type(n).__name__, "lr": lr, "sizes": list(sizes),
    "output_dir": output_dir, "executable": sys.executable, "cwd": os.getcwd(),
    "backend": matplotlib.get_backend().lower(),
}
(out / "record.json").write_text(json.dumps(record))
"""


def _notebook(path, parameters, *cells):
    cells = [new_code_cell(parameters, metadata={"tags": ["parameters"]}), *cells]
    nbformat.write(new_notebook(cells=cells), path)


def _repository(root, profiles=("cpu", "smoke")):
    notebooks = root / "notebooks"
    for profile in profiles:
        (notebooks / "profiles" / profile).mkdir(parents=True)
    _notebook(notebooks / "01_writer.ipynb", WRITER_PARAMETERS, new_code_cell(WRITER_BODY))
    _notebook(
        notebooks / "02_fails.ipynb",
        'device = "auto"\noutput_dir = "figures/default"',
        new_code_cell("x = 1"),
        new_markdown_cell("The next cell fails."),
        new_code_cell("y = x + 1\nraise RuntimeError('cell four fails')"),
    )
    _notebook(
        notebooks / "03_after.ipynb",
        'device = "auto"\noutput_dir = "figures/default"',
        new_code_cell("open('after.txt', 'w').write('ran')"),
    )
    return root


def _run(root, *args):
    env = {**os.environ, "TOSCORE_ROOT": str(root)}
    # Started elsewhere than the root: every path must come from TOSCORE_ROOT.
    return subprocess.run(
        [sys.executable, "-m", "toscore.reproduce", *args],
        cwd=root.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
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
    assert executed.metadata.papermill.parameters == {"n": 3, "lr": 0.001, "output_dir": "figures/smoke"}
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
    assert "valid names: device, output_dir" in err


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


@pytest.mark.parametrize("names", [["03_after", "writer"], ["after", "01_writer", "writer"]])
def test_only_stems_and_short_names(repo, capsys, names):
    args = [arg for name in names for arg in ("--only", name)]
    assert reproduce.main([*args, "--dry-run", "-p", "lr", "2"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] 01_writer (profile cpu)" in out
    assert "[2/2] 03_after (profile cpu)" in out
    assert "lr = 2.0  (command line)" in out
    assert "output_dir = 'figures/cpu'" in out
    assert "02_fails" not in out
    assert not (repo / "runs").exists()


def test_output_dir_from_the_profile_wins(repo, capsys):
    (repo / "notebooks/profiles/cpu/01_writer.yaml").write_text("output_dir: figures/custom\nsizes: [3]\n")
    assert reproduce.main(["--dry-run", "--only", "writer"]) == 0
    out = capsys.readouterr().out
    assert "output_dir = 'figures/custom'  (notebooks/profiles/cpu/01_writer.yaml)" in out
    assert "sizes = (3,)" in out


def test_notebook_without_required_parameters_is_rejected(repo, capsys):
    _notebook(repo / "notebooks/04_bare.ipynb", "n = 1", new_code_cell("pass"))
    assert reproduce.main(["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "04_bare: the parameters cell must define output_dir and device" in err


def test_profile_file_must_be_a_mapping(repo, capsys):
    (repo / "notebooks/profiles/cpu/01_writer.yaml").write_text("- 1\n- 2\n")
    assert reproduce.main(["--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "01_writer.yaml must hold a mapping of parameter names to values; got list" in err


def test_dead_kernel_is_reported(repo, capsys):
    _notebook(
        repo / "notebooks/04_dies.ipynb",
        'device = "auto"\noutput_dir = "figures/default"',
        new_code_cell("import os\nos._exit(3)"),
        new_code_cell("never = True"),
    )
    assert reproduce.main(["--only", "dies"]) == 1
    err = capsys.readouterr().err
    assert "notebook 04_dies failed (profile cpu)" in err
    assert "last cell started: cell 2 of 3 in notebooks/04_dies.ipynb" in err
    assert "DeadKernelError" in err
    assert "executed copy: runs/cpu/notebooks/04_dies.ipynb" in err
    assert json.loads((repo / "runs/cpu/timings.json").read_text())["failed"] == "04_dies"
