"""The course's notebooks in one registry: each one's parameters (what papermill may set and the
lab runner checks), whose run folders it reads, and how ``labs publish`` runs it.

Each notebook's ``parameters`` cell is written from here (``bloodcells labs params``; papermill
needs literals in the notebook, and a test fails when a cell and its declaration differ), and a
notebook hands its training parameters on with one call, :func:`given`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from bloodcells.config import ADAPTATIONS, LAB1, LAB2, MAX_CROP, Lab, Param


@dataclass(frozen=True)
class Notebook:
    """One notebook of the course, by its number (``"02"``)."""
    params: dict[str, Param]
    lab: Lab | None = None  # the lab whose training options it takes
    reads_runs_of: tuple[str, ...] = ()  # skipped when one of these failed in the same lab run
    publish: dict = field(default_factory=dict)  # settings `labs publish` adds to quick mode


def _from_recipe(lab: Lab, *leave_out: str) -> dict[str, Param]:
    """A lab's training options as notebook parameters: default ``None``, "the recipe decides"."""
    return {name: replace(p, default=None, optional=True) for name, p in lab.params.items() if name not in leave_out}


_DATA = {
    "data": Param("auto", str, "'auto': real data if found, else SYNTHETIC; 'real'; 'synthetic'",
                  choices=("auto", "real", "synthetic")),
    "data_dir": Param(None, str, "folder holding the data (default: $BLOODCELLS_DATA_DIR, then data/)",
                      optional=True, path=True),
}
_OUTPUT = {"output_dir": Param("runs", str, "run folders are created in here", path=True)}
_QUICK = {"quick": Param(False, bool, "quick mode: the lab's class-time recipe")}

NOTEBOOKS: dict[str, Notebook] = {
    "01": Notebook({**_DATA, "image_size": Param(28, int, "medmnist's sizes", choices=(28, 64, 128, 224)),
                    "seed": Param(0, int, "random seed of the montage", low=0),
                    "examples_per_class": Param(8, int, "images per class in the montage", low=1, high=32)}),
    # Lab 1 is published at full length: quick mode's CNNs are far from the report's 91.61%.
    "02": Notebook({**_DATA, "image_size": Param(28, int, "medmnist's sizes", choices=(28, 64, 128)),
                    **_from_recipe(LAB1, "model", "seed"),
                    "seed": Param(0, int, "random seed of the weights, augmentation and batch order", low=0),
                    **_OUTPUT, **_QUICK}, lab=LAB1, publish={"quick": False}),
    "03": Notebook({**_DATA, "recipe": Param("auto", str, "'cpu': EfficientNet-Lite0 at 128 px; 'report': the report's "
                                             "ResNet18 at 224 px (a GPU's); 'auto': 'report' on a CUDA GPU, else 'cpu'",
                                             choices=("auto", "cpu", "report")),
                    **_from_recipe(LAB2, "seed"), "seed": LAB2.params["seed"],
                    "lr_finder_steps": Param(100, int, "steps of the learning-rate finder (0 skips it)", low=0, high=1000),
                    "external_dir": Param("auto", str, "another lab's class folders; 'auto': external/bccd beside the "
                                          "data if there (a SYNTHETIC stand-in on SYNTHETIC data)", optional=True, path=True),
                    "external_class_map": Param(None, dict, "{their folder: our class}; None: match names, any case",
                                                optional=True),
                    "external_crop": Param("auto", (float, str), "framing of the external images: 'auto' crops "
                                           "(or pads) the set so its median cell fills the view as in training; "
                                           "a number: that centre crop (1.0: as given)", choices=("auto",), low=0.1, high=MAX_CROP),
                    "external_adapt": Param(None, str, "adapt a copy of the model to the external lab first, with its "
                                            "images and never its labels: 'adabn', 'tent' or 'self_training'; None: as trained",
                                            optional=True, choices=ADAPTATIONS),
                    "external_unlabelled": Param(None, str, "a folder of that lab's unlabelled images to adapt with (any "
                                                 "layout); None: the scored images' own pixels", optional=True, path=True),
                    **_OUTPUT, **_QUICK}, lab=LAB2),
    "04": Notebook({"run_dirs": Param(None, list, "run folders to analyse; None: the newest of each model under runs_root",
                                      optional=True, path=True),
                    "runs_root": Param("runs", str, "where notebooks 02 and 03 wrote their runs (a lab run: its own)",
                                       path=True),
                    "gallery_size": Param(16, int, "mistakes shown per run", low=1, high=100),
                    "calibration_bins": Param(10, int, "bins of the reliability diagram", low=2, high=50),
                    **_OUTPUT}, reads_runs_of=("02", "03")),
}


def given(number: str, namespace: dict) -> dict:
    """The training options a notebook's parameters cell set, read from the notebook's variables:
    ``cnn.options("seed", **course.given("02", globals()))`` instead of a cell of keywords."""
    notebook = NOTEBOOKS[number]
    return {name: namespace[name] for name in notebook.params if name in notebook.lab.params}


def _literal(value) -> str:
    """A value as the cell writes it: ``"auto"``, ``1e-3`` (as people write rates), ``None``."""
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and 0 < abs(value) < 0.01:
        return np.format_float_scientific(value, trim="-", exp_digits=1)
    return repr(value)


def _recipe_values(lab: Lab, name: str) -> str:
    """Where the recipes set ``name``: "report 15, improved 24, quick seed 3, quick improved 6"
    (empty when no recipe sets it and the report's is None: the help says what None means)."""
    values = [("report", lab.params[name].default)]
    values += [(recipe, settings[name]) for recipe, settings in lab.recipes.items() if name in settings]
    if values == [("report", None)]:
        return ""
    return ", ".join(f"{recipe} {_literal(value)}" for recipe, value in values)


def parameters_cell(number: str) -> str:
    """The source of notebook ``number``'s ``parameters`` cell, from its declarations."""
    notebook = NOTEBOOKS[number]
    lines = []
    for name, param in notebook.params.items():
        comment = param.help
        recipes = _recipe_values(notebook.lab, name) if notebook.lab and name in notebook.lab.params else ""
        if recipes and param.default is None:
            comment += f"; None: the recipe's ({recipes})"
        lines.append((f"{name} = {_literal(param.default)}", comment))
    width = max(len(code) for code, _ in lines) + 2
    header = ("# Parameters: change them here, or from outside with papermill or `bloodcells labs run -p name=value`.\n"
              "# Defaults and comments come from bloodcells.course (`bloodcells labs params` writes this cell).\n")
    return header + "\n".join(f"{code:<{width}}# {comment}" for code, comment in lines)


def write_parameters_cells(paths, check: bool = False) -> list[str]:
    """Give each notebook the parameters cell of its declarations (outputs and other cells kept);
    with ``check``, change nothing. Returns the stems of the notebooks whose cell differed."""
    import nbformat

    differed = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        cell = next((c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])), None)
        if cell is None:
            raise ValueError(f"{path.name} has no cell tagged 'parameters'")
        wanted = parameters_cell(path.name[:2])
        if cell.source != wanted:
            differed.append(path.stem)
            if not check:
                cell.source = wanted
                nbformat.write(notebook, path)
    return differed
