"""Train N networks from N seeds at once: the minima whose barcode is computed."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .objectives import NetworkObjective, flatten_parameters, resolve_device

__all__ = ["Minima", "initial_parameters", "train_minima"]

logger = logging.getLogger("toscore")


@dataclass
class Minima:
    """Trained minima.

    Attributes
    ----------
    parameters : Tensor, shape (N, D)
        One flat parameter vector per network, in the layout of ``model.parameters()``.
    table : pandas.DataFrame
        One row per network: ``seed``, ``train_loss`` and ``test_loss`` (mean
        cross-entropy per example, without the L2 term), ``train_accuracy``,
        ``test_accuracy`` (fractions in [0, 1]); ``diverged`` (bool: the loss or the
        gradient became NaN or inf, after which the network was frozen at its last finite
        parameters), ``diverged_step`` (the SGD step, counted from 0, or -1) and
        ``diverged_value`` (the loss at that step, NaN when none).
    """

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for :class:`toscore.artifacts.ArtifactStore`; see :meth:`from_arrays`."""
        arrays = {"parameters": self.parameters.detach().cpu().numpy()}
        for column in self.table.columns:
            values = self.table[column].to_numpy()
            # Text columns (such as a group name) are object arrays, which np.load rejects
            # without pickle, so they are saved as fixed-width strings.
            arrays[f"table.{column}"] = values.astype(str) if values.dtype == object else values
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], device="cpu") -> "Minima":
        """Rebuild minima saved by :meth:`to_arrays`, with parameters on ``device``."""
        table = pd.DataFrame({name[len("table."):]: values for name, values in arrays.items()
                              if name.startswith("table.")})
        return cls(parameters=torch.as_tensor(arrays["parameters"]).to(device), table=table)

    @property
    def finite(self) -> torch.Tensor:
        """Boolean mask ``(N,)`` of the networks that did not diverge."""
        return torch.as_tensor(~self.table["diverged"].to_numpy(dtype=bool))

    def barcode_indices(self) -> np.ndarray:
        """Return the indices of the networks that did not diverge, for a barcode.

        Logs a warning that names the diverged networks by their ``group`` (when the table
        has one) and ``seed``.

        Raises
        ------
        RuntimeError
            If fewer than two networks trained without diverging.
        """
        indices = np.flatnonzero(self.finite.numpy())
        total = len(self.table)
        if len(indices) < total:
            labels = [column for column in ("group", "seed") if column in self.table.columns]
            dropped = self.table.drop(index=self.table.index[indices])[labels]
            logger.warning("%d of %d minima diverged and are left out of the barcode: %s",
                           total - len(indices), total, dropped.to_dict("records"))
        if len(indices) < 2:
            raise RuntimeError(f"only {len(indices)} of {total} minima trained without diverging; "
                               "a barcode needs at least two (lower the learning rate?)")
        return indices

    parameters: torch.Tensor
    table: pd.DataFrame


def initial_parameters(model: nn.Module, seeds) -> torch.Tensor:
    """Draw one initialization per seed with the modules' own ``reset_parameters``.

    The caller's module is left untouched. Returns a tensor of shape ``(len(seeds), D)``
    on the module's device. Each initialization depends only on its seed.
    """
    rows = []
    for seed in seeds:  # N is small; initialization is not a hot path
        copy_ = copy.deepcopy(model)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            for module in copy_.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
        rows.append(flatten_parameters(copy_))
    return torch.stack(rows)  # (N, D)


