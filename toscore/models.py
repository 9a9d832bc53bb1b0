"""Model registry: build an ``nn.Module`` from a plain config dict.

A config is a dict with a ``"name"`` key naming a registered builder; the other keys are
that builder's keyword arguments, e.g.
``{"name": "mlp", "input_dim": 64, "depth": 2, "width": 32, "n_classes": 10}``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["build_model", "register_model", "model_names", "count_parameters"]

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
