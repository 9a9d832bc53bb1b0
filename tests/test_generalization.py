"""Learning-rate schedules, group training and the statistics of the E5 experiment."""

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from toscore import build_model, flatten_parameters, load_dataset, train_minima
from toscore.generalization import (AnnealingSchedule, ConstantSchedule, bootstrap_spearman,
                                    group_statistics, joint_barcode, minimum_table, model_config,
                                    observation_verdict, segment_error_correlation, spearman_rho,
                                    train_groups)
from toscore.minima import Minima
from toscore.paths import minima_barcode
from toscore.plots import plot_group_barcodes, plot_segment_error


# ------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("epoch", [0, 1, 17, 1999])
def test_constant_schedule_is_constant(epoch):
    assert ConstantSchedule(1e-4)(epoch) == 1e-4


# Type-2 schedule of arXiv:2012.15834: 5e-2 for epochs 0..10, geometric to 1e-4 at epoch 50.
@pytest.mark.parametrize("epoch, expected", [
    (0, 5e-2),
    (9, 5e-2),
    (10, 5e-2),  # the anneal starts here, still at the large rate
    (20, 5e-2 ** 0.75 * 1e-4 ** 0.25),  # a quarter of the way on a log scale
    (30, math.sqrt(5e-2 * 1e-4)),  # halfway: the geometric mean
    (50, 1e-4),
    (99, 1e-4),
])
def test_geometric_annealing_at_hand_computed_epochs(epoch, expected):
    schedule = AnnealingSchedule(5e-2, 1e-4, hold_epochs=10, anneal_end=50)
    assert schedule(epoch) == pytest.approx(expected, rel=1e-12)


def test_geometric_annealing_has_a_constant_ratio():
    schedule = AnnealingSchedule(5e-2, 1e-4, hold_epochs=10, anneal_end=50)
    ratios = [schedule(e + 1) / schedule(e) for e in range(10, 50)]
    np.testing.assert_allclose(ratios, (1e-4 / 5e-2) ** (1 / 40), rtol=1e-12)


