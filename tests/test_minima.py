"""Tests of toscore.minima: batched training against one-by-one runs and torch.optim.SGD."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import vector_to_parameters

from toscore import build_model, initial_parameters, load_dataset, train_minima

DIVERGENCE_COLUMNS = {"diverged", "diverged_step", "diverged_value"}
TABLE_COLUMNS = {"seed", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                 *DIVERGENCE_COLUMNS}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Networks here are tiny: thread hand-offs would dominate the runtime."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _mlp(dtype=torch.float32, width=8):
    return build_model(dict(name="mlp", input_dim=64, depth=1, width=width, n_classes=10)).to(dtype)


def _slice(digits, n_train, dtype, n_test=None):
    train = (digits.train_x[:n_train].to(dtype), digits.train_y[:n_train])
    if n_test is None:
        return train, None
    return train, (digits.test_x[:n_test].to(dtype), digits.test_y[:n_test])


def _loaded(model, row):
    net = copy.deepcopy(model)
    vector_to_parameters(row.clone(), net.parameters())
    return net


def _reference_initialization(model, seed):
    """The documented rule, written out: seed, then every module's reset_parameters in order."""
    net = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in net.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return net


def test_same_seeds_bitwise_identical(digits):
    train, test = _slice(digits, 150, torch.float32, n_test=60)
    settings = dict(seeds=[4, 0, 9], epochs=2, batch_size=32, lr=0.05, data_seed=3, device="cpu")
    first = train_minima(_mlp(), train, test, **settings)
    second = train_minima(_mlp(), train, test, **settings)
    assert torch.equal(first.parameters, second.parameters)
    pd.testing.assert_frame_equal(first.table, second.table, check_exact=True)

    # The minibatch order matters, so the check above is not vacuous.
    shuffled = train_minima(_mlp(), train, test, **(settings | dict(data_seed=4)))
    assert not torch.allclose(first.parameters, shuffled.parameters, atol=1e-3)


# float64: the batched and the single runs do the same arithmetic up to the summation order
# of batched matrix products, ~1e-16 relative per step, and 1e-12 leaves room for growth
# over the 15 steps. float32: the same differences are ~1e-7 per step. They are exactly
# zero on this CPU build, but other BLAS kernels or GPUs do not promise that. 1e-5 allows
# their growth and is still four orders of magnitude below the change made by training.
@pytest.mark.parametrize("dtype, atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_batched_matches_one_by_one(digits, dtype, atol):
    model = _mlp(dtype)
    train, _ = _slice(digits, 150, dtype)
    seeds = [3, 5, 11]
    settings = dict(epochs=3, batch_size=32, lr=0.05, data_seed=7, device="cpu", max_points_per_call=2)
    batched = train_minima(model, train, seeds=seeds, **settings)
    singles = [train_minima(model, train, seeds=[seed], **settings) for seed in seeds]

    stacked = torch.cat([single.parameters for single in singles])
    assert batched.parameters.shape == stacked.shape == (3, sum(p.numel() for p in model.parameters()))
    torch.testing.assert_close(batched.parameters, stacked, rtol=0, atol=atol)
    start = initial_parameters(model, seeds)
    assert (batched.parameters - start).abs().max() > 0.1  # the networks did move

    single_table = pd.concat([single.table for single in singles], ignore_index=True)
    assert batched.table["seed"].tolist() == seeds
    np.testing.assert_allclose(batched.table["train_loss"], single_table["train_loss"], rtol=100 * atol)


def test_matches_torch_sgd(digits):
    dtype, seed, data_seed = torch.float64, 6, 12
    lr, lam, epochs, batch_size = 0.08, 1e-3, 3, 48  # 100 examples: the last batch has 4
    train, test = _slice(digits, 100, dtype, n_test=50)
    model = _mlp(dtype)

    def schedule(epoch):
        return lr / (1 + epoch)

    result = train_minima(
        model, train, test, seeds=[seed], epochs=epochs, batch_size=batch_size, lr=lr,
        lr_schedule=schedule, momentum=0.9, weight_decay=lam, data_seed=data_seed, device="cpu",
    )

    # Reference: nn.Module + torch.optim.SGD. Its weight_decay adds w*theta to the gradient,
    # which is the gradient of (w/2)*||theta||^2, hence 2*lambda.
    net = _reference_initialization(model, seed)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=2 * lam)
    inputs, targets = train
    generator = torch.Generator().manual_seed(data_seed)
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = schedule(epoch)
        order = torch.randperm(len(inputs), generator=generator)
        for start in range(0, len(inputs), batch_size):
            batch = order[start:start + batch_size]
            optimizer.zero_grad()
            F.cross_entropy(net(inputs[batch]), targets[batch]).backward()
            optimizer.step()

    expected = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    start = torch.cat([p.detach().reshape(-1) for p in _reference_initialization(model, seed).parameters()])
    assert (expected - start).abs().max() > 0.05
    torch.testing.assert_close(result.parameters[0], expected, rtol=0, atol=1e-10)

    # The table reports the data loss (no L2 term) and the accuracy of the trained network.
    with torch.no_grad():
        for split, (x, y) in (("train", train), ("test", test)):
            outputs = net(x)
            assert result.table[f"{split}_loss"][0] == pytest.approx(F.cross_entropy(outputs, y).item(), rel=1e-9)
            hand = (outputs.argmax(dim=1) == y).double().mean().item()
            assert result.table[f"{split}_accuracy"][0] == pytest.approx(hand, abs=1e-6)


