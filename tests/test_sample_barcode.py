"""Tests for sample_barcode: input checks, small clouds and analytic 2-D functions."""

import numpy as np
import pytest
from scipy import optimize

from toscore import sample_barcode

# --- analytic functions with known critical points ----------------------------------


def himmelblau(x, y):
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def himmelblau_grad(p):
    x, y = p
    a, b = x**2 + y - 11, x + y**2 - 7
    return np.array([4 * x * a + 2 * b, 2 * a + 4 * y * b])


def himmelblau_hess(p):
    x, y = p
    a, b = x**2 + y - 11, x + y**2 - 7
    return np.array([[4 * a + 8 * x**2 + 2, 4 * x + 4 * y], [4 * x + 4 * y, 4 * b + 8 * y**2 + 2]])


def camel(x, y):
    """Six-hump camel function."""
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2


def camel_grad(p):
    x, y = p
    return np.array([8 * x - 8.4 * x**3 + 2 * x**5 + y, x - 8 * y + 16 * y**3])


def camel_hess(p):
    x, y = p
    return np.array([[8 - 25.2 * x**2 + 10 * x**4, 1.0], [1.0, -8 + 48 * y**2]])


# Starting points for scipy, which refines them, so no critical value is typed in by
# hand. Himmelblau's four minima (value 0) are those listed on Wikipedia's page for the
# function. The camel's two global minima (value -1.0316) are those listed by
# benchmarkfcns.info, which also gives four further local minima. The other camel minima
# and all saddles are rounded locations from a root search of the gradient.
HIMMELBLAU = {
    "box": (-5.0, 5.0, -5.0, 5.0),
    "minima": [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)],
    "saddles": [(3.4, 0.1), (0.1, 2.9), (-3.1, -0.1), (-0.1, -2.0)],
    "minimum_values": [0.0, 0.0, 0.0, 0.0],
    "f": himmelblau,
    "grad": himmelblau_grad,
    "hess": himmelblau_hess,
}
CAMEL = {
    # The standard box. Every minimum and saddle lies well inside it.
    "box": (-3.0, 3.0, -2.0, 2.0),
    "minima": [(0.0898, -0.7126), (-0.0898, 0.7126), (1.7, -0.8), (-1.7, 0.8), (1.6, 0.57), (-1.6, -0.57)],
    "minimum_values": [-1.0316, -1.0316, None, None, None, None],
    "saddles": [(0.0, 0.0), (1.1, -0.77), (-1.1, 0.77), (1.64, 0.23), (-1.64, -0.23), (1.3, 0.6), (-1.3, -0.6)],
    "f": camel,
    "grad": camel_grad,
    "hess": camel_hess,
}


def refine_minimum(spec, start):
    result = optimize.minimize(
        lambda p: spec["f"](*p), start, jac=spec["grad"], method="BFGS", options={"gtol": 1e-10}
    )
    assert result.success or np.linalg.norm(spec["grad"](result.x)) < 1e-6
    assert np.all(np.linalg.eigvalsh(spec["hess"](result.x)) > 0)
    return result.x


def refine_saddle(spec, start):
    result = optimize.root(spec["grad"], start, jac=spec["hess"], tol=1e-12)
    assert result.success
    eigenvalues = np.linalg.eigvalsh(spec["hess"](result.x))
    assert eigenvalues[0] < 0 < eigenvalues[1]  # index 1
    return result.x


def expected_bars(spec, pairs):
    """Return the bars (minimum value, saddle value) for (minimum, saddles) index pairs.

    A minimum next to several saddles that lead to lower minima dies at the lowest one.
    Also returns the largest Hessian eigenvalue in modulus over the critical points.
    """
    f = spec["f"]
    minima = [refine_minimum(spec, start) for start in spec["minima"]]
    saddles = [refine_saddle(spec, start) for start in spec["saddles"]]
    for point, start, known in zip(minima, spec["minima"], spec["minimum_values"]):
        if known is not None:  # a minimum from the literature: its value to the digits given
            assert f(*point) == pytest.approx(known, abs=1e-4)
            assert np.linalg.norm(point - start) < 1e-3
    assert len({tuple(np.round(p, 6)) for p in minima}) == len(minima)
    assert len({tuple(np.round(p, 6)) for p in saddles}) == len(saddles)
    bars = [(f(*minima[m]), min(f(*saddles[s]) for s in ss)) for m, ss in pairs]
    points = np.array(minima + saddles)
    lam = max(np.abs(np.linalg.eigvalsh(spec["hess"](p))).max() for p in points)
    return np.array(sorted(bars, key=lambda bar: (bar[1], bar[0]))), lam


