"""The notebooks teach: cell-by-cell training equals the package's one call, the nbgrader
editions are what students and markers need, and the shipped notebooks open with real figures."""
import json
import os
import re
import tempfile
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from bloodcells import labs, runs
from bloodcells.release import release, student_edition

REPO = Path(__file__).resolve().parents[1]


def _run_folder(course_run, notebook: str, prefix: str):
    """The run folder notebook ``notebook`` wrote in the suite's one lab run."""
    (folder,) = [f for f in (course_run.folder / notebook).iterdir() if f.name.startswith(prefix)]
    return runs.load(folder)


@pytest.mark.slow
def test_notebook_02_cell_by_cell_equals_run_experiment(course_run, course_settings, tmp_path):
    from bloodcells.data import open_bloodmnist
    from bloodcells.models import cnn

    dataset = open_bloodmnist("synthetic")
    for model in cnn.MODELS:
        in_cells = _run_folder(course_run, "02_cnn_keras", f"cnn-{model}-")
        one_call = cnn.run_experiment(dataset, cnn.options(model, quick=True, **course_settings["02"]),
                                      tmp_path / "one-call", log=False)
        assert len(in_cells.history["val_loss"]) == course_settings["02"]["epochs"]
        np.testing.assert_allclose(in_cells.history["val_loss"], one_call.history["val_loss"], rtol=1e-5)
        assert in_cells.metrics["n_correct"] == one_call.metrics["n_correct"], model


