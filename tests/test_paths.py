"""Tests of toscore.paths: saddles of analytic landscapes known by hand, and network paths."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import vector_to_parameters

from toscore import NetworkObjective, build_model, graph_barcode, load_dataset, minima_barcode, train_minima

# Short NEB runs that still converge on the analytic landscapes below.
NEB = dict(n_points=5, n_steps=100, n_insertions=1)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors here are tiny: thread hand-offs would dominate the runtime."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _bent_valley(b, c):
    """f(x, y) = (x^2 - 1)^2 + b (y - c (1 - x^2))^2.

    Minima (+-1, 0) with value 0. The valley floor y = c (1 - x^2) carries (x^2 - 1)^2,
    and every path between the minima crosses x = 0 where f >= 1: the minimax height is
    exactly 1, at (0, c). The straight segment y = 0 peaks at 1 + b c^2 at x = 0.
    """

    def objective(theta):
        x, y = theta[:, 0], theta[:, 1]
        return (x**2 - 1) ** 2 + b * (y - c * (1 - x**2)) ** 2

    return objective


@pytest.mark.parametrize("b, c", [(1.0, 1.0), (2.0, 0.5)])
def test_neb_finds_bent_saddle(b, c):
    objective = _bent_valley(b, c)
    minima = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    neb = minima_barcode(objective, minima, "neb", **NEB)
    linear = minima_barcode(objective, minima, "linear", n_points=NEB["n_points"])

    assert neb.saddle_values[0] == pytest.approx(1.0, rel=0.01)
    assert linear.saddle_values[0] == pytest.approx(1 + b * c**2, abs=1e-9)
    assert linear.saddle_values[0] >= neb.saddle_values[0]
    # The climbing image sits on the saddle point (0, c).
    distances = (neb.paths[0] - torch.tensor([0.0, c], dtype=torch.float64)).norm(dim=1)
    assert distances.min() < 0.05
    assert neb.barcode.death == pytest.approx([neb.saddle_values[0]])


# A tilted triple well along x, with a valley floor that bends in y:
# f(x, y) = g(x) + B (y - C sin(pi x / 2))^2 with g(x) = x^6/6 - 5 x^4/4 + 2 x^2 + T x.
# The five real roots of g'(x) = x^5 - 5 x^3 + 4 x + T alternate minimum and maximum. Along
# the floor f = g, and every path from one minimum to another crosses each maximum of g in
# between, so the minimax height of a pair is the highest maximum of g between them.
TILT, B, C = 0.3, 1.0, 0.5


def _triple_well(theta):
    x, y = theta[:, 0], theta[:, 1]
    g = x**6 / 6 - 5 * x**4 / 4 + 2 * x**2 + TILT * x
    return g + B * (y - C * torch.sin(torch.pi * x / 2)) ** 2


def _triple_well_critical_points():
    roots = np.roots([1.0, 0.0, -5.0, 0.0, 4.0, TILT])
    assert np.all(np.abs(roots.imag) < 1e-12)
    roots = np.sort(roots.real)
    curvature = 5 * roots**4 - 15 * roots**2 + 4  # g''
    assert np.all(curvature[::2] > 0)
    assert np.all(curvature[1::2] < 0)
    g = roots**6 / 6 - 5 * roots**4 / 4 + 2 * roots**2 + TILT * roots
    return roots[::2], g[::2], g[1::2]  # minima x, minima values, maxima values


@pytest.fixture(scope="module")
def triple_well():
    x_minima, _, _ = _triple_well_critical_points()
    minima = torch.tensor(np.stack([x_minima, C * np.sin(np.pi * x_minima / 2)], axis=1))  # (3, 2)
    return minima, minima_barcode(_triple_well, minima, "neb", **NEB)


def test_three_minima_barcode(triple_well):
    minima, result = triple_well
    _, minimum_values, maximum_values = _triple_well_critical_points()
    left, right = maximum_values
    # Minima in x order: 0 (deepest), 1 (middle), 2. Minimax heights of the pairs:
    true_saddles = {(0, 1): left, (1, 2): right, (0, 2): max(left, right)}
    assert minimum_values[0] < minimum_values[2] < minimum_values[1]
    assert left < right

    # Elder rule by hand: minimum 1 dies at the left maximum when it meets the basin of 0.
    # Minimum 2 dies at the lowest pass out of its basin, the right maximum.
    expected = {1: (minimum_values[1], left), 2: (minimum_values[2], right)}
    bars = result.barcode
    assert sorted(bars.birth_vertex.tolist()) == [1, 2]
    assert bars.essential_vertex.tolist() == [0]
    for vertex, birth, death in zip(bars.birth_vertex, bars.birth, bars.death):
        expected_birth, expected_death = expected[vertex]
        assert birth == _triple_well(minima[vertex:vertex + 1]).item()  # exact
        assert birth == pytest.approx(expected_birth, abs=1e-12)
        assert death == pytest.approx(expected_death, rel=0.01)
        assert death - birth == pytest.approx(expected_death - expected_birth, rel=0.01)

    # Every saddle estimate is an upper bound on the minimax height, up to sampling.
    for (i, j), saddle in zip(result.pairs.tolist(), result.saddle_values):
        assert saddle >= true_saddles[(i, j)] - 1e-5
        assert saddle == pytest.approx(true_saddles[(i, j)], rel=0.01)

    # The straight segments cut across the bends and miss by more than the tolerance.
    linear = minima_barcode(_triple_well, minima, "linear", n_points=NEB["n_points"])
    assert np.all(linear.saddle_values >= result.saddle_values)
    assert linear.to_score() > 1.01 * result.to_score()


def test_minima_barcode_attributes(triple_well):
    minima, result = triple_well
    n = len(minima)
    assert result.pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
    assert result.method == "neb"
    assert result.settings["n_points"] == NEB["n_points"]
    np.testing.assert_array_equal(result.minima_values, _triple_well(minima).numpy())

    matrix = result.saddle_matrix
    assert matrix.shape == (n, n)
    np.testing.assert_array_equal(matrix, matrix.T)
    np.testing.assert_array_equal(np.diag(matrix), result.minima_values)
    for (i, j), saddle in zip(result.pairs, result.saddle_values):
        assert matrix[i, j] == saddle

    expected = graph_barcode(result.minima_values, result.pairs, result.saddle_values)
    for name in ("birth", "death", "birth_vertex", "death_edge", "merge_vertex",
                 "essential_birth", "essential_vertex"):
        np.testing.assert_array_equal(getattr(result.barcode, name), getattr(expected, name))

    lengths = expected.death - expected.birth
    assert result.to_score() == pytest.approx(np.linalg.norm(lengths), rel=1e-15)
    assert result.to_score(ord=1) == pytest.approx(np.abs(lengths).sum(), rel=1e-15)

    segments = result.segments
    assert list(segments.columns) == ["minimum", "birth", "death", "length", "saddle_pair", "merged_into"]
    assert len(segments) == n - 1
    np.testing.assert_allclose(segments["length"], segments["death"] - segments["birth"], rtol=1e-15)
    for row in segments.itertuples():
        pair_row = result.pairs.tolist().index(list(row.saddle_pair))
        assert result.saddle_values[pair_row] == row.death
        assert row.merged_into == 0  # the global minimum


def _assert_paths_end_at_minima(result, minima, objective, **tolerance):
    for m, (i, j) in enumerate(result.pairs.tolist()):
        path, positions, values = result.paths[m], result.profile_positions[m], result.profile_values[m]
        assert path.ndim == 2
        assert path.shape[1] == minima.shape[1]
        assert torch.equal(path[0], minima[i].cpu())
        assert torch.equal(path[-1], minima[j].cpu())
        assert positions[0] == 0.0
        assert positions[-1] == 1.0
        assert np.all(np.diff(positions) >= 0)
        assert len(positions) == len(values)
        with torch.no_grad():
            start = objective(minima[i:i + 1]).double().item()
            end = objective(minima[j:j + 1]).double().item()
        assert values[0] == pytest.approx(start, **tolerance)
        assert values[-1] == pytest.approx(end, **tolerance)
        assert result.saddle_values[m] == values.max()


def test_paths_end_at_minima(triple_well):
    minima, result = triple_well
    _assert_paths_end_at_minima(result, minima, _triple_well, rel=0, abs=0)


@pytest.mark.parametrize("method", ["linear", "neb"])
def test_profile_ends_with_maximum_at_end(method):
    # Points on a ramp, not minima: every straight segment peaks at its higher end, where
    # the refinement lands. The reported end values must still be the minima's own.
    weights = torch.randn(50, generator=torch.Generator().manual_seed(0))

    def ramp(theta):
        return 1.2345 * (theta * weights).sum(dim=1)

    minima = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))  # float32
    settings = dict(n_points=3) if method == "linear" else dict(n_points=3, n_steps=3, n_insertions=0)
    result = minima_barcode(ramp, minima, method, **settings)
    _assert_paths_end_at_minima(result, minima, ramp, rel=0, abs=0)


def test_narrow_barrier_found():
    # Smooth valley plus a Gaussian bump on the segment between the minima (-1, 0) and
    # (1, 0). The bump's full width at half maximum, 0.35, is below the spacing of the
    # optimized points (2 or 1 for n_points=2 or 3) and above the dense spacing (0.25 or
    # 0.125 with dense=8). Its centre lies halfway between two points of the finer grid.
    height, centre, width = 5.0, -0.4375, 0.15

    def objective(theta):
        x, y = theta[:, 0], theta[:, 1]
        bump = height * torch.exp(-((x - centre) ** 2 + y**2) / (2 * width**2))
        return (x**2 - 1) ** 2 + y**2 + bump

    minima = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    line = torch.linspace(-1, 1, 400_001, dtype=torch.float64)
    on_line = objective(torch.stack([line, torch.zeros_like(line)], dim=1))
    true_maximum = on_line.max().item()
    coarse = objective(torch.stack([torch.linspace(-1, 1, 17, dtype=torch.float64), torch.zeros(17)], dim=1))
    assert coarse.max().item() < 0.95 * true_maximum  # the plain dense grid alone misses it

    for n_points in (2, 3):
        result = minima_barcode(objective, minima, "linear", n_points=n_points, dense=8)
        assert result.saddle_values[0] >= 0.99 * true_maximum
        assert result.saddle_values[0] <= true_maximum + 1e-12


@pytest.fixture(scope="module")
def network_minima():
    digits = load_dataset("digits")
    train = (digits.train_x[:120], digits.train_y[:120])
    torch.manual_seed(0)
    model = build_model(dict(name="mlp", input_dim=64, depth=1, width=4, n_classes=10))
    minima = train_minima(model, train, seeds=[0, 1, 2], epochs=3, batch_size=32, lr=0.1, device="cpu")
    return model, train, minima


def test_network_path_ends_reproduce_networks(network_minima):
    model, train, minima = network_minima
    objective = NetworkObjective(model, "cross_entropy", train, weight_decay=0.0, device="cpu")
    settings = dict(n_points=4, dense=4)
    neb = minima_barcode(objective, minima.parameters, "neb", n_steps=20, n_insertions=1, lr=0.05, **settings)
    linear = minima_barcode(objective, minima.parameters, "linear", **settings)

    np.testing.assert_allclose(neb.minima_values, minima.table["train_loss"], rtol=1e-5)
    for result in (neb, linear):
        _assert_paths_end_at_minima(result, minima.parameters, objective, rel=1e-6)
        for m, (i, j) in enumerate(result.pairs.tolist()):
            for end, k in ((result.paths[m][0], i), (result.paths[m][-1], j)):
                net = copy.deepcopy(model)
                vector_to_parameters(end.clone(), net.parameters())
                with torch.no_grad():
                    loss = F.cross_entropy(net(train[0]), train[1]).item()
                assert loss == pytest.approx(minima.table["train_loss"][k], rel=1e-5)
    assert np.all(neb.saddle_values <= linear.saddle_values)
    assert np.all(neb.saddle_values >= np.maximum(*neb.minima_values[neb.pairs.T]))


@pytest.mark.parametrize(
    "minima, settings, message",
    [
        (torch.zeros(1, 2), {}, r"minima must have shape \(N, D\) with N >= 2; got \(1, 2\)"),
        (torch.zeros(3), {}, r"minima must have shape \(N, D\) with N >= 2; got \(3,\)"),
        (torch.zeros(2, 2), dict(method="dijkstra"), r"unknown path method 'dijkstra'.*'neb', 'linear'"),
        (torch.zeros(2, 2), dict(n_points=2), r"n_points must be >= 3 for method 'neb'; got 2"),
        (torch.zeros(2, 2), dict(method="linear", n_points=1), r"n_points must be >= 2 for method 'linear'"),
        (torch.zeros(2, 2), dict(dense=0), r"dense must be >= 1 for method 'neb'; got 0"),
        (torch.zeros(2, 2), dict(refine=-1), r"refine must be >= 0"),
    ],
)
def test_bad_inputs_raise(minima, settings, message):
    with pytest.raises(ValueError, match=message):
        minima_barcode(_bent_valley(1.0, 1.0), minima, **settings)


def _bent_valley(b=5.0, c=1.0):
    def f(theta):
        x, y = theta[:, 0], theta[:, 1]
        return (x**2 - 1) ** 2 + b * (y - c * (1 - x**2)) ** 2

    return f


def test_diverging_path_falls_back_to_best_finite_path():
    valley = _bent_valley()

    def poisoned(theta):
        # NaN above y = 0.3: the straight segment (y = 0) is finite, the bent MEP is not.
        values = valley(theta)
        return torch.where(theta[:, 1] > 0.3, torch.full_like(values, float("nan")), values)

    minima = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    linear = minima_barcode(valley, minima, "linear")
    result = minima_barcode(poisoned, minima, "neb", n_steps=100, n_insertions=1, lr=0.01)

    assert result.path_status.tolist() == ["diverged, best finite path kept"]
    assert np.isfinite(result.saddle_values).all()
    assert np.isfinite(result.profile_values[0]).all()
    assert 1.0 <= result.saddle_values[0] <= linear.saddle_values[0] + 1e-12
    assert np.isfinite(result.barcode.death).all()


def test_pair_without_finite_path_is_left_out():
    valley = _bent_valley()

    def walled(theta):
        # A NaN wall at |x| < 0.05 separates the two minima for every path.
        values = valley(theta)
        return torch.where(theta[:, 0].abs() < 0.05, torch.full_like(values, float("nan")), values)

    minima = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [1.2, 0.1]], dtype=torch.float64)
    result = minima_barcode(walled, minima, "neb", n_steps=20, n_insertions=1, lr=0.01)

    status = dict(zip(map(tuple, result.pairs.tolist()), result.path_status.tolist()))
    assert status[(0, 1)] == "no finite path"
    assert status[(0, 2)] == "no finite path"
    assert status[(1, 2)] != "no finite path"
    assert np.isinf(result.saddle_values[[0, 1]]).all()
    # Two components: the left minimum alone, and the right pair joined by a finite path.
    # Point 2 lies on the slope of minimum 1's basin, so the path from it only descends
    # and its bar has length zero (dropped).
    assert len(result.barcode.essential_birth) == 2
    assert len(result.barcode.birth) == 0
    assert result.saddle_values[2] == pytest.approx(result.minima_values[2], rel=1e-12)


def test_non_finite_minimum_is_rejected():
    valley = _bent_valley()
    minima = torch.tensor([[-1.0, 0.0], [float("nan"), 0.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"not finite at 1 minima \(rows \[1\]\)"):
        minima_barcode(valley, minima, "linear")
