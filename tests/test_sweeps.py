"""Sweeps: grid expansion, validation before running, and real parallel runs of notebook 01
in local processes and on a Dask LocalCluster bound to loopback."""
import os

import pandas as pd
import pytest

from bloodcells import cli, labs, sweeps

pytestmark = pytest.mark.slow  # runs notebooks in kernels


def test_grid_and_runs_expand_over_base():
    spec = {"base": {"quick": True}, "grid": {"seed": [0, 1], "epochs": [2, 3]}, "runs": [{"seed": 9}]}
    sets = sweeps.parameter_sets(spec)
    assert len(sets) == 5 and all(s["quick"] for s in sets)
    assert {"seed": 1, "epochs": 3, "quick": True} in sets and sets[-1] == {"quick": True, "seed": 9}


def test_bad_specs_are_rejected(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("seeds: [1, 2]\n")
    with pytest.raises(labs.LabError, match="needs a 'grid'"):
        sweeps.load_spec(path)
    with pytest.raises(labs.LabError, match="non-empty lists"):
        sweeps.parameter_sets({"grid": {"seed": 3}})


@pytest.mark.parametrize("text, message", [
    ("grid: {}\n", "no parameter sets"),
    ("grid: [seed, epochs]\n", "grid is list"),
    ("grid: {seed: 3}\n", "non-empty lists"),
    ("notebooks: '01'\ngrid: {seed: [1]}\n", "notebooks is str '01'; it should be a list"),
    ("base: [quick]\ngrid: {seed: [1]}\n", "base is list"),
    ("runs: {seed: 1}\n", "runs is dict"),
    ("runs: [seed]\n", "every entry of runs should be a mapping"),
    ("grid: {seed: [" + ", ".join(map(str, range(1000))) + "], epochs: [1, 2, 3]}\n", "3,000 parameter sets"),
])
def test_sweep_files_are_checked_in_the_kits_words_before_any_folder_exists(text, message, tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    assert cli.main(["labs", "sweep", str(path), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_large_sweep_runs_when_asked_for():
    spec = {"grid": {"seed": list(range(300))}}
    assert len(sweeps.parameter_sets(spec, max_sets=300)) == 300


def test_an_unreachable_scheduler_is_named_and_leaves_no_folder(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text("notebooks: ['01']\ngrid: {seed: [1]}\n")
    out = tmp_path / "out"
    assert cli.main(["labs", "sweep", str(path), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not out.exists() or not list(out.iterdir())


def test_ctrl_c_during_a_sweep_tabulates_the_sets_that_finished(tmp_path, monkeypatch, capsys):
    from concurrent.futures import Future

    calls = []

    class Executor:
        def submit(self, fn, selected, values, out, timeout):
            calls.append(values)
            if len(calls) == 2:
                raise KeyboardInterrupt
            future = Future()
            future.set_result({"folder": None, "ok": True, "failure": ""})
            return future

    monkeypatch.setattr(sweeps, "_executor", lambda jobs, scheduler: __import__("contextlib").nullcontext(Executor()))
    path = tmp_path / "sweep.yaml"
    path.write_text("notebooks: ['01']\ngrid: {seed: [1, 2, 3]}\n")
    assert cli.main(["labs", "sweep", str(path), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 130
    (folder,) = (tmp_path / "out").iterdir()
    table = pd.read_csv(folder / "comparison.csv")
    assert list(table["status"]) == ["ok", "failed", "failed"]
    assert "interrupted" in table["reason"].iloc[1] and (folder / "INTERRUPTED").is_file()
    assert "comparison.md tabulates the sets that finished" in capsys.readouterr().err


def test_bad_parameter_rejected_before_any_run(tmp_path):
    with pytest.raises(labs.LabError, match="unknown parameter"):
        sweeps.sweep({"notebooks": ["01"], "grid": {"sead": [1]}}, tmp_path)
    assert not list(tmp_path.iterdir())


def _check(folder, table):
    assert len(table) == 2 and (table["status"] == "ok").all()
    assert sorted(table["seed"]) == [0, 1]
    assert len({*table["lab_folder"]}) == 2  # each run in its own folder
    assert pd.read_csv(folder / "comparison.csv").shape[0] == 2 and (folder / "comparison.md").is_file()


def test_sweep_in_local_processes(tmp_path):
    spec = {"notebooks": ["01"], "base": {"data": "synthetic", "examples_per_class": 2}, "grid": {"seed": [0, 1]}}
    _check(*sweeps.sweep(spec, tmp_path, jobs=2, log=lambda *a: None))


def test_sweep_on_a_dask_cluster(tmp_path, capsys):
    distributed = pytest.importorskip("dask.distributed")
    grid = tmp_path / "grid.yaml"
    grid.write_text("notebooks: ['01']\nbase: {data: synthetic, examples_per_class: 2}\ngrid: {seed: [0, 1]}\n")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None, processes=True) as cluster:
        code = cli.main(["labs", "sweep", str(grid), "--scheduler", cluster.scheduler_address,
                         "--out", str(tmp_path / "out")])
    assert code == 0
    assert "Comparison table" in capsys.readouterr().out
    (folder,) = (tmp_path / "out").iterdir()
    _check(folder, pd.read_csv(folder / "comparison.csv"))


def test_a_kernel_killed_mid_sweep_leaves_the_other_sets_tabulated(tmp_path, write_notebook, kernel_crash):

    book = tmp_path / "book"
    book.mkdir()
    write_notebook(book / "01_maybe_dies.ipynb", "crash = False\nseed = 0", kernel_crash, "print(seed)")
    spec = {"notebooks": ["01"], "grid": {"crash": [False, True, False], "seed": [5]}}
    folder, table = sweeps.sweep(spec, tmp_path / "out", jobs=2, log=lambda *a: None, notebook_dir=book)
    assert list(table["status"]) == ["ok", "failed", "ok"]
    assert "DeadKernelError" in table["reason"][1] and table["reason"][0] == ""
    written = pd.read_csv(folder / "comparison.csv")
    assert len(written) == 3 and (folder / "comparison.md").is_file()


def _worker_dies_on_crash(selected, values, out, timeout):
    """Stands in for sweeps._run_one in forked workers: the worker process itself dies."""
    if values.get("crash"):
        os._exit(9)
    return {"folder": None, "ok": True, "failure": ""}


def test_a_dead_worker_process_is_a_failed_row_and_the_table_is_still_written(tmp_path, monkeypatch, write_notebook):

    book = tmp_path / "book"
    book.mkdir()
    write_notebook(book / "01_n.ipynb", "crash = False\nseed = 0", "print(seed)")
    monkeypatch.setattr(sweeps, "_run_one", _worker_dies_on_crash)  # workers are forked: they see it
    spec = {"notebooks": ["01"], "grid": {"crash": [True, False, False, False], "seed": [1]}}
    folder, table = sweeps.sweep(spec, tmp_path / "out", jobs=1, log=lambda *a: None, notebook_dir=book)
    assert list(table["status"]) == ["failed", "ok", "ok", "ok"]  # later sets got a new pool
    assert "the worker running it" in table["reason"][0] and "died" in table["reason"][0]
    assert len(pd.read_csv(folder / "comparison.csv")) == 4
