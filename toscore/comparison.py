"""Configurations and statistics for comparing architectures by their minima barcodes.

Two experiments of Barannikov et al. (arXiv:2012.15834) compare barcodes across
architectures: a sweep of plain convolutional networks over depth, width and batch norm
(E3), and a small against a large network on the same data (E4). This module builds
their model configs and computes the statistics that decide whether a run supports the
paper's first observation, that barcodes and TO-scores shrink as networks grow.

The statistics read the tables of :mod:`toscore.experiments`: ``segments`` with one
row per minimum (columns ``length`` and ``essential``) and ``scores`` with one row per
configuration (column ``to_score``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .experiments import trend_statistic

__all__ = [
    "architecture_label",
    "architecture_summary",
    "cnn_configs",
    "compare_architectures",
    "complete_config",
    "model_config_rule",
    "segment_length_test",
    "trend_by_group",
]

_SUMMARY_METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")


def _barcode_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Select the rows of minima that are barcode vertices, those not ``excluded`` after diverging."""
    if "excluded" in table.columns:
        return table[~table["excluded"].astype(bool)]
    return table


def cnn_configs(input_shape, n_classes: int, n_convs, channels, batch_norms=(False,),
                head: str = "pool") -> list[dict]:
    """Build the ``"cnn"`` model configs of every (n_conv, channels, batch_norm) combination.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` or ``(C, L)``, as :func:`toscore.models.cnn` takes it.
    n_classes : int
    n_convs, channels : sequence of int
        Numbers of convolution layers and channels per convolution.
    batch_norms : sequence of bool, default (False,)
        Whether each convolution is followed by batch norm.
    head : {"pool", "flatten"}, default "pool"
        Classifier of every config, as :func:`toscore.models.cnn` takes it.

    Returns
    -------
    list of dict
        One config per combination, ordered by batch norm, then n_conv, then channels.
        ``input_shape`` is stored as a tuple.

    Raises
    ------
    ValueError
        If a sequence is empty or contains a repeated value.
    """
    for name, values in (("n_convs", n_convs), ("channels", channels), ("batch_norms", batch_norms)):
        values = list(values)
        if not values:
            raise ValueError(f"{name} is empty; give at least one value")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} has repeated values: {values}")
    shape = tuple(int(size) for size in input_shape)
    return [
        dict(name="cnn", input_shape=shape, n_conv=int(depth), channels=int(width),
             n_classes=int(n_classes), batch_norm=bool(norm), head=head)
        for norm, depth, width in itertools.product(batch_norms, n_convs, channels)
    ]


def complete_config(config: dict, input_shape, n_classes: int) -> dict:
    """Add the data-dependent keys ``input_shape`` and ``n_classes`` to a model config.

    Parameters
    ----------
    config : dict
        A partial config such as ``{"name": "wide_resnet", "depth": 16, "widen_factor": 2}``.
    input_shape : tuple of int
        Shape of one example, e.g. ``(1, 40)`` for MNIST-1D in the channels-first layout.
    n_classes : int

    Returns
    -------
    dict
        A new dict; ``name`` comes first, then ``input_shape`` and ``n_classes``, then the
        other keys of ``config``.

    Raises
    ------
    ValueError
        If ``config`` has no ``name`` key, or already gives ``input_shape`` or
        ``n_classes`` with a different value than the data's.
    """
    if "name" not in config:
        raise ValueError(f"model config needs a 'name' key; got keys {sorted(config)}")
    shape = tuple(int(size) for size in input_shape)
    for key, value in (("input_shape", shape), ("n_classes", int(n_classes))):
        given = config.get(key)
        if given is not None and (tuple(given) if key == "input_shape" else given) != value:
            raise ValueError(f"model config gives {key}={given!r} but the data have {key}={value!r}")
    rest = {key: value for key, value in config.items() if key not in ("name", "input_shape", "n_classes")}
    return {"name": config["name"], "input_shape": shape, "n_classes": int(n_classes), **rest}


def model_config_rule(value) -> str | None:
    """Check a model-config parameter: a dict whose ``name`` is a registered model.

    A rule for :func:`toscore.validation.check_parameters`: returns None for a valid
    value, else a message with the value and the registered names. The builder's own
    arguments are checked later, when the model is built.
    """
    from .models import model_names

    names = model_names()
    if not isinstance(value, dict):
        return f"expected a model config dict with a 'name' key, got {type(value).__name__} {value!r}"
    if value.get("name") not in names:
        return f"model name {value.get('name')!r} is not one of {names}"
    return None


