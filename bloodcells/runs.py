"""Run folders: one new folder per training run, never overwriting an earlier one."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np

from bloodcells.data.folders import read_rgb


def new_run_dir(base: str | Path, name: str) -> Path:
    """Create ``base/<name>-YYYYmmdd-HHMMSS[-N]`` and return it; an existing folder is never reused."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    for n in range(1000):
        folder = base / (stem if n == 0 else f"{stem}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder under {base}")


def write_json(path: str | Path, obj) -> Path:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (np.ndarray, tuple)):
            return list(o)
        return str(o)

    Path(path).write_text(json.dumps(obj, indent=2, default=default) + "\n")
    return Path(path)


def save_predictions(folder: str | Path, probabilities, labels, class_names, images=None, files=None) -> Path:
    """``predictions.npz``: test probabilities, true labels, class names and the images (or their
    file paths), readable with NumPy alone so notebook 04 needs neither TensorFlow nor torch."""
    arrays = {"probabilities": np.asarray(probabilities, np.float32), "labels": np.asarray(labels, np.int64),
              "class_names": np.array(class_names)}
    if images is not None:
        arrays["images"] = np.asarray(images, np.uint8)
    if files is not None:
        arrays["files"] = np.array([str(f) for f in files])
    path = Path(folder) / "predictions.npz"
    np.savez_compressed(path, **arrays)
    return path


def run_image(run: dict, index: int, size: int | None = None) -> np.ndarray:
    """One test image of a loaded run: stored pixels (lab 1) or its file read back (lab 2)."""
    if "images" in run:
        return run["images"][index]
    return read_rgb(run["files"][index], size)


class RunImages:
    """The test images of a loaded run as a lazy sequence: files are read only when indexed."""

    def __init__(self, run: dict, size: int | None = 96):
        self.run, self.size = run, size

    def __len__(self) -> int:
        return len(self.run["labels"])

    def __getitem__(self, index: int) -> np.ndarray:
        return run_image(self.run, int(index), self.size)


def find_runs(root: str | Path) -> list[Path]:
    """Every run folder (one holding predictions.npz) below ``root``, oldest first."""
    return sorted((p.parent for p in Path(root).rglob("predictions.npz")), key=lambda p: p.stat().st_mtime)


def latest_runs(root: str | Path) -> list[Path]:
    """The newest run folder of each model (``metrics.json``'s model) below ``root``."""
    newest = {}
    for folder in find_runs(root):
        metrics = folder / "metrics.json"
        model = json.loads(metrics.read_text()).get("model", folder.name) if metrics.is_file() else folder.name
        newest.pop(model, None)  # re-insert: the dict ends in order of each model's newest run
        newest[model] = folder
    if not newest:
        raise FileNotFoundError(f"no run folders (with predictions.npz) under {Path(root).resolve()}; "
                                "run notebooks 02 and 03 first, or name the run folders to analyse")
    return list(newest.values())


def load_run(folder: str | Path) -> dict:
    """A run folder's metrics, parameters, history, external-validation results (``{}`` where a
    file is absent) and predictions, as plain Python/NumPy."""
    folder = Path(folder)
    if not (folder / "predictions.npz").is_file():
        raise FileNotFoundError(f"{folder} is not a run folder (no predictions.npz); run notebook 02 or 03 first")
    with np.load(folder / "predictions.npz", allow_pickle=False) as npz:
        run = {key: npz[key] for key in npz.files}
    run["class_names"] = [str(c) for c in run["class_names"]]
    for name in ("metrics", "params", "history", "external"):
        path = folder / f"{name}.json"
        run[name] = json.loads(path.read_text()) if path.is_file() else {}
    run["folder"] = folder
    return run
