"""Low-loss paths between minima and the barcode of the minima they give.

For every pair of minima a path is optimized (all pairs and all path points in one
batched objective call per step), then re-evaluated densely, including points between
the optimized ones. The maximum along the path is the saddle estimate, an upper bound on
the minimax height of the pair. Kruskal's algorithm over these heights, as in
:func:`toscore.graph_barcode`, gives the H0 barcode of the minima.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from .adaptive import pairs_to_refine
from .barcode import Barcode, graph_barcode
from .objectives import value_and_grad

__all__ = ["MinimaBarcode", "minima_barcode", "PATH_METHODS"]

logger = logging.getLogger("toscore")

PATH_METHODS = ("neb", "linear")
_MAX_STEP_FRACTION = 0.1


@dataclass
class MinimaBarcode:
    """Barcode of a set of minima with every path behind it.

    Attributes
    ----------
    minima_values : ndarray of float64, shape (N,)
        Objective value at each minimum.
    pairs : ndarray of int64, shape (M, 2)
        Index pairs ``(i, j)``, ``i < j``, of the M = N(N-1)/2 paths.
    saddle_values : ndarray of float64, shape (M,)
        Maximum of the dense profile of each pair's path: an upper bound on the minimax
        height between the two minima, up to the resolution of the profile.
    paths : list of Tensor
        For each pair, the polyline of shape ``(K_m, D)`` whose profile gave the saddle
        value; row 0 is minimum ``i``, the last row minimum ``j``. On the CPU.
    profile_positions, profile_values : list of ndarray of float64
        For each pair, the positions along the path (fraction of its length, in [0, 1],
        increasing) and objective values of the dense re-evaluation, shape ``(S_m,)``.
        The first and last values are the minima's own values.
    barcode : Barcode
        H0 barcode of the complete graph on the minima with edge values
        ``saddle_values``; vertex ``i`` is minimum ``i``.
    method : str
        Path method, ``"neb"`` or ``"linear"``.
    settings : dict
        Every parameter that determined the paths, plus ``gradient_evaluations``: the
        number of (point, step) gradient evaluations the optimization spent.
    path_status : ndarray of str, shape (M,)
        ``"ok"``; ``"diverged, best finite path kept"`` when the optimization met a NaN
        or inf and the pair falls back to its best finite path; ``"no finite path"``
        when no path of the pair had a finite profile: its saddle value is ``inf`` and
        the pair is left out of the barcode, which never receives a non-finite value.
    """

    minima_values: np.ndarray
    pairs: np.ndarray
    saddle_values: np.ndarray
    paths: list
    profile_positions: list
    profile_values: list
    barcode: Barcode
    method: str
    settings: dict = field(default_factory=dict)
    path_status: np.ndarray | None = None

    @property
    def saddle_matrix(self) -> np.ndarray:
        """Symmetric ``(N, N)`` matrix of saddle values; the diagonal contains the minima values."""
        matrix = np.diag(self.minima_values)
        matrix[self.pairs[:, 0], self.pairs[:, 1]] = self.saddle_values
        matrix[self.pairs[:, 1], self.pairs[:, 0]] = self.saddle_values
        return matrix

    @property
    def segments(self) -> pd.DataFrame:
        """Finite minima segments: one row per non-global minimum.

        Columns: ``minimum`` (index), ``birth`` (its loss), ``death`` (the saddle),
        ``length``, ``saddle_pair`` (the pair of minima whose path contains the saddle) and
        ``merged_into`` (the lower minimum it merges with).
        """
        bars = self.barcode
        return pd.DataFrame(
            {
                "minimum": bars.birth_vertex,
                "birth": bars.birth,
                "death": bars.death,
                "length": bars.lengths,
                "saddle_pair": [tuple(self.pairs[e].tolist()) for e in bars.death_edge],
                "merged_into": bars.merge_vertex,
            }
        )

    def to_score(self, ord: float = 2) -> float:
        """TO-score of the minima barcode; see :func:`toscore.to_score`."""
        return self.barcode.to_score(ord=ord)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for :class:`toscore.artifacts.ArtifactStore`; see :meth:`from_arrays`.

        Ragged per-path data (paths and profiles) is concatenated with a length array.
        """
        arrays = {
            "minima_values": self.minima_values,
            "pairs": self.pairs,
            "saddle_values": self.saddle_values,
            "path_status": np.asarray(self.path_status, dtype=str),
            "path_lengths": np.array([len(p) for p in self.paths]),
            "paths": torch.cat(self.paths).numpy(),
            "profile_lengths": np.array([len(v) for v in self.profile_values]),
            "profile_positions": np.concatenate(self.profile_positions),
            "profile_values": np.concatenate(self.profile_values),
            "method": np.asarray(self.method),
            "settings": np.asarray(json.dumps(self.settings, sort_keys=True)),
        }
        for field_ in dataclasses.fields(Barcode):
            arrays[f"barcode.{field_.name}"] = getattr(self.barcode, field_.name)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "MinimaBarcode":
        """Rebuild a result saved by :meth:`to_arrays`."""
        path_ends = np.cumsum(arrays["path_lengths"])[:-1]
        profile_ends = np.cumsum(arrays["profile_lengths"])[:-1]
        barcode = Barcode(**{field_.name: arrays[f"barcode.{field_.name}"]
                             for field_ in dataclasses.fields(Barcode)})
        return cls(
            minima_values=arrays["minima_values"],
            pairs=arrays["pairs"],
            saddle_values=arrays["saddle_values"],
            paths=list(torch.as_tensor(arrays["paths"]).tensor_split(torch.as_tensor(path_ends))),
            profile_positions=np.split(arrays["profile_positions"], profile_ends),
            profile_values=np.split(arrays["profile_values"], profile_ends),
            barcode=barcode,
            method=str(arrays["method"]),
            settings=json.loads(str(arrays["settings"])),
            path_status=arrays["path_status"],
        )


