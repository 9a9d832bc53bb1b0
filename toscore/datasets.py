"""Datasets as in-memory tensors, loaded by name.

Sources
-------
``digits``
    scikit-learn's ``load_digits``: 1797 real 8x8 handwritten digits that ship with the
    package. No fixed split: a seeded, stratified split with ``test_fraction``.
``mnist1d``
    MNIST-1D, generated locally from the ``mnist1d`` package's templates (never
    downloaded) and cached as ``.npz`` under the data directory. Fixed split from the
    package (4000 train / 1000 test, 40 samples per signal, by default).
``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``svhn``
    Read through ``torchvision.datasets`` from the data directory, in torchvision's own
    on-disk layout. Fixed train/test splits. Nothing is downloaded unless
    ``download=True``.

``digits`` and ``mnist1d`` need no files and no network, so they always work offline.

The data directory is ``data_dir`` when given, else the environment variable
``TOSCORE_DATA``, else ``~/.cache/toscore/data``.

Input layout
------------
Every dataset has a channels-first shape ``(channels, *spatial)``. ``layout="flat"``
gives inputs of shape ``(n, channels * prod(spatial))`` for MLPs; ``layout="channels_first"``
gives ``(n, channels, *spatial)`` for convolutional models. The default is ``"flat"`` for
``digits`` (64,) and ``mnist1d`` (40,), and ``"channels_first"`` for the image datasets,
e.g. (3, 32, 32) for CIFAR-10. A ``Conv1d`` model on MNIST-1D takes
``layout="channels_first"``, shape (1, 40); a ``Conv2d`` model on digits gets (1, 8, 8).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .objectives import resolve_device

__all__ = [
    "DATA_ENV_VAR",
    "Dataset",
    "DatasetNotFoundError",
    "dataset_info",
    "dataset_names",
    "load_dataset",
    "resolve_data_dir",
    "synthetic_dataset",
]

logger = logging.getLogger("toscore")

DATA_ENV_VAR = "TOSCORE_DATA"
"""Environment variable naming the data directory when ``data_dir`` is not given."""

_DEFAULT_DATA_DIR = Path("~/.cache/toscore/data")
_LAYOUTS = ("flat", "channels_first")
_DEFAULT_TEST_FRACTION = 0.25
_OFFLINE_NAMES = ("digits", "mnist1d")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are missing (or unreadable) and could not be downloaded."""


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
    synthetic : bool, default False
        True for random stand-in tensors from :func:`synthetic_dataset`.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    n_classes: int
    synthetic: bool = False

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
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device), train_y=self.train_y.to(device),
            test_x=self.test_x.to(device), test_y=self.test_y.to(device),
        )


@dataclass(frozen=True)
class _Spec:
    """Static facts about a dataset: channels-first ``shape`` and the real split sizes."""

    shape: tuple[int, ...]
    n_classes: int
    n_train: int | None  # None: no fixed split
    n_test: int | None
    source: str
    default_layout: str
    torchvision_class: str | None = None


