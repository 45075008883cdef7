"""The run contract both labs share: one :class:`Run` type, written by :func:`write` and read back
by :func:`load`, and the run folders that hold them (one new folder per run, never overwritten).

A run folder is self-contained: it stores the model's view of every test image (after any crop, at
display size), so notebook 04's tables, galleries and widgets work on a copy of the folder on
another machine, with no data folder and with NumPy alone (no TensorFlow, no torch).
"""
from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from bloodcells.data.dataset import ImageDataset

#: The run folder format; a folder written by an older kit is refused with a message, not a KeyError.
CONTRACT = 2
PREDICTIONS = "predictions.npz"  # the arrays: NumPy only
JSON_FILES = {"metrics": "metrics.json", "params": "params.json", "history": "history.json",
              "external": "external.json"}
#: Each external set's labels and probabilities (NumPy only; its file paths are not kept: they are
#: another machine's), for notebook 04's confusion matrices and calibration of the other lab.
EXTERNAL_PREDICTIONS = "external.npz"
EXTERNAL_ARRAYS = ("files", "labels", "probabilities")


class RunFolderError(ValueError):
    """A run folder that cannot be made, or whose files cannot be read; the message names it."""


@dataclass
class Run:
    """One finished run as every reader sees it, whichever lab wrote it.

    ``images`` are what the model was shown of each test image (uint8, after the crop), at most
    display size; ``image_names`` say where each came from (relative to its data folder) when the
    images were files. ``external`` holds one summary per other set the model was scored on, with
    its ``labels`` and ``probabilities`` where the folder has them (:func:`add_external`).
    """
    probabilities: np.ndarray  # (N, classes): the test split
    labels: np.ndarray  # (N,)
    class_names: list[str]
    images: np.ndarray  # (N, H, W, 3) uint8
    metrics: dict
    params: dict
    history: dict
    external: dict = field(default_factory=dict)
    val_probabilities: np.ndarray | None = None  # to fit a temperature on (never the test split)
    val_labels: np.ndarray | None = None
    image_names: list[str] | None = None
    folder: Path | None = None

    def __post_init__(self):
        self.probabilities = np.asarray(self.probabilities, np.float32)
        self.labels = np.asarray(self.labels, np.int64)
        self.images = np.asarray(self.images, np.uint8)
        self.class_names = [str(c) for c in self.class_names]
        n, classes = len(self.labels), len(self.class_names)
        if self.probabilities.shape != (n, classes) or len(self.images) != n or self.images.ndim != 4:
            raise RunFolderError(f"a run needs one probability row over {classes} classes and one image per test "
                                 f"label ({n}); got probabilities {self.probabilities.shape}, images "
                                 f"{self.images.shape}")
        if self.image_names is not None and len(self.image_names) != n:
            raise RunFolderError(f"{len(self.image_names)} image names for {n} test images")

    @property
    def predictions(self) -> np.ndarray:
        """Predicted class per test image (the most probable)."""
        return self.probabilities.argmax(axis=1)

    def test_set(self) -> ImageDataset:
        """The test images with their labels as an image set (for the explorer widget)."""
        return ImageDataset(name=f"run {self.folder.name if self.folder else self.name}", images={"test": self.images},
                            labels={"test": self.labels}, class_names=self.class_names,
                            image_names={"test": self.image_names} if self.image_names else None)

    @property
    def name(self) -> str:
        """A short label for tables and titles: model and dataset."""
        model = self.metrics.get("model") or (self.folder.name if self.folder else "run")
        return f"{model} · {self.metrics.get('dataset', '?')}"


def write(folder: str | Path, run: Run) -> Path:
    """The run's files in ``folder`` (which exists): predictions.npz and the JSON files."""
    folder = Path(folder)
    arrays = {"contract": np.int64(CONTRACT), "probabilities": run.probabilities, "labels": run.labels,
              "class_names": np.array(run.class_names), "images": run.images}
    if run.val_probabilities is not None:
        arrays["val_probabilities"] = np.asarray(run.val_probabilities, np.float32)
        arrays["val_labels"] = np.asarray(run.val_labels, np.int64)
    if run.image_names is not None:
        arrays["image_names"] = np.array([str(n) for n in run.image_names])
    np.savez_compressed(folder / PREDICTIONS, **arrays)
    for name, file in JSON_FILES.items():
        if name != "external":
            write_json(folder / file, getattr(run, name))
    if run.external:
        write_external(folder, run.external)
    return folder


