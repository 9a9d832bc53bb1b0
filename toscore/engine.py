"""Fast batched forward pass for fully connected networks.

``vmap`` over ``functional_call`` treats every parameter vector as its own network and,
on the CPU, stacks activations of shape ``(P, n, width)`` whose layout forces copies
between layers. For a plain stack of linear layers and elementwise activations a better
plan exists: keep activations transposed, ``(P, features, n)``. The first layer, whose
input all P networks share, is then one GEMM ``(P * width, d) @ (d, n)`` and every later
layer one batched GEMM, with no copy in between. Autograd differentiates it as usual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MlpPlan", "plan_mlp"]

# Parameter-free elementwise modules that commute with the transposed layout.
_ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.Softplus,
                nn.Identity)


class MlpPlan:
    """Forward pass of a ``Sequential`` of ``Linear`` layers and elementwise activations.

    Built by :func:`plan_mlp`; ``outputs(params, inputs)`` returns the ``(P, n_outputs,
    n)`` outputs of P networks, and ``losses`` their ``(P,)`` mean losses.
    """

    def __init__(self, steps: list[tuple[str, object]]) -> None:
        self.steps = steps  # ("linear", (weight name, bias name or None)) or ("act", module)

    def outputs(self, params: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        """Outputs of every network, shape ``(P, n_outputs, n)``, from shared ``(n, ...)`` inputs."""
        hidden = inputs.reshape(len(inputs), -1).T  # (d, n), shared by all networks
        shared = True
        for kind, item in self.steps:
            if kind == "act":
                hidden = item(hidden)
                continue
            weight_name, bias_name = item
            weight = params[weight_name]  # (P, out, in)
            n_points, n_out, n_in = weight.shape
            if shared:
                # One GEMM for all networks: (P*out, in) @ (in, n) -> (P, out, n), no copy.
                hidden = (weight.reshape(n_points * n_out, n_in) @ hidden).reshape(n_points, n_out, -1)
                shared = False
            else:
                hidden = torch.bmm(weight, hidden)  # (P, out, in) @ (P, in, n)
            if bias_name is not None:
                hidden = hidden + params[bias_name][:, :, None]  # (P, out, 1)
        if shared:  # no linear layer at all: nothing depends on the parameters
            raise ValueError("the network has no linear layer")
        return hidden

    def losses(self, params, inputs, targets, loss) -> torch.Tensor:
        """Mean loss of every network over the batch, shape ``(P,)``."""
        outputs = self.outputs(params, inputs)  # (P, C, n)
        if loss is F.cross_entropy:
            expanded = targets.expand(outputs.shape[0], *targets.shape)  # (P, n)
            return F.cross_entropy(outputs, expanded, reduction="none").mean(dim=1)
        return torch.vmap(loss, in_dims=(0, None))(outputs.transpose(1, 2), targets)


def plan_mlp(model: nn.Module) -> MlpPlan | None:
    """Return an :class:`MlpPlan` for ``model``, or None when it is not a plain MLP.

    A plain MLP is an ``nn.Sequential`` of ``Linear`` layers and parameter-free
    elementwise activations, optionally starting with ``Flatten``, with no buffers.
    """
    if not isinstance(model, nn.Sequential) or any(True for _ in model.buffers()):
        return None
    steps: list[tuple[str, object]] = []
    for index, module in enumerate(model):
        if isinstance(module, nn.Flatten) and index == 0:
            continue
        if isinstance(module, nn.Linear):
            bias = f"{index}.bias" if module.bias is not None else None
            steps.append(("linear", (f"{index}.weight", bias)))
        elif isinstance(module, _ELEMENTWISE):
            steps.append(("act", module))
        else:
            return None
    if not any(kind == "linear" for kind, _ in steps):
        return None
    return MlpPlan(steps)
