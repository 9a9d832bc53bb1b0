"""Tests for graph_barcode, to_score and the Barcode class."""

import math

import numpy as np
import pandas as pd
import pytest
from ripser import ripser
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from toscore import Barcode, graph_barcode, to_score

INF = np.inf


def assert_bars(barcode, expected):
    """Check the finite bars, in output order, against rows (birth, death, birth_vertex,
    death_edge, merge_vertex)."""
    expected = list(expected)
    got = list(
        zip(
            barcode.birth.tolist(),
            barcode.death.tolist(),
            barcode.birth_vertex.tolist(),
            barcode.death_edge.tolist(),
            barcode.merge_vertex.tolist(),
        )
    )
    assert got == expected


def bar_pairs(barcode):
    """Return the finite bars as an (n_finite, 2) array sorted by (birth, death)."""
    pairs = np.column_stack([barcode.birth, barcode.death]).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def kruskal_oracle(values, edges, edge_values=None, keep_zero_length=False):
    """Compute the elder-rule H0 barcode with a plain Kruskal loop over all edges.

    Edges are visited by (value, row) and minima compared by (value, index), as the
    graph_barcode docstring prescribes. Returns the finite bars as tuples (birth, death,
    birth_vertex, death_edge, merge_vertex) in the documented output order, and the
    essential vertices sorted by (value, index).
    """
    values = [float(v) for v in values]
    edges = [(int(a), int(b)) for a, b in edges]
    if edge_values is None:
        weights = [max(values[a], values[b]) for a, b in edges]
    else:
        weights = [float(w) for w in edge_values]
    parent = list(range(len(values)))
    eldest = list(range(len(values)))

    def find(v):
        while parent[v] != v:
            v = parent[v]
        return v

    def elder_key(v):
        return (values[v], v)

    bars = []
    for weight, row in sorted((w, i) for i, w in enumerate(weights) if w != math.inf):
        root_a, root_b = find(edges[row][0]), find(edges[row][1])
        if root_a == root_b:
            continue
        if elder_key(eldest[root_b]) < elder_key(eldest[root_a]):
            root_a, root_b = root_b, root_a
        young, old = eldest[root_b], eldest[root_a]
        if keep_zero_length or weight > values[young]:
            bars.append((values[young], weight, young, row, old))
        parent[root_b] = root_a
    bars.sort(key=lambda bar: (-(bar[1] - bar[0]), bar[2]))
    roots = {find(v) for v in range(len(values))}
    essential = sorted((eldest[r] for r in roots), key=elder_key)
    return bars, essential


