"""``bloodcells labs list|params|run|sweep|release|publish|grade`` and ``bloodcells data prepare``: the instructor's command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bloodcells import grading, labs
from bloodcells.runs import RunFolderError

#: The optional dependencies some commands need, and the extra that installs each.
EXTRA_FOR = {"papermill": "instructor", "nbconvert": "instructor", "nbgrader": "instructor",
             "dask": "cluster", "distributed": "cluster"}


def _list(args) -> int:
    from bloodcells.course import NOTEBOOKS

    for nb in labs.notebooks():
        print(nb.stem)
        declared = NOTEBOOKS[nb.name[:2]].params if nb.name[:2] in NOTEBOOKS else {}
        for name, spec in labs.parameters(nb).items():
            allowed = declared[name].describe() if name in declared else spec["type"]
            comment = f"  # {spec['help']}" if spec["help"] else ""
            print(f"    {name} = {spec['default']}  [{allowed}]{comment}")
    return 0


INTERRUPTED = {  # what Ctrl-C leaves behind, by command
    "run": "the lab folder is marked INTERRUPTED and holds a summary of what ran",
    "prepare": "folders are built under a hidden name and renamed when complete, so nothing half-built is "
               "left; run it again to finish",
    "publish": "no shipped notebook was replaced",
    "release": "editions are built in a scratch folder, so no half-written edition is left",
}


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1, with the kit's wording when it is not."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _positive_number(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _params(args) -> int:
    from bloodcells.course import write_parameters_cells

    differed = write_parameters_cells(labs.select(args.notebooks), check=args.check)
    if args.check:
        print("parameters cells differ from bloodcells.course: " + ", ".join(differed) if differed
              else "every parameters cell matches bloodcells.course")
        return 1 if differed else 0
    print("rewrote the parameters cell of: " + (", ".join(differed) or "none (all matched)"))
    return 0


def _grade(args) -> int:
    rows = grading.grade(args.submissions, args.out, labs.select(args.notebooks),
                         labs.parse_assignments(args.param), timeout=args.timeout, memory_mb=args.memory_mb,
                         max_output_mb=args.max_output_mb)
    graded = [r for r in rows if r["status"].startswith("graded")]
    print(f"\n{len(graded)} of {len(rows)} notebook submissions graded; grades.csv, exercises.csv, summary.csv "
          f"and feedback/ in {args.out}")
    for row in rows:
        if not row["status"].startswith("graded") or ";" in row["status"]:
            print(f"  {row['student']} {row['notebook']}: {row['status']}")
    return 0


def _run(args) -> int:
    values = labs.parse_assignments(args.param, args.file)
    lab = labs.run(labs.select(args.notebooks), values, args.out, timeout=args.timeout, max_output_mb=args.max_output_mb)
    print(f"\nSummary ({lab.folder / 'summary.md'}):\n")
    print((lab.folder / "summary.md").read_text())
    if not lab.ok:
        print(f"FAILED: {lab.failure}", file=sys.stderr)
        return 1
    print(f"Executed notebooks, HTML and run folders are in {lab.folder}")
    return 0


def _release(args) -> int:
    from bloodcells.release import release

    selected = labs.select(args.notebooks)
    try:
        counts = release(selected, args.out)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out).expanduser().resolve()
    for stem, kinds in counts.items():
        print(f"{stem}: " + ", ".join(f"{n} {kind}" for kind, n in kinds.items()))
    print(f"student edition (solutions replaced, exercise outputs cleared): {out / 'student'}")
    print(f"solution edition: {out / 'solutions'}")
    return 0


def _publish(args) -> int:
    import os

    from bloodcells.release import publish

    data_dir = args.data_dir or os.environ.get("BLOODCELLS_DATA_DIR")
    if not data_dir:
        print("error: give --data-dir (or set BLOODCELLS_DATA_DIR) to the real data folder", file=sys.stderr)
        return 2
    try:
        for nb in publish(labs.select(args.notebooks), data_dir):
            print(f"outputs stored in {nb}")
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _sweep(args) -> int:
    from bloodcells import sweeps

    try:
        folder, table = sweeps.sweep(sweeps.load_spec(args.grid), args.out, args.jobs, args.scheduler,
                                     timeout=args.timeout, max_sets=args.max_sets)
    except KeyboardInterrupt:
        print("interrupted: the sweep folder is marked INTERRUPTED, and comparison.md tabulates the sets that "
              "finished", file=sys.stderr)
        return 130
    print(table.drop(columns="lab_folder").to_markdown(index=False))
    print(f"\nComparison table: {folder / 'comparison.md'} (and .csv)")
    return 0 if (table["status"] == "ok").all() else 1


def _prepare(args) -> int:
    from bloodcells.data.errors import DataError
    from bloodcells.data.prepare import prepare

    try:
        done = prepare(args.out, args.size, args.from_pbc, args.from_bccd)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path, built in done:
        print(f"{'made' if built else 'already there'}: {path}")
    out = Path(args.out).expanduser().resolve()
    print(f"\nPoint the labs at it: data_dir={out}, or export BLOODCELLS_DATA_DIR={out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bloodcells", description="bloodcells course kit")
    sub = parser.add_subparsers(dest="command", required=True)
    lab_parser = sub.add_parser("labs", help="run the course notebooks as parametrized labs")
    lab_sub = lab_parser.add_subparsers(dest="action", required=True)
    lab_sub.add_parser("list", help="the ordered notebooks and their parameters").set_defaults(func=_list)
    params_parser = lab_sub.add_parser("params", help="write each notebook's parameters cell from bloodcells.course")
    params_parser.add_argument("notebooks", nargs="*", help="numbers (02), stems or file names (default: all)")
    params_parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a cell differs")
    params_parser.set_defaults(func=_params)
    run_parser = lab_sub.add_parser("run", help="run notebooks (default: all, in order) into a new run folder")
    run_parser.add_argument("notebooks", nargs="*", help="numbers (02), stems or file names")
    run_parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    run_parser.add_argument("-f", "--file", action="append", default=[], metavar="PARAMS.yaml")
    run_parser.add_argument("--out", default="runs", help="folder for the new run folder (default: runs)")
    run_parser.add_argument("--timeout", type=_positive_int, default=labs.CELL_TIMEOUT,
                            help=f"seconds one cell may run before its notebook fails (default {labs.CELL_TIMEOUT})")
    run_parser.add_argument("--max-output-mb", type=_positive_number, default=labs.MAX_OUTPUT_MB,
                            help=f"cap on one notebook's stored outputs (default {labs.MAX_OUTPUT_MB})")
    run_parser.set_defaults(func=_run)
    release_parser = lab_sub.add_parser("release", help="write student and solution editions (nbgrader)")
    release_parser.add_argument("notebooks", nargs="*", help="numbers (02), stems or file names (default: all)")
    release_parser.add_argument("--out", required=True, help="new folder for student/ and solutions/")
    release_parser.set_defaults(func=_release)
    grade_parser = lab_sub.add_parser("grade", help="autograde a class's notebooks with nbgrader, each in a sandbox")
    grade_parser.add_argument("submissions", help="folder with one folder per student (or nbgrader's submitted/)")
    grade_parser.add_argument("notebooks", nargs="*", help="notebooks to grade: numbers (02), stems (default: all)")
    grade_parser.add_argument("--out", required=True, help="folder for grades.csv, feedback/ and the gradebook")
    grade_parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                              help="what the graded notebooks run with (default: quick=true, data=synthetic)")
    grade_parser.add_argument("--timeout", type=_positive_int, default=grading.CELL_TIMEOUT,
                              help=f"seconds per cell (default {grading.CELL_TIMEOUT})")
    grade_parser.add_argument("--memory-mb", type=_positive_int, default=grading.MEMORY_MB,
                              help=f"memory per kernel (default {grading.MEMORY_MB})")
    grade_parser.add_argument("--max-output-mb", type=_positive_int, default=grading.MAX_OUTPUT_MB,
                              help=f"largest file a notebook may write (default {grading.MAX_OUTPUT_MB})")
    grade_parser.set_defaults(func=_grade)
    publish_parser = lab_sub.add_parser(
        "publish", help="re-run the notebooks (quick, real data) and store their outputs in notebooks/")
    publish_parser.add_argument("notebooks", nargs="*", help="numbers (02), stems or file names (default: all)")
    publish_parser.add_argument("--data-dir", help="real data folder (default: $BLOODCELLS_DATA_DIR)")
    publish_parser.set_defaults(func=_publish)
    sweep_parser = lab_sub.add_parser("sweep", help="run many parameter sets in parallel, then compare")
    sweep_parser.add_argument("grid", help="YAML with notebooks, base, grid and/or runs")
    sweep_parser.add_argument("--jobs", type=_positive_int, default=2, help="runs in flight at once (default 2)")
    sweep_parser.add_argument("--timeout", type=_positive_int, default=labs.CELL_TIMEOUT,
                              help=f"seconds one cell may run before its notebook fails (default {labs.CELL_TIMEOUT})")
    sweep_parser.add_argument("--max-sets", type=_positive_int, default=labs.MAX_SETS,
                              help=f"refuse sweeps with more parameter sets than this (default {labs.MAX_SETS})")
    sweep_parser.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    sweep_parser.add_argument("--out", default="runs", help="folder for the new sweep folder (default: runs)")
    sweep_parser.set_defaults(func=_sweep)
    data_parser = sub.add_parser("data", help="get the labs' real data ready ahead of time")
    data_sub = data_parser.add_subparsers(dest="action", required=True)
    prepare_parser = data_sub.add_parser(
        "prepare", help="BloodMNIST for lab 1, the white cells for lab 2 (and an external set) into one folder")
    prepare_parser.add_argument("--out", required=True, help="data folder to fill (DIR/medmnist, DIR/wbc5, ...)")
    prepare_parser.add_argument("--size", type=int, default=128, choices=(64, 128, 224),
                                help="BloodMNIST size lab 2's white cells are built from (default 128)")
    prepare_parser.add_argument("--from-pbc", metavar="PATH",
                                help="build the white cells from the PBC archive (folder or zip) instead")
    prepare_parser.add_argument("--from-bccd", metavar="PATH",
                                help="also build external/bccd from a BCCD_Dataset checkout (evaluation only)")
    prepare_parser.set_defaults(func=_prepare)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (labs.LabError, RunFolderError, grading.GradingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRA_FOR.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: this command needs {exc.name}, which comes with the kit's [{extra}] extra: "
              f"pip install 'bloodcells[{extra}]' (or `make install`, which installs every extra)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: {INTERRUPTED.get(args.action, 'nothing was left half-written')}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
