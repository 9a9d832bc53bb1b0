"""Tests of toscore.comparison: config builders and the statistics of E3 and E4.

Expected statistics are worked out by hand in the comments, or computed by a second
route: Spearman's rho as the Pearson correlation of ranks, and exact Mann-Whitney
p-values by enumerating every split of the pooled sample.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from toscore import build_model
from toscore.comparison import (architecture_label, architecture_summary, cnn_configs,
                                compare_architectures, complete_config, segment_length_test,
                                trend_by_group)

# ----------------------------------------------------------------------------- configs


def test_cnn_configs_grid_order():
    configs = cnn_configs([1, 40], 10, n_convs=[1, 3], channels=[4, 8], batch_norms=[False, True])
    assert len(configs) == 2 * 2 * 2
    keys = [(c["batch_norm"], c["n_conv"], c["channels"]) for c in configs]
    assert keys == [(False, 1, 4), (False, 1, 8), (False, 3, 4), (False, 3, 8),
                    (True, 1, 4), (True, 1, 8), (True, 3, 4), (True, 3, 8)]
    assert all(c["input_shape"] == (1, 40) and c["n_classes"] == 10 for c in configs)
    assert all(c["head"] == "pool" for c in configs)
    assert all(c["head"] == "flatten" for c in cnn_configs((1, 40), 10, [1], [4], head="flatten"))
    # 1-D kernel 3, no batch norm: 3*1*4 + 4 weights and biases, then the 4 -> 10 classifier.
    assert sum(p.numel() for p in build_model(configs[0]).parameters()) == 3 * 4 + 4 + 4 * 10 + 10


@pytest.mark.parametrize("argument, values, match", [
    ("n_convs", [], "n_convs is empty"),
    ("channels", [8, 8], r"channels has repeated values: \[8, 8\]"),
    ("batch_norms", [], "batch_norms is empty"),
])
def test_cnn_configs_bad_values(argument, values, match):
    arguments = dict(n_convs=[1], channels=[8], batch_norms=[False])
    arguments[argument] = values
    with pytest.raises(ValueError, match=match):
        cnn_configs((1, 40), 10, **arguments)


def test_complete_config_adds_data_keys():
    partial = {"name": "wide_resnet", "depth": 10, "widen_factor": 2}
    config = complete_config(partial, [1, 40], 10)
    assert config == {"name": "wide_resnet", "input_shape": (1, 40), "n_classes": 10,
                      "depth": 10, "widen_factor": 2}
    assert list(config)[:3] == ["name", "input_shape", "n_classes"]
    assert partial == {"name": "wide_resnet", "depth": 10, "widen_factor": 2}
    # Giving the data's own values again is allowed.
    assert complete_config(config, (1, 40), 10) == config


@pytest.mark.parametrize("config, match", [
    ({"depth": 10}, "needs a 'name' key"),
    ({"name": "lenet", "n_classes": 100}, r"n_classes=100 but the data have n_classes=10"),
    ({"name": "lenet", "input_shape": (3, 32, 32)}, r"input_shape=\(3, 32, 32\) but the data"),
])
def test_complete_config_conflicts(config, match):
    with pytest.raises(ValueError, match=match):
        complete_config(config, (1, 40), 10)


@pytest.mark.parametrize("config, label", [
    ({"name": "wide_resnet", "depth": 16, "widen_factor": 2}, "WRN-16-2"),
    ({"name": "wide_resnet"}, "WRN-16-10"),
    ({"name": "lenet", "padding": 4}, "LeNet"),
    ({"name": "resnet", "depth": 9}, "ResNet-9"),
    ({"name": "resnet", "depth": 14, "width": 2}, "ResNet-14 x2"),
    ({"name": "cnn", "n_conv": 4, "channels": 32, "batch_norm": True}, "CNN 4x32 BN"),
    ({"name": "cnn", "n_conv": 2, "channels": 8, "batch_norm": False}, "CNN 2x8"),
    ({"name": "mlp", "input_dim": 64, "depth": 2, "width": 16, "n_classes": 10}, "MLP 2x16"),
    ({"name": "custom", "input_shape": (1, 8), "n_classes": 3, "k": 5}, "custom(k=5)"),
])
def test_architecture_label(config, label):
    assert architecture_label(config) == label


# ------------------------------------------------------------------------------ trends


def _spearman_by_ranks(x, y):
    """Spearman's rho as the Pearson correlation of average ranks."""
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def test_trend_by_group_pearson_of_ranks():
    rng = np.random.default_rng(3)
    scores = pd.DataFrame({
        "batch_norm": [False] * 6 + [True] * 6,
        "n_conv": [1, 1, 2, 2, 4, 4] * 2,
        "channels": [8, 32] * 6,
        "to_score": rng.uniform(0, 1, size=12),
    })
    table = trend_by_group(scores, "n_conv", "batch_norm")
    assert list(table["batch_norm"]) == [False, True]
    assert list(table["size"]) == ["n_conv", "n_conv"]
    assert list(table["n"]) == [6, 6]
    for row in table.itertuples():
        part = scores[scores["batch_norm"] == row.batch_norm]
        assert row.rho == pytest.approx(_spearman_by_ranks(part["n_conv"], part["to_score"]), abs=1e-12)


