"""bloodcells: helpers for a notebook course on blood-cell image classification.

The package keeps the notebooks short: data loading and validation (:mod:`bloodcells.data`),
the two labs' models (:mod:`bloodcells.models`), metrics and plots, run folders and the
instructor command line (:mod:`bloodcells.labs`).
"""
from bloodcells._quiet import (let_tensorflow_and_torch_share_a_process, quiet_library_warnings, quiet_tensorflow,
                               silence_tensorflow_import)

quiet_library_warnings()
quiet_tensorflow()
silence_tensorflow_import()
let_tensorflow_and_torch_share_a_process()

__version__ = "0.1.0"
