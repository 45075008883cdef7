"""Colab, Binder and devices: the notebooks' badges and setup cell, the install that keeps a
platform's own builds, and the line that says what a lab runs on."""
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import Requirement

from bloodcells import platforms

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_opens_with_its_badges_and_the_colab_cell(path):
    nb = nbformat.read(path, as_version=4)
    assert platforms.colab_badge(path.name) in nb.cells[0].source
    assert platforms.binder_badge() in nb.cells[0].source
    assert nb.cells[1].source == platforms.COLAB_CELL  # before anything imports the kit


def test_readme_links_every_notebook_to_colab_and_binder():
    readme = (REPO / "README.md").read_text()
    for path in NOTEBOOKS:
        assert platforms.colab_badge(path.name) in readme
    assert platforms.binder_badge() in readme


def _run_colab_cell(monkeypatch, on_colab: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", object())
    exec(platforms.COLAB_CELL, {})
    return calls


def test_the_colab_cell_installs_the_kit_only_on_colab(monkeypatch):
    assert _run_colab_cell(monkeypatch, on_colab=False) == []
    [(cmd, kw)] = _run_colab_cell(monkeypatch, on_colab=True)
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"] and kw == {"check": True}
    assert cmd[-1] == f"bloodcells @ git+https://github.com/{platforms.REPOSITORY}@{platforms.BRANCH}"
    # no --upgrade, no --force-reinstall: what Colab has stays where the kit's ranges allow it
    assert not any(arg.startswith(("-U", "--upgrade", "--force")) for arg in cmd)


def test_the_kit_s_ranges_keep_a_platform_s_own_builds():
    """Colab-style builds (CUDA-tagged torch, TensorFlow with GPU support) satisfy the base ranges,
    so pip keeps them; JupyterLab is not a base requirement (Colab and VS Code bring their own)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    for name, version in {"torch": "2.9.0+cu126", "torchvision": "0.24.0+cu126", "tensorflow": "2.20.0",
                          "keras": "3.10.0", "ipykernel": "6.29.5", "ipywidgets": "8.1.8"}.items():
        assert base[name].specifier.contains(version), (name, version, str(base[name].specifier))
    assert not base["ipywidgets"].specifier.contains("8.1.9")  # renders nothing in VS Code
    assert not {"jupyterlab", "notebook", "tensorflow-cpu"} & set(base)
    assert set(project["optional-dependencies"]) >= {"lab", "instructor", "cluster", "gpu", "dev"}


def test_each_lab_says_what_it_runs_on():
    assert "lab 1 runs on " in platforms.describe("tensorflow")
    line = platforms.describe("torch")
    assert "lab 2 runs on " in line and platforms.torch_device() in ("cpu", "cuda", "mps")
    if platforms.torch_device() == "cpu":
        assert "CPU (" in line
