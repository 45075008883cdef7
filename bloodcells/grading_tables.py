"""The class's tables from nbgrader's gradebook: ``grades.csv`` (student x notebook, with a status that
says what went wrong inside a graded notebook), ``exercises.csv`` (student x exercise), ``summary.csv``
(per exercise) and the feedback pages."""
from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

ASSIGNMENT = "course"  # one nbgrader assignment holds every notebook of the course
GRADES_COLUMNS = ["student", "notebook", "auto_score", "auto_max", "manual_max", "status"]
EXERCISE_COLUMNS = ["student", "notebook", "exercise", "kind", "score", "max_score"]
SUMMARY_COLUMNS = ["notebook", "exercise", "kind", "max_score", "graded", "mean_score", "full_marks"]


@dataclass
class Submission:
    student: str
    notebooks: dict[str, Path]  # notebook stem -> the student's file
    problems: dict[str, str]  # notebook stem -> why it cannot be graded


def problems_in_run(course: Path, student: str, stem: str, submitted: nbformat.NotebookNode) -> list[str]:
    """What went wrong inside a graded notebook, in words for the status column."""
    notes = []
    def locked_cells(folder: str) -> dict[str, str]:
        nb = nbformat.read(course / folder / ASSIGNMENT / f"{stem}.ipynb", as_version=4)
        return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("locked")}

    released, source = locked_cells("release"), locked_cells("source")  # as handed out, or with the hidden tests
    theirs = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in submitted.cells}
    missing = sorted(set(released) - set(theirs))
    edited = sorted(k for k in set(released) & set(theirs) if theirs[k] not in (released[k], source.get(k)))
    if missing:
        notes.append(f"locked cells deleted: {', '.join(missing)}")
    if edited:
        notes.append(f"locked cells edited (the release's were run): {', '.join(edited)}")
    graded = course / "autograded" / student / ASSIGNMENT / f"{stem}.ipynb"
    if graded.is_file():
        words = {"CellTimeoutError": "over the time limit", "KeyboardInterrupt": "over the time limit",
                 "MemoryError": "over the memory limit"}
        failed = [{words.get(o.get("ename", ""), o.get("ename", "")) for o in c.get("outputs", [])
                   if o.get("output_type") == "error"} for c in nbformat.read(graded, as_version=4).cells]
        for kind in sorted(set().union(*failed)):
            notes.append(f"{sum(kind in kinds for kinds in failed)} cell(s) failed: {kind}")
    return notes


def collect(course: Path, out: Path, submission: Submission, stems: list[str], error: str | None):
    """The student's rows of grades.csv and exercises.csv, from the gradebook; feedback copied."""
    from nbgrader.api import Gradebook, MissingEntry

    rows, exercises = [], []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for stem in stems:
            row = {"student": submission.student, "notebook": stem, "auto_score": "", "auto_max": "", "manual_max": ""}
            if stem in submission.problems or "*" in submission.problems:
                rows.append({**row, "status": submission.problems.get(stem) or submission.problems["*"]})
                continue
            if stem not in submission.notebooks:
                rows.append({**row, "status": "not submitted"})
                continue
            if error:
                rows.append({**row, "status": f"grading failed: {error.strip().splitlines()[-1][:200]}"})
                continue
            try:
                graded = gb.find_submission_notebook(stem, ASSIGNMENT, submission.student)
            except MissingEntry:
                rows.append({**row, "status": "grading failed: nbgrader recorded no grade for this notebook"})
                continue
            submitted = nbformat.read(course / "submitted" / submission.student / ASSIGNMENT / f"{stem}.ipynb", as_version=4)
            notes = problems_in_run(course, submission.student, stem, submitted)
            rows.append({**row, "auto_score": graded.code_score, "auto_max": graded.max_code_score,
                         "manual_max": graded.max_written_score, "status": "; ".join(["graded", *notes])})
            for g in sorted(graded.grades, key=lambda g: g.name):
                written = g.cell.cell_type == "markdown"
                exercises.append({"student": submission.student, "notebook": stem, "exercise": g.name,
                                  "kind": "written answer" if written else "autograded test",
                                  "score": "" if written and g.manual_score is None else g.score, "max_score": g.max_score})
            feedback = course / "feedback" / submission.student / ASSIGNMENT / f"{stem}.html"
            if feedback.is_file():
                (out / "feedback" / submission.student).mkdir(parents=True, exist_ok=True)
                shutil.copyfile(feedback, out / "feedback" / submission.student / f"{stem}.html")
    return rows, exercises


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def summary(exercises: list[dict]) -> list[dict]:
    """Per exercise: how many were graded, the mean points and how many got full marks."""
    table = {}
    for e in exercises:
        if e["score"] == "":
            continue
        entry = table.setdefault((e["notebook"], e["exercise"]), {"notebook": e["notebook"], "exercise": e["exercise"],
                                                                  "kind": e["kind"], "max_score": e["max_score"],
                                                                  "scores": []})
        entry["scores"].append(float(e["score"]))
    return [{**{k: v for k, v in entry.items() if k != "scores"}, "graded": len(entry["scores"]),
             "mean_score": round(sum(entry["scores"]) / len(entry["scores"]), 3),
             "full_marks": sum(s >= entry["max_score"] for s in entry["scores"])} for entry in table.values()]


def write_all(out: Path, rows: list[dict], exercises: list[dict]) -> None:
    _write_csv(out / "grades.csv", rows, GRADES_COLUMNS)
    _write_csv(out / "exercises.csv", exercises, EXERCISE_COLUMNS)
    _write_csv(out / "summary.csv", summary(exercises), SUMMARY_COLUMNS)
