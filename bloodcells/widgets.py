"""Notebook widgets for browsing images and mistakes (ipywidgets 8 only, no front-end build).

A page turn re-encodes only the thumbnails on that page, into a fixed set of image slots, so
browsing stays quick on the 17k-image BloodMNIST. The classes hold their widget tree in ``.widget``
rather than subclassing one (ipywidgets' traits own many attribute names) and display as it.
"""
from __future__ import annotations

import io
import math
from html import escape

import ipywidgets as W
import numpy as np
from PIL import Image

from bloodcells.data.dataset import ImageDataset, ImageSet
from bloodcells.runs import Run

ALL = "all classes"


def png_bytes(image: np.ndarray, size: int) -> bytes:
    """An RGB array as PNG bytes, scaled to ``size`` pixels (nearest: 28-pixel cells stay crisp)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).resize((size, size), Image.Resampling.NEAREST).save(buffer, "png")
    return buffer.getvalue()


class _Displayed:
    """Shows as its ``widget`` in a notebook."""

    widget: W.Widget

    #: What a reader of a stored notebook (HTML, the course site) sees where the live widget would be.
    static_text = "An interactive widget: run this notebook in Jupyter to use it."

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        return {**bundle, "text/plain": self.static_text}


class ThumbnailPager(_Displayed):
    """A grid of thumbnail slots with previous/next buttons; clicking a caption picks that image.

    ``show(keys, captions, load)``: ``keys`` identify the images, ``load(key)`` returns one as an
    RGB array; only the current page is ever loaded.
    """

    def __init__(self, page_size: int = 24, columns: int = 8, thumb: int = 80, on_pick=None):
        self.page_size, self.thumb, self.on_pick = page_size, thumb, on_pick
        self.keys, self.captions, self.load, self.page = [], [], None, 0
        self.images = [W.Image(format="png", width=thumb, height=thumb) for _ in range(page_size)]
        self.buttons = [W.Button(layout=W.Layout(width=f"{thumb + 8}px")) for _ in range(page_size)]
        self.cells = [W.VBox([img, btn]) for img, btn in zip(self.images, self.buttons)]
        for slot, button in enumerate(self.buttons):
            button.on_click(lambda _, slot=slot: self.pick(slot))
        self.previous = W.Button(description="◀ previous")
        self.next = W.Button(description="next ▶")
        self.status = W.Label()
        self.previous.on_click(lambda _: self.turn(-1))
        self.next.on_click(lambda _: self.turn(+1))
        grid = W.GridBox(self.cells, layout=W.Layout(grid_template_columns=f"repeat({columns}, {thumb + 12}px)"))
        self.widget = W.VBox([W.HBox([self.previous, self.next, self.status]), grid])

    @property
    def pages(self) -> int:
        return max(1, math.ceil(len(self.keys) / self.page_size))

    @property
    def shown(self) -> list:
        """The keys on the current page, in slot order."""
        return self.keys[self.page * self.page_size:(self.page + 1) * self.page_size]

    def show(self, keys, captions, load) -> None:
        self.keys, self.captions, self.load, self.page = list(keys), list(captions), load, 0
        self.render()

    def turn(self, step: int) -> None:
        self.page = min(max(self.page + step, 0), self.pages - 1)
        self.render()

    def pick(self, slot: int) -> None:
        if slot < len(self.shown) and self.on_pick:
            self.on_pick(self.shown[slot])

    def render(self) -> None:
        first = self.page * self.page_size
        for slot, (image, button, cell) in enumerate(zip(self.images, self.buttons, self.cells)):
            position = first + slot
            if position < len(self.keys):
                image.value = png_bytes(self.load(self.keys[position]), self.thumb)
                button.description = self.captions[position]
                cell.layout.visibility = "visible"
            else:
                cell.layout.visibility = "hidden"
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= self.pages - 1
        last = min(first + self.page_size, len(self.keys))
        self.status.value = (f"page {self.page + 1}/{self.pages} · images {first + 1}-{last} of {len(self.keys)}"
                             if self.keys else "no images")


def probability_bars(probabilities, class_names, true: int | None = None) -> str:
    """HTML bars, one per class, the predicted one bold and the true one marked."""
    top = int(np.argmax(probabilities))
    rows = []
    for c, (name, p) in enumerate(zip(class_names, probabilities)):
        label = f"<b>{escape(name)}</b>" if c == top else escape(name)
        mark = " ✓ true" if c == true else ""
        rows.append(f"<div style='display:flex;align-items:center;gap:6px;font-size:12px'>"
                    f"<span style='width:150px'>{label}{mark}</span>"
                    f"<span style='display:inline-block;height:10px;width:{p * 160:.0f}px;background:#4a7ebb'></span>"
                    f"<span>{p:.1%}</span></div>")
    return "".join(rows)


def _image_set(source) -> ImageSet:
    """The images to browse: an image set as it is, or a saved run's test images."""
    if isinstance(source, Run):
        return source.test_set()
    if isinstance(source, ImageSet):
        return source
    raise TypeError("ImageExplorer needs an image set (open_bloodmnist, split_folder) or a loaded run (runs.load), "
                    f"got {type(source).__name__}")


