"""Error analysis on saved runs (:class:`bloodcells.runs.Run`): no model, no TensorFlow, no torch."""
from __future__ import annotations

import numpy as np
import pandas as pd

from bloodcells import metrics as M
from bloodcells.runs import Run


def compare(runs: list[Run]) -> pd.DataFrame:
    """One row per run: accuracy, macro F1, test images (an integer column) and per-class F1
    (blank where a run lacks the class)."""
    rows = {}
    for run in runs:
        summary = M.summary(run.labels, run.predictions, run.class_names)
        rows[run.name] = {"accuracy": summary["accuracy"], "macro F1": summary["macro_f1"],
                               "test images": summary["n_test"],
                               **{f"F1 {c}": f for c, f in summary["per_class_f1"].items()}}
    return pd.DataFrame.from_dict(rows, orient="index")


def top_confusions(run: Run, k: int = 5) -> pd.DataFrame:
    """The ``k`` most frequent (true, predicted) mistakes with counts and share of the true class."""
    table = M.confusion(run.labels, run.predictions, run.class_names)
    support = table.sum(axis=1)
    pairs = [(t, p, int(table.loc[t, p]), table.loc[t, p] / support[t])
             for t in table.index for p in table.columns if t != p and table.loc[t, p] > 0]
    pairs.sort(key=lambda row: -row[2])
    return pd.DataFrame(pairs[:k], columns=["true", "predicted", "count", "share of true class"])


def misclassified(run: Run, true: str | None = None, predicted: str | None = None) -> pd.DataFrame:
    """Test images the run got wrong (optionally one true/predicted pair), most confident first."""
    probs = run.probabilities
    y_true, y_pred = run.labels, run.predictions
    names = run.class_names
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


def calibration(run: Run, n_bins: int = 10, probabilities=None, labels=None) -> tuple[pd.DataFrame, float]:
    """Reliability table of top-1 confidence in equal-width bins, and the expected calibration
    error: the bin-size weighted mean gap between confidence and accuracy. ``probabilities``
    replaces the run's own (e.g. after temperature scaling), ``labels`` too (another set's)."""
    probs = np.asarray(run.probabilities if probabilities is None else probabilities)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == (run.labels if labels is None else np.asarray(labels))
    edges, bins = _bins(confidence, n_bins)
    rows = []
    for b in range(n_bins):
        inside = bins == b
        rows.append({"low": edges[b], "high": edges[b + 1], "count": int(inside.sum()),
                     "confidence": confidence[inside].mean() if inside.any() else np.nan,
                     "accuracy": correct[inside].mean() if inside.any() else np.nan})
    return pd.DataFrame(rows), _ece(confidence, correct, bins, n_bins)


def _bins(confidence: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(0, 1, n_bins + 1)
    return edges, np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)


def _ece(confidence: np.ndarray, correct: np.ndarray, bins: np.ndarray, n_bins: int) -> float:
    gap = np.abs(np.bincount(bins, correct, n_bins) - np.bincount(bins, confidence, n_bins))
    return float(gap.sum() / len(confidence)) if len(confidence) else 0.0


def ece_interval(run: Run, n_bins: int = 10, probabilities=None, n_boot: int = 500,
                 seed: int = 0, labels=None) -> tuple[float, float]:
    """95% bootstrap interval of the ECE over resampled test images: how far it moves by chance."""
    probs = np.asarray(run.probabilities if probabilities is None else probabilities)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == (run.labels if labels is None else np.asarray(labels))
    bins = _bins(confidence, n_bins)[1]
    rng = np.random.default_rng(seed)
    samples = [_ece(confidence[i], correct[i], bins[i], n_bins)
               for i in rng.integers(0, len(confidence), (n_boot, len(confidence)))]
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def temperature_verdict(run: Run, temperature: float, before: float, after: float,
                        interval: tuple[float, float]) -> str:
    """One sentence on what temperature scaling did to a run, judged against the ECE's own spread."""
    val_accuracy = float((run.val_probabilities.argmax(axis=1) == run.val_labels).mean())
    val_confidence = float(run.val_probabilities.max(axis=1).mean())
    direction = "softens" if temperature > 1 else "sharpens"
    looked = "over" if val_confidence > val_accuracy else "under"
    outcome = ("within the range the ECE itself moves by chance: no measurable change"
               if interval[0] <= after <= interval[1] else
               "a real repair" if after < interval[0] else "measurably worse")
    return (f"**{run.name}**: T = {temperature:.2f} {direction} its probabilities (on the validation split it "
            f"looked {looked}-confident: mean confidence {val_confidence:.1%} against accuracy {val_accuracy:.1%}). "
            f"Test ECE {before:.3f} -> {after:.3f}; the test ECE's 95% bootstrap range is {interval[0]:.3f} to "
            f"{interval[1]:.3f}, so this is {outcome}.")


