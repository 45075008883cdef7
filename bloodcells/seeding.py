"""One call that seeds every random number generator the labs touch."""
import os
import random
import sys

import numpy as np


def seed_everything(seed: int, deterministic: bool = True) -> int:
    """Seed Python, NumPy, and TensorFlow/Keras and torch where they are already imported.

    Frameworks are seeded only if the caller has imported them, so a Keras notebook never
    pays for importing torch and the other way round. ``deterministic`` also asks both
    frameworks for deterministic kernels, so the same seed gives the same metrics on CPU.
    Returns the seed, so a notebook can log it.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    # Hash randomisation of the running interpreter is fixed at its start; this only reaches the
    # processes it starts (papermill kernels, sweep workers).
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    if "tensorflow" in sys.modules or "keras" in sys.modules:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        if deterministic:
            tf.config.experimental.enable_op_determinism()
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        if deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if "fastai" in sys.modules:
            from fastai.torch_core import set_seed

            set_seed(seed, reproducible=deterministic)
    return seed
