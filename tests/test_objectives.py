"""Tests of toscore.objectives: the batched network objective against a plain loop."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from toscore import NetworkObjective, build_model, value_and_grad

N_EXAMPLES, N_FEATURES, N_CLASSES = 37, 8, 3

# (rtol, atol) of float32 comparisons. vmap and the loop reduce in different orders, so
# values agree to a few float32 ulps of the loss (~1e-7 relative). Gradients sum more
# terms and get a wider margin.
FLOAT32_VALUES = dict(rtol=1e-5, atol=1e-6)
FLOAT32_GRADS = dict(rtol=1e-4, atol=1e-6)
FLOAT64 = dict(rtol=1e-10, atol=1e-12)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors here are tiny: thread hand-offs would dominate the runtime."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mlp(dtype):
    torch.manual_seed(0)
    config = dict(name="mlp", input_dim=N_FEATURES, depth=1, width=6, n_classes=N_CLASSES)
    return build_model(config).to(dtype)


class _ScaledInputs(nn.Module):
    """Two-layer network whose inputs are scaled by a fixed buffer before the first layer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.linspace(0.5, 2.0, N_FEATURES))
        self.hidden = nn.Linear(N_FEATURES, 5)
        self.out = nn.Linear(5, N_CLASSES)

    def forward(self, inputs):
        return self.out(torch.tanh(self.hidden(inputs * self.scale)))


def _buffered_net(dtype):
    torch.manual_seed(1)
    return _ScaledInputs().to(dtype)


