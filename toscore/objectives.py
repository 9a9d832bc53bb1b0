"""Objectives: functions from a batch of flat parameter vectors to loss values.

An objective is any callable that maps a ``(P, D)`` tensor of flat parameter vectors to
a ``(P,)`` tensor of values and is differentiable with autograd, row by row. Analytic
test functions are plain functions; :class:`NetworkObjective` turns an ``nn.Module`` and
a dataset into one that evaluates P networks in a single batched call.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_, vmap

from .engine import plan_mlp

__all__ = [
    "NetworkObjective",
    "flatten_parameters",
    "resolve_device",
    "value_and_grad",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_LOSSES: dict[str, LossFn] = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve ``"auto"`` to CUDA when available, else CPU; pass other names through."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def flatten_parameters(model: nn.Module) -> torch.Tensor:
    """Concatenate a module's parameters into one detached vector, shape (D,)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def value_and_grad(objective, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluate an objective and its gradient at every row of ``theta``.

    Uses ``objective.value_and_grad`` when the objective defines it (to bound memory by
    chunking), else one autograd pass.

    Parameters
    ----------
    objective : callable
        Maps ``(P, D)`` to ``(P,)``, rows independent.
    theta : Tensor, shape (P, D)

    Returns
    -------
    values : Tensor, shape (P,)
    grads : Tensor, shape (P, D)
    """
    method = getattr(objective, "value_and_grad", None)
    if method is not None:
        return method(theta)
    with torch.enable_grad():
        points = theta.detach().requires_grad_(True)
        values = objective(points)
        (grads,) = torch.autograd.grad(values.sum(), points)
    return values.detach(), grads


class NetworkObjective:
    """Loss of a network as a function of its flat parameter vector, batched over points.

    ``objective(theta)`` with ``theta`` of shape ``(P, D)`` returns the ``(P,)`` losses
    of P copies of ``model`` with those parameters on the same data:
    ``mean_loss(theta_p) + weight_decay * ||theta_p||^2``. The P networks run in one
    call through ``torch.func.functional_call`` and ``vmap``, or, for a plain stack of
    linear layers and activations, through shared-input GEMMs (:mod:`toscore.engine`).
    The caller's module is never modified: evaluation uses a copy of it on the meta
    device as a template.

    Parameters
    ----------
    model : nn.Module
        Architecture template. Its current parameters only fix the layout of the flat
        vector (the order of ``model.parameters()``); see :meth:`flatten`.
    loss : {"cross_entropy", "mse"} or callable
        ``loss(outputs, targets)`` returning the mean over examples (a scalar).
    data : tuple of Tensor
        ``(inputs, targets)`` with ``inputs`` of shape ``(n_examples, ...)``. Moved to
        ``device``. Every value of the objective uses all of it, or the fixed ``subset``.
    weight_decay : float, default 0.0
        Coefficient ``lambda`` of the L2 term; 1e-5 removes flat scale directions.
    subset : Tensor of int, optional
        Fixed row indices of ``data`` to evaluate on instead of the whole set.
    subset_name : str, optional
        Name recorded with results computed on ``subset`` (default ``"full"``
        or ``"subset"``).
    max_points_per_call : int, optional
        Largest number of parameter vectors evaluated in one batched call; larger
        batches are split into chunks. Bounds activation memory. Default: sized so
        that one call's activations take about 16 MiB on the CPU (near the cache) and
        1 GiB on a GPU, between 1 and 1024 points.
    max_examples_per_call : int, optional
        Largest number of examples per call; the mean is accumulated over chunks.
        Default: all examples at once.
    device : str or torch.device, default "auto"
        Where data and evaluation live; ``"auto"`` picks CUDA when available.

    Notes
    -----
    Batch norm policy: the value of a network at ``theta`` is its loss with batch norm
    in training mode, normalizing by the statistics of the evaluated batch, but
    without updating running statistics, in train and in eval mode of ``model`` alike.
    The template's batch-norm layers have no running statistics (see
    ``torch.func.replace_all_batch_norm_modules_``), because running-statistic updates
    are in-place writes that fail under ``vmap`` and would mutate state. The
    statistics come from the examples of one call, so with ``max_examples_per_call``
    smaller than the data, each chunk is normalized by its own statistics and the
    value depends on the chunk size; the constructor warns about this case.

    Other buffers are passed to every call unchanged. The caller's module, its
    parameters and its buffers (``running_mean``, ``num_batches_tracked``) are never
    modified.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: str | LossFn,
        data: tuple[torch.Tensor, torch.Tensor],
        weight_decay: float = 0.0,
        *,
        subset: torch.Tensor | None = None,
        subset_name: str | None = None,
        max_points_per_call: int | None = None,
        max_examples_per_call: int | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        if isinstance(loss, str):
            if loss not in _LOSSES:
                raise ValueError(f"unknown loss {loss!r}; expected one of {sorted(_LOSSES)} or a callable")
            loss = _LOSSES[loss]
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay}")
        for name, value in (("max_points_per_call", max_points_per_call),
                            ("max_examples_per_call", max_examples_per_call)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value}")

        self.device = resolve_device(device)
        self.loss = loss
        self.weight_decay = float(weight_decay)
        self.max_examples_per_call = max_examples_per_call

        inputs, targets = data
        if len(inputs) != len(targets):
            raise ValueError(f"data has {len(inputs)} inputs but {len(targets)} targets")
        if subset is not None:
            subset = torch.as_tensor(subset, dtype=torch.long)
            inputs, targets = inputs[subset], targets[subset]
        self.subset_name = subset_name or ("full" if subset is None else "subset")
        self.inputs = inputs.to(self.device)
        self.targets = targets.to(self.device)

        self._names = [name for name, _ in model.named_parameters()]
        self._shapes = [p.shape for _, p in model.named_parameters()]
        self._numels = [p.numel() for _, p in model.named_parameters()]
        self.dim = sum(self._numels)
        self._template = copy.deepcopy(model).to("meta")
        replace_all_batch_norm_modules_(self._template)  # batch statistics, never updated
        buffer_names = {name for name, _ in self._template.named_buffers()}  # all but running statistics
        # A copy: modules that update buffers in place must not write into the caller's.
        self._buffers = {
            name: b.detach().to(self.device, copy=True)
            for name, b in model.named_buffers() if name in buffer_names
        }
        has_batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if has_batch_norm and max_examples_per_call is not None and max_examples_per_call < len(inputs):
            warnings.warn(
                f"max_examples_per_call={max_examples_per_call} is smaller than the {len(inputs)} "
                "examples, so batch norm normalizes each chunk by its own statistics and values "
                "depend on the chunk size; pass max_examples_per_call=None to normalize over all "
                "examples at once",
                stacklevel=2,
            )
        self._plan = plan_mlp(self._template)
        self._batched_loss = vmap(self._loss_of_one, in_dims=(0, None, None))
        self._batched_outputs = vmap(self._outputs_of_one, in_dims=(0, None))
        self.max_points_per_call = max_points_per_call or self._default_points_per_call(model)

    @property
    def n_examples(self) -> int:
        """Number of examples every value is averaged over."""
        return len(self.inputs)

    def flatten(self, model: nn.Module) -> torch.Tensor:
        """Flat parameter vector of ``model`` in this objective's layout, shape (D,)."""
        shapes = [p.shape for p in model.parameters()]
        if shapes != self._shapes:
            raise ValueError("model's parameter shapes differ from the objective's template")
        return flatten_parameters(model).to(self.device)

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``(P, D)`` flat vectors into ``{name: (P, *shape)}`` parameter tensors."""
        if theta.ndim != 2 or theta.shape[1] != self.dim:
            raise ValueError(f"theta must have shape (P, {self.dim}); got {tuple(theta.shape)}")
        pieces = torch.split(theta, self._numels, dim=1)  # each (P, numel)
        return {
            name: piece.reshape(len(theta), *shape)
            for name, shape, piece in zip(self._names, self._shapes, pieces)
        }

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """Loss at each row of ``theta`` (shape (P, D)) on the fixed data, shape (P,)."""
        return self.loss_on(theta, self.inputs, self.targets)

    def loss_on(self, theta: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of every row of ``theta`` on a given batch, shape (P,); differentiable."""
        theta = theta.to(self.device)
        chunks = [self._loss_chunk(part, inputs, targets) for part in theta.split(self.max_points_per_call)]
        values = torch.cat(chunks)
        if self.weight_decay:
            values = values + self.weight_decay * theta.pow(2).sum(dim=1)
        return values

    def value_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and its gradient at every row of ``theta``, shapes (P,) and (P, D).

        Runs forward and backward chunk by chunk, so memory is bounded by
        ``max_points_per_call`` whatever P is.
        """
        values, grads = [], []
        with torch.enable_grad():
            for part in theta.to(self.device).split(self.max_points_per_call):
                points = part.detach().requires_grad_(True)
                chunk_values = self.loss_on(points, self.inputs, self.targets)
                (chunk_grads,) = torch.autograd.grad(chunk_values.sum(), points)
                values.append(chunk_values.detach())
                grads.append(chunk_grads)
        return torch.cat(values), torch.cat(grads)

    @torch.no_grad()
    def metrics(self, theta: torch.Tensor, inputs=None, targets=None) -> dict[str, torch.Tensor]:
        """Mean loss (without the L2 term) and accuracy of every row of ``theta``.

        Defaults to the objective's own data. Returns ``{"loss": (P,), "accuracy": (P,)}``;
        accuracy assumes class-index targets and is NaN otherwise.
        """
        inputs = self.inputs if inputs is None else inputs.to(self.device)
        targets = self.targets if targets is None else targets.to(self.device)
        losses, correct = [], []
        for part in theta.to(self.device).split(self.max_points_per_call):
            losses.append(self._loss_chunk(part, inputs, targets))
            if targets.dtype in (torch.int64, torch.int32):
                hits = torch.zeros(len(part), device=self.device)
                for start, stop in self._example_ranges(len(inputs)):
                    if self._plan is not None:
                        predicted = self._plan.outputs(self.unflatten(part), inputs[start:stop]).argmax(dim=1)
                    else:
                        predicted = self._batched_outputs(self.unflatten(part), inputs[start:stop]).argmax(dim=-1)
                    hits += (predicted == targets[start:stop]).sum(dim=1)
                correct.append(hits / len(inputs))
            else:
                correct.append(torch.full((len(part),), float("nan"), device=self.device))
        return {"loss": torch.cat(losses), "accuracy": torch.cat(correct)}

    def _default_points_per_call(self, model: nn.Module) -> int:
        # Activation elements of one point: every layer's output for every example.
        budget = 2**22 if self.device.type == "cpu" else 2**28  # elements of 4 bytes
        examples = min(self.max_examples_per_call or len(self.inputs), len(self.inputs))
        probe = self.inputs[:2].to("meta")  # two examples: batch norm rejects one
        sizes = []
        hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel()))
                 for m in self._template.modules() if not list(m.children())]
        try:
            self._template(probe)
        finally:
            for hook in hooks:
                hook.remove()
        per_point = max(sum(sizes) // len(probe), 1) * max(examples, 1)
        return int(min(max(budget // per_point, 1), 1024))

    def _loss_chunk(self, theta: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        params = self.unflatten(theta)
        total = 0.0
        for start, stop in self._example_ranges(len(inputs)):
            if self._plan is not None:
                chunk_mean = self._plan.losses(params, inputs[start:stop], targets[start:stop], self.loss)
            else:
                chunk_mean = self._batched_loss(params, inputs[start:stop], targets[start:stop])  # (P,)
            total = total + chunk_mean * ((stop - start) / len(inputs))
        return total

    def _example_ranges(self, n_examples: int):
        step = self.max_examples_per_call or n_examples
        return [(start, min(start + step, n_examples)) for start in range(0, n_examples, step)]

    def _outputs_of_one(self, params: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return functional_call(self._template, (params, self._buffers), (inputs,))

    def _loss_of_one(self, params, inputs, targets) -> torch.Tensor:
        return self.loss(self._outputs_of_one(params, inputs), targets)