@pytest.mark.parametrize("epoch, expected", [
    (0, 0.3), (2, 0.3),
    (3, 0.1 + 0.1 * (1 + math.sqrt(0.5))),  # t = 1/4: cos(pi/4) = sqrt(1/2)
    (4, 0.2),  # t = 1/2: halfway between the rates
    (5, 0.1 + 0.1 * (1 - math.sqrt(0.5))),
    (6, 0.1), (10, 0.1),
])
def test_cosine_annealing_at_hand_computed_epochs(epoch, expected):
    schedule = AnnealingSchedule(0.3, 0.1, hold_epochs=2, anneal_end=6, shape="cosine")
    assert schedule(epoch) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("build, match", [
    (lambda: ConstantSchedule(0.0), "lr must be a finite number > 0"),
    (lambda: ConstantSchedule(float("nan")), "lr must be a finite number > 0"),
    (lambda: AnnealingSchedule(-1.0, 1e-4, 1, 2), "lr_start must be"),
    (lambda: AnnealingSchedule(0.1, 0.0, 1, 2), "lr_end must be"),
    (lambda: AnnealingSchedule(0.1, 1e-4, 10, 10), "anneal_end must be larger than hold_epochs=10"),
    (lambda: AnnealingSchedule(0.1, 1e-4, -1, 10), "hold_epochs must be an integer >= 0"),
    (lambda: AnnealingSchedule(0.1, 1e-4, 1, 10, shape="linear"), "shape must be one of"),
])
def test_schedule_arguments_are_checked(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("epoch", [-1, 1.5, True])
def test_schedules_reject_bad_epochs(epoch):
    with pytest.raises(ValueError, match="epoch must be an integer >= 0"):
        AnnealingSchedule(0.1, 1e-4, 1, 3)(epoch)


def test_schedule_repr_is_deterministic():
    # Artifact keys include the schedule's repr.
    assert repr(AnnealingSchedule(0.1, 1e-4, 1, 3)) == repr(AnnealingSchedule(0.1, 1e-4, 1, 3))
    assert repr(AnnealingSchedule(0.1, 1e-4, 1, 3)) != repr(AnnealingSchedule(0.1, 1e-4, 1, 4))


# ---------------------------------------------------------------------- group training


@pytest.fixture(scope="module")
def tiny_digits():
    return load_dataset("digits", n_train=60, n_test=40)


def test_train_groups_matches_train_minima_per_group(tiny_digits):
    model = build_model(model_config("mlp", tiny_digits, 1, 4))
    groups = {"type 1": dict(seeds=[0, 1], epochs=2, lr_schedule=ConstantSchedule(1e-3)),
              "type 2": dict(seeds=[2, 3], epochs=3,
                             lr_schedule=AnnealingSchedule(0.1, 1e-3, 1, 2))}
    common = dict(batch_size=16, data_seed=5, device="cpu")
    minima = train_groups(model, tiny_digits.train, tiny_digits.test, groups, **common)

    assert minima.parameters.shape == (4, 64 * 4 + 4 + 4 * 10 + 10)
    assert minima.table["group"].tolist() == ["type 1", "type 1", "type 2", "type 2"]
    assert minima.table["seed"].tolist() == [0, 1, 2, 3]
    for rows, name in ((slice(0, 2), "type 1"), (slice(2, 4), "type 2")):
        alone = train_minima(model, tiny_digits.train, tiny_digits.test, **common, **groups[name])
        torch.testing.assert_close(minima.parameters[rows], alone.parameters, rtol=0, atol=0)
        np.testing.assert_array_equal(minima.table["test_accuracy"].to_numpy()[rows],
                                      alone.table["test_accuracy"].to_numpy())


@pytest.mark.parametrize("groups, match", [
    ({}, "groups is empty"),
    ({"a": dict(epochs=1)}, "group 'a' has no 'seeds'"),
    ({"a": dict(seeds=[0, 1]), "b": dict(seeds=[1, 2])}, "seed 1 is used by groups 'a' and 'b'"),
])
def test_train_groups_checks_its_groups(tiny_digits, groups, match):
    model = build_model(model_config("mlp", tiny_digits, 1, 4))
    with pytest.raises(ValueError, match=match):
        train_groups(model, tiny_digits.train, tiny_digits.test, groups, device="cpu")


@pytest.mark.parametrize("name, layout, depth, width", [
    ("mlp", "flat", 2, 8), ("cnn", "channels_first", 2, 4), ("resnet", "channels_first", 9, 1),
])
def test_model_config_builds_a_model_for_the_data(tiny_digits, name, layout, depth, width):
    data = load_dataset("digits", n_train=60, n_test=40, layout=layout)
    model = build_model(model_config(name, data, depth, width))
    assert model(data.test_x[:3]).shape == (3, 10)


def test_model_config_rejects_flat_inputs_for_convolutions(tiny_digits):
    with pytest.raises(ValueError, match="needs channels-first inputs"):
        model_config("cnn", tiny_digits, 2, 4)
    with pytest.raises(ValueError, match="model must be one of"):
        model_config("vit", tiny_digits, 2, 4)


# ------------------------------------------------------------------------- statistics


RANDOM = np.random.default_rng(7)


@pytest.mark.parametrize("x, y", [
    (np.arange(10.0), np.arange(10.0) ** 3),  # monotone: rho = 1
    (np.arange(10.0), -np.arange(10.0)),  # rho = -1
    (np.array([1.0, 2, 2, 3, 5, 5, 5]), np.array([0.3, 0.1, 0.2, 0.2, 0.9, 0.4, 0.4])),  # ties
    (RANDOM.normal(size=25), RANDOM.normal(size=25)),
])
def test_spearman_agrees_with_scipy(x, y):
    assert spearman_rho(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_spearman_of_a_constant_input_is_nan():
    assert math.isnan(spearman_rho([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def _reference_bootstrap(x, y, n_boot, confidence, seed):
    """Percentile bootstrap of Spearman's rho, one resample at a time, with scipy."""
    rng = np.random.default_rng(seed)
    rhos = []
    for _ in range(n_boot):
        index = rng.integers(0, len(x), size=len(x))
        if np.ptp(x[index]) == 0 or np.ptp(y[index]) == 0:
            continue  # a constant resample has no rank correlation, so it is dropped
        rhos.append(spearmanr(x[index], y[index]).statistic)
    alpha = 1 - confidence
    return np.quantile(rhos, [alpha / 2, 1 - alpha / 2]), len(rhos)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_bootstrap_matches_a_reference_loop(seed, confidence):
    # Five points with ties: about a quarter of the resamples have a constant x and are dropped.
    x = np.array([0.1, 0.1, 0.1, 0.4, 0.9])
    y = np.array([3.0, 1.0, 2.0, 2.0, 5.0])
    result = bootstrap_spearman(x, y, n_boot=300, confidence=confidence, seed=seed)
    (low, high), n_valid = _reference_bootstrap(x, y, 300, confidence, seed)
    assert result["n_valid"] == n_valid < 300
    assert result["ci_low"] == pytest.approx(low, abs=1e-12)
    assert result["ci_high"] == pytest.approx(high, abs=1e-12)
    assert result["rho"] == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert result["p_value"] == pytest.approx(spearmanr(x, y).pvalue, abs=1e-12)


def test_bootstrap_interval_contains_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(11)
    x = rng.uniform(size=30)
    y = x + rng.normal(scale=0.3, size=30)
    first = bootstrap_spearman(x, y, n_boot=500, seed=4)
    assert first["ci_low"] <= first["rho"] <= first["ci_high"]
    assert 0 < first["ci_low"] < first["ci_high"] <= 1
    assert bootstrap_spearman(x, y, n_boot=500, seed=4) == first
    other = bootstrap_spearman(x, y, n_boot=500, seed=5)
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])


def test_bootstrap_is_undefined_for_fewer_than_three_points():
    result = bootstrap_spearman([1.0, 2.0], [2.0, 1.0], n_boot=10)
    assert math.isnan(result["rho"])
    assert math.isnan(result["ci_low"])
    assert result["n"] == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=[1.0, 2.0, 3.0], y=[1.0, 2.0]), "same length"),
    (dict(x=[1.0, 2.0, np.inf], y=[1.0, 2.0, 3.0]), "1 non-finite x"),
    (dict(x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0], n_boot=0), "n_boot must be an integer >= 1"),
    (dict(x=[1.0, 2.0, 3.0], y=[1.0, 2.0, 3.0], confidence=1.0), "confidence must lie in"),
])
def test_bootstrap_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_spearman(**kwargs)


