"""Autograder tests proven by mutation: each exercise's test cell accepts the model answer and
rejects plausible wrong answers a student might hand in."""
import io

import nbformat
import numpy as np
import pytest
from PIL import Image

from bloodcells.data.medmnist_recipe import official_steps
from bloodcells.data.synthetic import render_cell

from conftest import REPO


def _cell(notebook: str, grade_id: str) -> str:
    nb = nbformat.read(REPO / "notebooks" / f"{notebook}.ipynb", as_version=4)
    return next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _passes(test_source: str, namespace: dict) -> bool:
    try:
        exec(test_source, dict(namespace))
    except AssertionError:
        return False
    return True


def _recipe(photo, crop_offsets=round, filter=Image.Resampling.BILINEAR, quality=75, subsampling="4:2:0",
            jpeg=True, crop=True):
    image = Image.fromarray(photo)
    if crop:
        left, top = crop_offsets((image.width - 200) / 2), crop_offsets((image.height - 200) / 2)
        image = image.crop((left, top, left + 200, top + 200))
    small = image.resize((28, 28), filter)
    if not jpeg:
        return np.asarray(small)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return np.asarray(Image.open(buffer).convert("RGB"))


# 363x360 like a PBC photo: the odd margin makes rounding of the crop offsets matter.
PHOTO = np.ascontiguousarray(np.pad(render_cell("neutrophil", 360, np.random.default_rng(0)), ((1, 2), (0, 0), (0, 0)),
                                    mode="edge"))
WRONG_PIXELS = {
    "offsets truncated, not rounded": _recipe(PHOTO, crop_offsets=int),
    "Lanczos instead of bilinear": _recipe(PHOTO, filter=Image.Resampling.LANCZOS),
    "JPEG quality 95": _recipe(PHOTO, quality=95),
    "no chroma subsampling": _recipe(PHOTO, subsampling="4:4:4"),
    "no JPEG round trip": _recipe(PHOTO, jpeg=False),
    "whole photo, no crop": _recipe(PHOTO, crop=False),
    "scaled to [0, 1]": _recipe(PHOTO) / 255.0,
    "a single channel": _recipe(PHOTO)[..., 0],
}


def test_exercise_01_4_accepts_the_recipe():
    tests = _cell("01_explore_and_preprocess", "e01-4-tests")
    namespace = {"np": np, "steps": official_steps(PHOTO)}
    assert _passes(tests, {**namespace, "my_pixels": _recipe(PHOTO)})


@pytest.mark.parametrize("mistake", list(WRONG_PIXELS))
def test_exercise_01_4_rejects(mistake):
    tests = _cell("01_explore_and_preprocess", "e01-4-tests")
    assert not _passes(tests, {"np": np, "steps": official_steps(PHOTO), "my_pixels": WRONG_PIXELS[mistake]})


def test_exercise_01_4_model_answer_is_the_recipe():
    """The solution cell, run as written, gives the kit's recipe (so the answer key is right)."""
    solution = _cell("01_explore_and_preprocess", "e01-4-solution")
    namespace = {"np": np, "Image": Image, "io": io, "photo": PHOTO}
    exec(solution.replace("print(", "(lambda *a: None)("), namespace)
    assert np.array_equal(namespace["my_pixels"], official_steps(PHOTO)["jpeg"])
