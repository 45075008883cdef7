"""Student and solution editions of the course notebooks, made with nbgrader's own preprocessors.

The notebooks in ``notebooks/`` are the instructor's source and the solution edition: exercises in
nbgrader's markup (solution code between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, written
answers in solution cells, locked autograded tests with hidden parts). The student edition
(solutions replaced by a placeholder, hidden tests removed, outputs of exercise cells cleared, test
cells locked, the lesson's figures kept) ships in ``notebooks/student/``, where every student entry
point opens; ``bloodcells labs publish`` rewrites it with the outputs, and ``bloodcells labs
release --out DIR`` writes both editions into a new folder for a class.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import nbformat

CODE_STUB = '# YOUR CODE HERE: replace this line with your answer\nraise NotImplementedError("exercise not done yet")'
TEXT_STUB = "YOUR ANSWER HERE"


def _exercise_cell(cell) -> bool:
    from nbgrader import utils

    return utils.is_solution(cell) or utils.is_grade(cell)


def _count(nb) -> dict[str, int]:
    from nbgrader import utils

    return {"code answers": sum(utils.is_solution(c) and c.cell_type == "code" for c in nb.cells),
            "written answers": sum(utils.is_solution(c) and c.cell_type == "markdown" for c in nb.cells),
            "autograded tests": sum(utils.is_grade(c) and not utils.is_solution(c) for c in nb.cells)}


def student_edition(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` for students: nbgrader's ClearSolutions, ClearHiddenTests and LockCells, then
    the outputs of the exercise cells cleared (the lesson's figures stay)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, LockCells

    student = copy.deepcopy(nb)
    resources: dict = {}
    for step in (ClearSolutions(code_stub={"python": CODE_STUB}, text_stub=TEXT_STUB), ClearHiddenTests(),
                 LockCells()):
        student, resources = step.preprocess(student, resources)
    for cell in student.cells:
        if cell.cell_type == "code" and _exercise_cell(cell):
            cell.outputs, cell.execution_count = [], None
    return student


def student_path(notebook: Path) -> Path:
    """Where a notebook's student edition ships: ``student/`` beside it."""
    return notebook.parent / "student" / notebook.name


def write_student_editions(notebooks: list[Path]) -> list[Path]:
    """Write each notebook's student edition to :func:`student_path`, each in full before any
    shipped one is replaced (renames on one file system)."""
    staged = {student_path(nb): student_path(nb).with_name(f".{nb.name}.new") for nb in notebooks}
    try:
        for nb, new in zip(notebooks, staged.values()):
            new.parent.mkdir(exist_ok=True)
            nbformat.write(student_edition(nbformat.read(nb, as_version=4)), new)
    except BaseException:
        for new in staged.values():
            new.unlink(missing_ok=True)
        raise
    for target, new in staged.items():
        new.replace(target)
    return list(staged)


def release(notebooks: list[Path], out: str | Path) -> dict[str, dict[str, int]]:
    """Write ``out/solutions/`` and ``out/student/``; returns, per notebook, how many answer
    cells (code and written) and autograded test cells it has.

    Refuses to write into an existing edition folder, so a released (and maybe edited) edition is
    never overwritten; everything is built in a scratch folder and moved in place at the end."""
    out = Path(out).expanduser().resolve()
    editions = {name: out / name for name in ("student", "solutions")}
    existing = [str(p) for p in editions.values() if p.exists()]
    if existing:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); choose a new --out folder "
                              "(a released edition is never overwritten)")
    scratch = out / ".release.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    counts = {}
    try:
        for nb_path in notebooks:
            nb = nbformat.read(nb_path, as_version=4)
            counts[nb_path.stem] = _count(nb)
            for name, edition in (("solutions", nb), ("student", student_edition(nb))):
                (scratch / name).mkdir(parents=True, exist_ok=True)
                nbformat.write(edition, scratch / name / nb_path.name)
        for name, target in editions.items():
            (scratch / name).rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return counts


def _scrub(text: str, replacements: dict[str, str]) -> str:
    for path, placeholder in replacements.items():
        text = text.replace(path, placeholder)
    return text


def clean_executed(nb: nbformat.NotebookNode, replacements: dict[str, str]) -> nbformat.NotebookNode:
    """An executed notebook as it ships: papermill's injected parameters and timing metadata removed
    (the parameters cell keeps its defaults), and the machine's paths in outputs replaced."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    nb.metadata.pop("papermill", None)
    if "widgets" in nb.metadata:  # saved widget state holds captions with file names
        nb.metadata["widgets"] = json.loads(_scrub(json.dumps(nb.metadata["widgets"]), replacements))
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _scrub(output["text"], replacements)
            for mime, value in output.get("data", {}).items():
                if isinstance(value, str) and mime.startswith("text/"):
                    output["data"][mime] = _scrub(value, replacements)
            if "traceback" in output:
                output["traceback"] = [_scrub(line, replacements) for line in output["traceback"]]
    return nb


def publish(notebooks: list[Path], data_dir: str | Path, log=print) -> list[Path]:
    """Run the notebooks on the real data (quick mode, changed per notebook by its registry entry's
    ``publish``: lab 1 at full length), store their outputs and rewrite their student editions
    in place, so a student sees every figure on first open. Only a fully successful run replaces
    anything."""
    import tempfile

    from bloodcells import labs
    from bloodcells.course import NOTEBOOKS

    data_dir = Path(data_dir).expanduser().resolve()
    if not (data_dir / "medmnist").is_dir() or not (data_dir / "wbc5").is_dir():
        raise FileNotFoundError(f"{data_dir} holds no medmnist/ and wbc5/: the shipped outputs come from real data; "
                                "point --data-dir (or BLOODCELLS_DATA_DIR) at the real data folder")
    with tempfile.TemporaryDirectory() as tmp:
        lab = labs.run(notebooks, {"quick": True, "data": "real", "data_dir": str(data_dir)}, tmp, log=log,
                       per_notebook={number: nb.publish for number, nb in NOTEBOOKS.items() if nb.publish})
        if not lab.ok:
            raise RuntimeError(f"nothing replaced: {lab.failure}")
        replacements = {str(lab.folder.resolve()): "runs", str(data_dir): "<data>",
                        str(labs.NOTEBOOK_DIR.parent): ".", str(Path.home()): "~"}
        staged = {nb_path: nb_path.with_name(f".{nb_path.name}.new") for nb_path in notebooks}
        try:  # every new notebook is written in full before any shipped one is replaced
            for nb_path, new in staged.items():
                nbformat.write(clean_executed(nbformat.read(lab.folder / nb_path.name, as_version=4), replacements), new)
        except BaseException:
            for new in staged.values():
                new.unlink(missing_ok=True)
            raise
        for nb_path, new in staged.items():  # renames on one file system: no space needed, nothing half-written
            new.replace(nb_path)
    write_student_editions(notebooks)
    return notebooks
