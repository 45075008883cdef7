"""The widgets in a real browser: JupyterLab on localhost, driven by headless Chromium (the
``chromium`` fixture: skipped without Debian's chromium, a failure in CI)."""
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "runs" / "test-artifacts"
pytestmark = pytest.mark.slow  # starts JupyterLab and a browser

DEMO = '''\
import numpy as np
from bloodcells.data.dataset import ImageDataset
from bloodcells.data.synthetic import make_bloodmnist_like
from bloodcells.runs import Run
from bloodcells.widgets import ErrorBrowser, ImageExplorer

arrays = make_bloodmnist_like(size=28, seed=1, fraction=0.02)
names = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
data = ImageDataset(name="demo", images={s: arrays[s + "_images"] for s in ("train", "val", "test")},
                    labels={s: arrays[s + "_labels"].ravel() for s in ("train", "val", "test")},
                    class_names=names, synthetic=True)
probs = np.random.default_rng(0).dirichlet(np.ones(8) * 0.3, size=len(data.labels["test"]))
run = Run(probs, data.labels["test"], names, data.images["test"], {"model": "demo"}, {}, {})
explorer = ImageExplorer(data, run=run, page_size=8)
explorer'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab(tmp_path, chromium):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(DEMO),
                                               nbformat.v4.new_code_cell("ErrorBrowser(run, page_size=8)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "widgets.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.allow_root=True",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        stdout=open(tmp_path / "jupyter.log", "w"), stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")})
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1) as answer:
                    json.load(answer)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start: " + (tmp_path / "jupyter.log").read_text()[-2000:])
        yield f"{url}/lab/tree/widgets.ipynb?token={token}", tmp_path
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_widgets_render_and_react_in_jupyterlab(lab, chromium):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, folder = lab
    driver = chromium(folder / "chromium-profile")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 90, poll_frequency=0.5)
        wait.until(lambda d: d.execute_script(
            "return !!(window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell'))"))
        wait.until(lambda d: d.execute_script(  # the kernel has started
            "const w = window.jupyterapp.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle');"))
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")) >= 4)
        enlarged = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "img.bloodcells-explorer-enlarged"))
        wait.until(lambda d: enlarged.get_attribute("src"))
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "Error displaying widget" not in page and "model not found" not in page
        before = enlarged.get_attribute("src")
        Select(driver.find_element(By.CSS_SELECTOR, ".bloodcells-explorer-class select")).select_by_visible_text("monocyte")
        wait.until(lambda d: enlarged.get_attribute("src") != before)
        info = driver.find_element(By.CSS_SELECTOR, ".bloodcells-explorer-info")
        wait.until(lambda d: "monocyte" in info.text)
        assert "Error displaying widget" not in driver.find_element(By.TAG_NAME, "body").text
        assert len(driver.find_elements(By.CSS_SELECTOR, ".widget-gridbox")) >= 3  # two thumbnail grids, the matrix
    finally:
        driver.save_screenshot(str(ARTIFACTS / "widgets-jupyterlab.png"))
        driver.quit()