_SPECS: dict[str, _Spec] = {
    "digits": _Spec((1, 8, 8), 10, None, None, "sklearn.datasets.load_digits", "flat"),
    # mnist1d sizes depend on the generation arguments; see _mnist1d_spec
    "mnist1d": _Spec((1, 40), 10, 4000, 1000, "mnist1d (generated locally)", "flat"),
    "mnist": _Spec((1, 28, 28), 10, 60000, 10000, "torchvision.datasets.MNIST",
                   "channels_first", "MNIST"),
    "fashion_mnist": _Spec((1, 28, 28), 10, 60000, 10000, "torchvision.datasets.FashionMNIST",
                           "channels_first", "FashionMNIST"),
    "cifar10": _Spec((3, 32, 32), 10, 50000, 10000, "torchvision.datasets.CIFAR10",
                     "channels_first", "CIFAR10"),
    "cifar100": _Spec((3, 32, 32), 100, 50000, 10000, "torchvision.datasets.CIFAR100",
                      "channels_first", "CIFAR100"),
    "svhn": _Spec((3, 32, 32), 10, 73257, 26032, "torchvision.datasets.SVHN",
                  "channels_first", "SVHN"),
}
_DIGITS_SIZE = 1797


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_SPECS)


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: ``data_dir``, else ``$TOSCORE_DATA``, else the default.

    The default is ``~/.cache/toscore/data``.

    The directory is not created here.
    """
    if data_dir is None:
        data_dir = os.environ.get(DATA_ENV_VAR) or _DEFAULT_DATA_DIR
    return Path(data_dir).expanduser()


def dataset_info(
    name: str,
    *,
    layout: str | None = None,
    test_fraction: float | None = None,
    mnist1d_args: dict | None = None,
) -> dict:
    """Real shape, class count and split sizes of a dataset, without reading any data.

    Parameters
    ----------
    name : str
        One of :func:`dataset_names`.
    layout : {"flat", "channels_first"} or None
        Layout of ``input_shape``; None is the dataset's default (see the module notes).
    test_fraction : float or None
        Only for ``digits``: the held-out fraction (default 0.25) that sets the sizes.
    mnist1d_args : dict or None
        Only for ``mnist1d``: overrides of the package's generation arguments.

    Returns
    -------
    dict
        ``input_shape`` (tuple of int), ``n_classes`` (int), ``n_train`` and ``n_test``
        (int, the sizes :func:`load_dataset` returns without subsetting), ``n_total``
        (int), ``fixed_split`` (bool) and ``source`` (str).
    """
    spec = _spec(name, test_fraction, mnist1d_args)
    layout = _check_layout(layout, spec)
    if spec.n_train is None:  # digits: sizes as sklearn's train_test_split computes them
        n_test = math.ceil(_test_fraction(name, test_fraction) * _DIGITS_SIZE)
        n_train = _DIGITS_SIZE - n_test
    else:
        n_train, n_test = spec.n_train, spec.n_test
    return {
        "input_shape": _layout_shape(spec.shape, layout),
        "n_classes": spec.n_classes,
        "n_train": n_train,
        "n_test": n_test,
        "n_total": n_train + n_test,
        "fixed_split": spec.n_train is not None,
        "source": spec.source,
    }


def load_dataset(
    name: str,
    *,
    test_fraction: float | None = None,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    device: str | torch.device = "cpu",
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    synthetic: bool = False,
    layout: str | None = None,
    mnist1d_args: dict | None = None,
) -> Dataset:
    """Load a dataset by name as standardized float32 tensors.

    Standardization uses statistics of the full training split only, never of the test
    split. ``digits`` is standardized per feature. The torchvision image datasets are
    scaled to [0, 1] and then standardized per channel. ``mnist1d`` keeps the package's
    own values, because its generator already centers the whole set and scales it to
    unit standard deviation.

    Parameters
    ----------
    name : str
        One of :func:`dataset_names`.
    test_fraction : float or None
        Fraction of examples held out for testing, in (0, 1); only for ``digits``, which
        has no fixed split (default 0.25). Datasets with a fixed split reject it.
    seed : int, default 0
        Seed of the ``digits`` split and of the ``n_train`` / ``n_test`` subsets.
    n_train, n_test : int or None
        Keep a seeded subset of this many training / test examples, stratified by class
        when every class can be represented, else uniform. None keeps the whole split.
        Subsets are drawn after standardization, so a subset's inputs equal the
        corresponding rows of the full split.
    device : str or torch.device, default "cpu"
        Where the tensors go; "auto" is CUDA when available, else CPU.
    data_dir : path or None
        Data directory (see :func:`resolve_data_dir`): where torchvision's files are
        looked for and where the ``mnist1d`` cache is written.
    download : bool, default False
        Let torchvision download missing files into ``data_dir``.
    synthetic : bool, default False
        Return random tensors of the real shapes instead (see :func:`synthetic_dataset`).
    layout : {"flat", "channels_first"} or None
        Input layout; None is the dataset's default (see the module notes).
    mnist1d_args : dict or None
        Only for ``mnist1d``: overrides of ``mnist1d.data.get_dataset_args()``, e.g.
        ``{"num_samples": 10000}``. Each set of arguments has its own cache file.

    Returns
    -------
    Dataset
        ``train_x`` of shape (n_train, *input_shape) and float32, ``train_y`` int64, the
        same for the test split, on ``device``.

    Raises
    ------
    ValueError
        For an unknown name (listing the valid ones), a bad ``layout``, ``test_fraction``,
        ``n_train``, ``n_test`` or ``mnist1d_args``.
    DatasetNotFoundError
        When a torchvision dataset is missing from ``data_dir`` and could not be
        downloaded; the message says where it was looked for and how to fetch it.
    """
    spec = _spec(name, test_fraction, mnist1d_args)
    layout = _check_layout(layout, spec)
    if synthetic:
        return synthetic_dataset(
            name, n_train, n_test, seed, layout=layout, device=device,
            test_fraction=test_fraction, mnist1d_args=mnist1d_args,
        )
    device = resolve_device(device)

    if name == "digits":
        train_x, train_y, test_x, test_y = _digits_split(_test_fraction(name, test_fraction), seed)
        train_x, test_x = _standardize_features(train_x, test_x)
    elif name == "mnist1d":
        train_x, train_y, test_x, test_y = _mnist1d_arrays(resolve_data_dir(data_dir), mnist1d_args)
    else:
        root = resolve_data_dir(data_dir)
        train_x, train_y, test_x, test_y = _torchvision_arrays(name, root, download)

    # Subsets are taken before float conversion so that only kept images are converted;
    # the channel statistics still come from the full training split.
    channel_stats = _channel_statistics(train_x) if train_x.dtype == np.uint8 else None
    train_index = _subset_index(train_y, n_train, "n_train", name, seed)
    test_index = _subset_index(test_y, n_test, "n_test", name, seed)
    tensors = []
    for x, y, index in ((train_x, train_y, train_index), (test_x, test_y, test_index)):
        if index is not None:
            x, y = x[index], y[index]
        x = _to_float_tensor(x, channel_stats)
        x = x.reshape(len(x), *_layout_shape(spec.shape, layout))
        tensors += [x.to(device), torch.as_tensor(y, dtype=torch.long).to(device)]
    return Dataset(name, tensors[0], tensors[1], tensors[2], tensors[3], spec.n_classes)


def synthetic_dataset(
    name: str,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
    *,
    layout: str | None = None,
    device: str | torch.device = "cpu",
    test_fraction: float | None = None,
    mnist1d_args: dict | None = None,
) -> Dataset:
    """Random tensors with a dataset's real input shape and class count, for dry runs.

    Inputs are standard normal (the scale of standardized data); labels are balanced,
    every class appearing ``n // n_classes`` or one more times, in a seeded random order.
    Nothing is read from disk (except that ``mnist1d`` imports its package to learn the
    default sizes).

    Parameters
    ----------
    name : str
        One of :func:`dataset_names`.
    n_train, n_test : int or None
        Number of examples; None gives the real split sizes. Values above the real sizes
        are rejected, as :func:`load_dataset` would reject them.
    seed : int, default 0
    layout, device, test_fraction, mnist1d_args
        As in :func:`load_dataset`.

    Returns
    -------
    Dataset
        With ``synthetic=True``; ``train_x`` float32 of shape (n_train, *input_shape).
    """
    info = dataset_info(name, layout=layout, test_fraction=test_fraction, mnist1d_args=mnist1d_args)
    device = resolve_device(device)
    generator = torch.Generator().manual_seed(seed)
    tensors = []
    for n, parameter, available in ((n_train, "n_train", info["n_train"]),
                                    (n_test, "n_test", info["n_test"])):
        n = available if n is None else _check_subset_size(n, parameter, name, available)
        x = torch.randn((n, *info["input_shape"]), generator=generator)
        y = (torch.arange(n) % info["n_classes"])[torch.randperm(n, generator=generator)]
        tensors += [x.to(device), y.to(device)]
    return Dataset(name, tensors[0], tensors[1], tensors[2], tensors[3], info["n_classes"],
                   synthetic=True)


# ----------------------------------------------------------------------------- checks


def _spec(name: str, test_fraction: float | None, mnist1d_args: dict | None) -> _Spec:
    if name not in _SPECS:
        raise ValueError(f"unknown dataset {name!r}; available datasets: {dataset_names()}")
    spec = _SPECS[name]
    if test_fraction is not None and spec.n_train is not None:
        raise ValueError(
            f"test_fraction applies only to datasets without a fixed split ('digits'); "
            f"{name!r} has a fixed train/test split, got test_fraction={test_fraction}"
        )
    if mnist1d_args is not None and name != "mnist1d":
        raise ValueError(f"mnist1d_args applies only to 'mnist1d'; got it for {name!r}")
    if name == "mnist1d":
        spec = _mnist1d_spec(spec, _mnist1d_generation_args(mnist1d_args))
    return spec


def _test_fraction(name: str, test_fraction: float | None) -> float:
    fraction = _DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1) for {name!r}; got {fraction}")
    return fraction


def _check_layout(layout: str | None, spec: _Spec) -> str:
    if layout is None:
        return spec.default_layout
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {list(_LAYOUTS)} or None; got {layout!r}")
    return layout


def _layout_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    return (int(np.prod(shape)),) if layout == "flat" else tuple(shape)


def _check_subset_size(n, parameter: str, name: str, available: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise ValueError(f"{parameter} must be an integer or None; got {n!r}")
    if not 1 <= n <= available:
        raise ValueError(
            f"{parameter} must lie between 1 and {available} (the examples available in "
            f"that split of {name!r}); got {n}"
        )
    return int(n)


def _subset_index(labels: np.ndarray, n, parameter: str, name: str, seed: int) -> np.ndarray | None:
    """Draw sorted indices of a seeded subset of size ``n``; None means the whole split."""
    if n is None:
        return None
    n = _check_subset_size(n, parameter, name, len(labels))
    if n == len(labels):
        return None
    try:
        index, _ = train_test_split(
            np.arange(len(labels)), train_size=n, random_state=seed, stratify=labels
        )
    except ValueError:  # a class too small for stratification, or n below the class count
        logger.debug("%s subset of %s: stratification impossible, drawing uniformly",
                     parameter, name)
        index = np.random.default_rng(seed).choice(len(labels), size=n, replace=False)
    return np.sort(index)


# ------------------------------------------------------------------- standardization


def _standardize_features(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardize per feature with the training split's mean and std, in float64."""
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std[std == 0] = 1.0  # constant pixels (digits' borders) stay at zero after centering
    return (train_x - mean) / std, (test_x - mean) / std


