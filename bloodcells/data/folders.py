"""Class-folder image sets (``root/<class>/*.jpg``): discover, check, split, load."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bloodcells.config import MAX_CROP, WBC5_SPLIT
from bloodcells.data.dataset import ImageSet
from bloodcells.data.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
WBC5_CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
MANIFEST = "bloodcells-prepared.json"  # written by `bloodcells data prepare` into each folder it makes


def read_manifest(folder: str | Path) -> dict | None:
    """How `bloodcells data prepare` made ``folder`` (``None``: the kit did not make it)."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class FolderSplit(ImageSet):
    """File paths and integer labels per split, plus the class list and skipped files."""

    root: Path
    class_names: list[str]
    files: dict[str, list[Path]]
    labels: dict[str, np.ndarray]
    skipped: list[Path]
    synthetic: bool = False
    crop: float | None = None  # the framing the images need, when the folder says (None: unknown)

    @property
    def name(self) -> str:
        return self.root.name

    def image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
        """The file as it is (the whole photo; a model's view is ``cell_images.view``)."""
        return read_rgb(self.files[split][index], size)

    def image_name(self, split: str, index: int) -> str:
        return str(self.files[split][index])


def is_hidden(name: str) -> bool:
    """Hidden files and folders, macOS ``._`` companions and ``__MACOSX`` folders are not data."""
    return name.startswith(".") or name == "__MACOSX"


def image_files(folder: str | Path) -> list[Path]:
    """Every image under ``folder``, at any depth, sorted: a lab's unlabelled images (no class folders
    needed; the names of any sub-folders are never read as labels)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; point it at a folder of the new lab's images")
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not any(is_hidden(part) for part in p.relative_to(root).parts))
    if not found:
        raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); add the new lab's images")
    return found


def discover(root: str | Path, min_per_class: int = 3) -> tuple[list[str], list[list[Path]], list[Path]]:
    """Classes (sorted sub-folder names), their image files, and the non-image files skipped."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"image folder {root} does not exist; point data_dir at a folder with one sub-folder "
            "per class (e.g. wbc5/basophil/*.jpg), or set BLOODCELLS_DATA_DIR"
        )
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    if not class_dirs:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class name>/<image files>")
    files, skipped = [], []
    for folder in class_dirs:
        if folder.is_symlink():  # a link to another class's folder would put the same images in two classes
            raise DataError(f"class folder {folder} is a symbolic link (to {folder.resolve()}); the kit does not "
                            "follow links: copy the images into a real folder or remove the link")
        if not os.access(folder, os.R_OK | os.X_OK):
            raise DataError(f"no permission to read class folder {folder}; make it readable (chmod a+rx)")
        nested = sorted(p.name for p in folder.iterdir() if p.is_dir() and not is_hidden(p.name))
        if nested:
            raise DataError(f"class folder {folder} has sub-folders ({', '.join(nested[:5])}); a class folder holds "
                            "its images directly: move them up, or make each sub-folder a class of its own")
        found = sorted(p for p in folder.iterdir() if p.is_file() and not is_hidden(p.name))
        images = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
        skipped += [p for p in found if p.suffix.lower() not in IMAGE_SUFFIXES]
        if not images:
            raise DataError(
                f"class folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                "add images or remove the folder"
            )
        if len(images) < min_per_class:
            raise DataError(
                f"class {folder.name!r} has {len(images)} images, too few for a train/val/test split "
                f"(need at least {min_per_class}); add images or drop the class"
            )
        files.append(images)
    if skipped:
        shown = ", ".join(str(p.relative_to(root)) for p in skipped[:5])
        warnings.warn(f"skipped {len(skipped)} non-image files in {root}: {shown}", stacklevel=2)
    return [d.name for d in class_dirs], files, skipped


