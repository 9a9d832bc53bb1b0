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

from .artifacts import ArtifactStore, default_store, fingerprint_tensors
from .datasets import Dataset
from .minima import Minima, train_minima
from .models import build_model, count_parameters
from .objectives import NetworkObjective, resolve_device
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
    store: ArtifactStore | None | bool = None,
) -> ConfigResult:
    """Train one minimum per seed for a model config and compute the minima barcode.

    Minima and barcode are saved in an artifact store as soon as each is computed and
    reused by a later call with the same inputs, so an interrupted run resumes where it
    stopped. Minima whose training diverged are left out of the barcode; their rows stay
    in the segments table, marked ``excluded``.

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
        An ``lr_schedule`` must have a deterministic ``repr`` (e.g. a dataclass), because
        the artifact key includes it.
    paths : dict
        Keyword arguments of :func:`toscore.minima_barcode` (method, n_points, ...).
    weight_decay : float, default 1e-5
        L2 coefficient of the path loss; the barcode's values are
        ``mean cross-entropy on the full training split + weight_decay * ||theta||^2``.
    score_ord : {1, 2, inf}, default 2
        Norm of the reported TO-score.
    device : str, default "auto"
    progress : bool, default False
    store : ArtifactStore, optional
        Where artifacts are saved; default :func:`toscore.artifacts.default_store`;
        ``False`` saves nothing.

    Returns
    -------
    ConfigResult

    Raises
    ------
    RuntimeError
        If fewer than two minima trained without diverging.
    """
    device = resolve_device(device)
    if store is None:
        store = default_store()
    seeds = [int(seed) for seed in seeds]
    model = build_model(model_config)
    started = time.perf_counter()

    data_key = fingerprint_tensors(*data.train, *data.test)
    minima_key = store.key("minima", model=model_config, data=data_key, seeds=seeds, train=train,
                           device=device.type) if store else None
    saved = store.load("minima", minima_key) if store else None
    if saved is not None:
        minima = Minima.from_arrays(saved, device)
    else:
        minima = train_minima(model, data.train, data.test, seeds=seeds, device=device,
                              progress=progress, **train)
        if store:
            store.save("minima", minima_key, minima.to_arrays())
    trained = time.perf_counter()

    kept = minima.barcode_indices()

    barcode_key = store.key("barcode", minima=minima_key, paths=paths, weight_decay=weight_decay,
                            kept=kept.tolist()) if store else None
    saved = store.load("barcode", barcode_key) if store else None
    if saved is not None:
        barcode = MinimaBarcode.from_arrays(saved)
    else:
        objective = NetworkObjective(model, "cross_entropy", data.train, weight_decay, device=device)
        barcode = minima_barcode(objective, minima.parameters[kept], progress=progress, **paths)
        if store:
            store.save("barcode", barcode_key, barcode.to_arrays())
    finished = time.perf_counter()

    config = {"dataset": data.name, **model_config, "n_params": count_parameters(model),
              "method": barcode.method}
    segments = segments_table(barcode, minima, config, kept)
    score = score_row(barcode, minima, config, score_ord)
    logger.info("%s: TO-score %.4g (training %.0f s, paths %.0f s)", config, score["to_score"],
                trained - started, finished - trained)
    return ConfigResult(config, minima, barcode, segments, score)


def segments_table(barcode: MinimaBarcode, minima: Minima, config: dict,
                   kept: np.ndarray | None = None) -> pd.DataFrame:
    """One row per minimum: its config, training metrics and minima segment.

    Columns: the keys of ``config``; ``minimum`` (index among all trained minima),
    ``seed``, ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``
    (without the L2 term), the divergence columns of :class:`toscore.Minima`;
    ``excluded`` (True for minima left out of the barcode because they diverged; their
    segment columns are NaN); ``birth`` (objective value at the minimum, L2 term
    included), ``death`` (saddle, ``inf`` for the global minimum), ``length``,
    ``merged_into`` (index of the lower minimum, -1 for the global minimum) and
    ``essential``.

    ``kept`` lists the minima, as rows of ``minima``, that the barcode's vertices are;
    default all.
    """
    n_minima = len(minima.table)
    kept = np.arange(n_minima) if kept is None else np.asarray(kept)
    table = minima.table.copy()
    table.insert(0, "minimum", np.arange(n_minima))
    table["excluded"] = ~np.isin(np.arange(n_minima), kept)

    birth = np.full(n_minima, np.nan)
    death = np.full(n_minima, np.nan)
    merged = np.full(n_minima, -1, dtype=np.int64)
    essential = np.zeros(n_minima, dtype=bool)
    birth[kept] = barcode.minima_values
    # A minimum with no bar lost to a lower one at its own value: a zero-length segment.
    death[kept] = barcode.minima_values
    bars = barcode.barcode.segments
    rows = kept[bars["birth_vertex"].to_numpy()]
    death[rows] = bars["death"].to_numpy()
    finite_bar = ~bars["essential"].to_numpy()
    merged[rows[finite_bar]] = kept[bars["merge_vertex"].to_numpy()[finite_bar]]
    essential[rows] = bars["essential"].to_numpy()

    table["birth"] = birth
    table["death"] = death
    table["length"] = death - birth
    table["merged_into"] = merged
    table["essential"] = essential
    for key, value in reversed(list(config.items())):
        table.insert(0, key, [value] * n_minima)  # a list: a tuple value such as input_shape is one cell
    return table


def score_row(barcode: MinimaBarcode, minima: Minima, config: dict, ord: float = 2) -> dict:
    """Summary of one barcode: TO-score with its norm order, plus context columns.

    Means over minima leave out those that diverged (counted in ``n_excluded``).
    """
    lengths = barcode.barcode.lengths
    trained = minima.table[minima.finite.numpy()]
    return {
        **config,
        "to_score": barcode.to_score(ord=ord),
        "norm_ord": str(ord),
        "n_minima": len(barcode.minima_values),
        "n_finite_segments": len(lengths),
        "max_segment": float(lengths.max()) if len(lengths) else 0.0,
        "mean_minimum_loss": float(np.mean(barcode.minima_values)),
        "mean_train_loss": float(trained["train_loss"].mean()),
        "mean_test_loss": float(trained["test_loss"].mean()),
        "mean_test_accuracy": float(trained["test_accuracy"].mean()),
        "n_excluded": int((~minima.finite).sum()),
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