def _table():
    """Eight minima in two groups; one global minimum (type 2) and one diverged minimum (type 1)."""
    return pd.DataFrame({
        "group": ["type 1"] * 4 + ["type 2"] * 4,
        "seed": range(8),
        "train_loss": [0.010, 0.012, 0.011, 0.050, 0.004, 0.003, 0.005, 0.002],
        "test_loss": [0.30, 0.35, 0.33, 0.90, 0.20, 0.22, 0.25, 0.21],
        "train_accuracy": [1.0, 0.99, 1.0, 0.80, 1.0, 1.0, 1.0, 1.0],
        "test_accuracy": [0.90, 0.88, 0.89, 0.60, 0.94, 0.93, 0.92, 0.95],
        "test_error": [0.10, 0.12, 0.11, 0.40, 0.06, 0.07, 0.08, 0.05],
        "length": [0.20, 0.0, 0.22, np.nan, 0.10, 0.12, 0.15, np.inf],
        "essential": [False] * 7 + [True],
        "excluded": [False, False, False, True, False, False, False, False],
    })


def test_group_statistics_agree_with_pandas():
    table = _table()
    statistics = group_statistics(table).set_index("group")
    kept = table[~table["excluded"]]
    finite = kept[~kept["essential"]]
    for name in ("type 1", "type 2"):
        rows, lengths = kept[kept["group"] == name], finite[finite["group"] == name]["length"]
        for metric in ("train_loss", "test_loss", "train_accuracy", "test_accuracy", "test_error"):
            assert statistics.loc[name, f"{metric}_mean"] == pytest.approx(rows[metric].mean())
            assert statistics.loc[name, f"{metric}_std"] == pytest.approx(rows[metric].std())
        assert statistics.loc[name, "length_mean"] == pytest.approx(lengths.mean())
        assert statistics.loc[name, "length_std"] == pytest.approx(lengths.std())
        assert statistics.loc[name, "length_median"] == pytest.approx(lengths.median())
        assert statistics.loc[name, "to_score"] == pytest.approx(np.sqrt((lengths ** 2).sum()))
        assert statistics.loc[name, "n_minima"] == len(rows)
        assert statistics.loc[name, "n_finite"] == len(lengths)
        assert statistics.loc[name, "n_zero_length"] == (lengths == 0).sum()
    assert statistics["holds_global_minimum"].tolist() == [False, True]
    assert statistics.loc["type 1", "n_minima"] == 3  # the diverged minimum is left out
    assert statistics.loc["type 1", "n_zero_length"] == 1


