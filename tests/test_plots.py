"""Figure files: saving and removing by prefix."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from toscore import plots  # noqa: E402


def test_save_figure_writes_png_and_pdf(tmp_path):
    figure, _ = plt.subplots()
    written = plots.save_figure(figure, tmp_path / "new", "e2_trend")
    assert [path.name for path in written] == ["e2_trend.png", "e2_trend.pdf"]
    assert all(path.stat().st_size > 0 for path in written)
    assert not plt.fignum_exists(figure.number)  # the figure was closed


def test_remove_figures_by_prefix(tmp_path):
    names = ["e2_a.png", "e2_a.pdf", "e2_b.png", "e3_a.png", "e2_table.csv", "x_e2_c.pdf"]
    for name in names:
        (tmp_path / name).write_text("x")
    removed = plots.remove_figures(tmp_path, "e2_")
    assert [path.name for path in removed] == ["e2_a.pdf", "e2_a.png", "e2_b.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["e2_table.csv", "e3_a.png",
                                                                "x_e2_c.pdf"]


def test_remove_figures_missing_folder_and_empty_prefix(tmp_path):
    assert plots.remove_figures(tmp_path / "absent", "e2_") == []
    with pytest.raises(ValueError, match="invalid prefix ''"):
        plots.remove_figures(tmp_path, "")
