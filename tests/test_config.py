"""One configuration source per lab: declarations, recipes and the one precedence rule."""
import ast
import shutil
from pathlib import Path

import pytest

from bloodcells import course, labs
from bloodcells.config import LAB1, LAB2, ConfigError
from bloodcells.models import cnn, transfer


def test_precedence_recipe_then_quick_then_user():
    o = transfer.options()
    assert o["backbone"] == "efficientnet_lite0" and o.sources["backbone"] == "cpu"
    assert o["epochs_frozen"] == 20 and o.sources["epochs_frozen"] == "report"
    q = transfer.options(quick=True)
    assert q["image_size"] == 96 and q.sources["image_size"] == "quick mode"
    mine = transfer.options(quick=True, image_size=64)  # what you set wins over quick mode
    assert mine["image_size"] == 64 and mine.sources["image_size"] == "you"
    assert mine["epochs_unfrozen"] == 8  # quick mode still applies to what you did not set
    assert transfer.options(quick=True, image_size=None)["image_size"] == 96  # None = not set
    table = mine.table()
    assert table.loc["image_size", "set by"] == "you" and table.loc["image_size", "value"] == "64"


def test_lab2_recipe_for_a_gpu_is_the_report_s(monkeypatch):
    report = transfer.options(recipe="report")
    assert (report["backbone"], report["image_size"], report["lr_unfrozen"], report["tta"]) == ("resnet18", 224, 1e-4, False)
    assert report.sources["image_size"] == "report"
    monkeypatch.setattr("bloodcells.platforms.torch_device", lambda: "cuda")
    assert transfer.options(recipe="auto")["image_size"] == 224
    monkeypatch.setattr("bloodcells.platforms.torch_device", lambda: "mps")  # the CPU lab is the lighter one
    assert transfer.options(recipe="auto")["image_size"] == 128
    with pytest.raises(ConfigError, match="recipe must be one of"):
        transfer.options(recipe="gpu")


def test_lab1_recipes():
    seed, improved = cnn.options("seed"), cnn.options("improved")
    assert (seed["epochs"], seed["batch_size"], seed["learning_rate"], seed["patience"]) == (15, 32, 1e-3, 3)
    assert not seed["augment"] and seed["schedule"] == "constant" and seed["label_smoothing"] == 0
    assert improved["augment"] and improved["tta"] and improved["schedule"] == "cosine"
    quick = cnn.options("improved", quick=True, epochs=5)  # what you set wins over quick mode
    assert quick["epochs"] == 5 and quick.sources["epochs"] == "you"
    quick_improved, quick_seed = cnn.options("improved", quick=True), cnn.options("seed", quick=True)
    assert quick_improved["epochs"] == 6 and quick_improved["max_train_samples"] is None  # every image
    assert quick_improved["batch_size"] == improved["batch_size"] and quick_improved.sources["epochs"] == "quick mode"
    assert (quick_seed["epochs"], quick_seed["max_train_samples"], quick_seed["batch_size"]) == (3, 2000, 32)


@pytest.mark.parametrize("given, message", [
    ({"epochs_frozen": "abc"}, "should be int"), ({"epochs_unfrozen": -1}, "out of range"), ({"image_size": 0}, "out of range"),
    ({"backbone": "resnet19"}, "choose from"), ({"lr_frozen": -1.0}, "out of range"), ({"tta": 1}, "should be bool"),
    ({"batch_size": True}, "should be int"), ({"epochs_unfrozen": 0}, "out of range"),
])
def test_bad_values_name_the_parameter_and_what_is_valid(given, message):
    with pytest.raises(ConfigError, match=message) as err:
        transfer.options(**given)
    assert next(iter(given)) in str(err.value)


def test_notebook_parameter_cells_are_written_from_the_registry(tmp_path):
    """papermill needs literals in each notebook's parameters cell; `bloodcells labs params` writes
    them from bloodcells.course, and a cell edited by hand is caught."""
    assert course.write_parameters_cells(labs.notebooks(), check=True) == []
    for nb in labs.notebooks():
        declared = course.NOTEBOOKS[nb.name[:2]].params
        cell = labs.parameters(nb)  # what papermill reads back
        assert list(cell) == list(declared), nb.stem
        for name, spec in cell.items():
            assert ast.literal_eval(spec["default"]) == declared[name].default, (nb.stem, name)
            declared[name].check(name, declared[name].default)
    copy = shutil.copy(labs.select(["02"])[0], tmp_path / "02_copy.ipynb")
    text = Path(copy).read_text().replace('"epochs = None ', '"epochs = 15 ')
    assert text != Path(copy).read_text()
    Path(copy).write_text(text)
    assert course.write_parameters_cells([Path(copy)], check=True) == ["02_copy"]
    assert course.write_parameters_cells([Path(copy)]) == ["02_copy"]
    assert course.write_parameters_cells([Path(copy)], check=True) == []


def test_a_parameters_cell_states_the_recipes_values():
    cell = course.parameters_cell("02")
    line = next(row for row in cell.splitlines() if row.startswith("epochs = None"))
    assert "report 15, improved 24, quick seed 3, quick improved 6" in line
    line = next(row for row in course.parameters_cell("03").splitlines() if row.startswith("image_size = None"))
    assert "report 224, cpu 128, quick 96" in line


def test_a_notebook_hands_on_exactly_its_training_parameters():
    cell = {name: p.default for name, p in course.NOTEBOOKS["02"].params.items()}
    namespace = {**cell, "epochs": 4, "seed": 3, "model": "a Keras model made later"}
    handed = course.given("02", namespace)
    assert handed["epochs"] == 4 and handed["seed"] == 3 and set(handed) == set(LAB1.params) - {"model"}
    cell = {name: p.default for name, p in course.NOTEBOOKS["03"].params.items()}
    assert set(course.given("03", {**cell, "learn": object()})) == set(LAB2.params)  # not recipe, quick, data


def test_training_options_of_notebooks_are_the_labs_options():
    nb02, nb03 = course.NOTEBOOKS["02"].params, course.NOTEBOOKS["03"].params
    assert set(LAB1.params) - {"model"} <= set(nb02) and set(LAB2.params) <= set(nb03)
    assert nb03["seed"] == LAB2.params["seed"]
