"""Notebook parameters: read a notebook's defaults and coerce overrides to their types.

Every toscore notebook starts with a code cell tagged ``parameters`` that contains plain
typed literals (papermill's convention). The defaults in that cell fix the type of each
parameter; values from a profile file or the command line are checked and, when they
arrive as strings, converted to that type before the notebook runs.
"""

from __future__ import annotations

import ast
import difflib
import json
from pathlib import Path
from typing import Any

__all__ = ["coerce_parameters", "notebook_parameters"]

PARAMETERS_TAG = "parameters"

_TRUE_STRINGS = frozenset({"true", "True", "1", "yes"})
_FALSE_STRINGS = frozenset({"false", "False", "0", "no"})


class _Mismatch(Exception):
    """A value that does not fit its template; ``where`` is its index path, e.g. ``[1][0]``."""

    def __init__(self, value: Any, expected: str, where: str = "") -> None:
        super().__init__(value, expected, where)
        self.value = value
        self.expected = expected
        self.where = where


def coerce_parameters(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Check parameter overrides against a notebook's defaults and convert them.

    The type of each default decides what its override may be. A string override for a
    non-string default is converted where the reading is unambiguous:

    ========================  =====================================================
    default                   accepted override
    ========================  =====================================================
    ``str``                   any string
    ``bool``                  a bool, or one of the strings ``true``, ``false``,
                              ``True``, ``False``, ``1``, ``0``, ``yes``, ``no``
    ``int``                   an int (not a bool), or a string such as ``"8"``
    ``float``                 a float or an int (not a bool), or a string such as
                              ``"0.5"``, ``"1e-3"`` or ``"8"``
    ``list`` / ``tuple``      a list or tuple, or a Python or JSON literal string;
                              converted to the default's container type
    ``dict``                  a dict, or a Python or JSON literal string
    ``None``                  anything; a string that parses as a Python literal
                              is replaced by that literal
    ========================  =====================================================

    When a container default is non-empty, every element of the override (every key
    and value of a dict) must fit one of the default's element types, by the same
    rules; so a YAML list such as ``[1e-3, 0.1]``, whose first entry PyYAML reads as
    a string, still becomes a list of floats.

    Parameters
    ----------
    defaults : dict of str to object
        A notebook's parameters and their default values, as returned by
        :func:`notebook_parameters`.
    overrides : dict of str to object
        New values by parameter name, from a profile file or the command line.

    Returns
    -------
    dict of str to object
        The overrides, same keys, with values converted to the types of the defaults.
        Parameters without an override are not included; merge with
        ``{**defaults, **result}`` for the full set.

    Raises
    ------
    ValueError
        If an override names a parameter that ``defaults`` lacks (the message lists
        the valid names and suggests the closest one), or if a value cannot be read as
        the type of its default (the message names the parameter, the value received
        and the type expected).
    """
    unknown = [name for name in overrides if name not in defaults]
    if unknown:
        raise ValueError(_unknown_message(unknown, defaults))

    coerced = {}
    for name, value in overrides.items():
        try:
            coerced[name] = _coerce(value, defaults[name])
        except _Mismatch as err:
            got = f"{value!r} ({type(value).__name__})"
            if err.where:
                got = (
                    f"{value!r}, whose entry {name}{err.where} is {err.value!r} "
                    f"({type(err.value).__name__})"
                )
            raise ValueError(
                f"parameter {name!r} got {got}; expected {err.expected} "
                f"(the default is {defaults[name]!r})"
            ) from None
    return coerced


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """Read the defaults of a notebook's ``parameters`` cell.

    The cell must be the notebook's first code cell, be tagged ``parameters`` and
    contain only assignments of literals to names, such as ``n_minima = 8  # comment``.
    Annotated assignments are accepted too.

    Parameters
    ----------
    path : str or Path
        Path to an ``.ipynb`` file.

    Returns
    -------
    dict of str to object
        Parameter name to default value, in the order of the cell.

    Raises
    ------
    ValueError
        If the notebook has no cell tagged ``parameters``, if that cell is not the
        first code cell, or if it holds anything but assignments of literals.
    """
    import nbformat

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    code_cells = [
        (index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
    ]
    tagged = [
        index
        for index, cell in enumerate(notebook.cells)
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", [])
    ]
    if not tagged:
        raise ValueError(
            f"notebook {path.name} has no cell tagged {PARAMETERS_TAG!r}; its first code "
            "cell must hold the parameters and carry that tag"
        )
    if not code_cells or code_cells[0][0] != tagged[0]:
        first = code_cells[0][0] if code_cells else None
        raise ValueError(
            f"notebook {path.name}: the cell tagged {PARAMETERS_TAG!r} is cell {tagged[0]}, "
            f"but it must be the first code cell (cell {first})"
        )
    return _parse_parameters(notebook.cells[tagged[0]].source, path.name)


def _parse_parameters(source: str, notebook_name: str) -> dict[str, Any]:
    """Evaluate the literal assignments of a parameters cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ValueError(
            f"notebook {notebook_name}: the parameters cell is not valid Python "
            f"(line {err.lineno}: {err.msg})"
        ) from None

    values = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, node = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, node = statement.target, statement.value
        else:
            raise ValueError(
                f"notebook {notebook_name}: line {statement.lineno} of the parameters cell "
                "is not an assignment to a single name; the cell may hold only lines like "
                "'name = literal  # comment'"
            )
        if not isinstance(target, ast.Name):
            raise ValueError(
                f"notebook {notebook_name}: line {statement.lineno} of the parameters cell "
                f"assigns to {ast.unparse(target)!r}; only plain names are parameters"
            )
        try:
            values[target.id] = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise ValueError(
                f"notebook {notebook_name}: parameter {target.id!r} has the default "
                f"{ast.unparse(node)!r}, which is not a literal; derived values belong in "
                "a later cell"
            ) from None
    return values


def _unknown_message(unknown: list[str], defaults: dict[str, Any]) -> str:
    """Name each unknown parameter with its closest valid name, then list all valid names."""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(defaults), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    noun = "parameter" if len(unknown) == 1 else "parameters"
    valid = ", ".join(defaults) if defaults else "(none)"
    return f"unknown {noun} {', '.join(parts)}; valid names: {valid}"


def _coerce(value: Any, default: Any) -> Any:
    """Convert ``value`` to the type of ``default`` or raise :class:`_Mismatch`."""
    if default is None:
        return _parse_literal(value) if isinstance(value, str) else value
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise _Mismatch(value, "a string")
    if isinstance(default, bool):
        return _coerce_bool(value)
    if isinstance(default, int):
        return _coerce_int(value)
    if isinstance(default, float):
        return _coerce_float(value)
    if isinstance(default, (list, tuple)):
        return _coerce_sequence(value, default)
    if isinstance(default, dict):
        return _coerce_dict(value, default)

    # Other literals (complex, bytes, set): exact type only.
    expected = type(default)
    candidate = _parse_literal(value) if isinstance(value, str) else value
    if isinstance(candidate, expected):
        return candidate
    raise _Mismatch(value, f"a {expected.__name__}")


def _coerce_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _TRUE_STRINGS:
            return True
        if value in _FALSE_STRINGS:
            return False
    raise _Mismatch(value, "a bool (true/false/True/False/1/0/yes/no)")


def _coerce_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise _Mismatch(value, "an int")


def _coerce_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _Mismatch(value, "a float")


def _coerce_sequence(value: Any, default: list | tuple) -> list | tuple:
    kind = type(default).__name__
    candidate = _parse_literal(value) if isinstance(value, str) else value
    if not isinstance(candidate, (list, tuple)):
        raise _Mismatch(value, f"a {kind} (a Python or JSON literal such as [1, 2])")
    items = [
        _coerce_element(item, default, f"[{index}]") for index, item in enumerate(candidate)
    ]
    return type(default)(items)


def _coerce_dict(value: Any, default: dict) -> dict:
    candidate = _parse_literal(value) if isinstance(value, str) else value
    if not isinstance(candidate, dict):
        raise _Mismatch(value, "a dict (a Python or JSON literal such as {\"a\": 1})")
    if not default:
        return dict(candidate)
    keys, values = list(default), list(default.values())
    return {
        _coerce_element(key, keys, f"[{key!r}]", "as a key"): _coerce_element(
            item, values, f"[{key!r}]"
        )
        for key, item in candidate.items()
    }


def _coerce_element(item: Any, templates: Any, where: str, role: str = "") -> Any:
    """Coerce one element against the element types of a non-empty default container."""
    if not templates:
        return item
    # One template per distinct element type; an exact type match is tried first so a
    # string stays a string when the default also contains strings.
    by_type = {}
    for template in templates:
        by_type.setdefault(type(template), template)
    ordered = sorted(by_type.values(), key=lambda template: type(template) is not type(item))
    failures = []
    for template in ordered:
        try:
            return _coerce(item, template)
        except _Mismatch as err:
            failures.append(err)
    if len(failures) == 1 and failures[0].where:
        inner = failures[0]
        raise _Mismatch(inner.value, inner.expected, f"{where}{inner.where}")
    expected = " or ".join(dict.fromkeys(err.expected for err in failures))
    raise _Mismatch(item, f"{expected} {role}".strip(), where)


def _parse_literal(text: str) -> Any:
    """Read a Python literal, then a JSON literal; return ``text`` itself if neither fits."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    try:
        return json.loads(text)
    except ValueError:
        return text