def test_trend_by_group_hand_cases():
    scores = pd.DataFrame({
        "batch_norm": [False] * 3 + [True] * 3,
        "channels": [4, 8, 16, 4, 8, 16],
        "to_score": [0.9, 0.5, 0.1, 0.2, 0.2, 0.2],  # falling without batch norm, constant with it
    })
    table = trend_by_group(scores, "channels", "batch_norm")
    assert table.loc[0, "rho"] == pytest.approx(-1.0)
    assert math.isnan(table.loc[1, "rho"])
    assert math.isnan(table.loc[1, "p_value"])


def test_trend_by_group_missing_column():
    with pytest.raises(ValueError, match=r"no column \['n_conv'\]"):
        trend_by_group(pd.DataFrame({"batch_norm": [True], "to_score": [1.0]}), "n_conv", "batch_norm")


# ------------------------------------------------------------------ Mann-Whitney U test


def _u_by_pairs(small, large):
    """U of the first sample: pairs where it is greater, ties counting 1/2."""
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in small for b in large)


def _exact_p_by_enumeration(small, large):
    """P(U >= observed) over every equally likely split of the pooled sample."""
    pooled = list(small) + list(large)
    observed = _u_by_pairs(small, large)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(small)):
        first = [pooled[i] for i in chosen]
        second = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += _u_by_pairs(first, second) >= observed - 1e-12
        total += 1
    return hits / total


def test_segment_length_test_exact_hand_case():
    # Every small length exceeds every large one: U = 3 * 2 = 6, and only one of the
    # C(5, 2) = 10 splits puts the two smallest values in the large sample: p = 1/10.
    result = segment_length_test([0.3, 0.4, 0.5], [0.1, 0.2])
    assert result["u_statistic"] == 6.0
    assert result["p_value"] == pytest.approx(0.1)
    assert result["effect_size"] == 1.0
    assert (result["n_small"], result["n_large"]) == (3, 2)


def test_segment_length_test_tied_hand_case():
    # Pairs (1,1)=1/2, (1,2)=0, (3,1)=1, (3,2)=1: U = 2.5. With a tie scipy uses the
    # normal approximation: mean n1 n2 / 2 = 2, tie-corrected variance
    # n1 n2 / 12 * ((n + 1) - sum(t^3 - t) / (n (n - 1))) = 4/12 * (5 - 6/12) = 1.5,
    # z = (2.5 - 2 - 0.5 continuity) / sqrt(1.5) = 0, so p = 1/2.
    result = segment_length_test([1.0, 3.0], [1.0, 2.0])
    assert result["u_statistic"] == 2.5
    assert result["p_value"] == pytest.approx(0.5)
    assert result["effect_size"] == pytest.approx(2.5 / 4)


@pytest.mark.parametrize("small, large", [
    ([0.31, 0.12, 0.55, 0.08], [0.05, 0.21, 0.02]),
    ([0.2, 0.9, 0.4, 0.7, 0.6], [0.3, 0.1, 0.8, 0.5, 0.05]),
    ([0.01, 0.02], [0.5, 0.6, 0.7]),  # the other direction: p near 1
])
def test_segment_length_test_enumerated_p(small, large):
    result = segment_length_test(small, large)
    assert result["u_statistic"] == _u_by_pairs(small, large)
    assert result["p_value"] == pytest.approx(_exact_p_by_enumeration(small, large), rel=1e-9)