def test_correlation_leaves_out_the_global_and_diverged_minima():
    table = _table()
    correlation = segment_error_correlation(table, n_boot=200, seed=1).set_index("scope")
    finite = table[~table["essential"] & ~table["excluded"]]
    expected = bootstrap_spearman(finite["length"], finite["test_error"], n_boot=200, seed=1)
    assert correlation.loc["all", "n"] == 6
    assert correlation.loc["all", "rho"] == pytest.approx(
        spearmanr(finite["length"], finite["test_error"]).statistic)
    assert correlation.loc["all", "ci_low"] == expected["ci_low"]
    assert correlation.loc["type 2", "n"] == 3
    type_2 = finite[finite["group"] == "type 2"]
    assert correlation.loc["type 2", "rho"] == pytest.approx(
        spearmanr(type_2["length"], type_2["test_error"]).statistic)


@pytest.mark.parametrize("low, high, expected", [
    (0.2, 0.8, True), (-0.8, -0.1, False), (-0.2, 0.6, None), (np.nan, np.nan, None),
])
def test_verdict_follows_the_confidence_interval(low, high, expected):
    table = _table()
    correlation = pd.DataFrame([{"scope": "all", "rho": 0.5, "ci_low": low, "ci_high": high,
                                 "n": 6, "n_valid": 2000, "confidence": 0.95}])
    supported, detail = observation_verdict(correlation, group_statistics(table), table)
    assert supported is expected
    # Type 2 has shorter segments and lower test error in this table.
    assert "(shorter)" in detail
    assert "(lower)" in detail
    assert "Global minimum" in detail
    assert "type 2, seed 7" in detail


# ------------------------------------------------------------- joint table and figures


def _double_well_minima():
    """Three minima of a 1-D function; the minimum at x = 2 is the global one."""
    def objective(theta):  # (P, 1) -> (P,)
        x = theta[:, 0]
        return (x ** 2 - 1) ** 2 * (x - 2) ** 2 - 0.1 * x

    points = torch.tensor([[-1.0], [1.0], [2.0]], dtype=torch.float64)
    table = pd.DataFrame({"group": ["type 1", "type 2", "type 2"], "seed": [0, 1, 2],
                          "train_loss": [0.1, 0.05, 0.2], "test_loss": [0.3, 0.2, 0.4],
                          "train_accuracy": [1.0, 1.0, 1.0], "test_accuracy": [0.8, 0.9, 0.7],
                          "diverged": [False] * 3})
    return minima_barcode(objective, points, method="linear", dense=50), Minima(points, table)


def test_minimum_table_adds_test_error():
    barcode, minima = _double_well_minima()
    table = minimum_table(barcode, minima, {"dataset": "toy"})
    np.testing.assert_allclose(table["test_error"], [0.2, 0.1, 0.3])
    assert table["dataset"].eq("toy").all()
    assert table["path_method"].eq("linear").all()
    assert table.loc[table["essential"], "seed"].tolist() == [2]
    assert np.isinf(table.loc[table["essential"], "length"]).all()
    finite = table[~table["essential"]].sort_values("length", ascending=False)
    np.testing.assert_allclose(finite["length"], barcode.barcode.lengths)