def split_folder(root: str | Path, fractions=WBC5_SPLIT["fractions"], seed: int = WBC5_SPLIT["seed"]) -> FolderSplit:
    """Stratified train/val/test split of a class-folder set (by default the white-cell lab's,
    :data:`bloodcells.config.WBC5_SPLIT`)."""
    from sklearn.model_selection import train_test_split

    if len(fractions) != 3 or not np.isclose(sum(fractions), 1) or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    # Each class needs a few images in validation and test for stratification: 10 for 70/15/15.
    names, files, skipped = discover(root, min_per_class=int(np.ceil(3 / (fractions[1] + fractions[2]))))
    paths = np.array([p for group in files for p in group], dtype=object)
    labels = np.concatenate([np.full(len(group), i) for i, group in enumerate(files)])
    idx = np.arange(len(labels))
    train, rest = train_test_split(idx, train_size=fractions[0], stratify=labels, random_state=seed)
    val_share = fractions[1] / (fractions[1] + fractions[2])
    val, test = train_test_split(rest, train_size=val_share, stratify=labels[rest], random_state=seed)
    parts = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    synthetic = (Path(root) / "SYNTHETIC.txt").exists()  # drawn already framed on the cell
    return FolderSplit(
        root=Path(root),
        class_names=names,
        files={s: list(paths[i]) for s, i in parts.items()},
        labels={s: labels[i].astype(np.int64) for s, i in parts.items()},
        skipped=skipped,
        synthetic=synthetic,
        crop=1.0 if synthetic else (read_manifest(root) or {}).get("crop"),
    )


def read_rgb(path: str | Path, size: int | None = None, crop: float = 1.0) -> np.ndarray:
    """An image file as ``(H, W, 3) uint8`` RGB; grayscale and RGBA are converted.

    ``crop`` keeps the central square of that fraction of the shorter side before resizing to
    ``size`` (BloodMNIST's recipe keeps the central 200 of PBC's 360 pixels, where the cell is);
    above 1 the central square is padded with its border's colour to that multiple of its side
    (a close-up shown as a model trained on wider views expects).
    """
    if not 0 < crop <= MAX_CROP:
        raise ValueError(f"crop must lie in (0, {MAX_CROP}], got {crop}")
    try:
        with Image.open(path) as image:
            image = _to_rgb(image)
            if crop != 1:
                side = max(1, round(min(image.size) * min(crop, 1.0)))
                left, top = (image.width - side) // 2, (image.height - side) // 2
                image = image.crop((left, top, left + side, top + side))
            if crop > 1:
                image = _pad(image, round(image.width * crop))
            if size is not None:
                image = image.resize((size, size), Image.Resampling.LANCZOS)
            return np.asarray(image, dtype=np.uint8)
    except PermissionError as exc:
        raise DataError(f"no permission to read image {path}; make it readable (chmod a+r)") from exc
    except FileNotFoundError as exc:
        raise DataError(f"image {path} is missing: moved, renamed or deleted after its folder was listed; "
                        "put it back, or run again so the folder is listed anew") from exc
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} is too large to open safely ({exc}); resize or remove it") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:  # PIL's ways of saying "broken"
        raise DataError(f"cannot read image {path} ({exc}); it is truncated or not an image: "
                        "delete or replace the file") from exc


def _pad(image: Image.Image, side: int) -> Image.Image:
    pixels = np.asarray(image)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    canvas = Image.new("RGB", (side, side), tuple(int(v) for v in np.median(border, axis=0)))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: 16-bit grayscale scaled by the bit depth its values use (12-bit
    camera data in 16-bit files would come out near black at /257; a plain convert clips to white),
    32-bit integer or float scaled by the image's maximum, palettes and alpha dropped."""
    if image.mode.startswith("I;16"):
        pixels = np.asarray(image, dtype=np.float64)
        depth = next(bits for bits in (8, 10, 12, 14, 16) if pixels.max() < 2**bits)
        pixels = pixels / (2**depth - 1) * 255.0
    elif image.mode in ("I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        pixels = pixels / max(float(pixels.max()), 1e-12) * 255.0
    else:
        return image.convert("RGB")
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").convert("RGB")


def check_images(files, read=read_rgb, limit: int = 20) -> None:
    """Read every image once with ``read`` (:func:`read_rgb` or a caching reader, so the check is
    also the first decode) before long work starts; one error names every unreadable file.

    Catches what would otherwise stop training halfway or lose a finished run at scoring time:
    truncated or corrupt files, images too large to be safe, files the user may not read."""
    bad = []
    for path in files:
        try:
            read(path)
        except DataError as exc:
            bad.append(str(exc))
    if bad:
        shown = "\n  ".join(bad[:limit]) + (f"\n  ... and {len(bad) - limit} more" if len(bad) > limit else "")
        raise DataError(f"{len(bad)} image file(s) cannot be read (checked before training):\n  {shown}\n"
                        "Delete or replace them and run again; nothing was trained.")
