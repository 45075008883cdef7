"""`bloodcells data prepare`: lab 2's white cells from a medmnist-layout file, the PBC archive and
BCCD's boxes; built once, never over a folder the kit did not make. Files are made here, never
downloaded."""
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from bloodcells import cli
from bloodcells.data import medmnist_io, prepare
from bloodcells.data.errors import DataError
from bloodcells.data.folders import WBC5_CLASSES, split_folder
from bloodcells.data.sources import wbc5_folder
from bloodcells.models import transfer

pytestmark = pytest.mark.filterwarnings("ignore:.*split sizes.*differ from medmnist")
WHITE_LABELS = {"basophil": 0, "eosinophil": 1, "lymphocyte": 4, "monocyte": 5, "neutrophil": 6}


def bloodmnist_like(path, size=64, per_label=14, seed=0):
    """A medmnist-layout npz with every one of the 8 labels; each image's top-left pixel holds its
    label and a serial number, so a built file can be traced to its source image."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(8), per_label)
    blocks = rng.integers(0, 255, (len(labels), 4, 4, 3), dtype=np.uint8)  # smooth: small PNGs, fast tests
    images = np.repeat(np.repeat(blocks, size // 4, axis=1), size // 4, axis=2)
    images[:, 0, 0, 0], images[:, 0, 0, 1] = labels, np.arange(len(labels)) % 256
    order = rng.permutation(len(labels))
    cuts = np.split(order, [len(order) // 2, 3 * len(order) // 4])
    arrays = {}
    for split, idx in zip(("train", "val", "test"), cuts):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[idx], labels[idx, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def test_white_cells_from_a_bloodmnist_file_are_lossless_seeded_and_not_cropped_again(tmp_path):
    npz = tmp_path / "src" / "bloodmnist_64.npz"
    arrays = bloodmnist_like(npz)
    folder, built = prepare.wbc5_from_bloodmnist(tmp_path / "a", 64, per_class=10, npz=npz)
    assert built and sorted(p.name for p in folder.iterdir() if p.is_dir()) == WBC5_CLASSES
    for name, label in WHITE_LABELS.items():
        files = sorted((folder / name).iterdir())
        assert len(files) == 10
        for f in files[:3]:  # the pixels are the source image's, and it is of this class
            split, index = f.stem.split("_")
            assert np.array_equal(np.asarray(Image.open(f)), arrays[f"{split}_images"][int(index)])
            assert arrays[f"{split}_labels"][int(index), 0] == label
    assert json.loads((folder / prepare.MANIFEST).read_text())["crop"] == 1.0
    split = split_folder(folder)
    assert split.crop == 1.0 and transfer.frame(transfer.options(), split)["crop"] == 1.0  # already framed

    again, _ = prepare.wbc5_from_bloodmnist(tmp_path / "b", 64, per_class=10, npz=npz)
    assert ([p.name for p in sorted(again.rglob("*.png"))] == [p.name for p in sorted(folder.rglob("*.png"))])
    other, _ = prepare.wbc5_from_bloodmnist(tmp_path / "c", 64, per_class=10, seed=7, npz=npz)
    assert ([p.name for p in sorted(other.rglob("*.png"))] != [p.name for p in sorted(folder.rglob("*.png"))])


def test_building_again_does_nothing_and_a_user_folder_is_never_overwritten(tmp_path):
    npz = tmp_path / "bloodmnist_64.npz"
    bloodmnist_like(npz)
    folder, _ = prepare.wbc5_from_bloodmnist(tmp_path, 64, per_class=10, npz=npz)
    stamp = (folder / "basophil").stat().st_mtime_ns
    assert prepare.wbc5_from_bloodmnist(tmp_path, 64, per_class=10, npz=npz) == (folder, False)
    assert (folder / "basophil").stat().st_mtime_ns == stamp

    mine = tmp_path / "mine"
    (mine / "wbc5" / "basophil").mkdir(parents=True)
    (mine / "wbc5" / "basophil" / "cell.jpg").write_bytes(b"my image")
    with pytest.raises(DataError, match="not made by `bloodcells data prepare`"):
        prepare.wbc5_from_bloodmnist(mine, 64, per_class=10, npz=npz)
    assert (mine / "wbc5" / "basophil" / "cell.jpg").read_bytes() == b"my image"
    assert not any(p.name.endswith(".partial") for p in mine.iterdir())


def test_too_few_images_of_a_class_names_it(tmp_path):
    npz = tmp_path / "bloodmnist_64.npz"
    bloodmnist_like(npz, per_label=4)
    with pytest.raises(DataError, match="4 basophil images, fewer than the 10"):
        prepare.wbc5_from_bloodmnist(tmp_path, 64, per_class=10, npz=npz)
    assert not (tmp_path / "wbc5").exists() and not (tmp_path / ".wbc5.partial").exists()


def _jpeg(colour, size=(36, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def test_white_cells_from_the_pbc_zip_copy_the_original_photos(tmp_path):
    files = {f"PBC_dataset_normal_DIB/{name}/{name[:3].upper()}_{i}.jpg": _jpeg((i * 20, 0, 0))
             for name in WBC5_CLASSES + ["erythroblast", "platelet"] for i in range(5)}
    files["__MACOSX/PBC_dataset_normal_DIB/basophil/._BA_0.jpg"] = b"resource fork"
    archive = tmp_path / "PBC.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    folder, built = prepare.wbc5_from_pbc(archive, tmp_path / "out", per_class=3)
    assert built and sorted(p.name for p in folder.iterdir() if p.is_dir()) == WBC5_CLASSES
    copies = sorted(folder.rglob("*.jpg"))
    assert len(copies) == 15 and not any(p.name.startswith("._") for p in copies)
    for copy in copies:
        assert copy.read_bytes() == files[f"PBC_dataset_normal_DIB/{copy.parent.name}/{copy.name}"]
    assert prepare.read_manifest(folder)["crop"] is None  # whole photos: the lab crops them to the cell


def _voc(boxes) -> str:
    objects = "".join(f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
                      f"<ymax>{d}</ymax></bndbox></object>" for n, (a, b, c, d) in boxes)
    return f"<annotation>{objects}</annotation>"


def test_bccd_crops_square_around_the_single_labelled_white_cell(tmp_path):
    src = tmp_path / "BCCD_Dataset"
    (src / "BCCD" / "Annotations").mkdir(parents=True)
    (src / "BCCD" / "JPEGImages").mkdir()
    cases = {0: ("NEUTROPHIL", [("WBC", (300, 200, 340, 250)), ("RBC", (0, 0, 40, 40))]),
             1: ("EOSINOPHIL", [("WBC", (600, 400, 640, 470))]),  # near the corner: clipped
             2: ("NEUTROPHIL, EOSINOPHIL", [("WBC", (100, 100, 150, 150))]),  # ambiguous label
             3: ("MONOCYTE", [("WBC", (100, 100, 150, 150)), ("WBC", (300, 300, 350, 350))])}  # two cells
    for i, (_, boxes) in cases.items():
        (src / "BCCD" / "Annotations" / f"BloodImage_{i:05d}.xml").write_text(_voc(boxes))
        Image.new("RGB", (640, 480), (200, 150, 150)).save(src / "BCCD" / "JPEGImages" / f"BloodImage_{i:05d}.jpg")
    (src / "dataset2-master").mkdir()
    (src / "dataset2-master" / "labels.csv").write_text(
        ",Image,Category\n" + "".join(f",{i},\"{c}\"\n" for i, (c, _) in cases.items()) + ",4,\n")
    folder, built = prepare.external_from_bccd(src, tmp_path / "out")
    crops = {p.relative_to(folder).as_posix(): Image.open(p).size for p in folder.rglob("*.jpg")}
    assert crops == {"neutrophil/BloodImage_00000.jpg": (110, 110),  # 2.2 x 50 around (320, 225)
                     "eosinophil/BloodImage_00001.jpg": (97, 122)}  # 2.2 x 70 around (620, 435), clipped
    assert folder == tmp_path / "out" / "external" / "bccd" and built


def test_offline_with_nothing_to_build_from_is_one_error_naming_the_sources(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(medmnist_io, "online", lambda url, timeout=3.0: False)
    monkeypatch.setattr(medmnist_io, "candidate_roots", lambda root=None: [tmp_path / "nowhere"] if root is None
                        else [root])
    with pytest.warns(UserWarning, match="lab 1's BloodMNIST was not fetched"):
        assert cli.main(["data", "prepare", "--out", str(tmp_path / "class")]) == 1
    err = capsys.readouterr().err
    assert "bloodmnist_128.npz" in err and "PBC" in err and "Mendeley" in err
    assert not (tmp_path / "class" / "wbc5").exists()

    with pytest.raises(DataError, match="bloodcells data prepare"):
        wbc5_folder("real", tmp_path / "class")


def test_the_lab_builds_its_white_cells_from_a_bloodmnist_file_beside_the_data(tmp_path, capsys):
    bloodmnist_like(tmp_path / "medmnist" / "bloodmnist_128.npz", size=128, per_label=3)
    with pytest.raises(DataError, match="fewer than the 500"):  # a real file has enough of each
        wbc5_folder("real", tmp_path)
    assert "building" in capsys.readouterr().out

    bloodmnist_like(tmp_path / "medmnist" / "bloodmnist_128.npz", size=128, per_label=500 + 5)
    folder = wbc5_folder("real", tmp_path)
    assert folder == tmp_path / "wbc5" and len(list(folder.rglob("*.png"))) == 2500
    assert wbc5_folder("real", tmp_path) == folder  # found, not built again
