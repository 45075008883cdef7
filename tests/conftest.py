"""Shared fixtures: small synthetic datasets written in the real layouts, and the real data
folder when BLOODCELLS_DATA_DIR points at one (CI sets it to ../shared/data)."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import bloodcells  # noqa: F401  (quiet TensorFlow for every test)
from bloodcells.data.synthetic import make_bloodmnist_like, write_class_folders

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_arrays():
    """2% of BloodMNIST's split sizes, synthetic, in medmnist's npz layout (about 340 images)."""
    return make_bloodmnist_like(size=28, seed=1, fraction=0.02)


@pytest.fixture()
def npz_factory(tmp_path, tiny_arrays):
    """Write a medmnist-layout npz with some arrays replaced or removed, return its folder."""
    def make(drop=(), **replace):
        arrays = {k: v for k, v in tiny_arrays.items() if k not in drop}
        arrays.update(replace)
        folder = tmp_path / "medmnist"
        folder.mkdir(exist_ok=True)
        np.savez(folder / "bloodmnist.npz", **arrays)
        return folder
    return make


@pytest.fixture(scope="session")
def wbc_folder(tmp_path_factory):
    return write_class_folders(tmp_path_factory.mktemp("wbc") / "wbc5",
                               ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"],
                               per_class=20, size=48, seed=3)


@pytest.fixture(scope="session")
def real_data_dir():
    value = os.environ.get("BLOODCELLS_DATA_DIR")
    if not value or not (Path(value) / "medmnist" / "bloodmnist.npz").is_file():
        pytest.skip("real data: set BLOODCELLS_DATA_DIR to a folder with medmnist/bloodmnist.npz")
    return Path(value)


@pytest.fixture(scope="session")
def make_run():
    """Build a :class:`bloodcells.runs.Run` from labels and probabilities (blank 8-pixel images
    unless given), as both labs' readers see one; ``folder`` writes it there too."""
    from bloodcells import runs

    def make(labels, probabilities, class_names, folder=None, metrics=None, images=None, **extra):
        labels = np.asarray(labels)
        images = np.zeros((len(labels), 8, 8, 3), np.uint8) if images is None else images
        run = runs.Run(probabilities, labels, class_names, images, metrics or {"model": "m", "dataset": "d"},
                       extra.pop("params", {}), extra.pop("history", {}), **extra)
        if folder is not None:
            Path(folder).mkdir(parents=True, exist_ok=True)
            runs.write(folder, run)
            run.folder = Path(folder)
        return run
    return make


#: The suite's one pass over the notebooks: quick mode on SYNTHETIC data (the README's main job),
#: made smaller still so every notebook runs in a few minutes in all.
# Lab 1 at batch 32: the improved CNN's batch-norm averages need about a hundred steps to settle.
COURSE_RUN = {"02": {"max_train_samples": 1000, "epochs": 3, "batch_size": 32},
              "03": {"max_train_per_class": 12, "image_size": 48, "batch_size": 8, "epochs_frozen": 3,
                     "lr_frozen": 3e-3, "epochs_unfrozen": 1, "tta": False, "lr_finder_steps": 5}}


@pytest.fixture(scope="session")
def course_settings():
    """What the suite's lab run sets per notebook on top of quick mode (the one-call runs compare with it)."""
    return COURSE_RUN


@pytest.fixture(scope="session")
def course_run(tmp_path_factory):
    """Every notebook executed once, in order, by the kit's runner (papermill), as an instructor's
    `bloodcells labs run` does; the tests that need executed notebooks read this one run."""
    from bloodcells import labs

    lab = labs.run(labs.select(None), {"quick": True, "data": "synthetic"}, tmp_path_factory.mktemp("course"),
                   log=lambda *a: None, per_notebook=COURSE_RUN)
    assert lab.ok, lab.failure
    return lab


@pytest.fixture(scope="session")
def chromium():
    """Start headless Chromium under selenium: ``chromium(profile_folder)`` returns a driver. Needs
    Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); without them the test
    is skipped, unless ``BLOODCELLS_REQUIRE_BROWSER=1`` (CI) makes that a failure."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        message = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("BLOODCELLS_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)

    def start(profile: Path):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--no-first-run", "--window-size=1400,1800", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        return webdriver.Chrome(options=options, service=Service(driver))
    return start


@pytest.fixture(scope="session")
def write_notebook():
    """``write_notebook(path, *sources)``: a notebook of code cells, the first tagged ``parameters``."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    def write(path, *sources):
        cells = [new_code_cell(src) for src in sources]
        cells[0].metadata["tags"] = ["parameters"]
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, path)
        return path
    return write


@pytest.fixture(scope="session")
def kernel_crash():
    """A cell that kills its own kernel when ``crash`` is true, as the out-of-memory killer does."""
    return "import os, signal\nif crash:\n    os.kill(os.getpid(), signal.SIGKILL)  # what the OOM killer does"
