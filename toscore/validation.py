"""Declarative checks of notebook parameters, run before any heavy work.

Each rule checks one value and returns an error message or None. Notebooks call
:func:`check_parameters` on their parameter record; parameters with a standard name
(``n_minima``, ``path_method``, ``datasets``, ...) get their rule automatically, and a
notebook can add rules of its own. All violations are reported together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

__all__ = [
    "Choice",
    "Integer",
    "ListOf",
    "Number",
    "STANDARD_RULES",
    "check_parameters",
]


@dataclass(frozen=True)
class Integer:
    """An int (not a bool) no smaller than ``minimum``."""

    minimum: int | None = None

    def __call__(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, Integral):
            return f"expected an integer, got {type(value).__name__} {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}, got {value}"
        return None


@dataclass(frozen=True)
class Number:
    """A real number (not a bool); ``positive`` requires > 0, ``minimum`` >= minimum."""

    positive: bool = False
    minimum: float | None = None
    allow_inf: bool = False

    def __call__(self, value) -> str | None:
        if isinstance(value, bool) or not isinstance(value, Real):
            return f"expected a number, got {type(value).__name__} {value!r}"
        if math.isnan(value) or (math.isinf(value) and not self.allow_inf):
            return f"must be finite, got {value}"
        if self.positive and value <= 0:
            return f"must be > 0, got {value}"
        if self.minimum is not None and value < self.minimum:
            return f"must be >= {self.minimum}, got {value}"
        return None


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of values; ``options`` may be a callable that returns the set."""

    options: object

    def __call__(self, value) -> str | None:
        options = self.options() if callable(self.options) else self.options
        if value not in options:
            return f"{value!r} is not one of {sorted(options, key=str)}"
        return None


@dataclass(frozen=True)
class ListOf:
    """A non-empty list whose every item passes ``item``."""

    item: object
    min_length: int = 1

    def __call__(self, value) -> str | None:
        if not isinstance(value, (list, tuple)):
            return f"expected a list, got {type(value).__name__} {value!r}"
        if len(value) < self.min_length:
            return f"needs at least {self.min_length} entries, got {len(value)}"
        for index, entry in enumerate(value):
            problem = self.item(entry)
            if problem:
                return f"entry {index}: {problem}"
        return None


def _dataset_names():
    from .datasets import dataset_names

    return dataset_names()


def _path_methods():
    from .paths import PATH_METHODS

    return PATH_METHODS


def _devices():
    return {"auto", "cpu", "cuda", "mps"} | {f"cuda:{i}" for i in range(16)}


STANDARD_RULES: dict[str, object] = {
    "dataset": Choice(_dataset_names),
    "datasets": ListOf(Choice(_dataset_names)),
    "n_minima": Integer(minimum=2),
    "seed": Integer(minimum=0),
    "epochs": Integer(minimum=1),
    "batch_size": Integer(minimum=1),
    "n_train": Integer(minimum=0),
    "n_test": Integer(minimum=0),
    "depths": ListOf(Integer(minimum=0)),
    "widths": ListOf(Integer(minimum=1)),
    "lr": Number(positive=True),
    "path_lr": Number(positive=True),
    "momentum": Number(minimum=0.0),
    "weight_decay": Number(minimum=0.0),
    "path_method": Choice(_path_methods),
    "n_points": Integer(minimum=2),
    "n_steps": Integer(minimum=0),
    "n_insertions": Integer(minimum=0),
    "dense": Integer(minimum=1),
    "score_ord": Choice({1, 2, math.inf}),
    "device": Choice(_devices),
}


def check_parameters(parameters: dict, rules: dict | None = None) -> None:
    """Check parameter values against the standard rules and ``rules``.

    Parameters
    ----------
    parameters : dict
        Name to value, e.g. the record a notebook builds from its parameters cell.
    rules : dict, optional
        Extra or overriding rules, name to a callable that returns an error message or
        None (e.g. :class:`Integer`, :class:`Choice`).

    Raises
    ------
    ValueError
        Listing every invalid parameter with its value and what is allowed.
    """
    active = {**STANDARD_RULES, **(rules or {})}
    problems = []
    for name, value in parameters.items():
        rule = active.get(name)
        problem = rule(value) if rule is not None else None
        if problem:
            problems.append(f"  {name}: {problem}")
    if problems:
        raise ValueError(f"{len(problems)} invalid parameter(s):\n" + "\n".join(problems))
