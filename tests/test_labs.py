"""The lab runner: parameter checks before anything runs, and a papermill smoke run of every
notebook (the suite's one run of them, SYNTHETIC, in the course_run fixture)."""
import json
import re
import sys

import pytest

from bloodcells import cli, labs, sweeps


def test_list_shows_every_notebook_and_parameter(capsys):
    assert cli.main(["labs", "list"]) == 0
    out = capsys.readouterr().out
    assert "01_explore_and_preprocess" in out and "02_cnn_keras" in out
    assert "quick = False  [bool]" in out and "image_size = 28  [one of 28, 64, 128, 224]" in out
    assert "epochs = None  [int in [1, 500] or None]" in out


def test_unknown_parameter_lists_valid_names(capsys, tmp_path):
    assert cli.main(["labs", "run", "-p", "epoch=3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown parameter(s) ['epoch']" in err and "02_cnn_keras:" in err and "epochs" in err
    assert not list(tmp_path.iterdir())  # rejected before anything ran


def test_wrong_type_rejected():
    with pytest.raises(labs.LabError, match="seed='x' should be int"):
        labs.plan(labs.select(["01"]), {"seed": "x"})
    with pytest.raises(labs.LabError, match="quick=1 should be bool"):
        labs.plan(labs.select(["02"]), {"quick": 1})


@pytest.mark.parametrize("pair, message", [
    ("epochs=abc", "epochs='abc' should be int"), ("epochs=-1", "out of range"), ("image_size=0", "out of range"),
    ("data=REAL", "choose from"), ("backbone=resnet19", "choose from"), ("learning_rate=-1", "out of range"),
])
def test_bad_values_rejected_before_anything_runs(pair, message, capsys, tmp_path):
    assert cli.main(["labs", "run", "-p", pair, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Valid parameters per notebook" in err
    assert not list(tmp_path.iterdir())


def test_relative_folders_mean_relative_to_where_the_command_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jobs = labs.plan(labs.select(["03"]), {"data_dir": "mydata", "external_dir": "~/bccd"})
    params = next(iter(jobs.values()))
    assert params["data_dir"] == str(tmp_path / "mydata")
    assert params["external_dir"] == str(labs.Path.home() / "bccd")


def test_parameters_go_only_to_notebooks_that_declare_them():
    jobs = labs.plan(labs.select(None), {"quick": True, "seed": 3})
    by_number = {nb.name[:2]: params for nb, params in jobs.items()}
    assert by_number["01"] == {"seed": 3} and by_number["02"] == {"quick": True, "seed": 3}
    assert by_number["04"] == {}
    jobs = labs.plan(labs.select(["01", "02"]), {"quick": True}, per_notebook={"02": {"quick": False}})
    assert [params for params in jobs.values()] == [{}, {"quick": False}]
    with pytest.raises(labs.LabError, match="has no parameter"):
        labs.plan(labs.select(["01"]), {}, per_notebook={"01": {"quick": True}})


def test_parse_assignments_reads_yaml_values(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("seed: 5\nmodels: [seed]\n")
    values = labs.parse_assignments(["epochs=2", "data_dir=null", "seed=6"], [str(f)])
    assert values == {"seed": 6, "models": ["seed"], "epochs": 2, "data_dir": None}
    with pytest.raises(labs.LabError, match="name=value"):
        labs.parse_assignments(["epochs"])


def test_numbers_are_read_as_people_write_them(tmp_path):
    """1e-3 is a float (YAML 1.1 reads a string) in -p, in -f files and in sweep files."""
    f = tmp_path / "p.yaml"
    f.write_text("learning_rate: 3e-4  # a comment in a file is fine\nweight_decay: 5E-4\n")
    values = labs.parse_assignments(["lr_unfrozen=1e-3", "epochs=12"], [str(f)])
    assert values == {"learning_rate": 3e-4, "weight_decay": 5e-4, "lr_unfrozen": 1e-3, "epochs": 12}
    assert all(isinstance(values[k], float) for k in ("learning_rate", "weight_decay", "lr_unfrozen"))
    labs.plan(labs.select(["02", "03"]), values)  # accepted by the range checks
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("grid:\n  learning_rate: [1e-3, 3e-3]\n")
    assert sweeps.parameter_sets(sweeps.load_spec(sweep)) == [{"learning_rate": 1e-3}, {"learning_rate": 3e-3}]


@pytest.mark.parametrize("pair, message", [
    ("seed=010", "not a plain decimal integer"),  # YAML 1.1: octal 8
    ("epochs=1_000", "not a plain decimal integer"),
    ("external_dir=/data/bccd #the other lab", "starts a YAML comment"),
    ("learning_rate=.nan", "not a finite number"),
    ("learning_rate=.inf", "not a finite number"),
])
def test_values_that_yaml_would_change_silently_are_refused(pair, message, capsys, tmp_path):
    assert cli.main(["labs", "run", "-p", pair, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_a_missing_extra_is_named_with_the_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nbgrader", None)  # as if installed without [instructor]
    assert cli.main(["labs", "release", "--out", str(tmp_path / "edition")]) == 2
    err = capsys.readouterr().err
    assert "nbgrader" in err and "pip install 'bloodcells[instructor]'" in err


def test_unknown_notebook():
    with pytest.raises(labs.LabError, match="unknown notebook '09'"):
        labs.select(["09"])


@pytest.mark.slow
def test_every_notebook_runs_in_order_and_the_summary_names_its_runs(course_run):
    lab = course_run
    for nb in labs.notebooks():
        assert (lab.folder / nb.name).is_file() and (lab.folder / nb.with_suffix(".html").name).is_file()
    summary = json.loads((lab.folder / "summary.json").read_text())
    models = {row["model"]: row for row in summary["runs"]}
    assert set(models) == {"seed", "improved", "transfer-efficientnet_lite0"}
    for row in models.values():
        assert "SYNTHETIC" in row["dataset"]
        # Three epochs on 1,000 images (lab 1), 12 per class (lab 2). Chance is 12.5% (lab 1) and 20% (lab 2).
        assert row["accuracy"] > 0.6 and 0 < row["macro_f1"] <= 1, row
    summary_md = (lab.folder / "summary.md").read_text()
    for nb in labs.notebooks():
        assert re.search(rf"\| {nb.stem} +\| ok +\|", summary_md), nb.stem
    # Notebook 04 analysed exactly this lab's three runs (runs_root is the lab folder).
    analysis_csv = next((lab.folder / "04_error_analysis").glob("analysis-*/comparison.csv"))
    assert len(analysis_csv.read_text().strip().splitlines()) == 1 + 3


@pytest.mark.slow
def test_failure_names_cell_and_skips_dependants(tmp_path, capsys, write_notebook):
    book = tmp_path / "book"
    book.mkdir()
    failing = write_notebook(book / "02_train.ipynb", "epochs = 1", "x = 1", "raise RuntimeError('boom')")
    reader = write_notebook(book / "04_errors.ipynb", "output_dir = 'runs'", "print('should not run')")
    lab = labs.run([failing, reader], {"epochs": 2}, tmp_path / "out", log=print)
    assert not lab.ok and lab.results == {"02_train": "failed", "04_errors": "skipped"}
    assert "02_train failed in cell" in lab.failure and "RuntimeError: boom" in lab.failure
    assert (lab.folder / "02_train.ipynb").is_file()  # the partial output is kept
    assert not (lab.folder / "04_errors.ipynb").exists()
    assert "[skip] 04_errors" in capsys.readouterr().out


@pytest.mark.slow
def test_dead_kernel_is_a_failed_row_and_the_run_goes_on(tmp_path, write_notebook, kernel_crash):
    book = tmp_path / "book"
    book.mkdir()
    dying = write_notebook(book / "01_dies.ipynb", "crash = False", kernel_crash)
    other = write_notebook(book / "02_other.ipynb", "output_dir = 'runs'", "print('still runs')")
    lab = labs.run([dying, other], {"crash": True}, tmp_path / "out", log=lambda *a: None)
    assert lab.results == {"01_dies": "failed", "02_other": "ok"}
    assert "DeadKernelError" in lab.failure and "partial output notebook" in lab.failure
    summary = json.loads((lab.folder / "summary.json").read_text())
    assert summary["notebooks"]["01_dies"] == "failed" and "DeadKernelError" in summary["failure"]


@pytest.mark.slow
def test_ctrl_c_marks_the_lab_interrupted_with_a_summary(tmp_path, monkeypatch, capsys, write_notebook):
    import papermill

    book = tmp_path / "book"
    book.mkdir()
    first = write_notebook(book / "01_first.ipynb", "seed = 0", "print(seed)")
    second = write_notebook(book / "02_second.ipynb", "seed = 0", "print(seed)")
    third = write_notebook(book / "03_third.ipynb", "seed = 0", "print(seed)")
    real_execute = papermill.execute_notebook

    def interrupted_at_the_second(nb, out, **kw):
        if "02_second" in nb:
            raise KeyboardInterrupt
        return real_execute(nb, out, **kw)

    monkeypatch.setattr(papermill, "execute_notebook", interrupted_at_the_second)
    monkeypatch.setattr(labs, "select", lambda names, folder=None: [first, second, third])
    assert cli.main(["labs", "run", "--out", str(tmp_path / "out")]) == 130
    (folder,) = (tmp_path / "out").iterdir()
    assert "02_second interrupted" in (folder / "INTERRUPTED").read_text()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["notebooks"] == {"01_first": "ok", "02_second": "interrupted", "03_third": "not run"}
    assert "marked INTERRUPTED" in capsys.readouterr().err


@pytest.mark.slow
def test_an_endless_cell_fails_at_the_time_limit_and_the_run_goes_on(tmp_path, write_notebook):
    import time

    book = tmp_path / "book"
    book.mkdir()
    stuck = write_notebook(book / "01_stuck.ipynb", "seed = 0", "while True:\n    pass")
    other = write_notebook(book / "02_other.ipynb", "seed = 0", "print('still runs')")
    start = time.perf_counter()
    lab = labs.run([stuck, other], {}, tmp_path / "out", log=lambda *a: None, timeout=3)
    assert time.perf_counter() - start < 60
    assert lab.results == {"01_stuck": "failed", "02_other": "ok"}
    assert "per-cell limit of 3 s" in lab.failure and "--timeout" in lab.failure


@pytest.mark.slow
def test_output_over_the_cap_is_cut_and_a_failed_row(tmp_path, write_notebook):
    book = tmp_path / "book"
    book.mkdir()
    chatty = write_notebook(book / "01_chatty.ipynb", "seed = 0", "print('x' * 3_000_000)", "print('small')")
    lab = labs.run([chatty], {}, tmp_path / "out", log=lambda *a: None, max_output_mb=1)
    assert lab.results == {"01_chatty": "failed"} and "over the cap of 1 MB" in lab.failure
    executed = lab.folder / "01_chatty.ipynb"
    assert executed.stat().st_size < 2**20 and "small" in executed.read_text()
    assert json.loads((lab.folder / "summary.json").read_text())["notebooks"] == {"01_chatty": "failed"}


@pytest.mark.slow
def test_a_failing_html_export_or_full_disk_is_that_notebooks_row(tmp_path, monkeypatch, write_notebook):
    import errno

    book = tmp_path / "book"
    book.mkdir()
    first = write_notebook(book / "01_first.ipynb", "seed = 0", "print(seed)")
    second = write_notebook(book / "02_second.ipynb", "seed = 0", "print(seed)")

    def disk_full_for_the_first(notebook):
        if "01_first" in notebook.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(notebook.with_suffix(".html")))
        notebook.with_suffix(".html").write_text("<html></html>")

    monkeypatch.setattr(labs, "_export_html", disk_full_for_the_first)
    lab = labs.run([first, second], {}, tmp_path / "out", log=lambda *a: None)
    assert lab.results == {"01_first": "failed", "02_second": "ok"}
    assert "the disk is full" in lab.failure and "01_first.html" in lab.failure
    assert (lab.folder / "summary.md").is_file() and (lab.folder / "02_second.html").is_file()


def test_bad_command_line_numbers_are_refused_in_the_kits_words(capsys, tmp_path):
    for argv, message in ((["labs", "sweep", "g.yaml", "--jobs", "0"], "expected a whole number of at least 1"),
                          (["labs", "run", "--timeout", "-5"], "expected a whole number of at least 1"),
                          (["labs", "run", "--max-output-mb", "0"], "expected a number above 0"),
                          (["labs", "run", "--max-output-mb", "nan"], "expected a number above 0")):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv + ["--out", str(tmp_path)])
        assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_publish_replaces_every_shipped_notebook_or_none(tmp_path, monkeypatch, write_notebook):
    """A disk that fills while the third new notebook is written leaves all four shipped notebooks as
    they were and no staged file behind; a clean run then replaces all four."""
    import errno

    import nbformat

    from bloodcells import release

    book = tmp_path / "notebooks"
    book.mkdir()
    shipped = [write_notebook(book / f"0{i}_nb.ipynb", "seed = 0", f"print('old {i}')") for i in range(1, 5)]
    before = {p: p.read_bytes() for p in shipped}
    data = tmp_path / "data"
    (data / "medmnist").mkdir(parents=True)
    (data / "wbc5").mkdir()

    def fake_run(selected, values, out, **kw):
        folder = labs.Path(out) / "labs-x"
        folder.mkdir()
        for nb in selected:
            write_notebook(folder / nb.name, "seed = 0", f"print('new {nb.name}')")
        return labs.LabRun(folder, {nb.stem: "ok" for nb in selected})

    monkeypatch.setattr(labs, "run", fake_run)
    real_write, written = nbformat.write, []

    def write_until_the_disk_is_full(nb, path, *args, **kw):
        written.append(path)
        if len(written) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(nb, path, *args, **kw)

    monkeypatch.setattr(nbformat, "write", write_until_the_disk_is_full)
    with pytest.raises(OSError):
        release.publish(shipped, data, log=lambda *a: None)
    assert {p: p.read_bytes() for p in shipped} == before
    assert sorted(p.name for p in book.iterdir()) == [p.name for p in shipped]  # nothing staged is left
    monkeypatch.setattr(nbformat, "write", real_write)
    release.publish(shipped, data, log=lambda *a: None)
    assert all("new " in p.read_text() and p.read_bytes() != before[p] for p in shipped)
    assert all("new " in release.student_path(p).read_text() for p in shipped)  # the student editions follow


def test_an_out_folder_that_cannot_be_made_is_named(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["labs", "run", "01", "--out", str(blocker / "runs")]) == 2
    err = capsys.readouterr().err
    assert "cannot create a run folder in" in err and "choose a folder you can write to" in err
    assert "Traceback" not in err
