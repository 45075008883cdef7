"""`bloodcells labs grade` on a class made inside the test: right and wrong answers, and every way a
submission can abuse the grader. Each row of grades.csv is checked, and grading again changes nothing."""
import csv
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from bloodcells import cli
from bloodcells.grading import grade
from bloodcells.release import student_edition

pytestmark = pytest.mark.slow  # starts a kernel per student

LOCKED = {"locked": True, "schema_version": 3, "solution": False, "task": False}


def _course_notebook(path):
    """A small notebook in the course's markup: a parameters cell, two autograded exercises (with
    hidden tests) and a written answer."""
    cells = [
        new_code_cell('data = "auto"\nquick = False', metadata={"tags": ["parameters"]}),
        new_code_cell("import numpy as np\nvalues = np.arange(10)"),
        new_markdown_cell("**Exercise 1.** Store the sum of `values` in `total`.",
                          metadata={"nbgrader": {**LOCKED, "grade": False, "grade_id": "ex1-task"}}),
        new_code_cell("### BEGIN SOLUTION\ntotal = int(values.sum())\n### END SOLUTION",
                      metadata={"nbgrader": {**LOCKED, "locked": False, "solution": True, "grade": False,
                                             "grade_id": "ex1-solution"}}),
        new_code_cell('assert isinstance(total, int), f"an int, got {total!r}"\n'
                      "### BEGIN HIDDEN TESTS\nassert total == 45\n### END HIDDEN TESTS",
                      metadata={"nbgrader": {**LOCKED, "grade": True, "grade_id": "ex1-tests", "points": 2}}),
        new_markdown_cell("**Exercise 2.** Store the largest value in `largest`, and say why.",
                          metadata={"nbgrader": {**LOCKED, "grade": False, "grade_id": "ex2-task"}}),
        new_code_cell("### BEGIN SOLUTION\nlargest = int(values.max())\n### END SOLUTION",
                      metadata={"nbgrader": {**LOCKED, "locked": False, "solution": True, "grade": False,
                                             "grade_id": "ex2-solution"}}),
        new_code_cell("### BEGIN HIDDEN TESTS\nassert largest == 9\n### END HIDDEN TESTS",
                      metadata={"nbgrader": {**LOCKED, "grade": True, "grade_id": "ex2-tests", "points": 1}}),
        new_markdown_cell("**Answer.** It is the last of an increasing range.",
                          metadata={"nbgrader": {**LOCKED, "locked": False, "solution": True, "grade": True,
                                                 "grade_id": "ex2-answer", "points": 1}}),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _answer(student_nb, exercise, code):
    cell = next(c for c in student_nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise)
    cell.source = code
    return student_nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    (root / "source").mkdir()
    source = _course_notebook(root / "source" / "01_tiny.ipynb")
    student = student_edition(nbformat.read(source, as_version=4))
    right = {"ex1-solution": "total = int(values.sum())", "ex2-solution": "largest = int(values.max())"}
    victim = root / "submissions" / "alice" / "01_tiny.ipynb"

    def hand_in(name, answers=right, edit=None, layout="plain"):
        nb = nbformat.from_dict(student)
        for exercise, code in {**right, **answers}.items():
            _answer(nb, exercise, code)
        if edit:
            edit(nb)
        folder = root / "submissions" / name / ("course" if layout == "nbgrader" else "")
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / "01_tiny.ipynb")

    hand_in("alice")
    hand_in("bob", {"ex1-solution": "total = int(values.sum()) - 1"})  # off by one: only the hidden test sees it
    hand_in("carol", {"ex1-solution": "raise RuntimeError('my code crashed')"})
    hand_in("dave", {"ex1-solution": "while True:\n    pass"})
    hand_in("erin", {"ex1-solution": "hog = []\nwhile True:\n    hog.append(bytearray(2**26))"})
    hand_in("frank", {"ex1-solution": "total = 0"},
            edit=lambda nb: _answer(nb, "ex1-tests", "pass  # the test, edited away"))
    (root / "submissions" / "gina").mkdir()  # handed in nothing
    (root / "submissions" / "hank").mkdir()
    (root / "submissions" / "hank" / "01_tiny.ipynb").write_text("my answers are in a Word file")
    hand_in("ivan", edit=lambda nb: nb.cells.pop(next(i for i, c in enumerate(nb.cells)
                                                      if c.metadata.get("nbgrader", {}).get("grade_id") == "ex1-tests")))
    hand_in("judy", {"ex2-solution": "while True:\n    print('x' * 1000)"})
    hand_in("lena", {"ex2-solution": "open('notes.txt', 'w').write('mine')\nlargest = int(values.max())"})
    hand_in("kim", {"ex1-solution": f"open({str(source)!r}, 'w').write('hacked')\n"
                                    f"open({str(victim)!r}, 'w').write('hacked')\ntotal = 45"}, layout="nbgrader")
    before = {p: p.read_bytes() for p in (source, victim)}
    out = root / "grades"
    first = grade(root / "submissions", out, [source], timeout=5, memory_mb=1024, log=lambda *a: None)
    return {"out": out, "rows": first, "before": before, "root": root, "source": source}


