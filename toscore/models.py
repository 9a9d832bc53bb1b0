"""Model registry: build an ``nn.Module`` from a plain config dict.

A config is a dict with a ``"name"`` key naming a registered builder; the other keys are
that builder's keyword arguments, e.g.
``{"name": "mlp", "input_dim": 64, "depth": 2, "width": 32, "n_classes": 10}`` or
``{"name": "resnet", "depth": 20, "input_shape": (3, 32, 32), "n_classes": 10}``.

Registered architectures:

- ``"mlp"``: fully connected ReLU network.
- ``"cnn"``: a stack of 3x3 convolutions with optional batch norm, global average
  pooling and a linear classifier.
- ``"lenet"``: LeNet-5-like network, two convolution and pooling stages, three linear
  layers.
- ``"resnet"``: CIFAR-style ResNet-9/14/20 without batch norm.
- ``"wide_resnet"``: Wide ResNet WRN-d-k with batch norm (Zagoruyko & Komodakis, 2016).

The convolutional builders take ``input_shape = (C, H, W)`` for images or ``(C, L)``
for 1-D signals, and then use 2-D or 1-D layers respectively. Every input is a batch
of shape ``(batch, *input_shape)`` and every output is a batch of logits, shape
``(batch, n_classes)``. All layers keep PyTorch's default initialization, which is
what ``toscore.minima.initial_parameters`` redraws with ``reset_parameters``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "build_model",
    "count_parameters",
    "describe_model",
    "model_names",
    "register_model",
]

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Register a builder under ``name``; use as a decorator."""

    def decorator(builder: Callable[..., nn.Module]):
        if name in _REGISTRY:
            raise ValueError(f"a model named {name!r} is already registered")
        _REGISTRY[name] = builder
        return builder

    return decorator


def model_names() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def build_model(config: dict) -> nn.Module:
    """Build the model that ``config["name"]`` names, with the other keys as arguments.

    Raises
    ------
    ValueError
        If the name is missing or unknown (the message lists the registered names), or
        the builder rejects an argument.
    """
    if "name" not in config:
        raise ValueError(f"model config needs a 'name' key; got keys {sorted(config)}")
    name = config["name"]
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {model_names()}")
    arguments = {key: value for key, value in config.items() if key != "name"}
    try:
        return _REGISTRY[name](**arguments)
    except TypeError as error:
        raise ValueError(f"invalid arguments for model {name!r}: {error}") from error


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars, the length D of the flat parameter vector."""
    return sum(p.numel() for p in model.parameters())


def describe_model(config: dict) -> dict:
    """Size of a model: parameter count and an estimate of activations per example.

    The model is built on the meta device, so nothing is allocated and even large
    models are described in milliseconds. One forward pass of a single meta-device
    example, in eval mode, records the output size of every leaf module.

    Parameters
    ----------
    config : dict
        Model config as for :func:`build_model`. It must contain ``"input_shape"``
        (convolutional models) or ``"input_dim"`` (``"mlp"``).

    Returns
    -------
    dict
        ``"n_parameters"`` (int): the length D of the flat parameter vector.
        ``"activation_elements"`` (int): the sum of the output sizes of all leaf modules
        for one example. This is an estimate of the activations that a training forward
        pass keeps: it counts in-block tensor operations such as residual additions
        not at all and reused modules once per call. Multiply by the batch size, the
        number of vmapped networks and the bytes per element for a memory estimate.
        ``"input_shape"`` and ``"output_shape"`` (tuple of int): the shapes of one
        example and of its output.

    Raises
    ------
    ValueError
        If the config has neither ``"input_shape"`` nor ``"input_dim"``, or
        :func:`build_model` rejects it.
    """
    if "input_shape" in config:
        input_shape = tuple(config["input_shape"])
    elif "input_dim" in config:
        input_shape = (config["input_dim"],)
    else:
        raise ValueError(
            f"describe_model needs 'input_shape' or 'input_dim' in the config; got keys {sorted(config)}"
        )
    with torch.device("meta"):
        model = build_model(config)
    model.eval()  # batch norm in training mode rejects a batch of one 1-D feature vector

    sizes: list[int] = []

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor):
            sizes.append(output[0].numel())

    leaves = [module for module in model.modules() if not list(module.children())]
    handles = [module.register_forward_hook(record) for module in leaves]
    try:
        with torch.no_grad():
            output = model(torch.empty((1, *input_shape), device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return {
        "n_parameters": count_parameters(model),
        "activation_elements": int(sum(sizes)),
        "input_shape": input_shape,
        "output_shape": tuple(output.shape[1:]),
    }


# Argument checks and dimension-generic layers shared by the builders.


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value


def _check_input_shape(input_shape) -> tuple[int, ...]:
    """Validate ``(C, H, W)`` or ``(C, L)``; return it as a tuple."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (
        shape is None
        or len(shape) not in (2, 3)
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)
    ):
        raise ValueError(
            "input_shape must be (channels, height, width) for images or (channels, length) "
            f"for 1-D signals, with positive integer entries; got {input_shape!r}"
        )
    return shape


