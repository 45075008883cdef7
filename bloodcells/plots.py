"""Figures for every lab; each function draws one figure and returns it."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from bloodcells.metrics import _labels, classification_table, confusion


def class_distribution(dataset):
    """Images per class in each split, as grouped bars."""
    counts = dataset.class_counts().drop(columns="total").reset_index()
    tidy = counts.melt(id_vars="class", var_name="split", value_name="images")
    fig, ax = plt.subplots(figsize=(9, 4))
    sns.barplot(data=tidy, x="class", y="images", hue="split", ax=ax)
    ax.set_title(f"{dataset.title}: images per class and split")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def montage(dataset, split: str = "train", per_class: int = 8, seed: int = 0):
    """A row of random example images for each class."""
    rng = np.random.default_rng(seed)
    n = len(dataset.class_names)
    fig, axes = plt.subplots(n, per_class, figsize=(per_class * 1.1, n * 1.15), squeeze=False)
    for c, name in enumerate(dataset.class_names):
        idx = np.flatnonzero(dataset.labels[split] == c)
        chosen = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for j, ax in enumerate(axes[c]):
            ax.axis("off")
            if j < len(chosen):
                ax.imshow(dataset.images[split][chosen[j]])
        axes[c, 0].text(-0.1, 0.5, name, transform=axes[c, 0].transAxes, ha="right", va="center")
    fig.suptitle(f"{dataset.title}: {split} examples per class")
    fig.tight_layout()
    return fig


def channel_histograms(images: np.ndarray, title: str = "Pixel values per channel"):
    """Histogram of pixel values for the R, G and B channels."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, colour in enumerate(("red", "green", "blue")):
        ax.hist(images[..., i].ravel(), bins=64, color=colour, alpha=0.45, label=colour)
    ax.set(xlabel="pixel value", ylabel="count", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_heatmaps(y_true, y_pred, class_names: list[str], title: str = ""):
    """Counts and row-normalised confusion matrices side by side (rows true, columns predicted)."""
    fig, axes = plt.subplots(1, 2, figsize=(15, 6))
    for ax, normalize in zip(axes, (False, True)):
        matrix = confusion(y_true, y_pred, class_names, normalize=normalize)
        sns.heatmap(matrix, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", cbar=False,
                    square=True, ax=ax)
        ax.set(xlabel="predicted", ylabel="true", title="share of true class" if normalize else "counts")
        plt.setp(ax.get_xticklabels(), rotation=40, ha="right", rotation_mode="anchor")  # long names stay apart
    fig.suptitle(title or "Confusion matrix")
    fig.tight_layout()
    return fig


def training_curves(history: dict, title: str = "Training curves"):
    """Loss and accuracy, train vs validation, with the best (lowest val loss) epoch marked.

    ``history`` maps metric names to per-epoch lists (Keras' ``History.history``); a ``phase``
    list, if present, draws a line where fine-tuning starts.
    """
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        if metric in history:  # fastai records validation accuracy only
            ax.plot(epochs, history[metric], marker="o", label=f"train {metric}")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], marker="o", label=f"val {metric}")
        if "val_loss" in history:
            best = int(np.argmin(history["val_loss"])) + 1
            ax.axvline(best, color="grey", linestyle="--", label=f"best epoch ({best})")
        phases = history.get("phase")
        if phases and len(set(phases)) > 1:
            ax.axvline(phases.index(phases[-1]) + 0.5, color="black", linestyle=":", label="unfreeze")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        if metric == "loss":  # the first epoch's loss would squash the rest on a linear scale
            ax.set(yscale="log", title="loss (log scale)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_class_bars(y_true, y_pred, class_names: list[str], title: str = "Per-class metrics"):
    """Precision, recall and F1 for each class as grouped bars."""
    table = classification_table(y_true, y_pred, class_names).loc[class_names, ["precision", "recall", "f1"]]
    tidy = table.reset_index().melt(id_vars="class", var_name="metric", value_name="score")
    fig, ax = plt.subplots(figsize=(10, 4))
    sns.barplot(data=tidy, x="class", y="score", hue="metric", ax=ax)
    ax.set(ylim=(max(0.0, tidy["score"].min() - 0.1), 1.0), title=title)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def prediction_grid(images, y_true, probabilities, class_names: list[str], n: int = 16, seed: int = 0,
                    title: str = "Sample predictions", indices=None):
    """Test images with true and predicted class and confidence; mistakes in red.

    ``indices`` picks the images (in that order, e.g. the most confident mistakes); otherwise
    ``n`` are drawn at random. ``images`` is an array or any sequence indexable by those indices.
    """
    probabilities = np.asarray(probabilities)
    y_true, y_pred = _labels(y_true), probabilities.argmax(axis=1)
    if indices is None:
        idx = np.random.default_rng(seed).choice(len(y_true), size=min(n, len(y_true)), replace=False)
    else:
        idx = np.asarray(indices, dtype=int)[:n]
    cols = 4
    rows = max(1, int(np.ceil(len(idx) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), idx):
        ax.imshow(images[i])
        right = y_true[i] == y_pred[i]
        ax.set_title(f"true: {class_names[y_true[i]]}\npred: {class_names[y_pred[i]]} "
                     f"({probabilities[i, y_pred[i]]:.0%})", fontsize=8, color="black" if right else "red")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_side_by_side(panels: dict, class_names: list[str], title: str = ""):
    """Row-normalised confusion matrices of several sets next to each other (``panels``: title ->
    (true labels, predicted labels)), on one colour scale: in-lab against another lab."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5.5), squeeze=False)
    for ax, (name, (y_true, y_pred)) in zip(axes[0], panels.items()):
        matrix = confusion(y_true, y_pred, class_names, normalize=True)
        sns.heatmap(matrix, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, cbar=False, square=True, ax=ax)
        ax.set(xlabel="predicted", ylabel="true", title=f"{name} ({len(y_true)} images)")
        plt.setp(ax.get_xticklabels(), rotation=40, ha="right", rotation_mode="anchor")
    fig.suptitle(title or "Share of each true class")
    fig.tight_layout()
    return fig


def reliability_diagram(table, ece: float, title: str = "Reliability diagram", ax=None):
    """Accuracy against mean confidence per confidence bin (``analysis.calibration``'s table);
    bars below the diagonal are over-confident. Bin sizes are printed on the bars. ``ax``: draw
    into that panel of a larger figure."""
    fig, ax = plt.subplots(figsize=(5.5, 5)) if ax is None else (ax.figure, ax)
    used = table[table["count"] > 0]
    centres, width = (used["low"] + used["high"]) / 2, used["high"] - used["low"]
    ax.bar(centres, used["accuracy"], width=width, edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    for x, y, count in zip(centres, used["accuracy"], used["count"]):
        ax.text(x, y + 0.01, str(count), ha="center", fontsize=7)
    ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence (top-1 probability)", ylabel="accuracy",
           title=f"{title}\nECE = {ece:.3f}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)  # below: never over a bar
    fig.tight_layout()
    return fig


def confidence_histograms(y_true, probabilities, title: str = "Confidence of right and wrong predictions"):
    """Top-1 confidence for correct and for wrong predictions: a useful model is unsure when wrong."""
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == _labels(y_true)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, mask, name, colour in ((axes[0], correct, "right", "tab:green"), (axes[1], ~correct, "wrong", "tab:red")):
        ax.hist(confidence[mask], bins=np.linspace(0, 1, 21), color=colour)
        ax.set(xlabel="confidence", ylabel="images", title=f"{name} ({int(mask.sum())})")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