def random_graph(rng, n_vertices, n_edges, value_kind, custom_edges, n_duplicates=0):
    """Draw a random multigraph without self-loops, with values and edge values.

    value_kind "dyadic" draws multiples of 1/4 in [-4, 4], which gives many ties and
    zeros and is exact in float32. "continuous" draws uniform values in [-4, 4].
    """
    if value_kind == "dyadic":
        values = rng.integers(-16, 17, n_vertices) / 4.0
    else:
        values = rng.uniform(-4.0, 4.0, n_vertices)
    edges = rng.integers(0, n_vertices, (n_edges, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    if len(edges) and n_duplicates:
        copies = edges[rng.integers(0, len(edges), n_duplicates)]
        flip = rng.random(n_duplicates) < 0.5
        copies[flip] = copies[flip][:, ::-1]  # the same edge written the other way round
        edges = np.concatenate([edges, copies])
        edges = edges[rng.permutation(len(edges))]
    if not custom_edges:
        return values, edges, None
    floor = np.maximum(values[edges[:, 0]], values[edges[:, 1]])
    if value_kind == "dyadic":
        raise_by = rng.integers(0, 5, len(edges)) / 4.0
    else:
        raise_by = np.minimum(rng.exponential(1.0, len(edges)), 8.0)
    edge_values = floor + raise_by * (rng.random(len(edges)) < 0.6)
    # 0.0 is a valid edge value wherever both endpoints are <= 0.
    zero = (floor <= 0) & (rng.random(len(edges)) < 0.3)
    edge_values[zero] = 0.0
    edge_values[rng.random(len(edges)) < 0.1] = np.inf  # missing edges
    return values, edges, edge_values


# --- hand-worked graphs -------------------------------------------------------------


def test_chain_with_three_minima():
    # Path 0-1-2-3-4-5-6; minima at vertices 1 (0.0), 5 (0.5) and 3 (1.0).
    values = [2.0, 0.0, 3.0, 1.0, 5.0, 0.5, 4.0]
    edges = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]
    # Edge values (larger endpoint): 2, 3, 3, 5, 5, 4. At 3, row 1 attaches vertex 2 to
    # the component of vertex 1, then row 2 merges vertex 3 into it. At 5, row 3 attaches
    # vertex 4, then row 4 merges the component of vertex 5.
    barcode = graph_barcode(values, edges)
    assert_bars(barcode, [(0.5, 5.0, 5, 4, 1), (1.0, 3.0, 3, 2, 1)])
    np.testing.assert_array_equal(barcode.essential_birth, [0.0])
    np.testing.assert_array_equal(barcode.essential_vertex, [1])


def test_chain_keep_zero_length():
    values = [2.0, 0.0, 3.0, 1.0, 5.0, 0.5, 4.0]
    edges = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]
    barcode = graph_barcode(values, edges, keep_zero_length=True)
    # Every non-minimum vertex dies where it joins; zero-length bars follow the two
    # long ones, ordered by birth vertex.
    assert_bars(
        barcode,
        [
            (0.5, 5.0, 5, 4, 1),
            (1.0, 3.0, 3, 2, 1),
            (2.0, 2.0, 0, 0, 1),
            (3.0, 3.0, 2, 1, 1),
            (5.0, 5.0, 4, 3, 1),
            (4.0, 4.0, 6, 5, 5),
        ],
    )
    assert len(barcode.birth) == len(values) - 1


def test_star_merges_at_the_hub():
    # Hub 0 at 10.0, leaves 1..4 are minima at 3, 1, 4, 2. All merges happen at 10, in
    # row order. Row 0 attaches the hub to leaf 1. Row 1 meets leaf 2, the global
    # minimum, so leaf 1 dies. Rows 2 and 3 then kill leaves 3 and 4.
    values = [10.0, 3.0, 1.0, 4.0, 2.0]
    edges = [[0, 1], [0, 2], [0, 3], [0, 4]]
    barcode = graph_barcode(values, edges)
    assert_bars(barcode, [(2.0, 10.0, 4, 3, 2), (3.0, 10.0, 1, 1, 2), (4.0, 10.0, 3, 2, 2)])
    np.testing.assert_array_equal(barcode.essential_vertex, [2])


def test_equal_minima_the_smaller_index_is_elder():
    # Minima 1 and 2 both at 1.0, joined through vertex 0 at 5.0.
    values = [5.0, 1.0, 1.0]
    for edges in ([[1, 0], [0, 2]], [[0, 2], [1, 0]]):
        barcode = graph_barcode(values, edges)
        assert_bars(barcode, [(1.0, 5.0, 2, 1, 1)])
        np.testing.assert_array_equal(barcode.essential_vertex, [1])


def test_essential_bars_order_by_value_index():
    values = [0.0, 3.0, -1.0, 0.0, 3.0]  # no edges: five components
    barcode = graph_barcode(values, np.empty((0, 2), dtype=int))
    np.testing.assert_array_equal(barcode.essential_vertex, [2, 0, 3, 1, 4])
    np.testing.assert_array_equal(barcode.essential_birth, [-1.0, 0.0, 0.0, 3.0, 3.0])
    assert barcode.birth.size == 0


def test_three_way_merge_at_one_value():
    # Three isolated minima 1 < 2 < 3 joined by three edges that all appear at 5.0.
    values = [1.0, 2.0, 3.0]
    # Rows (1,2), (0,2), (0,1): row 0 kills vertex 2 into vertex 1, then row 1 kills
    # vertex 1 into vertex 0. Row 2 closes a cycle.
    barcode = graph_barcode(values, [[1, 2], [0, 2], [0, 1]], [5.0, 5.0, 5.0])
    assert_bars(barcode, [(2.0, 5.0, 1, 1, 0), (3.0, 5.0, 2, 0, 1)])
    # Reversed rows: both younger minima die into vertex 0, at rows 0 and 1.
    barcode = graph_barcode(values, [[0, 1], [0, 2], [1, 2]], [5.0, 5.0, 5.0])
    assert_bars(barcode, [(2.0, 5.0, 1, 0, 0), (3.0, 5.0, 2, 1, 0)])
    np.testing.assert_array_equal(barcode.essential_vertex, [0])


