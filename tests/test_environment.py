"""The environment promises: no import-order crash, quiet TensorFlow, conda file in sync."""
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.mark.parametrize("first,second", [("tensorflow", "fastai.vision.all"), ("fastai.vision.all", "tensorflow")])
def test_tensorflow_and_fastai_import_in_either_order(first, second):
    """torch >= 2.12 segfaults here after tensorflow (tensorflow issue 124205); we pin 2.11."""
    done = _python(f"import bloodcells, {first}, {second}, torchvision; print('ok')")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


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
    assert "-e .[dev]" in pip  # dependencies come from pyproject.toml, never listed twice
    assert "bloodcells" in env["name"]
