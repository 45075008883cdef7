"""What the notebooks call: pick real or synthetic data from one ``data`` parameter."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bloodcells.config import SYNTHETIC_WBC5
from bloodcells.data.errors import DataError
from bloodcells.data.folders import WBC5_CLASSES, read_rgb
from bloodcells.data.locations import candidates, data_roots
from bloodcells.data.medmnist_io import DataUnavailable, load_bloodmnist
from bloodcells.data.prepare import wbc5_from_bloodmnist
from bloodcells.data.synthetic import load_synthetic_bloodmnist, render_cell, synthetic_cache_dir, write_class_folders

CHOICES = ("auto", "real", "synthetic")


def _check_choice(data: str) -> None:
    if data not in CHOICES:
        raise DataError(f"data must be one of {CHOICES}, got {data!r}")


def open_bloodmnist(data: str = "auto", data_dir: str | Path | None = None, size: int = 28, seed: int = 0):
    """BloodMNIST for the notebooks.

    ``"real"``: the medmnist file (from ``data_dir``, ``$BLOODCELLS_DATA_DIR/medmnist``, ``data/``,
    ``~/.medmnist``, else downloaded; errors say what to do). ``"synthetic"``: the generated
    stand-in. ``"auto"``: real when it can be had, otherwise synthetic with a warning, so a
    notebook always runs and always says which data it used; but a ``data_dir`` the user gave
    that holds no data is an error, never a reason to substitute synthetic data.
    """
    _check_choice(data)
    if data == "synthetic":
        return load_synthetic_bloodmnist(size=size, seed=seed)
    data_dir = Path(data_dir).expanduser() if data_dir else None
    root = data_dir / "medmnist" if data_dir and (data_dir / "medmnist").is_dir() else data_dir
    try:
        return load_bloodmnist(root, size=size)
    except DataUnavailable as exc:
        if data == "real" or data_dir:  # a folder the user named holds no data: say so, never substitute
            raise
        warnings.warn(f"{exc}\nFalling back to the SYNTHETIC stand-in (data='auto').", stacklevel=2)
        return load_synthetic_bloodmnist(size=size, seed=seed)


def wbc5_folder(data: str = "auto", data_dir: str | Path | None = None, size: int = 128) -> Path:
    """The white-cell class folder: ``data_dir``'s ``wbc5/`` (or ``data_dir`` itself) when given,
    and nothing else; otherwise ``$BLOODCELLS_DATA_DIR/wbc5``, then ``data/wbc5``. When there is
    none, it is built once from BloodMNIST at ``size`` (medmnist downloads and MD5-checks it) in
    ``data_dir`` (or the data folder). For ``"synthetic"``, or ``"auto"`` with no ``data_dir`` and
    nothing to build from, a generated set."""
    _check_choice(data)
    if data != "synthetic":
        folders = candidates("wbc5", data_dir) + ([Path(data_dir).expanduser()] if data_dir else [])
        for folder in folders:
            subfolders = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
            if subfolders and not subfolders & {"medmnist", "wbc5", "external"}:  # class folders, not a data folder
                return folder
        root = data_roots(data_dir)[0]
        try:
            print(f"No white-cell folder in {[str(c) for c in folders]}: building {root / 'wbc5'} once, "
                  f"from BloodMNIST {size}x{size} if it can be found or downloaded.")
            return wbc5_from_bloodmnist(root, size)[0]
        except DataUnavailable as exc:
            message = (f"no white-cell class folder found (looked in {[str(c) for c in folders]}) and none could "
                       f"be built from BloodMNIST {size}x{size}:\n{exc}\nOr run `bloodcells data prepare --out DIR` "
                       "where BloodMNIST or the PBC archive can be had, and set data_dir or BLOODCELLS_DATA_DIR to DIR")
            if data == "real" or data_dir:  # a folder the user named holds no data: say so, never substitute
                raise DataError(message) from exc
        warnings.warn(message + "\nFalling back to a SYNTHETIC set (data='auto').", stacklevel=2)
    folder = synthetic_cache_dir() / "wbc5"
    if not (folder / "SYNTHETIC.txt").exists():
        write_class_folders(folder, WBC5_CLASSES, **SYNTHETIC_WBC5)
    return folder


def pbc_photo(data: str = "auto", data_dir: str | Path | None = None, class_name: str = "neutrophil"):
    """One full-size PBC photo of ``class_name`` (the kind BloodMNIST was made from) and its caption.

    Looked for in ``wbc5/<class_name>/`` beside the data (``data_dir``, ``$BLOODCELLS_DATA_DIR``,
    ``data/``); only a photo at least 200 pixels on its shorter side counts (a ``wbc5`` built from
    BloodMNIST holds small copies). Otherwise, or for ``"synthetic"``, a SYNTHETIC cell of 360 pixels.
    """
    _check_choice(data)
    folders = [folder / class_name for folder in candidates("wbc5", data_dir)]
    photos = [p for folder in folders for p in sorted(folder.glob("*.jpg"))[:1]]
    for path in photos if data != "synthetic" else []:
        image = read_rgb(path)
        if min(image.shape[:2]) >= 200:
            return image, f"PBC photo {path.name} ({class_name}, {image.shape[1]}x{image.shape[0]})"
    if data == "real":
        raise DataError(f"no PBC photo of a {class_name} in {[str(f) for f in folders]}; "
                        "put the PBC photos there (`bloodcells data prepare --from-pbc`) or use data='synthetic'")
    image = render_cell(class_name, 360, np.random.default_rng(0))
    return image, f"{class_name} (SYNTHETIC, 360x360)"


def external_folder(external_dir: str | Path | None = "auto", data_dir: str | Path | None = None) -> Path | None:
    """Another lab's labelled white-cell class folders for external validation.

    A path must exist (an error otherwise, never a silent skip); ``"auto"`` looks for
    ``external/bccd`` beside the data (the kit's search rule: ``data_dir`` alone when given, else
    ``$BLOODCELLS_DATA_DIR``, then ``data/``) and returns ``None`` when there is none; ``None``
    means no external validation.
    """
    if external_dir is None:
        return None
    if external_dir != "auto":
        folder = Path(external_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"external_dir {folder} is not a folder; point it at class folders "
                            "(<class>/*.jpg) from another lab, or set external_dir = None")
        return folder
    return next((folder for folder in candidates("bccd", data_dir) if folder.is_dir()), None)
