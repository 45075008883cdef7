"""Instructor labs: run the ordered notebooks through papermill into a new run folder.

Parameters are checked against each notebook's ``parameters`` cell before anything runs; each
goes only to the notebooks that declare it. Results (executed notebooks, HTML, the notebooks'
own run folders) land in a new folder, with a ``summary.md``/``summary.json`` of key metrics.
"""
from __future__ import annotations

import ast
import errno
import html
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from bloodcells.config import ConfigError, load_yaml
from bloodcells.course import NOTEBOOKS
from bloodcells.runs import new_run_dir, write_json

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


class LabError(ValueError):
    """A lab request that cannot run as given; the message says how to fix it."""


def notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    found = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise LabError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return found


def parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's declared parameters: name -> {type, default, help} (papermill's inspection)."""
    import papermill

    return {name: {"type": _declared_type(p), "default": p["default"],
                   "help": p["help"]}
            for name, p in papermill.inspect_notebook(str(notebook)).items()}


def _declared_type(param: dict) -> str:
    """The annotation if any, else the type of the default literal (``28`` -> int; None stays open)."""
    if param["inferred_type_name"] not in (None, "None"):
        return param["inferred_type_name"]
    try:
        return type(ast.literal_eval(param["default"])).__name__
    except (ValueError, SyntaxError):
        return "any"


def select(names: list[str] | None, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """Notebooks by number ("02"), stem or file name; all, in order, when none are named."""
    available = notebooks(folder)
    if not names:
        return available
    chosen = []
    for name in names:
        match = [nb for nb in available if name in (nb.name, nb.stem, nb.name[:2])]
        if not match:
            raise LabError(f"unknown notebook {name!r}; choose from {[nb.stem for nb in available]}")
        chosen += [nb for nb in match if nb not in chosen]
    return sorted(chosen)


def parse_assignments(pairs: list[str], files: list[str] | None = None) -> dict:
    """``name=value`` pairs (values read as YAML: 3, 0.5, true, [a, b], none) after YAML files."""
    values: dict = {}
    try:
        for path in files or []:
            loaded = load_yaml(Path(path).read_text(), str(path)) or {}
            if not isinstance(loaded, dict):
                raise LabError(f"{path} must hold a mapping of parameter names to values")
            values.update(loaded)
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            if not sep or not name.strip():
                raise LabError(f"-p expects name=value, got {pair!r}")
            if re.search(r"(^|\s)#", raw):  # YAML would cut the value there without a word
                raise LabError(f"-p {pair!r}: ' #' starts a YAML comment and would cut the value; "
                               f"quote it (-p \"{name}='...'\") or leave the comment out")
            values[name.strip()] = load_yaml(raw, f"-p {pair!r}")
    except ConfigError as exc:
        raise LabError(str(exc)) from None
    return values


_TYPES = {"NoneType": (object,), "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "list": (list,),
          "dict": (dict,)}


def _type_ok(value, declared: str) -> bool:
    if value is None or declared not in _TYPES:
        return True
    if isinstance(value, bool) and declared in ("int", "float"):
        return False
    return isinstance(value, _TYPES[declared])


def _problem(nb: Path, name: str, value, spec: dict) -> str | None:
    """Why ``value`` cannot go to ``nb``'s parameter ``name``: checked against the declaration in
    :data:`bloodcells.course.NOTEBOOKS` (type, choices, range), else the parameter cell's type."""
    declared = NOTEBOOKS[nb.name[:2]].params.get(name) if nb.name[:2] in NOTEBOOKS else None
    if declared is not None:
        try:
            declared.check(name, value)
        except ConfigError as exc:
            return f"{nb.stem}: {exc}."
        return None
    if not _type_ok(value, spec["type"]):
        return f"{nb.stem}: {name}={value!r} should be {spec['type']} (default {spec['default']})."
    return None