def test_three_way_merge_through_a_saddle_vertex():
    # Minima 0, 1, 2 at 0, 1, 2 each joined to saddle vertex 3 at 4.
    barcode = graph_barcode([0.0, 1.0, 2.0, 4.0], [[2, 3], [1, 3], [0, 3]])
    # Row 0 attaches the saddle to minimum 2, row 1 kills 2 into 1, row 2 kills 1 into 0.
    assert_bars(barcode, [(1.0, 4.0, 1, 2, 0), (2.0, 4.0, 2, 1, 1)])


def test_equal_edge_values_first_row_wins():
    # Duplicate edges between the same vertices: the lowest value counts and among equal
    # values the earliest row records the death.
    barcode = graph_barcode([0.0, 1.0], [[0, 1], [1, 0], [0, 1]], [3.0, 2.0, 2.0])
    assert_bars(barcode, [(1.0, 2.0, 1, 1, 0)])


def test_zero_values_are_ordinary():
    # Vertices 0, 2, 3 are at 0.0. The edge 2-3 has value 0.0 and must join them at once.
    values = [0.0, 3.0, 0.0, 0.0]
    edges = [[2, 3], [0, 1], [1, 2]]
    barcode = graph_barcode(values, edges)
    assert_bars(barcode, [(0.0, 3.0, 2, 2, 0)])
    np.testing.assert_array_equal(barcode.essential_vertex, [0])
    barcode = graph_barcode(values, edges, keep_zero_length=True)
    # Zero-length bars are ordered by birth vertex.
    assert_bars(barcode, [(0.0, 3.0, 2, 2, 0), (3.0, 3.0, 1, 1, 0), (0.0, 0.0, 3, 0, 2)])


def test_explicit_zero_edge_value():
    # An edge value of exactly 0.0 between two negative minima.
    barcode = graph_barcode([-1.0, -2.0], [[0, 1]], [0.0])
    assert_bars(barcode, [(-1.0, 0.0, 0, 0, 1)])
    np.testing.assert_array_equal(barcode.essential_birth, [-2.0])


@pytest.mark.parametrize("edges", [np.empty((0, 2), dtype=np.int64), [], np.empty((0, 2))])
def test_single_vertex(edges):
    barcode = graph_barcode([2.5], edges)
    assert barcode.birth.size == 0
    assert barcode.death.size == 0
    np.testing.assert_array_equal(barcode.essential_birth, [2.5])
    np.testing.assert_array_equal(barcode.essential_vertex, [0])
    assert len(barcode) == 1


def test_two_components():
    # Component {0, 1, 2} has minima 0 (1.0) and 2 (0.0) joined at 4.0. Then {3, 4}.
    values = [1.0, 4.0, 0.0, 2.0, 2.5]
    barcode = graph_barcode(values, [[0, 1], [1, 2], [3, 4]])
    assert_bars(barcode, [(1.0, 4.0, 0, 1, 2)])
    np.testing.assert_array_equal(barcode.essential_birth, [0.0, 2.0])
    np.testing.assert_array_equal(barcode.essential_vertex, [2, 3])


def test_infinite_edge_value_is_a_missing_edge():
    values = [0.0, 1.0, 0.5]
    barcode = graph_barcode(values, [[0, 1], [1, 2]], [INF, 1.0])
    assert barcode.birth.size == 0
    np.testing.assert_array_equal(barcode.essential_vertex, [0, 2])
    # A finite duplicate of an infinite edge still joins the endpoints.
    barcode = graph_barcode([0.0, 1.0], [[0, 1], [1, 0]], [INF, 2.0])
    assert_bars(barcode, [(1.0, 2.0, 1, 1, 0)])
    # All edges missing: every vertex is its own component.
    barcode = graph_barcode(values, [[0, 1], [1, 2]], [INF, INF])
    np.testing.assert_array_equal(barcode.essential_vertex, [0, 2, 1])