def train_minima(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor],
    test_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    *,
    seeds=range(8),
    epochs: int = 100,
    batch_size: int = 128,
    lr: float = 0.05,
    lr_schedule: Callable[[int], float] | None = None,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    loss: str = "cross_entropy",
    data_seed: int = 0,
    max_points_per_call: int | None = None,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> Minima:
    """Train one network per seed with minibatch SGD, all networks in one batched run.

    Every network starts from ``initial_parameters(model, [seed])`` and sees the same
    sequence of minibatches (shuffled each epoch by ``data_seed``), so the networks
    differ by initialization only and each minibatch feeds all of them at once.

    Parameters
    ----------
    model : nn.Module
        Architecture; never modified.
    train_data, test_data : tuple of Tensor
        ``(inputs, targets)``; ``test_data`` is optional and only reported.
    seeds : iterable of int, default range(8)
        One network per seed.
    epochs, batch_size : int
        Passes over the training set and examples per step. The last, smaller batch of
        an epoch is kept.
    lr : float
        Learning rate; with ``lr_schedule`` the rate at epoch ``e`` is ``lr_schedule(e)``.
    momentum : float, default 0.9
        Heavy-ball momentum as in ``torch.optim.SGD``.
    weight_decay : float, default 0.0
        L2 coefficient added to the training loss, ``lambda * ||theta||^2``.
    loss : str, default "cross_entropy"
    data_seed : int, default 0
        Seed of the minibatch order.
    max_points_per_call : int, optional
        Passed on to :class:`NetworkObjective`.
    device : str or torch.device, default "auto"
    progress : bool, default False
        Show a progress bar over epochs.

    Returns
    -------
    Minima
    """
    seeds = [int(seed) for seed in seeds]
    if len(seeds) < 1:
        raise ValueError("seeds is empty; give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct; got {seeds}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value}")

    device = resolve_device(device)
    objective = NetworkObjective(
        model, loss, train_data, weight_decay,
        max_points_per_call=max_points_per_call, device=device,
    )
    inputs, targets = objective.inputs, objective.targets
    theta = initial_parameters(model, seeds).to(device)  # (N, D)
    velocity = torch.zeros_like(theta)
    generator = torch.Generator().manual_seed(data_seed)

    # Divergence bookkeeping stays on the device, so no step waits for a host sync.
    diverged_step = torch.full((len(seeds),), -1, dtype=torch.long, device=device)
    diverged_value = torch.full((len(seeds),), float("nan"), device=device)
    step = 0

    for epoch in tqdm(range(epochs), desc="training minima", disable=not progress):
        rate = lr if lr_schedule is None else float(lr_schedule(epoch))
        order = torch.randperm(len(inputs), generator=generator).to(device)
        for start in range(0, len(inputs), batch_size):
            batch = order[start:start + batch_size]

            # Gradient of each network's own loss: the rows do not interact.
            with torch.enable_grad():
                points = theta.detach().requires_grad_(True)
                values = objective.loss_on(points, inputs[batch], targets[batch])  # (N,)
                (grads,) = torch.autograd.grad(values.sum(), points)  # (N, D)

            # A network whose loss or gradient stops being finite is frozen at its last
            # finite parameters and flagged with the step and the value.
            bad = ~torch.isfinite(values.detach()) | ~torch.isfinite(grads).all(dim=1)  # (N,)
            newly = bad & (diverged_step < 0)
            diverged_step = torch.where(newly, step, diverged_step)
            diverged_value = torch.where(newly, values.detach(), diverged_value)
            frozen = (diverged_step >= 0)[:, None]  # (N, 1)
            grads = grads.masked_fill(frozen, 0.0)
            velocity.masked_fill_(frozen, 0.0)

            # SGD with heavy-ball momentum, the torch.optim.SGD update.
            velocity.mul_(momentum).add_(grads)
            theta.sub_(rate * velocity)
            step += 1

    table = pd.DataFrame({"seed": seeds})
    for split, data in (("train", train_data), ("test", test_data)):
        if data is None:
            continue
        metrics = objective.metrics(theta, *data)
        table[f"{split}_loss"] = metrics["loss"].cpu().numpy()
        table[f"{split}_accuracy"] = metrics["accuracy"].cpu().numpy()
    table["diverged"] = (diverged_step >= 0).cpu().numpy()
    table["diverged_step"] = diverged_step.cpu().numpy()
    table["diverged_value"] = diverged_value.double().cpu().numpy()
    for row in table[table["diverged"]].itertuples():
        logger.warning("network with seed %d diverged at step %d (loss %s); it is frozen there",
                       row.seed, row.diverged_step, row.diverged_value)
    logger.info("trained %d minima: mean train loss %.4g", len(seeds), table["train_loss"].mean())
    return Minima(parameters=theta.detach(), table=table)
