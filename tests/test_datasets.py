"""Tests of toscore.datasets: splits, standardization, MNIST-1D generation and caching,
torchvision datasets read from small fake files in their own on-disk formats."""

import pickle
import socket
import struct

import mnist1d.data
import numpy as np
import pytest
import requests
import scipy.io
import torch
import torchvision.datasets
from sklearn.datasets import load_digits

from toscore.datasets import (
    DatasetNotFoundError,
    dataset_info,
    dataset_names,
    load_dataset,
    synthetic_dataset,
)

TORCHVISION_NAMES = ["mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"]
N_FAKE_TRAIN, N_FAKE_TEST = 20, 10


@pytest.fixture
def no_network(monkeypatch):
    """Make every attempt to reach the network raise."""

    def reject_connection(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", reject_connection)
    monkeypatch.setattr(socket, "create_connection", reject_connection)
    monkeypatch.setattr(socket.socket, "connect", reject_connection)
    monkeypatch.setattr(requests, "get", reject_connection)
    monkeypatch.setattr(requests.Session, "request", reject_connection)


def _nearest_rows(rows, table):
    """Find the closest row of ``table`` (max-norm) for each row; also return the largest gap."""
    gaps = (rows[:, None, :] - table[None, :, :]).abs().amax(dim=2)  # (n_rows, n_table)
    closest = gaps.min(dim=1)
    return closest.indices, float(closest.values.max())


# --------------------------------------------------------------------------- digits


def test_digits_split_is_stratified_with_default_sizes():
    data = load_dataset("digits")
    counts = np.bincount(load_digits().target)
    train_counts = np.bincount(data.train_y.numpy(), minlength=10)
    test_counts = np.bincount(data.test_y.numpy(), minlength=10)
    # ceil(0.25 * 1797) = 450 test examples
    assert (data.train_x.shape, data.test_x.shape) == ((1347, 64), (450, 64))
    np.testing.assert_array_equal(train_counts + test_counts, counts)
    assert np.all(np.abs(test_counts - 0.25 * counts) <= 1)


def test_digits_split_is_seeded():
    first, again, other = (load_dataset("digits", seed=s) for s in (3, 3, 4))
    assert torch.equal(first.train_x, again.train_x)
    assert torch.equal(first.test_y, again.test_y)
    assert not torch.equal(first.train_x, other.train_x)


@pytest.mark.parametrize("test_fraction", [0.25, 0.4])
def test_digits_standardization_uses_train_statistics(test_fraction):
    data = load_dataset("digits", test_fraction=test_fraction, seed=1)
    raw = load_digits()
    loaded = np.concatenate([data.train_x.numpy(), data.test_x.numpy()]).astype(np.float64)
    is_train = np.arange(len(loaded)) < len(data.train_x)

    # Per-column increasing affine maps keep the lexicographic order of rows, and digits
    # has no duplicate rows, so sorting both sides pairs every loaded row with its raw row.
    matched = np.empty_like(raw.data)
    matched[np.lexsort(loaded.T[::-1])] = raw.data[np.lexsort(raw.data.T[::-1])]
    labels = np.empty_like(raw.target)
    labels[np.lexsort(loaded.T[::-1])] = raw.target[np.lexsort(raw.data.T[::-1])]
    np.testing.assert_array_equal(labels, np.concatenate([data.train_y, data.test_y]))

    train_raw, test_raw = matched[is_train], matched[~is_train]
    mean, std = train_raw.mean(axis=0), train_raw.std(axis=0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(data.train_x.numpy(), (train_raw - mean) / std, atol=1e-5)
    np.testing.assert_allclose(data.test_x.numpy(), (test_raw - mean) / std, atol=1e-5)
    # statistics of all 1797 examples would give different test inputs
    full_std = raw.data.std(axis=0)
    full_std[full_std == 0] = 1.0
    full_standardized = (test_raw - raw.data.mean(axis=0)) / full_std
    assert not np.allclose(data.test_x.numpy(), full_standardized, atol=1e-3)


def test_digits_subset_stratified_and_seeded():
    full = load_dataset("digits")
    subset = load_dataset("digits", n_train=200, n_test=50)
    again = load_dataset("digits", n_train=200, n_test=50)
    other = load_dataset("digits", n_train=200, n_test=50, seed=1)
    assert (subset.train_x.shape, subset.test_x.shape) == ((200, 64), (50, 64))
    assert torch.equal(subset.train_x, again.train_x)
    assert torch.equal(subset.test_x, again.test_x)
    assert not torch.equal(subset.train_x, other.train_x[:200])

    expected = 200 * np.bincount(full.train_y.numpy()) / len(full.train_y)
    assert np.all(np.abs(np.bincount(subset.train_y.numpy(), minlength=10) - expected) <= 1)
    # every subset row, label included, is a row of the full training split
    nearest, difference = _nearest_rows(subset.train_x, full.train_x)
    assert difference == 0.0
    assert torch.equal(full.train_y[nearest], subset.train_y)


@pytest.mark.parametrize(
    "keyword, value", [("n_train", 0), ("n_train", 1348), ("n_test", 451), ("n_test", -2)]
)
def test_subset_size_out_of_range_is_rejected(keyword, value):
    with pytest.raises(ValueError, match=rf"{keyword} must lie between 1 and .*got {value}"):
        load_dataset("digits", **{keyword: value})


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_device(device):
    data = load_dataset("digits", n_train=30, n_test=10, device=device)
    expected = "cuda" if device == "auto" and torch.cuda.is_available() else "cpu"
    tensors = (data.train_x, data.train_y, data.test_x, data.test_y)
    assert {tensor.device.type for tensor in tensors} == {expected}
    assert data.train_x.dtype == torch.float32
    assert data.train_y.dtype == torch.int64


def test_layouts_of_digits():
    flat = load_dataset("digits")
    image = load_dataset("digits", layout="channels_first")
    assert image.input_shape == (1, 8, 8)
    assert torch.equal(image.train_x.reshape(-1, 64), flat.train_x)


# -------------------------------------------------------------------------- mnist1d

SMALL_MNIST1D = {"num_samples": 600}  # 480 train / 120 test, fast to generate


def test_mnist1d_generates_offline(tmp_path, no_network):
    data = load_dataset("mnist1d", data_dir=tmp_path, mnist1d_args=SMALL_MNIST1D)
    args = mnist1d.data.get_dataset_args()
    args.num_samples = 600
    reference = mnist1d.data.make_dataset(args, mnist1d.data.get_templates())
    assert (data.train_x.shape, data.test_x.shape) == ((480, 40), (120, 40))
    np.testing.assert_allclose(data.train_x.numpy(), reference["x"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(data.test_x.numpy(), reference["x_test"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(data.train_y.numpy(), reference["y"])
    np.testing.assert_array_equal(data.test_y.numpy(), reference["y_test"])
    assert len(list((tmp_path / "mnist1d").glob("*.npz"))) == 1


def test_mnist1d_second_load_reads_the_cache(tmp_path, monkeypatch):
    numpy_state = np.random.get_state()
    first = load_dataset("mnist1d", data_dir=tmp_path, mnist1d_args=SMALL_MNIST1D)
    # the package reseeds numpy's global generator; the loader must restore it
    assert np.random.get_state()[1].tolist() == numpy_state[1].tolist()

    def fail(*args, **kwargs):
        raise AssertionError("generator called although the cache exists")

    monkeypatch.setattr(mnist1d.data, "make_dataset", fail)
    second = load_dataset("mnist1d", data_dir=tmp_path, mnist1d_args=SMALL_MNIST1D)
    assert torch.equal(first.train_x, second.train_x)
    assert torch.equal(first.test_y, second.test_y)
    # other generation arguments have their own cache entry, so they must generate
    with pytest.raises(AssertionError, match="generator called"):
        load_dataset("mnist1d", data_dir=tmp_path, mnist1d_args={"num_samples": 700})


def test_mnist1d_cache_uses_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TOSCORE_DATA", str(tmp_path))
    load_dataset("mnist1d", mnist1d_args=SMALL_MNIST1D)
    assert len(list((tmp_path / "mnist1d").glob("*.npz"))) == 1


def test_mnist1d_default_shapes_and_layouts(tmp_path):
    data = load_dataset("mnist1d", data_dir=tmp_path)
    assert (data.train_x.shape, data.test_x.shape) == ((4000, 40), (1000, 40))
    assert set(data.train_y.tolist()) == set(range(10))
    assert data.n_classes == 10
    conv = load_dataset("mnist1d", data_dir=tmp_path, layout="channels_first")
    assert conv.input_shape == (1, 40)
    assert torch.equal(conv.train_x[:, 0], data.train_x)


def test_mnist1d_rejects_unknown_generation_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown keys.*'samples'"):
        load_dataset("mnist1d", data_dir=tmp_path, mnist1d_args={"samples": 10})


# ---------------------------------------------------------- torchvision fake datasets


def _fake_split(rng, n, shape, n_classes):
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)  # (n, C, H, W)
    labels = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    return images, labels


def _write_idx(path, array, magic):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(f">{1 + array.ndim}i", magic, *array.shape)  # big-endian sizes
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _write_mnist(root, class_name, train, test):
    raw = root / class_name / "raw"
    for prefix, (images, labels) in (("train", train), ("t10k", test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[:, 0], 0x0803)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 0x0801)


def _pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def _write_cifar10(root, train, test):
    folder = root / "cifar-10-batches-py"
    for batch in range(5):  # five training batches, as in the real archive
        rows = slice(batch * len(train[0]) // 5, (batch + 1) * len(train[0]) // 5)
        _pickle(folder / f"data_batch_{batch + 1}",
                {"data": train[0][rows].reshape(-1, 3072), "labels": train[1][rows].tolist()})
    _pickle(folder / "test_batch", {"data": test[0].reshape(-1, 3072), "labels": test[1].tolist()})
    _pickle(folder / "batches.meta", {"label_names": [f"class {i}" for i in range(10)]})


def _write_cifar100(root, train, test):
    folder = root / "cifar-100-python"
    for file, (images, labels) in (("train", train), ("test", test)):
        _pickle(folder / file, {"data": images.reshape(-1, 3072), "fine_labels": labels.tolist(),
                                "coarse_labels": (labels // 5).tolist()})
    _pickle(folder / "meta", {"fine_label_names": [f"class {i}" for i in range(100)]})


def _write_svhn(root, train, test):
    root.mkdir(parents=True, exist_ok=True)
    for file, (images, labels) in (("train_32x32.mat", train), ("test_32x32.mat", test)):
        svhn_labels = np.where(labels == 0, 10, labels).astype(np.uint8)[:, None]  # 10 is digit 0
        # the .mat layout is (H, W, C, n)
        scipy.io.savemat(root / file, {"X": images.transpose(2, 3, 1, 0), "y": svhn_labels})


FAKE_FORMATS = {
    "mnist": ((1, 28, 28), 10, lambda root, tr, te: _write_mnist(root, "MNIST", tr, te)),
    "fashion_mnist": (
        (1, 28, 28), 10, lambda root, tr, te: _write_mnist(root, "FashionMNIST", tr, te)
    ),
    "cifar10": ((3, 32, 32), 10, _write_cifar10),
    "cifar100": ((3, 32, 32), 100, _write_cifar100),
    "svhn": ((3, 32, 32), 10, _write_svhn),
}


@pytest.fixture
def skip_torchvision_checksums(monkeypatch):
    """Accept fake CIFAR and SVHN files.

    torchvision compares each CIFAR and SVHN file with the md5 of the published file, which
    a fake file cannot match. Its check_integrity(path, md5=None) only checks that the file
    exists, so the checksums are set to None for the duration of a test. MNIST and
    Fashion-MNIST files are only checked for existence.
    """
    for cls in (torchvision.datasets.CIFAR10, torchvision.datasets.CIFAR100):
        monkeypatch.setattr(cls, "train_list", [[file, None] for file, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[file, None] for file, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": None})
    svhn = torchvision.datasets.SVHN
    unchecked = {split: [url, file, None] for split, (url, file, _) in svhn.split_list.items()}
    monkeypatch.setattr(svhn, "split_list", unchecked)


def _write_fake(name, root, seed=0):
    shape, n_classes, writer = FAKE_FORMATS[name]
    rng = np.random.default_rng(seed)
    train = _fake_split(rng, N_FAKE_TRAIN, shape, n_classes)
    test = _fake_split(rng, N_FAKE_TEST, shape, n_classes)
    writer(root, train, test)
    return train, test


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_torchvision_reads_own_format(name, tmp_path, skip_torchvision_checksums, no_network):
    (train_images, train_labels), (test_images, test_labels) = _write_fake(name, tmp_path)
    data = load_dataset(name, data_dir=tmp_path)

    shape, n_classes, _ = FAKE_FORMATS[name]
    assert data.train_x.shape == (N_FAKE_TRAIN, *shape)
    assert data.test_x.shape == (N_FAKE_TEST, *shape)
    assert data.n_classes == n_classes
    assert data.train_x.dtype == torch.float32
    np.testing.assert_array_equal(data.train_y.numpy(), train_labels)
    np.testing.assert_array_equal(data.test_y.numpy(), test_labels)

    scaled = train_images / 255.0
    mean = scaled.mean(axis=(0, 2, 3))[None, :, None, None]
    std = scaled.std(axis=(0, 2, 3))[None, :, None, None]
    np.testing.assert_allclose(data.train_x.numpy(), (scaled - mean) / std, atol=1e-5)
    np.testing.assert_allclose(data.test_x.numpy(), (test_images / 255.0 - mean) / std, atol=1e-5)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_torchvision_subsets_and_flat_layout(name, tmp_path, skip_torchvision_checksums):
    _write_fake(name, tmp_path)
    full = load_dataset(name, data_dir=tmp_path)
    subset = load_dataset(name, data_dir=tmp_path, n_train=10, n_test=4, layout="flat", seed=5)
    again = load_dataset(name, data_dir=tmp_path, n_train=10, n_test=4, layout="flat", seed=5)
    assert subset.train_x.shape == (10, full.input_dim)
    assert subset.test_x.shape == (4, full.input_dim)
    assert torch.equal(subset.train_x, again.train_x)
    assert torch.equal(subset.test_y, again.test_y)
    # 2 examples of each of 10 classes in the fake training split: a stratified half has one each
    assert sorted(subset.train_y.tolist()) == list(range(10))
    # subsets keep the full split's standardization: each row is a row of the full split
    nearest, difference = _nearest_rows(subset.train_x, full.train_x.flatten(1))
    assert difference == 0.0
    assert torch.equal(full.train_y[nearest], subset.train_y)
    with pytest.raises(ValueError, match="n_test must lie between 1 and 10"):
        load_dataset(name, data_dir=tmp_path, n_test=11)


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_missing_torchvision_dataset_error(name, tmp_path):
    data_dir = tmp_path / "no data here"
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(name, data_dir=data_dir)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    for part in (repr(name), str(data_dir), "download=True", "'digits'", "'mnist1d'"):
        assert part in message


def test_missing_dataset_names_environment_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("TOSCORE_DATA", str(tmp_path / "env dir"))
    with pytest.raises(DatasetNotFoundError, match="env dir"):
        load_dataset("svhn")


@pytest.mark.parametrize("name", ["mnist", "cifar10", "svhn"])
def test_failed_download_offline_raises_not_found(name, tmp_path, no_network):
    with pytest.raises(DatasetNotFoundError, match=rf"'{name}' is not available: downloading it"):
        load_dataset(name, data_dir=tmp_path, download=True)


# ------------------------------------------------------------- names, info, synthetic

REAL_INFO = {  # name: (channels-first input shape, classes, train, test)
    "digits": ((1, 8, 8), 10, 1347, 450),
    "mnist1d": ((1, 40), 10, 4000, 1000),
    "mnist": ((1, 28, 28), 10, 60000, 10000),
    "fashion_mnist": ((1, 28, 28), 10, 60000, 10000),
    "cifar10": ((3, 32, 32), 10, 50000, 10000),
    "cifar100": ((3, 32, 32), 100, 50000, 10000),
    "svhn": ((3, 32, 32), 10, 73257, 26032),
}


def test_dataset_names():
    assert dataset_names() == sorted(REAL_INFO)


@pytest.mark.parametrize("name", sorted(REAL_INFO))
def test_dataset_info_has_real_sizes(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOSCORE_DATA", str(tmp_path / "data"))
    shape, n_classes, n_train, n_test = REAL_INFO[name]
    info = dataset_info(name, layout="channels_first")
    assert (info["input_shape"], info["n_classes"], info["n_train"], info["n_test"]) == (
        shape, n_classes, n_train, n_test)
    assert dataset_info(name, layout="flat")["input_shape"] == (int(np.prod(shape)),)
    assert not any(tmp_path.iterdir())  # nothing written anywhere


def test_dataset_info_of_digits_follows_test_fraction():
    info = dataset_info("digits", test_fraction=0.1)
    assert (info["n_train"], info["n_test"], info["n_total"]) == (1617, 180, 1797)  # ceil(179.7)


@pytest.mark.parametrize("name", sorted(REAL_INFO))
def test_synthetic_dataset_has_real_shapes(name):
    shape, n_classes, _, _ = REAL_INFO[name]
    data = load_dataset(name, synthetic=True, n_train=23, n_test=7, layout="channels_first")
    again = synthetic_dataset(name, 23, 7, seed=0, layout="channels_first")
    assert data.synthetic
    assert data.n_classes == n_classes
    assert data.train_x.shape == (23, *shape)
    assert data.test_x.shape == (7, *shape)
    assert data.train_x.dtype == torch.float32
    assert data.train_y.dtype == torch.int64
    assert torch.equal(data.train_x, again.train_x)
    assert torch.equal(data.train_y, again.train_y)
    counts = np.bincount(data.train_y.numpy(), minlength=n_classes)
    assert counts.sum() == 23
    assert counts.max() - counts.min() <= 1
    assert len(counts) == n_classes


def test_synthetic_digits_default_sizes_and_limits():
    data = synthetic_dataset("digits")
    assert data.train_x.shape == (1347, 64)
    assert data.test_x.shape == (450, 64)
    with pytest.raises(ValueError, match="n_train must lie between 1 and 60000"):
        synthetic_dataset("mnist", n_train=60001, n_test=1)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'.*'cifar10'.*'svhn'"):
        load_dataset("imagenet")


@pytest.mark.parametrize("name", ["mnist1d", "cifar10"])
def test_test_fraction_rejected_for_fixed_splits(name):
    with pytest.raises(ValueError, match=rf"test_fraction.*'{name}' has a fixed train/test split"):
        load_dataset(name, test_fraction=0.2)


@pytest.mark.parametrize("kwargs, match", [
    ({"layout": "nhwc"}, "layout must be one of"),
    ({"test_fraction": 1.0}, "test_fraction must lie in"),
    ({"mnist1d_args": {"num_samples": 10}}, "mnist1d_args applies only to 'mnist1d'"),
])
def test_invalid_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", **kwargs)
