"""Figures drawn from saved tables (seaborn), saved as PNG and PDF.

The module leaves the matplotlib backend alone: without a display matplotlib picks
Agg, and batch runs set ``MPLBACKEND=Agg``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["plot_barcode", "plot_score_trends", "remove_figures", "save_figure"]


def save_figure(figure, directory, name: str) -> list[Path]:
    """Save ``figure`` as ``name.png`` and ``name.pdf`` in ``directory`` and close it.

    Returns the two paths. The directory is created when missing.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in ("png", "pdf"):
        path = directory / f"{name}.{suffix}"
        figure.savefig(path, dpi=150, bbox_inches="tight")
        written.append(path)
    plt.close(figure)
    return written


def remove_figures(directory, prefix: str) -> list[Path]:
    """Delete the figures (``.png`` and ``.pdf``) whose names start with ``prefix``.

    A notebook that names one figure per configuration calls it before drawing them, so
    that configurations dropped from a profile leave no figure behind. Other files, and
    a missing directory, are left alone. Returns the deleted paths.
    """
    directory = Path(directory)
    if not prefix:
        raise ValueError("invalid prefix '': an empty prefix would delete every figure; "
                         "pass the figures' common prefix, such as 'e2_'")
    if not directory.is_dir():
        return []
    removed = sorted(path for suffix in ("png", "pdf")
                     for path in directory.glob(f"{prefix}*.{suffix}") if path.is_file())
    for path in removed:
        path.unlink()
    return removed


def plot_barcode(segments: pd.DataFrame, *, title: str = "", ax=None):
    """Draw minima segments as horizontal bars from each minimum's loss to its saddle.

    Parameters
    ----------
    segments : DataFrame
        Rows of :func:`toscore.experiments.segments_table` for one configuration
        (columns ``minimum``, ``birth``, ``death``, ``essential``).
    title : str
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Figure
        The global minimum's infinite bar is drawn to the right edge with an arrow.
    """
    if ax is None:
        figure, ax = plt.subplots(figsize=(5, 0.35 * len(segments) + 1.2))
    else:
        figure = ax.figure
    rows = segments.sort_values(["essential", "length"], ascending=[True, False]).reset_index(drop=True)
    finite_top = rows.loc[~rows["essential"], "death"].max() if (~rows["essential"]).any() else rows["birth"].max()
    right = finite_top + 0.15 * (finite_top - rows["birth"].min() + 1e-12)
    colors = sns.color_palette("deep")
    for y, row in rows.iterrows():
        end = right if row["essential"] else row["death"]
        ax.plot([row["birth"], end], [y, y], color=colors[1] if row["essential"] else colors[0], lw=4,
                solid_capstyle="butt")
        ax.plot(row["birth"], y, "o", color="k", ms=3)
        if row["essential"]:
            ax.annotate("", xy=(right, y), xytext=(right - 1e-9, y),
                        arrowprops=dict(arrowstyle="->", color=colors[1]))
    ax.set_yticks(range(len(rows)), [f"min {int(m)}" for m in rows["minimum"]])
    ax.invert_yaxis()
    ax.set_xlabel("loss (minimum to saddle)")
    ax.set_title(title)
    sns.despine(ax=ax)
    return figure