@pytest.mark.parametrize("small, large, match", [
    ([], [0.1], "small_lengths is empty"),
    ([0.1], np.array([]), "large_lengths is empty"),
    ([0.1, np.inf], [0.2], "small_lengths contains 1 NaN or infinite"),
    ([0.1], [np.nan, np.nan], "large_lengths contains 2 NaN or infinite"),
])
def test_segment_length_test_bad_samples(small, large, match):
    with pytest.raises(ValueError, match=match):
        segment_length_test(small, large)


# --------------------------------------------------------------- architecture tables


def _segments(small_lengths, large_lengths):
    """A segments table: finite lengths plus one essential (infinite) bar per network."""
    rows = []
    for label, lengths in (("LeNet", small_lengths), ("WRN-10-2", large_lengths)):
        for length in lengths:
            rows.append({"architecture": label, "length": length, "essential": False})
        rows.append({"architecture": label, "length": math.inf, "essential": True})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("ord, small_score, large_score", [
    (2, math.sqrt(0.09 + 0.16 + 0.25), math.sqrt(0.01 + 0.04)),
    (1, 1.2, 0.3),
    (math.inf, 0.5, 0.2),
])
def test_compare_architectures_scores_ratio(ord, small_score, large_score):
    result = compare_architectures(_segments([0.3, 0.4, 0.5], [0.1, 0.2]), "LeNet", "WRN-10-2", ord=ord)
    assert result["to_score_small"] == pytest.approx(small_score)
    assert result["to_score_large"] == pytest.approx(large_score)
    assert result["to_score_ratio"] == pytest.approx(large_score / small_score)
    assert result["norm_ord"] == str(ord)
    # The essential bars (infinite lengths) are left out: U = 6, p = 1/10 as above.
    assert result["u_statistic"] == 6.0
    assert result["p_value"] == pytest.approx(0.1)


@pytest.mark.parametrize("small, large, alpha, supported", [
    ([0.3, 0.4, 0.5], [0.1, 0.2], 0.2, True),   # shorter and p = 0.1 < 0.2
    ([0.3, 0.4, 0.5], [0.1, 0.2], 0.05, None),  # shorter but p = 0.1 is not below 0.05
    ([0.1, 0.2], [0.3, 0.4, 0.5], 0.2, False),  # the large network's bars are longer
    ([0.2, 0.2], [0.2, 0.2], 0.2, False),       # equal TO-scores: ratio 1
])
def test_compare_architectures_verdict(small, large, alpha, supported):
    result = compare_architectures(_segments(small, large), "LeNet", "WRN-10-2", alpha=alpha)
    assert result["supported"] is supported


def test_compare_architectures_zero_score():
    result = compare_architectures(_segments([0.0, 0.0], [0.1]), "LeNet", "WRN-10-2")
    assert result["to_score_ratio"] == math.inf
    assert result["supported"] is False
    result = compare_architectures(_segments([0.0], [0.0]), "LeNet", "WRN-10-2")
    assert math.isnan(result["to_score_ratio"])
    assert result["supported"] is False


@pytest.mark.parametrize("arguments, match", [
    (dict(small="ResNet-9", large="WRN-10-2"), r"small='ResNet-9' names no rows"),
    (dict(small="LeNet", large="LeNet", alpha=1.5), r"alpha must lie in \(0, 1\); got 1.5"),
    (dict(small="LeNet", large="WRN-10-2", ord=3), "ord must be one of 1, 2, inf; got 3"),
])
def test_compare_architectures_bad_arguments(arguments, match):
    with pytest.raises(ValueError, match=match):
        compare_architectures(_segments([0.3], [0.1]), **arguments)


def test_compare_architectures_no_finite_segment():
    with pytest.raises(ValueError, match="large_lengths is empty"):
        compare_architectures(_segments([0.3], []), "LeNet", "WRN-10-2")


