"""pyproject.toml and environment.yml must declare the same dependencies."""

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("torch", "torchvision")
# Entries of environment.yml that are tooling, not dependencies of the package.
CONDA_ONLY = {"python", "pip"}

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*$")


def _split(requirement):
    """(normalized name, version specifier without spaces) of a requirement string."""
    match = _REQUIREMENT.match(requirement)
    assert match, f"cannot parse requirement {requirement!r}"
    name = re.sub(r"[-_.]+", "-", match[1]).lower()
    return name, match[2].replace(" ", "")


def _pyproject():
    with open(ROOT / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    return dict(_split(item) for item in project["dependencies"]), project["requires-python"]


def _environment():
    with open(ROOT / "environment.yml", encoding="utf-8") as handle:
        entries = yaml.safe_load(handle)["dependencies"]
    specs = {}
    for entry in entries:
        if isinstance(entry, dict):
            # pip options such as "-e ." install the package itself.
            specs.update(_split(item) for item in entry["pip"] if not item.startswith("-"))
        else:
            name, spec = _split(entry)
            specs[name] = spec
    return specs


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("torch==2.14.1", ("torch", "==2.14.1")),
        ("scikit-learn", ("scikit-learn", "")),
        ("Scikit_Learn >= 1.3", ("scikit-learn", ">=1.3")),
        ("python>=3.10", ("python", ">=3.10")),
        ("pkg[extra]==1", ("pkg", "==1")),
    ],
)
def test_requirement_parsing(requirement, expected):
    assert _split(requirement) == expected


def test_same_package_names():
    pyproject, _ = _pyproject()
    environment = {name: spec for name, spec in _environment().items() if name not in CONDA_ONLY}
    assert sorted(set(pyproject) - set(environment)) == []
    assert sorted(set(environment) - set(pyproject)) == []


@pytest.mark.parametrize("name", PINNED)
def test_pins_are_identical(name):
    pyproject, _ = _pyproject()
    environment = _environment()
    assert pyproject[name].startswith("==")
    assert environment[name] == pyproject[name]


def test_python_requirement_agrees():
    _, requires_python = _pyproject()
    assert _environment()["python"] == requires_python.replace(" ", "")
