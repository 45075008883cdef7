"""Error analysis on run dicts: comparisons, confusions, mistakes, calibration, and the figures."""
import matplotlib
import numpy as np
import pytest

from bloodcells import analysis, plots, runs

matplotlib.use("Agg")
NAMES = ["a", "b", "c"]


@pytest.fixture()
def run(make_run):
    labels = [0, 0, 0, 1, 1, 2, 2, 2]
    probs = [[.9, .05, .05], [.2, .7, .1], [.6, .3, .1],   # one a->b mistake at 0.7
             [.1, .8, .1], [.05, .05, .9],                  # one b->c mistake at 0.9
             [.1, .1, .8], [.3, .6, .1], [.0, .45, .55]]    # one c->b mistake at 0.6
    return make_run(labels, probs, NAMES)


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


def test_calibration_table_and_ece(run, make_run):
    table, ece = analysis.calibration(run, n_bins=2)
    conf = run.probabilities.max(1)
    correct = np.array([1, 0, 1, 1, 0, 1, 0, 1], bool)
    low, high = conf <= 0.5, conf > 0.5
    assert table["count"].tolist() == [low.sum(), high.sum()]
    expected = sum(m.sum() / 8 * abs(correct[m].mean() - conf[m].mean()) for m in (low, high) if m.any())
    assert ece == pytest.approx(expected)
    perfect = make_run([0, 1], [[1.0, 0, 0], [0, 1.0, 0]], NAMES)
    assert analysis.calibration(perfect)[1] == pytest.approx(0.0)


def test_compare_puts_runs_with_different_classes_side_by_side(run, make_run):
    other = make_run([0, 1], [[.9, .1, 0], [.2, .8, 0]], ["x", "y", "z"], metrics={"model": "n", "dataset": "e"})
    table = analysis.compare([run, other])
    assert table.loc["m · d", "accuracy"] == pytest.approx(5 / 8)
    assert table.loc["n · e", "accuracy"] == 1.0
    assert np.isnan(table.loc["m · d", "F1 x"]) and np.isnan(table.loc["n · e", "F1 a"])


def test_a_run_folder_reads_back_as_the_run_written(tmp_path, make_run):
    images = np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    written = make_run([1, 0], [[.1, .9, 0], [.8, .1, .1]], NAMES, folder=tmp_path, images=images,
                       metrics={"model": "m", "accuracy": 1.0}, val_probabilities=[[.5, .5, 0]], val_labels=[1],
                       image_names=["b/one.jpg", "a/two.jpg"])
    run = runs.load(tmp_path)
    assert np.array_equal(run.images, images) and run.image_names == ["b/one.jpg", "a/two.jpg"]
    assert run.metrics == written.metrics and run.external == {} and run.class_names == NAMES
    np.testing.assert_array_equal(run.val_labels, [1])
    assert run.predictions.tolist() == [1, 0] and run.name == "m · ?"