@pytest.mark.parametrize("number", ["02", "03"])
@pytest.mark.slow
def test_an_unwritable_output_dir_stops_the_notebook_before_training(number, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    nb = labs.select([number])[0]
    with pytest.raises(PapermillExecutionError) as failed:
        papermill.execute_notebook(str(nb), str(tmp_path / nb.name), kernel_name="python3", cwd=str(nb.parent),
                                   parameters={"data": "synthetic", "output_dir": str(tmp_path / "a-file" / "runs")},
                                   progress_bar=False)
    assert failed.value.ename == "OutputDirError"
    executed = nbformat.read(tmp_path / nb.name, as_version=4)
    assert not any("model.fit(" in c.source or "fit_one_cycle(" in c.source
                   for c in executed.cells[:failed.value.cell_index + 1])  # nothing was trained


@pytest.mark.slow
def test_notebook_03_cell_by_cell_equals_run_experiment(course_run, course_settings, tmp_path):
    from bloodcells.data.folders import split_folder
    from bloodcells.data.sources import wbc5_folder
    from bloodcells.models import transfer

    small = {k: v for k, v in course_settings["03"].items() if k != "lr_finder_steps"}
    in_cells = _run_folder(course_run, "03_transfer_learning_fastai", "transfer-")
    one_call = transfer.run_experiment(split_folder(wbc5_folder("synthetic")), transfer.options(quick=True, **small),
                                       tmp_path / "one-call")
    assert in_cells.history["phase"] == one_call.history["phase"] and set(in_cells.history["phase"]) == {1, 2}
    np.testing.assert_allclose(in_cells.history["val_loss"], one_call.history["val_loss"], rtol=1e-4)
    assert in_cells.metrics["n_correct"] == one_call.metrics["n_correct"]
    assert in_cells.external, "notebook 03 scored its SYNTHETIC stand-in for another lab"


def _solution_lines(nb) -> list[str]:
    lines = []
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            body = cell.source
            if cell.cell_type == "code":
                body = body.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            lines += [line.strip() for line in body.splitlines() if len(line.strip()) > 12]
    return lines


def test_release_writes_student_and_solution_editions(tmp_path):
    counts = release(labs.notebooks(), tmp_path / "course")
    for nb_path in labs.notebooks():
        source = nbformat.read(nb_path, as_version=4)
        assert counts[nb_path.stem]["code answers"] >= 3 and counts[nb_path.stem]["autograded tests"] >= 3
        solution = nbformat.read(tmp_path / "course" / "solutions" / nb_path.name, as_version=4)
        assert solution == source  # the source notebooks are the solution edition the smoke run executes
        text = (tmp_path / "course" / "student" / nb_path.name).read_text()
        assert "BEGIN SOLUTION" not in text and "YOUR CODE HERE" in text and "YOUR ANSWER HERE" in text
        leaked = [line for line in _solution_lines(source) if json.dumps(line)[1:-1] in text]
        assert not leaked, (nb_path.stem, leaked)
        student = nbformat.read(tmp_path / "course" / "student" / nb_path.name, as_version=4)
        graded = [c for c in student.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert all(c.metadata.get("editable") is False for c in graded if c.cell_type == "code")  # tests locked
        exercise_outputs = [c.outputs for c in student.cells if c.cell_type == "code" and "nbgrader" in c.metadata]
        assert not any(exercise_outputs)
    with pytest.raises(FileExistsError, match="never overwritten"):
        release(labs.notebooks(), tmp_path / "course")


@pytest.mark.slow
def test_student_edition_runs_up_to_its_first_exercise(tmp_path):
    nb = student_edition(nbformat.read(labs.select(["01"])[0], as_version=4))
    path = tmp_path / "01.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(str(path), str(tmp_path / "out.ipynb"), parameters={"data": "synthetic"},
                                   kernel_name="python3", cwd=str(labs.NOTEBOOK_DIR), progress_bar=False)
    assert err.value.ename == "NotImplementedError"
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    failed = next(i for i, c in enumerate(executed.cells)
                  if c.cell_type == "code" and any(o.output_type == "error" for o in c.outputs))
    first_exercise = next(i for i, c in enumerate(executed.cells) if c.metadata.get("nbgrader", {}).get("solution")
                          and c.cell_type == "code")
    assert failed == first_exercise
    assert any(o.output_type == "display_data" for c in executed.cells[:failed] for o in c.get("outputs", []))


@pytest.mark.parametrize("nb_path", labs.notebooks(), ids=lambda p: p.stem)
def test_the_student_edition_ships_as_release_makes_it(nb_path):
    """Students open notebooks/student/ (Colab, Binder, make lab): it must be what `labs release`
    makes from the solution edition now (`make outputs` rewrites both)."""
    from bloodcells.release import student_path

    shipped = nbformat.read(student_path(nb_path), as_version=4)
    assert shipped == student_edition(nbformat.read(nb_path, as_version=4)), \
        f"{student_path(nb_path)} is stale: run `make outputs` (or bloodcells labs publish)"
    assert "BEGIN SOLUTION" not in student_path(nb_path).read_text()


def _machine_paths() -> list[str]:
    paths = [str(REPO), str(Path.home()), tempfile.gettempdir() + "/"]
    if os.environ.get("BLOODCELLS_DATA_DIR"):
        paths.append(str(Path(os.environ["BLOODCELLS_DATA_DIR"]).resolve()))
    return paths


@pytest.mark.parametrize("nb_path", labs.notebooks(), ids=lambda p: p.stem)
def test_shipped_notebooks_open_with_real_figures_and_no_machine_paths(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure stored"
    assert "SYNTHETIC" not in json.dumps(outputs), "shipped outputs come from the real data"
    whole = nb_path.read_text()  # outputs and saved widget state
    assert not [p for p in _machine_paths() if p in whole]
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "\x08" not in streams and not re.search(r"\r(?!\n)", streams), "progress-bar fragments stored"
    assert "Warning" not in streams, "a library warning is stored in a lesson's output"
    assert "0.00% [0/" not in json.dumps(outputs), "an empty progress bar is stored"
    assert "Better model found" not in streams, "fastai's checkpoint line breaks the epoch table"
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert all("interactive widget" in o["data"]["text/plain"] for o in widgets), \
        "a widget's static text says what a reader of the stored notebook sees"


def _stored_text(nb) -> str:
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                   for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_notebook_02_ships_the_answer_keys_seed_0_figures():
    """The stored run (make outputs: real data, full length, seed 0) is one of the answer key's runs,
    so what a student reads in the notebook, the README and the key is the same measurement."""
    from bloodcells import answer_key

    text = _stored_text(nbformat.read(REPO / "notebooks" / "02_cnn_keras.ipynb", as_version=4))
    key = answer_key.runs()
    for model, label in (("seed", "report's CNN"), ("improved", "improved CNN")):
        (row,) = key[(key["model"] == model) & (~key["quick"]) & (key["seed"] == 0)].to_dict("records")
        found = re.search(rf"{label}: test accuracy ([\d.]+)% \((\d+)/3421\)", text)
        assert found, f"no stored test accuracy of the {label}"
        assert int(found.group(2)) == row["test_correct"], (label, found.group(0), row)
    low, high = answer_key.expected("seed", False)
    assert f"{low:.2%} to {high:.2%} test accuracy" in text  # the reproduction sentence, computed from the key


def test_notebook_01_ships_the_provenance_lesson_on_a_real_photo():
    nb = nbformat.read(REPO / "notebooks" / "01_explore_and_preprocess.ipynb", as_version=4)
    text = _stored_text(nb)
    found = re.search(r"nearest image in BloodMNIST: ([\d.]+) grey levels away on average \(the next nearest ([\d.]+)\)", text)
    assert found and float(found.group(1)) < 3.5 < float(found.group(2)), "the photo's official image was not found"


def test_the_readmes_lab_2_figures_are_notebook_03s_stored_run():
    """The README quotes the shipped run: its in-lab and external figures are the ones stored in 03."""
    text = _stored_text(nbformat.read(REPO / "notebooks" / "03_transfer_learning_fastai.ipynb", as_version=4))
    readme = (REPO / "README.md").read_text()
    in_lab = re.search(r"test accuracy ([\d.]+%) \((\d+/375)\)", text)
    external = re.search(r"external set bccd: accuracy ([\d.]+%) \((\d+/\d+)\)", text)
    assert in_lab and external, "notebook 03's stored run has no in-lab or BCCD figure"
    assert f"{in_lab.group(1)} ({in_lab.group(2)})" in readme
    assert f"{external.group(1)} ({external.group(2)})" in readme


def test_the_readmes_classical_baseline_is_notebook_02s_stored_svm():
    text = _stored_text(nbformat.read(REPO / "notebooks" / "02_cnn_keras.ipynb", as_version=4))
    found = re.search(r"SVM on 195 hand-made features: validation [\d.]+%, test ([\d.]+%)", text)
    assert found, "notebook 02's stored run has no SVM line"
    assert f"features scores {found.group(1)}" in (REPO / "README.md").read_text().replace("\n  ", " ")
