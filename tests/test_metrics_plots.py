import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score  # noqa: E402

from bloodcells import metrics, plots  # noqa: E402

NAMES = ["a", "b", "c"]
rng = np.random.default_rng(0)
Y_TRUE = rng.integers(0, 3, 200)
Y_PRED = np.where(rng.random(200) < 0.7, Y_TRUE, rng.integers(0, 3, 200))


def test_table_matches_sklearn():
    table = metrics.classification_table(Y_TRUE, Y_PRED, NAMES)
    assert table.loc[NAMES, "precision"].tolist() == pytest.approx(precision_score(Y_TRUE, Y_PRED, average=None).tolist())
    assert table.loc[NAMES, "recall"].tolist() == pytest.approx(recall_score(Y_TRUE, Y_PRED, average=None).tolist())
    assert table.loc["macro avg", "f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert table.loc["weighted avg", "f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="weighted"))
    assert table.loc[NAMES, "support"].tolist() == np.bincount(Y_TRUE).tolist()


def test_confusion_rows_true_columns_predicted():
    cm = metrics.confusion(Y_TRUE, Y_PRED, NAMES)
    assert cm.values.tolist() == confusion_matrix(Y_TRUE, Y_PRED).tolist()
    assert cm.index.name == "true" and cm.columns.name == "predicted"
    assert metrics.confusion([0, 0], [1, 1], NAMES).loc["a", "b"] == 2
    assert metrics.confusion(Y_TRUE, Y_PRED, NAMES, normalize=True).sum(axis=1).tolist() == pytest.approx([1, 1, 1])


def test_summary_accepts_one_hot_and_counts_absent_classes():
    probs = np.eye(3)[Y_PRED]
    s = metrics.summary(np.eye(3)[Y_TRUE], probs, NAMES)
    assert s["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED)) and s["n_test"] == 200
    assert metrics.summary([0, 0], [0, 0], NAMES)["per_class_f1"]["b"] == 0.0


def test_figures_carry_class_names_and_titles():
    fig = plots.confusion_heatmaps(Y_TRUE, Y_PRED, NAMES, title="CM test")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == NAMES
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert fig._suptitle.get_text() == "CM test"
    counts = [int(t.get_text()) for t in ax.texts]
    assert sum(counts) == 200

    fig = plots.per_class_bars(Y_TRUE, Y_PRED, NAMES)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == NAMES


def test_training_curves_mark_best_epoch():
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.6, 0.7], "accuracy": [0.5, 0.7, 0.8],
               "val_accuracy": [0.4, 0.7, 0.68]}
    fig = plots.training_curves(history)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "best epoch (2)" in labels and "val loss" in labels


def test_prediction_grid_titles():
    images = np.zeros((5, 8, 8, 3), np.uint8)
    probs = np.eye(3)[[0, 1, 2, 0, 1]] * 0.9 + 0.05
    fig = plots.prediction_grid(images, [0, 1, 2, 1, 1], probs, NAMES, n=5)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 5 and any("true: b\npred: a" in t for t in titles)


def test_dataset_plots_say_synthetic(tiny_arrays, npz_factory):
    from bloodcells.data import load_bloodmnist

    ds = load_bloodmnist(npz_factory())
    assert "SYNTHETIC" in plots.class_distribution(ds).axes[0].get_title()
    assert "SYNTHETIC" in plots.montage(ds, per_class=2)._suptitle.get_text()
