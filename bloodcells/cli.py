"""``bloodcells labs list|run|sweep``: the instructor's command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bloodcells import labs


def _list(args) -> int:
    from bloodcells.config import NOTEBOOKS

    for nb in labs.notebooks():
        print(nb.stem)
        declared = NOTEBOOKS.get(nb.name[:2], {})
        for name, spec in labs.parameters(nb).items():
            allowed = declared[name].describe() if name in declared else spec["type"]
            comment = f"  # {spec['help']}" if spec["help"] else ""
            print(f"    {name} = {spec['default']}  [{allowed}]{comment}")
    return 0


def _run(args) -> int:
    values = labs.parse_assignments(args.param, args.file)
    lab = labs.run(labs.select(args.notebooks), values, args.out)
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

    folder, table = sweeps.sweep(sweeps.load_spec(args.grid), args.out, args.jobs, args.scheduler)
    print(table.drop(columns="lab_folder").to_markdown(index=False))
    print(f"\nComparison table: {folder / 'comparison.md'} (and .csv)")
    return 0 if (table["status"] == "ok").all() else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bloodcells", description="bloodcells course kit")
    sub = parser.add_subparsers(dest="command", required=True)
    lab_parser = sub.add_parser("labs", help="run the course notebooks as parametrized labs")
    lab_sub = lab_parser.add_subparsers(dest="action", required=True)
    lab_sub.add_parser("list", help="the ordered notebooks and their parameters").set_defaults(func=_list)
    run_parser = lab_sub.add_parser("run", help="run notebooks (default: all, in order) into a new run folder")
    run_parser.add_argument("notebooks", nargs="*", help="numbers (02), stems or file names")
    run_parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    run_parser.add_argument("-f", "--file", action="append", default=[], metavar="PARAMS.yaml")
    run_parser.add_argument("--out", default="runs", help="folder for the new run folder (default: runs)")
    run_parser.set_defaults(func=_run)
    release_parser = lab_sub.add_parser("release", help="write student and solution editions (nbgrader)")
    release_parser.add_argument("notebooks", nargs="*", help="numbers (02), stems or file names (default: all)")
    release_parser.add_argument("--out", required=True, help="new folder for student/ and solutions/")
    release_parser.set_defaults(func=_release)
    publish_parser = lab_sub.add_parser(
        "publish", help="re-run the notebooks (quick, real data) and store their outputs in notebooks/")
    publish_parser.add_argument("notebooks", nargs="*", help="numbers (02), stems or file names (default: all)")
    publish_parser.add_argument("--data-dir", help="real data folder (default: $BLOODCELLS_DATA_DIR)")
    publish_parser.set_defaults(func=_publish)
    sweep_parser = lab_sub.add_parser("sweep", help="run many parameter sets in parallel, then compare")
    sweep_parser.add_argument("grid", help="YAML with notebooks, base, grid and/or runs")
    sweep_parser.add_argument("--jobs", type=int, default=2, help="runs in flight at once (default 2)")
    sweep_parser.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    sweep_parser.add_argument("--out", default="runs", help="folder for the new sweep folder (default: runs)")
    sweep_parser.set_defaults(func=_sweep)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except labs.LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the lab folder is marked INTERRUPTED and holds a summary of what ran", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
