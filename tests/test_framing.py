"""Framing found from the image: a cell's extent read from its stain, at any zoom, with no labels."""
import numpy as np
import pytest
from PIL import Image, ImageDraw

from bloodcells.config import MAX_CROP, ConfigError
from bloodcells.course import NOTEBOOKS
from bloodcells.data import framing
from bloodcells.data.folders import discover, read_rgb


def smear(diameter: int, side: int = 200) -> np.ndarray:
    """A purple-stained nucleus of ``diameter`` pixels amid pink red cells on a pale background."""
    image = Image.new("RGB", (side, side), (236, 220, 222))
    draw = ImageDraw.Draw(image)
    for x, y in ((20, 20), (170, 30), (30, 160), (165, 165)):
        draw.ellipse((x - 16, y - 16, x + 16, y + 16), fill=(220, 150, 160))
    c = side // 2
    draw.ellipse((c - diameter // 2, c - diameter // 2, c + diameter // 2, c + diameter // 2), fill=(90, 40, 140))
    return np.asarray(image)


@pytest.mark.parametrize("diameter", [40, 70, 110])
def test_the_extent_is_the_stained_cells_share_of_the_side(diameter):
    assert framing.cell_extent(smear(diameter)) == pytest.approx(diameter / 200, abs=0.03)


def test_no_cell_no_extent_and_the_framing_kept():
    blank = np.full((64, 64, 3), 230, np.uint8)
    assert framing.cell_extent(blank) is None
    assert framing.auto_crops([blank], target=0.5) == [1.0]
    assert framing.auto_crops([blank, smear(50)], target=0.5, per_image=True)[0] == 1.0
    assert framing.typical_extent([blank, blank]) is None


def test_auto_crops_give_the_cells_the_training_share_by_cropping_or_padding():
    # trained on cells filling 50% of the view: a 25% cell is cropped to 0.5, a 75% one padded to 1.5
    each = framing.auto_crops([smear(50), smear(150)], target=0.5, per_image=True)
    assert each == pytest.approx([0.5, 1.5], abs=0.06)
    # one crop for the set by default: its median cell gets the share, the two keep their size ratio
    one = framing.auto_crops([smear(50), smear(100), smear(150)], target=0.5)
    assert one == pytest.approx([1.0] * 3, abs=0.06) and len(set(one)) == 1
    assert framing.auto_crops([smear(4)], target=0.9) == [framing.CROP_RANGE[0]]  # never below the range


def test_read_rgb_pads_a_close_up_with_its_border_colour(tmp_path):
    path = tmp_path / "cell.png"
    Image.fromarray(smear(60, side=100)).save(path)
    padded = read_rgb(path, crop=2.0)
    assert padded.shape == (200, 200, 3)
    assert (padded[:40, :40] == (236, 220, 222)).all()         # the new border: the background's colour
    assert (padded[50:150, 50:150] == read_rgb(path)).all()    # the image itself, unscaled, in the middle
    with pytest.raises(ValueError, match=f"crop must lie in \\(0, {MAX_CROP}\\]"):
        read_rgb(path, crop=MAX_CROP + 0.5)


def test_reframed_copies_keep_their_classes(tmp_path):
    files = []
    for name, diameter in (("lymphocyte", 60), ("monocyte", 80)):
        path = tmp_path / "src" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(smear(diameter)).save(path)
        files.append(path)
    out = framing.write_reframed(files, [0, 1], ["lymphocyte", "monocyte"], 1.6, tmp_path / "wide")
    names, grouped, _ = discover(out, min_per_class=1)
    assert names == ["lymphocyte", "monocyte"]
    wide = read_rgb(grouped[0][0])
    assert wide.shape == (320, 320, 3) and framing.cell_extent(wide) == pytest.approx(60 / 320, abs=0.03)


def test_external_crop_takes_auto_or_a_number():
    param = NOTEBOOKS["03"].params["external_crop"]
    assert param.default == "auto"
    for good in ("auto", 0.8, 1, 2.0):
        param.check("external_crop", good)
    for bad in ("wide", 0.0, MAX_CROP + 1, True):
        with pytest.raises(ConfigError, match="external_crop"):
            param.check("external_crop", bad)


def test_real_cells_measure_the_same_at_every_zoom(real_data_dir):
    """PBC photos framed as other labs might: the set's crop times the zoom stays the same crop of
    the original photos (the lab's 0.55, near enough), so any framing of them is brought back."""
    photos = sorted((real_data_dir / "wbc5").glob("*/*.jpg"))[::125]  # 20 photos, every class
    target = framing.typical_extent(read_rgb(f, crop=0.55) for f in photos)
    # a crop c of an image at zoom z is a crop c * z of the photo
    back = {zoom: framing.auto_crops((read_rgb(f, crop=zoom) for f in photos), target)[0] * zoom
            for zoom in (0.7, 1.0, 1.6, 2.0)}
    assert back[1.0] == pytest.approx(0.55, abs=0.04)  # 20 photos: the median moves by a few pixels
    assert all(value == pytest.approx(back[1.0], abs=0.03) for value in back.values()), back
