import numpy as np
import pytest

from bloodcells.data import channel_stats, normalize_images, one_hot, prepare_split
from bloodcells.data.synthetic import make_bloodmnist_like, render_cells
from bloodcells.seeding import seed_everything


def test_normalize_and_one_hot():
    x = np.array([[[[0, 128, 255]]]], np.uint8)
    out = normalize_images(x)
    assert out.dtype == np.float32 and np.allclose(out, [0, 128 / 255, 1])
    assert one_hot([2, 0], 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    xs, ys = prepare_split(np.zeros((4, 28, 28, 3), np.uint8), np.array([0, 1, 2, 7]), 8)
    assert xs.shape == (4, 28, 28, 3) and ys.shape == (4, 8) and ys.sum() == 4


def test_preprocess_errors():
    with pytest.raises(TypeError, match="divided by 255 twice"):
        normalize_images(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="0..7"):
        one_hot([8], 8)


def test_channel_stats():
    x = np.zeros((2, 2, 2, 3), np.uint8)
    x[..., 0] = 255
    stats = channel_stats(x)
    assert stats.loc["R", "mean"] == 255 and stats.loc["G", "mean /255"] == 0


def test_synthetic_is_deterministic_and_seed_dependent():
    a = make_bloodmnist_like(seed=5, fraction=0.01)
    b = make_bloodmnist_like(seed=5, fraction=0.01)
    c = make_bloodmnist_like(seed=6, fraction=0.01)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train_images"], c["train_images"])


def test_synthetic_classes_differ_visibly():
    """Class means differ: size, nucleus and colour give each class its own look."""
    names = ["basophil", "eosinophil", "erythroblast", "immature granulocytes", "lymphocyte",
             "monocyte", "neutrophil", "platelet"]
    labels = np.repeat(np.arange(8), 30)
    x = render_cells(labels, names, 28, seed=0).astype(float)
    means = np.stack([x[labels == c].mean(0) for c in range(8)])
    gaps = [np.abs(means[i] - means[j]).mean() for i in range(8) for j in range(i + 1, 8)]
    assert min(gaps) > 3


def test_synthetic_proportions_follow_bloodmnist():
    a = make_bloodmnist_like(fraction=0.05)
    counts = np.bincount(a["train_labels"][:, 0], minlength=8)
    assert counts.argmax() == 6 and counts.argmin() in (0, 4)  # neutrophils most, basophils/lymphocytes least


def test_seed_everything_repeats_numpy_and_rejects_bad_seeds():
    seed_everything(3)
    a = np.random.rand(3)
    seed_everything(3)
    assert np.array_equal(a, np.random.rand(3))
    with pytest.raises(ValueError, match="non-negative integer"):
        seed_everything(-1)


def test_seed_everything_seeds_torch_and_fastai_when_imported():
    import fastai.torch_core  # noqa: F401  (makes seed_everything seed fastai as well)
    import torch

    seed_everything(11)
    a = torch.rand(3)
    seed_everything(11)
    assert torch.equal(a, torch.rand(3))
