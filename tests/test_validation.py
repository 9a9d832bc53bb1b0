"""Declarative notebook parameter checks."""

import math

import pytest

from toscore.validation import Choice, Integer, ListOf, Number, check_parameters


def test_valid_parameters_pass():
    check_parameters({
        "dataset": "digits", "datasets": ["digits", "mnist1d"], "n_minima": 2, "epochs": 1,
        "lr": 1e-4, "momentum": 0.0, "weight_decay": 0.0, "path_method": "linear",
        "n_points": 2, "n_steps": 0, "depths": [0, 3], "widths": [1], "score_ord": math.inf,
        "device": "auto", "unrelated": object(),
    })


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("dataset", "mnits", r"dataset: 'mnits' is not one of \[.*'digits'.*'mnist'"),
        ("datasets", ["digits", "cifar"], r"datasets: entry 1: 'cifar' is not one of"),
        ("datasets", [], r"datasets: needs at least 1 entries, got 0"),
        ("n_minima", 1, r"n_minima: must be >= 2, got 1"),
        ("n_minima", 2.0, r"n_minima: expected an integer, got float 2.0"),
        ("n_minima", True, r"n_minima: expected an integer, got bool True"),
        ("epochs", 0, r"epochs: must be >= 1, got 0"),
        ("batch_size", -5, r"batch_size: must be >= 1, got -5"),
        ("widths", [16, 0], r"widths: entry 1: must be >= 1, got 0"),
        ("depths", "3", r"depths: expected a list, got str '3'"),
        ("lr", 0.0, r"lr: must be > 0, got 0.0"),
        ("lr", "0.1", r"lr: expected a number, got str '0.1'"),
        ("lr", math.nan, r"lr: must be finite"),
        ("path_method", "string", r"path_method: 'string' is not one of \['linear', 'neb'\]"),
        ("score_ord", 3, r"score_ord: 3 is not one of"),
        ("device", "gpu", r"device: 'gpu' is not one of"),
    ],
)
def test_invalid_parameter_is_named(name, value, message):
    with pytest.raises(ValueError, match=message):
        check_parameters({name: value})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError, match=r"3 invalid parameter\(s\)") as error:
        check_parameters({"n_minima": 0, "lr": -1.0, "path_method": "x"})
    text = str(error.value)
    assert "n_minima" in text
    assert "lr" in text
    assert "path_method" in text


def test_custom_rules_override_and_extend():
    check_parameters({"n_minima": 1}, rules={"n_minima": Integer(minimum=1)})
    with pytest.raises(ValueError, match=r"groups: entry 0: 'c' is not one of \['a', 'b'\]"):
        check_parameters({"groups": ["c"]}, rules={"groups": ListOf(Choice({"a", "b"}))})
    with pytest.raises(ValueError, match=r"scale: must be >= 0.5, got 0.1"):
        check_parameters({"scale": 0.1}, rules={"scale": Number(minimum=0.5)})
