"""Tests for toscore.params: notebook parameter defaults and override coercion."""

import math

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from toscore.params import coerce_parameters, notebook_parameters

DEFAULTS = {
    "dataset": "digits",
    "n_minima": 8,
    "lr": 0.05,
    "progress": True,
    "depths": [1, 2, 3],
    "widths": (16, 32),
    "lrs": [0.1, 0.01],
    "grid": [[1, 2], [3]],
    "config": {"momentum": 0.9},
    "empty": [],
    "seed": None,
}


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("n_minima", "8", 8),
        ("n_minima", "-3", -3),
        ("n_minima", " 12 ", 12),
        ("lr", "0.5", 0.5),
        ("lr", "1e-3", 0.001),
        ("lr", "8", 8.0),
        ("lr", "-2.5E2", -250.0),
        ("progress", "true", True),
        ("progress", "True", True),
        ("progress", "1", True),
        ("progress", "yes", True),
        ("progress", "false", False),
        ("progress", "False", False),
        ("progress", "0", False),
        ("progress", "no", False),
        ("dataset", "mnist1d", "mnist1d"),
        ("dataset", "8", "8"),
        ("depths", "[4, 5]", [4, 5]),
        ("depths", "(4, 5)", [4, 5]),
        ("depths", "4, 5", [4, 5]),
        ("depths", "[]", []),
        ("widths", "[8, 64]", (8, 64)),
        ("widths", "(8,)", (8,)),
        ("lrs", "[1e-3, 2]", [0.001, 2.0]),
        ("grid", "[[5], [6, 7]]", [[5], [6, 7]]),
        ("config", '{"momentum": 0.5}', {"momentum": 0.5}),
        ("config", "{'momentum': 1}", {"momentum": 1.0}),
        ("empty", '["a", 1, null]', ["a", 1, None]),
        ("seed", "3", 3),
        ("seed", "[1, 2]", [1, 2]),
        ("seed", "None", None),
        ("seed", "free text", "free text"),
    ],
)
def test_string_overrides_are_coerced(name, text, expected):
    result = coerce_parameters(DEFAULTS, {name: text})
    assert result == {name: expected}
    assert type(result[name]) is type(expected)


def test_json_literals_are_accepted_for_containers():
    result = coerce_parameters(
        {"flags": [False], "spec": {"on": False}}, {"flags": "[true, false]", "spec": '{"on": true}'}
    )
    assert result == {"flags": [True, False], "spec": {"on": True}}


def test_element_types_follow_the_default():
    # An element that arrives as a string (PyYAML reads 1e-3 as one) is coerced like a
    # top-level value; ints in a float list become floats.
    result = coerce_parameters(DEFAULTS, {"lrs": ["1e-3", 1], "depths": ["7", 8]})
    assert result == {"lrs": [0.001, 1.0], "depths": [7, 8]}
    assert [type(item) for item in result["lrs"]] == [float, float]


def test_special_float_strings():
    assert math.isinf(coerce_parameters(DEFAULTS, {"lr": "inf"})["lr"])


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("n_minima", 3, 3),
        ("lr", 2, 2.0),
        ("lr", 0.25, 0.25),
        ("progress", False, False),
        ("dataset", "mnist1d", "mnist1d"),
        ("depths", [4], [4]),
        ("depths", (4, 5), [4, 5]),
        ("widths", [8, 64], (8, 64)),
        ("config", {"momentum": 0}, {"momentum": 0.0}),
        ("seed", 5, 5),
        ("seed", {"a": [1]}, {"a": [1]}),
    ],
)
def test_typed_overrides_are_checked(name, value, expected):
    result = coerce_parameters(DEFAULTS, {name: value})
    assert result == {name: expected}
    assert type(result[name]) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "expected_type"),
    [
        ("n_minima", "8.0", "an int"),
        ("n_minima", "1e3", "an int"),
        ("n_minima", "eight", "an int"),
        ("n_minima", "", "an int"),
        ("n_minima", True, "an int"),
        ("n_minima", 8.0, "an int"),
        ("n_minima", None, "an int"),
        ("lr", "fast", "a float"),
        ("lr", "0.1.2", "a float"),
        ("lr", False, "a float"),
        ("lr", [0.1], "a float"),
        ("progress", "TRUE", "a bool"),
        ("progress", "on", "a bool"),
        ("progress", "2", "a bool"),
        ("progress", 1, "a bool"),
        ("dataset", 3, "a string"),
        ("dataset", None, "a string"),
        ("depths", "abc", "a list"),
        ("depths", "{'a': 1}", "a list"),
        ("depths", 3, "a list"),
        ("widths", "8", "a tuple"),
        ("config", "[1, 2]", "a dict"),
        ("config", "{'momentum': true}", "a dict"),
    ],
)
def test_rejected_values_name_parameter_value_and_type(name, value, expected_type):
    with pytest.raises(ValueError) as info:
        coerce_parameters(DEFAULTS, {name: value})
    message = str(info.value)
    assert f"parameter {name!r}" in message
    assert f"got {value!r} ({type(value).__name__})" in message
    assert f"expected {expected_type}" in message


