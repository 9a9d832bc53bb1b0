"""One experiment step as a call: train minima, compute their barcode, tabulate both.

Notebooks loop over configurations and call :func:`barcode_of_config`; the tables it
returns are what the figures are drawn from.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .datasets import Dataset
from .minima import Minima, train_minima
from .models import build_model, count_parameters
from .objectives import NetworkObjective
from .paths import MinimaBarcode, minima_barcode

__all__ = ["ConfigResult", "barcode_of_config", "load_or_synthesize", "plan_table", "segments_table",
           "score_row", "trend_statistic"]

logger = logging.getLogger("toscore")


@dataclass
class ConfigResult:
    """Minima, barcode and tables of one model configuration.

    Attributes
    ----------
    config : dict
        Model config plus the names of the dataset and path method.
    minima : Minima
    barcode : MinimaBarcode
    segments : pandas.DataFrame
        One row per minimum, see :func:`segments_table`.
    score : dict
        One row of the TO-score table, see :func:`score_row`.
    """

    config: dict
    minima: Minima
    barcode: MinimaBarcode
    segments: pd.DataFrame
    score: dict


def barcode_of_config(
    data: Dataset,
    model_config: dict,
    *,
    seeds,
    train: dict,
    paths: dict,
    weight_decay: float = 1e-5,
    score_ord: float = 2,
    device="auto",
    progress: bool = False,
) -> ConfigResult:
    """Train one minimum per seed for a model config and compute the minima barcode.

    Parameters
    ----------
    data : Dataset
        Training split for minima and paths; the test split is only reported.
    model_config : dict
        Passed to :func:`toscore.build_model`.
    seeds : iterable of int
        One minimum per seed.
    train : dict
        Keyword arguments of :func:`toscore.train_minima` (epochs, lr, batch_size, ...).
    paths : dict
        Keyword arguments of :func:`toscore.minima_barcode` (method, n_points, ...).
    weight_decay : float, default 1e-5
        L2 coefficient of the path loss; the barcode's values are
        ``mean cross-entropy on the full training split + weight_decay * ||theta||^2``.
    score_ord : {1, 2, inf}, default 2
        Norm of the reported TO-score.
    device : str, default "auto"
    progress : bool, default False

    Returns
    -------
    ConfigResult
    """
    model = build_model(model_config)
    started = time.perf_counter()
    minima = train_minima(model, data.train, data.test, seeds=seeds, device=device,
                          progress=progress, **train)
    trained = time.perf_counter()
    objective = NetworkObjective(model, "cross_entropy", data.train, weight_decay, device=device)
    barcode = minima_barcode(objective, minima.parameters, progress=progress, **paths)
    finished = time.perf_counter()

    config = {"dataset": data.name, **model_config, "n_params": count_parameters(model),
              "method": barcode.method}
    segments = segments_table(barcode, minima, config)
    score = score_row(barcode, minima, config, score_ord)
    score.update(train_seconds=trained - started, path_seconds=finished - trained)
    logger.info("%s: TO-score %.4g (%.0f s)", config, score["to_score"], finished - started)
    return ConfigResult(config, minima, barcode, segments, score)


def segments_table(barcode: MinimaBarcode, minima: Minima, config: dict) -> pd.DataFrame:
    """One row per minimum: its config, training metrics and minima segment.

    Columns: the keys of ``config``; ``minimum`` (index), ``seed``, ``train_loss``,
    ``train_accuracy``, ``test_loss``, ``test_accuracy`` (without the L2 term);
    ``birth`` (objective value at the minimum, L2 term included), ``death`` (saddle,
    ``inf`` for the global minimum), ``length``, ``merged_into`` (-1 for the global
    minimum) and ``essential``.
    """
    bars = barcode.barcode.segments.set_index("birth_vertex")
    table = minima.table.copy()
    table.insert(0, "minimum", np.arange(len(table)))
    n_minima = len(table)
    death = np.full(n_minima, np.nan)
    merged = np.full(n_minima, -1, dtype=np.int64)
    essential = np.zeros(n_minima, dtype=bool)
    for vertex, row in bars.iterrows():  # at most N rows
        death[vertex] = row["death"]
        merged[vertex] = row["merge_vertex"]
        essential[vertex] = row["essential"]
    # Minima that are not local minima of the graph die at their own value.
    birth = barcode.minima_values
    death = np.where(np.isnan(death), birth, death)
    table["birth"] = birth
    table["death"] = death
    table["length"] = death - birth
    table["merged_into"] = merged
    table["essential"] = essential
    for key, value in reversed(list(config.items())):
        table.insert(0, key, value)
    return table


def score_row(barcode: MinimaBarcode, minima: Minima, config: dict, ord: float = 2) -> dict:
    """Summary of one barcode: TO-score with its norm order, plus context columns."""
    lengths = barcode.barcode.lengths
    return {
        **config,
        "to_score": barcode.to_score(ord=ord),
        "norm_ord": str(ord),
        "n_minima": len(barcode.minima_values),
        "n_finite_segments": len(lengths),
        "max_segment": float(lengths.max()) if len(lengths) else 0.0,
        "mean_minimum_loss": float(np.mean(barcode.minima_values)),
        "mean_train_loss": float(minima.table["train_loss"].mean()),
        "mean_test_loss": float(minima.table["test_loss"].mean()),
        "mean_test_accuracy": float(minima.table["test_accuracy"].mean()),
    }


def trend_statistic(scores: pd.DataFrame, x: str, value: str = "to_score") -> dict:
    """Spearman rank correlation between a size column ``x`` and ``value``.

    Returns ``{"rho": float, "p_value": float, "n": int}``; a negative ``rho`` means the
    value falls as ``x`` grows. With fewer than three rows or a constant column, ``rho``
    and ``p_value`` are NaN.
    """
    from scipy.stats import spearmanr

    n_rows = len(scores)
    if n_rows < 3 or scores[x].nunique() < 2 or scores[value].nunique() < 2:
        return {"rho": float("nan"), "p_value": float("nan"), "n": n_rows}
    result = spearmanr(scores[x], scores[value])
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": n_rows}


def load_or_synthesize(name: str, *, dry_run: bool, **options):
    """Load a dataset, or in a dry run fall back to shape-correct synthetic tensors.

    Outside a dry run this is :func:`toscore.load_dataset`. In a dry run a dataset that
    is missing on disk is replaced by :func:`toscore.datasets.synthetic_dataset` of the
    same shapes, so every configuration of a profile can be checked without the data.
    """
    from .datasets import DatasetNotFoundError, load_dataset

    try:
        return load_dataset(name, **options)
    except DatasetNotFoundError:
        if not dry_run:
            raise
        logger.warning("dry run: %s is not on disk; using synthetic tensors of its shape", name)
        return load_dataset(name, synthetic=True, **{k: v for k, v in options.items()
                                                      if k in ("n_train", "n_test", "seed", "layout")})


def plan_table(data: Dataset, model_configs: list[dict], *, n_minima: int, n_points: int,
               n_insertions: int = 0, max_points_per_call: int | None = None,
               device="auto") -> pd.DataFrame:
    """Describe every configuration of a run without training: sizes and memory estimates.

    For each model config the table gives the parameter count D, the activation
    elements per example, the largest number of points one NEB step evaluates
    (``N(N-1)/2`` paths times their interior points after all insertions), the points
    per batched call the objective would use, and an estimate of the memory one batched
    call needs: parameters, gradients and kept activations of those points on the whole
    training split, in float32 bytes, counting activations three times (forward values,
    their gradients, and workspace). An estimate, not a measurement.
    """
    from .models import describe_model

    n_pairs = n_minima * (n_minima - 1) // 2
    interior = n_points - 2 + n_insertions
    rows = []
    for config in model_configs:
        model = build_model(config)  # a real build, so invalid configs fail here
        size = describe_model(config)
        objective = NetworkObjective(model, "cross_entropy", data.train,
                                     max_points_per_call=max_points_per_call, device=device)
        points_per_call = min(objective.max_points_per_call, max(n_pairs * interior, 1))
        activation_bytes = 4 * 3 * size["activation_elements"] * len(data.train_x) * points_per_call
        parameter_bytes = 4 * 3 * size["n_parameters"] * points_per_call
        rows.append({
            **config,
            "n_params": size["n_parameters"],
            "activations_per_example": size["activation_elements"],
            "points_per_step": n_pairs * interior,
            "points_per_call": points_per_call,
            "memory_per_call_mib": (activation_bytes + parameter_bytes) / 2**20,
        })
    table = pd.DataFrame(rows)
    logger.info("%s: %d train / %d test examples, input shape %s%s", data.name, len(data.train_x),
                len(data.test_x), data.input_shape, " (synthetic)" if data.synthetic else "")
    return table