def test_custom_edge_values_above_endpoints():
    # Edge values above both endpoints make vertex 1 a minimum of the filtration. It is
    # born at 1 and joins vertex 2 at 2. Vertex 2 (0.5) then dies into vertex 0 at 3.
    values = [0.0, 1.0, 0.5]
    barcode = graph_barcode(values, [[0, 1], [1, 2], [0, 2]], [4.0, 2.0, 3.0])
    assert_bars(barcode, [(0.5, 3.0, 2, 2, 0), (1.0, 2.0, 1, 1, 2)])
    np.testing.assert_array_equal(barcode.essential_vertex, [0])


def test_edge_value_equal_to_endpoint_is_valid():
    barcode = graph_barcode([0.0, 1.0], [[0, 1]], [1.0])
    assert barcode.birth.size == 0


def test_integer_valued_float_edges_are_accepted():
    barcode = graph_barcode([0.0, 2.0, 1.0], np.array([[0.0, 1.0], [1.0, 2.0]]))
    assert_bars(barcode, [(1.0, 2.0, 2, 1, 0)])


# --- the Barcode class and to_score -------------------------------------------------


def test_barcode_types_lengths_and_len():
    barcode = graph_barcode([0.0, 1.0, 0.5], [[0, 1], [1, 2], [0, 2]], [4.0, 2.0, 3.0])
    for name in ("birth", "death", "essential_birth"):
        assert getattr(barcode, name).dtype == np.float64
    for name in ("birth_vertex", "death_edge", "merge_vertex", "essential_vertex"):
        assert getattr(barcode, name).dtype == np.int64
    np.testing.assert_array_equal(barcode.lengths, [2.5, 1.0])
    assert len(barcode) == 3


def test_segments_table():
    values = [1.0, 4.0, 0.0, 2.0, 2.5]
    segments = graph_barcode(values, [[0, 1], [1, 2], [3, 4]]).segments
    expected = pd.DataFrame(
        {
            "birth": [1.0, 0.0, 2.0],
            "death": [4.0, INF, INF],
            "length": [3.0, INF, INF],
            "birth_vertex": np.array([0, 2, 3], dtype=np.int64),
            "death_edge": np.array([1, -1, -1], dtype=np.int64),
            "merge_vertex": np.array([2, -1, -1], dtype=np.int64),
            "essential": [False, True, True],
        }
    )
    pd.testing.assert_frame_equal(segments, expected)


def test_segments_table_without_finite_bars():
    segments = graph_barcode([2.5], []).segments
    assert list(segments.columns) == [
        "birth", "death", "length", "birth_vertex", "death_edge", "merge_vertex", "essential"
    ]
    assert segments.shape == (1, 7)
    assert segments["essential"].tolist() == [True]
    assert segments["death"].tolist() == [INF]


def make_barcode(birth, death):
    n = len(birth)
    return Barcode(
        birth=np.asarray(birth, dtype=np.float64),
        death=np.asarray(death, dtype=np.float64),
        birth_vertex=np.arange(n, dtype=np.int64),
        death_edge=np.arange(n, dtype=np.int64),
        merge_vertex=np.zeros(n, dtype=np.int64),
        essential_birth=np.array([-7.0]),
        essential_vertex=np.array([n], dtype=np.int64),
    )


@pytest.mark.parametrize(
    "ord, expected", [(1, 3 + 4 + 12), (2, 13.0), (INF, 12.0), (2.0, 13.0), (float("inf"), 12.0)]
)
def test_to_score_hand_computed(ord, expected):
    # Lengths 3, 4, 12 give sum 19, Euclidean norm 13 and maximum 12. The essential bar
    # does not count.
    barcode = make_barcode([0.0, 1.0, -2.0], [3.0, 5.0, 10.0])
    assert to_score(barcode, ord=ord) == pytest.approx(expected, rel=1e-15)
    assert barcode.to_score(ord=ord) == pytest.approx(expected, rel=1e-15)