def plot_score_trends(scores: pd.DataFrame, *, x_depth: str = "depth", x_width: str = "width",
                      value: str = "to_score", title: str = ""):
    """Plot a score against depth (one line per width) and against width (one per depth).

    Parameters
    ----------
    scores : DataFrame
        One row per configuration with columns ``x_depth``, ``x_width`` and ``value``;
        several rows per configuration (e.g. several datasets or repeats) are averaged
        with a confidence band by seaborn.

    Returns
    -------
    matplotlib Figure with two panels.
    """
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    palette = "viridis"
    sns.lineplot(data=scores, x=x_depth, y=value, hue=x_width, marker="o", palette=palette, ax=left)
    sns.lineplot(data=scores, x=x_width, y=value, hue=x_depth, marker="o", palette=palette, ax=right)
    left.set_xticks(sorted(scores[x_depth].unique()))
    right.set_xscale("log", base=2)
    widths = sorted(scores[x_width].unique())
    right.set_xticks(widths, [str(w) for w in widths])
    right.minorticks_off()
    left.set_ylabel(value.replace("_", "-").upper() if value == "to_score" else value)
    left.set_xlabel("depth (hidden layers)")
    right.set_xlabel("width (units per layer)")
    if np.all(scores[value] > 0):
        left.set_yscale("log")
    figure.suptitle(title)
    sns.despine(fig=figure)
    figure.tight_layout()
    return figure


__all__ += ["plot_agreement", "plot_barcode_comparison", "plot_function_map", "plot_map_and_barcodes"]


def plot_function_map(points, values, grid_shape=None, *, minima=None, paths=(), highlight=None,
                      saddles=None, vmax=None, levels: int = 24, ax=None, title: str = "",
                      xlabel: str = "x", ylabel: str = "y"):
    """Filled contour map of a 2-D function with minima, optimized paths and saddles.

    Parameters
    ----------
    points : array_like, shape (n_points, 2)
        Sample locations; for a grid, x runs fastest (as in :func:`toscore.toy.sample_grid`).
    values : array_like, shape (n_points,)
    grid_shape : (n_y, n_x), optional
        Draw with ``contourf`` on the grid; without it the points are triangulated.
    minima : array_like, shape (N, 2), optional
        Drawn as numbered dots.
    paths : sequence of array_like, each of shape (K_m, 2)
        Polylines between minima.
    highlight : array_like of bool, shape (len(paths),), optional
        Paths drawn bold, e.g. those whose maxima end bars; the others are drawn thin.
    saddles : array_like, shape (S, 2), optional
        Drawn as crosses.
    vmax : float, optional
        Values above it share the top colour, so that low-lying structure stays visible
        next to steep walls. Default: the largest value.
    levels : int, default 24
        Number of filled contour levels between the smallest value and ``vmax``.
    ax : matplotlib Axes, optional
    title, xlabel, ylabel : str

    Returns
    -------
    matplotlib Figure
    """
    if ax is None:
        figure, ax = plt.subplots(figsize=(5.5, 4.5))
    else:
        figure = ax.figure
    coords = np.asarray(points, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64)
    top = float(vals.max()) if vmax is None else float(vmax)
    bounds = np.linspace(float(vals.min()), top, levels + 1)
    shown = np.minimum(vals, top)
    if grid_shape is not None:
        n_y, n_x = grid_shape
        x, y = coords[:n_x, 0], coords[::n_x, 1]
        filled = ax.contourf(x, y, shown.reshape(n_y, n_x), levels=bounds, cmap="mako", extend="max")
        ax.contour(x, y, shown.reshape(n_y, n_x), levels=bounds[::2], colors="white", linewidths=0.3,
                   alpha=0.5)
    else:
        filled = ax.tricontourf(coords[:, 0], coords[:, 1], shown, levels=bounds, cmap="mako", extend="max")
    figure.colorbar(filled, ax=ax, label="value", fraction=0.046, pad=0.04)

    colors = sns.color_palette("deep")
    bold = np.ones(len(paths), dtype=bool) if highlight is None else np.asarray(highlight, dtype=bool)
    for path, strong in zip(paths, bold):
        line = np.asarray(path, dtype=np.float64)
        if strong:
            ax.plot(line[:, 0], line[:, 1], "-", color=colors[1], lw=2.2, zorder=3)
        else:
            ax.plot(line[:, 0], line[:, 1], "--", color="0.85", lw=0.9, zorder=2)
    if saddles is not None and len(saddles):
        crosses = np.asarray(saddles, dtype=np.float64).reshape(-1, 2)
        ax.plot(crosses[:, 0], crosses[:, 1], "x", color=colors[3], ms=10, mew=2.5, zorder=5,
                label="saddle (path maximum)")
    if minima is not None and len(minima):
        dots = np.asarray(minima, dtype=np.float64).reshape(-1, 2)
        ax.plot(dots[:, 0], dots[:, 1], "o", color="white", mec="black", ms=7, zorder=6, label="minimum")
        for index, (px, py) in enumerate(dots):
            ax.annotate(str(index), (px, py), xytext=(5, 5), textcoords="offset points", color="white",
                        fontsize=9, fontweight="bold", zorder=7)
    ax.set_xlim(coords[:, 0].min(), coords[:, 0].max())
    ax.set_ylim(coords[:, 1].min(), coords[:, 1].max())
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return figure


