"""The course website (`make site`): Sphinx with MyST-NB over the shipped student notebooks and these pages.

Sphinx with MyST-NB rather than Jupyter Book: Jupyter Book 1 pins a Sphinx older than the kit's lock
allows, and Jupyter Book 2 builds with Node, which a machine without internet may not have. The
notebooks are shown with their stored outputs (never executed here), and MathJax is served from the
site itself, so the build and the pages work offline.
"""
import shutil
from pathlib import Path

import jupyter_server_mathjax

project = "bloodcells"
author = "the bloodcells course"
extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the stored outputs of `make outputs` are the figures
nb_output_stderr = "remove"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "**/runs/**", "course/**/runs"]
html_theme = "sphinx_book_theme"
html_title = "bloodcells: blood-cell image classification"
html_theme_options = {"repository_url": "https://github.com/bloodcells/bloodcells", "use_repository_button": True,
                      "show_toc_level": 2}
html_static_path = []
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"  # MathJax 2, relative to _static: copied below
# MyST-NB marks notebook cells "tex2jax_ignore"; formulas sit in elements of class "math".
# The MathJax copy holds the STIX web font only.
mathjax2_config = {"tex2jax": {"processClass": "math|output_area|tex2jax_process", "ignoreClass": "tex2jax_ignore"},
                   "HTML-CSS": {"availableFonts": [], "webFont": "STIX-Web", "imageFont": None}}
MATHJAX = Path(jupyter_server_mathjax.__file__).parent / "static"


def _copy_mathjax(app, exception):
    if exception is None and app.builder.format == "html":
        shutil.copytree(MATHJAX, Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app):
    app.connect("build-finished", _copy_mathjax)