def plan(selected: list[Path], values: dict, per_notebook: dict[str, dict] | None = None) -> dict[Path, dict]:
    """Parameters for each notebook (``values`` to every notebook that declares them, then
    ``per_notebook["02"]`` to that notebook only); unknown names, wrong types, choices and ranges
    are rejected up front, before any notebook runs."""
    declared = {nb: parameters(nb) for nb in selected}
    for nb, params in declared.items():
        extra = (per_notebook or {}).get(nb.name[:2], {})
        wrong = sorted(set(extra) - set(params))
        if wrong:
            raise LabError(f"{nb.stem} has no parameter(s) {wrong}; it has {', '.join(params)}")
    known = {name for params in declared.values() for name in params}
    unknown = sorted(set(values) - known)
    problems = [f"unknown parameter(s) {unknown}."] if unknown else []
    for nb, params in declared.items():
        given = {**{k: v for k, v in values.items() if k in params}, **(per_notebook or {}).get(nb.name[:2], {})}
        problems += [p for name, value in given.items() if (p := _problem(nb, name, value, params[name]))]
    if problems:
        valid = "\n".join(f"  {nb.stem}: {', '.join(params)}" for nb, params in declared.items())
        raise LabError("\n".join(problems) + f"\nValid parameters per notebook (bloodcells labs list):\n{valid}")
    return {nb: {k: _absolute_paths(k, v) for k, v in {**values, **(per_notebook or {}).get(nb.name[:2], {})}.items()
                 if k in params} for nb, params in declared.items()}


#: Parameters that name folders or files (declared with ``path=True``).
PATH_PARAMS = frozenset(name for nb in NOTEBOOKS.values() for name, p in nb.params.items() if p.path)


def _absolute_paths(name: str, value):
    """Folders given on the command line mean folders relative to where it was typed (kernels run
    in notebooks/), with ``~`` expanded."""
    if name in PATH_PARAMS and isinstance(value, str) and value != "auto":
        return str(Path(value).expanduser().resolve())
    if name in PATH_PARAMS and isinstance(value, list):
        return [str(Path(v).expanduser().resolve()) for v in value]
    return value


@dataclass
class LabRun:
    folder: Path
    results: dict[str, str] = field(default_factory=dict)  # notebook stem -> ok/failed/skipped
    failure: str = ""

    @property
    def ok(self) -> bool:
        return all(status == "ok" for status in self.results.values())


#: Per-cell time limit: lab 2's longest cell (the full CPU recipe's fine-tuning) takes about 20
#: minutes on 2 cores, so an hour is generous; a cell stuck in a loop fails after it, not never.
CELL_TIMEOUT = 3600
#: Cap on one executed notebook's stored outputs (the shipped ones are 1-3 MB).
MAX_OUTPUT_MB = 50
#: More sweep parameter sets than this need ``--max-sets``: a typo in a grid (a list of a thousand
#: seeds) should not start hours of runs unasked.
MAX_SETS = 200


def run(selected: list[Path], values: dict, out: str | Path = "runs", log=print,
        per_notebook: dict[str, dict] | None = None, timeout: int = CELL_TIMEOUT,
        max_output_mb: float = MAX_OUTPUT_MB) -> LabRun:
    """Execute the notebooks in order into a new run folder and write the summary.

    Every way a notebook can fail (a cell's error, a dead kernel, a cell over ``timeout`` seconds,
    outputs over ``max_output_mb``, a full disk, its HTML export) is that notebook's failed row
    with the reason; the later notebooks still run and the summary is always written."""
    import papermill
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    jobs = plan(selected, values, per_notebook)
    lab = LabRun(new_run_dir(out, "labs"))
    log(f"run folder: {lab.folder}")
    for nb, params in jobs.items():
        number = nb.name[:2]
        reads = NOTEBOOKS[number].reads_runs_of if number in NOTEBOOKS else ()
        failed_deps = [d for d in reads if lab.results.get(_stem(jobs, d)) not in (None, "ok")]
        if failed_deps:
            lab.results[nb.stem] = "skipped"
            log(f"[skip] {nb.stem}: depends on failed notebook(s) {failed_deps}")
            continue
        declared = parameters(nb)
        if "output_dir" in declared:
            params = {**params, "output_dir": str((lab.folder / nb.stem).resolve())}  # kernels run in notebooks/
        if "runs_root" in declared:  # notebook 04 analyses this lab's runs unless told otherwise
            params = {"runs_root": str(lab.folder.resolve()), **params}
        executed = lab.folder / nb.name
        log(f"[run ] {nb.stem} {params}")
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(nb), str(executed), parameters=params, kernel_name="python3",
                                       cwd=str(nb.parent), progress_bar=True, execution_timeout=timeout)
            _check_output_size(executed, max_output_mb)
            _export_html(executed)
            lab.results[nb.stem] = "ok"
            log(f"[ ok ] {nb.stem} in {time.perf_counter() - start:.0f} s")
        except PapermillExecutionError as exc:
            _failed(lab, nb, f"failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
                             f"{exc.ename}: {exc.evalue}", executed, log)
        except CellTimeoutError:
            _failed(lab, nb, f"failed: a cell ran longer than the per-cell limit of {timeout} s "
                             "(raise it with --timeout if the cell is meant to take that long)", executed, log)
        except OutputTooLarge as exc:
            _failed(lab, nb, f"failed: {exc}", executed, log)
        except KeyboardInterrupt:
            _failed(lab, nb, "interrupted (Ctrl-C)", executed, log, status="interrupted")
            for later in list(jobs)[list(jobs).index(nb) + 1:]:
                lab.results[later.stem] = "not run"
            (lab.folder / "INTERRUPTED").write_text(lab.failure + "\n")
            write_summary(lab)
            raise
        except Exception as exc:  # a dead kernel (out of memory, segfault), a full disk, ...
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                reason = f"the disk is full ({exc.filename or 'while writing'}); free space and run it again"
            else:
                reason = f"{type(exc).__name__}: {str(exc).strip() or 'no message'}"
            _failed(lab, nb, f"failed: {reason}", executed, log)
    write_summary(lab)
    return lab