# Himmelblau: four minima of value 0 on a cycle of four saddles (13.3, 67.7, 104.0,
# 178.3). Sweeping upwards, each of the three lowest saddles merges two components and
# the fourth closes the cycle. So there are three finite bars, all born at 0. Minimum 3
# dies at saddle 0, minimum 1 at saddle 1 and minimum 2 at saddle 2.
HIMMELBLAU_PAIRS = [(3, [0]), (1, [1]), (2, [2])]
# Six-hump camel: the two global minima (-1.03) meet at the saddle at the origin (0).
# The minima at -0.22 meet the global ones at 0.54, and the minima at 2.10 meet those at
# -0.22 at 2.229, the lower of their two neighbouring saddles. So five finite bars.
CAMEL_PAIRS = [(1, [0]), (2, [1]), (3, [2]), (4, [3, 5]), (5, [4, 6])]


def grid(box, n_x, n_y):
    xs = np.linspace(box[0], box[1], n_x)
    ys = np.linspace(box[2], box[3], n_y)
    return xs, ys


def grid_lower_star_bars(values):
    """Return the finite H0 bars of the lower-star filtration of a 4-neighbour grid.

    This vertex sweep is independent of graph_barcode. It visits grid points by
    increasing value, and each point joins the components of its visited neighbours.
    When it joins several, all but the one with the lowest minimum die at its value.
    """
    n_x, n_y = values.shape
    flat = values.ravel().tolist()
    parent = [-1] * len(flat)  # -1: not visited yet
    lowest = list(range(len(flat)))
    bars = []

    def find(v):
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for v in sorted(range(len(flat)), key=flat.__getitem__):
        i, j = divmod(v, n_y)
        parent[v] = v
        neighbours = []
        if i > 0:
            neighbours.append(v - n_y)
        if i < n_x - 1:
            neighbours.append(v + n_y)
        if j > 0:
            neighbours.append(v - 1)
        if j < n_y - 1:
            neighbours.append(v + 1)
        roots = {find(w) for w in neighbours if parent[w] != -1}
        roots.add(v)
        survivor = min(roots, key=lambda r: flat[lowest[r]])
        for root in roots:
            if root != survivor:
                if flat[v] > flat[lowest[root]]:
                    bars.append((flat[lowest[root]], flat[v]))
                parent[root] = survivor
    return np.array(sorted(bars, key=lambda bar: (bar[1], bar[0]))).reshape(-1, 2)


def significant(bars, threshold):
    bars = np.asarray(bars).reshape(-1, 2)
    bars = bars[bars[:, 1] - bars[:, 0] > threshold]
    return bars[np.lexsort((bars[:, 0], bars[:, 1]))]


def barcode_pairs(barcode):
    return np.column_stack([barcode.birth, barcode.death])


def test_boxes_add_no_boundary_minima():
    # On both boxes f increases along the outward normal everywhere on the boundary.
    # So no minimum of f restricted to the box lies on the boundary, and the barcodes
    # contain only the interior minima.
    for spec in (HIMMELBLAU, CAMEL):
        x0, x1, y0, y1 = spec["box"]
        t = np.linspace(0.0, 1.0, 2001)
        for points, normal in [
            (np.column_stack([np.full_like(t, x1), y0 + (y1 - y0) * t]), (1, 0)),
            (np.column_stack([np.full_like(t, x0), y0 + (y1 - y0) * t]), (-1, 0)),
            (np.column_stack([x0 + (x1 - x0) * t, np.full_like(t, y1)]), (0, 1)),
            (np.column_stack([x0 + (x1 - x0) * t, np.full_like(t, y0)]), (0, -1)),
        ]:
            slope = np.array([spec["grad"](p) @ normal for p in points])
            assert slope.min() > 0


