"""What must happen before anything imports TensorFlow: quiet logs, and no crash beside torch."""
import contextlib
import importlib.abc
import importlib.util
import os
import sys
import sysconfig
import warnings
from pathlib import Path

# TensorFlow's module that makes its libraries load with RTLD_GLOBAL; with torch >= 2.12 in the same
# process, those global symbols crash torchvision/fastai (segfault; tensorflow issue 124205).
# TensorFlow loads fine without it (its import is optional there), so the kit blocks it.
DLOPEN_FLAGS_MODULE = "tensorflow.python.pywrap_dlopen_global_flags"


def quiet_library_warnings() -> None:
    """Drop warnings about the libraries, not the student's code: fastai decorates helpers with
    ``torch.jit.script``, which torch >= 2.10 calls deprecated, in every notebook that imports it."""
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)


def quiet_tensorflow() -> None:
    """Set TF's log environment variables unless the user chose their own.

    They only take effect before ``import tensorflow``, which is why ``import bloodcells``
    does it first thing. oneDNN's kernels are left as TensorFlow sets them (on for x86 CPUs): on 2
    cores they train lab 1's improved CNN 1.7 times as fast as without, and a seed still repeats
    bit for bit on one machine (``tests/test_cnn.py`` checks that across processes).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@contextlib.contextmanager
def _stderr_file_descriptor_silenced():
    """Send what C++ code writes to file descriptor 2 to /dev/null (Python exceptions still propagate)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _SilentTensorflowImport(importlib.abc.MetaPathFinder):
    """While ``tensorflow`` is first imported, drop what its C++ side writes to stderr: absl's log lines
    come before TF_CPP_MIN_LOG_LEVEL applies (the GPU-capable build says "Could not find cuda
    drivers" on every machine without one, in every notebook that imports it)."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: from here on, the normal finders
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                with _stderr_file_descriptor_silenced():
                    load(module)

            spec.loader.exec_module = exec_module
        return spec


def silence_tensorflow_import() -> None:
    """Install the quiet import of TensorFlow, unless it is imported already."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _SilentTensorflowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _SilentTensorflowImport())


def let_tensorflow_and_torch_share_a_process() -> None:
    """Keep TensorFlow from loading its libraries globally, so torch can be imported before or after
    it. Too late once TensorFlow is imported: then say so, as torch may crash the kernel."""
    if "tensorflow" in sys.modules and sys.modules.get(DLOPEN_FLAGS_MODULE) is not None and "torch" not in sys.modules:
        warnings.warn("TensorFlow was imported before bloodcells: importing torch/fastai now may crash "
                      "the kernel. Restart it and run `import bloodcells` first.", stacklevel=3)
        return
    sys.modules.setdefault(DLOPEN_FLAGS_MODULE, None)


#: A ``.pth`` file runs its ``import`` line at every interpreter start in its environment, so the
#: guard holds even when a notebook imports TensorFlow before the kit (or never imports the kit).
STARTUP_GUARD = "bloodcells-tensorflow-torch-guard.pth"
_GUARD_LINE = (f"import os, sys; os.environ.get('BLOODCELLS_NO_STARTUP_GUARD') or "
               f"sys.modules.setdefault({DLOPEN_FLAGS_MODULE!r}, None)\n")


def install_startup_guard(site_packages: str | Path | None = None) -> Path:
    """Write the guard's ``.pth`` file into this environment's site-packages (``make install`` does)."""
    path = Path(site_packages or sysconfig.get_paths()["purelib"]) / STARTUP_GUARD
    path.write_text("# bloodcells: TensorFlow and torch in one process, in any import order\n" + _GUARD_LINE)
    return path
