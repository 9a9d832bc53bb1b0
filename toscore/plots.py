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

__all__ = ["plot_barcode", "plot_score_trends", "save_figure"]


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
