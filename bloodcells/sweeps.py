"""Class-scale lab sweeps: many parameter sets (one seed per student, epochs x learning rate),
each a full lab run in its own process, then one comparison table.

Runs go to local processes, or to an existing Dask cluster (``scheduler="tcp://host:8786"``)
when one machine is not enough. At most ``jobs`` runs are in flight at once either way.
"""
from __future__ import annotations

import itertools
import json
import math
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, ProcessPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bloodcells import labs
from bloodcells.config import ConfigError, load_yaml
from bloodcells.runs import new_run_dir


def load_spec(path: str | Path) -> dict:
    """Read and check a sweep file: ``notebooks`` (optional list), ``base`` parameters (mapping),
    and ``grid`` (mapping of lists: every combination) and/or ``runs`` (list of mappings)."""
    try:
        spec = load_yaml(Path(path).read_text(), str(path)) or {}
    except ConfigError as exc:
        raise labs.LabError(str(exc)) from None
    except OSError as exc:
        raise labs.LabError(f"cannot read the sweep file {path}: {exc.strerror or exc}") from None
    if not isinstance(spec, dict) or not ({"grid", "runs"} & set(spec)):
        raise labs.LabError(f"{path}: a sweep needs a 'grid' mapping of lists and/or a 'runs' list")
    unknown = set(spec) - {"notebooks", "base", "grid", "runs"}
    if unknown:
        raise labs.LabError(f"{path}: unknown keys {sorted(unknown)}; use notebooks, base, grid, runs")
    shapes = {"notebooks": (list, "a list of notebooks, e.g. notebooks: ['02', '04']"),
              "base": (dict, "a mapping of parameter names to values, e.g. base: {quick: true}"),
              "grid": (dict, "a mapping of parameter names to lists, e.g. grid: {seed: [1, 2, 3]}"),
              "runs": (list, "a list of mappings, e.g. runs: [{seed: 1}, {seed: 2, epochs: 5}]")}
    for key, (kind, example) in shapes.items():
        if spec.get(key) is not None and not isinstance(spec[key], kind):
            raise labs.LabError(f"{path}: {key} is {type(spec[key]).__name__} {spec[key]!r}; it should be {example}")
    if any(not isinstance(r, dict) for r in spec.get("runs") or []):
        raise labs.LabError(f"{path}: every entry of runs should be a mapping, e.g. {{seed: 1}}; got {spec['runs']!r}")
    return spec


def parameter_sets(spec: dict, max_sets: int = labs.MAX_SETS) -> list[dict]:
    """Every parameter set of a checked spec: the grid's combinations, then the runs, each over base."""
    base = spec.get("base") or {}
    grid = spec.get("grid") or {}
    bad = [k for k, v in grid.items() if not isinstance(v, list) or not v]
    if bad:
        raise labs.LabError(f"grid values must be non-empty lists (write [value] for one value); fix {bad}")
    runs = list(spec.get("runs") or [])
    count = (math.prod(len(v) for v in grid.values()) if grid else 0) + len(runs)
    if count == 0:
        raise labs.LabError("the sweep has no parameter sets: its grid is empty and it has no runs")
    if count > max_sets:
        raise labs.LabError(f"the sweep has {count:,} parameter sets, more than {max_sets}; "
                            "check the grid, or pass --max-sets to run that many")
    sets = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    return [{**base, **s} for s in sets + runs]


def _run_one(selected: list[str], values: dict, out: str, timeout: int = labs.CELL_TIMEOUT) -> dict:
    """One lab run, in a worker process; returns its summary (plain data, picklable)."""
    lab = labs.run([Path(p) for p in selected], values, out, log=lambda *a: None, timeout=timeout)
    return {"folder": str(lab.folder), "ok": lab.ok, "failure": lab.failure}


def _collect(future) -> dict:
    """A finished run's summary; a worker that died (out of memory) or a lost cluster task becomes a
    failed row instead of ending the sweep."""
    try:
        return future.result()
    except Exception as exc:
        return {"folder": None, "ok": False, "failure": f"the worker running it (or one beside it in its pool) died: "
                                                        f"{type(exc).__name__}: {exc}"}