def test_architecture_summary_hand_values():
    segments = _segments([0.3, 0.5], [0.1, 0.2])
    segments["n_params"] = [100] * 3 + [5000] * 3
    segments["train_loss"] = [0.2, 0.4, 0.6, 0.1, 0.1, 0.1]
    segments["test_loss"] = [1.0, 2.0, 3.0, 0.5, 0.7, 0.9]
    segments["train_accuracy"] = [0.9, 0.8, 0.7, 1.0, 1.0, 1.0]
    segments["test_accuracy"] = [0.6, 0.7, 0.8, 0.9, 0.8, 0.7]
    table = architecture_summary(segments).set_index("architecture")
    assert list(table.index) == ["LeNet", "WRN-10-2"]
    lenet, wrn = table.loc["LeNet"], table.loc["WRN-10-2"]
    assert (lenet["n_params"], wrn["n_params"]) == (100, 5000)
    assert lenet["n_minima"] == 3
    assert lenet["n_finite_segments"] == 2
    # Mean and sample standard deviation (n - 1) of 0.2, 0.4, 0.6: 0.4 and 0.2.
    assert lenet["train_loss_mean"] == pytest.approx(0.4)
    assert lenet["train_loss_std"] == pytest.approx(0.2)
    assert lenet["test_loss_mean"] == pytest.approx(2.0)
    assert lenet["test_loss_std"] == pytest.approx(1.0)
    assert wrn["train_loss_std"] == pytest.approx(0.0)
    assert wrn["test_accuracy_mean"] == pytest.approx(0.8)
    assert wrn["test_accuracy_std"] == pytest.approx(0.1)
    # Finite lengths only: 0.3 and 0.5 give mean 0.4, std sqrt(0.02), norm sqrt(0.34).
    assert lenet["length_mean"] == pytest.approx(0.4)
    assert lenet["length_std"] == pytest.approx(math.sqrt(0.02))
    assert lenet["to_score"] == pytest.approx(math.sqrt(0.34))
    assert wrn["to_score"] == pytest.approx(math.sqrt(0.05))
    assert lenet["norm_ord"] == "2"


def test_architecture_summary_single_segment():
    segments = _segments([0.3], [0.1])
    for metric in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        segments[metric] = 0.5
    table = architecture_summary(segments, ord=1)
    assert table["length_mean"].tolist() == pytest.approx([0.3, 0.1])
    assert table["length_std"].isna().all()
    assert table["to_score"].tolist() == pytest.approx([0.3, 0.1])


def test_architecture_summary_missing_columns():
    with pytest.raises(ValueError, match=r"no column \['train_loss', 'test_loss'"):
        architecture_summary(_segments([0.3], [0.1]))


def test_statistics_skip_excluded_minima():
    segments = _segments([0.3, 0.4, 0.5], [0.1, 0.2])
    for metric in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
        segments[metric] = 0.5
    segments["excluded"] = False
    diverged = {"architecture": "WRN-10-2", "length": np.nan, "essential": False, "excluded": True,
                "train_loss": np.nan, "test_loss": np.nan, "train_accuracy": 0.1, "test_accuracy": 0.1}
    segments = pd.concat([segments, pd.DataFrame([diverged])], ignore_index=True)
    result = compare_architectures(segments, "LeNet", "WRN-10-2")
    assert (result["n_small"], result["n_large"]) == (3, 2)
    assert result["u_statistic"] == 6.0
    table = architecture_summary(segments).set_index("architecture")
    assert table.loc["WRN-10-2", "n_minima"] == 3
    assert table.loc["WRN-10-2", "n_excluded"] == 1
    assert table.loc["WRN-10-2", "test_accuracy_mean"] == pytest.approx(0.5)
    assert table.loc["LeNet", "n_excluded"] == 0


def test_segments_table_tuple_config_value():
    from toscore.datasets import load_dataset
    from toscore.experiments import barcode_of_config

    data = load_dataset("mnist1d", layout="channels_first", n_train=40, n_test=20)
    config = dict(name="cnn", input_shape=(1, 40), n_conv=1, channels=2, n_classes=10)
    # Three minima and a two-entry shape: the shape must not be spread over the rows.
    result = barcode_of_config(data, config, seeds=range(3), train=dict(epochs=1),
                               paths=dict(method="linear", dense=2), device="cpu", store=False)
    assert len(result.segments) == 3
    assert all(shape == (1, 40) for shape in result.segments["input_shape"])
    assert result.score["input_shape"] == (1, 40)


@pytest.mark.parametrize("value, message", [
    ({"name": "lenet", "padding": 4}, None),
    ({"name": "wide_resnet", "depth": 10, "widen_factor": 2}, None),
    ({"name": "lenett"}, "model name 'lenett' is not one of"),
    ({"depth": 10}, "model name None is not one of"),
    ("lenet", "expected a model config dict with a 'name' key, got str 'lenet'"),
])
def test_model_config_rule(value, message):
    from toscore.comparison import model_config_rule

    problem = model_config_rule(value)
    if message is None:
        assert problem is None
    else:
        assert message in problem
        if "is not one of" in message:  # the message lists the registered names
            assert "'wide_resnet'" in problem and "'cnn'" in problem