def test_to_score_default_is_euclidean():
    barcode = graph_barcode([0.0, 1.0, 0.5], [[0, 1], [1, 2], [0, 2]], [4.0, 2.0, 3.0])
    # Lengths 2.5 and 1.0.
    assert to_score(barcode) == pytest.approx(math.sqrt(2.5**2 + 1.0), rel=1e-15)
    assert barcode.to_score(1) == pytest.approx(3.5, rel=1e-15)
    assert barcode.to_score(INF) == 2.5


@pytest.mark.parametrize("ord", [1, 2, INF])
def test_to_score_without_finite_bars_is_zero(ord):
    assert to_score(graph_barcode([2.5], []), ord=ord) == 0.0
    assert to_score(make_barcode([], []), ord=ord) == 0.0
    score = to_score(graph_barcode([0.0, 1.0], [[0, 1]]), ord=ord)  # one zero-length bar, dropped
    assert score == 0.0
    assert isinstance(score, float)


@pytest.mark.parametrize("ord", [0, 3, -1, -INF, 1.5, "fro", "nuc", None])
def test_to_score_rejects_other_orders(ord):
    barcode = make_barcode([0.0], [1.0])
    with pytest.raises(ValueError, match=r"ord must be one of 1, 2, inf"):
        to_score(barcode, ord=ord)
    with pytest.raises(ValueError, match=r"ord must be one of 1, 2, inf"):
        barcode.to_score(ord=ord)


# --- agreement with ripser ----------------------------------------------------------


def ripser_matrix(values, edges, edge_values):
    """Sparse filtration matrix: vertex values on the diagonal, the lowest value of each
    vertex pair off the diagonal (both triangles), missing edges left out.

    Built in COO form with one entry per position, because converting COO to CSR would
    sum duplicate entries. ripser reads the COO entries as given, explicit zeros included.
    """
    n = len(values)
    weights = (
        np.maximum(values[edges[:, 0]], values[edges[:, 1]]) if edge_values is None else edge_values
    )
    lowest = {}
    for (a, b), w in zip(edges.tolist(), weights.tolist()):
        if w == math.inf:
            continue
        key = (min(a, b), max(a, b))
        lowest[key] = min(w, lowest.get(key, math.inf))
    rows = list(range(n)) + [a for a, _ in lowest] + [b for _, b in lowest]
    cols = list(range(n)) + [b for _, b in lowest] + [a for a, _ in lowest]
    data = list(values) + list(lowest.values()) * 2
    return coo_matrix((np.array(data), (np.array(rows), np.array(cols))), shape=(n, n))


@pytest.mark.parametrize("seed", range(120))
def test_agrees_with_ripser(seed):
    rng = np.random.default_rng(seed)
    value_kind = ("dyadic", "continuous")[seed % 2]
    custom_edges = seed % 4 >= 2
    n_vertices = int(rng.integers(1, 61))
    n_edges = int(rng.integers(0, 3 * n_vertices + 1))
    values, edges, edge_values = random_graph(
        rng, n_vertices, n_edges, value_kind, custom_edges, n_duplicates=int(rng.integers(0, 10))
    )
    barcode = graph_barcode(values, edges, edge_values)

    diagram = ripser(ripser_matrix(values, edges, edge_values), distance_matrix=True, maxdim=0)
    diagram = diagram["dgms"][0]
    finite = np.isfinite(diagram[:, 1])
    expected = diagram[finite & (diagram[:, 1] > diagram[:, 0])]
    expected = expected[np.lexsort((expected[:, 1], expected[:, 0]))]
    # ripser computes in float32. All values lie in [-4, 12], where rounding to float32
    # moves a value by at most 4.8e-7 (dyadic values not at all), below the tolerance.
    np.testing.assert_allclose(bar_pairs(barcode), expected, rtol=0, atol=1e-6)
    assert len(barcode.essential_birth) == int((~finite).sum())
    np.testing.assert_allclose(
        barcode.essential_birth, np.sort(diagram[~finite, 0]), rtol=0, atol=1e-6
    )


# --- provenance against a pure-Python union-find ------------------------------------