@pytest.mark.parametrize(
    "spec, pairs, n_x, n_y",
    [(HIMMELBLAU, HIMMELBLAU_PAIRS, 201, 201), (CAMEL, CAMEL_PAIRS, 241, 161)],
    ids=["himmelblau", "camel"],
)
def test_regular_grid(spec, pairs, n_x, n_y):
    expected, lam = expected_bars(spec, pairs)
    assert len(expected) == len(spec["minima"]) - 1  # 3 for Himmelblau, 5 for the camel
    xs, ys = grid(spec["box"], n_x, n_y)
    h = xs[1] - xs[0]
    assert ys[1] - ys[0] == pytest.approx(h)
    X, Y = np.meshgrid(xs, ys, indexing="ij")  # (n_x, n_y)
    values = spec["f"](X, Y)
    points = np.column_stack([X.ravel(), Y.ravel()])  # (n_x * n_y, 2)

    # The nearest grid point to a critical point is at most h / sqrt(2) away, where f
    # differs from the critical value by at most lam * h**2 / 4 (lam: largest Hessian
    # eigenvalue in modulus at the critical points). Grid paths across a saddle add an
    # error of the same order, and lam * h**2 bounds both with room to spare.
    tol = lam * h**2
    # Grid artefacts are far shorter than the shortest true bar, so half of it separates them.
    threshold = 0.5 * (expected[:, 1] - expected[:, 0]).min()
    assert tol < 0.5 * threshold

    oracle = significant(grid_lower_star_bars(values), threshold)
    np.testing.assert_allclose(oracle, expected, rtol=0, atol=tol)

    # With k = 4 the neighbours of an interior grid point are its four axis neighbours,
    # as in the oracle's graph. Boundary points also get a diagonal neighbour, which no
    # significant bar uses.
    four = significant(barcode_pairs(sample_barcode(points, values.ravel(), k=4)), threshold)
    np.testing.assert_allclose(four, oracle, rtol=0, atol=1e-12)

    # With k = 8 diagonal edges join in; the bars still match the critical values.
    barcode = sample_barcode(points, values.ravel(), k=8)
    eight = significant(barcode_pairs(barcode), threshold)
    np.testing.assert_allclose(eight, expected, rtol=0, atol=tol)
    assert len(barcode.essential_birth) == 1
    assert barcode.essential_birth[0] == pytest.approx(expected[:, 0].min(), abs=tol)


@pytest.mark.parametrize(
    "spec, pairs, n_points, seed",
    [(HIMMELBLAU, HIMMELBLAU_PAIRS, 20000, 0), (HIMMELBLAU, HIMMELBLAU_PAIRS, 20000, 1),
     (CAMEL, CAMEL_PAIRS, 20000, 0), (CAMEL, CAMEL_PAIRS, 20000, 1)],
    ids=["himmelblau-0", "himmelblau-1", "camel-0", "camel-1"],
)
def test_random_points(spec, pairs, n_points, seed):
    expected, lam = expected_bars(spec, pairs)
    x0, x1, y0, y1 = spec["box"]
    rng = np.random.default_rng(seed)
    points = np.column_stack([rng.uniform(x0, x1, n_points), rng.uniform(y0, y1, n_points)])
    values = spec["f"](points[:, 0], points[:, 1])
    # With few neighbours, a point on a steep slope can have all of them uphill and start
    # a spurious bar of length about |grad f| * spacing. With k = 8 these samples give
    # such bars longer than the shortest true bar; with k = 24 they give none.
    barcode = sample_barcode(points, values, k=24)

    # The sample nearest a critical point is about one mean spacing s away, so values
    # there are off by about lam * s**2.
    spacing = np.sqrt((x1 - x0) * (y1 - y0) / n_points)
    tol = lam * spacing**2
    threshold = 0.5 * (expected[:, 1] - expected[:, 0]).min()
    assert tol < 0.5 * threshold
    found = significant(barcode_pairs(barcode), threshold)
    assert len(found) == len(spec["minima"]) - 1
    np.testing.assert_allclose(found, expected, rtol=0, atol=tol)
    assert len(barcode.essential_birth) == 1
    # Each significant bar is born at a sample near one of the minima.
    for vertex in barcode.birth_vertex[barcode.lengths > threshold]:
        nearest = min(np.linalg.norm(points[vertex] - refine_minimum(spec, s)) for s in spec["minima"])
        assert nearest < 10 * spacing


# --- small clouds -------------------------------------------------------------------