def load(folder: str | Path) -> Run:
    """A run folder as a :class:`Run`; a missing JSON file reads as ``{}``."""
    folder = Path(folder)
    path = folder / PREDICTIONS
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a run folder (no {PREDICTIONS}); run notebook 02 or 03 first")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunFolderError(f"{path} cannot be read ({exc}); the run was cut short or the file is damaged. "
                             "Re-run the notebook that made it, or leave this folder out") from exc
    if int(arrays.pop("contract", 1)) != CONTRACT:
        raise RunFolderError(f"{folder} was written by another version of the kit (its test images are not "
                             "stored in it); re-run notebook 02 or 03 to make a run folder this version reads")
    texts = {}
    for name, file in JSON_FILES.items():
        try:
            texts[name] = json.loads((folder / file).read_text()) if (folder / file).is_file() else {}
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{folder / file} cannot be read ({exc}); re-run the notebook that made it") from exc
    texts["external"] = _with_arrays(folder, texts["external"])
    names = arrays.pop("image_names", None)
    return Run(**arrays, **texts, image_names=None if names is None else [str(n) for n in names], folder=folder)


def add_external(folder: str | Path, name: str, result: dict) -> Path:
    """Add one external-validation result to a run folder: its summary to external.json, its labels
    and probabilities to external.npz (its file paths stay in memory)."""
    path = Path(folder) / JSON_FILES["external"]
    results = _with_arrays(folder, json.loads(path.read_text())) if path.is_file() else {}
    results[name] = result
    return write_external(folder, results)


def write_external(folder: str | Path, external: dict) -> Path:
    """external.json (the summaries) and external.npz (each set's arrays, keyed ``set<N>_...``)."""
    summaries, arrays = {}, {}
    for number, (name, result) in enumerate(external.items()):
        summaries[name] = {k: v for k, v in result.items() if k not in EXTERNAL_ARRAYS and k != "arrays"}
        if result.get("labels") is not None and result.get("probabilities") is not None:
            summaries[name]["arrays"] = key = f"set{number}"
            arrays[f"{key}_labels"] = np.asarray(result["labels"], np.int64)
            arrays[f"{key}_probabilities"] = np.asarray(result["probabilities"], np.float32)
    if arrays:  # the arrays first: a summary never names arrays that are not there
        np.savez_compressed(Path(folder) / EXTERNAL_PREDICTIONS, **arrays)
    return write_json(Path(folder) / JSON_FILES["external"], summaries)


def _with_arrays(folder: str | Path, summaries: dict) -> dict:
    """The summaries with each set's labels and probabilities from external.npz where it has them."""
    path = Path(folder) / EXTERNAL_PREDICTIONS
    if not path.is_file():
        return summaries
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RunFolderError(f"{path} cannot be read ({exc}); re-run notebook 03 to score the external set again") from exc
    return {name: {**result, **({"labels": arrays[f"{result['arrays']}_labels"],
                                 "probabilities": arrays[f"{result['arrays']}_probabilities"]}
                                if f"{result.get('arrays')}_labels" in arrays else {})}
            for name, result in summaries.items()}


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


def find_runs(root: str | Path) -> list[Path]:
    """Every run folder (one holding predictions.npz) below ``root``, oldest first; hidden folders
    (a run still being written is ``.<name>.partial``) are not run folders."""
    root = Path(root)
    found = [p.parent for p in root.rglob(PREDICTIONS)
             if not any(part.startswith(".") for part in p.parent.relative_to(root).parts)]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def latest_runs(root: str | Path) -> list[Path]:
    """The newest complete run folder of each model (``metrics.json``'s model) below ``root``;
    folders without a readable ``metrics.json`` are skipped with a warning that names them."""
    newest = {}
    for folder in find_runs(root):
        try:
            model = json.loads((folder / JSON_FILES["metrics"]).read_text())["model"]
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"skipping {folder}: no readable metrics.json ({exc}); it is incomplete or damaged")
            continue
        newest.pop(model, None)  # re-insert: the dict ends in order of each model's newest run
        newest[model] = folder
    if not newest:
        raise FileNotFoundError(f"no run folders (with {PREDICTIONS}) under {Path(root).resolve()}; "
                                "run notebooks 02 and 03 first, or name the run folders to analyse")
    return list(newest.values())