def _describe(data: ImageSet, split: str, index: int) -> str:
    lines = [f"<b>{escape(data.class_names[data.labels[split][index]])}</b>",
             f"{escape(data.title)} · {split} image #{index}"]
    if (name := data.image_name(split, index)) is not None:
        lines.append(f"file: {escape(name)}")
    if isinstance(data, ImageDataset):
        lines.append(f"{'x'.join(map(str, data.images[split][index].shape))} pixels")
    return "<br>".join(lines)


class ImageExplorer(_Displayed):
    """Browse a dataset by split and class, page through thumbnails, enlarge one image.

    With ``run`` (a :class:`~bloodcells.runs.Run` made on this dataset's test split) the test images also
    show the predicted class and the probability of every class. A run alone is a source too:
    ``ImageExplorer(run)`` browses its test images with their predictions.
    """

    static_text = ("[Image explorer: an interactive widget. Run this notebook in Jupyter to browse the images by split "
                   "and class, enlarge one, and see the probabilities a run gave it.]")

    def __init__(self, source, run: Run | None = None, page_size: int = 24, columns: int = 8, thumb: int = 80,
                 enlarged: int = 224):
        self.data = _image_set(source)
        if run is None and isinstance(source, Run):
            run = source
        self.run, self.enlarged_size = run, enlarged
        if run is not None:
            test = self.data.labels.get("test")
            if test is None or len(test) != len(run.labels) or not np.array_equal(test, run.labels):
                raise ValueError(f"run {run.name} was not made on this dataset's test split "
                                 f"({len(run.labels)} labels vs {0 if test is None else len(test)}); "
                                 "pass the dataset the run was trained on, or no run")
        self.split = W.Dropdown(options=self.data.splits, value=self.data.splits[0], description="split")
        self.label = W.Dropdown(options=[ALL, *self.data.class_names], value=ALL, description="class")
        self.pager = ThumbnailPager(page_size, columns, thumb, on_pick=self.select)
        self.enlarged = W.Image(format="png", width=enlarged, height=enlarged)
        self.info = W.HTML()
        self.prediction = W.HTML()
        for widget, css in ((self.split, "split"), (self.label, "class"), (self.enlarged, "enlarged"), (self.info, "info")):
            widget.add_class(f"bloodcells-explorer-{css}")  # stable hooks for styling and the browser test
        self.selected: int | None = None
        self.split.observe(lambda _: self.refresh(), names="value")
        self.label.observe(lambda _: self.refresh(), names="value")
        self.widget = W.VBox([W.HBox([self.split, self.label]), self.pager.widget,
                              W.HBox([self.enlarged, W.VBox([self.info, self.prediction])])])
        self.refresh()

    def indices(self) -> np.ndarray:
        labels = self.data.labels[self.split.value]
        if self.label.value == ALL:
            return np.arange(len(labels))
        return np.flatnonzero(labels == self.data.class_names.index(self.label.value))

    def refresh(self) -> None:
        split, idx = self.split.value, self.indices()
        names = self.data.class_names
        captions = [f"#{i}" if self.label.value != ALL else f"#{i} {names[self.data.labels[split][i]][:4]}" for i in idx]
        self.pager.show(idx.tolist(), captions, lambda i: self.data.image(split, i, self.pager.thumb))
        self.select(int(idx[0]) if len(idx) else None)

    def select(self, index: int | None) -> None:
        """Enlarge one image of the current split, with its label and, for test images of a run,
        the prediction."""
        self.selected = index
        if index is None:
            self.info.value, self.prediction.value = "no image in this selection", ""
            return
        split = self.split.value
        self.enlarged.value = png_bytes(self.data.image(split, index, self.enlarged_size), self.enlarged_size)
        self.info.value = _describe(self.data, split, index)
        if self.run is not None and split == "test":
            probs, names = self.run.probabilities[index], self.run.class_names
            self.prediction.value = (f"predicted <b>{escape(names[int(np.argmax(probs))])}</b> "
                                     f"({probs.max():.1%})" + probability_bars(probs, names, int(self.run.labels[index])))
        else:
            self.prediction.value = ""


