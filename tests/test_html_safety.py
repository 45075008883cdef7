"""Names from run folders (students' or anyone's) stay text wherever they become HTML or Markdown."""
import json
import re

import numpy as np
import pytest

from bloodcells import labs

pytestmark = pytest.mark.slow  # runs notebooks in kernels

ATTACK = "<img src=x onerror=alert(1)>"
BREAKOUT = "</script><img src=y onerror=alert(2)>"  # would end a script block (saved widget state) early


def _outside_scripts(page: str) -> str:
    """The page without its script blocks, whose JSON data (widget state) the browser does not render."""
    return re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)


def test_a_hostile_run_folder_cannot_inject_html_into_notebook_04_or_the_summary(tmp_path, make_run):
    runs = tmp_path / "runs" / "02_cnn_keras"
    folder = runs / "cnn-seed-1"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 10)
    guesses = np.where(rng.random(len(labels)) < 0.7, labels, (labels + 1) % 3)
    probs = np.full((len(labels), 3), 0.04)
    probs[np.arange(len(labels)), guesses] = 0.92
    names = [f"a{ATTACK}", "b|c", "c"]
    make_run(labels, probs, names, folder=folder, images=rng.integers(0, 255, (len(labels), 28, 28, 3)),
             val_probabilities=probs, val_labels=labels, params={"model": "seed"},
             metrics={"model": f"m{ATTACK}", "dataset": f"d{BREAKOUT}", "accuracy": 0.4,
                      "macro_f1": 0.4, "n_test": len(labels), "n_correct": 12},
             history={"loss": [1.0], "val_loss": [1.0], "accuracy": [0.4], "val_accuracy": [0.4]})
    lab = labs.run(labs.select(["04"]), {"run_dirs": [str(folder)]}, tmp_path / "out", log=lambda *a: None)
    assert lab.ok, lab.failure
    page = (lab.folder / "04_error_analysis.html").read_text()
    notebook = json.loads((lab.folder / "04_error_analysis.ipynb").read_text())
    html_outputs = [o["data"]["text/html"] for c in notebook["cells"] for o in c.get("outputs", [])
                    if "text/html" in o.get("data", {})]
    markdown_outputs = [o["data"]["text/markdown"] for c in notebook["cells"] for o in c.get("outputs", [])
                        if "text/markdown" in o.get("data", {})]
    assert html_outputs and markdown_outputs
    for text in html_outputs + markdown_outputs + [_outside_scripts(page)]:
        assert ATTACK not in "".join(text) and BREAKOUT not in "".join(text)
    assert BREAKOUT not in page
    assert any("&lt;img src=x onerror=alert(1)&gt;" in "".join(t) for t in html_outputs)
    lab.folder.joinpath("02_cnn_keras").mkdir()
    (runs.parent / "02_cnn_keras").rename(lab.folder / "02_cnn_keras" / "x")  # the summary reads run folders too
    summary = labs.write_summary(lab)
    assert ATTACK not in summary and "m&lt;img" in summary
