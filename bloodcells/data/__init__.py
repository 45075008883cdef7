"""Data loading for both labs: BloodMNIST (medmnist layout), class folders, and the
synthetic embedded default, plus the preprocessing lab 1 teaches."""
from bloodcells.data.dataset import SPLITS, ImageDataset
from bloodcells.data.errors import DataError
from bloodcells.data.folders import WBC5_CLASSES, split_folder
from bloodcells.data.medmnist_io import DataUnavailable, load_bloodmnist, load_npz
from bloodcells.data.preprocess import channel_stats, normalize_images, one_hot, prepare_split
from bloodcells.data.sources import open_bloodmnist
from bloodcells.data.synthetic import load_synthetic_bloodmnist

__all__ = [
    "SPLITS", "ImageDataset", "DataError", "DataUnavailable", "WBC5_CLASSES",
    "split_folder", "load_bloodmnist", "load_npz", "channel_stats", "normalize_images", "one_hot", "prepare_split",
    "open_bloodmnist", "load_synthetic_bloodmnist",
]
