"""BloodMNIST in medmnist's own file layout: find, download, load and validate the npz."""
from __future__ import annotations

import functools
import importlib.util
import warnings
import zipfile
from pathlib import Path

import numpy as np

from bloodcells.data.dataset import SPLITS, ImageDataset
from bloodcells.data.errors import DataError
from bloodcells.data.locations import candidates, medmnist_default_root
from bloodcells.network import online, stall_timeout

FLAG = "bloodmnist"
SIZES = (28, 64, 128, 224)


class DataUnavailable(DataError):
    """The file is not on disk and cannot be downloaded (offline). Callers may fall back."""


@functools.lru_cache(maxsize=1)
def _info() -> dict:
    """medmnist's facts about BloodMNIST (labels, URLs, MD5s, split sizes), read from its ``info``
    module alone: importing the ``medmnist`` package imports torch (500 MB), which lab 1 never uses."""
    package = importlib.util.find_spec("medmnist")  # finds the package without importing it
    spec = importlib.util.spec_from_file_location("bloodcells_medmnist_info", Path(package.origin).parent / "info.py")
    info = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(info)
    return info.INFO[FLAG]


def class_names() -> tuple[list[str], list[str]]:
    """(short names, medmnist's long names) in label order."""
    labels = _info()["label"]
    long_names = [labels[str(i)] for i in range(len(labels))]
    return [name.split("(")[0].strip() for name in long_names], long_names


def file_name(size: int = 28) -> str:
    _check_size(size)
    return f"{FLAG}.npz" if size == 28 else f"{FLAG}_{size}.npz"


def source_url(size: int = 28) -> tuple[str, str]:
    """(download URL, MD5) medmnist publishes for this size."""
    info = _info()
    suffix = "" if size == 28 else f"_{size}"
    return info[f"url{suffix}"], info[f"MD5{suffix}"]


def _check_size(size: int) -> None:
    if size not in SIZES:
        raise DataError(f"BloodMNIST comes in sizes {SIZES}, not {size!r}; pick one of those")


def candidate_roots(root: str | Path | None = None) -> list[Path]:
    """Folders searched, in order: the explicit root alone; else the kit's search rule
    (``$BLOODCELLS_DATA_DIR/medmnist``, the kit's ``data/medmnist``), then medmnist's ``~/.medmnist``."""
    if root is not None:
        return [Path(root).expanduser()]
    return [*candidates("bloodmnist"), medmnist_default_root()]


def find_file(root: str | Path | None = None, size: int = 28) -> Path | None:
    for folder in candidate_roots(root):
        path = folder / file_name(size)
        if path.is_file():
            return path
    return None


def _missing_message(folder: Path, size: int, why: str) -> str:
    url, md5 = source_url(size)
    return (
        f"{why}: {file_name(size)} is not in {folder}.\n"
        f"  Fix: download {url} (MD5 {md5}) and put it in {folder},\n"
        f"  or set BLOODCELLS_DATA_DIR to a folder holding medmnist/{file_name(size)},\n"
        f"  or use the generated synthetic set (data='synthetic') to try the lab offline."
    )


def download(root: str | Path | None = None, size: int = 28) -> Path:
    """Download through medmnist's own code, after a quick check that its host answers."""
    folder = candidate_roots(root)[0]
    url, _ = source_url(size)
    if not online(url):
        raise DataUnavailable(_missing_message(folder, size, "Offline (the download host does not answer)"))
    folder.mkdir(parents=True, exist_ok=True)
    import medmnist

    try:
        with stall_timeout():
            medmnist.BloodMNIST(split="test", root=str(folder), size=size, download=True)
    except Exception as exc:  # medmnist wraps several network and checksum errors
        raise DataUnavailable(_missing_message(folder, size, f"Download failed ({exc})")) from exc
    return folder / file_name(size)


def load_bloodmnist(root: str | Path | None = None, size: int = 28, download_if_missing: bool = True) -> ImageDataset:
    """Load BloodMNIST at ``size`` from the first folder that has it, downloading if allowed."""
    _check_size(size)
    path = find_file(root, size)
    if path is None:
        if not download_if_missing:
            raise DataUnavailable(_missing_message(candidate_roots(root)[0], size, "Not found"))
        path = download(root, size)
    return load_npz(path, size=size)


def load_npz(path: str | Path, size: int | None = None, name: str = "BloodMNIST") -> ImageDataset:
    """Read and validate a medmnist-layout npz (keys ``{split}_images``/``{split}_labels``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the path or set BLOODCELLS_DATA_DIR")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(
            f"{path} is not a readable .npz file ({exc.__class__.__name__}: {exc}); it is probably "
            "truncated or corrupt. Delete it and download it again (medmnist checks the MD5)."
        ) from exc

    expected = [f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")]
    missing = [key for key in expected if key not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks the keys {missing} (it has {sorted(arrays)}); a medmnist file holds "
            f"{expected}. Re-download it or rebuild it in that layout."
        )

    short, long_names = class_names()
    images, labels = {}, {}
    for split in SPLITS:
        images[split] = _check_images(arrays[f"{split}_images"], split, path, size)
        labels[split] = _check_labels(arrays[f"{split}_labels"], split, path, len(images[split]), len(short))

    synthetic = bool(arrays.get("synthetic", False))
    if not synthetic:
        _warn_on_split_sizes(labels, path)
    return ImageDataset(
        name=name if size in (None, 28) else f"{name} {size}x{size}",
        images=images,
        labels=labels,
        class_names=short,
        long_names=long_names,
        synthetic=synthetic,
    )


def _check_images(x: np.ndarray, split: str, path: Path, size: int | None) -> np.ndarray:
    if x.dtype != np.uint8:
        raise DataError(
            f"{path}: {split}_images has dtype {x.dtype}, expected uint8 pixels 0-255; "
            "store the raw images (scaling to [0, 1] happens in preprocessing)"
        )
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2]:
        raise DataError(
            f"{path}: {split}_images has shape {x.shape}, expected (N, S, S, 3) RGB images"
        )
    if len(x) == 0:  # found now, not when the test split is scored after minutes of training
        raise DataError(f"{path}: {split}_images holds no images; every split (train, val, test) needs some")
    if size is not None and x.shape[1] != size:
        raise DataError(
            f"{path}: {split}_images are {x.shape[1]}x{x.shape[2]} but size={size} was asked for; "
            f"pass size={x.shape[1]} or use the file for size {size}"
        )
    return x


def _check_labels(y: np.ndarray, split: str, path: Path, n_images: int, n_classes: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: {split}_labels has dtype {y.dtype}, expected integer class indices")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path}: {split}_labels has shape {y.shape}, expected (N, 1) or (N,)")
    if len(y) != n_images:
        raise DataError(
            f"{path}: {split} has {n_images} images but {len(y)} labels; the file is inconsistent"
        )
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(
            f"{path}: {split}_labels range {y.min()}..{y.max()}, but BloodMNIST has classes "
            f"0..{n_classes - 1}; the file is not BloodMNIST or its labels are corrupt"
        )
    return y.astype(np.int64)


def _warn_on_split_sizes(labels: dict[str, np.ndarray], path: Path) -> None:
    expected = _info()["n_samples"]
    found = {split: len(labels[split]) for split in SPLITS}
    if found != expected:
        warnings.warn(
            f"{path}: split sizes {found} differ from medmnist's {expected}; "
            "fine for a subset, but figures will not be comparable with published results",
            stacklevel=3,
        )
