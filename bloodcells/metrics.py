"""Classification metrics shared by every lab, computed with scikit-learn."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def _labels(y) -> np.ndarray:
    """Accept integer labels or one-hot / probability rows."""
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(int)


def classification_table(y_true, y_pred, class_names: list[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support, then macro and weighted averages, as rows."""
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    labels = np.arange(len(class_names))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    table = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": s},
                         index=pd.Index(class_names, name="class"))
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                     zero_division=0)
        table.loc[f"{average} avg"] = [p, r, f, s.sum()]
    table["support"] = table["support"].astype(int)
    return table


def confusion(y_true, y_pred, class_names: list[str], normalize: bool = False) -> pd.DataFrame:
    """Confusion matrix as a DataFrame: rows are true classes, columns predicted classes."""
    matrix = confusion_matrix(_labels(y_true), _labels(y_pred), labels=np.arange(len(class_names)),
                              normalize="true" if normalize else None)
    return pd.DataFrame(matrix, index=pd.Index(class_names, name="true"),
                        columns=pd.Index(class_names, name="predicted"))


def summary(y_true, y_pred, class_names: list[str]) -> dict:
    """The headline numbers a run folder's ``metrics.json`` records."""
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    table = classification_table(y_true, y_pred, class_names)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", labels=np.arange(len(class_names)),
                                   zero_division=0)),
        "n_test": int(len(y_true)),
        "n_correct": int((y_true == y_pred).sum()),
        "per_class_f1": {name: float(table.loc[name, "f1"]) for name in class_names},
    }
