"""Tests of toscore.models: builders, parameter counts, and batched evaluation of each one.

Expected parameter counts come from the architecture formulas written out below. Published
totals anchor the formulas. CIFAR ResNet-20 with batch norm has 269722 parameters (0.27M in
He et al., 2016). WRN-16-8, WRN-16-10, WRN-28-10 and WRN-40-4 have 11.0M, 17.1M, 36.5M and
8.9M (Zagoruyko & Komodakis, 2016). LeNet-5-like on 3x32x32 has 62006, worked out below.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import vector_to_parameters

from toscore import NetworkObjective, build_model, count_parameters, value_and_grad
from toscore.models import describe_model

FLOAT64 = dict(rtol=1e-10, atol=1e-12)
N_EXAMPLES = 8


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors here are tiny: thread hand-offs would dominate the runtime."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Hand formulas. ``kernel`` is the number of weights per input-output channel pair
# (9 for a 3x3 convolution, 3 for kernel 3 in 1-D).


def _conv(kernel, c_in, c_out, bias=True):
    return kernel * c_in * c_out + (c_out if bias else 0)


def _linear(n_in, n_out):
    return n_in * n_out + n_out


def _resnet_count(depth, width, in_channels, n_classes):
    """CIFAR ResNet without batch norm: biased 3x3 convolutions and option-A shortcuts."""
    blocks = (depth - 2) // 6
    stem = depth - 6 * blocks - 1
    c = round(16 * width)
    total = _conv(9, in_channels, c) + (stem - 1) * _conv(9, c, c)
    c_in = c
    for channels in (c, 2 * c, 4 * c):
        for _ in range(blocks):
            total += _conv(9, c_in, channels) + _conv(9, channels, channels)
            c_in = channels
    return total + _linear(4 * c, n_classes)


def _wide_resnet_count(depth, k, in_channels, n_classes):
    """Pre-activation WRN: bias-free convolutions, 2 batch-norm parameters per channel."""
    blocks = (depth - 4) // 6
    total = _conv(9, in_channels, 16, bias=False)
    c_in = 16
    for group, channels in enumerate((16 * k, 32 * k, 64 * k)):
        for block in range(blocks):
            stride = 2 if group > 0 and block == 0 else 1
            total += 2 * c_in + _conv(9, c_in, channels, bias=False)
            total += 2 * channels + _conv(9, channels, channels, bias=False)
            if c_in != channels or stride != 1:
                total += _conv(1, c_in, channels, bias=False)
            c_in = channels
    return total + 2 * c_in + _linear(c_in, n_classes)


def _cnn_count(kernel, in_channels, n_conv, channels, n_classes, batch_norm, positions=1):
    per_layer_bn = 2 * channels if batch_norm else 0
    total = _conv(kernel, in_channels, channels, bias=not batch_norm) + per_layer_bn
    total += (n_conv - 1) * (_conv(kernel, channels, channels, bias=not batch_norm) + per_layer_bn)
    return total + _linear(channels * positions, n_classes)


def _on_meta(config):
    with torch.device("meta"):
        return build_model(config)


# Builders: forward shapes and argument checks.

SMALL_CONFIGS = {
    "mlp": dict(name="mlp", input_dim=12, depth=2, width=5, n_classes=3),
    "cnn_2d": dict(name="cnn", input_shape=(2, 6, 6), n_conv=3, channels=4, n_classes=3),
    "cnn_2d_bn": dict(name="cnn", input_shape=(2, 6, 6), n_conv=3, channels=4, n_classes=3, batch_norm=True),
    "cnn_1d_bn": dict(name="cnn", input_shape=(1, 40), n_conv=2, channels=3, n_classes=10, batch_norm=True),
    "lenet_2d": dict(name="lenet", input_shape=(1, 16, 16), n_classes=3),
    "lenet_1d": dict(name="lenet", input_shape=(1, 40), n_classes=10),
    "resnet_9": dict(name="resnet", depth=9, width=0.25, input_shape=(3, 8, 8), n_classes=3),
    "resnet_14": dict(name="resnet", depth=14, width=0.25, input_shape=(3, 8, 8), n_classes=3),
    "resnet_20_1d": dict(name="resnet", depth=20, width=0.25, input_shape=(1, 12), n_classes=3),
    "wide_resnet": dict(name="wide_resnet", depth=10, widen_factor=1, input_shape=(3, 8, 8), n_classes=3),
}


def _input_shape(config):
    return tuple(config["input_shape"]) if "input_shape" in config else (config["input_dim"],)


@pytest.mark.parametrize("key", sorted(SMALL_CONFIGS))
def test_forward_shape(key):
    config = SMALL_CONFIGS[key]
    torch.manual_seed(0)
    model = build_model(config)
    outputs = model(torch.randn(5, *_input_shape(config)))
    assert outputs.shape == (5, config["n_classes"])
    assert torch.isfinite(outputs).all()


@pytest.mark.parametrize(
    "config",
    [
        dict(name="cnn", input_shape=(1, 1, 1), n_conv=4, channels=2, n_classes=2),
        dict(name="cnn", input_shape=(1, 3), n_conv=6, channels=2, n_classes=2, batch_norm=True),
        dict(name="resnet", depth=20, width=0.25, input_shape=(3, 1, 1), n_classes=2),
        dict(name="wide_resnet", depth=10, widen_factor=1, input_shape=(3, 2, 3), n_classes=2),
        dict(name="lenet", input_shape=(1, 12, 13), padding=2, n_classes=2),
    ],
    ids=["cnn_1x1", "cnn_1d_length_3", "resnet_1x1", "wide_resnet_2x3", "lenet_padded"],
)
def test_smallest_inputs_stay_valid(config):
    model = build_model(config)
    outputs = model(torch.randn(2, *config["input_shape"]))
    assert outputs.shape == (2, 2)


@pytest.mark.parametrize(
    "input_shape, n_conv, n_pools",
    [((1, 8, 8), 6, 3), ((1, 8, 8), 5, 2), ((1, 3, 3), 4, 1), ((1, 1, 9), 4, 0), ((1, 40), 7, 3)],
)
def test_cnn_pool_placement(input_shape, n_conv, n_pools):
    model = build_model(dict(name="cnn", input_shape=input_shape, n_conv=n_conv, channels=2, n_classes=2))
    pools = [m for m in model.modules() if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d))]
    assert len(pools) == n_pools
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert len(convs) == n_conv
    assert all(type(m).__name__.endswith(f"{len(input_shape) - 1}d") for m in convs + pools)


def test_unknown_name_lists_registered_models():
    with pytest.raises(ValueError, match="unknown model 'vgg'") as error:
        build_model(dict(name="vgg", n_classes=10))
    for name in ("mlp", "cnn", "lenet", "resnet", "wide_resnet"):
        assert repr(name) in str(error.value)
    with pytest.raises(ValueError, match="needs a 'name' key"):
        build_model(dict(n_classes=10))


@pytest.mark.parametrize(
    "config, message",
    [
        (dict(name="cnn", input_shape=(3, 8, 8), n_conv=2, channels=4, n_classes=2, kernel=5),
         "invalid arguments for model 'cnn'"),
        (dict(name="lenet", n_classes=10), "invalid arguments for model 'lenet'"),
        (dict(name="cnn", input_shape=(3, 8, 8, 8), n_conv=2, channels=4, n_classes=2), "input_shape"),
        (dict(name="cnn", input_shape=(3, 0, 8), n_conv=2, channels=4, n_classes=2), "input_shape"),
        (dict(name="cnn", input_shape=(3, 8, 8), n_conv=0, channels=4, n_classes=2), "n_conv must be"),
        (dict(name="cnn", input_shape=(3, 8, 8), n_conv=2, channels=2.5, n_classes=2), "channels must be"),
        (dict(name="cnn", input_shape=(3, 8, 8), n_conv=2, channels=4, n_classes=2, batch_norm="yes"),
         "batch_norm must be True or False"),
        (dict(name="cnn", input_shape=(3, 8, 8), n_conv=2, channels=4, n_classes=2, head="max"),
         "head must be 'pool' or 'flatten'; got 'max'"),
        (dict(name="lenet", input_shape=(1, 8, 8), n_classes=10), r"s \+ 2 \* padding >= 16"),
        (dict(name="lenet", input_shape=(1, 32, 32), n_classes=0), "n_classes must be"),
        (dict(name="resnet", depth=18, input_shape=(3, 8, 8), n_classes=2), r"depth must be one of \[9, 14, 20\]"),
        (dict(name="resnet", width=0.01, input_shape=(3, 8, 8), n_classes=2), "width must give"),
        (dict(name="resnet", width=-1, input_shape=(3, 8, 8), n_classes=2), "width must be a positive"),
        (dict(name="resnet", residual_scale=0, input_shape=(3, 8, 8), n_classes=2), "residual_scale"),
        (dict(name="wide_resnet", depth=15, input_shape=(3, 8, 8), n_classes=2), r"depth must be 6 n \+ 4"),
        (dict(name="wide_resnet", depth=4, input_shape=(3, 8, 8), n_classes=2), r"depth must be 6 n \+ 4"),
        (dict(name="wide_resnet", widen_factor=0, input_shape=(3, 8, 8), n_classes=2), "widen_factor"),
    ],
)
def test_bad_arguments_raise(config, message):
    with pytest.raises(ValueError, match=message):
        build_model(config)


# Parameter counts against hand formulas and published totals.


def test_resnet20_formula_matches_published_batch_norm_count():
    # The batch-norm original replaces each conv bias (one per output channel) by a
    # batch-norm scale and shift: 19 convolutions with 16*7 + 32*6 + 64*6 = 688 channels.
    bn_channels = 16 * 7 + 32 * 6 + 64 * 6
    assert _resnet_count(20, 1, 3, 10) - bn_channels + 2 * bn_channels == 269722


@pytest.mark.parametrize("depth", [9, 14, 20])
@pytest.mark.parametrize("width", [1, 2, 0.5])
@pytest.mark.parametrize("n_classes", [10, 100])
def test_resnet_parameter_count(depth, width, n_classes):
    model = _on_meta(dict(name="resnet", depth=depth, width=width, input_shape=(3, 32, 32), n_classes=n_classes))
    assert count_parameters(model) == _resnet_count(depth, width, 3, n_classes)
    weight_layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weight_layers) == depth


@pytest.mark.parametrize("depth, k, millions", [(16, 10, 17.1), (28, 10, 36.5), (16, 8, 11.0), (40, 4, 8.9)])
def test_wide_resnet_formula_matches_published_counts(depth, k, millions):
    assert abs(_wide_resnet_count(depth, k, 3, 10) / 1e6 - millions) < 0.05


@pytest.mark.parametrize("depth, k", [(16, 10), (16, 1), (10, 2), (22, 4)])
@pytest.mark.parametrize("n_classes", [10, 100])
def test_wide_resnet_parameter_count(depth, k, n_classes):
    model = _on_meta(dict(name="wide_resnet", depth=depth, widen_factor=k, input_shape=(3, 32, 32),
                          n_classes=n_classes))
    assert count_parameters(model) == _wide_resnet_count(depth, k, 3, n_classes)


def test_lenet_parameter_count_on_cifar_shape():
    expected = (
        (3 * 6 * 25 + 6)           # conv1 5x5: 32 -> 28, pool -> 14
        + (6 * 16 * 25 + 16)       # conv2 5x5: 14 -> 10, pool -> 5
        + (16 * 5 * 5 * 120 + 120)
        + (120 * 84 + 84)
        + (84 * 10 + 10)
    )
    assert expected == 62006
    assert count_parameters(build_model(dict(name="lenet", input_shape=(3, 32, 32), n_classes=10))) == expected
    # MNIST 28x28 with padding 2 has the same 32x32 geometry.
    mnist = build_model(dict(name="lenet", input_shape=(1, 28, 28), padding=2, n_classes=10))
    assert count_parameters(mnist) == expected - 2 * 6 * 25
    # MNIST-1D, length 40: 40 -> 36 -> 18 -> 14 -> 7.
    signal = build_model(dict(name="lenet", input_shape=(1, 40), n_classes=10))
    assert count_parameters(signal) == (1 * 6 * 5 + 6) + (6 * 16 * 5 + 16) + (16 * 7 * 120 + 120) + 10164 + 850


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("input_shape, kernel", [((3, 32, 32), 9), ((1, 40), 3)])
@pytest.mark.parametrize("n_conv", [1, 4])
def test_cnn_parameter_count(batch_norm, input_shape, kernel, n_conv):
    config = dict(name="cnn", input_shape=input_shape, n_conv=n_conv, channels=32, n_classes=10,
                  batch_norm=batch_norm)
    expected = _cnn_count(kernel, input_shape[0], n_conv, 32, 10, batch_norm)
    assert count_parameters(build_model(config)) == expected


# Flatten head: on 8x8 inputs the last feature map has 8x8 positions after one layer, 4x4
# after two (one pool) and 2x2 after four (two pools). In 1-D it has 40, 20 and 10.
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("input_shape, kernel, positions", [
    ((1, 8, 8), 9, {1: 64, 2: 16, 4: 4}), ((1, 40), 3, {1: 40, 2: 20, 4: 10})])
@pytest.mark.parametrize("n_conv", [1, 2, 4])
def test_cnn_flatten_head_parameter_count(batch_norm, input_shape, kernel, positions, n_conv):
    config = dict(name="cnn", input_shape=input_shape, n_conv=n_conv, channels=5, n_classes=10,
                  batch_norm=batch_norm, head="flatten")
    expected = _cnn_count(kernel, input_shape[0], n_conv, 5, 10, batch_norm, positions[n_conv])
    model = build_model(config)
    assert count_parameters(model) == expected
    assert model(torch.randn(3, *input_shape)).shape == (3, 10)


# describe_model.


def test_describe_mlp_by_hand():
    info = describe_model(dict(name="mlp", input_dim=64, depth=2, width=32, n_classes=10))
    assert info["n_parameters"] == (64 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10)
    # Flatten 64, then Linear and ReLU 32 twice each, then the 10 logits.
    assert info["activation_elements"] == 64 + 4 * 32 + 10
    assert info["input_shape"] == (64,)
    assert info["output_shape"] == (10,)


def test_describe_cnn_by_hand():
    info = describe_model(dict(name="cnn", input_shape=(1, 8, 8), n_conv=2, channels=4, n_classes=10))
    assert info["n_parameters"] == (9 * 4 + 4) + (9 * 16 + 4) + (4 * 10 + 10)
    # conv, ReLU, conv, ReLU at 4x8x8; max pool 4x4x4; global pool and flatten 4; logits 10.
    assert info["activation_elements"] == 4 * 256 + 64 + 4 + 4 + 10
    assert info["output_shape"] == (10,)


def test_describe_large_model_without_allocating():
    info = describe_model(dict(name="wide_resnet", depth=16, widen_factor=10, input_shape=(3, 32, 32),
                               n_classes=100))
    assert info["n_parameters"] == _wide_resnet_count(16, 10, 3, 100)
    # The first group alone keeps 160 channels at 32x32 in each of its many layers.
    assert info["activation_elements"] > 10 * 160 * 32 * 32
    assert info["output_shape"] == (100,)


def test_describe_needs_an_input_shape():
    with pytest.raises(ValueError, match="'input_shape' or 'input_dim'"):
        describe_model(dict(name="lenet", n_classes=10))


# Batched evaluation through NetworkObjective against one module per parameter vector.

OBJECTIVE_CONFIGS = {key: SMALL_CONFIGS[key] for key in
                     ("cnn_2d", "cnn_2d_bn", "cnn_1d_bn", "lenet_2d", "resnet_9", "resnet_20_1d", "wide_resnet")}


def _model_and_data(config, seed=0):
    torch.manual_seed(seed)
    model = build_model(config).double()
    generator = torch.Generator().manual_seed(seed + 1)
    inputs = torch.randn(N_EXAMPLES, *_input_shape(config), generator=generator, dtype=torch.float64)
    targets = torch.randint(0, config["n_classes"], (N_EXAMPLES,), generator=generator)
    return model, (inputs, targets)


def _points(model, n_points=3, seed=2):
    """Perturbed copies of the initial parameters, so batch-norm scales differ from 1."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return base + 0.2 * torch.randn(n_points, len(base), generator=generator, dtype=base.dtype)