def test_initial_parameters_depend_on_seed():
    model = _mlp(torch.float32, width=5)
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    rng_state = torch.get_rng_state()

    a = initial_parameters(model, [7, 1, 2])
    b = initial_parameters(model, [2, 7])
    c = initial_parameters(model, range(3))
    dim = sum(p.numel() for p in model.parameters())
    assert a.shape == (3, dim)
    assert c.shape == (3, dim)
    assert torch.equal(a[0], b[1])
    assert torch.equal(a[2], b[0])
    assert torch.equal(a[1], c[1])
    assert torch.equal(a[2], c[2])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[1], a[2])

    # Same as a module freshly built under that seed, whose constructors draw the same way.
    for row, seed in zip(a, [7, 1, 2]):
        torch.manual_seed(seed)
        fresh = _mlp(torch.float32, width=5)
        assert torch.equal(row, torch.cat([p.detach().reshape(-1) for p in fresh.parameters()]))

    torch.set_rng_state(rng_state)
    initial_parameters(model, [3])
    assert torch.equal(torch.get_rng_state(), rng_state)  # the global generator is not consumed
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())
    assert [p.requires_grad for p in model.parameters()] == flags


def test_digits_training_lowers_loss(digits):
    model = _mlp(torch.float32, width=16)
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    seeds = [0, 1, 2]
    result = train_minima(model, digits.train, digits.test, seeds=seeds, epochs=4, batch_size=128,
                          lr=0.05, device="cpu")

    assert set(result.table.columns) == TABLE_COLUMNS
    assert result.table["seed"].tolist() == seeds
    for split in ("train", "test"):
        accuracy = result.table[f"{split}_accuracy"].to_numpy()
        assert np.all((accuracy >= 0) & (accuracy <= 1))

    start = initial_parameters(model, seeds)
    inputs, targets = digits.train
    with torch.no_grad():
        for row, (initial, trained) in enumerate(zip(start, result.parameters)):
            initial_loss = F.cross_entropy(_loaded(model, initial)(inputs), targets).item()
            net = _loaded(model, trained)
            trained_loss = F.cross_entropy(net(inputs), targets).item()
            assert trained_loss < 0.5 * initial_loss
            assert result.table["train_loss"][row] == pytest.approx(trained_loss, rel=1e-5)
            test_outputs = net(digits.test_x)
            hand = (test_outputs.argmax(dim=1) == digits.test_y).double().mean().item()
            assert result.table["test_accuracy"][row] == pytest.approx(hand, abs=1e-6)
    assert result.table["train_accuracy"].min() > 0.5  # 10 classes: chance is 0.1
    assert all(torch.equal(model.state_dict()[name], value) for name, value in before.items())


