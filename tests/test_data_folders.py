import numpy as np
import pytest
from PIL import Image

from bloodcells.data import DataError, split_folder
from bloodcells.data.folders import check_images, read_rgb


def test_stratified_70_15_15_split(wbc_folder):
    split = split_folder(wbc_folder, seed=42)
    assert split.class_names == ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
    assert {s: len(f) for s, f in split.files.items()} == {"train": 70, "val": 15, "test": 15}
    assert (split.class_counts()["test"] == 3).all()
    all_files = [f for files in split.files.values() for f in files]
    assert len(set(all_files)) == 100  # no image in two splits
    assert split.synthetic


def test_split_is_deterministic_and_seeded(wbc_folder):
    a, b, c = split_folder(wbc_folder, seed=42), split_folder(wbc_folder, seed=42), split_folder(wbc_folder, seed=7)
    assert a.files["test"] == b.files["test"] and a.files["test"] != c.files["test"]


def test_real_wbc5_split(real_data_dir):
    split = split_folder(real_data_dir / "wbc5")
    assert {s: len(f) for s, f in split.files.items()} == {"train": 1750, "val": 375, "test": 375}
    assert (split.class_counts()["test"] == 75).all() and not split.synthetic


def _make_set(root, counts):
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (i * 10, 0, 0)).save(root / name / f"{i}.png")
    return root


def test_grayscale_and_rgba_become_rgb(tmp_path):
    Image.new("L", (10, 12), 128).save(tmp_path / "g.png")
    Image.new("RGBA", (10, 12), (1, 2, 3, 4)).save(tmp_path / "a.png")
    assert read_rgb(tmp_path / "g.png").shape == (12, 10, 3)
    assert read_rgb(tmp_path / "a.png", size=16).shape == (16, 16, 3)


def test_non_image_files_are_reported_and_skipped(tmp_path):
    root = _make_set(tmp_path / "set", {"a": 8, "b": 8})
    (root / "a" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning, match=r"skipped 1 non-image files.*notes.txt"):
        split = split_folder(root, fractions=(0.6, 0.2, 0.2))
    assert sum(len(f) for f in split.files.values()) == 16


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist.*one sub-folder per class"):
        split_folder(tmp_path / "nope")