def _channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compute the exact per-channel mean and std of uint8 images (n, C, H, W), in units of [0, 1].

    A 256-bin histogram per channel gives both in float64 without a float copy of the
    whole training split.
    """
    values = np.arange(256, dtype=np.float64)
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = np.bincount(images[:, channel].ravel(), minlength=256).astype(np.float64)
        total = counts.sum()
        mean = (counts * values).sum() / total
        variance = (counts * (values - mean) ** 2).sum() / total
        means.append(mean / 255.0)
        stds.append(math.sqrt(variance) / 255.0 if variance > 0 else 1.0)
    return np.array(means), np.array(stds)


def _to_float_tensor(x: np.ndarray, channel_stats) -> torch.Tensor:
    """Convert to float32; uint8 images (n, C, H, W) are also scaled to [0, 1] and standardized."""
    if channel_stats is None:
        return torch.as_tensor(x, dtype=torch.float32)
    mean, std = channel_stats
    broadcast = (1, -1) + (1,) * (x.ndim - 2)  # (1, C, 1, 1)
    out = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32).div_(255.0)
    out.sub_(torch.as_tensor(mean, dtype=torch.float32).view(broadcast))
    return out.div_(torch.as_tensor(std, dtype=torch.float32).view(broadcast))


# ----------------------------------------------------------------------------- digits


def _digits_split(test_fraction: float, seed: int):
    """Split digits with stratification and a seed; inputs are float64 of shape (n, 64)."""
    bunch = load_digits()
    inputs, targets = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        inputs, targets, test_size=test_fraction, random_state=seed, stratify=targets
    )
    return train_x, train_y, test_x, test_y


# ---------------------------------------------------------------------------- mnist1d


def _mnist1d_generation_args(overrides: dict | None) -> dict:
    """Merge ``overrides`` into the package's default generation arguments."""
    import mnist1d.data  # imported lazily: it pulls in matplotlib

    args = mnist1d.data.get_dataset_args(as_dict=True)
    args.pop("url", None)  # only used by the package's download path, never here
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(args))
    if unknown:
        raise ValueError(
            f"mnist1d_args has unknown keys {unknown}; allowed keys: {sorted(args)}"
        )
    args.update(overrides)
    return args


