"""Minima segments and generalization: two training regimes, one joint barcode.

Barannikov et al. (arXiv:2012.15834) train minima of one network in two ways: with a
small constant learning rate ("type 1") and with learning-rate annealing, a large rate
first and a small one at the end ("type 2"). They report that type-2 minima have
shorter minima segments and lower test error, so shorter segments go with better
generalization.

This module provides the two learning-rate schedules and trains both groups with
:func:`toscore.train_minima`. It computes one H0 barcode over the minima of both groups
together, so every segment is measured in the same landscape and the segments of the
two groups compare directly. The statistics that test the claim are per-group means and
a Spearman correlation between segment length and test error with a bootstrap
confidence interval.

The global minimum of the joint barcode has an infinite segment. It is left out of
every statistic of segment lengths (the correlation, the per-group mean and TO-score)
and reported on its own: its group and its test error.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .artifacts import ArtifactStore, default_store, fingerprint_tensors
from .datasets import Dataset
from .experiments import segments_table
from .minima import Minima, train_minima
from .models import build_model, count_parameters
from .objectives import NetworkObjective, resolve_device
from .paths import MinimaBarcode, minima_barcode

__all__ = [
    "ANNEAL_SHAPES",
    "AnnealingSchedule",
    "ConstantSchedule",
    "GeneralizationResult",
    "bootstrap_spearman",
    "group_statistics",
    "joint_barcode",
    "minimum_table",
    "model_config",
    "observation_verdict",
    "run_generalization",
    "segment_error_correlation",
    "spearman_rho",
    "train_groups",
]

logger = logging.getLogger("toscore")

ANNEAL_SHAPES = ("geometric", "cosine")
_METRICS = ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "test_error")


# ------------------------------------------------------------------------- schedules


def _check_rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    return float(value)


def _check_epoch(epoch) -> int:
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0 (epochs count from 0); got {epoch!r}")
    return int(epoch)


@dataclass(frozen=True)
class ConstantSchedule:
    """The same learning rate at every epoch: the schedule of type-1 minima.

    Parameters
    ----------
    lr : float
        Learning rate, > 0.

    Examples
    --------
    >>> ConstantSchedule(1e-4)(0), ConstantSchedule(1e-4)(1999)
    (0.0001, 0.0001)
    """

    lr: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _check_rate("lr", self.lr))

    def __call__(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (counted from 0)."""
        _check_epoch(epoch)
        return self.lr