@pytest.mark.parametrize("keep_zero_length", [False, True])
@pytest.mark.parametrize(
    "seed, value_kind, custom_edges",
    [(0, "dyadic", False), (1, "dyadic", True), (2, "continuous", False), (3, "continuous", True)],
)
def test_large_graph_matches_union_find_with_provenance(seed, value_kind, custom_edges, keep_zero_length):
    rng = np.random.default_rng(1000 + seed)
    n_vertices = 3000
    values, edges, edge_values = random_graph(
        rng, n_vertices, 9000, value_kind, custom_edges, n_duplicates=2000
    )
    barcode = graph_barcode(values, edges, edge_values, keep_zero_length=keep_zero_length)
    bars, essential = kruskal_oracle(values, edges, edge_values, keep_zero_length)
    assert len(bars) > 50  # the comparison covers many merges
    assert_bars(barcode, bars)
    np.testing.assert_array_equal(barcode.essential_vertex, essential)
    np.testing.assert_array_equal(barcode.essential_birth, values[essential])

    # With zero-length bars kept, every vertex but one per component dies once.
    weights = (
        np.maximum(values[edges[:, 0]], values[edges[:, 1]]) if edge_values is None else edge_values
    )
    present = np.isfinite(weights)
    graph = coo_matrix(
        (np.ones(present.sum()), (edges[present, 0], edges[present, 1])),
        shape=(n_vertices, n_vertices),
    )
    n_components = connected_components(graph, directed=False)[0]
    assert len(barcode.essential_birth) == n_components
    if keep_zero_length:
        assert len(barcode.birth) == n_vertices - n_components


# --- invariances --------------------------------------------------------------------


