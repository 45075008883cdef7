"""``bloodcells labs grade``: a class's notebooks marked with nbgrader's own machinery.

The course's notebooks are the nbgrader *source* (their hidden tests included); each student's
submission is autograded in a separate grading process, whose kernel runs in
:mod:`bloodcells.sandbox` (memory and file-size caps; as root, a read-only file system but its own
folder) with a per-cell time limit
and nbgrader's cap on stored output. nbgrader's autograde puts the release's locked cells back
before running, so an edited test is never what runs. Everything lives in ``DIR``: the nbgrader
course (``DIR/course``: source, submitted, autograded, feedback, ``gradebook.db``), ``grades.csv``
(student x notebook), ``exercises.csv`` (student x exercise), ``summary.csv`` (per exercise) and
``feedback/<student>/<notebook>.html``. Grading again re-grades only new or changed submissions.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from bloodcells import grading_tables as tables
from bloodcells.grading_tables import ASSIGNMENT, Submission

STUDENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: Defaults of the limits; each is an option of ``bloodcells labs grade``. Ten minutes a cell: notebook
#: 02's exercise 3 trains the improved CNN twice in quick mode (over 2 minutes on 2 cores).
CELL_TIMEOUT, MEMORY_MB, MAX_OUTPUT_MB = 600, 4096, 20
#: What the graded notebooks run on (the class-time setting); ``-p`` changes it.
GRADING_PARAMETERS = {"quick": True, "data": "synthetic"}


class GradingError(ValueError):
    """A grading request that cannot start; the message says what to fix."""


def _sha(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def find_submissions(folder: Path, stems: list[str]) -> list[Submission]:
    """One entry per student folder: ``folder/<student>/<notebook>.ipynb``, or nbgrader's
    ``folder/<student>/<assignment>/<notebook>.ipynb`` (also under ``folder/submitted/``)."""
    if (folder / "submitted").is_dir() and not any(folder.glob("*/*.ipynb")):
        folder = folder / "submitted"
    if not folder.is_dir():
        raise GradingError(f"{folder} is not a folder; give the folder that holds one folder per student")
    found = []
    for student_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not STUDENT_NAME.fullmatch(student_dir.name):
            found.append(Submission(student_dir.name, {}, {"*": "folder name is not a usable student id "
                                                              "(letters, digits, . _ - only)"}))
            continue
        inner = [p for p in student_dir.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))]
        where = student_dir if any(student_dir.glob("*.ipynb")) or not inner else inner[0]
        notebooks, problems = {}, {}
        for stem in stems:
            path = where / f"{stem}.ipynb"
            if not path.is_file():
                continue
            try:
                nbformat.validate(nbformat.read(path, as_version=4))
                notebooks[stem] = path
            except Exception as exc:  # nbformat's ways of saying "not a notebook" are many
                problems[stem] = f"not a notebook ({type(exc).__name__}); the file was not run"
        found.append(Submission(student_dir.name, notebooks, problems))
    if not found:
        raise GradingError(f"{folder} holds no student folders; expected {folder}/<student>/<notebook>.ipynb")
    return found


def _for_grading(nb: nbformat.NotebookNode, parameters: dict) -> nbformat.NotebookNode:
    """A notebook as it is graded: the grading parameters appended to its parameters cell (so every
    submission runs the class-time setting on the same data, whatever the student set there)."""
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is not None and parameters:
        cell.source += "\n# Set for grading (bloodcells labs grade):\n" + "\n".join(
            f"{name} = {value!r}" for name, value in parameters.items())
    return nb


def _shared_data_ready(parameters: dict) -> None:
    """Make the SYNTHETIC sets once, before any kernel runs: a sandboxed kernel cannot write the
    kit's data cache."""
    if parameters.get("data") == "synthetic":
        from bloodcells.data import open_bloodmnist
        from bloodcells.data.sources import wbc5_folder

        open_bloodmnist("synthetic")
        wbc5_folder("synthetic")


def _with_venv_on_path() -> None:
    """nbgrader's gradebook shells out to ``alembic``, which lives beside this Python (a venv's bin/)."""
    import os

    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def prepare_course(out: Path, notebooks: list[Path], timeout: int, memory_mb: int, max_output_mb: int,
                   read_only: list[Path]) -> Path:
    """``out/course`` with nbgrader's release generated from the course notebooks (once: grading
    again keeps the gradebook), and the sandboxed kernel's spec (``read_only``: what else a kernel
    must not write to)."""
    from nbgrader.apps import NbGraderAPI

    course = out / "course"
    if not (course / "gradebook.db").is_file():
        source = course / "source" / ASSIGNMENT
        source.mkdir(parents=True, exist_ok=True)
        for nb_path in notebooks:
            nb = nbformat.read(nb_path, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            nbformat.write(nb, source / nb_path.name)
        result = NbGraderAPI(config=_config(course, timeout)).generate_assignment(ASSIGNMENT, force=True)
        if not result["success"]:
            raise GradingError(f"nbgrader could not generate the release: {(result.get('error') or '')[-1500:]}")
    _kernelspec(course, memory_mb, max_output_mb, read_only)
    return course


def _config(course: Path, timeout: int):
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.Execute.timeout = timeout
    config.Execute.interrupt_on_timeout = True
    config.Execute.kernel_name = "bloodcells-sandbox"
    config.LimitOutput.max_lines = 200
    config.LimitOutput.max_traceback = 40
    return config


def _kernelspec(course: Path, memory_mb: int, max_output_mb: int, read_only: list[Path]) -> Path:
    """A kernelspec (found through ``JUPYTER_PATH``) that starts ipykernel inside :mod:`bloodcells.sandbox`."""
    folder = course / "jupyter" / "kernels" / "bloodcells-sandbox"
    folder.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "bloodcells.sandbox", "--memory-mb", str(memory_mb), "--file-mb", str(max_output_mb),
            *[arg for path in read_only for arg in ("--read-only", str(path))],
            "--", sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (folder / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "bloodcells sandbox",
                                                    "language": "python"}))
    return course / "jupyter"


