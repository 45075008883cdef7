"""The course website: `make site` builds offline, and in headless Chromium every page loads, its
figures are visible, its formulas are typeset, search finds the course, and no local link is broken."""
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # builds the site and drives a browser
COURSE = ["01_explore_and_preprocess", "02_cnn_keras", "03_transfer_learning_fastai", "04_error_analysis"]
PAGES = ["index", *(f"course/{nb}" for nb in COURSE), "instructor-guide", "labs", "answer-key-lab1", "data",
         "environment", "package", "results", "lab1-levers", "lab2-design"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(REPO / "docs"), str(out)], check=True)
    return out


def test_every_page_is_built_and_no_local_link_is_broken(site):
    for page in PAGES:
        assert (site / f"{page}.html").is_file(), page
    broken = []
    for html in (p for p in site.rglob("*.html") if p.relative_to(site).parts[0] not in ("_static", "_sources")):
        for target in re.findall(r'(?:href|src)="([^"]+)"', html.read_text()):
            parts = urlsplit(target)
            if parts.scheme or target.startswith(("#", "//", "mailto:")) or not parts.path:
                continue
            if not (html.parent / unquote(parts.path)).exists():
                broken.append(f"{html.relative_to(site)} -> {target}")
    assert not broken, broken[:20]


def test_pages_in_a_browser_show_figures_formulas_and_search(site, chromium, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium(tmp_path / "profile")
    wait = WebDriverWait(driver, 30, poll_frequency=0.25)
    try:
        for page in PAGES:
            driver.get((site / f"{page}.html").as_uri())
            wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
            assert page == "index" or driver.title.strip(), page
            images = driver.execute_script(
                "return [...document.images].filter(i => !/^https?:/.test(i.getAttribute('src')))"
                ".map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]);")
            assert all(shown for _, shown in images), (page, [src for src, shown in images if not shown])
            if page.startswith("course/"):
                assert len(images) >= 3, f"{page}: the stored figures are missing ({len(images)} images)"
            if driver.execute_script("return document.querySelectorAll('.math').length"):
                wait.until(lambda d: d.execute_script("return document.querySelectorAll('.MathJax, .MathJax_Display')"
                                                      ".length > 0"), f"{page}: formulas not typeset")
                wait.until(lambda d: not d.execute_script(
                    "return [...document.querySelectorAll('.math')].some(e => e.innerText.includes('\\\\('))"))
                assert not driver.execute_script("return document.querySelectorAll('.MathJax_Error').length")
        driver.get((site / "search.html").as_uri() + "?q=neutrophil")
        wait.until(lambda d: d.execute_script("return document.querySelectorAll('#search-results li').length > 0"),
                   "search found nothing")
    finally:
        driver.quit()