def test_no_class_folders(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        split_folder(tmp_path)


def test_empty_class(tmp_path):
    root = _make_set(tmp_path / "set", {"a": 10})
    (root / "b").mkdir()
    with pytest.raises(DataError, match=r"class folder .*b has no images"):
        split_folder(root)


def test_too_few_per_class(tmp_path):
    root = _make_set(tmp_path / "set", {"a": 10, "b": 2})
    with pytest.raises(DataError, match="'b' has 2 images, too few"):
        split_folder(root)


def test_unreadable_image(tmp_path):
    root = _make_set(tmp_path / "set", {"a": 8, "b": 8})
    (root / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    split = split_folder(root, fractions=(0.6, 0.2, 0.2))
    with pytest.raises(DataError, match="cannot read image .*broken.jpg"):
        read_rgb(root / "a" / "broken.jpg", 8)
    with pytest.raises(DataError, match=r"(?s)1 image file\(s\) cannot be read.*broken.jpg"):
        check_images([f for files in split.files.values() for f in files])


def test_centre_crop_keeps_the_middle(tmp_path):
    pixels = np.zeros((60, 100, 3), np.uint8)  # a wide photo, a red square in the middle
    pixels[15:45, 35:65] = (255, 0, 0)
    Image.fromarray(pixels).save(tmp_path / "cell.png")
    cropped = read_rgb(tmp_path / "cell.png", crop=0.5)
    assert cropped.shape == (30, 30, 3) and (cropped == (255, 0, 0)).all()
    assert read_rgb(tmp_path / "cell.png", size=16, crop=0.5).shape == (16, 16, 3)
    with pytest.raises(ValueError, match="crop"):
        read_rgb(tmp_path / "cell.png", crop=0)


def test_sixteen_bit_and_float_images_keep_their_contrast(tmp_path):
    from PIL import Image

    from bloodcells.data.folders import read_rgb

    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)  # 0 .. 63,000 of 65,535
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    pixels = read_rgb(tmp_path / "ramp16.png")
    assert pixels.shape == (8, 8, 3) and pixels.min() == 0 and 240 <= pixels.max() <= 246  # not all white
    assert (np.diff(pixels[..., 0].ravel().astype(int)) >= 0).all()
    Image.fromarray(ramp.astype(np.float32) / 7).save(tmp_path / "ramp.tif")
    assert read_rgb(tmp_path / "ramp.tif").max() == 255


def test_too_few_images_per_class_in_the_kits_words(tmp_path):
    from bloodcells.data.synthetic import write_class_folders

    folder = write_class_folders(tmp_path / "set", ["monocyte", "neutrophil"], per_class=12, size=32, seed=1)
    for extra in sorted((folder / "monocyte").glob("*.jpg"))[5:]:
        extra.unlink()
    with pytest.raises(DataError, match=r"class 'monocyte' has 5 images.*need at least 10"):
        split_folder(folder)


def test_a_named_data_dir_without_data_is_an_error_not_a_fallback(tmp_path):
    from bloodcells.data.sources import open_bloodmnist, wbc5_folder

    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(DataError, match="no white-cell class folder"):
        wbc5_folder("auto", empty)
    with pytest.raises(DataError):
        open_bloodmnist("auto", empty)


def test_twelve_bit_data_in_sixteen_bit_files_is_scaled_by_its_range(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 65)  # 0 .. 4,095: a 12-bit camera
    Image.fromarray(ramp).save(tmp_path / "ramp12.png")
    pixels = read_rgb(tmp_path / "ramp12.png")
    assert pixels.min() == 0 and pixels.max() >= 250  # /257 would give at most 15: near black


def _classes(root, *names, per_class=12):
    from bloodcells.data.synthetic import write_class_folders

    return write_class_folders(root, list(names), per_class=per_class, size=24, seed=2)


def test_a_symlinked_class_folder_is_refused_by_name(tmp_path):
    root = _classes(tmp_path / "set", "monocyte", "neutrophil")
    (root / "lymphocyte").symlink_to(root / "monocyte", target_is_directory=True)
    with pytest.raises(DataError, match=r"lymphocyte is a symbolic link.*does not follow links"):
        split_folder(root)


def test_nested_folders_inside_a_class_are_refused_by_name(tmp_path):
    root = _classes(tmp_path / "set", "monocyte", "neutrophil")
    (root / "monocyte" / "old").mkdir()
    (root / "monocyte" / "old" / "x.jpg").write_bytes((next((root / "neutrophil").glob("*.jpg"))).read_bytes())
    with pytest.raises(DataError, match=r"monocyte has sub-folders \(old\)"):
        split_folder(root)


def test_an_unreadable_class_folder_says_so(tmp_path, monkeypatch):
    import os

    from bloodcells.data import folders

    root = _classes(tmp_path / "set", "monocyte", "neutrophil")
    # CI runs as root, who reads any folder: ask the kit's access check what chmod 0 would answer.
    monkeypatch.setattr(folders.os, "access", lambda path, mode: os.path.basename(path) != "monocyte")
    with pytest.raises(DataError, match="no permission to read class folder"):
        split_folder(root)


def test_an_image_moved_after_listing_is_called_missing(tmp_path):
    with pytest.raises(DataError, match=r"is missing: moved, renamed or deleted"):
        read_rgb(tmp_path / "gone.jpg")


def test_data_dir_with_a_tilde_is_expanded(tmp_path, monkeypatch, tiny_arrays):
    from bloodcells.data.sources import open_bloodmnist

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "x" / "medmnist").mkdir(parents=True)
    np.savez(tmp_path / "x" / "medmnist" / "bloodmnist.npz", **{k: v for k, v in tiny_arrays.items() if k != "synthetic"})
    with pytest.warns(UserWarning, match="split sizes"):
        assert len(open_bloodmnist("real", "~/x").labels["test"]) == len(tiny_arrays["test_labels"])