def test_one_dimensional_double_well():
    # f(x) = (x^2 - 1)^2 + 0.3 x has minima near x = -1 and x = +1. The right one is
    # higher and dies at the local maximum near 0.
    x = np.linspace(-2.0, 2.0, 4001)
    values = (x**2 - 1) ** 2 + 0.3 * x
    barcode = sample_barcode(x[:, None], values, k=2)
    right = optimize.minimize_scalar(lambda t: (t**2 - 1) ** 2 + 0.3 * t, bounds=(0, 2), method="bounded")
    bump = optimize.minimize_scalar(lambda t: -((t**2 - 1) ** 2 + 0.3 * t), bounds=(-0.5, 0.5), method="bounded")
    assert len(barcode.birth) == 1
    assert barcode.birth[0] == pytest.approx(right.fun, abs=1e-5)
    assert barcode.death[0] == pytest.approx(-bump.fun, abs=1e-5)
    assert x[barcode.birth_vertex[0]] == pytest.approx(right.x, abs=2e-3)


def test_single_point_and_k_above_n_points():
    barcode = sample_barcode([[0.0, 0.0]], [3.0])
    assert barcode.birth.size == 0
    np.testing.assert_array_equal(barcode.essential_birth, [3.0])
    # Three points on a line with values 0, 2, 1. With k = 1 the graph is the path, so
    # the minimum at x = 2 dies at 2.0. With k = 50, capped at 2, the graph is complete
    # and its edge 0-2 joins both minima at 1.0 (a zero-length bar).
    points, values = [[0.0], [1.0], [2.0]], [0.0, 2.0, 1.0]
    np.testing.assert_array_equal(barcode_pairs(sample_barcode(points, values, k=1)), [[1.0, 2.0]])
    barcode = sample_barcode(points, values, k=50)
    assert barcode.birth.size == 0
    assert len(barcode.essential_birth) == 1
    barcode = sample_barcode(points, values, k=50, keep_zero_length=True)
    np.testing.assert_array_equal(barcode_pairs(barcode), [[2.0, 2.0], [1.0, 1.0]])  # by vertex


def test_zero_values_are_kept():
    # Two zero-valued minima joined through a point at 1.0.
    barcode = sample_barcode([[0.0], [1.0], [2.0]], [0.0, 1.0, 0.0], k=1)
    np.testing.assert_array_equal(barcode_pairs(barcode), [[0.0, 1.0]])
    np.testing.assert_array_equal(barcode.birth_vertex, [2])  # the smaller index is the elder


def test_duplicate_points_are_joined():
    points = [[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]]
    barcode = sample_barcode(points, [0.0, 1.0, 2.0, 3.0], k=2)
    assert len(barcode.essential_birth) == 1
    np.testing.assert_array_equal(barcode_pairs(barcode), np.empty((0, 2)))


def test_keep_zero_length_is_passed_on():
    barcode = sample_barcode([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0], k=1, keep_zero_length=True)
    np.testing.assert_array_equal(barcode_pairs(barcode), [[1.0, 1.0], [2.0, 2.0]])


# --- invalid input ------------------------------------------------------------------


@pytest.mark.parametrize(
    "points, values, k, match",
    [
        ([[0.0], [1.0], [2.0]], [0.0, 1.0], 2, r"points has 3 rows but values has 2 entries"),
        ([[0.0], [1.0]], [0.0, 1.0, 2.0], 2, r"points has 2 rows but values has 3 entries"),
        ([[0.0, 0.0], [np.nan, 1.0], [2.0, np.inf]], [0.0, 1.0, 2.0], 2,
         r"points has 2 non-finite rows; the first is row 1"),
        ([[0.0], [1.0], [2.0]], [0.0, np.nan, 1.0], 2, r"values has 1 non-finite entries.*index 1"),
        ([[0.0], [1.0], [2.0]], [0.0, 1.0, -np.inf], 2, r"values has 1 non-finite entries.*index 2"),
        ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], 2, r"points must have shape \(n_points, n_dims\); got shape \(3,\)"),
        ([[0.0], [1.0]], [0.0, 1.0], 0, r"k must be a positive integer; got 0"),
        ([[0.0], [1.0]], [0.0, 1.0], -3, r"k must be a positive integer; got -3"),
        ([[0.0], [1.0]], [0.0, 1.0], 2.5, r"k must be a positive integer; got 2.5"),
        ([[0.0], [1.0]], [0.0, 1.0], True, r"k must be a positive integer; got True"),
        (np.empty((0, 2)), [], 2, r"values is empty"),
    ],
)
def test_rejects_bad_input(points, values, k, match):
    with pytest.raises(ValueError, match=match):
        sample_barcode(points, values, k=k)