def test_table_without_test_data(digits):
    train, _ = _slice(digits, 40, torch.float32)
    result = train_minima(_mlp(), train, seeds=[5], epochs=1, batch_size=16, device="cpu")
    assert set(result.table.columns) == {"seed", "train_loss", "train_accuracy", *DIVERGENCE_COLUMNS}


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(seeds=[]), "seeds is empty"),
        (dict(seeds=[1, 2, 1]), r"seeds must be distinct; got \[1, 2, 1\]"),
        (dict(epochs=0), "epochs must be a positive integer; got 0"),
        (dict(batch_size=0), "batch_size must be a positive integer; got 0"),
    ],
)
def test_invalid_inputs_raise(digits, settings, message):
    train, _ = _slice(digits, 20, torch.float32)
    with pytest.raises(ValueError, match=message):
        train_minima(_mlp(), train, **(dict(epochs=1, device="cpu") | settings))


def test_divergence_of_one_network_leaves_others_untouched():
    from torch import nn

    torch.manual_seed(0)
    inputs = torch.randn(32, 3, dtype=torch.float64)
    targets = torch.randint(0, 2, (32,))
    model = nn.Sequential(nn.Linear(3, 2)).double()
    reference = train_minima(model, (inputs, targets), seeds=[0], epochs=2, batch_size=8, lr=0.1,
                             device="cpu")

    def schedule(epoch):
        return 0.1

    # The second network starts at a non-finite point, so its very first loss is not finite.
    from toscore import minima as minima_module

    original = minima_module.initial_parameters

    def poisoned(model, seeds):
        theta = original(model, seeds)
        theta[1, 0] = float("inf")
        return theta

    minima_module.initial_parameters = poisoned
    try:
        result = train_minima(model, (inputs, targets), seeds=[0, 5], epochs=2, batch_size=8,
                              lr_schedule=schedule, lr=0.1, device="cpu")
    finally:
        minima_module.initial_parameters = original
    assert result.table["diverged"].tolist() == [False, True]
    assert result.table["diverged_step"].tolist() == [-1, 0]
    torch.testing.assert_close(result.parameters[0], reference.parameters[0], rtol=0, atol=0)
    assert result.finite.tolist() == [True, False]


# Minima records: saving and the networks a barcode keeps.


def _records(diverged, groups=None):
    from toscore.minima import Minima

    table = pd.DataFrame({"seed": range(10, 10 + len(diverged)), "diverged": diverged,
                          "train_loss": np.linspace(0.1, 0.5, len(diverged))})
    if groups is not None:
        table.insert(0, "group", groups)
    return Minima(parameters=torch.arange(len(diverged) * 3.0).reshape(-1, 3), table=table)


def test_to_arrays_loads_without_pickle(tmp_path):
    minima = _records([False, False], groups=["type 1", "type 2"])
    np.savez(tmp_path / "minima.npz", **minima.to_arrays())
    with np.load(tmp_path / "minima.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    loaded = type(minima).from_arrays(arrays)
    assert loaded.table["group"].tolist() == ["type 1", "type 2"]
    assert loaded.table["seed"].tolist() == [10, 11]
    assert torch.equal(loaded.parameters, minima.parameters)


def test_barcode_indices_skip_diverged(caplog):
    minima = _records([False, True, False, True], groups=["a", "a", "b", "b"])
    with caplog.at_level("WARNING", logger="toscore"):
        indices = minima.barcode_indices()
    assert indices.tolist() == [0, 2]
    assert "2 of 4 minima diverged" in caplog.text
    assert "{'group': 'a', 'seed': 11}" in caplog.text
    assert "{'group': 'b', 'seed': 13}" in caplog.text


def test_barcode_indices_need_two():
    assert _records([False, False]).barcode_indices().tolist() == [0, 1]
    with pytest.raises(RuntimeError, match="only 1 of 3 minima trained without diverging"):
        _records([True, False, True]).barcode_indices()