@dataclass(frozen=True)
class AnnealingSchedule:
    """Hold a large rate, anneal it to a small one, then hold that: type-2 minima.

    With ``h = hold_epochs`` and ``E = anneal_end``, the rate of epoch ``e`` (counted
    from 0, as :func:`toscore.train_minima` counts) is

    - ``lr_start`` for ``e <= h``: epochs ``0 .. h-1`` are the hold, and epoch ``h`` is
      where the anneal starts, still at ``lr_start``;
    - for ``h < e < E``, with ``t = (e - h) / (E - h)`` in (0, 1):
      ``lr_start * (lr_end / lr_start) ** t`` (``"geometric"``: the same factor every
      epoch, a straight line on a log scale), or
      ``lr_end + (lr_start - lr_end) * (1 + cos(pi * t)) / 2`` (``"cosine"``);
    - ``lr_end`` for ``e >= E``: the rate is reached at epoch ``E`` and held.

    The paper's type-2 schedule (rate 5e-2 for 10 epochs, annealed to 1e-4 by epoch 50,
    100 epochs in all) is ``AnnealingSchedule(5e-2, 1e-4, hold_epochs=10,
    anneal_end=50)``.

    Parameters
    ----------
    lr_start, lr_end : float
        Rates before and after the anneal, > 0. ``lr_end > lr_start`` is allowed (a
        warm-up) but is not annealing.
    hold_epochs : int
        Epochs at ``lr_start`` before the anneal, >= 0.
    anneal_end : int
        First epoch at ``lr_end``, > ``hold_epochs``.
    shape : {"geometric", "cosine"}, default "geometric"

    Examples
    --------
    >>> schedule = AnnealingSchedule(5e-2, 1e-4, hold_epochs=10, anneal_end=50)
    >>> schedule(9), schedule(10), schedule(50), schedule(99)
    (0.05, 0.05, 0.0001, 0.0001)
    """

    lr_start: float
    lr_end: float
    hold_epochs: int
    anneal_end: int
    shape: str = "geometric"

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr_start", _check_rate("lr_start", self.lr_start))
        object.__setattr__(self, "lr_end", _check_rate("lr_end", self.lr_end))
        for name in ("hold_epochs", "anneal_end"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.anneal_end <= self.hold_epochs:
            raise ValueError(f"anneal_end must be larger than hold_epochs={self.hold_epochs}; "
                             f"got {self.anneal_end}")
        if self.shape not in ANNEAL_SHAPES:
            raise ValueError(f"shape must be one of {list(ANNEAL_SHAPES)}; got {self.shape!r}")

    def __call__(self, epoch: int) -> float:
        """Learning rate of epoch ``epoch`` (counted from 0)."""
        epoch = _check_epoch(epoch)
        if epoch <= self.hold_epochs:
            return self.lr_start
        if epoch >= self.anneal_end:
            return self.lr_end
        t = (epoch - self.hold_epochs) / (self.anneal_end - self.hold_epochs)
        if self.shape == "geometric":
            return self.lr_start * (self.lr_end / self.lr_start) ** t
        return self.lr_end + (self.lr_start - self.lr_end) * (1 + math.cos(math.pi * t)) / 2


# ------------------------------------------------------------------ minima and barcode


def model_config(name: str, data: Dataset, depth: int, width: int) -> dict:
    """Config of a registered model sized for ``data``: one knob for depth, one for width.

    Parameters
    ----------
    name : {"mlp", "cnn", "resnet"}
    data : Dataset
        Gives the input shape (``"flat"`` layout for ``"mlp"``, channels-first for the
        others) and the class count.
    depth : int
        Hidden layers (``"mlp"``), convolutions (``"cnn"``) or the ResNet depth
        (``"resnet"``: 9, 14 or 20).
    width : int
        Hidden units (``"mlp"``), channels (``"cnn"``) or the channel multiplier
        (``"resnet"``, 16 channels per unit in the first stage).

    Returns
    -------
    dict
        A config for :func:`toscore.build_model`.
    """
    if name not in ("mlp", "cnn", "resnet"):
        raise ValueError(f"model must be one of ['mlp', 'cnn', 'resnet']; got {name!r}")
    if name == "mlp":
        return dict(name="mlp", input_dim=data.input_dim, depth=depth, width=width,
                    n_classes=data.n_classes)
    if len(data.input_shape) < 2:
        raise ValueError(f"model {name!r} needs channels-first inputs (channels, *spatial); "
                         f"{data.name} has input shape {data.input_shape} (load it with "
                         "layout='channels_first')")
    if name == "cnn":
        return dict(name="cnn", input_shape=data.input_shape, n_conv=depth, channels=width,
                    n_classes=data.n_classes)
    return dict(name="resnet", input_shape=data.input_shape, depth=depth, width=width,
                n_classes=data.n_classes)


def train_groups(
    model: torch.nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor] | None,
    groups: Mapping[str, Mapping[str, Any]],
    **common,
) -> Minima:
    """Train every group of minima with its own settings and stack them.

    Parameters
    ----------
    model : nn.Module
        Architecture shared by all groups; never modified.
    train_data, test_data : tuple of Tensor
        As in :func:`toscore.train_minima`.
    groups : mapping of str to mapping
        Group name to keyword arguments of :func:`toscore.train_minima` for that group,
        which must include ``seeds``; e.g. ``{"type 1": dict(seeds=range(8),
        epochs=2000, lr_schedule=ConstantSchedule(1e-4)), ...}``. Seeds must be distinct
        across groups, so that every minimum has its own initialization.
    **common
        Keyword arguments of :func:`toscore.train_minima` shared by every group
        (``batch_size``, ``momentum``, ``device``, ...); a group's own value wins.

    Returns
    -------
    Minima
        Parameters of shape ``(N, D)``, the groups' minima stacked in the order of
        ``groups``; the table has the columns of :class:`toscore.Minima` plus ``group``
        (first column) and ``train_seconds`` (wall time of the group's training).

    Raises
    ------
    ValueError
        For an empty ``groups``, a group without ``seeds``, or a seed used twice.
    """
    if not groups:
        raise ValueError("groups is empty; give at least one group of training settings")
    seen: dict[int, str] = {}
    for name, settings in groups.items():
        if "seeds" not in settings:
            raise ValueError(f"group {name!r} has no 'seeds'; every group needs its own seeds")
        for seed in settings["seeds"]:
            if int(seed) in seen:
                raise ValueError(f"seed {int(seed)} is used by groups {seen[int(seed)]!r} and "
                                 f"{name!r}; seeds must be distinct across groups")
            seen[int(seed)] = name

    parameters, tables = [], []
    for name, settings in groups.items():
        started = time.perf_counter()
        minima = train_minima(model, train_data, test_data, **{**common, **settings})
        table = minima.table.copy()
        table.insert(0, "group", name)
        table["train_seconds"] = time.perf_counter() - started
        parameters.append(minima.parameters)
        tables.append(table)
        logger.info("group %r: %d minima, mean train loss %.4g, mean test accuracy %.4g", name,
                    len(table), table["train_loss"].mean(),
                    table["test_accuracy"].mean() if "test_accuracy" in table else float("nan"))
    return Minima(parameters=torch.cat(parameters), table=pd.concat(tables, ignore_index=True))


