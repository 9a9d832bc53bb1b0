"""H0 sublevel barcodes of functions on graphs and point clouds, and the TO-score.

Everything here is pure numpy in float64. A function on a graph is given by its vertex
values and, for each edge, the value at which the edge enters the sublevel filtration
(by default the larger endpoint value, as for a lower-star filtration). Components are
born at local minima and die at the edge where they first meet a component holding a
lower minimum (the elder rule). See Barannikov et al., *Topological obstructions in
neural networks learning*, arXiv:2012.15834.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial import cKDTree

__all__ = ["Barcode", "graph_barcode", "sample_barcode", "to_score"]

_NORM_ORDERS = (1, 2, np.inf)


@dataclass(frozen=True)
class Barcode:
    """H0 sublevel barcode with the provenance of every bar.

    Attributes
    ----------
    birth, death : ndarray of float64, shape (n_finite,)
        Finite bars ``[birth, death)``, sorted by decreasing length (ties: by birth
        vertex). ``birth`` is the value of the minimum, ``death`` the value of the edge
        at which its component merged into one with a lower minimum.
    birth_vertex : ndarray of int64, shape (n_finite,)
        Vertex of the minimum that starts each finite bar.
    death_edge : ndarray of int64, shape (n_finite,)
        Row of the input ``edges`` array at which each finite bar dies (the saddle).
    merge_vertex : ndarray of int64, shape (n_finite,)
        Minimum of the older component that the dying component merged into.
    essential_birth : ndarray of float64, shape (n_components,)
        Births of the infinite bars ``[birth, +inf)``, one per connected component,
        sorted by increasing birth.
    essential_vertex : ndarray of int64, shape (n_components,)
        Minimum vertex of each connected component.
    """

    birth: np.ndarray
    death: np.ndarray
    birth_vertex: np.ndarray
    death_edge: np.ndarray
    merge_vertex: np.ndarray
    essential_birth: np.ndarray
    essential_vertex: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        """Lengths ``death - birth`` of the finite bars, shape (n_finite,)."""
        return self.death - self.birth

    @property
    def segments(self) -> pd.DataFrame:
        """All bars as a table, finite ones first.

        Columns: ``birth``, ``death`` (``inf`` for essential bars), ``length``,
        ``birth_vertex``, ``death_edge`` and ``merge_vertex`` (-1 for essential bars),
        ``essential`` (bool).
        """
        n_essential = len(self.essential_birth)
        missing = np.full(n_essential, -1, dtype=np.int64)
        return pd.DataFrame(
            {
                "birth": np.concatenate([self.birth, self.essential_birth]),
                "death": np.concatenate([self.death, np.full(n_essential, np.inf)]),
                "length": np.concatenate([self.lengths, np.full(n_essential, np.inf)]),
                "birth_vertex": np.concatenate([self.birth_vertex, self.essential_vertex]),
                "death_edge": np.concatenate([self.death_edge, missing]),
                "merge_vertex": np.concatenate([self.merge_vertex, missing]),
                "essential": np.concatenate(
                    [np.zeros(len(self.birth), bool), np.ones(n_essential, bool)]
                ),
            }
        )

    def to_score(self, ord: float = 2) -> float:
        """TO-score: the ``ord``-norm of the finite bar lengths (see :func:`to_score`)."""
        return to_score(self, ord=ord)

    def __len__(self) -> int:
        return len(self.birth) + len(self.essential_birth)


def to_score(barcode: Barcode, ord: float = 2) -> float:
    """Compute the TO-score: the norm of the vector of finite minima-segment lengths.

    Parameters
    ----------
    barcode : Barcode
    ord : {1, 2, inf}
        Order of the norm. The default, 2, is the Euclidean norm.

    Returns
    -------
    float
        ``||death - birth||_ord`` over the finite bars; 0.0 when there are none.
        Infinite bars never count.

    Raises
    ------
    ValueError
        If ``ord`` is not 1, 2 or inf.
    """
    if ord not in _NORM_ORDERS:
        raise ValueError(f"ord must be one of 1, 2, inf; got {ord!r}")
    lengths = barcode.lengths
    if lengths.size == 0:
        return 0.0
    return float(np.linalg.norm(lengths, ord=ord))


def graph_barcode(
    vertex_values,
    edges,
    edge_values=None,
    *,
    keep_zero_length: bool = False,
) -> Barcode:
    """Compute the H0 sublevel barcode of a function on a graph.

    Parameters
    ----------
    vertex_values : array_like of float, shape (n_vertices,)
        Function value at each vertex; converted to float64. Must be finite.
    edges : array_like of int, shape (n_edges, 2)
        Vertex index pairs. Self-loops and out-of-range indices are invalid; repeated
        edges are allowed (the lowest value counts).
    edge_values : array_like of float, shape (n_edges,), optional
        Value at which each edge appears. Defaults to the larger endpoint value. A value
        below either endpoint's value, or NaN, is invalid; ``+inf`` marks an edge with no
        known path and is treated as absent. 0.0 is an ordinary value.
    keep_zero_length : bool, default False
        Keep finite bars with ``death == birth``. Every vertex that is not a strict local
        minimum produces one, so they are dropped unless requested.

    Returns
    -------
    Barcode
        Finite bars with the vertex of each minimum, the edge where it dies and the
        minimum it merges into; one infinite bar per connected component.

    Raises
    ------
    ValueError
        On empty input, non-finite vertex values, malformed or out-of-range edges,
        self-loops, mismatched lengths, NaN edge values or an edge value below an
        endpoint value. The message names the first offending index and the count.

    Notes
    -----
    Ties are broken deterministically. Vertices are ordered by ``(value, index)``: of
    two minima with equal values, the one with the smaller index is the elder and
    survives a merge. Edges are processed by ``(value, row in edges)``. The bar
    *values* never depend on these choices; only the recorded provenance does.

    The result depends on how the graph samples the function: a saddle that no edge
    passes through is missed, and an edge value that overestimates the true minimax
    height lengthens a bar. For minima of a network the edge values come from optimized
    paths and are upper bounds on the true saddles (arXiv:2012.15834).
    """
    values = _as_finite_vector(vertex_values, "vertex_values")
    n_vertices = len(values)
    edge_array = _as_edge_array(edges, n_vertices)
    weights = _edge_weights(values, edge_array, edge_values)

    present = np.isfinite(weights)
    edge_rows = np.flatnonzero(present)
    forest_rows = _kruskal_forest(n_vertices, edge_array[edge_rows], weights[edge_rows])
    forest_rows = edge_rows[forest_rows]  # rows of the input, sorted by (weight, row)

    # Union-find on Python lists (faster than numpy scalars in a loop). The root of each
    # component stores the component's elder minimum.
    order_key = np.lexsort((np.arange(n_vertices), values))
    rank_array = np.empty(n_vertices, dtype=np.int64)
    rank_array[order_key] = np.arange(n_vertices)  # rank[v] < rank[w]: v is the elder
    rank = rank_array.tolist()
    value_list = values.tolist()
    parent = list(range(n_vertices))
    elder = list(range(n_vertices))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    births, deaths, birth_vertex, death_edge, merge_vertex = [], [], [], [], []
    sources = edge_array[forest_rows, 0].tolist()
    targets = edge_array[forest_rows, 1].tolist()
    forest_weights = weights[forest_rows].tolist()
    for row, source, target, weight in zip(forest_rows.tolist(), sources, targets, forest_weights):
        root_a, root_b = find(source), find(target)
        min_a, min_b = elder[root_a], elder[root_b]
        if rank[min_a] > rank[min_b]:
            root_a, root_b, min_a, min_b = root_b, root_a, min_b, min_a
        # Component b contains the younger (higher) minimum, so it dies here.
        if keep_zero_length or weight > value_list[min_b]:
            births.append(value_list[min_b])
            deaths.append(weight)
            birth_vertex.append(min_b)
            death_edge.append(row)
            merge_vertex.append(min_a)
        parent[root_b] = root_a

    roots = {find(v) for v in range(n_vertices)}
    essential_vertex = np.array(sorted(elder[r] for r in roots), dtype=np.int64)
    essential_vertex = essential_vertex[np.argsort(rank_array[essential_vertex], kind="stable")]

    births = np.asarray(births, dtype=np.float64)
    deaths = np.asarray(deaths, dtype=np.float64)
    birth_vertex = np.asarray(birth_vertex, dtype=np.int64)
    order = np.lexsort((birth_vertex, -(deaths - births)))
    return Barcode(
        birth=births[order],
        death=deaths[order],
        birth_vertex=birth_vertex[order],
        death_edge=np.asarray(death_edge, dtype=np.int64)[order],
        merge_vertex=np.asarray(merge_vertex, dtype=np.int64)[order],
        essential_birth=values[essential_vertex],
        essential_vertex=essential_vertex.astype(np.int64),
    )


def sample_barcode(points, values, k: int = 8, *, keep_zero_length: bool = False) -> Barcode:
    """Compute the H0 barcode of a function sampled on a point cloud.

    Joins each point to its ``k`` nearest neighbours (Euclidean) and computes the
    lower-star barcode of that graph with :func:`graph_barcode`.

    Parameters
    ----------
    points : array_like of float, shape (n_points, n_dims)
        Sample locations. Must be finite.
    values : array_like of float, shape (n_points,)
        Function values at the samples.
    k : int, default 8
        Number of neighbours per point; capped at ``n_points - 1``.
    keep_zero_length : bool, default False
        Passed on to :func:`graph_barcode`.

    Returns
    -------
    Barcode
        Vertices are the row indices of ``points``.

    Raises
    ------
    ValueError
        If the shapes disagree, ``k < 1`` or any coordinate or value is not finite.

    Notes
    -----
    This is the point-cloud algorithm of arXiv:1912.00043. Its bars are only as good as
    the sampling: a basin with no sample is invisible, and a sparse sample can create
    spurious shallow minima or jump over a saddle. The graph has about
    ``n_points * k`` edges; the cost is ``O(n k log(n k))``.
    """
    coords = np.asarray(points, dtype=np.float64)
    if coords.ndim != 2:
        raise ValueError(f"points must have shape (n_points, n_dims); got shape {coords.shape}")
    vals = _as_finite_vector(values, "values")
    if len(vals) != len(coords):
        raise ValueError(
            f"points has {len(coords)} rows but values has {len(vals)} entries; they must match"
        )
    bad = np.flatnonzero(~np.isfinite(coords).all(axis=1))
    if bad.size:
        raise ValueError(f"points has {bad.size} non-finite rows; the first is row {bad[0]}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer; got {k!r}")

    n_neighbours = min(int(k), len(coords) - 1)
    if n_neighbours == 0:
        return graph_barcode(vals, np.empty((0, 2), dtype=np.int64), keep_zero_length=keep_zero_length)
    _, neighbours = cKDTree(coords).query(coords, k=n_neighbours + 1)
    sources = np.repeat(np.arange(len(coords)), n_neighbours)
    targets = neighbours[:, 1:].ravel()
    keep = sources != targets  # duplicate points can list themselves after column 0
    edges = np.stack([sources[keep], targets[keep]], axis=1)  # (n_points * k, 2)
    return graph_barcode(vals, edges, keep_zero_length=keep_zero_length)


def _as_finite_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty; a barcode needs at least one vertex")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} non-finite entries (NaN or inf); the first is at "
            f"index {bad[0]} with value {array[bad[0]]}"
        )
    return array


def _as_edge_array(edges, n_vertices: int) -> np.ndarray:
    array = np.asarray(edges)
    if array.size == 0:
        return np.empty((0, 2), dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"edges must have shape (n_edges, 2); got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        as_float = array.astype(np.float64)
        with np.errstate(invalid="ignore"):
            fractional = ~np.isfinite(as_float) | (as_float != np.round(as_float))
        bad = np.flatnonzero(fractional.any(axis=1))
        if bad.size:
            raise ValueError(
                f"edges must contain integer vertex indices; {bad.size} edges of dtype "
                f"{array.dtype} are not integer-valued; the first is edge {bad[0]} = "
                f"{array[bad[0]].tolist()}"
            )
    array = array.astype(np.int64)
    bad = np.flatnonzero(((array < 0) | (array >= n_vertices)).any(axis=1))
    if bad.size:
        raise ValueError(
            f"{bad.size} edges refer to vertices outside [0, {n_vertices}); the first is "
            f"edge {bad[0]} = {array[bad[0]].tolist()}"
        )
    loops = np.flatnonzero(array[:, 0] == array[:, 1])
    if loops.size:
        raise ValueError(
            f"{loops.size} edges are self-loops; the first is edge {loops[0]} = "
            f"{array[loops[0]].tolist()}"
        )
    return array


def _edge_weights(values: np.ndarray, edges: np.ndarray, edge_values) -> np.ndarray:
    floor = np.maximum(values[edges[:, 0]], values[edges[:, 1]])  # (n_edges,)
    if edge_values is None:
        return floor
    weights = np.asarray(edge_values, dtype=np.float64)
    if weights.ndim != 1 or len(weights) != len(edges):
        raise ValueError(
            f"edge_values must have shape ({len(edges)},), one per edge; got shape {weights.shape}"
        )
    nan = np.flatnonzero(np.isnan(weights))
    if nan.size:
        raise ValueError(f"edge_values has {nan.size} NaN entries; the first is at index {nan[0]}")
    below = np.flatnonzero(weights < floor)
    if below.size:
        i = below[0]
        raise ValueError(
            f"{below.size} edge values lie below an endpoint's vertex value; the first is "
            f"edge {i} = {edges[i].tolist()} with value {float(weights[i])!r} < "
            f"{float(floor[i])!r}"
        )
    return weights


def _kruskal_forest(n_vertices: int, edges: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return the rows of ``edges`` in Kruskal's spanning forest, in processing order.

    Kruskal's algorithm visits edges by ``(weight, row)``. Replacing each weight by its
    1-based position in that order gives distinct positive weights, so the minimum
    spanning forest is unique, equals the one Kruskal's loop would keep, and no weight is
    zero (sparse matrices would drop it). scipy then finds that forest in compiled code.
    Positions up to 2**53 are exact in float64.
    """
    if len(edges) == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(weights, kind="stable")  # by (weight, row)

    # Keep one edge per vertex pair, the earliest in that order, because a sparse matrix
    # sums duplicates. np.unique returns the first occurrence of each pair key.
    low = np.minimum(edges[:, 0], edges[:, 1])
    high = np.maximum(edges[:, 0], edges[:, 1])
    pair_key = low[order] * np.int64(n_vertices) + high[order]
    _, first = np.unique(pair_key, return_index=True)
    unique_positions = np.sort(first)  # positions in `order`, 0-based
    unique_rows = order[unique_positions]

    graph = coo_matrix(
        ((unique_positions + 1).astype(np.float64), (low[unique_rows], high[unique_rows])),
        shape=(n_vertices, n_vertices),
    ).tocsr()
    forest = minimum_spanning_tree(graph).tocoo()
    kept_positions = np.sort(forest.data.astype(np.int64))
    return order[kept_positions - 1]