def plot_barcode_comparison(bars: pd.DataFrame, *, labels=("algorithm 1 (point cloud)",
                            "algorithm 2 (minima and paths)"), row_labels=None, axes=None,
                            title: str = ""):
    """Draw two barcodes side by side, one row per pair of matched bars.

    Parameters
    ----------
    bars : DataFrame
        Output of :func:`toscore.toy.compare_barcodes`: columns ``birth_1``,
        ``death_1``, ``birth_2``, ``death_2`` (NaN for a missing partner, ``inf`` for
        essential bars), ``relative_difference`` and ``essential``.
    labels : (str, str)
        Panel titles of the first and second barcode.
    row_labels : sequence of str, optional
        One label per row of ``bars``; default ``bar 0``, ``bar 1``, ...
    axes : two matplotlib Axes, optional
    title : str

    Returns
    -------
    matplotlib Figure
        Row ``i`` of both panels shows the ``i``-th pair. Infinite bars end in an
        arrow at the right edge. The right panel labels each finite bar with its
        relative death difference.
    """
    if axes is None:
        figure, axes = plt.subplots(1, 2, figsize=(9, 0.4 * len(bars) + 1.4), sharex=True, sharey=True)
    else:
        figure = axes[0].figure
    births = pd.concat([bars["birth_1"], bars["birth_2"]])
    deaths = pd.concat([bars["death_1"], bars["death_2"]])
    finite = deaths[np.isfinite(deaths)]
    low = float(births.min())
    high = float(finite.max()) if len(finite) else float(births.max())
    right = high + 0.15 * (high - low + 1e-12)
    colors = sns.color_palette("deep")
    for side, ax in enumerate(axes, start=1):
        for y, row in enumerate(bars.itertuples()):
            birth, death = getattr(row, f"birth_{side}"), getattr(row, f"death_{side}")
            if not np.isfinite(birth):
                continue
            end = right if np.isinf(death) else death
            ax.plot([birth, end], [y, y], color=colors[1] if row.essential else colors[0], lw=5,
                    solid_capstyle="butt")
            ax.plot(birth, y, "o", color="k", ms=3)
            if np.isinf(death):
                ax.annotate("", xy=(right, y), xytext=(right - 1e-9 * (right - low + 1), y),
                            arrowprops=dict(arrowstyle="->", color=colors[1]))
            elif side == 2 and np.isfinite(row.relative_difference):
                ax.annotate(f"{100 * row.relative_difference:.2g}%", (death, y), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=8)
        ax.set_title(labels[side - 1], fontsize=10)
        ax.set_xlabel("value (minimum to saddle)")
        ax.set_xlim(low - 0.03 * (right - low + 1e-12), right + 0.12 * (right - low + 1e-12))
        sns.despine(ax=ax)
    if row_labels is None:
        row_labels = [f"bar {i}" for i in range(len(bars))]
    axes[0].set_yticks(range(len(bars)), list(row_labels))
    axes[0].set_ylim(len(bars) - 0.5, -0.5)
    if title:
        figure.suptitle(title)
    return figure