def sweep(spec: dict, out: str | Path = "runs", jobs: int = 2, scheduler: str | None = None,
          log=print, notebook_dir: Path = labs.NOTEBOOK_DIR, timeout: int = labs.CELL_TIMEOUT,
          max_sets: int = labs.MAX_SETS) -> tuple[Path, pd.DataFrame]:
    """Run every parameter set (validated up front) and write ``comparison.csv``/``.md``, whatever
    happens to the single runs (each failure is a row with its reason)."""
    selected = labs.select(spec.get("notebooks"), notebook_dir)
    sets = parameter_sets(spec, max_sets)
    for values in sets:
        labs.plan(selected, values)  # reject bad names or types before anything runs
    with _executor(jobs, scheduler) as executor:  # a cluster that cannot be reached fails before any folder exists
        folder = new_run_dir(out, "sweep")
        log(f"sweep of {len(sets)} runs into {folder} ({'dask ' + scheduler if scheduler else f'{jobs} processes'})")
        pending, results = {}, {}
        try:
            for i, values in enumerate(sets):
                if len(pending) >= jobs:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[pending.pop(future)] = _collect(future)
                run_out = str((folder / f"run{i:03d}").resolve())
                pending[executor.submit(_run_one, [str(p) for p in selected], values, run_out, timeout)] = i
            for future in wait(pending).done:
                results[pending[future]] = _collect(future)
        except KeyboardInterrupt:  # tabulate what finished, then stop
            for future in pending:
                future.cancel()
            unfinished = {"folder": None, "ok": False, "failure": "not finished: the sweep was interrupted (Ctrl-C)"}
            _write_comparison(folder, sets, [results.get(i, unfinished) for i in range(len(sets))])
            (folder / "INTERRUPTED").write_text(f"{len(results)} of {len(sets)} parameter sets finished\n")
            raise
    return folder, _write_comparison(folder, sets, [results[i] for i in range(len(sets))])


def _write_comparison(folder: Path, sets: list[dict], results: list[dict]) -> pd.DataFrame:
    table = comparison(sets, results)
    table.to_csv(folder / "comparison.csv", index=False)
    (folder / "comparison.md").write_text(labs.markdown_table(table) + "\n")
    return table


@contextmanager
def _executor(jobs: int, scheduler: str | None):
    """A concurrent.futures executor: local processes, or a Dask cluster's executor."""
    if scheduler is None:
        workers = _LocalWorkers(jobs)
        try:
            yield workers
        finally:
            workers.pool.shutdown()
        return
    from dask.distributed import Client

    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise labs.LabError(f"cannot reach the Dask scheduler {scheduler!r} ({type(exc).__name__}: {exc}); "
                            "check the address (tcp://host:8786) and that the scheduler is running") from None
    with client:
        yield client.get_executor(pure=False)


class _LocalWorkers:
    """Local worker processes. A worker that dies (out of memory) breaks its pool: the sets in flight
    there become failed rows, and the next set gets a new pool instead of failing too."""

    def __init__(self, jobs: int):
        self.jobs, self.pool = jobs, ProcessPoolExecutor(max_workers=jobs)

    def submit(self, fn, *args):
        try:
            return self.pool.submit(fn, *args)
        except BrokenExecutor:
            self.pool.shutdown(wait=False)
            self.pool = ProcessPoolExecutor(max_workers=self.jobs)
            return self.pool.submit(fn, *args)


def comparison(sets: list[dict], results: list[dict]) -> pd.DataFrame:
    """One row per model run of each parameter set: the parameters, then the key metrics."""
    rows = []
    for values, result in zip(sets, results):
        summary_file = Path(result["folder"]) / "summary.json" if result["folder"] else None
        summary = json.loads(summary_file.read_text()) if summary_file and summary_file.is_file() else {"runs": []}
        params = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in values.items()}
        status = "ok" if result["ok"] else "failed"
        for run in summary["runs"] or [{}]:
            rows.append({**params, "status": status, "model": run.get("model", ""),
                         "accuracy": run.get("accuracy"), "macro_f1": run.get("macro_f1"),
                         "reason": " | ".join(result["failure"].splitlines()) if not result["ok"] else "",
                         "lab_folder": result["folder"] or ""})
    return pd.DataFrame(rows)