def _layer_types(input_shape: tuple[int, ...]) -> dict[str, type[nn.Module]]:
    """Convolution, batch norm and pooling classes for 1-D or 2-D inputs."""
    if len(input_shape) == 2:
        return {"conv": nn.Conv1d, "batch_norm": nn.BatchNorm1d,
                "max_pool": nn.MaxPool1d, "avg_pool": nn.AdaptiveAvgPool1d}
    return {"conv": nn.Conv2d, "batch_norm": nn.BatchNorm2d,
            "max_pool": nn.MaxPool2d, "avg_pool": nn.AdaptiveAvgPool2d}


@register_model("mlp")
def mlp(input_dim: int, depth: int, width: int, n_classes: int) -> nn.Module:
    """Fully connected ReLU network with ``depth`` hidden layers of ``width`` units.

    Inputs of any shape ``(batch, ...)`` are flattened to ``(batch, input_dim)``.
    """
    for name, value in (("input_dim", input_dim), ("width", width), ("n_classes", n_classes)):
        if value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value}")
    if depth < 0:
        raise ValueError(f"depth must be >= 0 hidden layers; got {depth}")
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = input_dim
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), nn.ReLU()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_classes))
    return nn.Sequential(*layers)


@register_model("cnn")
def cnn(
    input_shape: tuple[int, ...],
    n_conv: int,
    channels: int,
    n_classes: int,
    batch_norm: bool = False,
    head: str = "pool",
) -> nn.Module:
    """Plain convolutional network: ``n_conv`` 3x3 convolutions, then a linear classifier.

    Layer ``i`` (counted from 1) is ``conv(3, padding 1) -> [batch norm] -> ReLU``,
    with ``channels`` output channels. A 2x2 max pool (stride 2) follows every even
    layer ``i`` while every spatial size is still at least 2, and is left out
    otherwise, so any input size is valid. One linear layer closes the network.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` for images (2-D layers) or ``(C, L)`` for 1-D signals such as
        MNIST-1D (1-D layers, kernel 3, the same pooling rule).
    n_conv : int
        Number of convolution layers, at least 1.
    channels : int
        Output channels of every convolution.
    n_classes : int
    batch_norm : bool, default False
        Insert batch norm after each convolution. The convolutions then have no bias,
        since the batch-norm shift takes its place.
    head : {"pool", "flatten"}, default "pool"
        ``"pool"``: global average pooling, then a linear layer ``channels ->
        n_classes``. ``"flatten"``: the linear layer reads every position of the last
        feature map, ``channels * S -> n_classes`` where ``S`` is its number of
        positions, so that even a one-layer network can tell where a feature is.

    Returns
    -------
    nn.Module
        Maps ``(batch, *input_shape)`` to logits ``(batch, n_classes)``. The parameter
        count is ``9 C c + c + (n_conv - 1)(9 c^2 + c) + c S n_classes + n_classes`` for
        2-D inputs without batch norm (``c = channels``; ``S = 1`` with ``head="pool"``;
        3 instead of 9 for 1-D).
    """
    input_shape = _check_input_shape(input_shape)
    _check_int("n_conv", n_conv)
    _check_int("channels", channels)
    _check_int("n_classes", n_classes)
    if not isinstance(batch_norm, bool):
        raise ValueError(f"batch_norm must be True or False; got {batch_norm!r}")
    if head not in ("pool", "flatten"):
        raise ValueError(f"head must be 'pool' or 'flatten'; got {head!r}")
    types = _layer_types(input_shape)

    layers: list[nn.Module] = []
    in_channels, spatial = input_shape[0], list(input_shape[1:])
    for index in range(1, n_conv + 1):
        layers.append(types["conv"](in_channels, channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(types["batch_norm"](channels))
        layers.append(nn.ReLU())
        in_channels = channels
        if index % 2 == 0 and min(spatial) >= 2:
            layers.append(types["max_pool"](2))
            spatial = [size // 2 for size in spatial]
    if head == "pool":
        layers += [types["avg_pool"](1), nn.Flatten(), nn.Linear(channels, n_classes)]
    else:
        layers += [nn.Flatten(), nn.Linear(channels * math.prod(spatial), n_classes)]
    return nn.Sequential(*layers)


@register_model("lenet")
def lenet(input_shape: tuple[int, ...], n_classes: int, padding: int = 0) -> nn.Module:
    """LeNet-5-like network (LeCun et al., 1998) with ReLU and max pooling.

    ``conv5(C -> 6, padding) -> ReLU -> maxpool 2 -> conv5(6 -> 16) -> ReLU -> maxpool 2
    -> flatten -> linear 120 -> ReLU -> linear 84 -> ReLU -> linear n_classes``.
    Unlike the original, it uses ReLU instead of scaled tanh and max pooling instead of
    trainable subsampling, and the second convolution connects all 6 input maps.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` or ``(C, L)``; every spatial size ``s`` needs
        ``s + 2 * padding >= 16``. On ``(3, 32, 32)`` with 10 classes the network has
        62006 parameters.
    n_classes : int
    padding : int, default 0
        Zero padding of the first convolution; 2 gives LeNet-5's 32x32 view of 28x28
        MNIST digits.

    Returns
    -------
    nn.Module
        Maps ``(batch, *input_shape)`` to logits ``(batch, n_classes)``.
    """
    input_shape = _check_input_shape(input_shape)
    _check_int("n_classes", n_classes)
    _check_int("padding", padding, minimum=0)
    too_small = [size for size in input_shape[1:] if size + 2 * padding < 16]
    if too_small:
        raise ValueError(
            f"lenet needs every spatial size s of input_shape to satisfy s + 2 * padding >= 16; "
            f"got input_shape {input_shape} and padding {padding}"
        )
    types = _layer_types(input_shape)
    # Spatial size after conv5 -> pool 2 -> conv5 -> pool 2.
    final = [((size + 2 * padding - 4) // 2 - 4) // 2 for size in input_shape[1:]]
    return nn.Sequential(
        types["conv"](input_shape[0], 6, 5, padding=padding),
        nn.ReLU(),
        types["max_pool"](2),
        types["conv"](6, 16, 5),
        nn.ReLU(),
        types["max_pool"](2),
        nn.Flatten(),
        nn.Linear(16 * math.prod(final), 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, n_classes),
    )


class _ScaledBasicBlock(nn.Module):
    """Residual block ``ReLU(shortcut(x) + scale * conv(ReLU(conv(x))))`` without batch norm.

    The shortcut has no parameters, as option A of He et al. (2016): it subsamples by
    the stride and zero-pads the new channels.
    """

    def __init__(self, conv: type[nn.Module], in_channels: int, out_channels: int,
                 stride: int, scale: float) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.stride = stride
        self.extra_channels = out_channels - in_channels
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv2(self.relu(self.conv1(x)))
        n_spatial = x.ndim - 2
        shortcut = x[(..., *[slice(None, None, self.stride)] * n_spatial)]  # same size as branch
        if self.extra_channels:
            # F.pad lists pairs from the last dimension backwards; the channel axis is third from last in 2-D.
            shortcut = F.pad(shortcut, (0, 0) * n_spatial + (0, self.extra_channels))
        return self.relu(shortcut + self.scale * branch)


_RESNET_BLOCKS = {9: 1, 14: 2, 20: 3}


@register_model("resnet")
def resnet(
    input_shape: tuple[int, ...],
    n_classes: int,
    depth: int = 20,
    width: float = 1,
    residual_scale: float | None = None,
) -> nn.Module:
    """CIFAR-style ResNet of depth 9, 14 or 20 without batch norm (He et al., 2016).

    ``stem -> 3 stages of n basic blocks -> global average pool -> linear``. The stages
    have ``c, 2c, 4c`` channels with ``c = round(16 * width)``, and the first block of
    stages 2 and 3 has stride 2. A basic block is ``conv3 -> ReLU -> conv3`` plus a
    parameter-free shortcut (subsampling and zero-padded channels, option A), followed
    by ReLU. Every convolution has a bias because no batch norm supplies a shift.

    ``depth`` counts the weight layers (convolutions and the linear layer):
    ``n = (depth - 2) // 6`` blocks per stage and ``depth - 6 n - 1`` stem convolutions.
    So ResNet-20 has n = 3 and ResNet-14 has n = 2, as in He et al., each with one stem
    convolution. ResNet-9 has n = 1 and two stem convolutions, the second ``c -> c``,
    which echoes the two convolutions before the first residual block of the common
    ResNet-9 (Page, 2018) while keeping the three stages above.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` or ``(C, L)``; any spatial size is valid (stride-2 convolutions
        with padding 1 map size 1 to size 1).
    n_classes : int
    depth : {9, 14, 20}, default 20
    width : float, default 1
        Channel multiplier; ``round(16 * width)`` must be at least 1.
    residual_scale : float, optional
        Fixed factor on every residual branch. Default ``1 / sqrt(3 n)``, one over the
        square root of the number of blocks. Without batch norm nothing rescales the
        sum of shortcut and branch. If a branch returns ``v`` times the variance of its
        input at initialization, the variance then grows at most by about
        ``(1 + v / (3 n))^(3 n) < e^v`` over all blocks, whatever the depth. This is the
        idea of Fixup (Zhang et al., 2019) and SkipInit (De & Smith, 2020), but as a
        constant, which ``reset_parameters`` cannot undo.

    Returns
    -------
    nn.Module
        Maps ``(batch, *input_shape)`` to logits ``(batch, n_classes)``. With 3 input
        channels, 10 classes and width 1, ResNet-20 has 269034 parameters: the 269722 of
        the batch-norm original, less 1376 batch-norm parameters, plus 688 biases.
    """
    input_shape = _check_input_shape(input_shape)
    _check_int("n_classes", n_classes)
    if depth not in _RESNET_BLOCKS:
        raise ValueError(f"depth must be one of {sorted(_RESNET_BLOCKS)}; got {depth!r}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
        raise ValueError(f"width must be a positive number; got {width!r}")
    base = int(round(16 * width))
    if base < 1:
        raise ValueError(f"width must give round(16 * width) >= 1 channels; got width {width}")
    n_blocks = _RESNET_BLOCKS[depth]
    if residual_scale is None:
        residual_scale = 1.0 / math.sqrt(3 * n_blocks)
    elif isinstance(residual_scale, bool) or not isinstance(residual_scale, (int, float)) or residual_scale <= 0:
        raise ValueError(f"residual_scale must be a positive number; got {residual_scale!r}")
    conv = _layer_types(input_shape)["conv"]
    avg_pool = _layer_types(input_shape)["avg_pool"]

    layers: list[nn.Module] = [conv(input_shape[0], base, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 6 * n_blocks - 2):
        layers += [conv(base, base, 3, padding=1), nn.ReLU()]
    in_channels = base
    for stage, channels in enumerate((base, 2 * base, 4 * base)):
        for block in range(n_blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(_ScaledBasicBlock(conv, in_channels, channels, stride, float(residual_scale)))
            in_channels = channels
    layers += [avg_pool(1), nn.Flatten(), nn.Linear(in_channels, n_classes)]
    return nn.Sequential(*layers)


class _WideBasicBlock(nn.Module):
    """Pre-activation block ``conv3(ReLU(BN(conv3(ReLU(BN(x)))))) + shortcut``.

    The shortcut is the identity when shape is kept, else a 1x1 convolution applied to
    ``ReLU(BN(x))``, as in the reference Wide ResNet code.
    """

    def __init__(self, types: dict, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        conv, batch_norm = types["conv"], types["batch_norm"]
        self.bn1 = batch_norm(in_channels)
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = batch_norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.projection = None
        if in_channels != out_channels or stride != 1:
            self.projection = conv(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu(self.bn1(x))
        shortcut = x if self.projection is None else self.projection(activated)
        return self.conv2(self.relu(self.bn2(self.conv1(activated)))) + shortcut


@register_model("wide_resnet")
def wide_resnet(
    input_shape: tuple[int, ...],
    n_classes: int,
    depth: int = 16,
    widen_factor: int = 10,
) -> nn.Module:
    """Wide ResNet WRN-depth-k with batch norm and no dropout (Zagoruyko & Komodakis, 2016).

    ``conv3(C -> 16) -> 3 groups of n pre-activation blocks -> BN -> ReLU -> global
    average pool -> linear``, with ``n = (depth - 4) / 6`` blocks per group of
    ``16 k, 32 k, 64 k`` channels (``k = widen_factor``) and stride 2 at the first
    block of groups 2 and 3. Convolutions have no bias. Global average pooling replaces
    the fixed 8x8 pool of the reference code, so small inputs are valid too. On 32x32
    inputs the two poolings are the same.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` or ``(C, L)``.
    n_classes : int
    depth : int, default 16
        Total depth, ``6 n + 4`` with ``n >= 1`` (10, 16, 22, 28, ...).
    widen_factor : int, default 10
        The width multiplier k.

    Returns
    -------
    nn.Module
        Maps ``(batch, *input_shape)`` to logits ``(batch, n_classes)``. WRN-16-10 on 3
        input channels with 10 classes has 17116634 parameters (17.1M in the paper).
    """
    input_shape = _check_input_shape(input_shape)
    _check_int("n_classes", n_classes)
    _check_int("widen_factor", widen_factor)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6 n + 4 with n >= 1 (10, 16, 22, ...); got {depth!r}")
    types = _layer_types(input_shape)
    n_blocks = (depth - 4) // 6

    layers: list[nn.Module] = [types["conv"](input_shape[0], 16, 3, padding=1, bias=False)]
    in_channels = 16
    for group, channels in enumerate((16 * widen_factor, 32 * widen_factor, 64 * widen_factor)):
        for block in range(n_blocks):
            stride = 2 if group > 0 and block == 0 else 1
            layers.append(_WideBasicBlock(types, in_channels, channels, stride))
            in_channels = channels
    layers += [
        types["batch_norm"](in_channels),
        nn.ReLU(),
        types["avg_pool"](1),
        nn.Flatten(),
        nn.Linear(in_channels, n_classes),
    ]
    return nn.Sequential(*layers)