def plot_map_and_barcodes(bars: pd.DataFrame, points, values, grid_shape=None, *, row_labels=None,
                          title: str = "", xlabel: str = "x", ylabel: str = "y", **map_layers):
    """Draw a function's map (left) next to its two barcodes (right), in one figure.

    Parameters
    ----------
    bars, row_labels
        As for :func:`plot_barcode_comparison`.
    points, values, grid_shape, xlabel, ylabel, **map_layers
        As for :func:`plot_function_map` (``minima``, ``paths``, ``highlight``,
        ``saddles``, ``vmax``, ``levels``).
    title : str

    Returns
    -------
    matplotlib Figure with three panels.
    """
    figure = plt.figure(figsize=(15, 4.8), layout="constrained")
    grid = figure.add_gridspec(1, 3, width_ratios=[1.35, 1, 1])
    map_ax = figure.add_subplot(grid[0])
    left = figure.add_subplot(grid[1])
    right = figure.add_subplot(grid[2], sharex=left, sharey=left)
    plot_function_map(points, values, grid_shape, ax=map_ax, xlabel=xlabel, ylabel=ylabel, **map_layers)
    plot_barcode_comparison(bars, row_labels=row_labels, axes=(left, right))
    right.tick_params(labelleft=False)
    figure.suptitle(title)
    return figure


def plot_agreement(bars: pd.DataFrame, *, x: str = "function", title: str = ""):
    """Relative death difference of every matched finite bar, with its tolerance.

    Parameters
    ----------
    bars : DataFrame
        Rows of :func:`toscore.toy.compare_barcodes` tables, with columns ``x``,
        ``relative_difference``, ``tolerance``, ``length_1``, ``matched`` and
        ``essential``.
    x : str, default "function"
        Column that groups the bars along the horizontal axis.
    title : str

    Returns
    -------
    matplotlib Figure
        Dots: ``|death_2 - death_1| / length_1`` in percent; dashes: the tolerance
        ``tolerance / length_1`` in percent for the same bar. The axis is logarithmic;
        differences below 1e-4 percent (exact agreement included) sit at 1e-4.
    """
    rows = bars[bars["matched"] & ~bars["essential"]].copy()
    rows["difference (%)"] = np.maximum(100 * rows["relative_difference"], 1e-4)
    rows["tolerance (%)"] = 100 * rows["tolerance"] / rows["length_1"]
    groups = list(dict.fromkeys(rows[x]))
    figure, ax = plt.subplots(figsize=(1.6 * len(groups) + 2.5, 3.8))
    colors = sns.color_palette("deep")
    positions = {group: i for i, group in enumerate(groups)}
    rng = np.random.default_rng(0)  # a fixed jitter, so reruns draw the same figure
    jitter = rng.uniform(-0.15, 0.15, len(rows))
    centres = rows[x].map(positions).to_numpy(dtype=np.float64)
    ax.plot(centres + jitter, rows["tolerance (%)"], "_", color=colors[3], ms=14, mew=2, label="tolerance")
    ax.plot(centres + jitter, rows["difference (%)"], "o", color=colors[0], ms=6,
            label="|death difference| / bar length")
    ax.set_xticks(range(len(groups)), groups, rotation=20)
    ax.set_ylabel("percent of the bar length")
    ax.set_yscale("log")
    ax.legend(frameon=False, fontsize=9)
    ax.set_title(title)
    sns.despine(ax=ax)
    figure.tight_layout()
    return figure


__all__ += ["plot_group_barcodes", "plot_segment_error"]