def _batchnorm_net(dtype):
    """Small network with batch norm in eval mode, with non-trivial running statistics."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(N_FEATURES, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, N_CLASSES))
    net[1].running_mean.uniform_(-1, 1)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.to(dtype).eval()


MODELS = {"mlp": _mlp, "buffered": _buffered_net, "batchnorm": _batchnorm_net}


def _has_batch_norm(model):
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _data(dtype, seed=2):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(N_EXAMPLES, N_FEATURES, generator=generator, dtype=dtype)
    targets = torch.randint(0, N_CLASSES, (N_EXAMPLES,), generator=generator)
    return inputs, targets


def _points(n_points, dim, dtype, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(n_points, dim, generator=generator, dtype=dtype)


def _loop_losses(model, theta, inputs, targets, loss=F.cross_entropy, batch_norm_chunk=None):
    """Reference: one fresh module per row, loaded with vector_to_parameters.

    Batch norm follows the objective's documented policy: batch statistics whatever the
    mode of ``model``, computed per chunk of ``batch_norm_chunk`` examples, with the mean
    loss weighted by chunk size. Without batch norm the loss is one mean over all examples.
    """
    chunk = batch_norm_chunk if _has_batch_norm(model) and batch_norm_chunk else len(inputs)
    values, grads = [], []
    for row in theta:
        net = copy.deepcopy(model).train()  # a copy: its running statistics do not matter
        vector_to_parameters(row.clone(), net.parameters())
        for p in net.parameters():
            p.requires_grad_(True)
        value = sum(
            loss(net(inputs[start:start + chunk]), targets[start:start + chunk])
            * (len(inputs[start:start + chunk]) / len(inputs))
            for start in range(0, len(inputs), chunk)
        )
        value.backward()
        values.append(value.detach())
        grads.append(torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
    return torch.stack(values), torch.stack(grads)


def _tolerances(dtype):
    if dtype == torch.float64:
        return FLOAT64, FLOAT64
    return FLOAT32_VALUES, FLOAT32_GRADS


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize(
    "n_points, max_points, max_examples",
    [(1, 1, None), (5, 2, 10), (130, 64, 16)],
)
def test_batched_matches_loop(dtype, model_name, n_points, max_points, max_examples):
    model = MODELS[model_name](dtype)
    inputs, targets = _data(dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        objective = NetworkObjective(
            model, "cross_entropy", (inputs, targets), device="cpu",
            max_points_per_call=max_points, max_examples_per_call=max_examples,
        )
    # Chunked batch statistics change the values, and only that case warns.
    batch_norm_warnings = [str(w.message) for w in caught if "batch norm" in str(w.message)]
    if _has_batch_norm(model) and max_examples is not None:
        assert len(batch_norm_warnings) == 1
        assert f"max_examples_per_call={max_examples}" in batch_norm_warnings[0]
    else:
        assert batch_norm_warnings == []
    theta = _points(n_points, objective.dim, dtype)
    expected_values, expected_grads = _loop_losses(model, theta, inputs, targets, batch_norm_chunk=max_examples)
    value_tol, grad_tol = _tolerances(dtype)

    values = objective(theta)
    assert values.shape == (n_points,)
    assert values.dtype == dtype
    torch.testing.assert_close(values, expected_values, **value_tol)

    values, grads = value_and_grad(objective, theta)
    assert grads.shape == (n_points, objective.dim)
    torch.testing.assert_close(values, expected_values, **value_tol)
    torch.testing.assert_close(grads, expected_grads, **grad_tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mse_loss_matches_loop(dtype):
    model = _mlp(dtype)
    inputs, _ = _data(dtype)
    targets = torch.randn(N_EXAMPLES, N_CLASSES, generator=torch.Generator().manual_seed(4), dtype=dtype)
    objective = NetworkObjective(model, "mse", (inputs, targets), device="cpu", max_examples_per_call=5)
    theta = _points(7, objective.dim, dtype)
    expected_values, expected_grads = _loop_losses(model, theta, inputs, targets, F.mse_loss)
    value_tol, grad_tol = _tolerances(dtype)
    values, grads = objective.value_and_grad(theta)
    torch.testing.assert_close(values, expected_values, **value_tol)
    torch.testing.assert_close(grads, expected_grads, **grad_tol)
    # Float targets have no classes: accuracy is undefined.
    assert torch.isnan(objective.metrics(theta)["accuracy"]).all()


def test_weight_decay_adds_l2_term():
    dtype, lam = torch.float64, 0.037
    model = _mlp(dtype)
    data = _data(dtype)
    plain = NetworkObjective(model, "cross_entropy", data, device="cpu", max_points_per_call=4)
    decayed = NetworkObjective(model, "cross_entropy", data, lam, device="cpu", max_points_per_call=4)
    theta = _points(9, plain.dim, dtype)
    squared_norm = (theta * theta).sum(dim=1)

    torch.testing.assert_close(decayed(theta), plain(theta) + lam * squared_norm, rtol=1e-13, atol=0)
    expected_values, expected_grads = _loop_losses(model, theta, *data)
    values, grads = decayed.value_and_grad(theta)
    torch.testing.assert_close(values, expected_values + lam * squared_norm, **FLOAT64)
    torch.testing.assert_close(grads, expected_grads + 2 * lam * theta, **FLOAT64)

    # Metrics report the data loss alone.
    torch.testing.assert_close(decayed.metrics(theta)["loss"], expected_values, **FLOAT64)


def test_subset_uses_only_its_rows():
    dtype = torch.float64
    model = _mlp(dtype)
    inputs, targets = _data(dtype)
    rows = torch.tensor([30, 2, 2, 17, 5, 11])
    objective = NetworkObjective(model, "cross_entropy", (inputs, targets), subset=rows, device="cpu")
    theta = _points(6, objective.dim, dtype)

    assert objective.n_examples == len(rows)
    assert objective.subset_name == "subset"
    expected, _ = _loop_losses(model, theta, inputs[rows], targets[rows])
    torch.testing.assert_close(objective(theta), expected, **FLOAT64)
    # Rows outside the subset do not matter: corrupting them changes nothing.
    corrupted = inputs.clone()
    outside = torch.ones(N_EXAMPLES, dtype=torch.bool)
    outside[rows] = False
    corrupted[outside] = 1e3
    other = NetworkObjective(model, "cross_entropy", (corrupted, targets), subset=rows.tolist(), device="cpu")
    torch.testing.assert_close(other(theta), expected, **FLOAT64)

    named = NetworkObjective(model, "cross_entropy", (inputs, targets), subset=rows,
                             subset_name="probe", device="cpu")
    assert named.subset_name == "probe"
    assert NetworkObjective(model, "cross_entropy", (inputs, targets), device="cpu").subset_name == "full"


@pytest.mark.parametrize("max_examples", [None, 6])
def test_metrics_match_hand_count(max_examples):
    dtype = torch.float64
    model = _mlp(dtype)
    inputs, targets = _data(dtype)
    objective = NetworkObjective(model, "cross_entropy", (inputs, targets), device="cpu",
                                 max_points_per_call=3, max_examples_per_call=max_examples)
    theta = 2.0 * _points(8, objective.dim, dtype)
    other_inputs, other_targets = _data(dtype, seed=9)

    for given, (x, y) in ((False, (inputs, targets)), (True, (other_inputs, other_targets))):
        metrics = objective.metrics(theta, x, y) if given else objective.metrics(theta)
        expected_loss, _ = _loop_losses(model, theta, x, y)
        hand_accuracy = []
        for row in theta:
            net = copy.deepcopy(model)
            vector_to_parameters(row.clone(), net.parameters())
            with torch.no_grad():
                predicted = net(x).argmax(dim=1)
            hand_accuracy.append(sum(int(p == t) for p, t in zip(predicted.tolist(), y.tolist())) / len(y))
        torch.testing.assert_close(metrics["loss"], expected_loss, **FLOAT64)
        assert metrics["accuracy"].tolist() == pytest.approx(hand_accuracy, abs=1e-6)
    # The accuracies must not all coincide, or the check above proves little.
    assert len(set(hand_accuracy)) > 1


def _snapshot(model):
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict(keep_vars=True).items()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    return state, flags


def _assert_unchanged(model, snapshot):
    state, flags = snapshot
    now = model.state_dict(keep_vars=True)
    assert now.keys() == state.keys()
    for name, tensor in state.items():
        assert now[name].device == tensor.device
        assert now[name].dtype == tensor.dtype
        assert torch.equal(now[name].detach(), tensor), name
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_caller_module_unchanged(model_name):
    dtype = torch.float32
    model = MODELS[model_name](dtype)
    first = next(model.parameters())
    first.requires_grad_(False)  # a mixed set of flags must survive as it is
    training = model.training
    snapshot = _snapshot(model)

    objective = NetworkObjective(model, "cross_entropy", _data(dtype), 1e-3, device="cpu")
    theta = _points(4, objective.dim, dtype)
    objective(theta)
    objective.value_and_grad(theta)
    objective.metrics(theta)
    objective.flatten(model)
    _assert_unchanged(model, snapshot)
    assert model.training == training


def test_train_mode_batchnorm_buffers_unchanged():
    # Batch norm in train mode updates its running statistics in place in a plain forward
    # pass. The batched evaluation must leave the caller's buffers as they were.
    dtype = torch.float64
    model = _batchnorm_net(dtype).train()
    snapshot = _snapshot(model)
    data = _data(dtype)
    objective = NetworkObjective(model, "cross_entropy", data, device="cpu")
    theta = _points(3, objective.dim, dtype)
    values, _ = objective.value_and_grad(theta)
    objective.metrics(theta)
    _assert_unchanged(model, snapshot)
    assert model.training

    # The mode of the caller's module does not change the values.
    expected, _ = _loop_losses(model, theta, *data)
    torch.testing.assert_close(values, expected, **FLOAT64)


@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_flatten_unflatten_round_trip(model_name):
    model = MODELS[model_name](torch.float64)
    objective = NetworkObjective(model, "cross_entropy", _data(torch.float64), device="cpu")
    flat = objective.flatten(model)
    assert flat.shape == (objective.dim,)
    assert objective.dim == sum(p.numel() for p in model.parameters())
    assert torch.equal(flat, parameters_to_vector(model.parameters()))

    theta = torch.stack([flat, 2 * flat, -flat])  # (3, D)
    pieces = objective.unflatten(theta)
    named = dict(model.named_parameters())
    assert list(pieces) == list(named)
    for name, piece in pieces.items():
        assert piece.shape == (3, *named[name].shape)
        assert torch.equal(piece[0], named[name].detach())
        assert torch.equal(piece[1], 2 * named[name].detach())
    rebuilt = torch.cat([piece.reshape(3, -1) for piece in pieces.values()], dim=1)
    assert torch.equal(rebuilt, theta)


def _rosenbrock(theta, a=1.0, b=100.0):
    x, y = theta[:, 0], theta[:, 1]
    return (a - x) ** 2 + b * (y - x**2) ** 2


def test_value_and_grad_analytic():
    generator = torch.Generator().manual_seed(5)
    theta = 3 * torch.rand(11, 2, generator=generator, dtype=torch.float64) - 1.5
    theta[0] = torch.tensor([1.0, 1.0])  # the minimum: value and gradient zero
    values, grads = value_and_grad(_rosenbrock, theta)

    x, y = theta[:, 0], theta[:, 1]
    expected_values = (1 - x) ** 2 + 100 * (y - x**2) ** 2
    expected_grads = torch.stack([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)], dim=1)
    torch.testing.assert_close(values, expected_values, rtol=1e-14, atol=0)
    torch.testing.assert_close(grads, expected_grads, rtol=1e-12, atol=1e-12)
    assert values[0] == 0
    assert torch.equal(grads[0], torch.zeros(2, dtype=torch.float64))
    assert not theta.requires_grad
    assert not values.requires_grad


def test_bad_shapes_raise():
    model = _mlp(torch.float64)
    inputs, targets = _data(torch.float64)
    objective = NetworkObjective(model, "cross_entropy", (inputs, targets), device="cpu")
    dim = objective.dim
    for theta in (torch.zeros(dim, dtype=torch.float64), torch.zeros(2, dim + 1, dtype=torch.float64)):
        with pytest.raises(ValueError, match=rf"theta must have shape \(P, {dim}\)"):
            objective(theta)
        with pytest.raises(ValueError, match="theta must have shape"):
            objective.unflatten(theta)
    with pytest.raises(ValueError, match="parameter shapes differ"):
        objective.flatten(build_model(dict(name="mlp", input_dim=N_FEATURES, depth=1, width=7, n_classes=3)))
    with pytest.raises(ValueError, match="data has 37 inputs but 36 targets"):
        NetworkObjective(model, "cross_entropy", (inputs, targets[:-1]), device="cpu")


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(loss="hinge"), r"unknown loss 'hinge'.*cross_entropy"),
        (dict(weight_decay=-0.1), r"weight_decay must be >= 0; got -0.1"),
        (dict(max_points_per_call=0), r"max_points_per_call must be a positive integer; got 0"),
        (dict(max_examples_per_call=-3), r"max_examples_per_call must be a positive integer; got -3"),
    ],
)
def test_bad_settings_raise(settings, message):
    arguments = dict(loss="cross_entropy", data=_data(torch.float64), device="cpu") | settings
    with pytest.raises(ValueError, match=message):
        NetworkObjective(_mlp(torch.float64), **arguments)