def invariance_graph(seed, value_kind="continuous", custom_edges=True):
    rng = np.random.default_rng(2000 + seed)
    values, edges, edge_values = random_graph(rng, 200, 600, value_kind, custom_edges, 50)
    return rng, values, edges, edge_values


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shift", [-3.0, 2.75, 100.0])
def test_shifting_all_values_shifts_every_bar(seed, shift):
    _, values, edges, edge_values = invariance_graph(seed, custom_edges=seed % 2 == 0)
    shifted_edges = None if edge_values is None else edge_values + shift
    original = graph_barcode(values, edges, edge_values)
    shifted = graph_barcode(values + shift, edges, shifted_edges)
    assert len(original.birth) > 5
    np.testing.assert_allclose(shifted.birth, original.birth + shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(shifted.death, original.death + shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(shifted.essential_birth, original.essential_birth + shift, atol=1e-12)
    # Distinct continuous values keep their order, so the provenance is unchanged.
    np.testing.assert_array_equal(shifted.birth_vertex, original.birth_vertex)
    np.testing.assert_array_equal(shifted.death_edge, original.death_edge)
    np.testing.assert_array_equal(shifted.merge_vertex, original.merge_vertex)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("value_kind", ["continuous", "dyadic"])
def test_vertex_permutation_changes_no_bar(seed, value_kind):
    rng, values, edges, edge_values = invariance_graph(seed, value_kind, custom_edges=seed % 2 == 0)
    relabel = rng.permutation(len(values))  # vertex v becomes relabel[v]
    permuted_values = np.empty_like(values)
    permuted_values[relabel] = values
    original = graph_barcode(values, edges, edge_values)
    permuted = graph_barcode(permuted_values, relabel[edges], edge_values)
    np.testing.assert_array_equal(bar_pairs(permuted), bar_pairs(original))
    np.testing.assert_array_equal(permuted.essential_birth, original.essential_birth)
    if value_kind == "continuous":
        # No value ties: the provenance follows the relabelling. Bars are listed by
        # (birth vertex) among equal lengths, so compare them keyed by birth vertex.
        expected = sorted(
            zip(
                relabel[original.birth_vertex].tolist(),
                original.death_edge.tolist(),
                relabel[original.merge_vertex].tolist(),
            )
        )
        got = sorted(
            zip(
                permuted.birth_vertex.tolist(),
                permuted.death_edge.tolist(),
                permuted.merge_vertex.tolist(),
            )
        )
        assert got == expected
        np.testing.assert_array_equal(permuted.essential_vertex, relabel[original.essential_vertex])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("value_kind", ["continuous", "dyadic"])
def test_edge_row_permutation_changes_no_bar(seed, value_kind):
    rng, values, edges, edge_values = invariance_graph(seed, value_kind, custom_edges=seed % 2 == 0)
    if value_kind == "continuous" and edge_values is not None:
        # Distinct edge values, none missing, so the provenance is tie-free.
        floor = np.maximum(values[edges[:, 0]], values[edges[:, 1]])
        edge_values = floor + rng.exponential(1.0, len(edges))
    new_order = rng.permutation(len(edges))  # new row i is old row new_order[i]
    permuted_edge_values = None if edge_values is None else edge_values[new_order]
    original = graph_barcode(values, edges, edge_values)
    permuted = graph_barcode(values, edges[new_order], permuted_edge_values)
    np.testing.assert_array_equal(bar_pairs(permuted), bar_pairs(original))
    np.testing.assert_array_equal(permuted.essential_birth, original.essential_birth)
    if value_kind == "continuous" and edge_values is not None:
        # Distinct edge values: the same edges kill the same minima.
        np.testing.assert_array_equal(permuted.birth_vertex, original.birth_vertex)
        np.testing.assert_array_equal(permuted.merge_vertex, original.merge_vertex)
        np.testing.assert_array_equal(new_order[permuted.death_edge], original.death_edge)


# --- invalid input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, match",
    [
        ([0.0, 1.0, np.nan], r"vertex_values has 1 non-finite entries.*index 2 with value nan"),
        ([0.0, np.inf, 1.0, -np.inf], r"vertex_values has 2 non-finite entries.*index 1 with value inf"),
        ([], r"vertex_values is empty"),
        ([[0.0, 1.0]], r"vertex_values must be one-dimensional; got shape \(1, 2\)"),
    ],
)
def test_rejects_bad_vertex_values(values, match):
    with pytest.raises(ValueError, match=match):
        graph_barcode(values, np.empty((0, 2), dtype=int))


@pytest.mark.parametrize(
    "edges, match",
    [
        ([[0, 1], [1, 3]], r"1 edges refer to vertices outside \[0, 3\); the first is edge 1 = \[1, 3\]"),
        ([[0, 1], [1, 2], [-1, 2]], r"outside \[0, 3\); the first is edge 2 = \[-1, 2\]"),
        ([[0, 1], [2, 2]], r"1 edges are self-loops; the first is edge 1 = \[2, 2\]"),
        ([0, 1, 2], r"edges must have shape \(n_edges, 2\); got shape \(3,\)"),
        ([[0, 1, 2]], r"edges must have shape \(n_edges, 2\); got shape \(1, 3\)"),
        ([[0.0, 1.0], [1.0, 1.5]], r"edges must contain integer vertex indices.*edge 1 = \[1.0, 1.5\]"),
        ([[0.0, 1.0], [np.nan, 1.0]], r"edges must contain integer vertex indices.*edge 1 = \[nan, 1.0\]"),
    ],
)
def test_rejects_bad_edges(edges, match):
    with pytest.raises(ValueError, match=match):
        graph_barcode([0.0, 1.0, 2.0], edges)


@pytest.mark.parametrize(
    "edge_values, match",
    [
        ([1.0, np.nan], r"edge_values has 1 NaN entries; the first is at index 1"),
        ([1.0, 1.5], r"1 edge values lie below an endpoint's vertex value; the first is edge 1 = \[1, 2\] with value 1.5 < 2.0"),
        ([-np.inf, 2.0], r"below an endpoint's vertex value; the first is edge 0 = \[0, 1\] with value -inf"),
        ([1.0], r"edge_values must have shape \(2,\), one per edge; got shape \(1,\)"),
        ([1.0, 2.0, 3.0], r"edge_values must have shape \(2,\), one per edge; got shape \(3,\)"),
        ([[1.0, 2.0]], r"edge_values must have shape \(2,\)"),
    ],
)
def test_rejects_bad_edge_values(edge_values, match):
    with pytest.raises(ValueError, match=match):
        graph_barcode([0.0, 1.0, 2.0], [[0, 1], [1, 2]], edge_values)
