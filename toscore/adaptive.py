"""Choosing which paths to refine: only those that can change the minima barcode.

The H0 barcode of the minima depends only on the minimum spanning tree of the saddle
estimates. After a coarse pass on every pair, refining a path can change the barcode
only if the path is in the tree, or if refinement could pull its saddle below the
bottleneck (the highest tree edge) between its two minima.
"""

from __future__ import annotations

import numpy as np

__all__ = ["minimax_matrix", "pairs_to_refine"]


def minimax_matrix(n_minima: int, pairs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bottleneck distances of a weighted graph on the minima.

    Parameters
    ----------
    n_minima : int
    pairs : ndarray of int, shape (M, 2)
    values : ndarray of float, shape (M,)
        Edge values; ``inf`` for an unknown edge.

    Returns
    -------
    ndarray of float64, shape (n_minima, n_minima)
        Entry ``(a, b)``: the least, over paths in the graph from ``a`` to ``b``, of the
        largest edge value on the path (``inf`` when disconnected, 0 on the diagonal).
        Equals the largest edge on the minimum spanning tree path from ``a`` to ``b``.
    """
    distance = np.full((n_minima, n_minima), np.inf)
    np.fill_diagonal(distance, 0.0)
    distance[pairs[:, 0], pairs[:, 1]] = values
    distance[pairs[:, 1], pairs[:, 0]] = values
    for middle in range(n_minima):  # Floyd-Warshall in the (min, max) semiring; N is small
        through = np.maximum(distance[:, middle, None], distance[None, middle, :])
        np.minimum(distance, through, out=distance)
    return distance


def pairs_to_refine(n_minima: int, pairs: np.ndarray, upper: np.ndarray, refined: np.ndarray,
                    slack: float) -> np.ndarray:
    """Rows of ``pairs`` whose refinement could still change the barcode.

    Parameters
    ----------
    n_minima : int
    pairs : ndarray of int, shape (M, 2)
    upper : ndarray of float, shape (M,)
        Current saddle estimates (upper bounds on the minimax heights).
    refined : ndarray of bool, shape (M,)
        Pairs already refined; they are never returned.
    slack : float
        Largest decrease that refinement is expected to bring to an estimate (e.g. the
        largest decrease seen so far).

    Returns
    -------
    ndarray of int
        Unrefined pairs whose estimate minus ``slack`` is at most the bottleneck between
        their two minima. With ``slack = 0`` these are the edges that lie on some minimum
        spanning tree (an edge's estimate equals the bottleneck exactly then).
    """
    bottleneck = minimax_matrix(n_minima, pairs, upper)[pairs[:, 0], pairs[:, 1]]  # (M,)
    could_matter = upper - slack <= bottleneck
    return np.flatnonzero(~refined & np.isfinite(upper) & could_matter)