def minima_barcode(
    objective,
    minima: torch.Tensor,
    method: str = "neb",
    *,
    n_points: int = 8,
    n_steps: int = 200,
    n_insertions: int = 4,
    lr: float = 0.01,
    momentum: float = 0.9,
    spring: float = 1.0,
    climb: bool = True,
    dense: int = 8,
    refine: int = 2,
    pair_selection: str = "all",
    coarse_steps: int | None = None,
    progress: bool = False,
) -> MinimaBarcode:
    """Optimize a path between every pair of minima and build their H0 barcode.

    Parameters
    ----------
    objective : callable
        Maps a ``(P, D)`` tensor to ``(P,)`` values, differentiable with autograd; a
        :class:`toscore.NetworkObjective` or any analytic function.
    minima : Tensor, shape (N, D)
        One flat parameter vector per row, N >= 2.
    method : {"neb", "linear"}, default "neb"
        ``"neb"``: nudged elastic band with a climbing image, started from the straight
        segment, with one point inserted per path after each round where the dense
        profile between two neighbours rises highest. ``"linear"``: the straight
        segment, a baseline.
    n_points : int, default 8
        Points per path at the start, both minima included (>= 3 for NEB).
    n_steps : int, default 200
        NEB steps per round; there are ``n_insertions + 1`` rounds.
    n_insertions : int, default 4
        Points inserted per path, one after each round but the last.
    lr, momentum : float
        Step size and heavy-ball momentum of the NEB update, ``x += lr * v`` with
        ``v = momentum * v + force``.
    spring : float, default 1.0
        Spring constant that keeps neighbouring points evenly spaced, in units of
        objective value per squared parameter distance.
    climb : bool, default True
        From the middle of the first round on, the highest interior point of each path
        climbs to the saddle (gradient along the path reversed, no spring).
    dense : int, default 8
        Evaluations per path segment in the re-evaluation (and the insertion rule).
    refine : int, default 2
        Times the grid is refined around each path's maximum, each time ``dense`` new
        points over the two grid cells next to the current maximum.
    pair_selection : {"all", "adaptive"}, default "all"
        ``"all"`` optimizes every pair fully. ``"adaptive"`` runs ``coarse_steps`` NEB
        steps on every pair, then the full schedule only on pairs that can change the
        barcode: edges of the minimum spanning tree of the current estimates and pairs
        whose estimate, lowered by the largest decrease refinement has brought so far,
        could undercut the tree between their minima; repeated until no such pair is
        left. It saves work when many pairs are far above the tree; it is a heuristic,
        not a guarantee of the all-pairs result.
    coarse_steps : int, optional
        NEB steps of the adaptive coarse pass; default ``n_steps // 4``.
    progress : bool, default False
        Show a progress bar over NEB steps.

    Returns
    -------
    MinimaBarcode

    Raises
    ------
    ValueError
        For fewer than two minima, an unknown method or a non-positive setting.

    Notes
    -----
    Each saddle value is the maximum of the path's profile, an upper bound on the true
    minimax height only up to sampling: a barrier narrower than the dense spacing along
    the final path can be missed, and a poorly converged path overestimates the saddle
    and lengthens bars. For every pair the best path over all rounds (the starting
    straight segment included) is kept, so NEB never reports a higher saddle than the
    straight segment evaluated on the same grid. Barcodes therefore depend on
    ``n_points``, ``dense`` and the optimizer settings; record them with the results
    (``settings``).
    """
    if method not in PATH_METHODS:
        raise ValueError(f"unknown path method {method!r}; expected one of {list(PATH_METHODS)}")
    minima = torch.as_tensor(minima)
    if minima.ndim != 2 or len(minima) < 2:
        raise ValueError(f"minima must have shape (N, D) with N >= 2; got {tuple(minima.shape)}")
    minimum_points = 3 if method == "neb" else 2
    for name, value, least in (("n_points", n_points, minimum_points), ("n_steps", n_steps, 0),
                               ("n_insertions", n_insertions, 0), ("dense", dense, 1),
                               ("refine", refine, 0)):
        if value < least:
            raise ValueError(f"{name} must be >= {least} for method {method!r}; got {value}")
    if pair_selection not in ("all", "adaptive"):
        raise ValueError(f"pair_selection must be 'all' or 'adaptive'; got {pair_selection!r}")
    coarse_steps = max(n_steps // 4, 1) if coarse_steps is None else coarse_steps
    if coarse_steps < 1:
        raise ValueError(f"coarse_steps must be >= 1; got {coarse_steps}")
    settings = dict(method=method, n_points=n_points, n_steps=n_steps, n_insertions=n_insertions,
                    lr=lr, momentum=momentum, spring=spring, climb=climb, dense=dense, refine=refine,
                    pair_selection=pair_selection)
    if pair_selection == "adaptive":
        settings["coarse_steps"] = coarse_steps

    with torch.no_grad():
        end_values = objective(minima).detach()  # (N,)
    not_finite = torch.nonzero(~torch.isfinite(end_values)).flatten().tolist()
    if not_finite:
        raise ValueError(
            f"the objective is not finite at {len(not_finite)} minima (rows {not_finite}); "
            "exclude diverged minima before computing their barcode"
        )
    n_minima = len(minima)
    pairs = torch.combinations(torch.arange(n_minima), r=2)  # (M, 2)
    fractions = torch.linspace(0, 1, n_points, dtype=minima.dtype, device=minima.device)
    starts, ends = minima[pairs[:, 0]], minima[pairs[:, 1]]  # (M, D) each
    paths = starts[:, None] + fractions[None, :, None] * (ends - starts)[:, None]  # (M, K, D)
    paths[:, -1] = ends  # a + 1 * (b - a) can differ from b in the last bit
    values_at_ends = torch.stack([end_values[pairs[:, 0]], end_values[pairs[:, 1]]], dim=1)  # (M, 2)

    diverged = torch.zeros(len(pairs), dtype=torch.bool, device=minima.device)
    best = _Best(len(pairs))
    best.update(paths, *_dense_profile(objective, paths, values_at_ends, dense, refine))
    optimize = functools.partial(
        _optimize_paths, objective, best=best, diverged=diverged, lr=lr, momentum=momentum,
        spring=spring, climb=climb, dense=dense, refine=refine, progress=progress,
    )
    evaluations = 0
    everything = np.arange(len(pairs))
    if method == "neb" and pair_selection == "all":
        _, evaluations = optimize(paths, values_at_ends, everything, n_steps=n_steps,
                                  n_insertions=n_insertions)
    elif method == "neb":
        # Coarse pass on every pair, then full refinement only where the barcode can change.
        coarse, evaluations = optimize(paths, values_at_ends, everything, n_steps=coarse_steps,
                                       n_insertions=0)
        coarse_saddles = best.maxima()
        refined = np.zeros(len(pairs), dtype=bool)
        slack = 0.0
        while True:
            rows = pairs_to_refine(n_minima, pairs.numpy(), best.maxima(), refined, slack)
            if len(rows) == 0:
                break
            index = torch.as_tensor(rows, device=minima.device)
            _, spent = optimize(coarse[index], values_at_ends[index], rows, n_steps=n_steps,
                                n_insertions=n_insertions)
            evaluations += spent
            refined[rows] = True
            decrease = coarse_saddles[refined] - best.maxima()[refined]
            slack = max(slack, float(np.nanmax(np.where(np.isfinite(decrease), decrease, np.nan),
                                               initial=0.0)))
        logger.info("adaptive pairs: refined %d of %d paths (slack %.3g)", refined.sum(),
                    len(pairs), slack)
    settings["gradient_evaluations"] = int(evaluations)

    saddles = best.maxima()
    known = np.isfinite(saddles)
    for m in np.flatnonzero(~known):
        logger.warning("no path between minima %d and %d has a finite loss profile; the pair is "
                       "left out of the barcode", *pairs[m].tolist())
    for m in np.flatnonzero(diverged.cpu().numpy() & known):
        logger.warning("path between minima %d and %d diverged; its best finite version is used",
                       *pairs[m].tolist())
    status = np.where(~known, "no finite path",
                      np.where(diverged.cpu().numpy(), "diverged, best finite path kept", "ok"))
    edge_rows = np.flatnonzero(known)
    barcode = graph_barcode(end_values.double().cpu().numpy(), pairs.numpy()[edge_rows],
                            saddles[edge_rows])
    barcode = _reindex_edges(barcode, edge_rows)
    logger.info("minima barcode (%s): %d minima, TO-score %.4g", method, n_minima, barcode.to_score())
    return MinimaBarcode(
        minima_values=end_values.double().cpu().numpy(),
        pairs=pairs.numpy().astype(np.int64),
        saddle_values=saddles,
        paths=best.paths,
        profile_positions=best.positions,
        profile_values=best.values,
        barcode=barcode,
        method=method,
        settings=settings,
        path_status=status,
    )


def _reindex_edges(barcode: Barcode, edge_rows: np.ndarray) -> Barcode:
    """Map the death edges of a barcode on a subset of pairs back to rows of all pairs."""
    return dataclasses.replace(barcode, death_edge=edge_rows[barcode.death_edge])


def _optimize_paths(objective, paths, values_at_ends, rows, *, best, diverged, n_steps,
                    n_insertions, lr, momentum, spring, climb, dense, refine, progress):
    """Run NEB rounds on the paths of pair rows ``rows``; keep each pair's best path.

    ``paths`` is ``(len(rows), K, D)``. Returns the final paths and the number of
    gradient evaluations (points times steps) spent.
    """
    rounds = n_insertions + 1
    subset_diverged = diverged[torch.as_tensor(rows, device=diverged.device)].clone()
    evaluations = 0
    bar = tqdm(total=rounds * n_steps, desc=f"optimizing {len(rows)} paths", disable=not progress)
    for round_index in range(rounds):
        evaluations += n_steps * paths.shape[0] * (paths.shape[1] - 2)
        # The climbing image starts halfway through the first round, once the band has settled.
        climb_from = None
        if climb:
            climb_from = n_steps // 2 if round_index == 0 else 0
        paths = _neb_round(objective, paths, values_at_ends, n_steps, lr, momentum, spring,
                           climb_from=climb_from, bar=bar, diverged=subset_diverged)
        profile = _dense_profile(objective, paths, values_at_ends, dense, refine)
        best.update(paths, *profile, rows=rows)
        if round_index < rounds - 1:
            paths = _insert_points(paths, *profile)
    bar.close()
    diverged[torch.as_tensor(rows, device=diverged.device)] = subset_diverged
    return paths, evaluations


class _Best:
    """Per pair, the path with the lowest profile maximum seen so far."""

    def __init__(self, n_pairs: int) -> None:
        self.paths = [None] * n_pairs
        self.positions = [None] * n_pairs
        self.values = [None] * n_pairs
        self._maxima = np.full(n_pairs, np.inf)

    def update(self, paths: torch.Tensor, positions: torch.Tensor, values: torch.Tensor,
               rows=None) -> None:
        """Offer the paths of pair ``rows`` (default all pairs, in order) with their profiles."""
        rows = np.arange(len(paths)) if rows is None else np.asarray(rows)
        fractions = _arclength_fractions(paths, positions)  # (len(rows), S)
        values64 = values.double().cpu().numpy()
        maxima = values64.max(axis=1)  # NaN wherever a profile has a NaN
        better = np.isfinite(maxima) & (maxima < self._maxima[rows])
        for i in np.flatnonzero(better):  # bookkeeping on M small arrays
            m = rows[i]
            self._maxima[m] = maxima[i]
            self.paths[m] = paths[i].detach().cpu().clone()
            self.positions[m] = fractions[i]
            self.values[m] = values64[i]

    def maxima(self) -> np.ndarray:
        return self._maxima.copy()


def _neb_round(objective, paths, values_at_ends, n_steps, lr, momentum, spring, climb_from, bar,
               diverged):
    """Run ``n_steps`` NEB updates on the interior points of every path at once.

    ``diverged`` is a ``(M,)`` bool tensor, updated in place: paths that meet a
    non-finite value or gradient are marked there and frozen.
    """
    n_paths, n_points, dim = paths.shape
    paths = paths.clone()
    velocity = torch.zeros_like(paths[:, 1:-1])  # (M, K-2, D)
    for step in range(n_steps):
        interior = paths[:, 1:-1].reshape(-1, dim)  # (M*(K-2), D)
        values, grads = value_and_grad(objective, interior)
        values = values.reshape(n_paths, n_points - 2)
        grads = grads.reshape(n_paths, n_points - 2, dim)

        # A path that meets a NaN or inf stops moving; its best finite version is kept.
        broken = ~torch.isfinite(values).all(dim=1) | ~torch.isfinite(grads).flatten(1).all(dim=1)  # (M,)
        diverged |= broken
        values = values.masked_fill(diverged[:, None], 0.0)
        grads = grads.masked_fill(diverged[:, None, None], 0.0)
        all_values = torch.cat([values_at_ends[:, :1], values, values_at_ends[:, 1:]], dim=1)  # (M, K)

        # Tangent at each interior point, and the spring and perpendicular forces.
        tangent, forward_length, backward_length = _tangents(paths, all_values)
        along = (grads * tangent).sum(-1, keepdim=True)  # (M, K-2, 1)
        force = -(grads - along * tangent) + spring * (forward_length - backward_length) * tangent

        # The climbing image follows the gradient with its component along the path reversed.
        if climb_from is not None and step >= climb_from:
            top = values.argmax(dim=1)  # (M,)
            rows = torch.arange(n_paths, device=paths.device)
            force[rows, top] = -grads[rows, top] + 2 * along[rows, top] * tangent[rows, top]

        # Heavy-ball step, capped per point at a tenth of the path's mean spacing so that
        # a step size too large for a stiff direction cannot fling points off the path.
        force.masked_fill_(diverged[:, None, None], 0.0)
        velocity.masked_fill_(diverged[:, None, None], 0.0)
        velocity.mul_(momentum).add_(force)
        step_vectors = lr * velocity  # (M, K-2, D)
        spacing = (paths[:, 1:] - paths[:, :-1]).norm(dim=-1).mean(dim=1)  # (M,)
        cap = (_MAX_STEP_FRACTION * spacing)[:, None, None]
        norms = step_vectors.norm(dim=-1, keepdim=True)
        paths[:, 1:-1] += step_vectors * torch.clamp(cap / norms.clamp_min(1e-30), max=1.0)
        bar.update(1)
    return paths


def _tangents(paths, values):
    """Upwind tangents of the interior points (Henkelman and Jonsson, 2000).

    Returns the unit tangents ``(M, K-2, D)`` and the lengths of the forward and
    backward segments ``(M, K-2, 1)``.
    """
    forward = paths[:, 2:] - paths[:, 1:-1]  # (M, K-2, D)
    backward = paths[:, 1:-1] - paths[:, :-2]
    v_prev, v_here, v_next = values[:, :-2], values[:, 1:-1], values[:, 2:]  # (M, K-2) each
    rise_next, rise_prev = v_next - v_here, v_prev - v_here
    big = torch.maximum(rise_next.abs(), rise_prev.abs())[..., None]
    small = torch.minimum(rise_next.abs(), rise_prev.abs())[..., None]
    next_higher = (v_next > v_prev)[..., None]
    mixed = torch.where(next_higher, forward * big + backward * small, forward * small + backward * big)
    uphill = ((v_next > v_here) & (v_here > v_prev))[..., None]
    downhill = ((v_next < v_here) & (v_here < v_prev))[..., None]
    tangent = torch.where(uphill, forward, torch.where(downhill, backward, mixed))
    tangent = tangent / tangent.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return tangent, forward.norm(dim=-1, keepdim=True), backward.norm(dim=-1, keepdim=True)


def _dense_profile(objective, paths, values_at_ends, dense, refine):
    """Evaluate every path on a grid of ``dense`` points per segment, refined at its maximum.

    Positions ``u`` run from 0 to K-1 along each polyline: segment ``floor(u)`` at
    fraction ``u - floor(u)``. Returns positions and values, both ``(M, S)``, sorted by
    position. The end values are the minima's own values, not re-evaluated.
    """
    n_paths, n_points, _ = paths.shape
    grid = torch.arange((n_points - 1) * dense + 1, device=paths.device, dtype=paths.dtype) / dense
    positions = grid.expand(n_paths, -1)  # (M, S0)
    values = _values_at(objective, paths, positions[:, 1:-1])
    values = torch.cat([values_at_ends[:, :1], values, values_at_ends[:, 1:]], dim=1)

    # Zoom in around each path's maximum: `dense` new points over the neighbouring cells.
    spacing = 1.0 / dense
    for _ in range(refine):
        top = positions.gather(1, values.argmax(dim=1, keepdim=True))  # (M, 1)
        offsets = torch.linspace(-spacing, spacing, dense + 2, device=paths.device, dtype=paths.dtype)[1:-1]
        extra = (top + offsets).clamp(0, n_points - 1)  # (M, dense)
        positions = torch.cat([positions, extra], dim=1)
        extra_values = _values_at(objective, paths, extra)
        # Points clamped onto an end keep the minimum's own value, as the grid's ends do.
        extra_values = torch.where(extra <= 0, values_at_ends[:, :1], extra_values)
        extra_values = torch.where(extra >= n_points - 1, values_at_ends[:, 1:], extra_values)
        values = torch.cat([values, extra_values], dim=1)
        spacing = 2 * spacing / (dense + 1)

    order = positions.argsort(dim=1, stable=True)
    return positions.gather(1, order), values.gather(1, order)


@torch.no_grad()
def _values_at(objective, paths, positions, chunk: int = 4096):
    """Objective values at positions ``(M, S)`` along the polylines ``(M, K, D)``.

    Points are built chunk by chunk so that ``M * S * D`` never has to fit in memory.
    """
    n_paths, n_points, dim = paths.shape
    segment = positions.floor().long().clamp(max=n_points - 2)  # (M, S)
    fraction = (positions - segment).reshape(-1, 1)  # (M*S, 1)
    path_index = torch.arange(n_paths, device=paths.device).repeat_interleave(positions.shape[1])
    segment = segment.reshape(-1)
    values = []
    for start in range(0, len(segment), chunk):
        rows = slice(start, start + chunk)
        a = paths[path_index[rows], segment[rows]]  # (chunk, D)
        b = paths[path_index[rows], segment[rows] + 1]
        values.append(objective(a + fraction[rows] * (b - a)).detach())
    return torch.cat(values).reshape(positions.shape)


def _insert_points(paths, positions, values):
    """Insert one point per path where the profile rises highest above its two neighbours.

    The new point goes to the position of the profile maximum inside the segment whose
    maximum exceeds the larger of its endpoint values the most. Returns ``(M, K+1, D)``.
    """
    n_paths, n_points, dim = paths.shape
    segment = positions.floor().long().clamp(max=n_points - 2)  # (M, S)
    on_vertex = positions == positions.round()
    interior_values = torch.where(on_vertex, torch.full_like(values, -torch.inf), values)
    excess = torch.full((n_paths, n_points - 1), -torch.inf, dtype=values.dtype, device=values.device)
    excess = excess.scatter_reduce(1, segment, interior_values, reduce="amax")  # (M, K-1)
    vertex_index = torch.where(on_vertex, positions.round().long(), 0)  # (M, S)
    vertex_values = torch.full_like(excess[:, :1], -torch.inf).expand(-1, n_points).clone()
    vertex_values = vertex_values.scatter_reduce(
        1, vertex_index, torch.where(on_vertex, values, torch.full_like(values, -torch.inf)), reduce="amax"
    )  # (M, K)
    excess = excess - torch.maximum(vertex_values[:, :-1], vertex_values[:, 1:])
    chosen = excess.argmax(dim=1)  # (M,)

    # Position of the highest evaluated point inside the chosen segment.
    in_chosen = (segment == chosen[:, None]) & ~on_vertex
    candidate = torch.where(in_chosen, values, torch.full_like(values, -torch.inf))
    where = positions.gather(1, candidate.argmax(dim=1, keepdim=True)).squeeze(1)  # (M,)
    fraction = (where - chosen).clamp(0.0, 1.0)[:, None]

    rows = torch.arange(n_paths, device=paths.device)
    new_point = paths[rows, chosen] + fraction * (paths[rows, chosen + 1] - paths[rows, chosen])
    grown = torch.empty(n_paths, n_points + 1, dim, dtype=paths.dtype, device=paths.device)
    index = torch.arange(n_points + 1, device=paths.device)[None, :]  # (1, K+1)
    source = torch.where(index <= chosen[:, None], index, index - 1)  # (M, K+1)
    grown[:] = paths.gather(1, source[..., None].expand(-1, -1, dim))
    grown[rows, chosen + 1] = new_point
    return grown


def _arclength_fractions(paths, positions) -> np.ndarray:
    """Convert positions ``u`` along polylines to fractions of their length, ``(M, S)``."""
    lengths = (paths[:, 1:] - paths[:, :-1]).norm(dim=-1).double()  # (M, K-1)
    cumulative = torch.cat([torch.zeros_like(lengths[:, :1]), lengths.cumsum(dim=1)], dim=1)  # (M, K)
    n_points = paths.shape[1]
    segment = positions.floor().long().clamp(max=n_points - 2)
    fraction = positions.double() - segment
    along = cumulative.gather(1, segment) + fraction * lengths.gather(1, segment)
    total = cumulative[:, -1:].clamp_min(1e-300)
    return (along / total).cpu().numpy()
