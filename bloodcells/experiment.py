"""The training side of the contract both labs share: a run record, one way to score it and one
way to save it as a :class:`bloodcells.runs.Run`.

A lab module trains (cell by cell in a notebook, or in one call), wraps what it got in a
:class:`RunRecord`, then calls :func:`score` and :func:`save`; notebook 04, the lab runner and the
benchmarks read the same :class:`~bloodcells.runs.Run` back whichever lab wrote it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bloodcells import metrics as M
from bloodcells import runs


@dataclass
class RunRecord:
    """One training run: the trained model (Keras model or fastai Learner), its per-epoch history,
    the options it ran with and its training time; scoring and saving fill in the rest."""
    model: Any
    history: dict
    params: dict
    train_seconds: float
    probabilities: np.ndarray | None = None  # test split
    val_probabilities: np.ndarray | None = None  # validation split (for temperature scaling in 04)
    metrics: dict = field(default_factory=dict)
    folder: Path | None = None

    @property
    def best_epoch(self) -> int:
        """1-based epoch with the lowest validation loss (over all phases)."""
        return int(np.argmin(self.history["val_loss"])) + 1


def score(record: RunRecord, labels, probabilities, class_names, val_probabilities=None, **facts) -> dict:
    """Store the test (and validation) probabilities on the record and return the metrics summary
    every run folder's ``metrics.json`` holds, with the lab's own facts added."""
    record.probabilities, record.val_probabilities = np.asarray(probabilities), val_probabilities
    summary = M.summary(labels, record.probabilities.argmax(1), class_names)
    summary.update(facts, train_seconds=round(record.train_seconds, 1), best_epoch=record.best_epoch,
                   epochs_run=len(record.history["val_loss"]))
    record.metrics = summary
    return summary


class OutputDirError(ValueError):
    """Run folders cannot be written where asked; the message says where and what to do."""


def check_output_dir(output_dir: str | Path) -> Path:
    """Make sure run folders can be written into ``output_dir`` before any training starts."""
    folder = Path(output_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputDirError(f"cannot write run folders into {folder} ({exc}); choose a writable output_dir "
                             "before training, or nothing of the run can be kept") from exc
    return folder


def save(record: RunRecord, output_dir: str | Path, name: str, write_model: Callable[[Path], Any],
         labels, class_names, images, val_labels=None, image_names=None) -> Path:
    """Write a new run folder ``output_dir/<name>-<time>``: the model (``write_model(folder)``) and the
    :class:`~bloodcells.runs.Run` (``images``: the model's view of each test image).

    Everything is written into a hidden ``.partial`` folder first and renamed when complete, so a
    crash or Ctrl-C never leaves a run folder that looks finished.
    """
    run = runs.Run(record.probabilities, labels, class_names, images, record.metrics, record.params, record.history,
                   val_probabilities=record.val_probabilities, val_labels=val_labels, image_names=image_names)
    folder = runs.new_run_dir(output_dir, name)  # reserves the name: an earlier run is never overwritten
    partial = folder.with_name(f".{folder.name}.partial")
    partial.mkdir()
    try:
        write_model(partial)
        runs.write(partial, run)
        os.replace(partial, folder)  # atomic on one file system; the reserved folder is empty
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        folder.rmdir()
        raise
    record.folder = folder
    return folder
