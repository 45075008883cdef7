"""Lab 1's classical baseline features: exact counts, exact block means, and enough to learn from."""
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from bloodcells.models import classical


def test_histograms_are_each_images_share_of_pixels_per_channel_bin():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1500, 28, 28, 3), dtype=np.uint8)  # more than one chunk of 1,024
    shares = classical.colour_histograms(images, bins=16)
    expected = np.stack([np.concatenate([np.histogram(im[..., c], bins=16, range=(0, 256))[0] for c in range(3)])
                         for im in images]) / 784
    assert shares.shape == (1500, 48) and np.array_equal(shares, expected)
    assert np.allclose(shares.reshape(1500, 3, 16).sum(axis=2), 1.0)


def test_coarse_pixels_are_block_means():
    image = np.zeros((1, 28, 28, 3), np.uint8)
    image[0, :4, :4, 0] = 255                      # the top-left block is pure red
    coarse = classical.coarse_pixels(image).reshape(7, 7, 3)
    assert coarse[0, 0].tolist() == [1.0, 0.0, 0.0] and coarse.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="does not divide"):
        classical.coarse_pixels(np.zeros((1, 30, 30, 3), np.uint8))


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="uint8"):
        classical.features(np.zeros((2, 28, 28, 3), np.float32))
    with pytest.raises(ValueError, match="RGB"):
        classical.colour_histograms(np.zeros((2, 28, 28), np.uint8))


def test_an_svm_learns_the_synthetic_classes_from_them(tiny_arrays):
    x, y = tiny_arrays["train_images"], tiny_arrays["train_labels"].ravel()
    model = make_pipeline(StandardScaler(), SVC()).fit(classical.features(x), y)
    accuracy = (model.predict(classical.features(tiny_arrays["test_images"])) == tiny_arrays["test_labels"].ravel()).mean()
    assert accuracy > 0.5  # eight classes: chance is 12.5%
