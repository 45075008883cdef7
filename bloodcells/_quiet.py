"""What must happen before anything imports TensorFlow: quiet logs, and no crash beside torch."""
import os
import sys
import warnings

# TensorFlow's module that makes its libraries load with RTLD_GLOBAL; with torch >= 2.12 in the same
# process, those global symbols crash torchvision/fastai (segfault; tensorflow issue 124205).
# TensorFlow loads fine without it (its import is optional there), so the kit blocks it.
DLOPEN_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"


def quiet_tensorflow() -> None:
    """Set TF's log environment variables unless the user chose their own.

    They only take effect before ``import tensorflow``, which is why ``import bloodcells``
    does it first thing. oneDNN is disabled because its start-up banner and its
    non-deterministic float reordering would break the labs' reproducibility promise.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def let_tensorflow_and_torch_share_a_process() -> None:
    """Keep TensorFlow from loading its libraries globally, so torch can be imported before or after
    it. Too late once TensorFlow is imported: then say so, as torch may crash the kernel."""
    if "tensorflow" in sys.modules and sys.modules.get(DLOPEN_FLAGS_MODULE) is not None and "torch" not in sys.modules:
        warnings.warn("TensorFlow was imported before bloodcells: importing torch/fastai now may crash "
                      "the kernel. Restart it and run `import bloodcells` first.", stacklevel=3)
        return
    sys.modules.setdefault(DLOPEN_FLAGS_MODULE, None)
