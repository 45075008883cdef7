"""Error analysis on run dicts: comparisons, confusions, mistakes, calibration, and the figures."""
import matplotlib
import numpy as np
import pytest

from bloodcells import analysis, plots
from bloodcells.runs import load_run, run_image, save_predictions, write_json

matplotlib.use("Agg")
NAMES = ["a", "b", "c"]


def make_run(labels, probs, folder=None, **extra):
    return {"labels": np.asarray(labels), "probabilities": np.asarray(probs, float), "class_names": NAMES,
            "metrics": {"model": "m", "dataset": "d"}, "folder": folder, **extra}


@pytest.fixture()
def run():
    labels = [0, 0, 0, 1, 1, 2, 2, 2]
    probs = [[.9, .05, .05], [.2, .7, .1], [.6, .3, .1],   # one a->b mistake at 0.7
             [.1, .8, .1], [.05, .05, .9],                  # one b->c mistake at 0.9
             [.1, .1, .8], [.3, .6, .1], [.0, .45, .55]]    # one c->b mistake at 0.6
    return make_run(labels, probs)


def test_misclassified_most_confident_first(run):
    wrong = analysis.misclassified(run)
    assert wrong["index"].tolist() == [4, 1, 6]
    assert wrong["confidence"].tolist() == pytest.approx([0.9, 0.7, 0.6])
    only = analysis.misclassified(run, true="c", predicted="b")
    assert only["index"].tolist() == [6]


def test_top_confusions_counts_and_shares(run):
    top = analysis.top_confusions(run, k=2)
    assert len(top) == 2 and top["count"].tolist() == [1, 1]
    row = analysis.top_confusions(run).set_index(["true", "predicted"]).loc[("a", "b")]
    assert row["share of true class"] == pytest.approx(1 / 3)


def test_calibration_table_and_ece(run):
    table, ece = analysis.calibration(run, n_bins=2)
    conf = np.asarray(run["probabilities"]).max(1)
    correct = np.array([1, 0, 1, 1, 0, 1, 0, 1], bool)
    low, high = conf <= 0.5, conf > 0.5
    assert table["count"].tolist() == [low.sum(), high.sum()]
    expected = sum(m.sum() / 8 * abs(correct[m].mean() - conf[m].mean()) for m in (low, high) if m.any())
    assert ece == pytest.approx(expected)
    perfect = make_run([0, 1], [[1.0, 0, 0], [0, 1.0, 0]])
    assert analysis.calibration(perfect)[1] == pytest.approx(0.0)


def test_compare_puts_runs_with_different_classes_side_by_side(run):
    other = {**make_run([0, 1], [[.9, .1, 0], [.2, .8, 0]]), "class_names": ["x", "y", "z"],
             "metrics": {"model": "n", "dataset": "e"}}
    table = analysis.compare([run, other])
    assert table.loc["m · d", "accuracy"] == pytest.approx(5 / 8)
    assert table.loc["n · e", "accuracy"] == 1.0
    assert np.isnan(table.loc["m · d", "F1 x"]) and np.isnan(table.loc["n · e", "F1 a"])


def test_run_images_from_pixels_or_files(tmp_path, wbc_folder):
    files = sorted((wbc_folder / "monocyte").glob("*.jpg"))[:2]
    save_predictions(tmp_path, [[.1, .9, 0], [.8, .1, .1]], [1, 0], NAMES, files=files)
    write_json(tmp_path / "metrics.json", {"accuracy": 1.0})
    run = load_run(tmp_path)
    assert run_image(run, 1).shape == (48, 48, 3) and run_image(run, 1, size=20).shape == (20, 20, 3)
    assert run["metrics"]["accuracy"] == 1.0 and run["external"] == {}
    pixels = make_run([0], [[1, 0, 0]], images=np.zeros((1, 28, 28, 3), np.uint8))
    assert run_image(pixels, 0).shape == (28, 28, 3)


def test_figures(run):
    table, ece = analysis.calibration(run)
    for fig in (plots.reliability_diagram(table, ece), plots.confidence_histograms(run["labels"], run["probabilities"]),
                plots.prediction_grid(np.zeros((8, 8, 8, 3), np.uint8), run["labels"], run["probabilities"], NAMES,
                                      indices=[4, 1, 6], title="mistakes")):
        assert fig.axes
    fig = plots.prediction_grid(np.zeros((8, 8, 8, 3), np.uint8), run["labels"], run["probabilities"], NAMES,
                                indices=[4, 1, 6])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("true: b\npred: c (90%)") and len(titles) == 3


def test_latest_runs_newest_per_model(tmp_path):
    import os

    from bloodcells.runs import latest_runs

    with pytest.raises(FileNotFoundError, match="run notebooks 02 and 03 first"):
        latest_runs(tmp_path)
    for age, (model, name) in enumerate([("seed", "a/cnn-seed-1"), ("seed", "b/cnn-seed-2"), ("improved", "a/cnn-imp")]):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        save_predictions(folder, [[1.0, 0, 0]], [0], NAMES)
        write_json(folder / "metrics.json", {"model": model})
        os.utime(folder, (1000 + age, 1000 + age))
    assert latest_runs(tmp_path) == [tmp_path / "b/cnn-seed-2", tmp_path / "a/cnn-imp"]


def test_incomplete_and_damaged_run_folders_are_skipped_or_named(tmp_path):
    import warnings as w

    from bloodcells.runs import RunFolderError, find_runs, latest_runs

    good = tmp_path / "cnn-seed-1"
    good.mkdir()
    save_predictions(good, [[1.0, 0, 0]], [0], NAMES)
    write_json(good / "metrics.json", {"model": "seed"})
    partial = tmp_path / ".cnn-seed-2.partial"  # still being written (or the writer died)
    partial.mkdir()
    save_predictions(partial, [[1.0, 0, 0]], [0], NAMES)
    cut = tmp_path / "cnn-improved-3"  # no metrics.json: cut short before the atomic rename existed
    cut.mkdir()
    save_predictions(cut, [[1.0, 0, 0]], [0], NAMES)
    assert find_runs(tmp_path) == [good, cut]
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        assert latest_runs(tmp_path) == [good]
    assert any("cnn-improved-3" in str(c.message) for c in caught)
    (good / "predictions.npz").write_bytes((good / "predictions.npz").read_bytes()[:50])
    with pytest.raises(RunFolderError, match=r"cnn-seed-1/predictions.npz cannot be read"):
        load_run(good)
