"""Synthetic blood-smear images: the kit's embedded default, generated, never downloaded.

Each class differs from the others in ways a CNN can learn and a student can see: cell size,
nucleus shape and number of lobes, granules, and colour. Images are deterministic for a seed
and are written in the same layouts as the real data (a medmnist npz, class folders), so the
real loading code runs on them. Everything made from them is labelled SYNTHETIC.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bloodcells.data.locations import kit_data_dir

# BloodMNIST's class proportions (counts over its 17,092 images), so synthetic splits look real.
BLOODMNIST_CLASS_COUNTS = (1218, 3117, 1551, 2895, 1214, 1420, 3329, 2348)
BLOODMNIST_SPLIT_SIZES = {"train": 11959, "val": 1712, "test": 3421}


@dataclass(frozen=True)
class CellType:
    radius: float  # cytoplasm radius as a fraction of the image side
    cytoplasm: tuple[int, int, int]
    nucleus: tuple[int, int, int]
    lobes: tuple[int, int]  # (min, max) number of nucleus lobes; 0 = no nucleus
    nucleus_scale: float  # lobe radius relative to the cell radius
    granules: int
    granule_colour: tuple[int, int, int]
    kidney: bool = False  # a C-shaped nucleus (monocytes, immature granulocytes)


CELL_TYPES: dict[str, CellType] = {
    "basophil": CellType(0.30, (200, 170, 215), (90, 40, 120), (2, 2), 0.45, 70, (60, 20, 90)),
    "eosinophil": CellType(0.33, (240, 185, 160), (110, 50, 140), (2, 2), 0.38, 60, (215, 90, 60)),
    "erythroblast": CellType(0.21, (165, 160, 205), (55, 20, 75), (1, 1), 0.72, 0, (0, 0, 0)),
    "immature granulocytes": CellType(0.37, (215, 180, 205), (135, 85, 165), (1, 1), 0.62, 12, (150, 70, 140), kidney=True),
    "lymphocyte": CellType(0.23, (150, 185, 235), (75, 35, 115), (1, 1), 0.84, 0, (0, 0, 0)),
    "monocyte": CellType(0.39, (190, 190, 215), (120, 80, 160), (1, 1), 0.66, 4, (170, 130, 190), kidney=True),
    "neutrophil": CellType(0.31, (232, 202, 212), (95, 40, 125), (3, 5), 0.26, 25, (205, 160, 190)),
    "platelet": CellType(0.07, (160, 110, 190), (120, 70, 160), (0, 0), 0.0, 0, (0, 0, 0)),
}
BACKGROUND = np.array([236, 222, 212], dtype=np.float32)
RED_CELL = np.array([228, 170, 170], dtype=np.float32)


def _disc(yy, xx, cy, cx, r, soft):
    """Soft-edged disc mask in [0, 1] (soft edges keep small images from aliasing)."""
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    return 1.0 / (1.0 + np.exp(np.clip((d - r) / soft, -30, 30)))


def _paint(canvas, mask, colour, opacity=1.0):
    a = (mask * opacity)[..., None]
    canvas *= 1 - a
    canvas += a * colour


def render_cell(class_name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``(size, size, 3) uint8`` image of a cell of ``class_name``."""
    spec = CELL_TYPES[class_name]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    soft = 0.5 * size / 28
    canvas = np.empty((size, size, 3), np.float32)
    canvas[:] = BACKGROUND + rng.normal(0, 6, 3)

    for _ in range(rng.integers(1, 4)):  # red cells around the edges, as on a smear
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(0.42, 0.6) * size
        cy, cx = size / 2 + dist * np.sin(angle), size / 2 + dist * np.cos(angle)
        _paint(canvas, _disc(yy, xx, cy, cx, rng.uniform(0.16, 0.22) * size, soft), RED_CELL + rng.normal(0, 8, 3))

    jitter = lambda c, s=12: np.clip(np.array(c, np.float32) + rng.normal(0, s, 3), 0, 255)  # noqa: E731
    cy, cx = size / 2 + rng.normal(0, 0.03 * size, 2)
    radius = spec.radius * size * rng.uniform(0.88, 1.12)
    if class_name == "platelet":  # a small cluster of anucleate fragments
        for _ in range(rng.integers(2, 6)):
            py, px = cy + rng.normal(0, 0.09 * size), cx + rng.normal(0, 0.09 * size)
            _paint(canvas, _disc(yy, xx, py, px, radius * rng.uniform(0.6, 1.3), soft), jitter(spec.cytoplasm))
    else:
        _paint(canvas, _disc(yy, xx, cy, cx, radius, soft), jitter(spec.cytoplasm))
        _paint_nucleus(canvas, yy, xx, cy, cx, radius, spec, jitter(spec.nucleus, 8), soft, rng)
        for _ in range(spec.granules):
            r = radius * np.sqrt(rng.uniform(0, 0.85))
            a = rng.uniform(0, 2 * np.pi)
            dot = _disc(yy, xx, cy + r * np.sin(a), cx + r * np.cos(a), max(0.045 * radius, 0.35), soft * 0.6)
            _paint(canvas, dot, jitter(spec.granule_colour, 10), 0.8)

    canvas *= rng.uniform(0.92, 1.08)  # stain and illumination vary between slides
    canvas += rng.normal(0, 4, canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def _paint_nucleus(canvas, yy, xx, cy, cx, radius, spec, colour, soft, rng):
    n_lobes = rng.integers(spec.lobes[0], spec.lobes[1] + 1)
    lobe_r = spec.nucleus_scale * radius
    turn = rng.uniform(0, 2 * np.pi)
    if spec.kidney:  # a large disc with a bite taken out of one side
        mask = _disc(yy, xx, cy, cx, lobe_r, soft)
        bite = _disc(yy, xx, cy + 0.85 * lobe_r * np.sin(turn), cx + 0.85 * lobe_r * np.cos(turn), 0.55 * lobe_r, soft)
        _paint(canvas, mask * (1 - bite), colour)
        return
    if n_lobes == 1:
        _paint(canvas, _disc(yy, xx, cy, cx, lobe_r, soft), colour)
        return
    spread = 0.5 * radius  # lobes along an arc, like a segmented nucleus
    for k in range(n_lobes):
        a = turn + (k - (n_lobes - 1) / 2) * (2.4 / n_lobes)
        _paint(canvas, _disc(yy, xx, cy + spread * np.sin(a), cx + spread * np.cos(a), lobe_r, soft), colour)


def render_cells(labels: np.ndarray, class_names: list[str], size: int, seed: int) -> np.ndarray:
    """Images for the given label sequence, deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    unknown = sorted(set(class_names) - set(CELL_TYPES))
    if unknown:
        raise ValueError(f"no synthetic cell type for {unknown}; known: {sorted(CELL_TYPES)}")
    images = np.empty((len(labels), size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        images[i] = render_cell(class_names[label], size, rng)
    return images


def _labels_for(n: int, proportions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    counts = np.floor(proportions * n).astype(int)
    counts[np.argsort(-(proportions * n - counts))[: n - counts.sum()]] += 1
    labels = np.repeat(np.arange(len(counts)), counts)
    rng.shuffle(labels)
    return labels


def make_bloodmnist_like(size: int = 28, seed: int = 0, fraction: float = 1.0) -> dict[str, np.ndarray]:
    """Arrays in medmnist's npz layout: BloodMNIST's 8 classes, proportions and split sizes
    (times ``fraction``), plus a ``synthetic`` flag the loader reads."""
    from bloodcells.data.medmnist_io import class_names

    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    names, _ = class_names()
    proportions = np.array(BLOODMNIST_CLASS_COUNTS, float) / sum(BLOODMNIST_CLASS_COUNTS)
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {"synthetic": np.array(True)}
    for i, (split, n) in enumerate(BLOODMNIST_SPLIT_SIZES.items()):
        labels = _labels_for(max(len(names), round(n * fraction)), proportions, rng)
        arrays[f"{split}_images"] = render_cells(labels, names, size, seed * 1000 + i)
        arrays[f"{split}_labels"] = labels.astype(np.uint8)[:, None]
    return arrays


def write_bloodmnist_like(folder: str | Path, size: int = 28, seed: int = 0, fraction: float = 1.0) -> Path:
    """Write a synthetic ``bloodmnist[_size].npz`` into ``folder`` and return its path."""
    from bloodcells.data.medmnist_io import file_name

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_name(size)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")  # parallel lab runs may build the same cache
    np.savez_compressed(tmp, **make_bloodmnist_like(size, seed, fraction))
    tmp.replace(path)  # atomic: a half-written cache never looks complete
    return path


def write_class_folders(folder: str | Path, class_names: list[str], per_class: int, size: int = 96,
                        seed: int = 0) -> Path:
    """Write ``folder/<class>/<class>_NNNN.jpg`` images, the layout of the white-cell lab."""
    folder = Path(folder)
    for label, name in enumerate(class_names):
        out = folder / name
        out.mkdir(parents=True, exist_ok=True)
        images = render_cells(np.full(per_class, label), class_names, size, seed * 1000 + label)
        for i, image in enumerate(images):
            Image.fromarray(image).save(out / f"{name}_{i:04d}.jpg", quality=92)
    (folder / "SYNTHETIC.txt").write_text("Generated by bloodcells.data.synthetic; not real cells.\n")
    return folder


def synthetic_cache_dir(seed: int = 0, fraction: float = 1.0) -> Path:
    tag = f"seed{seed}" if fraction == 1 else f"seed{seed}_frac{fraction:g}"
    return kit_data_dir() / "synthetic" / tag


def load_synthetic_bloodmnist(size: int = 28, seed: int = 0, fraction: float = 1.0):
    """The embedded default: synthetic BloodMNIST, generated once then read from the cache
    through the same validating loader as the real file."""
    from bloodcells.data.medmnist_io import file_name, load_npz

    folder = synthetic_cache_dir(seed, fraction) / "medmnist"
    path = folder / file_name(size)
    if not path.is_file():
        write_bloodmnist_like(folder, size, seed, fraction)
    return load_npz(path, size=size)
