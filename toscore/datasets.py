"""Datasets as in-memory tensors, loaded by name.

``digits`` is scikit-learn's ``load_digits``: 1797 real 8x8 handwritten digits that ship
with the package, so it works offline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

__all__ = ["Dataset", "load_dataset", "dataset_names"]


@dataclass(frozen=True)
class Dataset:
    """A train/test split held as tensors.

    Attributes
    ----------
    name : str
    train_x, test_x : Tensor of float32, shape (n_train, *input_shape), (n_test, *input_shape)
    train_y, test_y : Tensor of int64, shape (n_train,), (n_test,)
        Class indices in ``[0, n_classes)``.
    n_classes : int
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example."""
        return tuple(self.train_x.shape[1:])

    @property
    def input_dim(self) -> int:
        """Number of input features, the product of ``input_shape``."""
        return int(np.prod(self.input_shape))

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_x, self.train_y

    @property
    def test(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.test_x, self.test_y

    def to(self, device) -> "Dataset":
        """Copy of the dataset with every tensor on ``device``."""
        return Dataset(
            self.name, self.train_x.to(device), self.train_y.to(device),
            self.test_x.to(device), self.test_y.to(device), self.n_classes,
        )


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_LOADERS)


def load_dataset(name: str, *, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Load a dataset by name with a seeded, stratified train/test split.

    Inputs are standardized per feature with the mean and standard deviation of the
    training split only.

    Parameters
    ----------
    name : str
        One of :func:`dataset_names`.
    test_fraction : float, default 0.25
        Fraction of examples held out for testing, in (0, 1).
    seed : int, default 0
        Seed of the split.

    Raises
    ------
    ValueError
        For an unknown name (listing the valid ones) or a fraction outside (0, 1).
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; available datasets: {dataset_names()}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1); got {test_fraction}")
    inputs, targets, n_classes = _LOADERS[name]()
    train_x, test_x, train_y, test_y = train_test_split(
        inputs, targets, test_size=test_fraction, random_state=seed, stratify=targets
    )
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (digits' borders) stay at zero after centering
    return Dataset(
        name=name,
        train_x=torch.as_tensor((train_x - mean) / std, dtype=torch.float32),
        train_y=torch.as_tensor(train_y, dtype=torch.long),
        test_x=torch.as_tensor((test_x - mean) / std, dtype=torch.float32),
        test_y=torch.as_tensor(test_y, dtype=torch.long),
        n_classes=n_classes,
    )


def _load_digits() -> tuple[np.ndarray, np.ndarray, int]:
    bunch = load_digits()
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), 10


_LOADERS = {"digits": _load_digits}
