"""``bloodcells data prepare``: build the labs' real data ahead of time, from public sources.

- lab 1: BloodMNIST (28 px) in ``DIR/medmnist/``, fetched and MD5-checked by medmnist;
- lab 2: ``DIR/wbc5/<class>/``, 500 images per white-cell class chosen with seed 42, from
  BloodMNIST at a larger size (its images are PBC photos already centred on the cell, so the lab
  does not crop them again) or from the PBC archive itself (a folder or the zip from Mendeley Data);
- an external set: ``DIR/external/bccd/<class>/``, white-cell crops from the BCCD dataset.

Every folder it makes carries a ``bloodcells-prepared.json`` saying how it was made (and how the
lab should frame its images). Building again with the same recipe does nothing; a folder the kit
did not make is never overwritten. Folders are built under a hidden name and renamed when complete.
"""
from __future__ import annotations

import json
import shutil
import warnings
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from bloodcells.config import PREPARE
from bloodcells.data.dataset import SPLITS
from bloodcells.data.errors import DataError
from bloodcells.data.folders import IMAGE_SUFFIXES, MANIFEST, WBC5_CLASSES, is_hidden, read_manifest
from bloodcells.data.medmnist_io import (DataUnavailable, class_names, download, file_name, find_file, load_npz,
                                         source_url)

PBC_SOURCE = ("the PBC archive (Acevedo et al. 2020), Mendeley Data doi:10.17632/snkd93bnjr.1, CC BY 4.0: "
              "download PBC_dataset_normal_DIB.zip and pass it with --from-pbc")
BCCD_SOURCE = "github.com/Shenggan/BCCD_Dataset (MIT): clone or unzip it and pass it with --from-bccd"
BCCD_CROP_SCALE = 2.2  # crop side / the white-cell box's longer side: the cell fills ~45% of a crop


def _build(target: Path, recipe: dict, write) -> tuple[Path, bool]:
    """Run ``write(folder)`` into a hidden folder and rename it to ``target``, unless ``target``
    already holds this recipe. Returns (target, built)."""
    if target.exists():
        made = read_manifest(target)
        if made is None:
            raise DataError(f"{target} exists and was not made by `bloodcells data prepare`; it is left as it "
                            "is. Move it away or choose another --out")
        if {k: made.get(k) for k in recipe} == recipe:
            return target, False
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        count = write(partial)
        (partial / MANIFEST).write_text(json.dumps({**recipe, "images": count}, indent=1) + "\n")
        if target.exists():  # ours, made with another recipe: replaced only now that the new one is complete
            shutil.rmtree(target)
        partial.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target, True


def _choose(groups: dict[str, list], per_class: int, seed: int, source: str) -> dict[str, list]:
    """``per_class`` items of each class, drawn with one seeded generator in class order."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for name in WBC5_CLASSES:
        items = groups.get(name, [])
        if len(items) < per_class:
            raise DataError(f"{source} has {len(items)} {name} images, fewer than the {per_class} asked for; "
                            "lower --per-class or use another source")
        picked = np.sort(rng.choice(len(items), per_class, replace=False))
        chosen[name] = [items[i] for i in picked]
    return chosen


def bloodmnist_file(out: Path, size: int, copy: bool = False) -> tuple[Path, bool]:
    """BloodMNIST at ``size`` from ``out/medmnist`` or the usual places (copied into ``out/medmnist``
    when ``copy``: a classroom folder holds everything), else downloaded into ``out/medmnist``.
    Returns (path, fetched now)."""
    here = find_file(out / "medmnist", size)
    if here is not None:
        return here, False
    elsewhere = find_file(None, size)
    if elsewhere is None:
        return download(out / "medmnist", size), True
    if not copy:
        return elsewhere, False
    target = out / "medmnist" / elsewhere.name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(elsewhere, partial)
    partial.replace(target)
    return target, True


def wbc5_from_bloodmnist(out: str | Path, size: int = 128, per_class: int = PREPARE["per_class"], seed: int = PREPARE["seed"],
                         npz: str | Path | None = None) -> tuple[Path, bool]:
    """``out/wbc5`` from BloodMNIST's five white-cell classes (all splits pooled), as PNG (lossless)."""
    out = Path(out).expanduser()
    npz = Path(npz) if npz else bloodmnist_file(out, size)[0]
    recipe = {"made_by": "bloodcells data prepare", "source": f"BloodMNIST {size}x{size} ({npz.name})",
              "per_class": per_class, "seed": seed, "crop": 1.0}

    def write(folder: Path) -> int:
        data = load_npz(npz, size=size)
        short = class_names()[0]
        groups = {}
        for split in SPLITS:
            for i, label in enumerate(data.labels[split]):
                groups.setdefault(short[label], []).append((split, i))
        chosen = _choose(groups, per_class, seed, str(npz))
        items = [(name, split, i) for name in WBC5_CLASSES for split, i in chosen[name]]
        for name in WBC5_CLASSES:
            (folder / name).mkdir()
        for name, split, i in tqdm(items, desc=f"wbc5 from {npz.name}", unit="img", mininterval=1):
            Image.fromarray(data.images[split][i]).save(folder / name / f"{split}_{i:05d}.png")
        return len(items)

    return _build(out / "wbc5", recipe, write)


def _pbc_members(source: Path) -> tuple[dict[str, list[str]], object]:
    """Image names per white-cell class in a PBC folder or zip, and a function reading one's bytes."""
    if source.is_dir():
        names = [str(p) for p in source.rglob("*")]
        read = lambda name: Path(name).read_bytes()  # noqa: E731
    elif zipfile.is_zipfile(source):
        archive = zipfile.ZipFile(source)
        names = archive.namelist()
        read = archive.read
    else:
        raise DataError(f"--from-pbc {source} is neither a folder nor a zip file; {PBC_SOURCE}")
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        path = Path(name)
        if (path.suffix.lower() in IMAGE_SUFFIXES and path.parent.name in WBC5_CLASSES
                and not any(is_hidden(part) for part in path.parts)):
            groups.setdefault(path.parent.name, []).append(name)
    if not groups:
        raise DataError(f"{source} holds no PBC class folders ({', '.join(WBC5_CLASSES)}); {PBC_SOURCE}")
    return groups, read