def joint_barcode(
    model: torch.nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    parameters: torch.Tensor,
    *,
    weight_decay: float = 1e-5,
    path_examples: int | None = None,
    subset_seed: int = 0,
    max_points_per_call: int | None = None,
    max_examples_per_call: int | None = None,
    device="auto",
    progress: bool = False,
    **paths,
) -> MinimaBarcode:
    """Barcode of all given minima together, on the training loss with an L2 term.

    Parameters
    ----------
    model : nn.Module
        Architecture of the minima.
    train_data : tuple of Tensor
        ``(inputs, targets)``; every barcode value is the mean cross-entropy on all of it
        (or on the fixed subset that ``path_examples`` selects) plus
        ``weight_decay * ||theta||^2``.
    parameters : Tensor, shape (N, D)
        The minima of every group, stacked (e.g. ``train_groups(...).parameters``).
    weight_decay : float, default 1e-5
        L2 coefficient of the path loss, the paper's value.
    path_examples : int, optional
        Evaluate every value on this many training examples, a fixed subset drawn
        uniformly without replacement: the first ``path_examples`` entries of
        ``torch.randperm(n, generator=torch.Generator().manual_seed(subset_seed))``.
        Default all of them. The minima's own values (the births) use the same subset.
    subset_seed : int, default 0
    max_points_per_call, max_examples_per_call : int, optional
        Points and examples per batched objective call; see
        :class:`toscore.NetworkObjective`. Chunking examples bounds the memory of large
        networks on large datasets without changing the values beyond float rounding.
    device : str, default "auto"
    progress : bool, default False
    **paths
        Keyword arguments of :func:`toscore.minima_barcode` (``method``, ``n_points``, ...).

    Returns
    -------
    MinimaBarcode
        Vertex ``i`` is row ``i`` of ``parameters``; all ``N(N-1)/2`` pairs have a path.
    """
    n_examples = len(train_data[0])
    subset, subset_name = None, None
    if path_examples is not None:
        if isinstance(path_examples, bool) or not 1 <= path_examples <= n_examples:
            raise ValueError(f"path_examples must lie between 1 and the {n_examples} training "
                             f"examples, or be None for all; got {path_examples!r}")
        if path_examples < n_examples:
            generator = torch.Generator().manual_seed(int(subset_seed))
            subset = torch.randperm(n_examples, generator=generator)[:path_examples].sort().values
            subset_name = f"{path_examples} of {n_examples} training examples (seed {subset_seed})"
    objective = NetworkObjective(model, "cross_entropy", train_data, weight_decay, subset=subset,
                                 subset_name=subset_name, max_points_per_call=max_points_per_call,
                                 max_examples_per_call=max_examples_per_call, device=device)
    return minima_barcode(objective, parameters.to(objective.device), progress=progress, **paths)


def minimum_table(barcode: MinimaBarcode, minima: Minima, config: dict | None = None,
                  kept: np.ndarray | None = None) -> pd.DataFrame:
    """One row per minimum: group, seed, metrics, test error and minima segment.

    The columns of :func:`toscore.experiments.segments_table` (``group`` comes from the
    minima table), plus ``test_error = 1 - test_accuracy`` (a fraction) and
    ``path_method``. The global minimum has ``death = length = inf`` and
    ``essential = True``.

    Parameters
    ----------
    barcode : MinimaBarcode
        Joint barcode; its vertices are the rows ``kept`` of ``minima``.
    minima : Minima
        From :func:`train_groups`.
    config : dict, optional
        Context columns put first (dataset, model config, ...).
    kept : ndarray of int, optional
        Rows of ``minima`` that are the barcode's vertices; default all.
    """
    table = segments_table(barcode, minima, dict(config or {}), kept)
    if "test_accuracy" in table:
        table.insert(table.columns.get_loc("test_accuracy") + 1, "test_error",
                     1.0 - table["test_accuracy"])
    table["path_method"] = barcode.method
    return table