def _group_colors(names) -> dict:
    """Assign one seaborn "deep" color to each group name, in the given order."""
    palette = sns.color_palette("deep")
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def plot_group_barcodes(table: pd.DataFrame, *, group: str = "group", groups=None,
                        title: str = ""):
    """Draw the minima segments of one joint barcode in one panel per group, side by side.

    Every bar runs from a minimum's loss (black dot) to the saddle where its component
    merges with one holding a lower minimum (vertical tick). All panels share the loss
    axis, so bars of different groups compare directly. The global minimum's infinite
    bar runs to the right edge and ends in an arrow.

    Parameters
    ----------
    table : DataFrame
        One row per minimum, as :func:`toscore.generalization.minimum_table` returns
        (columns ``group``, ``seed``, ``birth``, ``death``, ``length``, ``essential``,
        optionally ``excluded``, whose true rows are not drawn).
    group : str, default "group"
        Column that names the groups.
    groups : sequence of str, optional
        Panel order; default the order of first appearance.
    title : str

    Returns
    -------
    matplotlib Figure
    """
    rows = table if "excluded" not in table else table[~table["excluded"].astype(bool)]
    names = list(dict.fromkeys(rows[group])) if groups is None else list(groups)
    colors = _group_colors(names)
    finite = rows[~rows["essential"].astype(bool)]
    top = finite["death"].max() if len(finite) else rows["birth"].max()
    left = rows["birth"].min()
    right = top + 0.12 * (top - left + 1e-12)
    height = max(rows.groupby(group).size().max(), 1)
    figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 0.3 * height + 1.6),
                                sharex=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        own = rows[rows[group] == name].sort_values(["essential", "length"], ascending=[True, False])
        for y, row in enumerate(own.itertuples()):
            end = right if row.essential else row.death
            ax.plot([row.birth, end], [y, y], color=colors[name], lw=4, solid_capstyle="butt")
            ax.plot(row.birth, y, "o", color="k", ms=3.5, label="minimum" if y == 0 else None)
            if row.essential:
                ax.annotate("", xy=(right, y), xytext=(right - 1e-9, y),
                            arrowprops=dict(arrowstyle="->", color=colors[name]))
            else:
                ax.plot(row.death, y, "|", color="k", ms=11, mew=1.5,
                        label="saddle" if y == 0 else None)
        ax.set_yticks(range(len(own)), [f"seed {int(s)}" + (" (global)" if e else "")
                                        for s, e in zip(own["seed"], own["essential"])])
        ax.set_ylim(len(own) - 0.5, -0.5)
        ax.set_xlim(left - 0.04 * (right - left + 1e-12), right)
        ax.set_title(f"{name}, n = {len(own)}")
        ax.set_xlabel("loss (minimum to saddle)")
        sns.despine(ax=ax)
    axes[0][0].legend(frameon=False, fontsize=8, loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_segment_error(table: pd.DataFrame, *, group: str = "group", correlation: dict | None = None,
                       title: str = ""):
    """Scatter minima segment length against test error, one color per group.

    Minima with a finite segment are dots. The global minimum, whose segment is
    infinite, is a triangle at the right edge, labelled; diverged minima
    (``excluded``) are not drawn.

    Parameters
    ----------
    table : DataFrame
        One row per minimum with columns ``group``, ``length``, ``test_error`` (a
        fraction; drawn in percent), ``essential`` and optionally ``excluded``.
    group : str, default "group"
    correlation : dict, optional
        With keys ``rho``, ``ci_low``, ``ci_high``, ``confidence`` and ``n`` (a row of
        :func:`toscore.generalization.segment_error_correlation`), written under the title.
    title : str

    Returns
    -------
    matplotlib Figure
    """
    rows = table if "excluded" not in table else table[~table["excluded"].astype(bool)]
    names = list(dict.fromkeys(rows[group]))
    colors = _group_colors(names)
    essential = rows["essential"].astype(bool)
    finite = rows[~essential]
    figure, ax = plt.subplots(figsize=(5.6, 4.2))
    sns.scatterplot(data=finite.assign(test_error_percent=100 * finite["test_error"]),
                    x="length", y="test_error_percent", hue=group, hue_order=names,
                    palette=colors, s=55, ax=ax)
    span = finite["length"].max() - finite["length"].min() if len(finite) else 1.0
    edge = (finite["length"].max() if len(finite) else 0.0) + 0.12 * (span or 1.0)
    for row in rows[essential].itertuples():
        error = 100 * row.test_error
        ax.plot(edge, error, ">", color=colors[getattr(row, group)], ms=10, mec="k")
        ax.annotate("global minimum\n(infinite segment)", (edge, error), xytext=(-8, 8),
                    textcoords="offset points", ha="right", fontsize=8)
    ax.set_xlabel("minima segment length (saddle minus minimum)")
    ax.set_ylabel("test error (%)")
    if correlation is not None:
        title = (f"{title}\nSpearman rho = {correlation['rho']:.2f}, "
                 f"{100 * correlation['confidence']:.0f}% CI [{correlation['ci_low']:.2f}, "
                 f"{correlation['ci_high']:.2f}], n = {int(correlation['n'])}").strip()
    ax.set_title(title, fontsize=10)
    ax.legend(title=None, frameon=False, fontsize=9)
    sns.despine(ax=ax)
    figure.tight_layout()
    return figure


__all__ += ["plot_architecture_comparison", "plot_barcodes_side_by_side", "plot_conv_score_trends"]


def _kept_minima(segments: pd.DataFrame) -> pd.DataFrame:
    """Rows of minima that are vertices of the barcode (not excluded after diverging)."""
    if "excluded" in segments.columns:
        return segments[~segments["excluded"].astype(bool)]
    return segments


def plot_conv_score_trends(scores: pd.DataFrame, *, x_depth: str = "n_conv", x_width: str = "channels",
                           style: str = "batch_norm", value: str = "to_score", ylabel: str | None = None,
                           log: bool | None = None, title: str = ""):
    """Plot a score against depth and against width of convolutional networks, styled by ``style``.

    Parameters
    ----------
    scores : DataFrame
        One row per configuration with columns ``x_depth``, ``x_width``, ``style`` and
        ``value``; repeated configurations are averaged with a confidence band.
    x_depth, x_width : str, default "n_conv", "channels"
        Size columns: convolution layers and channels per convolution.
    style : str, default "batch_norm"
        Column drawn as the line style (solid and dashed for False and True).
    value : str, default "to_score"
    ylabel : str, optional
        Label of the value axis; default "TO-score" for ``to_score``, else ``value``.
    log : bool, optional
        Logarithmic value axis; default True for ``to_score`` when every value is
        positive, else False.
    title : str

    Returns
    -------
    matplotlib Figure
        Left: ``value`` against ``x_depth``, one colour per ``x_width``; right: against
        ``x_width`` (log scale, base 2), one colour per ``x_depth``.
    """
    table = scores.copy()
    table[style] = table[style].astype(bool)  # so the legend says True/False and styles are fixed
    dashes = {False: "", True: (4, 2)}
    figure, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.2), sharey=True)
    sns.lineplot(data=table, x=x_depth, y=value, hue=x_width, style=style, dashes=dashes,
                 marker="o", palette="viridis", ax=left)
    sns.lineplot(data=table, x=x_width, y=value, hue=x_depth, style=style, dashes=dashes,
                 marker="o", palette="viridis", ax=right)
    left.set_xticks(sorted(table[x_depth].unique()))
    right.set_xscale("log", base=2)
    widths = sorted(table[x_width].unique())
    right.set_xticks(widths, [str(w) for w in widths])
    right.minorticks_off()
    if ylabel is None:
        ylabel = "TO-score" if value == "to_score" else value
    left.set_ylabel(ylabel)
    left.set_xlabel("convolution layers")
    right.set_xlabel("channels per convolution")
    for ax in (left, right):  # outside the axes, so no line is hidden
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if log is None:
        log = value == "to_score" and bool(np.all(table[value] > 0))
    if log:
        left.set_yscale("log")
    figure.suptitle(title)
    sns.despine(fig=figure)
    figure.tight_layout()
    return figure


