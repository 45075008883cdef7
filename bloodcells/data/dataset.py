"""The in-memory form every loader returns: uint8 images and integer labels per split."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def synthetic_title(name: str, synthetic: bool) -> str:
    """Every data title the kit shows says SYNTHETIC when the kit drew the images itself."""
    return f"{name} (SYNTHETIC)" if synthetic else name


@dataclass
class ImageDataset:
    """Images ``(N, H, W, 3) uint8`` and labels ``(N,) int64`` for each split.

    ``class_names`` are short names for tables and axes; ``long_names`` are the source's own
    (medmnist spells out e.g. the immature granulocyte subtypes). ``synthetic`` marks data the
    kit generated itself, so every title and summary made from it can say so.
    """

    name: str
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    class_names: list[str]
    long_names: list[str] = field(default_factory=list)
    synthetic: bool = False

    def __post_init__(self):
        if not self.long_names:
            self.long_names = list(self.class_names)

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self.images]

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.images[self.splits[0]].shape[1:]

    @property
    def title(self) -> str:
        """Dataset name for plot titles and summaries, flagged when synthetic."""
        return synthetic_title(self.name, self.synthetic)

    def class_counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns), with a total column."""
        counts = {
            split: np.bincount(self.labels[split], minlength=len(self.class_names))
            for split in self.splits
        }
        table = pd.DataFrame(counts, index=pd.Index(self.class_names, name="class"))
        table["total"] = table.sum(axis=1)
        return table

    def subset(self, split: str, max_samples: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A stratified random subset of one split (all of it when ``max_samples`` is None).

        Used for smoke runs: keeping every class represented keeps the metrics meaningful.
        """
        x, y = self.images[split], self.labels[split]
        if max_samples is None or max_samples >= len(y):
            return x, y
        if max_samples < len(self.class_names):
            raise ValueError(
                f"max_samples={max_samples} is smaller than the number of classes "
                f"({len(self.class_names)}); use at least {len(self.class_names)} or None for all"
            )
        from sklearn.model_selection import train_test_split

        idx, _ = train_test_split(
            np.arange(len(y)), train_size=max_samples, stratify=y, random_state=seed
        )
        idx = np.sort(idx)
        return x[idx], y[idx]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.labels[s])}" for s in self.splits)
        return (
            f"ImageDataset({self.title!r}, {len(self.class_names)} classes, "
            f"images {self.image_shape}, {sizes})"
        )