def wbc5_from_pbc(source: str | Path, out: str | Path, per_class: int = PREPARE["per_class"],
                  seed: int = PREPARE["seed"]) -> tuple[Path, bool]:
    """``out/wbc5`` from the PBC archive: the original JPGs, copied byte for byte (the lab crops them)."""
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if not source.exists():
        raise DataError(f"--from-pbc {source} does not exist; {PBC_SOURCE}")
    recipe = {"made_by": "bloodcells data prepare", "source": f"PBC ({source.name})",
              "per_class": per_class, "seed": seed, "crop": None}

    def write(folder: Path) -> int:
        groups, read = _pbc_members(source)
        chosen = _choose(groups, per_class, seed, str(source))
        items = [(name, member) for name in WBC5_CLASSES for member in chosen[name]]
        for name in WBC5_CLASSES:
            (folder / name).mkdir()
        for name, member in tqdm(items, desc=f"wbc5 from {source.name}", unit="img", mininterval=1):
            (folder / name / Path(member).name).write_bytes(read(member))
        return len(items)

    return _build(out / "wbc5", recipe, write)


def _bccd_labels(source: Path) -> dict[str, str]:
    """Image stem -> class, for BCCD images labelled with exactly one white-cell class."""
    found = sorted(source.rglob("labels.csv"))
    if not found:
        raise DataError(f"{source} has no labels.csv (BCCD's per-image white-cell labels); {BCCD_SOURCE}")
    import pandas as pd

    table = pd.read_csv(found[0]).dropna(subset=["Image", "Category"])
    labels = {}
    for image, category in zip(table["Image"], table["Category"]):
        name = str(category).strip().lower()
        if name in WBC5_CLASSES:  # "NEUTROPHIL, EOSINOPHIL" and the like are ambiguous: left out
            labels[f"BloodImage_{int(image):05d}"] = name
    return labels


def _wbc_box(annotation: Path) -> tuple[int, int, int, int] | None:
    """The single white-cell box of a VOC annotation, ``None`` when there is not exactly one."""
    boxes = []
    for obj in ET.parse(annotation).getroot().iter("object"):
        if (obj.findtext("name") or "").strip().upper() == "WBC":
            box = obj.find("bndbox")
            boxes.append(tuple(int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")))
    return boxes[0] if len(boxes) == 1 else None


def external_from_bccd(source: str | Path, out: str | Path, scale: float = BCCD_CROP_SCALE) -> tuple[Path, bool]:
    """``out/external/bccd/<class>/``: a square crop around each singly-labelled image's one white
    cell, ``scale`` times the box's longer side, clipped to the photo. For evaluation only."""
    source, out = Path(source).expanduser(), Path(out).expanduser()
    if not source.is_dir():
        raise DataError(f"--from-bccd {source} is not a folder; {BCCD_SOURCE}")
    recipe = {"made_by": "bloodcells data prepare", "source": f"BCCD ({source.name})", "scale": scale, "crop": 1.0}

    def write(folder: Path) -> int:
        labels = _bccd_labels(source)
        annotations = {p.stem: p for p in source.rglob("*.xml") if p.stem in labels}
        images = {p.stem: p for p in source.rglob("*.jpg") if p.stem in annotations}
        count = 0
        for stem in tqdm(sorted(images), desc="BCCD white-cell crops", unit="img", mininterval=1):
            box = _wbc_box(annotations[stem])
            if box is None:
                continue
            with Image.open(images[stem]) as photo:
                cx, cy, half = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, scale * max(box[2] - box[0], box[3] - box[1]) / 2
                crop = photo.convert("RGB").crop((max(0, round(cx - half)), max(0, round(cy - half)),
                                                  min(photo.width, round(cx + half)), min(photo.height, round(cy + half))))
            (folder / labels[stem]).mkdir(exist_ok=True)
            crop.save(folder / labels[stem] / f"{stem}.jpg", quality=95)
            count += 1
        if not count:
            raise DataError(f"{source}: no image had one labelled white cell with a box; {BCCD_SOURCE}")
        return count

    return _build(out / "external" / "bccd", recipe, write)


def prepare(out: str | Path, size: int = 128, from_pbc: str | Path | None = None,
            from_bccd: str | Path | None = None) -> list[tuple[Path, bool]]:
    """Everything both labs need under ``out`` (see the module's docstring): (path, built now) for
    each part. Lab 2's white cells are required; lab 1's file offline is a warning, not a failure."""
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    done = []
    try:
        done.append(bloodmnist_file(out, 28, copy=True))
    except DataUnavailable as exc:
        warnings.warn(f"lab 1's BloodMNIST was not fetched: {exc}", stacklevel=2)
    if from_pbc is not None:
        done.append(wbc5_from_pbc(from_pbc, out))
    else:
        try:
            done.append(wbc5_from_bloodmnist(out, size, npz=bloodmnist_file(out, size, copy=True)[0]))
        except DataUnavailable as exc:
            raise DataError(f"{exc}\nNothing to build lab 2's white cells from. Sources: BloodMNIST {size}x{size} "
                            f"({source_url(size)[0]}, put {file_name(size)} in {out / 'medmnist'}), or {PBC_SOURCE}") from exc
    if from_bccd is not None:
        done.append(external_from_bccd(from_bccd, out))
    return done