@dataclass
class GeneralizationResult:
    """Minima of every group, their joint barcode and the per-minimum table.

    Attributes
    ----------
    config : dict
        Dataset, model config, parameter count and path method.
    minima : Minima
        All groups stacked, with a ``group`` column (see :func:`train_groups`).
    barcode : MinimaBarcode
        Joint barcode over the minima that did not diverge.
    table : pandas.DataFrame
        One row per minimum, see :func:`minimum_table`.
    seconds : dict
        Wall time of ``training`` and ``paths``, in seconds (0 when an artifact was reused).
    """

    config: dict
    minima: Minima
    barcode: MinimaBarcode
    table: pd.DataFrame
    seconds: dict


def run_generalization(
    data: Dataset,
    config: dict,
    groups: Mapping[str, Mapping[str, Any]],
    *,
    train: Mapping[str, Any],
    paths: Mapping[str, Any],
    weight_decay: float = 1e-5,
    path_examples: int | None = None,
    max_points_per_call: int | None = None,
    max_examples_per_call: int | None = None,
    device="auto",
    progress: bool = False,
    store: ArtifactStore | None | bool = None,
) -> GeneralizationResult:
    """Train every group of minima of one model, compute their joint barcode, tabulate.

    Minima and barcode are saved in an artifact store as soon as each is computed and
    reused by a later call with the same inputs, as in
    :func:`toscore.experiments.barcode_of_config`. Minima whose training diverged stay in
    the table, marked ``excluded``, and are left out of the barcode.

    Parameters
    ----------
    data : Dataset
        Training split for minima and paths; the test split gives the test error.
    config : dict
        Model config for :func:`toscore.build_model`.
    groups : mapping of str to mapping
        Per-group settings, see :func:`train_groups`. Learning-rate schedules must have
        a deterministic ``repr`` (the schedules of this module do), because the artifact
        key includes it.
    train : mapping
        Settings of :func:`toscore.train_minima` shared by every group.
    paths : mapping
        Keyword arguments of :func:`toscore.minima_barcode`.
    weight_decay : float, default 1e-5
        L2 coefficient of the barcode's loss.
    path_examples : int, optional
        Training examples the barcode's loss averages over, a fixed subset seeded by
        ``train["data_seed"]`` (see :func:`joint_barcode`); default all.
    max_points_per_call, max_examples_per_call : int, optional
        Chunk sizes of the batched objective in the path optimization.
    device : str, default "auto"
    progress : bool, default False
    store : ArtifactStore, optional
        Default :func:`toscore.artifacts.default_store`; ``False`` saves nothing.

    Returns
    -------
    GeneralizationResult

    Raises
    ------
    RuntimeError
        If fewer than two minima trained without diverging.
    """
    device = resolve_device(device)
    if store is None:
        store = default_store()
    model = build_model(config)
    group_keys = {name: {key: (str(value) if key == "lr_schedule" else value)
                         for key, value in settings.items()} for name, settings in groups.items()}
    for settings in group_keys.values():
        settings["seeds"] = [int(seed) for seed in settings["seeds"]]
    seconds = {"training": 0.0, "paths": 0.0}

    data_key = fingerprint_tensors(*data.train, *data.test)
    minima_key = store.key("group_minima", model=config, data=data_key, groups=group_keys,
                           train=dict(train), device=device.type) if store else None
    saved = store.load("group_minima", minima_key) if store else None
    if saved is not None:
        minima = Minima.from_arrays(saved, device)
    else:
        started = time.perf_counter()
        minima = train_groups(model, data.train, data.test, groups, device=device,
                              progress=progress, **train)
        seconds["training"] = time.perf_counter() - started
        if store:
            store.save("group_minima", minima_key, minima.to_arrays())

    kept = minima.barcode_indices()

    subset_seed = int(train.get("data_seed", 0))
    barcode_key = store.key("barcode", minima=minima_key, paths=dict(paths),
                            weight_decay=weight_decay, kept=kept.tolist(),
                            path_examples=path_examples, subset_seed=subset_seed) if store else None
    saved = store.load("barcode", barcode_key) if store else None
    if saved is not None:
        barcode = MinimaBarcode.from_arrays(saved)
    else:
        started = time.perf_counter()
        barcode = joint_barcode(model, data.train, minima.parameters[kept],
                                weight_decay=weight_decay, path_examples=path_examples,
                                subset_seed=subset_seed, max_points_per_call=max_points_per_call,
                                max_examples_per_call=max_examples_per_call, device=device,
                                progress=progress, **paths)
        seconds["paths"] = time.perf_counter() - started
        if store:
            store.save("barcode", barcode_key, barcode.to_arrays())

    context = {"dataset": data.name, **config, "n_params": count_parameters(model),
               "barcode_examples": min(path_examples or len(data.train_x), len(data.train_x))}
    table = minimum_table(barcode, minima, context, kept)
    logger.info("%s: joint barcode of %d minima, training %.0f s, paths %.0f s", config["name"],
                len(kept), seconds["training"], seconds["paths"])
    return GeneralizationResult({**context, "method": barcode.method}, minima, barcode, table,
                                seconds)