def rescale(probabilities, temperature: float) -> np.ndarray:
    """Softmax of ``log p / T``: the same ranking of classes, confidence softened (T > 1) or
    sharpened (T < 1)."""
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=1, keepdims=True)


def fit_temperature(run: Run) -> float | None:
    """The temperature that minimises the cross-entropy on the run's **validation** split (never
    the test split it is judged on); ``None`` for a run saved without validation probabilities."""
    from scipy.optimize import minimize_scalar

    if run.val_probabilities is None:
        return None
    probs, labels = run.val_probabilities, run.val_labels

    def nll(log_t):
        return -np.log(rescale(probs, np.exp(log_t))[np.arange(len(labels)), labels] + 1e-12).mean()

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def findings(run: Run, ece: float, confident: float = 0.9) -> list[str]:
    """What this run's errors say, in sentences computed from its predictions (no canned text)."""
    names, labels, probs = run.class_names, run.labels, run.probabilities
    pred, confidence = probs.argmax(axis=1), probs.max(axis=1)
    wrong = pred != labels
    recall = {c: float((pred[labels == i] == i).mean()) for i, c in enumerate(names) if (labels == i).any()}
    worst = min(recall, key=recall.get)
    lines = [f"**{run.name}**: {int(wrong.sum())} mistakes in {len(labels)} test images "
             f"({1 - wrong.mean():.2%} accuracy)."]
    if not wrong.any():
        return lines + ["No mistakes to analyse: the test split is too easy to tell these models apart."]
    top = top_confusions(run, k=1).iloc[0]
    lines.append(f"Hardest class: **{worst}** (recall {recall[worst]:.1%}). Most frequent confusion: "
                 f"{top['true']} taken for {top['predicted']} ({top['count']} images, "
                 f"{top['share of true class']:.1%} of the {top['true']} images).")
    sure = wrong & (confidence >= confident)
    lines.append(f"{int(sure.sum())} of the {int(wrong.sum())} mistakes ({sure.sum() / wrong.sum():.0%}) were made with "
                 f"confidence of at least {confident:.0%}: nothing would flag them for a second look.")
    lines.append(f"Expected calibration error {ece:.3f}: the model is "
                 f"{'over' if confidence.mean() > 1 - wrong.mean() else 'under'}-confident on average "
                 f"(mean confidence {confidence.mean():.1%} against accuracy {1 - wrong.mean():.1%}).")
    for name, result in run.external.items():
        lines.append(f"On the external set **{name}** accuracy falls to {result['accuracy']:.1%} "
                     f"({result['n_correct']}/{result['n_images']}): the in-lab figure does not travel.")
    return lines


def with_external_arrays(run: Run) -> dict:
    """The run's external results that kept their labels and probabilities (notebook 03 since
    2026-12-02), by name."""
    return {name: r for name, r in run.external.items() if r.get("labels") is not None}


def in_lab_and_elsewhere(run: Run, name: str, n_bins: int = 10, confident: float = 0.9) -> pd.DataFrame:
    """The in-lab test split against external set ``name``: accuracy, how sure the model was, the
    ECE with its 95% bootstrap range, and the share of images it got wrong at ``confident`` or more."""
    other = run.external[name]
    rows = {}
    for label, y, p in (("in-lab test", run.labels, run.probabilities), (name, other["labels"], other["probabilities"])):
        y, p = np.asarray(y), np.asarray(p)
        _, ece = calibration(run, n_bins, probabilities=p, labels=y)
        low, high = ece_interval(run, n_bins, probabilities=p, labels=y)
        wrong = p.argmax(1) != y
        rows[label] = {"images": len(y), "accuracy": float((~wrong).mean()), "mean confidence": float(p.max(1).mean()),
                       "ECE": ece, "ECE 95% low": low, "ECE 95% high": high,
                       f"wrong at >= {confident:.0%}": float((wrong & (p.max(1) >= confident)).mean())}
    return pd.DataFrame(rows).T


def shift_verdict(table: pd.DataFrame) -> str:
    """One sentence on how the model's confidence held up in the other lab (:func:`in_lab_and_elsewhere`)."""
    (home, h), (away, a) = table.iterrows()
    worse = a["ECE 95% low"] > h["ECE 95% high"]
    return (f"In-lab the model is {h['mean confidence']:.1%} sure on average and right {h['accuracy']:.1%} of the time "
            f"(ECE {h['ECE']:.3f}); on {away} it is {a['mean confidence']:.1%} sure and right {a['accuracy']:.1%} "
            f"(ECE {a['ECE']:.3f}, 95% range {a['ECE 95% low']:.3f}-{a['ECE 95% high']:.3f}): "
            + ("its confidence is measurably less trustworthy elsewhere, so a confident answer on another lab's "
               "slide means less than it does at home" if worse else
               "the two ECE ranges overlap, so this set cannot show that calibration got worse")
            + f"; {a.iloc[-1]:.1%} of that lab's cells were called wrong with at least 90% confidence.")
