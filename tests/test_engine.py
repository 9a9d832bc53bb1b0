"""The shared-input GEMM plan for MLPs agrees with vmap over functional_call."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from toscore import NetworkObjective, build_model
from toscore.engine import plan_mlp


def _vmap_losses(model, params, inputs, targets, loss):
    def one(p):
        return loss(functional_call(model, p, (inputs,)), targets)

    return vmap(one)(params)


def _stacked_params(model, n_points, generator):
    return {
        name: torch.randn(n_points, *p.shape, generator=generator, dtype=torch.float64)
        for name, p in model.named_parameters()
    }


@pytest.mark.parametrize("activation", [nn.ReLU(), nn.Tanh(), nn.GELU()])
@pytest.mark.parametrize("bias", [True, False])
def test_plan_matches_vmap(activation, bias):
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 7, bias=bias), activation,
                          nn.Linear(7, 5, bias=bias), activation, nn.Linear(5, 3)).double()
    inputs = torch.randn(20, 3, 4, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 3, (20,), generator=generator)
    params = {k: v.requires_grad_(True) for k, v in _stacked_params(model, 6, generator).items()}
    plan = plan_mlp(model)

    expected = _vmap_losses(model, params, inputs, targets, F.cross_entropy)
    actual = plan.losses(params, inputs, targets, F.cross_entropy)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)

    grads_expected = torch.autograd.grad(expected.sum(), list(params.values()))
    params_again = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    grads_actual = torch.autograd.grad(
        plan.losses(params_again, inputs, targets, F.cross_entropy).sum(), list(params_again.values())
    )
    for got, want in zip(grads_actual, grads_expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_plan_with_other_loss_matches_vmap():
    generator = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)).double()
    inputs = torch.randn(9, 4, generator=generator, dtype=torch.float64)
    targets = torch.randn(9, 2, generator=generator, dtype=torch.float64)
    params = _stacked_params(model, 3, generator)
    expected = _vmap_losses(model, params, inputs, targets, F.mse_loss)
    actual = plan_mlp(model).losses(params, inputs, targets, F.mse_loss)
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)),
        nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.Linear(4, 2)),
        nn.Sequential(nn.ReLU()),
        build_model({"name": "cnn", "input_shape": (1, 8, 8), "n_conv": 1, "channels": 2,
                     "batch_norm": False, "n_classes": 3}),
    ],
    ids=["batchnorm", "dropout", "no-linear", "cnn"],
)
def test_plan_rejects_other_models(model):
    assert plan_mlp(model) is None


def test_objective_uses_plan_and_agrees_with_vmap_path():
    generator = torch.Generator().manual_seed(2)
    model = build_model({"name": "mlp", "input_dim": 10, "depth": 2, "width": 8, "n_classes": 4}).double()
    inputs = torch.randn(30, 10, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 4, (30,), generator=generator)
    objective = NetworkObjective(model, "cross_entropy", (inputs, targets), device="cpu")
    assert objective._plan is not None
    theta = torch.randn(11, objective.dim, generator=generator, dtype=torch.float64)
    expected = _vmap_losses(model, objective.unflatten(theta), inputs, targets, F.cross_entropy)
    torch.testing.assert_close(objective(theta), expected, rtol=1e-12, atol=1e-12)
