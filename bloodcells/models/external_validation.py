"""External validation: a lab 2 model scored on another lab's labelled class folders.

Only scoring happens here: nothing is trained or tuned on the other set. ``crop`` is an argument
because another lab frames its cells its own way; the summary goes into the run folder with
:func:`bloodcells.runs.add_external` with its labels and probabilities (notebook 04 reads them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from fastai.learner import Learner

from bloodcells.data.errors import DataError
from bloodcells.data.folders import discover, image_files
from bloodcells.models import transfer


def evaluate(learn: Learner, folder: str | Path, class_map: dict[str, str] | None = None,
             tta: bool = False, crop: float | str = "auto", adapt: str | None = None,
             unlabelled: str | Path | None = None) -> dict:
    """Score a trained learner on another labelled class-folder set (another lab, stain, scanner).

    ``class_map`` maps that set's folder names to our class names; without it, folders named like
    our classes (any case) map to them. Classes that map to nothing are reported with their image
    counts and left out of the scores, never guessed. ``crop`` frames that set's images: ``"auto"``
    crops or pads the whole set by one factor so that its median cell fills the view as training
    cells did (found by their stain, no labels); a number is one centre crop for all (1.0: as given).
    ``adapt``: first adapt a copy of the model to that lab (``"adabn"``, ``"tent"`` or
    ``"self_training"``: :mod:`bloodcells.models.adaptation`) with the images of the folder
    ``unlabelled`` (any layout; default: the scored images themselves, their pixels, never labels).
    """
    ours = list(learn.dls.vocab)
    names, files, _ = discover(folder, min_per_class=1)
    if class_map is None:
        lookup = {c.lower(): c for c in ours}
        class_map = {n: lookup[n.lower()] for n in names if n.lower() in lookup}
    wrong = {k: v for k, v in class_map.items() if v not in ours}
    if wrong:
        raise ValueError(f"class_map targets {sorted(set(wrong.values()))} are not classes of this model; "
                         f"use some of {ours}")
    missing = sorted(set(class_map) - set(names))
    if missing:
        raise DataError(f"class_map names folders {missing} that {folder} does not have; it has {names}")
    mapped = [(f, ours.index(class_map[n])) for n, group in zip(names, files) if n in class_map for f in group]
    unmapped = {n: len(group) for n, group in zip(names, files) if n not in class_map}
    if not mapped:
        raise DataError(f"none of the classes in {folder} ({names}) map to this model's classes {ours}; "
                        "pass class_map={their_name: our_name, ...}")
    paths, labels = [f for f, _ in mapped], np.array([y for _, y in mapped])
    crops = transfer.crops_for(learn, paths, crop)
    extra = None if unlabelled is None else image_files(unlabelled)
    probs = transfer.predict(learn, paths, tta=tta, crop=crops, adapt=adapt, unlabelled=extra)
    pred = probs.argmax(1)
    present = sorted(set(labels.tolist()))
    return {
        "folder": Path(folder).name, "class_map": class_map, "unmapped": unmapped, "crop": crop,
        "median_crop": float(np.median(crops)),
        "adapt": adapt, "unlabelled": None if unlabelled is None else Path(unlabelled).name,
        "n_images": len(labels), "n_correct": int((pred == labels).sum()),
        "accuracy": float((pred == labels).mean()),
        "balanced_accuracy": float(np.mean([(pred[labels == c] == c).mean() for c in present])),
        "recall_per_class": {ours[c]: float((pred[labels == c] == c).mean()) for c in present},
        "support_per_class": {ours[c]: int((labels == c).sum()) for c in present},
        "files": paths, "labels": labels, "probabilities": probs,
    }