@pytest.mark.parametrize(
    ("name", "value", "entry", "expected_type"),
    [
        ("depths", "[1, 'x']", "depths[1] is 'x' (str)", "an int"),
        ("depths", [1, 2.5], "depths[1] is 2.5 (float)", "an int"),
        ("depths", "[true]", "depths[0] is True (bool)", "an int"),
        ("lrs", "[0.1, 'big']", "lrs[1] is 'big' (str)", "a float"),
        ("grid", "[[1], [2, 'a']]", "grid[1][1] is 'a' (str)", "an int"),
        ("grid", "[1, 2]", "grid[0] is 1 (int)", "a list"),
        ("config", '{"momentum": "high"}', "config['momentum'] is 'high' (str)", "a float"),
        ("config", "{1: 0.5}", "config[1] is 1 (int)", "a string as a key"),
    ],
)
def test_rejected_elements_are_located(name, value, entry, expected_type):
    with pytest.raises(ValueError) as info:
        coerce_parameters(DEFAULTS, {name: value})
    message = str(info.value)
    assert f"parameter {name!r} got {value!r}" in message
    assert f"whose entry {entry}" in message
    assert f"expected {expected_type}" in message


def test_mixed_default_elements_accept_either_type():
    defaults = {"mixed": [1, "a"]}
    assert coerce_parameters(defaults, {"mixed": ["3", 4]}) == {"mixed": ["3", 4]}
    with pytest.raises(ValueError, match=r"expected an int or a string"):
        coerce_parameters(defaults, {"mixed": [2.5]})


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(ValueError) as info:
        coerce_parameters(DEFAULTS, {"n_minimas": 4})
    message = str(info.value)
    assert "unknown parameter 'n_minimas' (did you mean 'n_minima'?)" in message
    assert "valid names: " + ", ".join(DEFAULTS) in message


def test_every_unknown_name_is_reported():
    with pytest.raises(ValueError, match=r"unknown parameters 'lrr' \(did you mean 'lr'\?\), 'zzz';"):
        coerce_parameters(DEFAULTS, {"lrr": 1, "zzz": 2, "lr": 0.1})


def test_no_overrides_and_no_mutation():
    defaults = {"depths": [1, 2]}
    overrides = {"depths": "[3]"}
    assert coerce_parameters(defaults, {}) == {}
    assert coerce_parameters(defaults, overrides) == {"depths": [3]}
    assert defaults == {"depths": [1, 2]}
    assert overrides == {"depths": "[3]"}


# --- notebook_parameters -------------------------------------------------------------

PARAMETERS_SOURCE = '''\
dataset = "digits"  # name of the dataset
depths = [1, 2, 3]  # hidden layers

n_minima = 8
lr: float = 1e-3  # learning rate
device = "auto"
widths = (16, -32)
config = {"a": None}
progress = True
'''


def _write(path, cells):
    nbformat.write(new_notebook(cells=cells), path)
    return path


def _parameters_cell(source=PARAMETERS_SOURCE):
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def test_notebook_parameters_reads_the_tagged_cell(tmp_path):
    path = _write(
        tmp_path / "01_demo.ipynb",
        [new_markdown_cell("# Demo"), _parameters_cell(), new_code_cell("x = lr * 2")],
    )
    params = notebook_parameters(path)
    assert params == {
        "dataset": "digits",
        "depths": [1, 2, 3],
        "n_minima": 8,
        "lr": 0.001,
        "device": "auto",
        "widths": (16, -32),
        "config": {"a": None},
        "progress": True,
    }
    order = ["dataset", "depths", "n_minima", "lr", "device", "widths", "config", "progress"]
    assert list(params) == order


def test_notebook_without_parameters_cell(tmp_path):
    path = _write(tmp_path / "01_plain.ipynb", [new_code_cell("n = 3")])
    with pytest.raises(ValueError, match=r"01_plain.ipynb has no cell tagged 'parameters'"):
        notebook_parameters(path)


def test_parameters_cell_must_be_the_first_code_cell(tmp_path):
    path = _write(tmp_path / "01_late.ipynb", [new_code_cell("import os"), _parameters_cell()])
    pattern = r"tagged 'parameters' is cell 1, but it must be the first code cell \(cell 0\)"
    with pytest.raises(ValueError, match=pattern):
        notebook_parameters(path)


@pytest.mark.parametrize(
    ("source", "pattern"),
    [
        ("n = 3\nm = n * 2", r"parameter 'm' has the default 'n \* 2', which is not a literal"),
        ("import numpy as np", r"line 1 of the parameters cell is not an assignment"),
        ("a = b = 3", r"line 1 of the parameters cell is not an assignment"),
        ("n = 3\nx.y = 4", r"line 2 .* assigns to 'x.y'"),
        ("n = (", r"not valid Python"),
    ],
)
def test_parameters_cell_must_hold_literal_assignments(tmp_path, source, pattern):
    path = _write(tmp_path / "01_bad.ipynb", [_parameters_cell(source)])
    with pytest.raises(ValueError, match=pattern):
        notebook_parameters(path)
