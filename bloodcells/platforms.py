"""Where the notebooks run: Colab and Binder links, Colab's setup cell, and the device a lab uses.

The notebooks and the README hold these texts literally (a notebook on Colab runs before the kit
is installed); ``tests/test_platforms.py`` keeps them equal to what is here. A fork changes
:data:`REPOSITORY` and those copies with it.
"""
from __future__ import annotations

import platform

REPOSITORY = "bloodcells/bloodcells"  # GitHub owner/name the badges and the Colab install point at
BRANCH = "main"

COLAB_CELL = f'''# On Google Colab: install the kit; pip keeps Colab's own torch, TensorFlow and Jupyter where
# their versions are in the kit's ranges. Elsewhere this cell does nothing. Data comes below.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "bloodcells @ git+https://github.com/{REPOSITORY}@{BRANCH}"], check=True)'''


STUDENT_FOLDER = "notebooks/student"  # where students open the course: the student edition


def colab_badge(notebook: str) -> str:
    """Markdown for an "Open in Colab" badge of the student edition of ``notebook``."""
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/{STUDENT_FOLDER}/{notebook}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def binder_badge() -> str:
    """Markdown for a Binder badge that opens JupyterLab on the student edition."""
    url = f"https://mybinder.org/v2/gh/{REPOSITORY}/{BRANCH}?urlpath=lab/tree/{STUDENT_FOLDER}"
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({url})"


def torch_device() -> str:
    """What fastai trains lab 2 on: ``cuda`` (NVIDIA), ``mps`` (Apple) or ``cpu``, as fastai picks."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    return "mps" if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else "cpu"


def describe(framework: str) -> str:
    """One line: the device a lab runs on and the versions that matter (``"tensorflow"`` or ``"torch"``)."""
    python = f"Python {platform.python_version()}"
    if framework == "tensorflow":
        import keras
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        device = "GPU: " + ", ".join(g.name for g in gpus) if gpus else "CPU"
        return f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {python}; lab 1 runs on {device}"
    import fastai
    import torch

    device = torch_device()
    if device == "cuda":
        where = f"GPU ({torch.cuda.get_device_name()})"
    elif device == "mps":
        where = "Apple GPU (MPS)"
    else:
        where = f"CPU ({torch.get_num_threads()} threads)"
    return f"torch {torch.__version__}, fastai {fastai.__version__}, {python}; lab 2 runs on {where}"
