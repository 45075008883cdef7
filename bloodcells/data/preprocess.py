"""The preprocessing lab 1 teaches: scale pixels to [0, 1] and one-hot encode labels."""
from __future__ import annotations

import numpy as np
import pandas as pd


def check_pixels(images: np.ndarray) -> np.ndarray:
    """``images`` as a uint8 array, or a TypeError that says why scaling them would go wrong."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(
            f"expected uint8 pixels (0-255), got {images.dtype}; "
            "pass the images as loaded, before any scaling, so they are not divided by 255 twice"
        )
    return images


def normalize_images(images: np.ndarray) -> np.ndarray:
    """uint8 pixels / 255 as float32, the Keras lab's input format."""
    return check_pixels(images).astype(np.float32) / 255.0


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Integer labels to a float32 ``(N, n_classes)`` one-hot matrix."""
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1}, found {labels.min()}..{labels.max()}; "
            "check n_classes matches the dataset's class list"
        )
    return np.eye(n_classes, dtype=np.float32)[labels]


def prepare_split(images: np.ndarray, labels: np.ndarray, n_classes: int):
    """Both steps at once: ``(x float32 in [0, 1], y one-hot)``."""
    return normalize_images(images), one_hot(labels, n_classes)


def channel_stats(images: np.ndarray) -> pd.DataFrame:
    """Mean and standard deviation of each RGB channel, on the 0-255 and the /255 scale."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return pd.DataFrame({"mean": x.mean(0), "std": x.std(0), "mean /255": x.mean(0) / 255,
                         "std /255": x.std(0) / 255}, index=pd.Index(["R", "G", "B"], name="channel"))