def plot_barcodes_side_by_side(tables: dict, *, title: str = "", sharex: bool = True):
    """Draw the barcodes of several configurations in adjacent panels.

    Parameters
    ----------
    tables : dict of str to DataFrame
        Panel title to rows of :func:`toscore.experiments.segments_table` of one
        configuration; minima excluded after diverging are left out.
    title : str
    sharex : bool, default True
        One loss axis for all panels, so bar lengths compare by eye.

    Returns
    -------
    matplotlib Figure with one panel per entry of ``tables``, drawn by
    :func:`plot_barcode`.
    """
    if not tables:
        raise ValueError("tables is empty; give at least one configuration's segments")
    kept = {label: _kept_minima(table) for label, table in tables.items()}
    height = 0.35 * max(len(table) for table in kept.values()) + 1.4
    figure, axes = plt.subplots(1, len(kept), figsize=(4.6 * len(kept), height), sharex=sharex,
                                squeeze=False)
    for ax, (label, table) in zip(axes[0], kept.items()):
        plot_barcode(table, title=label, ax=ax)
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_architecture_comparison(segments: pd.DataFrame, summary: pd.DataFrame, *,
                                 column: str = "architecture", title: str = ""):
    """Compare architectures: segment lengths, TO-score and test accuracy side by side.

    Parameters
    ----------
    segments : DataFrame
        One row per minimum with columns ``column``, ``length``, ``essential`` and
        ``test_accuracy`` (fraction); minima excluded after diverging are left out.
    summary : DataFrame
        :func:`toscore.comparison.architecture_summary` of the same segments (columns
        ``column``, ``to_score``, ``norm_ord``, ``test_accuracy_mean``,
        ``test_accuracy_std``); its row order is the panels' order.
    column : str, default "architecture"
    title : str

    Returns
    -------
    matplotlib Figure
        Left: every finite segment length (dots) over a box plot; middle: the TO-score;
        right: test accuracy, mean and standard deviation (bar and whisker) with every
        minimum as a dot.
    """
    order = list(summary[column])
    kept = _kept_minima(segments)
    finite = kept[~kept["essential"].astype(bool)]
    palette = dict(zip(order, sns.color_palette("deep", len(order))))
    figure, (lengths, scores, accuracy) = plt.subplots(1, 3, figsize=(12, 4))

    sns.boxplot(data=finite, x=column, y="length", order=order, hue=column, palette=palette,
                fliersize=0, boxprops=dict(alpha=0.35), ax=lengths)
    sns.stripplot(data=finite, x=column, y="length", order=order, color="k", size=4, jitter=0.15,
                  ax=lengths)
    lengths.set_ylabel("minima-segment length (loss)")
    lengths.set_title("finite segments")

    positions = np.arange(len(order))
    scores.bar(positions, summary["to_score"], color=[palette[label] for label in order])
    scores.set_ylabel(f"TO-score (ord={summary['norm_ord'].iloc[0]})")
    scores.set_title("TO-score")

    accuracy.bar(positions, 100 * summary["test_accuracy_mean"],
                 yerr=100 * summary["test_accuracy_std"].fillna(0.0), capsize=5,
                 color=[palette[label] for label in order], alpha=0.6)
    sns.stripplot(data=kept.assign(**{"test accuracy (%)": 100 * kept["test_accuracy"]}), x=column,
                  y="test accuracy (%)", order=order, color="k", size=4, jitter=0.15, ax=accuracy)
    accuracy.set_title("test accuracy")
    for ax in (lengths, scores, accuracy):
        ax.set_xticks(positions, order)
        ax.set_xlabel("")
        sns.despine(ax=ax)
    figure.suptitle(title)
    figure.tight_layout()
    return figure