def _reference(model, theta, inputs, targets):
    """Loss and gradient of one module copy per row, batch norm in train mode, momentum 0."""
    values, grads = [], []
    for row in theta:
        net = copy.deepcopy(model).train()
        vector_to_parameters(row.clone(), net.parameters())
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = 0.0  # the running statistics stay where they are
        value = F.cross_entropy(net(inputs), targets)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, list(net.parameters()))]))
        values.append(value.detach())
    return torch.stack(values), torch.stack(grads)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("key", sorted(OBJECTIVE_CONFIGS))
def test_objective_matches_one_module_per_point(key, mode):
    model, data = _model_and_data(OBJECTIVE_CONFIGS[key])
    model.train(mode == "train")  # batch norm uses batch statistics in both modes
    objective = NetworkObjective(model, "cross_entropy", data, device="cpu")
    theta = _points(model)
    expected, _ = _reference(model, theta, *data)
    values = objective(theta)
    assert values.shape == (3,)
    torch.testing.assert_close(values, expected, **FLOAT64)


@pytest.mark.parametrize("key", ["cnn_2d_bn", "resnet_9", "wide_resnet"])
def test_objective_gradients_match_one_module_per_point(key):
    model, data = _model_and_data(OBJECTIVE_CONFIGS[key])
    objective = NetworkObjective(model, "cross_entropy", data, device="cpu", max_points_per_call=2)
    theta = _points(model)
    expected_values, expected_grads = _reference(model, theta, *data)
    values, grads = value_and_grad(objective, theta)
    torch.testing.assert_close(values, expected_values, **FLOAT64)
    torch.testing.assert_close(grads, expected_grads, **FLOAT64)


