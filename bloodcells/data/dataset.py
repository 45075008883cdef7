"""The image-set types every loader returns: one base for what every set has (labels per split,
class names, a title that says SYNTHETIC, class counts, seeded subsets, one image by index), and
its two forms: pixels in memory (:class:`ImageDataset`) and files on disk (``FolderSplit``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def synthetic_title(name: str, synthetic: bool) -> str:
    """Every data title the kit shows says SYNTHETIC when the kit drew the images itself."""
    return f"{name} (SYNTHETIC)" if synthetic else name


class ImageSet:
    """What every image set has; subclasses hold ``labels``, ``class_names``, ``synthetic`` and a
    ``name``, and say how to get one image (:meth:`image`)."""

    labels: dict[str, np.ndarray]
    class_names: list[str]
    synthetic: bool
    name: str

    @property
    def splits(self) -> list[str]:
        return [s for s in SPLITS if s in self.labels]

    @property
    def title(self) -> str:
        """The set's name for plot titles, run folders and summaries, flagged when synthetic."""
        return synthetic_title(self.name, self.synthetic)

    def class_counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns), with a total column."""
        counts = {split: np.bincount(self.labels[split], minlength=len(self.class_names)) for split in self.splits}
        table = pd.DataFrame(counts, index=pd.Index(self.class_names, name="class"))
        table["total"] = table.sum(axis=1)
        return table

    def subset_indices(self, split: str, max_samples: int | None = None, per_class: int | None = None,
                       seed: int = 0) -> np.ndarray:
        """Sorted indices of a seeded subset of one split: stratified to ``max_samples`` in all, or at
        most ``per_class`` of each class; every index when neither is given. Smoke and class-time
        runs use them: keeping every class keeps the metrics meaningful."""
        y = self.labels[split]
        if per_class is not None:
            rng = np.random.default_rng(seed)
            return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class]
                                           for c in range(len(self.class_names))]))
        if max_samples is None or max_samples >= len(y):
            return np.arange(len(y))
        if max_samples < len(self.class_names):
            raise ValueError(f"max_samples={max_samples} is smaller than the number of classes "
                             f"({len(self.class_names)}); use at least {len(self.class_names)} or None for all")
        from sklearn.model_selection import train_test_split

        idx, _ = train_test_split(np.arange(len(y)), train_size=max_samples, stratify=y, random_state=seed)
        return np.sort(idx)

    def image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
        """One image as ``(H, W, 3) uint8`` (``size`` square where the set reads files)."""
        raise NotImplementedError

    def image_name(self, split: str, index: int) -> str | None:
        """Where one image came from (a file), when the set knows."""
        return None


@dataclass
class ImageDataset(ImageSet):
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
    image_names: dict[str, list[str]] | None = None  # where each image came from, when known

    def __post_init__(self):
        if not self.long_names:
            self.long_names = list(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return self.images[self.splits[0]].shape[1:]

    def image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
        return self.images[split][index]

    def image_name(self, split: str, index: int) -> str | None:
        return self.image_names[split][index] if self.image_names and split in self.image_names else None

    def subset(self, split: str, max_samples: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of a stratified random subset of one split (all of it, uncopied, for None)."""
        if max_samples is None or max_samples >= len(self.labels[split]):
            return self.images[split], self.labels[split]
        idx = self.subset_indices(split, max_samples, seed=seed)
        return self.images[split][idx], self.labels[split][idx]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(self.labels[s])}" for s in self.splits)
        return (
            f"ImageDataset({self.title!r}, {len(self.class_names)} classes, "
            f"images {self.image_shape}, {sizes})"
        )