def _mnist1d_spec(spec: _Spec, args: dict) -> _Spec:
    n_classes = 10  # one template per digit
    n_total = (int(args["num_samples"]) // n_classes) * n_classes
    n_train = int(n_total * args["train_split"])  # the package's own split rule
    if n_train < 1 or n_total - n_train < 1:
        raise ValueError(
            f"mnist1d_args give an empty split: num_samples={args['num_samples']}, "
            f"train_split={args['train_split']} leave {n_train} train and "
            f"{n_total - n_train} test examples"
        )
    return dataclasses.replace(
        spec, shape=(1, int(args["final_seq_length"])), n_classes=n_classes,
        n_train=n_train, n_test=n_total - n_train,
    )


def _mnist1d_arrays(data_dir: Path, overrides: dict | None):
    """Generate MNIST-1D locally, or read it from the cache keyed by its arguments."""
    from importlib.metadata import version

    import mnist1d.data
    import mnist1d.utils

    args = _mnist1d_generation_args(overrides)
    key_text = json.dumps({"args": args, "mnist1d": version("mnist1d")},
                          sort_keys=True, default=repr)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    path = data_dir / "mnist1d" / f"mnist1d-{key}.npz"

    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as cache:
                arrays = tuple(cache[k] for k in ("x", "y", "x_test", "y_test"))
            logger.info("mnist1d: read cached arrays from %s", path)
            return arrays[0], arrays[1].astype(np.int64), arrays[2], arrays[3].astype(np.int64)
        except (OSError, ValueError, KeyError) as error:
            logger.warning("mnist1d: unreadable cache %s (%s); generating again", path, error)

    logger.info("mnist1d: generating with %s", args)
    # make_dataset reseeds the global random and numpy generators, so restore them afterwards
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = mnist1d.data.make_dataset(
            mnist1d.utils.ObjectView(dict(args)), mnist1d.data.get_templates()
        )
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    arrays = (data["x"], data["y"].astype(np.int64),
              data["x_test"], data["y_test"].astype(np.int64))

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        with open(partial, "wb") as handle:  # a file handle keeps numpy from renaming it
            np.savez(handle, x=arrays[0], y=arrays[1], x_test=arrays[2], y_test=arrays[3],
                     generation=np.array(key_text))
        os.replace(partial, path)  # atomic, so a concurrent reader never sees half a file
        logger.info("mnist1d: cached arrays in %s", path)
    except OSError as error:
        logger.warning("mnist1d: could not write the cache %s (%s)", path, error)
    return arrays


# ------------------------------------------------------------------------ torchvision


def _torchvision_class(name: str):
    import torchvision.datasets  # imported lazily: slow, and unused by digits and mnist1d

    return getattr(torchvision.datasets, _SPECS[name].torchvision_class)


def _expected_files(name: str, root: Path) -> list[Path]:
    """List the files torchvision reads for ``name`` under ``root``, from its class attributes."""
    cls = _torchvision_class(name)
    if name == "svhn":
        return [root / cls.split_list[split][1] for split in ("train", "test")]
    if name in ("cifar10", "cifar100"):
        files = [entry[0] for entry in cls.train_list + cls.test_list] + [cls.meta["filename"]]
        return [root / cls.base_folder / file for file in files]
    # MNIST family: the decompressed names of the downloaded archives
    return [root / cls.__name__ / "raw" / os.path.splitext(file)[0] for file, _ in cls.resources]


def _not_found_message(name: str, root: Path, download: bool, error: Exception) -> str:
    missing = [str(path) for path in _expected_files(name, root) if not path.is_file()]
    if len(missing) > 3:
        missing = missing[:3] + [f"and {len(missing) - 3} more"]
    class_name = _SPECS[name].torchvision_class
    if download:
        problem = f"downloading it into {root} failed ({error})"
    elif missing:
        problem = f"it was not found in {root} (missing: {', '.join(missing)})"
    else:
        problem = f"its files in {root} failed torchvision's integrity check ({error})"
    return (
        f"dataset {name!r} is not available: {problem}. To fetch it, call "
        f"load_dataset({name!r}, download=True) on a machine with internet access, or copy "
        f"the files of torchvision.datasets.{class_name} into {root} (choose the directory "
        f"with data_dir= or the {DATA_ENV_VAR} environment variable). Datasets that work "
        f"offline without any files: {', '.join(repr(n) for n in _OFFLINE_NAMES)}."
    )


def _torchvision_arrays(name: str, root: Path, download: bool):
    """Read uint8 images (n, C, H, W) and int64 labels of both splits through torchvision."""
    cls = _torchvision_class(name)
    arrays = []
    for split in ("train", "test"):
        split_argument = {"split": split} if name == "svhn" else {"train": split == "train"}
        try:
            data = cls(str(root), download=download, **split_argument)
        except (RuntimeError, OSError) as error:  # torchvision's "not found", or a failed download
            raise DatasetNotFoundError(_not_found_message(name, root, download, error)) from error
        if name == "svhn":  # already (n, C, H, W); torchvision maps label 10 to digit 0
            images, labels = data.data, data.labels
        elif name in ("cifar10", "cifar100"):
            images = data.data.transpose(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
            labels = data.targets
        else:
            images = data.data.numpy()[:, None]  # (n, H, W) -> (n, 1, H, W)
            labels = data.targets.numpy()
        arrays += [np.ascontiguousarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)]
    logger.info("%s: read %d train and %d test examples from %s",
                name, len(arrays[1]), len(arrays[3]), root)
    return arrays[0], arrays[1], arrays[2], arrays[3]
