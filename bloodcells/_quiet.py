"""Silence TensorFlow's C++ and oneDNN start-up chatter before anything imports it."""
import os


def quiet_tensorflow() -> None:
    """Set TF's log environment variables unless the user chose their own.

    They only take effect before ``import tensorflow``, which is why ``import bloodcells``
    does it first thing. oneDNN is disabled because its start-up banner and its
    non-deterministic float reordering would break the labs' reproducibility promise.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