class ErrorBrowser(_Displayed):
    """Page through one cell of a run's confusion matrix: the test images of a true class that were
    predicted as another, most confident first. Pick the pair with the drop-downs or a matrix cell."""

    static_text = ("[Error browser: an interactive widget. Run this notebook in Jupyter to pick a cell of the "
                   "confusion matrix and page through its test images, most confident first.]")

    def __init__(self, run: Run, page_size: int = 24, columns: int = 8, thumb: int = 80):
        self.run = run
        names = list(run.class_names)
        self.y_true = run.labels
        self.y_pred, self.confidence = run.predictions, run.probabilities.max(axis=1)
        pairs = [(t, p) for t in range(len(names)) for p in range(len(names)) if t != p]
        worst = max(pairs, key=lambda tp: self.count(*tp)) if pairs else (0, 0)
        self.true = W.Dropdown(options=names, value=names[worst[0]], description="true")
        self.predicted = W.Dropdown(options=names, value=names[worst[1]], description="predicted")
        self.pager = ThumbnailPager(page_size, columns, thumb)
        self.matrix = self._matrix_buttons(names)
        self._setting_cell = False
        for dropdown in (self.true, self.predicted):
            dropdown.observe(lambda _: self._setting_cell or self.refresh(), names="value")
        self.widget = W.VBox([W.HTML("<b>Confusion matrix</b> (rows true, columns predicted; click a cell)"),
                              self.matrix, W.HBox([self.true, self.predicted]), self.pager.widget])
        self.refresh()

    def count(self, true: int, predicted: int) -> int:
        return int(((self.y_true == true) & (self.y_pred == predicted)).sum())

    def _matrix_buttons(self, names) -> W.GridBox:
        n = len(names)
        cells = [W.Label("")] + [W.Label(name[:10]) for name in names]
        for t in range(n):
            cells.append(W.Label(names[t][:14]))
            for p in range(n):
                button = W.Button(description=str(self.count(t, p)), layout=W.Layout(width="64px"),
                                  button_style="success" if t == p else ("danger" if self.count(t, p) else ""))
                button.on_click(lambda _, t=t, p=p: self.select_cell(names[t], names[p]))
                cells.append(button)
        return W.GridBox(cells, layout=W.Layout(grid_template_columns=f"120px repeat({n}, 68px)"))

    def select_cell(self, true: str, predicted: str) -> None:
        self._setting_cell = True  # one refresh for the pair, not one per drop-down
        try:
            self.true.value, self.predicted.value = true, predicted
        finally:
            self._setting_cell = False
        self.refresh()

    def indices(self) -> np.ndarray:
        t, p = self.true.index, self.predicted.index
        idx = np.flatnonzero((self.y_true == t) & (self.y_pred == p))
        return idx[np.argsort(-self.confidence[idx], kind="stable")]

    def refresh(self) -> None:
        idx = self.indices()
        self.pager.show(idx.tolist(), [f"{self.confidence[i]:.0%} #{i}" for i in idx],
                        lambda i: self.run.images[i])