def architecture_label(config: dict) -> str:
    """Return a short readable name of a model config, for tables and figure legends.

    ``wide_resnet`` gives ``"WRN-16-2"``: depth and widen factor, with the builder's
    defaults 16 and 10 when absent. ``lenet`` gives ``"LeNet"`` and ``resnet`` gives
    ``"ResNet-20"``. ``cnn`` gives ``"CNN 4x32"`` (n_conv x channels), with ``" BN"``
    appended under batch norm. ``mlp`` gives ``"MLP 2x64"`` (depth x width). Other
    names give the name followed by their arguments, without shapes and class counts.
    """
    name = config.get("name")
    if name == "wide_resnet":
        return f"WRN-{config.get('depth', 16)}-{config.get('widen_factor', 10)}"
    if name == "lenet":
        return "LeNet"
    if name == "resnet":
        width = config.get("width", 1)
        return f"ResNet-{config.get('depth', 20)}" + ("" if width == 1 else f" x{width}")
    if name == "cnn":
        return f"CNN {config['n_conv']}x{config['channels']}" + (" BN" if config.get("batch_norm") else "")
    if name == "mlp":
        return f"MLP {config['depth']}x{config['width']}"
    arguments = [f"{key}={value}" for key, value in config.items()
                 if key not in ("name", "input_shape", "input_dim", "n_classes")]
    return f"{name}({', '.join(arguments)})"


def trend_by_group(scores: pd.DataFrame, x: str, group: str, value: str = "to_score") -> pd.DataFrame:
    """Compute the Spearman rank correlation of ``value`` with ``x`` within each value of ``group``.

    Parameters
    ----------
    scores : DataFrame
        One row per configuration.
    x : str
        Size column, e.g. ``"n_conv"`` or ``"channels"``.
    group : str
        Column whose values split the rows, e.g. ``"batch_norm"``; the other size
        columns are pooled within a group, as in E2.
    value : str, default "to_score"

    Returns
    -------
    DataFrame
        One row per group value, in sorted order: columns ``group`` (its value),
        ``size`` (= ``x``), ``rho``, ``p_value`` and ``n`` from
        :func:`toscore.experiments.trend_statistic` (NaN with fewer than three rows
        or a constant column).

    Raises
    ------
    ValueError
        If a column is missing.
    """
    missing = [column for column in (x, group, value) if column not in scores.columns]
    if missing:
        raise ValueError(f"scores has no column {missing}; columns: {list(scores.columns)}")
    rows = []
    for key, table in scores.groupby(group, sort=True):
        rows.append({group: key, "size": x, **trend_statistic(table, x, value)})
    return pd.DataFrame(rows)


def segment_length_test(small_lengths, large_lengths) -> dict:
    """One-sided Mann-Whitney U test that the small network's segments are longer.

    The alternative hypothesis is that a finite segment length of the small network is
    stochastically greater than one of the large network. Ties count one half. The
    p-value comes from ``scipy.stats.mannwhitneyu`` with ``method="auto"``: exact when
    there are no ties and one sample has at most eight values, else the normal
    approximation with tie and continuity corrections.

    Parameters
    ----------
    small_lengths, large_lengths : array_like of float, shapes (n_small,), (n_large,)
        Finite minima-segment lengths (loss units) of the two networks.

    Returns
    -------
    dict
        ``u_statistic``: U of the small network's sample. It counts the pairs
        (small, large) where the small length is greater, ties counting 1/2.
        ``p_value``: the one-sided p-value. ``effect_size``:
        ``u_statistic / (n_small * n_large)``, the probability that a random small
        segment is longer than a random large one (0.5: no difference).
        ``n_small``, ``n_large``: the sample sizes.

    Raises
    ------
    ValueError
        If a sample is empty or contains a NaN or infinite value.
    """
    from scipy.stats import mannwhitneyu

    samples = []
    for name, values in (("small_lengths", small_lengths), ("large_lengths", large_lengths)):
        values = np.asarray(values, dtype=np.float64).ravel()
        if values.size == 0:
            raise ValueError(f"{name} is empty; the test needs at least one finite segment per network")
        bad = int(np.count_nonzero(~np.isfinite(values)))
        if bad:
            raise ValueError(f"{name} contains {bad} NaN or infinite values; pass finite segment lengths only")
        samples.append(values)
    small, large = samples
    result = mannwhitneyu(small, large, alternative="greater", method="auto")
    u_statistic = float(result.statistic)
    return {
        "u_statistic": u_statistic,
        "p_value": float(result.pvalue),
        "effect_size": u_statistic / (small.size * large.size),
        "n_small": int(small.size),
        "n_large": int(large.size),
    }