class OutputTooLarge(Exception):
    """An executed notebook's outputs are over the cap; its large outputs were cut."""


def _check_output_size(executed: Path, max_mb: float) -> None:
    """Over ``max_mb``: replace every output over a tenth of the cap with a note, keep the rest."""
    size_mb = executed.stat().st_size / 2**20
    if size_mb <= max_mb:
        return
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        for i, output in enumerate(cell.get("outputs", [])):
            if len(json.dumps(output)) > max_mb * 2**20 / 10:
                cell.outputs[i] = nbformat.v4.new_output("stream", name="stderr",
                                                         text="[output cut by the lab runner: over its size cap]\n")
    nbformat.write(nb, executed)
    raise OutputTooLarge(f"its outputs came to {size_mb:.0f} MB, over the cap of {max_mb:g} MB "
                         "(--max-output-mb); the large outputs were cut from the stored notebook")


def _failed(lab: LabRun, nb: Path, reason: str, executed: Path, log, status: str = "failed") -> None:
    """Record a notebook's failure with its reason and the partial notebook; the run goes on."""
    lab.results[nb.stem] = status
    partial = executed if executed.exists() else "none written"
    message = f"{nb.stem} {reason}\n  partial output notebook: {partial}"
    lab.failure = f"{lab.failure}\n{message}" if lab.failure else message
    log(f"[FAIL] {message}")


def _stem(jobs, number: str) -> str | None:
    return next((nb.stem for nb in jobs if nb.name.startswith(number)), None)


def _export_html(notebook: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    notebook.with_suffix(".html").write_text(body)


def collect_metrics(folder: Path) -> list[dict]:
    """One row per model run (any ``metrics.json`` below the lab folder)."""
    rows = []
    for path in sorted(folder.glob("*/**/metrics.json")):
        m = json.loads(path.read_text())
        rows.append({"notebook": path.relative_to(folder).parts[0], "run": path.parent.name,
                     "model": m.get("model", ""), "dataset": m.get("dataset", ""),
                     "accuracy": m.get("accuracy"), "macro_f1": m.get("macro_f1"),
                     "train_seconds": m.get("train_seconds")})
    return rows


def markdown_table(table) -> str:
    """A DataFrame as a Markdown table whose texts (names from run folders, anyone's) stay text when
    rendered: HTML escaped, table pipes escaped."""
    safe = table.apply(lambda col: col.map(lambda v: html.escape(v).replace("|", "\\|") if isinstance(v, str) else v))
    return safe.to_markdown(index=False)


def write_summary(lab: LabRun) -> str:
    import pandas as pd

    rows = collect_metrics(lab.folder)
    write_json(lab.folder / "summary.json", {"notebooks": lab.results, "runs": rows, "failure": lab.failure})
    status = pd.DataFrame({"notebook": list(lab.results), "status": list(lab.results.values())})
    text = status.to_markdown(index=False) + "\n"
    if rows:
        metrics = pd.DataFrame(rows).drop(columns="run").round(4)
        text += "\n" + markdown_table(metrics) + "\n"
    (lab.folder / "summary.md").write_text(text)
    return text