def _worker(course: Path, student: str, timeout: int) -> None:
    """In a grading process of its own: autograde one student, then write their feedback."""
    from nbgrader.apps import NbGraderAPI

    api = NbGraderAPI(config=_config(course, timeout))
    result = api.autograde(ASSIGNMENT, student, force=True)
    error = None if result["success"] else (result.get("error") or result.get("log") or "autograde failed")[-1500:]
    if error is None:
        feedback = api.generate_feedback(ASSIGNMENT, student, force=True)
        error = None if feedback["success"] else "feedback: " + (feedback.get("error") or "")[-500:]
    print(json.dumps({"error": error}))


def _grade_one(course: Path, student: str, timeout: int, memory_mb: int, n_cells: int) -> str | None:
    """Run :func:`_worker` in a separate process (its memory capped too); None, or why it failed."""
    import os
    import resource

    def limits():
        memory = 2 * memory_mb * 2**20  # the grading process holds the outputs the kernel sends
        resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))

    env = {**os.environ, "JUPYTER_PATH": str(course / "jupyter"), "PYTHONWARNINGS": "ignore"}
    try:
        done = subprocess.run([sys.executable, "-c", f"from bloodcells.grading import _worker; from pathlib import Path; "
                               f"_worker(Path({str(course)!r}), {student!r}, {timeout})"],
                              capture_output=True, text=True, env=env, preexec_fn=limits,
                              timeout=timeout * n_cells + 300)
    except subprocess.TimeoutExpired:
        return "grading took longer than every cell's time limit together; stopped"
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"error"')]
    if not lines:
        return f"the grading process died (exit {done.returncode}): {done.stderr.strip()[-300:]}"
    return json.loads(lines[-1])["error"]


def grade(submissions: str | Path, out: str | Path, notebooks: list[Path], parameters: dict | None = None,
          timeout: int = CELL_TIMEOUT, memory_mb: int = MEMORY_MB, max_output_mb: int = MAX_OUTPUT_MB,
          log=print) -> list[dict]:
    """Grade every student folder in ``submissions`` into ``out`` (see the module's docstring);
    returns the rows of ``grades.csv``."""
    from bloodcells import labs

    submissions, out = Path(submissions).expanduser().resolve(), Path(out).expanduser().resolve()
    if out == submissions or submissions in out.parents or out in submissions.parents:
        raise GradingError(f"--out {out} and the submissions {submissions} must not contain one another; "
                           "choose an --out folder beside them")
    declared = {name for nb in notebooks for name in labs.parameters(nb)}
    defaults = {k: v for k, v in GRADING_PARAMETERS.items() if k in declared}  # where a notebook has them
    per_notebook = labs.plan(notebooks, {**defaults, **(parameters or {})})  # checked before anything runs
    stems = [nb.stem for nb in notebooks]
    students = find_submissions(submissions, stems)
    out.mkdir(parents=True, exist_ok=True)
    _with_venv_on_path()
    _shared_data_ready({k: v for params in per_notebook.values() for k, v in params.items()})
    read_only = sorted({out, submissions, *(nb.parent for nb in notebooks)})
    course = prepare_course(out, notebooks, timeout, memory_mb, max_output_mb, read_only)
    state_file = out / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    rows, exercises = [], []
    settings = json.dumps([[sorted(per_notebook[nb].items()) for nb in notebooks], timeout, memory_mb, max_output_mb],
                          default=str)
    settings_digest = hashlib.sha256(settings.encode()).hexdigest()[:16]  # new limits or parameters: grade again
    for number, submission in enumerate(students, start=1):
        digest = _sha(submission.notebooks.values()) + settings_digest
        if submission.notebooks and state.get(submission.student, {}).get("digest") != digest:
            log(f"[{number}/{len(students)}] grading {submission.student}: {', '.join(submission.notebooks)}")
            folder = course / "submitted" / submission.student / ASSIGNMENT
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            n_cells = 0
            for nb in notebooks:
                if nb.stem in submission.notebooks:
                    graded = _for_grading(nbformat.read(submission.notebooks[nb.stem], as_version=4), per_notebook[nb])
                    nbformat.write(graded, folder / nb.name)
                    n_cells += len(graded.cells)
            error = _grade_one(course, submission.student, timeout, memory_mb, n_cells)
            state[submission.student] = {"digest": digest, "error": error}
            state_file.write_text(json.dumps(state, indent=1))
        else:
            log(f"[{number}/{len(students)}] {submission.student}: unchanged since the last grading")
        student_rows, student_exercises = tables.collect(course, out, submission, stems,
                                                   state.get(submission.student, {}).get("error"))
        rows += student_rows
        exercises += student_exercises
    tables.write_all(out, rows, exercises)
    return rows