def compare_architectures(segments: pd.DataFrame, small: str, large: str, *,
                          column: str = "architecture", alpha: float = 0.05,
                          ord: float = 2) -> dict:
    """Decide whether the large network's minima segments are shorter than the small one's.

    Parameters
    ----------
    segments : DataFrame
        One row per minimum with columns ``column``, ``length`` and ``essential``, as
        :func:`toscore.experiments.segments_table` gives plus an architecture column.
        Only finite segments (``essential`` False) of minima that are not ``excluded``
        (when that column is present) enter the statistics.
    small, large : str
        Values of ``column`` naming the two networks.
    column : str, default "architecture"
    alpha : float, default 0.05
        Significance level of the one-sided Mann-Whitney U test.
    ord : {1, 2, inf}, default 2
        Norm of the TO-scores.

    Returns
    -------
    dict
        ``to_score_small``, ``to_score_large``: the ``ord``-norms of the finite lengths;
        ``to_score_ratio``: large over small, below 1 when the large network's barcode
        is shorter. It is ``inf`` when only the small network's TO-score is 0, and NaN
        when both are 0. Then the keys of :func:`segment_length_test`, ``norm_ord`` and
        ``alpha``. Last, ``supported``: True when the ratio is below 1 and the test
        rejects at ``alpha``; False when the ratio is at least 1 (or NaN); None
        (undecided) when the ratio is below 1 but the test does not reject.

    Raises
    ------
    ValueError
        If ``small`` or ``large`` names no rows, ``ord`` is not 1, 2 or inf, ``alpha``
        is outside (0, 1), or a network has no finite segment.
    """
    if ord not in (1, 2, math.inf):
        raise ValueError(f"ord must be one of 1, 2, inf; got {ord!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1); got {alpha!r}")
    lengths = {}
    for role, label in (("small", small), ("large", large)):
        rows = segments[segments[column] == label]
        if rows.empty:
            raise ValueError(f"{role}={label!r} names no rows of segments[{column!r}]; "
                             f"values: {sorted(segments[column].unique())}")
        rows = _barcode_rows(rows)
        lengths[role] = rows.loc[~rows["essential"].astype(bool), "length"].to_numpy(dtype=np.float64)

    score_small, score_large = (float(np.linalg.norm(lengths[role], ord=ord)) if lengths[role].size else 0.0
                                for role in ("small", "large"))
    if score_small > 0:
        ratio = score_large / score_small
    else:
        ratio = math.nan if score_large == 0 else math.inf
    test = segment_length_test(lengths["small"], lengths["large"])
    if not ratio < 1:  # NaN too: equal barcodes do not support the observation
        supported = False
    else:
        supported = True if test["p_value"] < alpha else None
    return {"to_score_small": score_small, "to_score_large": score_large, "to_score_ratio": ratio,
            **test, "norm_ord": str(ord), "alpha": alpha, "supported": supported}


def architecture_summary(segments: pd.DataFrame, *, column: str = "architecture",
                         ord: float = 2) -> pd.DataFrame:
    """Tabulate per architecture the mean and standard deviation of the minima's metrics, and the TO-score.

    Parameters
    ----------
    segments : DataFrame
        One row per minimum with columns ``column``, ``train_loss``, ``test_loss``,
        ``train_accuracy``, ``test_accuracy``, ``length`` and ``essential``; an
        ``n_params`` column is carried over when present. Minima marked ``excluded``
        (diverged, not in the barcode) are left out of every statistic and counted in
        ``n_excluded``.
    column : str, default "architecture"
    ord : {1, 2, inf}, default 2
        Norm of the TO-score.

    Returns
    -------
    DataFrame
        One row per architecture, in order of first appearance. Columns: ``column``,
        ``n_params`` (when given), ``n_minima``, ``n_excluded``, ``<metric>_mean`` and
        ``<metric>_std`` for each of the four metrics over the minima, ``length_mean``
        and ``length_std`` over the finite segments only, ``n_finite_segments``,
        ``to_score`` and ``norm_ord``. Standard deviations use ``n - 1`` (NaN for a
        single value).

    Raises
    ------
    ValueError
        If a required column is missing or ``ord`` is not 1, 2 or inf.
    """
    if ord not in (1, 2, math.inf):
        raise ValueError(f"ord must be one of 1, 2, inf; got {ord!r}")
    required = [column, *_SUMMARY_METRICS, "length", "essential"]
    missing = [name for name in required if name not in segments.columns]
    if missing:
        raise ValueError(f"segments has no column {missing}; columns: {list(segments.columns)}")
    rows = []
    for label in segments[column].drop_duplicates():
        every = segments[segments[column] == label]
        table = _barcode_rows(every)
        finite = table.loc[~table["essential"].astype(bool), "length"].to_numpy(dtype=np.float64)
        row = {column: label}
        if "n_params" in every.columns:
            row["n_params"] = int(every["n_params"].iloc[0])
        row["n_minima"] = len(table)
        row["n_excluded"] = len(every) - len(table)
        for metric in _SUMMARY_METRICS:
            row[f"{metric}_mean"] = float(table[metric].mean())
            row[f"{metric}_std"] = float(table[metric].std(ddof=1))
        row["length_mean"] = float(finite.mean()) if finite.size else math.nan
        row["length_std"] = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        row["n_finite_segments"] = int(finite.size)
        row["to_score"] = float(np.linalg.norm(finite, ord=ord)) if finite.size else 0.0
        row["norm_ord"] = str(ord)
        rows.append(row)
    return pd.DataFrame(rows)