def test_batch_norm_values_differ_from_running_statistics():
    # Guards the policy: eval-mode batch norm with these running statistics would give
    # another value, so agreement above is not an accident of trivial statistics.
    model, data = _model_and_data(OBJECTIVE_CONFIGS["cnn_2d_bn"])
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.fill_(3.0)
            module.running_var.fill_(5.0)
    theta = _points(model, n_points=1)
    net = copy.deepcopy(model).eval()
    vector_to_parameters(theta[0].clone(), net.parameters())
    with torch.no_grad():
        eval_value = F.cross_entropy(net(data[0]), data[1])
    value = NetworkObjective(model.eval(), "cross_entropy", data, device="cpu")(theta)
    assert abs(value.item() - eval_value.item()) > 1e-3
    torch.testing.assert_close(value, _reference(model, theta, *data)[0], **FLOAT64)


def test_chunked_examples_with_batch_norm_warn():
    model, data = _model_and_data(OBJECTIVE_CONFIGS["cnn_2d_bn"])
    with pytest.warns(UserWarning, match="max_examples_per_call=4 is smaller than the 8 examples"):
        NetworkObjective(model, "cross_entropy", data, device="cpu", max_examples_per_call=4)
    plain, plain_data = _model_and_data(OBJECTIVE_CONFIGS["cnn_2d"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NetworkObjective(plain, "cross_entropy", plain_data, device="cpu", max_examples_per_call=4)
        NetworkObjective(model, "cross_entropy", data, device="cpu", max_examples_per_call=8)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("key", ["wide_resnet", "cnn_1d_bn", "resnet_9"])
def test_evaluation_leaves_caller_module_bitwise_unchanged(key, mode):
    model, data = _model_and_data(OBJECTIVE_CONFIGS[key])
    generator = torch.Generator().manual_seed(5)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator))
            module.running_var.uniform_(0.5, 2.0, generator=generator)
            module.num_batches_tracked.fill_(7)
    model.train(mode == "train")
    state = {name: tensor.clone() for name, tensor in model.state_dict(keep_vars=True).items()}
    modes = [module.training for module in model.modules()]

    objective = NetworkObjective(model, "cross_entropy", data, device="cpu")
    theta = _points(model)
    objective(theta)
    objective.value_and_grad(theta)
    objective.metrics(theta)

    now = model.state_dict(keep_vars=True)
    assert now.keys() == state.keys()
    for name, tensor in state.items():
        assert now[name].dtype == tensor.dtype, name
        assert torch.equal(now[name].detach(), tensor.detach()), name
    assert [module.training for module in model.modules()] == modes
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
