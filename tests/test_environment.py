"""The environment promises: no import-order crash, quiet TensorFlow, the locked versions, conda and
Binder files in sync."""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # starts Python processes that import TensorFlow and torch

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO, env=env)


ORDERS = ["tensorflow, fastai.vision.all", "fastai.vision.all, tensorflow", "tensorflow, bloodcells, fastai.vision.all",
          "bloodcells, tensorflow, fastai.vision.all", "fastai.vision.all, bloodcells, tensorflow"]


@pytest.mark.parametrize("order", ORDERS)
def test_tensorflow_and_fastai_share_a_process_in_any_order(order):
    """Without the guard, torch >= 2.12 segfaults when imported after TensorFlow (tensorflow issue
    124205); the locked torch is such a release, so this proves the guard, not a pin. `make install`
    puts the guard in a .pth file, so it holds from interpreter start, with or without the kit."""
    code = (f"import {order}, torchvision, torch, keras; "
            "print(torch.__version__, float(torch.ones(3).sum()), float(keras.ops.sum(keras.ops.ones(3))))")
    done = _python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    version, torch_sum, keras_sum = done.stdout.split()
    assert (torch_sum, keras_sum) == ("3.0", "3.0")
    assert tuple(int(p) for p in version.split("+")[0].split(".")[:2]) >= (2, 12), "the guard is only tested with torch >= 2.12"


def test_the_startup_guard_is_what_keeps_tensorflow_first_alive():
    """With the .pth guard switched off, TensorFlow first then fastai crashes, and importing the kit
    after TensorFlow says so; the guard file installs where site-packages are."""
    from bloodcells._quiet import STARTUP_GUARD

    off = {**os.environ, "BLOODCELLS_NO_STARTUP_GUARD": "1"}
    crash = _python("import tensorflow, fastai.vision.all", env=off)
    assert crash.returncode != 0
    warned = _python("import warnings, tensorflow; warnings.simplefilter('error'); import bloodcells", env=off)
    assert warned.returncode != 0 and "import bloodcells` first" in warned.stderr
    import site

    assert any((Path(d) / STARTUP_GUARD).is_file() for d in site.getsitepackages()), "run `make install`"


def test_install_startup_guard_writes_one_import_line(tmp_path):
    from bloodcells._quiet import DLOPEN_FLAGS_MODULE, install_startup_guard

    path = install_startup_guard(tmp_path)
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("import ") and DLOPEN_FLAGS_MODULE in lines[0]


def test_installed_versions_are_the_lock_file_s():
    """`make install` passes constraints.txt to pip: what is installed is what CI tested."""
    from importlib.metadata import PackageNotFoundError, version

    pinned = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert {"torch", "tensorflow", "keras", "fastai", "ipywidgets"} <= set(pinned)
    different = {}
    for name in ("torch", "torchvision", "tensorflow", "keras", "fastai", "timm", "numpy", "pandas", "ipywidgets"):
        try:
            if version(name) != pinned[name]:
                different[name] = (version(name), pinned[name])
        except PackageNotFoundError:
            different[name] = (None, pinned[name])
    assert not different, f"installed vs locked: {different}; run `make install` (or `make lock` after a range change)"


def test_tensorflow_is_silent():
    done = _python("import bloodcells, tensorflow as tf; tf.constant(1.0) + 1; print('ok')")
    assert done.returncode == 0 and done.stdout.strip() == "ok"
    assert done.stderr.strip() == "", done.stderr


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    major_minor = tuple(int(p) for p in python.split("=")[1].split("."))
    low, high = project["requires-python"].replace(">=", "").split(",<")
    assert tuple(map(int, low.split("."))) <= major_minor < tuple(map(int, high.split(".")))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-c constraints.txt", "-e .[lab]"]  # dependencies come from pyproject.toml, never listed twice
    assert "bloodcells" in env["name"]


def test_binder_installs_the_locked_kit_with_jupyterlab():
    assert (REPO / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = (REPO / "binder" / "postBuild").read_text()
    assert "-c constraints.txt -e '.[lab]'" in post_build and "set -euo pipefail" in post_build
