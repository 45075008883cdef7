"""Widgets driven headless: set the selectors, check which images and labels are shown, page."""
import numpy as np
import pytest

from bloodcells.data.dataset import ImageDataset
from bloodcells.data.folders import split_folder
from bloodcells.widgets import ALL, ErrorBrowser, ImageExplorer, ThumbnailPager


@pytest.fixture(scope="module")
def dataset(tiny_arrays):
    names = ["basophil", "eosinophil", "erythroblast", "ig", "lymphocyte", "monocyte", "neutrophil", "platelet"]
    return ImageDataset(name="tiny", images={s: tiny_arrays[f"{s}_images"] for s in ("train", "val", "test")},
                        labels={s: tiny_arrays[f"{s}_labels"].ravel() for s in ("train", "val", "test")},
                        class_names=names, synthetic=True)


@pytest.fixture(scope="module")
def run(dataset, make_run):
    """A run on the test split whose predictions are right except for a known set of images."""
    labels = dataset.labels["test"]
    rng = np.random.default_rng(0)
    probs = np.full((len(labels), 8), 0.01)
    probs[np.arange(len(labels)), labels] = 0.93
    wrong = np.flatnonzero(labels == 6)[:5]  # five neutrophils called immature granulocytes
    probs[wrong, 6], probs[wrong, 3] = 0.01, rng.uniform(0.5, 0.99, len(wrong))
    return make_run(labels, probs, dataset.class_names, images=dataset.images["test"])


def test_class_selector_shows_only_that_class(dataset):
    explorer = ImageExplorer(dataset, page_size=6)
    assert explorer.pager.shown == list(range(6))
    explorer.split.value = "test"
    explorer.label.value = "monocyte"
    expected = np.flatnonzero(dataset.labels["test"] == 5)
    assert explorer.pager.shown == expected[:6].tolist()
    assert explorer.selected == expected[0]
    assert "<b>monocyte</b>" in explorer.info.value and "test image" in explorer.info.value
    assert [b.description for b in explorer.pager.buttons] == [f"#{i}" for i in expected[:6]]
    explorer.label.value = ALL
    assert explorer.pager.buttons[0].description == f"#0 {dataset.class_names[dataset.labels['test'][0]][:4]}"


