"""Tests of toscore.toy: benchmark functions, minimum search, planes and barcode comparison."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from toscore import NetworkObjective, build_model, graph_barcode, minima_barcode
from toscore.barcode import Barcode
from toscore.toy import (
    bounding_box,
    compare_algorithms,
    compare_barcodes,
    find_minima,
    himmelblau,
    mueller_brown,
    plane_basis,
    plane_objective,
    saddle_points,
    sample_grid,
    sample_random,
    sampling_error_bound,
    six_hump_camel,
    toy_function,
    toy_names,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors here are tiny: thread hand-offs would dominate the runtime."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tensor(points):
    return torch.tensor(points, dtype=torch.float64).reshape(-1, 2)


# --- benchmark functions --------------------------------------------------------------

# Himmelblau's minima as listed on Wikipedia's page for the function (value 0).
HIMMELBLAU_MINIMA = [(3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)]
# Mueller-Brown critical points and energies from Mueller and Brown (1979), in the
# potential's own units (toscore divides by 100): minima A, B, C and saddles.
MUELLER_BROWN_MINIMA = [((-0.558, 1.442), -146.70), ((0.623, 0.028), -108.17), ((-0.050, 0.467), -80.77)]
MUELLER_BROWN_SADDLES = [((-0.822, 0.624), -40.66), ((0.212, 0.293), -72.25)]


def test_himmelblau_is_zero_at_its_four_minima():
    values = himmelblau(_tensor(HIMMELBLAU_MINIMA))
    assert values[0].item() == 0.0
    # The other three are given to six decimals; the gradient there is O(1e-5).
    np.testing.assert_allclose(values.numpy(), 0.0, atol=1e-9)


def test_himmelblau_by_hand():
    # (1, 1): (1 + 1 - 11)^2 + (1 + 1 - 7)^2 = 81 + 25.
    assert himmelblau(_tensor([1.0, 1.0])).item() == 106.0


@pytest.mark.parametrize("point", [(0.0898, -0.7126), (-0.0898, 0.7126)])
def test_six_hump_camel_global_minima(point):
    assert six_hump_camel(_tensor(point)).item() == pytest.approx(-1.0316, abs=5e-5)


def test_six_hump_camel_by_hand():
    # (1, 1): (4 - 2.1 + 1/3) * 1 + 1 + (4 - 4) * 1 = 3.2333...
    assert six_hump_camel(_tensor([1.0, 1.0])).item() == pytest.approx(4 - 2.1 + 1 / 3 + 1, abs=1e-12)


@pytest.mark.parametrize("point, energy", MUELLER_BROWN_MINIMA + MUELLER_BROWN_SADDLES)
def test_mueller_brown_literature_energies(point, energy):
    # The literature gives three decimals of the location, so the value agrees to ~0.01.
    assert 100 * mueller_brown(_tensor(point)).item() == pytest.approx(energy, abs=0.02)


@pytest.mark.parametrize("name", toy_names())
def test_gradients_match_finite_differences(name):
    function = toy_function(name)
    (x_low, x_high), (y_low, y_high) = function.domain
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(6, 2, generator=generator, dtype=torch.float64)
    points = points * torch.tensor([x_high - x_low, y_high - y_low], dtype=torch.float64)
    points = (points + torch.tensor([x_low, y_low], dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(function, (points,), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", toy_names())
def test_known_minima_are_stationary(name):
    function = toy_function(name)
    points = _tensor(function.minima).requires_grad_(True)
    values = function(points)
    (grads,) = torch.autograd.grad(values.sum(), points)
    np.testing.assert_allclose(values.detach().numpy(), function.minimum_values, atol=1e-4)
    # Literature coordinates carry 4-6 decimals, so the gradient is small, not zero.
    assert grads.norm(dim=1).max() < 0.05


@pytest.mark.parametrize("name", toy_names())
def test_functions_increase_out_of_their_domain(name):
    # With a positive outward slope everywhere on the boundary, every minimum of the
    # function restricted to the box is interior, so both algorithms see the same minima.
    function = toy_function(name)
    (x0, x1), (y0, y1) = function.domain
    t = torch.linspace(0, 1, 401, dtype=torch.float64)
    sides = [
        (torch.stack([torch.full_like(t, x1), y0 + (y1 - y0) * t], 1), (1.0, 0.0)),
        (torch.stack([torch.full_like(t, x0), y0 + (y1 - y0) * t], 1), (-1.0, 0.0)),
        (torch.stack([x0 + (x1 - x0) * t, torch.full_like(t, y1)], 1), (0.0, 1.0)),
        (torch.stack([x0 + (x1 - x0) * t, torch.full_like(t, y0)], 1), (0.0, -1.0)),
    ]
    for points, normal in sides:
        points = points.requires_grad_(True)
        (grads,) = torch.autograd.grad(function(points).sum(), points)
        assert (grads @ torch.tensor(normal, dtype=torch.float64)).min() > 0


def test_functions_reject_other_shapes():
    with pytest.raises(ValueError, match=r"shape \(P, 2\); got shape \(4, 3\)"):
        himmelblau(torch.zeros(4, 3))


def test_unknown_toy_function_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'himmelblau'"):
        toy_function("himmelblu")


# --- sampling -------------------------------------------------------------------------


def test_sample_grid_layout():
    sample = sample_grid(himmelblau, ((-1.0, 1.0), (0.0, 3.0)), (5, 4))
    assert sample.grid_shape == (4, 5)
    np.testing.assert_allclose(sample.x, np.linspace(-1, 1, 5))
    np.testing.assert_allclose(sample.y, np.linspace(0, 3, 4))
    x, y = sample.x[3], sample.y[2]
    assert sample.image[2, 3] == (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def test_sample_random_in_box_seeded():
    box = ((-1.0, 2.0), (3.0, 4.0))
    first = sample_random(six_hump_camel, box, 500, seed=3)
    second = sample_random(six_hump_camel, box, 500, seed=3)
    np.testing.assert_array_equal(first.points, second.points)
    assert first.points[:, 0].min() >= -1
    assert first.points[:, 0].max() <= 2
    assert first.points[:, 1].min() >= 3
    assert first.points[:, 1].max() <= 4
    with pytest.raises(ValueError, match="not a grid"):
        first.image


@pytest.mark.parametrize("domain", [((1.0, 0.0), (0.0, 1.0)), ((0.0, 1.0),), ((0.0, np.inf), (0.0, 1.0))])
def test_bad_domain(domain):
    with pytest.raises(ValueError, match="domain must be"):
        sample_grid(himmelblau, domain, 5)


def test_bounding_box_by_hand():
    # Extent 4 (x) and 2 (y), centre (1, 1); half side 2 + margin 0.5 * 4.
    box = bounding_box([[-1.0, 0.0], [3.0, 2.0]], margin=0.5)
    assert box == ((-3.0, 5.0), (-3.0, 5.0))


# --- minima ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", toy_names())
def test_find_minima_recovers_the_known_minima(name):
    function = toy_function(name)
    found = find_minima(function, function.domain, n_starts=96, n_steps=300, seed=1)
    known = np.array(function.minima)
    points = found.points.numpy()
    assert len(found) == len(known)
    distances = np.linalg.norm(points[:, None] - known[None], axis=2)  # (found, known)
    assert sorted(distances.argmin(axis=1).tolist()) == list(range(len(known)))
    assert distances.min(axis=1).max() < 2e-4  # the literature rounds to 4-6 decimals
    np.testing.assert_allclose(np.sort(found.values), np.sort(function.minimum_values), atol=1e-4)
    assert np.all(np.diff(found.values) >= 0)
    assert found.hits.sum() + found.n_discarded == found.n_starts == 96
    assert found.grad_norms.max() < 1e-6


def test_find_minima_discards_boundary_minima(caplog):
    # f = (x^2 - 1)^2 + y^2 + x on [-2, 0.5] x [-1, 1]: one interior minimum near
    # x = -1.1; the tilt makes f decrease towards x = 0.5 from the local maximum near
    # 0.27, so the box's right edge carries a minimum of the restriction.
    def tilted(points):
        x, y = points[:, 0], points[:, 1]
        return (x**2 - 1) ** 2 + y**2 + x

    with caplog.at_level(logging.WARNING, logger="toscore"):
        found = find_minima(tilted, ((-2.0, 0.5), (-1.0, 1.0)), n_starts=40, seed=0)
    assert len(found) == 1
    # 4 x^3 - 4 x + 1 = 0 at the interior minimum.
    x = found.points[0, 0].item()
    assert 4 * x**3 - 4 * x + 1 == pytest.approx(0.0, abs=1e-8)
    assert "domain boundary" in caplog.text


def test_find_minima_checks_its_arguments():
    with pytest.raises(ValueError, match="no starts"):
        find_minima(himmelblau, ((-1.0, 1.0), (-1.0, 1.0)), n_starts=0)
    with pytest.raises(ValueError, match="n_trials must be >= 1; got 0"):
        find_minima(himmelblau, ((-1.0, 1.0), (-1.0, 1.0)), n_trials=0)


# --- plane of a network ---------------------------------------------------------------


@pytest.fixture(scope="module")
def network():
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(40, 5, generator=generator)
    targets = torch.randint(0, 3, (40,), generator=generator)
    model = build_model(dict(name="mlp", input_dim=5, depth=1, width=4, n_classes=3))
    objective = NetworkObjective(model, "cross_entropy", (inputs, targets), 1e-3, device="cpu")
    thetas = torch.randn(3, objective.dim, generator=generator)
    return objective, thetas


def test_plane_objective_equals_the_network_objective(network):
    objective, (origin, u, v) = network
    plane = plane_objective(objective, origin, u, v)
    coords = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.3, -2.0], [-1.5, 0.25]], dtype=torch.float64)
    expected = torch.stack([objective((origin + float(a) * u + float(b) * v)[None])[0] for a, b in coords])
    values = plane(coords)
    assert values.dtype == torch.float64
    torch.testing.assert_close(values, expected.double(), rtol=1e-5, atol=1e-6)


def test_plane_gradient_is_the_projected_network_gradient(network):
    objective, (origin, u, v) = network
    plane = plane_objective(objective, origin, u, v)
    coords = torch.tensor([[0.2, 0.7], [-1.0, 0.4]], dtype=torch.float64)
    values, grads = plane.value_and_grad(coords)
    theta = (origin + coords[:, :1].float() * u + coords[:, 1:].float() * v).requires_grad_(True)
    (theta_grads,) = torch.autograd.grad(objective(theta).sum(), theta)
    expected = torch.stack([theta_grads @ u, theta_grads @ v], dim=1)  # directional derivatives
    torch.testing.assert_close(grads, expected.double(), rtol=1e-4, atol=1e-6)
    # Autograd through the call gives the same gradient.
    points = coords.clone().requires_grad_(True)
    (autograd_grads,) = torch.autograd.grad(plane(points).sum(), points)
    torch.testing.assert_close(autograd_grads, grads, rtol=1e-4, atol=1e-6)


def test_plane_basis_is_orthonormal_and_reproduces_the_points(network):
    _, (p0, p1, p2) = network
    origin, u, v, coords = plane_basis(p0, p1, p2)
    assert float(u @ v) == pytest.approx(0.0, abs=1e-6)
    assert float(u.norm()) == pytest.approx(1.0, abs=1e-6)
    assert float(v.norm()) == pytest.approx(1.0, abs=1e-6)
    for point, (a, b) in zip((p0, p1, p2), coords):
        torch.testing.assert_close(origin + a * u + b * v, point, rtol=1e-5, atol=1e-5)
    assert coords[1, 0] == pytest.approx(float((p1 - p0).norm()), rel=1e-6)
    assert coords[1, 1] == 0.0
    assert coords[2, 1] > 0


def test_plane_basis_rejects_collinear_points():
    p0, p1 = torch.zeros(4), torch.ones(4)
    with pytest.raises(ValueError, match="collinear"):
        plane_basis(p0, p1, 3 * p1)


# --- comparing barcodes ---------------------------------------------------------------


def _barcode(births, deaths, essential=(0.0,)):
    n = len(births)
    return Barcode(
        birth=np.asarray(births, dtype=np.float64), death=np.asarray(deaths, dtype=np.float64),
        birth_vertex=np.arange(1, n + 1), death_edge=np.arange(n), merge_vertex=np.zeros(n, np.int64),
        essential_birth=np.asarray(essential, dtype=np.float64), essential_vertex=np.zeros(len(essential), np.int64),
    )


def test_compare_identical_barcodes_in_another_order():
    first = _barcode([0.0, 1.0, 2.0], [5.0, 3.0, 2.5])
    second = _barcode([2.0, 0.0, 1.0], [2.5, 5.0, 3.0])
    table = compare_barcodes(first, second)
    finite = table[~table["essential"]]
    assert len(finite) == 3
    assert finite["matched"].all()
    assert finite["death_difference"].abs().max() == 0.0
    assert finite["birth_difference"].abs().max() == 0.0
    assert finite["length_1"].tolist() == [5.0, 2.0, 0.5]  # longest first


def test_compare_tied_births_pairs_bars_by_death():
    # Himmelblau-like: three bars born at 0; the deaths decide the pairing.
    first = _barcode([0.0, 0.0, 0.0], [13.0, 67.0, 104.0])
    second = _barcode([0.0, 0.0, 0.0], [104.5, 13.1, 67.0])
    table = compare_barcodes(first, second)
    finite = table[~table["essential"]].set_index("death_1")
    assert finite.loc[13.0, "death_2"] == 13.1
    assert finite.loc[67.0, "death_2"] == 67.0
    assert finite.loc[104.0, "death_2"] == 104.5
    assert finite.loc[13.0, "relative_difference"] == pytest.approx(0.1 / 13.0)
    assert finite.loc[104.0, "relative_difference"] == pytest.approx(0.5 / 104.0)


def test_compare_leaves_a_spurious_short_bar_unmatched():
    # The short bar [0.5, 0.6) would cost 3.9 against the second's only bar, half its
    # length (0.05) unmatched; the pair of long bars costs 0.1.
    first = _barcode([0.0, 0.5], [4.0, 0.6])
    second = _barcode([0.1], [4.0])
    table = compare_barcodes(first, second)
    finite = table[~table["essential"]]
    assert len(finite) == 2
    matched = finite[finite["matched"]].iloc[0]
    assert (matched["birth_1"], matched["birth_2"]) == (0.0, 0.1)
    assert matched["relative_difference"] == 0.0
    lonely = finite[~finite["matched"]].iloc[0]
    assert lonely["birth_1"] == 0.5
    assert math.isnan(lonely["birth_2"])
    assert math.isnan(lonely["relative_difference"])
    assert lonely["birth_vertex_2"] == -1


def test_compare_prefers_the_diagonal_to_a_distant_partner():
    # Pairing [0, 10) with [0, 1) costs 9; leaving both unmatched costs 5 + 0.5.
    table = compare_barcodes(_barcode([0.0], [10.0]), _barcode([0.0], [1.0]))
    finite = table[~table["essential"]]
    assert len(finite) == 2
    assert not finite["matched"].any()


def test_compare_essential_bars():
    table = compare_barcodes(_barcode([], [], essential=(-1.0,)), _barcode([], [], essential=(-0.75,)))
    assert len(table) == 1
    row = table.iloc[0]
    assert row["essential"] and row["matched"]
    assert row["birth_difference"] == 0.25
    assert np.isinf(row["death_1"])
    assert np.isinf(row["death_2"])


def test_compare_graph_barcodes_end_to_end():
    # A path graph 0-1-2-3-4 with values 0, 3, 1, 2, 0.5: minima at vertices 0, 2, 4.
    # At 2, vertex 3 joins the basins of 2 and 4, so the bar [1, 2) ends. At 3, vertex 1
    # joins the rest to the global minimum, so [0.5, 3) ends. Lowering vertex 1 to 2.5
    # changes only the second bar, to [0.5, 2.5): a difference of 0.5 / 2.5.
    edges = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    first = graph_barcode([0.0, 3.0, 1.0, 2.0, 0.5], edges)
    second = graph_barcode([0.0, 2.5, 1.0, 2.0, 0.5], edges)
    table = compare_barcodes(first, second)
    finite = table[~table["essential"]].set_index("birth_1")
    assert finite.loc[1.0, "death_1"] == 2.0
    assert finite.loc[1.0, "death_2"] == 2.0
    assert finite.loc[1.0, "relative_difference"] == 0.0
    assert finite.loc[0.5, "death_1"] == 3.0
    assert finite.loc[0.5, "death_2"] == 2.5
    assert finite.loc[0.5, "relative_difference"] == pytest.approx(0.2)


# --- saddles and the sampling bound ---------------------------------------------------


def test_saddle_points_locate_the_path_maximum():
    def double_well(points):  # minima (+-1, 0), saddle (0, 0) of value 1
        x, y = points[:, 0], points[:, 1]
        return (x**2 - 1) ** 2 + 2 * y**2

    minima = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    barcode = minima_barcode(double_well, minima, "linear", n_points=4, dense=8)
    saddles = saddle_points(barcode)
    assert saddles.shape == (1, 2)
    np.testing.assert_allclose(saddles[0], [0.0, 0.0], atol=1e-12)
    assert double_well(torch.as_tensor(saddles)).item() == pytest.approx(barcode.saddle_values[0])


def test_sampling_error_bound_on_a_quadratic_saddle():
    # f = x^2 - y^2 has Hessian diag(2, -2), norm 2. On a grid of spacing h with
    # k = 8, the longest edge at an interior point is the diagonal h * sqrt(2), so the
    # bound is 2 * 2 h^2 / 8 = h^2 / 2.
    def saddle(points):
        return points[:, 0] ** 2 - points[:, 1] ** 2

    sample = sample_grid(saddle, ((-1.0, 1.0), (-1.0, 1.0)), 21)  # h = 0.1
    bound = sampling_error_bound(saddle, sample, 8, [[0.0, 0.0]])
    assert bound["edge_length"].item() == pytest.approx(0.1 * math.sqrt(2), rel=1e-9)
    assert bound["hessian_norm"].item() == pytest.approx(2.0, rel=1e-6)
    assert bound["bound"].item() == pytest.approx(0.005, rel=1e-6)


# --- both algorithms ------------------------------------------------------------------


def test_compare_algorithms_on_mueller_brown():
    function = toy_function("mueller_brown")
    result = compare_algorithms(
        function, function.domain, name="mb", grid_size=121, n_starts=48, descent_steps=200,
        path_settings=dict(method="neb", n_points=6, n_steps=100, n_insertions=2, dense=8),
    )
    assert len(result.minima) == 3
    finite = result.bars[~result.bars["essential"]].sort_values("death_2")
    # Algorithm 2's deaths are the two literature saddle energies (divided by 100).
    np.testing.assert_allclose(finite["death_2"], [-0.7225, -0.4066], atol=5e-4)
    assert result.agrees
    assert finite["matched"].all()
    assert finite["within_tolerance"].all()
    assert result.max_relative_difference == pytest.approx(finite["relative_difference"].max())
    assert result.max_relative_difference < 0.02
    layers = result.figure_layers()
    assert layers["highlight"].sum() == 2
    assert len(layers["saddles"]) == 2
    assert layers["row_labels"][-1] == "min 0"  # the essential bar: the global minimum
