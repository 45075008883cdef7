"""Error analysis on saved runs (``runs.load_run`` dicts): no model, no TensorFlow, no torch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bloodcells import metrics as M


def predictions(run: dict) -> np.ndarray:
    """Predicted class per test image (the most probable)."""
    return np.asarray(run["probabilities"]).argmax(axis=1)


def run_name(run: dict) -> str:
    """A short label for tables and titles: model and dataset."""
    m = run["metrics"]
    return f"{m.get('model') or Path(str(run['folder'])).name} · {m.get('dataset', '?')}"


def compare(runs: list[dict]) -> pd.DataFrame:
    """One row per run: accuracy, macro F1 and per-class F1 (blank where a run lacks the class)."""
    rows = {}
    for run in runs:
        summary = M.summary(run["labels"], predictions(run), run["class_names"])
        rows[run_name(run)] = {"accuracy": summary["accuracy"], "macro F1": summary["macro_f1"],
                               "test images": summary["n_test"],
                               **{f"F1 {c}": f for c, f in summary["per_class_f1"].items()}}
    return pd.DataFrame(rows).T


def top_confusions(run: dict, k: int = 5) -> pd.DataFrame:
    """The ``k`` most frequent (true, predicted) mistakes with counts and share of the true class."""
    table = M.confusion(run["labels"], predictions(run), run["class_names"])
    support = table.sum(axis=1)
    pairs = [(t, p, int(table.loc[t, p]), table.loc[t, p] / support[t])
             for t in table.index for p in table.columns if t != p and table.loc[t, p] > 0]
    pairs.sort(key=lambda row: -row[2])
    return pd.DataFrame(pairs[:k], columns=["true", "predicted", "count", "share of true class"])


def misclassified(run: dict, true: str | None = None, predicted: str | None = None) -> pd.DataFrame:
    """Test images the run got wrong (optionally one true/predicted pair), most confident first."""
    probs = np.asarray(run["probabilities"])
    y_true, y_pred = np.asarray(run["labels"]), predictions(run)
    names = run["class_names"]
    mask = y_true != y_pred
    if true is not None:
        mask &= y_true == names.index(true)
    if predicted is not None:
        mask &= y_pred == names.index(predicted)
    idx = np.flatnonzero(mask)
    frame = pd.DataFrame({"index": idx, "true": [names[i] for i in y_true[idx]],
                          "predicted": [names[i] for i in y_pred[idx]],
                          "confidence": probs[idx, y_pred[idx]]})
    return frame.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)


def calibration(run: dict, n_bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability table of top-1 confidence in equal-width bins, and the expected calibration
    error: the bin-size weighted mean gap between confidence and accuracy."""
    probs = np.asarray(run["probabilities"])
    confidence = probs.max(axis=1)
    correct = predictions(run) == np.asarray(run["labels"])
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        inside = bins == b
        rows.append({"low": edges[b], "high": edges[b + 1], "count": int(inside.sum()),
                     "confidence": confidence[inside].mean() if inside.any() else np.nan,
                     "accuracy": correct[inside].mean() if inside.any() else np.nan})
    table = pd.DataFrame(rows)
    used = table["count"] > 0
    ece = float((table.loc[used, "count"] / len(confidence)
                 * (table.loc[used, "accuracy"] - table.loc[used, "confidence"]).abs()).sum())
    return table, ece
