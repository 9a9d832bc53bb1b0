"""Artifact store, resumable experiment steps and exclusion of diverged minima."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import toscore
from toscore import experiments
from toscore.artifacts import ArtifactStore, fingerprint_tensors
from toscore.experiments import barcode_of_config
from toscore.minima import Minima
from toscore.paths import MinimaBarcode

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"name": "mlp", "input_dim": 64, "depth": 1, "width": 8, "n_classes": 10}
SETTINGS = dict(seeds=range(3), train=dict(epochs=2), paths=dict(n_points=4, n_steps=3, n_insertions=1),
                device="cpu")


@pytest.fixture(scope="module")
def digits():
    return toscore.load_dataset("digits", n_train=150, n_test=60)


def test_store_round_trip(tmp_path):
    store = ArtifactStore(tmp_path)
    arrays = {"a": np.arange(5.0), "b": np.array(["x", "yy"])}
    key = store.key("thing", value=1)
    store.save("thing", key, arrays)
    loaded = store.load("thing", key)
    assert set(loaded) == {"a", "b"}
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    np.testing.assert_array_equal(loaded["b"], arrays["b"])
    assert not list(tmp_path.rglob("*.tmp"))


def test_key_depends_on_every_part(tmp_path):
    store = ArtifactStore(tmp_path)
    base = store.key("minima", model=CONFIG, seeds=[0, 1])
    assert store.key("minima", model=CONFIG, seeds=[0, 1]) == base
    assert store.key("minima", model={**CONFIG, "width": 9}, seeds=[0, 1]) != base
    assert store.key("minima", model=CONFIG, seeds=[0, 2]) != base
    assert store.key("barcode", model=CONFIG, seeds=[0, 1]) != base


def test_key_depends_on_code(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    before = store.key("minima", value=1)
    monkeypatch.setattr("toscore.artifacts.code_fingerprint", lambda: "edited")
    assert store.key("minima", value=1) != before


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop-checksum"])
def test_corrupted_artifact_is_reported_and_dropped(tmp_path, damage):
    store = ArtifactStore(tmp_path)
    key = store.key("thing", value=2)
    path = store.save("thing", key, {"a": np.arange(1000.0)})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    else:
        path.with_suffix(".sha256").unlink()
    with pytest.warns(UserWarning, match=rf"artifact .*{path.name}.* corrupted"):
        assert store.load("thing", key) is None
    assert not path.exists()


def test_fresh_store_ignores_artifacts(tmp_path):
    key = ArtifactStore(tmp_path).key("thing", value=3)
    ArtifactStore(tmp_path).save("thing", key, {"a": np.zeros(2)})
    assert ArtifactStore(tmp_path).load("thing", key) is not None
    assert ArtifactStore(tmp_path, fresh=True).load("thing", key) is None


def test_interrupted_write_leaves_no_artifact(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)

    def failing_savez(handle, **arrays):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(KeyboardInterrupt):
        store.save("thing", "k", {"a": np.zeros(3)})
    assert not list((tmp_path / "thing").iterdir())


def test_fingerprint_sees_every_value():
    a = torch.arange(6.0)
    b = a.clone()
    b[3] += 1e-6
    assert fingerprint_tensors(a) == fingerprint_tensors(a.clone())
    assert fingerprint_tensors(a) != fingerprint_tensors(b)
    assert fingerprint_tensors(a) != fingerprint_tensors(a.reshape(2, 3))


def test_minima_and_barcode_round_trip(digits, tmp_path):
    result = barcode_of_config(digits, CONFIG, store=False, **SETTINGS)
    minima = Minima.from_arrays(result.minima.to_arrays())
    torch.testing.assert_close(minima.parameters, result.minima.parameters, rtol=0, atol=0)
    pd.testing.assert_frame_equal(minima.table, result.minima.table)

    barcode = MinimaBarcode.from_arrays(result.barcode.to_arrays())
    assert barcode.settings == result.barcode.settings
    assert barcode.method == result.barcode.method
    np.testing.assert_array_equal(barcode.saddle_values, result.barcode.saddle_values)
    np.testing.assert_array_equal(barcode.path_status, result.barcode.path_status)
    for got, want in zip(barcode.paths, result.barcode.paths):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    for got, want in zip(barcode.profile_values, result.barcode.profile_values):
        np.testing.assert_array_equal(got, want)
    pd.testing.assert_frame_equal(barcode.segments, result.barcode.segments)


def test_second_call_reuses_artifacts(digits, tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    first = barcode_of_config(digits, CONFIG, store=store, **SETTINGS)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed although an artifact matched")

    monkeypatch.setattr(experiments, "train_minima", fail)
    monkeypatch.setattr(experiments, "minima_barcode", fail)
    second = barcode_of_config(digits, CONFIG, store=store, **SETTINGS)
    pd.testing.assert_frame_equal(first.segments, second.segments)
    assert first.score == second.score


def test_changed_parameter_recomputes(digits, tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    barcode_of_config(digits, CONFIG, store=store, **SETTINGS)
    calls = []
    original = experiments.minima_barcode

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(experiments, "minima_barcode", counting)
    changed = {**SETTINGS, "paths": {**SETTINGS["paths"], "n_steps": 4}}
    barcode_of_config(digits, CONFIG, store=store, **changed)
    assert len(calls) == 1  # minima reused, barcode recomputed


def test_diverged_minimum_is_excluded_and_recorded(digits, monkeypatch):
    original = experiments.train_minima

    def one_diverges(*args, **kwargs):
        minima = original(*args, **kwargs)
        minima.table.loc[1, ["diverged", "diverged_step", "diverged_value"]] = [True, 7, np.inf]
        return minima

    monkeypatch.setattr(experiments, "train_minima", one_diverges)
    result = barcode_of_config(digits, CONFIG, store=False, **{**SETTINGS, "seeds": range(4)})
    assert len(result.barcode.minima_values) == 3
    assert result.segments["excluded"].tolist() == [False, True, False, False]
    assert np.isnan(result.segments.loc[1, ["birth", "death", "length"]].astype(float)).all()
    assert result.score["n_excluded"] == 1
    assert result.score["n_minima"] == 3
    # Vertex indices of the barcode map back to minima 0, 2, 3.
    kept_births = result.segments.loc[[0, 2, 3], "birth"].to_numpy()
    np.testing.assert_array_equal(kept_births, result.barcode.minima_values)
    assert set(result.segments["merged_into"]) <= {-1, 0, 2, 3}


def test_too_few_finite_minima_raise(digits, monkeypatch):
    original = experiments.train_minima

    def all_but_one_diverge(*args, **kwargs):
        minima = original(*args, **kwargs)
        minima.table.loc[1:, "diverged"] = True
        return minima

    monkeypatch.setattr(experiments, "train_minima", all_but_one_diverge)
    with pytest.raises(RuntimeError, match="only 1 of 3 minima"):
        barcode_of_config(digits, CONFIG, store=False, **SETTINGS)


_SCRIPT = textwrap.dedent("""
    import sys
    import pandas as pd
    import toscore
    from toscore.artifacts import ArtifactStore
    from toscore.experiments import barcode_of_config

    store, output = ArtifactStore(sys.argv[1]), sys.argv[2]
    data = toscore.load_dataset("digits", n_train=150, n_test=60)
    rows = []
    for width in (4, 6, 8, 10):
        config = dict(name="mlp", input_dim=64, depth=1, width=width, n_classes=10)
        result = barcode_of_config(data, config, seeds=range(3), train=dict(epochs=3),
                                   paths=dict(n_points=4, n_steps=30, n_insertions=1),
                                   device="cpu", store=store)
        rows.append(result.segments)
    pd.concat(rows).to_csv(output, index=False)
""")


def _run(store_dir, output, **kwargs):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, str(store_dir), str(output)], cwd=ROOT,
                            env=env, **kwargs)


def test_killed_run_resumes_to_identical_results(tmp_path):
    reference = tmp_path / "reference.csv"
    assert _run(tmp_path / "store-a", reference).wait(timeout=300) == 0

    # Kill the second run with SIGKILL once its first barcode is saved, then run it again.
    store = tmp_path / "store-b"
    resumed = tmp_path / "resumed.csv"
    process = _run(store, resumed)
    deadline = time.monotonic() + 300
    while not list(store.glob("barcode/*.sha256")):
        assert process.poll() is None, "the run finished before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not resumed.exists()
    n_saved = len(list(store.glob("*/*.npz")))
    assert n_saved < 8  # interrupted before the end

    assert _run(store, resumed).wait(timeout=300) == 0
    pd.testing.assert_frame_equal(pd.read_csv(resumed), pd.read_csv(reference))
