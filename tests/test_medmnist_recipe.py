"""BloodMNIST's pixel recipe: each stage does what medmnist did, and on real photos the result is
the downloaded file's pixels to within libjpeg's rounding."""
import random

import numpy as np
from PIL import Image

from bloodcells.data.folders import read_rgb
from bloodcells.data.medmnist_recipe import centre_crop, jpeg_round_trip, official_pixels, official_steps


def _chroma_detail(rgb: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels of the Cb and Cr channels."""
    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float64)[..., 1:]
    return float(np.abs(np.diff(ycc, axis=0)).mean() + np.abs(np.diff(ycc, axis=1)).mean())


def test_centre_crop_rounds_as_torchvision():
    image = Image.fromarray(np.arange(363 * 360 * 3, dtype=np.uint32).astype(np.uint8).reshape(363, 360, 3))
    crop = centre_crop(image)
    assert crop.size == (200, 200)
    # torchvision: top = int(round((363 - 200) / 2)) = round(81.5) = 82, left = 80
    assert np.array_equal(np.asarray(crop), np.asarray(image)[82:282, 80:280])
    assert centre_crop(Image.new("RGB", (150, 120))).size == (120, 120)  # smaller photos: their shorter side


def test_jpeg_step_smears_colour_and_keeps_shape():
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    after = np.asarray(jpeg_round_trip(Image.fromarray(noisy)))
    assert after.shape == noisy.shape and after.dtype == np.uint8
    assert _chroma_detail(after) < 0.5 * _chroma_detail(noisy)  # 4:2:0 halves the colour resolution
    steps = official_steps(noisy.repeat(8, 0).repeat(8, 1))
    assert list(steps) == ["photo", "crop", "resized", "jpeg"] and steps["jpeg"].shape == (28, 28, 3)
    assert not np.array_equal(steps["resized"], steps["jpeg"])


def test_real_photos_give_the_downloaded_pixels(real_data_dir):
    """Each photo's pixels made here are nearest to one BloodMNIST image, within a few grey levels on
    average (the official files were made with IJG libjpeg 9, Pillow uses libjpeg-turbo), and nearer
    than the Lanczos copy without the JPEG step that the kit used to make."""
    with np.load(real_data_dir / "medmnist" / "bloodmnist.npz") as arrays:
        official = np.concatenate([arrays[f"{s}_images"] for s in ("train", "val", "test")])
    official = official.reshape(len(official), -1).astype(np.int16)
    photos = sorted((real_data_dir / "wbc5").rglob("*.jpg"))
    for path in random.Random(0).sample(photos, 6):
        ours = official_pixels(read_rgb(path)).reshape(-1).astype(np.int16)
        distance = np.abs(official - ours).mean(axis=1)
        nearest = distance.argmin()
        assert distance[nearest] < 3.5, (path.name, distance[nearest])
        assert np.sort(distance)[1] > 4 * distance[nearest]  # one image matches, not any cell
        lanczos = read_rgb(path, 28, 200 / 360).reshape(-1).astype(np.int16)
        assert np.abs(official[nearest] - lanczos).mean() > distance[nearest], path.name
