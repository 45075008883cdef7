"""How much of an image its white cell fills, read from the image alone (no labels).

A model learns cells at one size in its view. Another lab's images frame them their own way, so
:func:`auto_crops` crops (or pads, for close-ups) that lab's images until its median cell fills the
share of the view training cells filled. The cell is found by its stain: haematoxylin (nucleus, and a basophil's
granules) separated from the rest by colour deconvolution, thresholded per image (Otsu), closed so
a neutrophil's lobes join, and the stained region nearest the centre kept.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2hed
from skimage.filters import threshold_otsu

from bloodcells.config import MAX_CROP
from bloodcells.data.folders import read_rgb

WORK_SIZE = 96  # pixels per side for the estimate: enough for a nucleus, a few ms an image
CROP_RANGE = (0.2, MAX_CROP)  # the crops auto_crop may choose; above 1 read_rgb pads the image


def cell_extent(pixels: np.ndarray) -> float | None:
    """The share of a square image's side that its central white cell's stained region spans
    (its bounding box), or None where no stained region stands out (a blank or uniform image)."""
    image = Image.fromarray(np.asarray(pixels, np.uint8)).convert("RGB").resize((WORK_SIZE, WORK_SIZE),
                                                                               Image.Resampling.BILINEAR)
    stain = rgb2hed(np.asarray(image))[..., 0]
    if np.ptp(stain) < 1e-3:
        return None
    mask = ndimage.binary_closing(stain > threshold_otsu(stain), structure=np.ones((5, 5)), iterations=1)
    regions, count = ndimage.label(mask)
    if not count:
        return None
    ids = np.arange(1, count + 1)
    sizes = ndimage.sum(mask, regions, ids)
    centres = np.array(ndimage.center_of_mass(mask, regions, ids))
    distance = np.linalg.norm(centres - (WORK_SIZE - 1) / 2, axis=1) / WORK_SIZE
    best = ids[np.argmax(sizes / (1 + 4 * distance) ** 2)]  # large and central: the cell of interest
    rows, cols = np.nonzero(regions == best)
    return float(max(np.ptp(rows), np.ptp(cols)) + 1) / WORK_SIZE


def square(pixels: np.ndarray) -> np.ndarray:
    """The central square of an image (what every crop here is a fraction of)."""
    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return pixels[top:top + side, left:left + side]


def typical_extent(views) -> float | None:
    """The median share of the view a cell fills in training views (None where no cell is found)."""
    extents = [e for e in (cell_extent(square(np.asarray(v))) for v in views) if e is not None]
    return float(np.median(extents)) if extents else None


def auto_crops(images, target: float, per_image: bool = False) -> list[float]:
    """Crops, within :data:`CROP_RANGE`, for a set of images from one lab (any iterable: one image is
    read at a time) that make its cells fill ``target`` of the view. By default one crop for all,
    which gives the set's median cell that share: cells keep their sizes relative to each other (a
    lymphocyte stays smaller than a monocyte, a cue the model learnt). ``per_image`` frames each
    image on its own, for sets that mix zooms, and so gives every cell the same size. An image (or
    a set) with no stained cell found keeps its framing (1.0)."""
    extents = [cell_extent(square(np.asarray(i))) for i in images]
    if per_image:
        return [1.0 if e is None else float(np.clip(e / target, *CROP_RANGE)) for e in extents]
    found = [e for e in extents if e is not None]
    crop = float(np.clip(np.median(found) / target, *CROP_RANGE)) if found else 1.0
    return [crop] * len(extents)


def write_reframed(files, labels, class_names: list[str], zoom: float, folder) -> Path:
    """Copies of labelled images as a lab with another zoom would frame them (``zoom`` < 1: a
    close-up, the central share; > 1: a wider field, padded), in class folders under ``folder``."""
    folder = Path(folder)
    for file, label in zip(files, labels):
        target = folder / class_names[int(label)] / (Path(file).stem + ".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(read_rgb(file, crop=zoom)).save(target)
    return folder