def _by_student(rows):
    return {r["student"]: r for r in rows}


def test_grades_csv_row_by_row(graded):
    with (graded["out"] / "grades.csv").open() as f:
        rows = _by_student(csv.DictReader(f))
    assert set(rows) == {"alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "ivan", "judy", "kim", "lena"}
    assert all(set(r) >= {"student", "notebook", "auto_score", "auto_max", "manual_max", "status"} for r in rows.values())
    score = {name: (float(r["auto_score"]) if r["auto_score"] else None) for name, r in rows.items()}
    assert score["alice"] == 3 and rows["alice"]["status"] == "graded"
    assert rows["alice"]["auto_max"] == "3.0" and rows["alice"]["manual_max"] == "1.0"
    assert score["bob"] == 1, "the hidden test caught the off-by-one"
    assert score["carol"] == 1 and "RuntimeError" in rows["carol"]["status"]
    assert score["dave"] == 1 and "over the time limit" in rows["dave"]["status"]
    assert score["erin"] == 1 and "over the memory limit" in rows["erin"]["status"]
    assert score["frank"] == 1 and "locked cells edited (the release's were run): ex1-tests" in rows["frank"]["status"]
    assert rows["gina"]["status"] == "not submitted" and score["gina"] is None
    assert rows["hank"]["status"].startswith("not a notebook") and score["hank"] is None
    assert score["ivan"] == 1 and "locked cells deleted: ex1-tests" in rows["ivan"]["status"]  # no test, no points
    assert score["judy"] == 2 and "1 cell(s) failed: over the time limit" in rows["judy"]["status"]
    assert rows["kim"]["status"].startswith("graded")
    assert score["lena"] == 3 and rows["lena"]["status"] == "graded", "a notebook may write in its own folder"


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops to `nobody` only when grading runs as root")
def test_no_submission_writes_outside_its_own_place(graded):
    assert {p: p.read_bytes() for p in graded["before"]} == graded["before"], "the source or another student changed"
    kim = _by_student(graded["rows"])["kim"]
    assert float(kim["auto_score"]) < 3 and "OSError" in kim["status"], "the cell that tried was stopped"


def test_exercise_table_summary_and_feedback(graded):
    out = graded["out"]
    with (out / "exercises.csv").open() as f:
        alice = [r for r in csv.DictReader(f) if r["student"] == "alice"]
    assert {(r["exercise"], r["kind"], r["score"], r["max_score"]) for r in alice} == {
        ("ex1-tests", "autograded test", "2.0", "2.0"), ("ex2-tests", "autograded test", "1.0", "1.0"),
        ("ex2-answer", "written answer", "", "1.0")}
    with (out / "summary.csv").open() as f:
        summary = {r["exercise"]: r for r in csv.DictReader(f)}
    # ex1's test: full marks for alice, judy and lena (kim's first line was refused: the file system is read-only)
    assert summary["ex1-tests"]["full_marks"] == "3" and summary["ex1-tests"]["graded"] == "10"  # with lena
    assert summary["ex2-tests"]["full_marks"] == "9", "everyone but judy, whose endless print was stopped"
    assert (out / "feedback" / "alice" / "01_tiny.html").read_text().count("ex1-tests") >= 1


def test_grading_again_keeps_every_grade_and_regrades_only_changes(graded):
    again = grade(graded["root"] / "submissions", graded["out"], [graded["source"]], timeout=5, memory_mb=1024,
                  log=lambda *a: None)
    assert again == graded["rows"]


def test_bad_requests_are_refused_before_grading(graded, tmp_path, capsys):
    assert cli.main(["labs", "grade", str(tmp_path / "nowhere"), "--out", str(tmp_path / "g")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    inside = graded["root"] / "submissions" / "grades"
    assert cli.main(["labs", "grade", str(graded["root"] / "submissions"), "--out", str(inside)]) == 2
    assert "must not contain one another" in capsys.readouterr().err


def test_the_course_notebooks_grade_on_nbgrader(tmp_path):
    """Notebook 01 as the course ships it: its model answers get every autograded point, the
    untouched student edition none (its stubs raise NotImplementedError)."""
    import shutil

    from bloodcells import labs
    from bloodcells.release import student_path

    notebook = labs.select(["01"])[0]
    for student, path in (("model", notebook), ("blank", student_path(notebook))):
        (tmp_path / "class" / student).mkdir(parents=True)
        shutil.copy(path, tmp_path / "class" / student / notebook.name)
    rows = _by_student(grade(tmp_path / "class", tmp_path / "grades", [notebook], log=lambda *a: None))
    assert rows["model"]["status"] == "graded" and rows["model"]["auto_score"] == rows["model"]["auto_max"] == 4
    assert rows["blank"]["auto_score"] == 0 and "NotImplementedError" in rows["blank"]["status"]