# ------------------------------------------------------------------------- statistics


def _finite_segments(table: pd.DataFrame) -> pd.DataFrame:
    """Rows with a finite segment: neither the global minimum nor a diverged minimum."""
    mask = ~table["essential"].astype(bool)
    if "excluded" in table:
        mask &= ~table["excluded"].astype(bool)
    return table[mask & np.isfinite(table["length"].to_numpy(dtype=float))]


def group_statistics(table: pd.DataFrame, *, group: str = "group", score_ord: float = 2,
                     ddof: int = 1) -> pd.DataFrame:
    """Per group: mean and standard deviation of the metrics and of the segment lengths.

    Parameters
    ----------
    table : DataFrame
        From :func:`minimum_table`: columns ``group``, ``train_loss``, ``test_loss``,
        ``train_accuracy``, ``test_accuracy``, ``test_error``, ``length``,
        ``essential`` and optionally ``excluded``.
    group : str, default "group"
        Column that names the groups; rows keep their order of first appearance.
    score_ord : {1, 2, inf}, default 2
        Norm of each group's TO-score, the norm of its finite segment lengths.
    ddof : int, default 1
        Delta degrees of freedom of the standard deviations (1: the sample standard
        deviation, as pandas computes it).

    Returns
    -------
    DataFrame
        One row per group: ``group``, ``n_minima`` (rows not excluded), ``n_finite``
        (finite segments), ``n_zero_length`` (segments of length 0: minima joined to a
        lower minimum by a path that never rises above them, so not separate basins at
        the resolution of the paths), ``holds_global_minimum``; ``<metric>_mean`` and
        ``<metric>_std`` for every metric over the minima that did not diverge;
        ``length_mean``, ``length_std``, ``length_median`` over the finite segments
        only (the global minimum's infinite segment is left out); ``to_score`` and
        ``norm_ord``. A statistic of fewer values than ``ddof + 1`` is NaN.
    """
    if group not in table:
        raise ValueError(f"table has no column {group!r}; columns: {list(table.columns)}")
    rows = []
    for name, rows_of_group in table.groupby(group, sort=False):
        kept = rows_of_group
        if "excluded" in kept:
            kept = kept[~kept["excluded"].astype(bool)]
        finite = _finite_segments(rows_of_group)["length"].to_numpy(dtype=float)
        row = {group: name, "n_minima": len(kept), "n_finite": len(finite),
               "n_zero_length": int((finite == 0).sum()),
               "holds_global_minimum": bool(kept["essential"].astype(bool).any())}
        for metric in _METRICS:
            if metric in kept:
                values = kept[metric].to_numpy(dtype=float)
                row[f"{metric}_mean"] = values.mean() if len(values) else np.nan
                row[f"{metric}_std"] = values.std(ddof=ddof) if len(values) > ddof else np.nan
        row["length_mean"] = finite.mean() if len(finite) else np.nan
        row["length_std"] = finite.std(ddof=ddof) if len(finite) > ddof else np.nan
        row["length_median"] = np.median(finite) if len(finite) else np.nan
        row["to_score"] = float(np.linalg.norm(finite, ord=score_ord)) if len(finite) else 0.0
        row["norm_ord"] = str(score_ord)
        rows.append(row)
    return pd.DataFrame(rows)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along the last axis."""
    return stats.rankdata(values, axis=-1)


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows, ``(R, n)`` -> ``(R,)``; NaN for a constant row."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=-1) / denominator, np.nan)


def _check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of the same length; got shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"x and y must be finite; got {int((~np.isfinite(x)).sum())} non-finite "
                         f"x and {int((~np.isfinite(y)).sum())} non-finite y values (leave the "
                         "global minimum's infinite segment out)")
    return x, y


def spearman_rho(x, y) -> float:
    """Spearman rank correlation: the Pearson correlation of the average ranks.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Finite values.

    Returns
    -------
    float
        In [-1, 1]; NaN when ``n < 2`` or either input is constant.
    """
    x, y = _check_pair(x, y)
    if len(x) < 2:
        return float("nan")
    return float(_row_correlation(_ranks(x), _ranks(y)))


def bootstrap_spearman(x, y, *, n_boot: int = 2000, confidence: float = 0.95,
                       seed: int = 0) -> dict:
    """Spearman correlation with a percentile bootstrap confidence interval.

    Each resample draws ``n`` index positions uniformly with replacement, all at once
    as ``numpy.random.default_rng(seed).integers(0, n, size=(n_boot, n))``, and takes
    the Spearman correlation of the resampled pairs. A resample in which ``x`` or ``y``
    is constant has no correlation and is dropped (``n_valid`` counts the others). The
    interval runs between the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    quantiles of the valid resampled correlations (numpy's default linear
    interpolation).

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Paired finite values, e.g. segment lengths and test errors of the minima.
    n_boot : int, default 2000
        Number of resamples, >= 1.
    confidence : float, default 0.95
        Coverage of the interval, in (0, 1).
    seed : int, default 0
        Seed of the resampling; the same seed gives the same interval.

    Returns
    -------
    dict
        ``rho`` (the point estimate on all pairs), ``p_value`` (two-sided, from
        :func:`scipy.stats.spearmanr`), ``ci_low``, ``ci_high``, ``n``, ``n_boot``,
        ``n_valid`` and ``confidence``. With ``n < 3``, constant input, or no valid
        resample, the undefined entries are NaN.

    Raises
    ------
    ValueError
        For inputs of different shapes or with non-finite values, ``n_boot < 1``, or
        ``confidence`` outside (0, 1).

    Notes
    -----
    With the handful of minima of one run (8 + 8 in the paper) the interval is wide,
    and the percentile bootstrap of a rank correlation is only approximate at such
    sizes; read the interval as a measure of how much the sign can be trusted.
    """
    x, y = _check_pair(x, y)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1; got {n_boot!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence!r}")
    n = len(x)
    result = {"rho": float("nan"), "p_value": float("nan"), "ci_low": float("nan"),
              "ci_high": float("nan"), "n": n, "n_boot": int(n_boot), "n_valid": 0,
              "confidence": float(confidence)}
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return result
    result["rho"] = spearman_rho(x, y)
    result["p_value"] = float(stats.spearmanr(x, y).pvalue)

    index = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # (n_boot, n)
    rhos = _row_correlation(_ranks(x[index]), _ranks(y[index]))  # (n_boot,)
    valid = rhos[np.isfinite(rhos)]
    result["n_valid"] = len(valid)
    if len(valid):
        alpha = 1 - confidence
        result["ci_low"], result["ci_high"] = (float(q) for q in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
    return result


def segment_error_correlation(table: pd.DataFrame, *, group: str = "group", n_boot: int = 2000,
                              confidence: float = 0.95, seed: int = 0,
                              by_group: bool = True) -> pd.DataFrame:
    """Spearman correlation between segment length and test error, with a bootstrap CI.

    Only minima with a finite segment enter: the global minimum (infinite segment) and
    diverged minima are left out. The first row pools every group (``scope = "all"``),
    the comparison the paper makes; with ``by_group`` one row per group follows, for
    the relation within a training regime.

    Parameters
    ----------
    table : DataFrame
        From :func:`minimum_table`.
    group : str, default "group"
    n_boot, confidence, seed
        As in :func:`bootstrap_spearman`; every row uses the same seed.
    by_group : bool, default True

    Returns
    -------
    DataFrame
        Columns ``scope`` and the keys of :func:`bootstrap_spearman`. A positive ``rho``
        means longer segments go with higher test error.
    """
    finite = _finite_segments(table)
    scopes = [("all", finite)]
    if by_group:
        scopes += [(str(name), rows) for name, rows in finite.groupby(group, sort=False)]
    rows = []
    for scope, rows_of_scope in scopes:
        result = bootstrap_spearman(rows_of_scope["length"], rows_of_scope["test_error"],
                                    n_boot=n_boot, confidence=confidence, seed=seed)
        rows.append({"scope": scope, **result})
    return pd.DataFrame(rows)


def observation_verdict(correlation: pd.DataFrame, statistics: pd.DataFrame, table: pd.DataFrame,
                        *, annealed: str = "type 2", constant: str = "type 1",
                        group: str = "group") -> tuple[bool | None, str]:
    """Does a run support "minima with shorter segments generalize better"?

    The decision rests on the pooled Spearman correlation between segment length and
    test error (the ``"all"`` row of :func:`segment_error_correlation`): supported
    (True) when its confidence interval lies above 0, contradicted (False) when it
    lies below 0, undecided (None) when it contains 0 or is undefined. The detail also
    gives the within-group correlations (a pooled correlation carried only by the
    difference between the groups shows there), says whether the ``annealed`` group's
    mean segment and mean test error are lower than the ``constant`` group's, and names
    the group and test error of the global minimum.

    Parameters
    ----------
    correlation : DataFrame
        Rows of :func:`segment_error_correlation` for one configuration.
    statistics : DataFrame
        Rows of :func:`group_statistics` for the same configuration.
    table : DataFrame
        The per-minimum table (:func:`minimum_table`).
    annealed, constant : str
        Names of the type-2 and type-1 groups.
    group : str, default "group"

    Returns
    -------
    supported : bool or None
    detail : str
        One paragraph for :func:`toscore.runs.record_observation`.
    """
    pooled = correlation.set_index("scope").loc["all"]
    low, high = pooled["ci_low"], pooled["ci_high"]
    level = f"{100 * pooled['confidence']:.0f}%"
    if not (np.isfinite(low) and np.isfinite(high)):
        supported, reading = None, ("the correlation is undefined (fewer than 3 finite "
                                   "segments, or constant lengths or test errors)")
    elif low > 0:
        supported, reading = True, "the interval lies above 0: longer segments go with higher test error"
    elif high < 0:
        supported, reading = False, ("the interval lies below 0: longer segments go with lower "
                                     "test error, against the paper")
    else:
        supported, reading = None, "the interval contains 0, so this run cannot tell the sign"
    detail = (f"Spearman rho(segment length, test error) = {pooled['rho']:.3f} over "
              f"{int(pooled['n'])} finite segments, {level} percentile bootstrap CI "
              f"[{low:.3f}, {high:.3f}] ({int(pooled['n_valid'])} resamples); {reading}.")

    within = correlation[correlation["scope"] != "all"]
    if len(within):
        detail += " Within groups: " + "; ".join(
            f"{row.scope} rho = {row.rho:.3f}, CI [{row.ci_low:.3f}, {row.ci_high:.3f}] (n = {row.n})"
            for row in within.itertuples()) + "."

    by_group = statistics.set_index(group)
    if annealed in by_group.index and constant in by_group.index:
        a, c = by_group.loc[annealed], by_group.loc[constant]
        shorter = "shorter" if a["length_mean"] < c["length_mean"] else "not shorter"
        lower = "lower" if a["test_error_mean"] < c["test_error_mean"] else "not lower"
        detail += (f" Mean segment {annealed} {a['length_mean']:.4g} vs {constant} "
                   f"{c['length_mean']:.4g} ({shorter}); mean test error {annealed} "
                   f"{100 * a['test_error_mean']:.2f}% vs {constant} "
                   f"{100 * c['test_error_mean']:.2f}% ({lower}).")
        if "n_zero_length" in by_group:
            detail += " Segments of length 0 (no barrier to a lower minimum): " + ", ".join(
                f"{name} {int(row['n_zero_length'])} of {int(row['n_finite'])}"
                for name, row in by_group.iterrows()) + "."
    essential = table[table["essential"].astype(bool)]
    for row in essential.itertuples():
        detail += (f" Global minimum (infinite segment, left out of the correlation): "
                   f"{getattr(row, group)}, seed {row.seed}, test error "
                   f"{100 * row.test_error:.2f}%.")
    return supported, detail
