"""Two-dimensional test landscapes on which both barcode algorithms apply.

Algorithm 1 (:func:`toscore.sample_barcode`) samples a function on a point cloud;
algorithm 2 (:func:`toscore.minima_barcode`) needs only the local minima and optimized
paths between them. On a 2-D function both run, and algorithm 1 on a fine grid serves
as the reference for algorithm 2 (Barannikov et al., arXiv:2012.15834; the point-cloud
algorithm is from arXiv:1912.00043).

This module contains the pieces of that comparison:

- analytic benchmark functions as objectives, ``(P, 2) -> (P,)`` torch callables, each
  with a domain box on whose boundary it increases outwards (:func:`toy_function`);
- a 2-D slice of a network's loss, ``theta = origin + a u + b v``
  (:func:`plane_objective`, :func:`plane_basis`);
- sampling on a grid or at random points (:func:`sample_grid`, :func:`sample_random`);
- the local minima by batched descent from many starts (:func:`find_minima`);
- bar-by-bar comparison of two barcodes (:func:`compare_barcodes`), the location of
  each path's highest point (:func:`saddle_points`), and the sampling error of the
  point-cloud algorithm (:func:`sampling_error_bound`);
- both algorithms on one function with their comparison (:func:`compare_algorithms`).
"""

from __future__ import annotations

import difflib
import logging
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree
from tqdm import tqdm

from .barcode import Barcode, sample_barcode
from .objectives import value_and_grad
from .paths import MinimaBarcode, minima_barcode

__all__ = [
    "AlgorithmComparison",
    "LocalMinima",
    "Sample",
    "ToyFunction",
    "bounding_box",
    "compare_algorithms",
    "compare_barcodes",
    "find_minima",
    "hessian_norm",
    "himmelblau",
    "mueller_brown",
    "plane_basis",
    "plane_objective",
    "saddle_points",
    "sample_grid",
    "sample_random",
    "sampling_error_bound",
    "six_hump_camel",
    "toy_function",
    "toy_names",
]

logger = logging.getLogger("toscore")


# --- benchmark functions --------------------------------------------------------------


def _coordinates(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (P, 2); got shape {tuple(points.shape)}")
    return points[:, 0], points[:, 1]


def himmelblau(points: torch.Tensor) -> torch.Tensor:
    """Himmelblau's function ``(x^2 + y - 11)^2 + (x + y^2 - 7)^2``.

    Parameters
    ----------
    points : Tensor, shape (P, 2)

    Returns
    -------
    Tensor, shape (P,)
        Four minima of value 0, among them (3, 2); four saddles near 13.3, 67.7, 104.0
        and 178.3.
    """
    x, y = _coordinates(points)
    return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2


def six_hump_camel(points: torch.Tensor) -> torch.Tensor:
    """Six-hump camel function ``(4 - 2.1 x^2 + x^4 / 3) x^2 + x y + (4 y^2 - 4) y^2``.

    Parameters
    ----------
    points : Tensor, shape (P, 2)

    Returns
    -------
    Tensor, shape (P,)
        Six minima: two global ones of value -1.0316 at (0.0898, -0.7126) and
        (-0.0898, 0.7126), two of value -0.2155 and two of value 2.1043.
    """
    x, y = _coordinates(points)
    return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (4 * y**2 - 4) * y**2


# Mueller-Brown potential: four anisotropic Gaussians (Mueller and Brown, 1979).
_MB_HEIGHT = (-200.0, -100.0, -170.0, 15.0)
_MB_XX = (-1.0, -1.0, -6.5, 0.7)
_MB_XY = (0.0, 0.0, 11.0, 0.6)
_MB_YY = (-10.0, -10.0, -6.5, 0.7)
_MB_X0 = (1.0, 0.0, -0.5, -1.0)
_MB_Y0 = (0.0, 0.5, 1.5, 1.0)
_MB_SCALE = 0.01


def mueller_brown(points: torch.Tensor) -> torch.Tensor:
    """Mueller-Brown potential divided by 100.

    Parameters
    ----------
    points : Tensor, shape (P, 2)

    Returns
    -------
    Tensor, shape (P,)
        Three minima of distinct values, -1.4670 at (-0.558, 1.442), -1.0817 at
        (0.623, 0.028) and -0.8077 at (-0.050, 0.467), and two saddles, -0.7225 at
        (0.212, 0.293) and -0.4066 at (-0.822, 0.624).
    """
    x, y = _coordinates(points)
    total = torch.zeros_like(x)
    for height, a, b, c, x0, y0 in zip(_MB_HEIGHT, _MB_XX, _MB_XY, _MB_YY, _MB_X0, _MB_Y0):
        dx, dy = x - x0, y - y0
        total = total + height * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
    return _MB_SCALE * total


@dataclass(frozen=True)
class ToyFunction:
    """An analytic 2-D objective with the box it is studied on.

    Attributes
    ----------
    name : str
    function : callable
        Maps a ``(P, 2)`` tensor to ``(P,)`` values; differentiable, any float dtype.
    domain : tuple of tuple of float
        ``((x_min, x_max), (y_min, y_max))``. The function increases along the outward
        normal everywhere on the boundary, so every minimum in the box is interior.
    minima : tuple of tuple of float
        Known local minima ``(x, y)``, rounded to the digits given in the literature.
    minimum_values : tuple of float
        The function's value at each of them, rounded the same way.
    description : str
    """

    name: str
    function: Callable[[torch.Tensor], torch.Tensor]
    domain: tuple
    minima: tuple
    minimum_values: tuple
    description: str = ""

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        return self.function(points)


_TOY_FUNCTIONS = {
    toy.name: toy
    for toy in (
        ToyFunction(
            "himmelblau", himmelblau, ((-5.0, 5.0), (-5.0, 5.0)),
            ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126)),
            (0.0, 0.0, 0.0, 0.0),
            "four minima of equal value 0: three bars with tied births",
        ),
        ToyFunction(
            "six_hump_camel", six_hump_camel, ((-2.0, 2.0), (-1.0, 1.0)),
            ((0.0898, -0.7126), (-0.0898, 0.7126), (1.7036, -0.7961), (-1.7036, 0.7961),
             (1.6071, 0.5687), (-1.6071, -0.5687)),
            (-1.0316, -1.0316, -0.2155, -0.2155, 2.1043, 2.1043),
            "six minima in three symmetric pairs: five bars",
        ),
        ToyFunction(
            "mueller_brown", mueller_brown, ((-1.5, 1.2), (-0.2, 2.0)),
            ((-0.5582, 1.4417), (0.6235, 0.0280), (-0.0500, 0.4667)),
            (-1.4670, -1.0817, -0.8077),
            "three minima of distinct values: one long and one short bar",
        ),
    )
}


