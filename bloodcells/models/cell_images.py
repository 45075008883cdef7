"""Lab 2's images: how a white-cell file becomes what the network sees, and the fastai DataLoaders
over a class-folder split.

A file is decoded, centre-cropped to the run's framing and resized once per session (the cache);
each epoch then pays only for augmentation, which runs on whole batches.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import IndexSplitter, ItemGetter, Normalize
from fastai.vision.augment import aug_transforms
from fastai.vision.core import PILImage
from fastai.vision.data import ImageBlock

from bloodcells.config import ConfigError
from bloodcells.data.folders import FolderSplit, read_rgb
from bloodcells.models import robustness
from bloodcells.seeding import seed_everything

# Test images are stored in a run folder at the model's size, at most this (notebook 04's galleries).
VIEW_SIZE = 128


@lru_cache(maxsize=20_000)
def cell_pixels(path: str, size: int, crop: float) -> np.ndarray:
    """Decode, crop and resize each JPEG once per session: epochs then only pay for augmentation."""
    return read_rgb(path, size, crop)


class ReadCell:
    """fastai ``get_x``: an item ``[path, label]`` to its centre-cropped, square ``size`` image, or
    ``[pixels, label]`` already framed and sized (a plain class, so an exported learner pickles it).
    ``cell_extent``: the share of the view a training cell fills (``crop="auto"`` frames others so)."""

    def __init__(self, size: int, crop: float = 1.0, cell_extent: float | None = None):
        self.size, self.crop, self.cell_extent = size, crop, cell_extent

    def __call__(self, item) -> PILImage:
        if isinstance(item[0], np.ndarray):
            return PILImage.create(item[0])
        return PILImage.create(cell_pixels(str(item[0]), self.size, self.crop))


def view(files, size: int, crop: float) -> np.ndarray:
    """Images as a model of that size and framing sees them (before augmentation), at most
    :data:`VIEW_SIZE` pixels: what a run folder stores and galleries show."""
    return np.stack([read_rgb(f, min(size, VIEW_SIZE), crop) if size > VIEW_SIZE else cell_pixels(str(f), size, crop)
                     for f in files])


def augmentations(image_size: int) -> list:
    """The report's augmentation: any rotation, both flips, 75-100% crops, perspective warp 0.2,
    brightness/contrast 0.5, affine and lighting each applied with p=0.75 (on whole batches)."""
    return aug_transforms(size=image_size, max_rotate=180, do_flip=True, flip_vert=True, min_scale=0.75,
                          max_zoom=1.0, max_warp=0.2, max_lighting=0.5, p_affine=0.75, p_lighting=0.75)


def _items(files, labels, class_names) -> list[list[str]]:
    # Lists, not tuples: fastai transforms map over tuples element by element.
    return [[str(f), class_names[int(y)]] for f, y in zip(files, labels)]


def framing(options) -> float:
    """The options' crop, which :func:`bloodcells.models.transfer.frame` resolved for the data."""
    if options["crop"] is None:
        raise ConfigError("the crop is not resolved for this data: options = transfer.frame(options, split) first")
    return options["crop"]


def colour_reference(files, size: int, crop: float) -> tuple[list[float], list[float]]:
    """The training photos' average per-channel mean and spread, in [0, 1]: the colour that
    ``standardize_colour`` gives every image."""
    per_image = np.array([[(p := cell_pixels(str(f), size, crop).reshape(-1, 3) / 255).mean(0), p.std(0)]
                          for f in files])
    return per_image[:, 0].mean(0).tolist(), per_image[:, 1].mean(0).tolist()


def make_dataloaders(split: FolderSplit, options, stats=None, read: ReadCell | None = None):
    """fastai DataLoaders over the split's train and val files (the test split stays held out)."""
    keep = split.subset_indices("train", per_class=options["max_train_per_class"], seed=options["seed"])
    train_files, train_labels = [split.files["train"][i] for i in keep], split.labels["train"][keep]
    items = (_items(train_files, train_labels, split.class_names)
             + _items(split.files["val"], split.labels["val"], split.class_names))
    size, crop = options["image_size"], framing(options)
    reference = colour_reference(train_files, size, crop) if options["standardize_colour"] else None
    stains = (robustness.lab_statistics(cell_pixels(str(f), size, crop) for f in train_files)
              if options["lab_stain"] else None)
    read = read or ReadCell(size, crop)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(split.class_names))),
        get_x=read, get_y=ItemGetter(1),
        splitter=IndexSplitter(list(range(len(train_files), len(items)))),
        batch_tfms=[*augmentations(size), *robustness.transforms(options, reference, stains),
                    *([Normalize.from_stats(*stats)] if stats else [])],
    )
    seed_everything(options["seed"])
    # num_workers=0: the cache lives in this process, and the order is reproducible.
    return block.dataloaders(items, bs=options["batch_size"], num_workers=0)
