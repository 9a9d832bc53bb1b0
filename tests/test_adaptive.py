"""Adaptive pair selection: bottleneck distances and which paths to refine."""

import itertools

import numpy as np
import pytest
import torch

from toscore import minima_barcode
from toscore.adaptive import minimax_matrix, pairs_to_refine


def _brute_force_minimax(n, pairs, values):
    """Minimum over every simple path of its maximum edge, by enumerating vertex orders."""
    weight = {}
    for (a, b), value in zip(pairs.tolist(), values):
        weight[(a, b)] = weight[(b, a)] = min(value, weight.get((a, b), np.inf))
    result = np.full((n, n), np.inf)
    np.fill_diagonal(result, 0.0)
    for a, b in itertools.permutations(range(n), 2):
        others = [v for v in range(n) if v not in (a, b)]
        for length in range(len(others) + 1):
            for middle in itertools.permutations(others, length):
                route = (a, *middle, b)
                top = max(weight.get(edge, np.inf) for edge in zip(route, route[1:]))
                result[a, b] = min(result[a, b], top)
    return result


@pytest.mark.parametrize("seed", range(5))
def test_minimax_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 5
    pairs = np.array(list(itertools.combinations(range(n), 2)))
    values = rng.integers(0, 6, len(pairs)).astype(float)  # ties on purpose
    values[rng.random(len(pairs)) < 0.3] = np.inf
    np.testing.assert_array_equal(minimax_matrix(n, pairs, values), _brute_force_minimax(n, pairs, values))


def test_pairs_to_refine_by_hand():
    # Triangle 0-1-2 with a far fourth minimum 3.
    pairs = np.array([[0, 1], [0, 2], [1, 2], [0, 3], [1, 3], [2, 3]])
    upper = np.array([1.0, 2.0, 5.0, 3.0, 3.5, 9.0])
    none = np.zeros(len(pairs), bool)
    # Slack 0: exactly the spanning-tree edges 0-1, 0-2, 0-3.
    assert pairs_to_refine(4, pairs, upper, none, 0.0).tolist() == [0, 1, 3]
    # Slack 0.6: pair 1-3 (3.5 - 0.6 <= 3.0) could undercut the tree edge 0-3; 1-2 cannot.
    assert pairs_to_refine(4, pairs, upper, none, 0.6).tolist() == [0, 1, 3, 4]
    # Refined pairs are never returned again; unknown pairs never.
    refined = np.array([True, True, False, True, False, False])
    assert pairs_to_refine(4, pairs, upper, refined, 0.6).tolist() == [4]
    upper_unknown = upper.copy()
    upper_unknown[4] = np.inf
    assert pairs_to_refine(4, pairs, upper_unknown, refined, 100.0).tolist() == [2, 5]


def _wells(theta):
    """Six Gaussian wells of different depths on a quadratic bowl (float64)."""
    centers = torch.tensor([[-2.0, -1.0], [0.0, -1.5], [2.0, -1.0], [-2.0, 1.2], [0.2, 1.5], [2.2, 1.0]],
                           dtype=theta.dtype)
    depths = torch.tensor([1.0, 1.4, 0.9, 1.2, 0.8, 1.1], dtype=theta.dtype)
    squared = ((theta[:, None, :] - centers[None]) ** 2).sum(-1)  # (P, 6)
    return 0.05 * (theta**2).sum(-1) - (depths * torch.exp(-squared / 0.8)).sum(-1)


def _local_minima():
    starts = torch.tensor([[-2.0, -1.0], [0.0, -1.5], [2.0, -1.0], [-2.0, 1.2], [0.2, 1.5], [2.2, 1.0]],
                          dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([starts], max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        value = _wells(starts).sum()
        value.backward()
        return value

    optimizer.step(closure)
    return starts.detach()


def test_adaptive_matches_all_pairs_with_fewer_evaluations():
    minima = _local_minima()
    settings = dict(n_points=6, n_steps=200, n_insertions=2, lr=0.02)
    full = minima_barcode(_wells, minima, "neb", **settings)
    adaptive = minima_barcode(_wells, minima, "neb", pair_selection="adaptive", **settings)

    np.testing.assert_array_equal(np.sort(adaptive.barcode.birth), np.sort(full.barcode.birth))
    np.testing.assert_allclose(np.sort(adaptive.barcode.death), np.sort(full.barcode.death), atol=1e-3)
    assert adaptive.settings["gradient_evaluations"] < full.settings["gradient_evaluations"]
    # Every pair still has an upper bound, refined or coarse.
    assert np.all(adaptive.saddle_values >= full.saddle_values - 1e-3)


def test_unknown_pair_selection_is_rejected():
    minima = torch.zeros(2, 2, dtype=torch.float64)
    minima[1, 0] = 1.0
    with pytest.raises(ValueError, match="pair_selection must be 'all' or 'adaptive'; got 'some'"):
        minima_barcode(_wells, minima, "neb", pair_selection="some")