def test_paging_stops_at_both_ends(dataset):
    explorer = ImageExplorer(dataset, page_size=10)
    explorer.split.value, explorer.label.value = "val", "basophil"
    n = int((dataset.labels["val"] == 0).sum())
    pager = explorer.pager
    assert pager.previous.disabled and pager.pages == -(-n // 10)
    seen = []
    for _ in range(pager.pages + 2):  # clicking past the end stays on the last page
        seen += [k for k in pager.shown if k not in seen]
        pager.next.click()
    assert seen == np.flatnonzero(dataset.labels["val"] == 0).tolist()
    assert pager.next.disabled and pager.page == pager.pages - 1
    hidden = [c.layout.visibility for c in pager.cells[len(pager.shown):]]
    assert hidden == ["hidden"] * (10 - len(pager.shown))
    for _ in range(pager.pages + 2):
        pager.previous.click()
    assert pager.page == 0 and pager.previous.disabled


def test_picking_a_thumbnail_enlarges_it_with_its_prediction(dataset, run):
    explorer = ImageExplorer(dataset, run=run, page_size=8)
    explorer.split.value, explorer.label.value = "test", "neutrophil"
    explorer.pager.buttons[2].click()
    index = explorer.pager.shown[2]
    assert explorer.selected == index
    assert "predicted <b>ig</b>" in explorer.prediction.value  # one of the five planted mistakes
    explorer.split.value = "train"
    assert explorer.prediction.value == ""  # predictions belong to the test split only
    explorer.label.value = ALL
    assert len(explorer.indices()) == len(dataset.labels["train"])


def test_run_from_another_dataset_is_refused(dataset, run, make_run):
    other = make_run(run.labels[:-1], run.probabilities[:-1], run.class_names, images=run.images[:-1])
    with pytest.raises(ValueError, match="not made on this dataset's test split"):
        ImageExplorer(dataset, run=other)
    with pytest.raises(TypeError, match="image set"):
        ImageExplorer(np.zeros((3, 28, 28, 3)))


def test_explorer_reads_class_folders(wbc_folder):
    split = split_folder(wbc_folder)
    explorer = ImageExplorer(split, page_size=4)
    explorer.split.value, explorer.label.value = "test", "eosinophil"
    assert explorer.pager.shown == np.flatnonzero(split.labels["test"] == 1).tolist()[:4]
    assert "eosinophil" in explorer.info.value and "file:" in explorer.info.value
    assert explorer.enlarged.value[:4] == b"\x89PNG"


def test_error_browser_opens_on_the_worst_cell_and_sorts_by_confidence(run):
    browser = ErrorBrowser(run, page_size=3)
    assert (browser.true.value, browser.predicted.value) == ("neutrophil", "ig")
    probs = run.probabilities
    shown = [k for _ in range(browser.pager.pages) for k in (browser.pager.shown, browser.pager.next.click())[0]]
    assert len(shown) == 5 and all(run.labels[i] == 6 for i in shown)
    assert list(probs[shown, 3]) == sorted(probs[shown, 3], reverse=True)
    assert browser.pager.next.disabled


def test_error_browser_matrix_cell_selects_the_pair(run):
    browser = ErrorBrowser(run)
    calls = []
    original = browser.refresh
    browser.refresh = lambda: calls.append(1) or original()
    cell = browser.matrix.children[9 * 2 + 1 + 2]  # past the header row and row 0: "eosinophil" row, "erythroblast" column
    assert cell.description == "0"
    cell.click()
    assert (browser.true.value, browser.predicted.value) == ("eosinophil", "erythroblast")
    assert browser.pager.shown == [] and browser.pager.status.value == "no images" and calls == [1]
    browser.true.value = "monocyte"  # a diagonal cell: the correct ones
    browser.predicted.value = "monocyte"
    assert browser.pager.shown and all(run.labels[i] == 5 for i in browser.pager.shown)


def test_a_saved_run_alone_is_browsable_without_its_data(tmp_path, wbc_folder, make_run):
    import shutil

    from bloodcells import runs
    from bloodcells.models.cell_images import view

    data = shutil.copytree(wbc_folder, tmp_path / "data")
    split = split_folder(data)
    labels = split.labels["test"]
    probs = np.eye(5)[labels] * 0.9 + 0.02
    images = view(split.files["test"], 48, 0.5)  # the central half, as a model trained on that crop saw it
    whole = view(split.files["test"], 48, 1.0)
    make_run(labels, probs, split.class_names, folder=tmp_path / "run", images=images,
             image_names=[str(f.relative_to(data)) for f in split.files["test"]])
    shutil.rmtree(data)  # a run folder copied to another machine: no data folder there
    explorer = ImageExplorer(runs.load(tmp_path / "run"), page_size=4)
    assert explorer.split.options == ("test",)
    explorer.label.value = "monocyte"
    assert explorer.pager.shown == np.flatnonzero(labels == 3).tolist()[:4]
    assert "predicted <b>monocyte</b>" in explorer.prediction.value and "file: monocyte/" in explorer.info.value
    first = int(np.flatnonzero(labels == 3)[0])
    shown = explorer.data.image("test", first)
    assert explorer.selected == first and np.array_equal(shown, images[first]) and not np.array_equal(shown, whole[first])


def test_widgets_display_as_their_widget_tree(dataset, run):
    for shown in (ImageExplorer(dataset, run=run), ErrorBrowser(run)):
        bundle = shown._repr_mimebundle_()
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == shown.widget.model_id
        assert bundle["text/plain"] == shown.static_text and "interactive widget" in shown.static_text


def test_pager_alone():
    picked = []
    pager = ThumbnailPager(page_size=2, on_pick=picked.append)
    pager.show([10, 11, 12], ["a", "b", "c"], lambda key: np.full((4, 4, 3), key, np.uint8))
    pager.buttons[1].click()
    pager.next.click()
    pager.buttons[1].click()  # an empty slot on the last page: nothing picked
    assert picked == [11] and pager.shown == [12]