def test_figures_draw_every_group_and_minimum():
    barcode, minima = _double_well_minima()
    table = minimum_table(barcode, minima)
    figure = plot_group_barcodes(table)
    assert [ax.get_title() for ax in figure.axes] == ["type 1, n = 1", "type 2, n = 2"]
    labels = [t.get_text() for t in figure.axes[1].get_yticklabels()]
    assert sorted(labels) == ["seed 1", "seed 2 (global)"]
    scatter = plot_segment_error(table, correlation={"rho": 0.5, "ci_low": 0.1, "ci_high": 0.9,
                                                     "confidence": 0.95, "n": 2})
    assert "rho = 0.50" in scatter.axes[0].get_title()
    # Two finite minima as dots, the global minimum as a marker at the right edge.
    dots = sum(len(c.get_offsets()) for c in scatter.axes[0].collections)
    assert dots == 2


@pytest.mark.parametrize("path_examples", [None, 60, 25])
def test_joint_barcode_values_use_the_chosen_examples(tiny_digits, path_examples):
    model = build_model(model_config("mlp", tiny_digits, 1, 4)).double()
    points = torch.stack([flatten_parameters(model) * scale for scale in (1.0, 0.5, 2.0)])
    data = (tiny_digits.train_x.double(), tiny_digits.train_y)
    barcode = joint_barcode(model, data, points, weight_decay=1e-3, path_examples=path_examples,
                            subset_seed=3, method="linear", dense=2, device="cpu")

    # The documented subset, evaluated by the module itself one point at a time.
    rows = torch.arange(60)
    if path_examples is not None:
        rows = torch.randperm(60, generator=torch.Generator().manual_seed(3))[:path_examples]
    for value, scale in zip(barcode.minima_values, (1.0, 0.5, 2.0)):
        copy = build_model(model_config("mlp", tiny_digits, 1, 4)).double()
        with torch.no_grad():
            for mine, original in zip(copy.parameters(), model.parameters()):
                mine.copy_(original * scale)
            loss = torch.nn.functional.cross_entropy(copy(data[0][rows]), data[1][rows])
            expected = loss + 1e-3 * flatten_parameters(copy).pow(2).sum()
        assert value == pytest.approx(expected.item(), rel=1e-10)


@pytest.mark.parametrize("path_examples", [0, 61, True])
def test_joint_barcode_rejects_bad_path_examples(tiny_digits, path_examples):
    model = build_model(model_config("mlp", tiny_digits, 1, 4))
    points = torch.stack([flatten_parameters(model)] * 2)
    with pytest.raises(ValueError, match="path_examples must lie between 1 and the 60"):
        joint_barcode(model, tiny_digits.train, points, path_examples=path_examples,
                      method="linear", device="cpu")


def test_run_generalization_reuses_its_saved_minima(tiny_digits, tmp_path):
    from toscore.artifacts import ArtifactStore
    from toscore.generalization import run_generalization

    config = model_config("mlp", tiny_digits, 1, 4)
    groups = {"type 1": dict(seeds=[0, 1], epochs=2, lr_schedule=ConstantSchedule(1e-3)),
              "type 2": dict(seeds=[2], epochs=2, lr_schedule=AnnealingSchedule(0.1, 1e-3, 0, 1))}
    arguments = dict(train=dict(batch_size=20), paths=dict(method="linear", dense=2),
                     device="cpu", store=ArtifactStore(tmp_path))
    first = run_generalization(tiny_digits, config, groups, **arguments)
    again = run_generalization(tiny_digits, config, groups, **arguments)
    assert again.seconds == {"training": 0.0, "paths": 0.0}  # both artifacts were reused
    pd.testing.assert_frame_equal(again.table, first.table)
    assert first.table["group"].tolist() == ["type 1", "type 1", "type 2"]
