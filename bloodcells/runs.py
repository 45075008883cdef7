"""Run folders: one new folder per training run, never overwriting an earlier one."""
from __future__ import annotations

import json
import warnings
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np

from bloodcells.data.folders import read_rgb


class RunFolderError(ValueError):
    """A run folder that cannot be made, or whose files cannot be read; the message names it."""


def new_run_dir(base: str | Path, name: str) -> Path:
    """Create ``base/<name>-YYYYmmdd-HHMMSS[-N]`` and return it; an existing folder is never reused."""
    base = Path(base).expanduser()
    stem = f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    try:
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            folder = base / (stem if n == 0 else f"{stem}-{n}")
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
    except OSError as exc:  # a file in the way, no permission, a full or read-only disk
        raise RunFolderError(f"cannot create a run folder in {base} ({exc.strerror or exc}); "
                             "choose a folder you can write to (--out, output_dir)") from None
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


def save_predictions(folder: str | Path, probabilities, labels, class_names, images=None, files=None,
                     val_probabilities=None, val_labels=None) -> Path:
    """``predictions.npz``: test probabilities, true labels, class names and the images (or their
    file paths), readable with NumPy alone so notebook 04 needs neither TensorFlow nor torch; also
    the validation split's probabilities and labels when given (to fit a temperature on)."""
    arrays = {"probabilities": np.asarray(probabilities, np.float32), "labels": np.asarray(labels, np.int64),
              "class_names": np.array(class_names)}
    if val_probabilities is not None:
        arrays["val_probabilities"] = np.asarray(val_probabilities, np.float32)
        arrays["val_labels"] = np.asarray(val_labels, np.int64)
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
    """Every run folder (one holding predictions.npz) below ``root``, oldest first; hidden folders
    (a run still being written is ``.<name>.partial``) are not run folders."""
    root = Path(root)
    found = [p.parent for p in root.rglob("predictions.npz")
             if not any(part.startswith(".") for part in p.parent.relative_to(root).parts)]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def latest_runs(root: str | Path) -> list[Path]:
    """The newest complete run folder of each model (``metrics.json``'s model) below ``root``;
    folders without a readable ``metrics.json`` are skipped with a warning that names them."""
    newest = {}
    for folder in find_runs(root):
        try:
            model = json.loads((folder / "metrics.json").read_text())["model"]
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"skipping {folder}: no readable metrics.json ({exc}); it is incomplete or damaged")
            continue
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
    path = folder / "predictions.npz"
    try:
        with np.load(path, allow_pickle=False) as npz:
            run = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunFolderError(f"{path} cannot be read ({exc}); the run was cut short or the file is damaged. "
                             "Re-run the notebook that made it, or leave this folder out") from exc
    run["class_names"] = [str(c) for c in run["class_names"]]
    for name in ("metrics", "params", "history", "external"):
        path = folder / f"{name}.json"
        try:
            run[name] = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{path} cannot be read ({exc}); re-run the notebook that made it") from exc
    run["folder"] = folder
    return run