def test_runs_that_do_not_fit_together_or_are_too_old_are_refused(tmp_path, make_run):
    with pytest.raises(runs.RunFolderError, match="one image per test label"):
        make_run([0, 1], [[1.0, 0, 0], [0, 1.0, 0]], NAMES, images=np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(runs.RunFolderError, match="over 3 classes"):
        make_run([0, 1], [[1.0, 0], [0, 1.0]], NAMES)
    old = tmp_path / "old"  # a folder from before the contract: file paths, no images
    old.mkdir()
    np.savez(old / "predictions.npz", probabilities=np.eye(3), labels=np.arange(3), class_names=np.array(NAMES),
             files=np.array(["/somewhere/a.jpg"] * 3))
    with pytest.raises(runs.RunFolderError, match="another version of the kit.*re-run notebook 02 or 03"):
        runs.load(old)


def test_external_results_keep_their_labels_and_probabilities_but_not_their_paths(tmp_path, make_run):
    make_run([0], [[1.0, 0, 0]], NAMES, folder=tmp_path)
    probs = np.eye(3, dtype=np.float32)[[0, 2, 1]]
    runs.add_external(tmp_path, "bccd", {"accuracy": 0.3, "n_images": 3, "probabilities": probs,
                                         "labels": np.array([0, 1, 1]), "files": ["/their/disk/x.jpg"] * 3})
    runs.add_external(tmp_path, "other", {"accuracy": 0.5})  # a summary alone (an older kit's)
    runs.add_external(tmp_path, "bccd: adapted", {"accuracy": 0.6, "labels": np.array([2]),
                                                  "probabilities": np.array([[0.1, 0.2, 0.7]])})
    assert "their/disk" not in (tmp_path / "external.json").read_text()
    external = runs.load(tmp_path).external
    assert list(external) == ["bccd", "other", "bccd: adapted"]
    assert external["other"] == {"accuracy": 0.5}
    np.testing.assert_array_equal(external["bccd"]["labels"], [0, 1, 1])
    np.testing.assert_array_equal(external["bccd"]["probabilities"], probs)
    np.testing.assert_array_equal(external["bccd: adapted"]["labels"], [2])
    # calibration of the other lab: its own labels, not the test split's
    table, ece = analysis.calibration(runs.load(tmp_path), probabilities=probs, labels=[0, 1, 1])
    assert table["count"].sum() == 3 and ece == pytest.approx(1 / 3)  # certain, and right 2 times in 3
    assert analysis.ece_interval(runs.load(tmp_path), probabilities=probs, labels=[0, 2, 1]) == (0.0, 0.0)


def test_figures(run):
    table, ece = analysis.calibration(run)
    reliability = plots.reliability_diagram(table, ece)
    assert f"{ece:.3f}" in " ".join(ax.get_title() for ax in reliability.axes)
    histograms = plots.confidence_histograms(run.labels, run.probabilities)
    assert sum(len(ax.patches) for ax in histograms.axes) > 0
    fig = plots.prediction_grid(run.images, run.labels, run.probabilities, NAMES, indices=[4, 1, 6])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[0].startswith("true: b\npred: c (90%)") and len(titles) == 3


def test_latest_runs_newest_per_model(tmp_path, make_run):
    import os

    from bloodcells.runs import latest_runs

    with pytest.raises(FileNotFoundError, match="run notebooks 02 and 03 first"):
        latest_runs(tmp_path)
    for age, (model, name) in enumerate([("seed", "a/cnn-seed-1"), ("seed", "b/cnn-seed-2"), ("improved", "a/cnn-imp")]):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        make_run([0], [[1.0, 0, 0]], NAMES, folder=folder, metrics={"model": model})
        os.utime(folder, (1000 + age, 1000 + age))
    assert latest_runs(tmp_path) == [tmp_path / "b/cnn-seed-2", tmp_path / "a/cnn-imp"]


def test_incomplete_and_damaged_run_folders_are_skipped_or_named(tmp_path, make_run):
    import warnings as w

    from bloodcells.runs import RunFolderError, find_runs, latest_runs

    good = tmp_path / "cnn-seed-1"
    make_run([0], [[1.0, 0, 0]], NAMES, folder=good, metrics={"model": "seed"})
    partial = tmp_path / ".cnn-seed-2.partial"  # still being written (or the writer died)
    make_run([0], [[1.0, 0, 0]], NAMES, folder=partial)
    cut = tmp_path / "cnn-improved-3"  # no metrics.json: cut short before the atomic rename existed
    make_run([0], [[1.0, 0, 0]], NAMES, folder=cut)
    (cut / "metrics.json").unlink()
    assert find_runs(tmp_path) == [good, cut]
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        assert latest_runs(tmp_path) == [good]
    assert any("cnn-improved-3" in str(c.message) for c in caught)
    (good / "predictions.npz").write_bytes((good / "predictions.npz").read_bytes()[:50])
    with pytest.raises(RunFolderError, match=r"cnn-seed-1/predictions.npz cannot be read"):
        runs.load(good)


def test_ece_interval_is_the_spread_of_resampled_test_sets(make_run):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 400)
    sure = np.full((400, 3), 0.05)
    sure[np.arange(400), labels] = 0.9          # always right with 0.9: ECE 0.1 in every resample
    low, high = analysis.ece_interval(make_run(labels, sure, NAMES))
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    noisy = sure.copy()
    flip = rng.random(400) < 0.1                 # now 10% wrong at 0.9: the ECE near 0 varies by chance
    noisy[flip] = np.roll(noisy[flip], 1, axis=1)
    run = make_run(labels, noisy, NAMES)
    low, high = analysis.ece_interval(run)
    assert low < analysis.calibration(run)[1] < high and high - low > 0.02


def test_temperature_verdict_tells_a_repair_from_noise(make_run):
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    val = np.eye(3)[labels] * 0.5 + 0.5 / 3      # right on all, mean confidence 0.67: under-confident
    run = make_run(labels, val, NAMES, val_probabilities=val, val_labels=labels)
    repaired = analysis.temperature_verdict(run, 0.5, 0.30, 0.02, (0.25, 0.35))
    assert "T = 0.50 sharpens" in repaired and "under-confident" in repaired and "a real repair" in repaired
    same = analysis.temperature_verdict(run, 1.14, 0.013, 0.014, (0.009, 0.019))
    assert "softens" in same and "no measurable change" in same
    assert "measurably worse" in analysis.temperature_verdict(run, 2.0, 0.01, 0.05, (0.005, 0.02))


def test_in_lab_against_elsewhere_says_whether_confidence_held(make_run, tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(300) % 3
    home = np.full((300, 3), 0.05)
    home[np.arange(300), labels] = 0.9  # right and 90% sure: calibrated
    run = make_run(labels, home, NAMES, folder=tmp_path)
    away_labels = rng.integers(0, 3, 200)
    away = np.full((200, 3), 0.01)
    away[np.arange(200), (away_labels + (rng.random(200) < 0.6)) % 3] = 0.98  # 98% sure, right 40% of the time
    runs.add_external(tmp_path, "other lab", {"accuracy": 0.4, "labels": away_labels, "probabilities": away})
    run = runs.load(tmp_path)
    assert list(analysis.with_external_arrays(run)) == ["other lab"]
    table = analysis.in_lab_and_elsewhere(run, "other lab")
    assert table.loc["in-lab test", "accuracy"] == 1.0 and table.loc["in-lab test", "ECE"] == pytest.approx(0.1)
    assert table.loc["other lab", "wrong at >= 90%"] == pytest.approx(1 - table.loc["other lab", "accuracy"])
    assert "measurably less trustworthy" in analysis.shift_verdict(table)
    runs.add_external(tmp_path, "same look", {"accuracy": 1.0, "labels": labels, "probabilities": home})
    same = analysis.in_lab_and_elsewhere(runs.load(tmp_path), "same look")
    assert "cannot show that calibration got worse" in analysis.shift_verdict(same)