def toy_names() -> list[str]:
    """Names of the benchmark functions, sorted."""
    return sorted(_TOY_FUNCTIONS)


def toy_function(name: str) -> ToyFunction:
    """Return the benchmark function called ``name`` (see :func:`toy_names`).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known ones.
    """
    if name not in _TOY_FUNCTIONS:
        close = difflib.get_close_matches(name, toy_names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown toy function {name!r}{hint} Known: {toy_names()}")
    return _TOY_FUNCTIONS[name]


# --- a plane through parameter space --------------------------------------------------


class _PlaneObjective:
    """``(a, b) -> objective(origin + a u + b v)``; see :func:`plane_objective`."""

    def __init__(self, objective, origin: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> None:
        self.objective = objective
        self.origin = origin
        self.basis = torch.stack([u, v]).to(origin)  # (2, D)

    def _parameters(self, points: torch.Tensor) -> torch.Tensor:
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"points must have shape (P, 2); got shape {tuple(points.shape)}")
        coordinates = points.to(device=self.origin.device, dtype=self.origin.dtype)
        return self.origin + coordinates @ self.basis  # (P, D)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        values = self.objective(self._parameters(points))  # (P,)
        return values.to(device=points.device, dtype=points.dtype)

    def value_and_grad(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Chain rule through theta = origin + (a, b) @ basis; reuses the objective's own
        # (possibly chunked) gradient, so memory stays bounded for large P.
        values, grads = value_and_grad(self.objective, self._parameters(points.detach()))
        plane_grads = grads @ self.basis.T  # (P, D) @ (D, 2)
        return (values.to(device=points.device, dtype=points.dtype),
                plane_grads.to(device=points.device, dtype=points.dtype))


def plane_objective(objective, origin: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """Restrict an objective to the plane ``theta = origin + a u + b v``.

    Parameters
    ----------
    objective : callable
        Maps ``(P, D)`` parameter vectors to ``(P,)`` values, e.g. a
        :class:`toscore.NetworkObjective`.
    origin, u, v : Tensor, shape (D,)
        A point of the plane and two directions. They need not be orthonormal; see
        :func:`plane_basis` for an orthonormal pair.

    Returns
    -------
    callable
        Maps ``(P, 2)`` coordinates ``(a, b)`` to the ``(P,)`` values
        ``objective(origin + a u + b v)``, differentiable with autograd in the
        coordinates. Parameters are formed in the dtype and on the device of ``origin``
        (float32 for a network), and the values are returned in the dtype and on the
        device of the coordinates, so float64 coordinates work with a float32 network.
        It also has a chunked ``value_and_grad`` method when ``objective`` has one.

    Raises
    ------
    ValueError
        If ``origin``, ``u`` and ``v`` are not vectors of one length.
    """
    origin, u, v = (torch.as_tensor(t) for t in (origin, u, v))
    if not (origin.ndim == u.ndim == v.ndim == 1) or not (len(origin) == len(u) == len(v)):
        raise ValueError(
            "origin, u and v must be vectors of one length D; got shapes "
            f"{tuple(origin.shape)}, {tuple(u.shape)} and {tuple(v.shape)}"
        )
    return _PlaneObjective(objective, origin, u, v)


def plane_basis(p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor):
    """Orthonormal coordinates on the plane through three points (Gram-Schmidt).

    Parameters
    ----------
    p0, p1, p2 : Tensor, shape (D,)
        Three points, e.g. three trained minima; ``p0`` becomes the origin.

    Returns
    -------
    origin : Tensor, shape (D,)
        ``p0``.
    u, v : Tensor, shape (D,)
        Orthonormal directions: ``u`` points from ``p0`` to ``p1``, ``v`` towards
        ``p2``. Same dtype as ``p0``.
    coordinates : ndarray of float64, shape (3, 2)
        ``(a, b)`` of the three points, so ``p_i = origin + a_i u + b_i v``; distances
        in the plane equal distances in parameter space.

    Raises
    ------
    ValueError
        If the points are (nearly) collinear.
    """
    p0, p1, p2 = (torch.as_tensor(p) for p in (p0, p1, p2))
    if not (p0.ndim == p1.ndim == p2.ndim == 1) or not (len(p0) == len(p1) == len(p2)):
        raise ValueError("p0, p1 and p2 must be vectors of one length D; got shapes "
                         f"{tuple(p0.shape)}, {tuple(p1.shape)} and {tuple(p2.shape)}")
    dtype = p0.dtype if p0.is_floating_point() else torch.float64
    first, second = (p1 - p0).double(), (p2 - p0).double()  # Gram-Schmidt in float64
    first_length = first.norm()
    if first_length == 0:
        raise ValueError("p0 and p1 coincide; they do not span a plane with p2")
    u = first / first_length
    along = second @ u
    rest = second - along * u
    rest_length = rest.norm()
    if rest_length <= 1e-9 * max(float(first_length), float(second.norm())):
        raise ValueError("p0, p1 and p2 are (nearly) collinear; they do not span a plane")
    v = rest / rest_length
    coordinates = np.array([[0.0, 0.0], [float(first_length), 0.0], [float(along), float(rest_length)]])
    return p0.to(dtype), u.to(dtype), v.to(dtype), coordinates


def bounding_box(points, margin: float = 0.5) -> tuple:
    """Square box around 2-D points, with a margin of ``margin`` times their larger extent.

    Parameters
    ----------
    points : array_like, shape (n, 2)
    margin : float, default 0.5

    Returns
    -------
    tuple
        ``((x_min, x_max), (y_min, y_max))``, a square centred on the points' bounding
        box, so a map of it is not distorted.
    """
    coords = np.asarray(points, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) == 0:
        raise ValueError(f"points must have shape (n, 2) with n >= 1; got shape {coords.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0; got {margin}")
    low, high = coords.min(axis=0), coords.max(axis=0)
    pad = margin * float(max((high - low).max(), 1e-12))
    center = (low + high) / 2
    half = (high - low).max() / 2 + pad
    return tuple((float(c - half), float(c + half)) for c in center)


# --- sampling -------------------------------------------------------------------------


@dataclass
class Sample:
    """Values of an objective at sample points, the input of algorithm 1.

    Attributes
    ----------
    points : ndarray of float64, shape (n_points, 2)
    values : ndarray of float64, shape (n_points,)
    grid_shape : tuple of int or None
        ``(n_y, n_x)`` for a regular grid, whose ``points`` run over x fastest, so
        ``values.reshape(grid_shape)`` is an image with rows of constant y; None for
        random points.
    """

    points: np.ndarray
    values: np.ndarray
    grid_shape: tuple | None = None

    @property
    def x(self) -> np.ndarray:
        """Grid coordinates along x, shape (n_x,)."""
        self._require_grid()
        return self.points[: self.grid_shape[1], 0]

    @property
    def y(self) -> np.ndarray:
        """Grid coordinates along y, shape (n_y,)."""
        self._require_grid()
        return self.points[:: self.grid_shape[1], 1]

    @property
    def image(self) -> np.ndarray:
        """Values on the grid, shape (n_y, n_x)."""
        self._require_grid()
        return self.values.reshape(self.grid_shape)

    def _require_grid(self) -> None:
        if self.grid_shape is None:
            raise ValueError("this sample is a random point cloud, not a grid")


def _check_domain(domain) -> np.ndarray:
    box = np.asarray(domain, dtype=np.float64)
    if box.shape != (2, 2) or not np.all(np.isfinite(box)) or np.any(box[:, 0] >= box[:, 1]):
        raise ValueError(
            f"domain must be ((x_min, x_max), (y_min, y_max)) with finite min < max; got {domain!r}"
        )
    return box


@torch.no_grad()
def _evaluate(objective, points: np.ndarray, chunk: int, device, dtype) -> np.ndarray:
    values = []
    for start in range(0, len(points), chunk):
        batch = torch.as_tensor(points[start:start + chunk], dtype=dtype, device=device)
        values.append(objective(batch).detach().double().cpu().numpy())
    return np.concatenate(values)


def sample_grid(objective, domain, n: int | tuple = 201, *, chunk: int = 65536,
                device="cpu", dtype=torch.float64) -> Sample:
    """Evaluate an objective on a regular grid covering ``domain``, boundary included.

    Parameters
    ----------
    objective : callable
        ``(P, 2) -> (P,)``.
    domain : ((x_min, x_max), (y_min, y_max))
    n : int or (int, int), default 201
        Points per axis, or ``(n_x, n_y)``; at least 2 each.
    chunk : int, default 65536
        Points per objective call.
    device : str or torch.device, default "cpu"
        Where the coordinates are created.
    dtype : torch.dtype, default torch.float64

    Returns
    -------
    Sample
        ``n_x * n_y`` points with ``grid_shape = (n_y, n_x)``.
    """
    box = _check_domain(domain)
    n_x, n_y = (n, n) if np.isscalar(n) else n
    if n_x < 2 or n_y < 2:
        raise ValueError(f"n must give at least 2 points per axis; got {n!r}")
    xs = np.linspace(box[0, 0], box[0, 1], int(n_x))
    ys = np.linspace(box[1, 0], box[1, 1], int(n_y))
    grid_x, grid_y = np.meshgrid(xs, ys)  # (n_y, n_x) each
    points = np.column_stack([grid_x.ravel(), grid_y.ravel()])  # (n_y * n_x, 2)
    values = _evaluate(objective, points, chunk, device, dtype)
    return Sample(points, values, (int(n_y), int(n_x)))


def sample_random(objective, domain, n: int = 40000, *, seed: int = 0, chunk: int = 65536,
                  device="cpu", dtype=torch.float64) -> Sample:
    """Evaluate an objective at ``n`` points drawn uniformly from ``domain``.

    Parameters
    ----------
    objective : callable
        ``(P, 2) -> (P,)``.
    domain : ((x_min, x_max), (y_min, y_max))
    n : int, default 40000
    seed : int, default 0
        Seed of the points (numpy's default generator).
    chunk, device, dtype
        As for :func:`sample_grid`.

    Returns
    -------
    Sample
        ``n`` points; ``grid_shape`` is None.
    """
    box = _check_domain(domain)
    if n < 2:
        raise ValueError(f"n must be >= 2; got {n}")
    rng = np.random.default_rng(seed)
    points = box[:, 0] + rng.random((int(n), 2)) * (box[:, 1] - box[:, 0])  # (n, 2)
    values = _evaluate(objective, points, chunk, device, dtype)
    return Sample(points, values, None)


# --- local minima ---------------------------------------------------------------------


@dataclass
class LocalMinima:
    """Distinct local minima found by descent, sorted by increasing value.

    Attributes
    ----------
    points : Tensor, shape (N, 2)
        Locations, in the dtype and on the device of the search.
    values : ndarray of float64, shape (N,)
    hits : ndarray of int64, shape (N,)
        Number of starts that ended at each minimum.
    grad_norms : ndarray of float64, shape (N,)
        Gradient norm at each minimum.
    n_starts : int
    n_discarded : int
        Starts that ended on the domain boundary or failed the local-minimum test.
    """

    points: torch.Tensor
    values: np.ndarray
    hits: np.ndarray
    grad_norms: np.ndarray
    n_starts: int
    n_discarded: int

    @property
    def table(self) -> pd.DataFrame:
        """One row per minimum: ``minimum``, ``x``, ``y``, ``value``, ``hits``, ``grad_norm``."""
        coords = self.points.detach().double().cpu().numpy()
        return pd.DataFrame({"minimum": np.arange(len(coords)), "x": coords[:, 0], "y": coords[:, 1],
                             "value": self.values, "hits": self.hits, "grad_norm": self.grad_norms})

    def __len__(self) -> int:
        return len(self.values)


def find_minima(
    objective,
    domain,
    n_starts: int = 256,
    *,
    starts=None,
    n_steps: int = 500,
    n_trials: int = 16,
    newton_steps: int = 8,
    grad_tol: float = 1e-10,
    merge_radius: float | None = None,
    seed: int = 0,
    device="cpu",
    dtype=torch.float64,
    progress: bool = False,
) -> LocalMinima:
    """Find the local minima of a 2-D objective in a box by descent from many starts.

    All starts descend at once by projected gradient descent. Each start takes a
    backtracking (Armijo) step, chosen from ``n_trials`` halvings evaluated in one
    batched call. A few Newton steps on a finite-difference Hessian follow, each kept
    only where it lowers the value. End points are merged when closer than ``merge_radius``
    (keeping the lowest), and each survivor must pass a local-minimum test: it lies
    inside the box and no point of a ring of radius ``merge_radius / 2`` around it is
    lower.

    Parameters
    ----------
    objective : callable
        ``(P, 2) -> (P,)``, differentiable.
    domain : ((x_min, x_max), (y_min, y_max))
    n_starts : int, default 256
        Starts drawn uniformly from the box.
    starts : array_like, shape (S, 2), optional
        Further starts, e.g. points known to lie near minima.
    n_steps : int, default 500
        Gradient steps at most; the search stops earlier once every gradient norm is
        below ``grad_tol``.
    n_trials : int, default 16
        Step sizes tried per step: the current one and its halvings.
    newton_steps : int, default 8
    grad_tol : float, default 1e-10
        Gradient norm at which a start counts as converged.
    merge_radius : float, optional
        Distance under which two end points are one minimum. Default: 1e-3 of the
        box diagonal.
    seed : int, default 0
        Seed of the random starts.
    device : str or torch.device, default "cpu"
    dtype : torch.dtype, default torch.float64
    progress : bool, default False
        Show a progress bar over descent steps.

    Returns
    -------
    LocalMinima

    Raises
    ------
    ValueError
        For a bad domain, no starts, or non-positive settings.

    Notes
    -----
    Minima of the function restricted to the box that lie on its boundary are
    discarded with a warning: :func:`toscore.minima_barcode` optimizes paths without
    the box, so such points are not minima it can use, while algorithm 1 on the box
    counts them. Choose a box on whose boundary the function increases outwards.
    """
    box = _check_domain(domain)
    for name, value, least in (("n_starts", n_starts, 0), ("n_steps", n_steps, 0),
                               ("n_trials", n_trials, 1), ("newton_steps", newton_steps, 0)):
        if value < least:
            raise ValueError(f"{name} must be >= {least}; got {value}")
    low = torch.as_tensor(box[:, 0], dtype=dtype, device=device)
    high = torch.as_tensor(box[:, 1], dtype=dtype, device=device)
    diagonal = float(np.linalg.norm(box[:, 1] - box[:, 0]))
    radius = merge_radius if merge_radius is not None else 1e-3 * diagonal
    if radius <= 0:
        raise ValueError(f"merge_radius must be > 0; got {merge_radius}")

    generator = torch.Generator().manual_seed(seed)
    random_starts = low.cpu() + torch.rand(n_starts, 2, generator=generator, dtype=dtype) * (high - low).cpu()
    extra = torch.empty(0, 2, dtype=dtype) if starts is None else torch.as_tensor(starts, dtype=dtype).reshape(-1, 2)
    x = torch.cat([random_starts, extra.cpu()]).to(device)  # (P, 2)
    if len(x) == 0:
        raise ValueError("no starts: n_starts is 0 and starts is empty")
    x = torch.minimum(torch.maximum(x, low), high)

    x = _projected_descent(objective, x, low, high, n_steps, n_trials, grad_tol, 0.1 * diagonal, progress)
    x = _newton_polish(objective, x, low, high, newton_steps, 1e-4 * radius)
    return _distinct_minima(objective, x, low, high, radius)


def _projected_descent(objective, x, low, high, n_steps, n_trials, grad_tol, first_step, progress):
    """Projected gradient descent with a per-start backtracking step, all starts at once."""
    n_starts = len(x)
    halvings = 0.5 ** torch.arange(n_trials, dtype=x.dtype, device=x.device)  # (T,)
    rows = torch.arange(n_starts, device=x.device)
    values, grads = value_and_grad(objective, x)
    rate = first_step / grads.norm(dim=1).clamp_min(1e-300)  # (P,) step = rate * gradient
    for _ in tqdm(range(n_steps), desc="finding minima", disable=not progress):
        # Converged: the gradient vanishes, but for components held at a face of the box.
        clamped = ((x <= low) & (grads > 0)) | ((x >= high) & (grads < 0))
        if bool((torch.where(clamped, 0.0, grads).norm(dim=1) < grad_tol).all()):
            break

        # Try the current rate and its halvings; keep the largest with enough decrease.
        rates = rate[:, None] * halvings  # (P, T)
        trials = x[:, None, :] - rates[..., None] * grads[:, None, :]  # (P, T, 2)
        trials = torch.minimum(torch.maximum(trials, low), high)
        with torch.no_grad():
            trial_values = objective(trials.reshape(-1, 2)).reshape(n_starts, n_trials)
        predicted = (grads[:, None, :] * (x[:, None, :] - trials)).sum(-1)  # (P, T), >= 0
        accepted = (predicted > 0) & (values[:, None] - trial_values >= 1e-4 * predicted)
        any_accepted = accepted.any(dim=1)
        first = accepted.to(torch.int8).argmax(dim=1)  # (P,) the largest accepted rate

        # Accepted starts move and try a doubled rate next; the others shrink their rate.
        x = torch.where(any_accepted[:, None], trials[rows, first], x)
        rate = torch.where(any_accepted, 2 * rates[rows, first], rate * 0.5**n_trials)
        values, grads = value_and_grad(objective, x)
        # A rate that underflows would freeze a start; restart it from a sane size.
        rate = torch.where(rate > 0, rate, first_step / grads.norm(dim=1).clamp_min(1e-300))
    return x.detach()


def _hessians(objective, x: torch.Tensor, step: float) -> torch.Tensor:
    """Central finite differences of the gradient, symmetrized; shape (P, 2, 2)."""
    offsets = step * torch.eye(2, dtype=x.dtype, device=x.device)  # (2, 2)
    probes = torch.cat([x[:, None, :] + offsets, x[:, None, :] - offsets], dim=1)  # (P, 4, 2)
    _, grads = value_and_grad(objective, probes.reshape(-1, 2))
    grads = grads.reshape(len(x), 4, 2)
    hessian = (grads[:, :2] - grads[:, 2:]) / (2 * step)  # row i: d grad / d x_i
    return (hessian + hessian.transpose(1, 2)) / 2


def _newton_polish(objective, x, low, high, n_steps, step):
    """Newton steps where the Hessian is positive definite and the value drops."""
    for _ in range(n_steps):
        values, grads = value_and_grad(objective, x)
        hessian = _hessians(objective, x, step)
        positive = torch.linalg.eigvalsh(hessian)[:, 0] > 0
        safe = torch.where(positive[:, None, None], hessian, torch.eye(2, dtype=x.dtype, device=x.device))
        newton = torch.linalg.solve(safe, grads[..., None])[..., 0]  # (P, 2)
        trial = torch.minimum(torch.maximum(x - newton, low), high)
        with torch.no_grad():
            lower = objective(trial) <= values
        x = torch.where((positive & lower)[:, None], trial, x)
    return x.detach()


def _distinct_minima(objective, x, low, high, radius) -> LocalMinima:
    """Merge end points within ``radius``, then keep the interior, ring-tested ones."""
    values, grads = value_and_grad(objective, x)
    values64 = values.double().cpu().numpy()
    coords = x.double().cpu().numpy()
    order = np.lexsort((np.arange(len(x)), values64))
    tree = cKDTree(coords)
    owner = np.full(len(x), -1)
    for index in order:  # lowest first: each cluster is named after its lowest point
        if owner[index] < 0:
            members = np.asarray(tree.query_ball_point(coords[index], radius), dtype=np.int64)
            owner[members[owner[members] < 0]] = index
    centers, hits = np.unique(owner, return_counts=True)

    # Interior test and ring test: no point of a ring of 16 around a minimum is lower.
    candidates = x[torch.as_tensor(centers, device=x.device)]  # (C, 2)
    low64, high64 = low.double().cpu().numpy(), high.double().cpu().numpy()
    spread = 1e-9 * (high64 - low64)
    interior = np.all((coords[centers] > low64 + spread) & (coords[centers] < high64 - spread), axis=1)
    angles = torch.arange(16, dtype=x.dtype, device=x.device) * (2 * math.pi / 16)
    ring = torch.stack([angles.cos(), angles.sin()], dim=1) * (radius / 2)  # (16, 2)
    with torch.no_grad():
        ring_values = objective((candidates[:, None, :] + ring).reshape(-1, 2)).reshape(len(centers), 16)
    lowest_on_ring = ring_values.min(dim=1).values.double().cpu().numpy()
    is_minimum = lowest_on_ring >= values64[centers]
    keep = interior & is_minimum
    if (~interior).any():
        logger.warning("find_minima: %d minima lie on the domain boundary and are discarded; "
                       "the function decreases out of the box there", int((~interior).sum()))
    if (interior & ~is_minimum).any():
        logger.info("find_minima: %d end points failed the local-minimum test (not converged)",
                    int((interior & ~is_minimum).sum()))

    centers, hits = centers[keep], hits[keep]
    by_value = np.lexsort((centers, values64[centers]))
    centers, hits = centers[by_value], hits[by_value]
    chosen = torch.as_tensor(centers, dtype=torch.long, device=x.device)
    minima = LocalMinima(
        points=x[chosen].clone(),
        values=values64[centers],
        hits=hits.astype(np.int64),
        grad_norms=grads[chosen].norm(dim=1).double().cpu().numpy(),
        n_starts=len(x),
        n_discarded=int(len(x) - hits.sum()),
    )
    logger.info("find_minima: %d distinct minima from %d starts", len(minima), len(x))
    return minima


# --- comparing barcodes ---------------------------------------------------------------


def compare_barcodes(first: Barcode, second: Barcode) -> pd.DataFrame:
    """Pair the bars of two barcodes and tabulate their differences.

    Finite bars are matched one to one by the assignment of least total cost. A pair
    costs ``max(|birth_1 - birth_2|, |death_1 - death_2|)``, and a bar may stay
    unmatched instead at the cost of half its length, as in the matching of
    persistence diagrams with the diagonal. Births alone cannot pair the bars when several minima
    share a value, as Himmelblau's four minima at 0 do; the bar values still can. The
    essential bars are paired in order of birth.

    Parameters
    ----------
    first : Barcode
        The reference, e.g. algorithm 1 on a fine grid. Relative differences are taken
        with respect to its bar lengths.
    second : Barcode

    Returns
    -------
    pandas.DataFrame
        One row per pair or unmatched bar, matched finite bars first by decreasing
        ``length_1``: ``birth_1``, ``death_1``, ``length_1``, ``birth_2``, ``death_2``,
        ``length_2`` (NaN where a bar has no partner, ``inf`` deaths for essential
        bars), ``birth_vertex_1``, ``birth_vertex_2`` (-1 when absent),
        ``birth_difference`` and ``death_difference`` (second minus first),
        ``relative_difference`` (``|death_difference| / length_1``, NaN for essential
        or unmatched bars), ``matched`` and ``essential`` (bool).
    """
    n_first, n_second = len(first.birth), len(second.birth)
    size = n_first + n_second
    rows = []
    if size:
        # Augmented square cost matrix: bar-bar block, bar-diagonal blocks, and zeros.
        large = 1e300
        cost = np.full((size, size), large)
        cost[n_first:, n_second:] = 0.0
        if n_first and n_second:
            cost[:n_first, :n_second] = np.maximum(
                np.abs(first.birth[:, None] - second.birth[None, :]),
                np.abs(first.death[:, None] - second.death[None, :]),
            )
        cost[np.arange(n_first), n_second + np.arange(n_first)] = first.lengths / 2
        cost[n_first + np.arange(n_second), np.arange(n_second)] = second.lengths / 2
        row_index, column_index = linear_sum_assignment(cost)
        for i, j in zip(row_index.tolist(), column_index.tolist()):
            if i < n_first and j < n_second:
                rows.append(_pair_row(first, i, second, j))
            elif i < n_first:
                rows.append(_pair_row(first, i, None, None))
            elif j < n_second:
                rows.append(_pair_row(None, None, second, j))
    for i in range(max(len(first.essential_birth), len(second.essential_birth))):
        rows.append(_essential_row(first, second, i))
    table = pd.DataFrame(rows, columns=_COMPARISON_COLUMNS)
    order = np.lexsort((-table["length_2"].fillna(-1.0).to_numpy(),
                        -table["length_1"].fillna(-1.0).to_numpy(),
                        ~table["matched"].to_numpy(), table["essential"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


_COMPARISON_COLUMNS = ["birth_1", "death_1", "length_1", "birth_2", "death_2", "length_2",
                       "birth_vertex_1", "birth_vertex_2", "birth_difference", "death_difference",
                       "relative_difference", "matched", "essential"]


def _pair_row(first, i, second, j) -> dict:
    nan = float("nan")
    b1, d1 = (float(first.birth[i]), float(first.death[i])) if first is not None else (nan, nan)
    b2, d2 = (float(second.birth[j]), float(second.death[j])) if second is not None else (nan, nan)
    matched = first is not None and second is not None
    length = d1 - b1
    return {
        "birth_1": b1, "death_1": d1, "length_1": length,
        "birth_2": b2, "death_2": d2, "length_2": d2 - b2,
        "birth_vertex_1": int(first.birth_vertex[i]) if first is not None else -1,
        "birth_vertex_2": int(second.birth_vertex[j]) if second is not None else -1,
        "birth_difference": b2 - b1, "death_difference": d2 - d1,
        "relative_difference": abs(d2 - d1) / length if matched and length > 0 else nan,
        "matched": matched, "essential": False,
    }


def _essential_row(first, second, i) -> dict:
    nan = float("nan")
    has_1, has_2 = i < len(first.essential_birth), i < len(second.essential_birth)
    b1 = float(first.essential_birth[i]) if has_1 else nan
    b2 = float(second.essential_birth[i]) if has_2 else nan
    return {
        "birth_1": b1, "death_1": math.inf if has_1 else nan, "length_1": math.inf if has_1 else nan,
        "birth_2": b2, "death_2": math.inf if has_2 else nan, "length_2": math.inf if has_2 else nan,
        "birth_vertex_1": int(first.essential_vertex[i]) if has_1 else -1,
        "birth_vertex_2": int(second.essential_vertex[i]) if has_2 else -1,
        "birth_difference": b2 - b1, "death_difference": nan, "relative_difference": nan,
        "matched": has_1 and has_2, "essential": True,
    }


def saddle_points(barcode: MinimaBarcode) -> np.ndarray:
    """Location of the highest point of each pair's path: the saddle estimates.

    Parameters
    ----------
    barcode : MinimaBarcode

    Returns
    -------
    ndarray of float64, shape (M, D)
        Row ``m`` is the point of pair ``m``'s polyline at the maximum of its dense
        profile, whose value is ``barcode.saddle_values[m]``.
    """
    points = []
    for path, positions, values in zip(barcode.paths, barcode.profile_positions, barcode.profile_values):
        polyline = path.double().numpy()  # (K, D)
        lengths = np.linalg.norm(np.diff(polyline, axis=0), axis=1)  # (K-1,)
        cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
        target = positions[int(np.argmax(values))] * cumulative[-1]
        segment = int(np.clip(np.searchsorted(cumulative, target, side="right") - 1, 0, len(lengths) - 1))
        fraction = (target - cumulative[segment]) / lengths[segment] if lengths[segment] > 0 else 0.0
        points.append(polyline[segment] + fraction * (polyline[segment + 1] - polyline[segment]))
    return np.array(points).reshape(len(barcode.paths), -1)


def hessian_norm(objective, points, radius: float, *, step: float | None = None,
                 dtype=torch.float64, device="cpu") -> np.ndarray:
    """Largest |eigenvalue| of the Hessian over a small disc around each point.

    The Hessian is taken by central differences of the gradient at the point and at
    eight points on a circle of ``radius`` around it.

    Parameters
    ----------
    objective : callable
        ``(P, 2) -> (P,)``, differentiable.
    points : array_like, shape (n, 2)
    radius : float
        Radius of the circle, > 0.
    step : float, optional
        Finite-difference step; default ``radius / 100``.
    dtype, device
        Of the evaluation.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    if radius <= 0:
        raise ValueError(f"radius must be > 0; got {radius}")
    centers = torch.as_tensor(np.asarray(points, dtype=np.float64), dtype=dtype, device=device).reshape(-1, 2)
    angles = torch.arange(8, dtype=dtype, device=device) * (2 * math.pi / 8)
    offsets = torch.cat([torch.zeros(1, 2, dtype=dtype, device=device),
                         radius * torch.stack([angles.cos(), angles.sin()], dim=1)])  # (9, 2)
    probes = (centers[:, None, :] + offsets).reshape(-1, 2)  # (n * 9, 2)
    hessians = _hessians(objective, probes, step or radius / 100)
    norms = torch.linalg.eigvalsh(hessians).abs().max(dim=1).values  # (n * 9,)
    return norms.reshape(len(centers), 9).max(dim=1).values.double().cpu().numpy()


def sampling_error_bound(objective, sample: Sample, k: int, saddles) -> pd.DataFrame:
    """How far algorithm 1's death can lie from a true saddle value, per saddle.

    Algorithm 1 connects each sample to its ``k`` nearest neighbours. Let ``s`` be a
    nondegenerate saddle, ``M`` the largest spectral norm of the Hessian near it and
    ``r`` the length of the longest edge at the sample nearest ``s``. Then the value at
    which the two basins meet in the graph lies within ``M r^2 / 8`` of ``f(s)``, to
    leading order in ``r``. From below, because a path of edges crosses the level of
    ``s`` on an edge of length at most about ``r``, and along it ``f`` exceeds the
    larger endpoint value by at most ``M r^2 / 8``. From above, because some sample
    within ``r / 2`` of ``s`` connects both basins at a value at most
    ``M (r / 2)^2 / 2`` above ``f(s)``. ``M`` is estimated over a disc of radius ``r``.

    Parameters
    ----------
    objective : callable
        ``(P, 2) -> (P,)``.
    sample : Sample
        The points algorithm 1 used.
    k : int
        Neighbours per point in its graph.
    saddles : array_like, shape (n, 2)
        Saddle locations, e.g. from :func:`saddle_points`.

    Returns
    -------
    pandas.DataFrame
        One row per saddle: ``edge_length`` ``r``, ``hessian_norm`` ``M`` (largest over
        a disc of radius ``r`` around the saddle) and ``bound`` ``M r^2 / 8``.
    """
    saddles = np.asarray(saddles, dtype=np.float64).reshape(-1, 2)
    tree = cKDTree(sample.points)
    n_neighbours = min(int(k), len(sample.points) - 1)
    _, nearest = tree.query(saddles)
    distances, _ = tree.query(sample.points[nearest], k=n_neighbours + 1)
    edge = distances[:, -1].reshape(-1)  # (n,) longest edge at the nearest sample
    norms = np.array([hessian_norm(objective, s[None], max(r, 1e-12))[0] for s, r in zip(saddles, edge)])
    return pd.DataFrame({"edge_length": edge, "hessian_norm": norms, "bound": norms * edge**2 / 8})


def _path_curvature(objective, minima: LocalMinima, box: np.ndarray, device) -> float:
    """Largest |Hessian eigenvalue| at nine points of each straight segment between minima.

    The starting paths cross the barriers there. The curvature is largest there, so it
    sets the step size a stable NEB update can take, and at the minima alone it is
    often far smaller.
    """
    points = minima.points.detach().double().cpu().numpy()  # (N, 2)
    pairs = np.array([(i, j) for i in range(len(points)) for j in range(i + 1, len(points))])
    fractions = np.linspace(0.0, 1.0, 9)[None, :, None]
    on_segments = points[pairs[:, 0], None] + fractions * (points[pairs[:, 1]] - points[pairs[:, 0]])[:, None]
    radius = 1e-3 * float(np.linalg.norm(box[:, 1] - box[:, 0]))
    return float(hessian_norm(objective, on_segments.reshape(-1, 2), radius, device=device).max())


# --- both algorithms on one function --------------------------------------------------


@dataclass
class AlgorithmComparison:
    """Algorithm 1 and algorithm 2 on one 2-D objective, and their comparison.

    Attributes
    ----------
    name : str
    domain : tuple
    sample : Sample
        Algorithm 1's points and values.
    point_cloud : Barcode
        Algorithm 1's barcode; vertices are rows of ``sample.points``.
    minima : LocalMinima
        Algorithm 2's vertices.
    paths : MinimaBarcode
        Algorithm 2's paths and barcode; vertex ``i`` is ``minima.points[i]``.
    saddles : ndarray of float64, shape (M, 2)
        Highest point of each path (row ``m`` for pair ``paths.pairs[m]``).
    bars : pandas.DataFrame
        :func:`compare_barcodes` of the two barcodes (algorithm 1 first), with, per
        matched finite bar, the ``saddle_x``, ``saddle_y`` of algorithm 2's saddle, the
        sampling ``bound`` of :func:`sampling_error_bound` there, and the
        ``tolerance`` ``rel_tolerance * length_1 + bound`` with ``within_tolerance``
        (False for unmatched bars, missing for essential ones).
    settings : dict
    """

    name: str
    domain: tuple
    sample: Sample
    point_cloud: Barcode
    minima: LocalMinima
    paths: MinimaBarcode
    saddles: np.ndarray
    bars: pd.DataFrame
    settings: dict = field(default_factory=dict)

    @property
    def max_relative_difference(self) -> float:
        """Largest ``|death_2 - death_1| / length_1`` over matched finite bars (0 if none)."""
        finite = self.bars[self.bars["matched"] & ~self.bars["essential"]]
        return float(finite["relative_difference"].max()) if len(finite) else 0.0

    @property
    def agrees(self) -> bool:
        """Every finite bar is matched and every death is within its tolerance."""
        finite = self.bars[~self.bars["essential"]]
        return bool(finite["matched"].all() and finite["within_tolerance"].all())

    def figure_layers(self, headroom: float = 0.5) -> dict:
        """Keyword arguments of :func:`toscore.plots.plot_map_and_barcodes` for this result.

        The paths whose maxima end bars (the merge tree) are highlighted and their
        maxima marked as saddles. Colours saturate at ``headroom`` times the value
        range above the highest finite death, so the basins and barriers stay visible.
        Bar rows are labelled with algorithm 2's minimum (its number on the map).
        """
        bars = self.paths.barcode
        tree = np.zeros(len(self.paths.pairs), dtype=bool)
        tree[bars.death_edge] = True
        finite = np.concatenate([bars.death, self.point_cloud.death])
        low = float(self.sample.values.min())
        top = float(finite.max()) if len(finite) else float(self.sample.values.max())
        labels = [f"min {v}" if v >= 0 else "unmatched" for v in self.bars["birth_vertex_2"]]
        return dict(
            bars=self.bars, row_labels=labels, points=self.sample.points, values=self.sample.values, grid_shape=self.sample.grid_shape,
            minima=self.minima.points.detach().double().cpu().numpy(),
            paths=[path.double().numpy() for path in self.paths.paths],
            highlight=tree, saddles=self.saddles[bars.death_edge],
            vmax=top + headroom * (top - low),
        )


def compare_algorithms(
    objective,
    domain,
    *,
    name: str = "",
    grid_size: int = 201,
    sampling: str = "grid",
    k: int = 8,
    n_starts: int = 256,
    starts=None,
    descent_steps: int = 500,
    n_trials: int = 16,
    path_settings: dict | None = None,
    path_lr_scale: float | None = 0.25,
    rel_tolerance: float = 0.02,
    seed: int = 0,
    device="cpu",
    progress: bool = False,
) -> AlgorithmComparison:
    """Compute both barcodes of a 2-D objective on a box and compare them bar by bar.

    Parameters
    ----------
    objective : callable
        ``(P, 2) -> (P,)``, differentiable; a :class:`ToyFunction` or the result of
        :func:`plane_objective`.
    domain : ((x_min, x_max), (y_min, y_max))
    name : str
        Recorded in the result.
    grid_size : int, default 201
        Algorithm 1: points per axis of the grid, or ``grid_size ** 2`` random points.
    sampling : {"grid", "random"}, default "grid"
    k : int, default 8
        Algorithm 1: neighbours per point (8 joins a grid point to its 8 neighbours).
    n_starts, starts, descent_steps, n_trials
        Algorithm 2's minima: see :func:`find_minima`.
    path_settings : dict, optional
        Keyword arguments of :func:`toscore.minima_barcode` (method, n_points, n_steps,
        lr, ...).
    path_lr_scale : float or None, default 0.25
        When given, the NEB step size ``lr`` is set to ``path_lr_scale / lambda`` with
        ``lambda`` the largest |Hessian eigenvalue| at nine points of each straight
        segment between two minima, where the paths start, so one setting suits
        functions of any scale (the NEB update is stable for ``lr * lambda`` below about
        ``2 (1 + momentum)``). Overrides ``path_settings["lr"]``.
    rel_tolerance : float, default 0.02
        Part of the tolerance allowed for algorithm 2, relative to the bar length.
    seed : int, default 0
        Seed of the random starts and random samples.
    device : str or torch.device, default "cpu"
        Where coordinates and paths live (float64).
    progress : bool, default False

    Returns
    -------
    AlgorithmComparison

    Raises
    ------
    ValueError
        If ``sampling`` is unknown or fewer than two minima are found.
    """
    if sampling not in ("grid", "random"):
        raise ValueError(f"sampling must be 'grid' or 'random'; got {sampling!r}")
    if rel_tolerance < 0:
        raise ValueError(f"rel_tolerance must be >= 0; got {rel_tolerance}")
    box = _check_domain(domain)
    domain = tuple(tuple(float(v) for v in side) for side in box)

    # Algorithm 1: the function on a point cloud.
    if sampling == "grid":
        sample = sample_grid(objective, domain, grid_size, device=device)
    else:
        sample = sample_random(objective, domain, grid_size**2, seed=seed, device=device)
    point_cloud = sample_barcode(sample.points, sample.values, k=k)

    # Algorithm 2: minima by descent, then a path between every pair.
    minima = find_minima(objective, domain, n_starts, starts=starts, n_steps=descent_steps,
                         n_trials=n_trials, seed=seed, device=device, progress=progress)
    if len(minima) < 2:
        raise ValueError(f"found {len(minima)} minimum in the domain of {name or 'the objective'}; "
                         "algorithm 2 needs at least two")
    settings = dict(path_settings or {})
    if path_lr_scale is not None:
        settings["lr"] = float(path_lr_scale / _path_curvature(objective, minima, box, device))
    paths = minima_barcode(objective, minima.points, progress=progress, **settings)
    saddles = saddle_points(paths)

    # Pair the bars; each matched bar gets the sampling bound at algorithm 2's saddle.
    bars = compare_barcodes(point_cloud, paths.barcode)
    saddle_rows = {int(v): int(e) for v, e in zip(paths.barcode.birth_vertex, paths.barcode.death_edge)}
    finite = bars["matched"] & ~bars["essential"]
    edges = [saddle_rows[int(v)] for v in bars.loc[finite, "birth_vertex_2"]]
    bars["saddle_x"], bars["saddle_y"], bars["bound"] = np.nan, np.nan, np.nan
    if edges:
        bound = sampling_error_bound(objective, sample, k, saddles[edges])
        bars.loc[finite, "saddle_x"] = saddles[edges, 0]
        bars.loc[finite, "saddle_y"] = saddles[edges, 1]
        bars.loc[finite, "bound"] = bound["bound"].to_numpy()
    bars["tolerance"] = rel_tolerance * bars["length_1"] + bars["bound"]
    within = bars["death_difference"].abs() <= bars["tolerance"]  # False for unmatched bars
    bars["within_tolerance"] = pd.array(np.where(bars["essential"], None, within), dtype="boolean")
    bars.insert(0, "function", name)

    settings.update(sampling=sampling, grid_size=grid_size, n_samples=len(sample.values), k=k,
                    n_starts=minima.n_starts, descent_steps=descent_steps,
                    rel_tolerance=rel_tolerance, method=paths.method)
    result = AlgorithmComparison(name, domain, sample, point_cloud, minima, paths, saddles, bars, settings)
    logger.info("%s: %d minima, %d vs %d finite bars, largest relative death difference %.3g",
                name, len(minima), len(point_cloud.birth), len(paths.barcode.birth),
                result.max_relative_difference)
    return result
