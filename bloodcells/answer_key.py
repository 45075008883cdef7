"""The answer key's numbers: what each lab figure should come to on the real data, over seeds.

``benchmarks/answer_key.py`` trains every recipe with several seeds as the notebooks do and writes
``bloodcells/answers/<lab>.json``; notebooks, the instructor's guide and the README read the ranges
from there, so an expected figure is always one the current code measured.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

FOLDER = Path(__file__).parent / "answers"
METRICS = ("test_accuracy", "val_accuracy", "macro_f1", "train_seconds", "epochs", "best_epoch")


def load(lab: str = "lab1") -> dict:
    """The stored measurement: its facts (data, date, machine, command) and one row per run."""
    path = FOLDER / f"{lab}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no answer key for {lab} at {path}; make it with "
                                "`python benchmarks/answer_key.py --data-dir DATA`")
    return json.loads(path.read_text())


def runs(lab: str = "lab1") -> pd.DataFrame:
    """Every measured run, one row each."""
    return pd.DataFrame(load(lab)["runs"])


def ranges(lab: str = "lab1") -> pd.DataFrame:
    """Lowest, mean and highest of each figure per recipe (model, quick mode) over the seeds."""
    table = runs(lab)
    grouped = table.groupby(["model", "quick"])
    result = grouped[[m for m in METRICS if m in table]].agg(["min", "mean", "max"])
    result.insert(0, ("seeds", ""), grouped["seed"].apply(lambda s: ", ".join(map(str, sorted(s)))))
    return result


def table(lab: str = "lab1") -> pd.DataFrame:
    """What a student should see, per recipe: each figure's lowest to highest over the seeds."""
    spans = ranges(lab)

    def span(row, metric, fmt):
        return f"{fmt.format(row[(metric, 'min')])} to {fmt.format(row[(metric, 'max')])}"

    rows = [{"model": model, "mode": "quick" if quick else "full length",
             "test accuracy": span(row, "test_accuracy", "{:.2%}"),
             "validation accuracy": span(row, "val_accuracy", "{:.2%}"), "macro F1": span(row, "macro_f1", "{:.3f}"),
             "training seconds": span(row, "train_seconds", "{:.0f}"), "epochs run": span(row, "epochs", "{:.0f}")}
            for (model, quick), row in spans.iterrows()]
    order = {"seed": 0, "improved": 1}  # the report's CNN first, full length before quick mode
    rows.sort(key=lambda r: (order.get(r["model"], 2), r["mode"] == "quick"))
    return pd.DataFrame(rows).set_index(["model", "mode"])


def applies(options, dataset) -> bool:
    """Whether the key describes this run: the real file at 28 px and the recipe's own settings
    (quick mode or not; only the seed may be the user's)."""
    return (not dataset.synthetic and tuple(dataset.image_shape[:2]) == (28, 28)
            and all(source != "you" for name, source in options.sources.items() if name != "seed"))


def expected(model: str, quick: bool, metric: str = "test_accuracy", lab: str = "lab1") -> tuple[float, float]:
    """(lowest, highest) of ``metric`` over the seeds measured for this recipe."""
    table = runs(lab)
    values = table[(table["model"] == model) & (table["quick"] == quick)][metric]
    if values.empty:
        raise KeyError(f"the {lab} answer key has no run of model={model!r}, quick={quick}")
    return float(values.min()), float(values.max())
