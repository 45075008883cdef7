"""Lab 2: two-phase fastai transfer learning on a class-folder set (the five white-cell classes).

Phase 1 trains a new head on a frozen ImageNet body; phase 2 unfreezes everything and fine-tunes
with discriminative learning rates (``slice(body, head)``: the body moves more gently). Notebook 03
writes these steps out in its cells; :func:`train` does the same in one call. Each phase early-stops
on validation loss and keeps its best weights.

In phase 1 every weight of the body is frozen, batch-norm scales and shifts included (fastai's
``train_bn=False``), so no gradient flows into the body and an epoch costs about one forward pass
per image, cheap on a CPU. The body's batch-norm layers still run in training mode: they re-estimate
their statistics on cell images, so the head learns on the kind of features phase 2 fine-tunes
(docs/lab2-design.md has the measurements behind these choices).
"""
from __future__ import annotations

import contextlib
import random
import shutil
import sys
import tempfile
import time
import weakref
from functools import lru_cache
from pathlib import Path

import numpy as np
import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and lr_find)
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import IndexSplitter, ItemGetter, Normalize
from fastai.layers import apply_init
from fastai.learner import Learner, load_learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import params
from fastai.vision.augment import aug_transforms
from fastai.vision.core import PILImage
from fastai.vision.data import ImageBlock
from fastai.vision.learner import create_head
from torch import nn

from bloodcells import experiment
from bloodcells.config import LAB2, LAB2_RECIPES, PBC_CROP, ConfigError, Options
from bloodcells.data.folders import FolderSplit, check_images, read_rgb
from bloodcells.experiment import RunRecord
from bloodcells.models import robustness
from bloodcells.models.backbones import backbone
from bloodcells.seeding import seed_everything

# Test images are stored in a run folder at the model's size, at most this (notebook 04's galleries).
VIEW_SIZE = 128


def options(quick: bool = False, recipe: str = "cpu", **given) -> Options:
    """Lab 2's training options: the report's recipe, the CPU lab's changes (``recipe="cpu"``; on a
    GPU ``"report"`` keeps the report's 224 px ResNet18 and epochs; ``"auto"`` picks by device), quick
    mode's changes when ``quick``, then ``given`` (``None`` = not set). :data:`bloodcells.config.LAB2`
    declares them."""
    if recipe == "auto":
        from bloodcells.platforms import torch_device

        recipe = "report" if torch_device() == "cuda" else "cpu"
    if recipe not in LAB2_RECIPES:
        raise ConfigError(f"recipe must be one of {sorted(LAB2_RECIPES) + ['auto']}, got {recipe!r}")
    return LAB2.options(quick=quick, base=LAB2_RECIPES[recipe], **given)


@lru_cache(maxsize=20_000)
def _cell_pixels(path: str, size: int, crop: float) -> np.ndarray:
    """Decode, crop and resize each JPEG once per session: epochs then only pay for augmentation."""
    return read_rgb(path, size, crop)


class ReadCell:
    """fastai ``get_x``: an item ``[path, label]`` to its centre-cropped, square ``size`` image, or
    ``[pixels, label]`` already framed and sized (a plain class, so an exported learner pickles it)."""

    def __init__(self, size: int, crop: float = 1.0):
        self.size, self.crop = size, crop

    def __call__(self, item) -> PILImage:
        if isinstance(item[0], np.ndarray):
            return PILImage.create(item[0])
        return PILImage.create(_cell_pixels(str(item[0]), self.size, self.crop))


def reader(learn: Learner) -> ReadCell:
    """The learner's own image reader (its input size and training framing), which
    :func:`build_learner` keeps on it; it travels in an exported learner."""
    if not isinstance(getattr(learn, "reader", None), ReadCell):
        raise ValueError("this learner was not made by transfer.build_learner (no image reader on it); "
                         "load a run folder's learner with transfer.load")
    return learn.reader


def view(files, size: int, crop: float) -> np.ndarray:
    """Images as a model of that size and framing sees them (before augmentation), at most
    :data:`VIEW_SIZE` pixels: what a run folder stores and galleries show."""
    return np.stack([read_rgb(f, min(size, VIEW_SIZE), crop) if size > VIEW_SIZE else _cell_pixels(str(f), size, crop)
                     for f in files])


def augmentations(image_size: int) -> list:
    """The report's augmentation: any rotation, both flips, 75-100% crops, perspective warp 0.2,
    brightness/contrast 0.5, affine and lighting each applied with p=0.75 (on whole batches)."""
    return aug_transforms(size=image_size, max_rotate=180, do_flip=True, flip_vert=True, min_scale=0.75,
                          max_zoom=1.0, max_warp=0.2, max_lighting=0.5, p_affine=0.75, p_lighting=0.75)


def _items(files, labels, class_names) -> list[list[str]]:
    # Lists, not tuples: fastai transforms map over tuples element by element.
    return [[str(f), class_names[int(y)]] for f, y in zip(files, labels)]


def _train_subset(split: FolderSplit, max_per_class: int | None, seed: int) -> tuple[list, np.ndarray]:
    """The train split, optionally capped per class (smoke runs), class-balanced and seeded."""
    files, labels = np.array(split.files["train"], dtype=object), split.labels["train"]
    if max_per_class is None:
        return list(files), labels
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:max_per_class]
                                   for c in range(len(split.class_names))]))
    return list(files[keep]), labels[keep]


def frame(options: Options, split: FolderSplit) -> Options:
    """The options with the crop resolved, once, for this split: yours, else the folder's own
    framing (SYNTHETIC and prepared BloodMNIST sets are already framed: 1.0), else PBC photos'."""
    if options["crop"] is not None:
        return options
    crop, source = (split.crop, "the data folder") if split.crop else (PBC_CROP, "PBC photos' framing")
    return Options({**options, "crop": crop}, {**options.sources, "crop": source})


def _crop(options) -> float:
    if options["crop"] is None:
        raise ConfigError("the crop is not resolved for this data: options = transfer.frame(options, split) first")
    return options["crop"]


def colour_reference(files, size: int, crop: float) -> tuple[list[float], list[float]]:
    """The training photos' average per-channel mean and spread, in [0, 1]: the colour that
    ``standardize_colour`` gives every image."""
    per_image = np.array([[(p := _cell_pixels(str(f), size, crop).reshape(-1, 3) / 255).mean(0), p.std(0)]
                          for f in files])
    return per_image[:, 0].mean(0).tolist(), per_image[:, 1].mean(0).tolist()


def make_dataloaders(split: FolderSplit, options, stats=None, read: ReadCell | None = None):
    """fastai DataLoaders over the split's train and val files (the test split stays held out)."""
    train_files, train_labels = _train_subset(split, options["max_train_per_class"], options["seed"])
    items = (_items(train_files, train_labels, split.class_names)
             + _items(split.files["val"], split.labels["val"], split.class_names))
    size, crop = options["image_size"], _crop(options)
    reference = colour_reference(train_files, size, crop) if options["standardize_colour"] else None
    read = read or ReadCell(size, crop)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(split.class_names))),
        get_x=read, get_y=ItemGetter(1),
        splitter=IndexSplitter(list(range(len(train_files), len(items)))),
        batch_tfms=[*augmentations(size), *robustness.transforms(options, reference),
                    *([Normalize.from_stats(*stats)] if stats else [])],
    )
    seed_everything(options["seed"])
    # num_workers=0: the cache lives in this process, and the order is reproducible.
    return block.dataloaders(items, bs=options["batch_size"], num_workers=0)


def body_head_splitter(model: nn.Sequential) -> list:
    """Two parameter groups, body then head: what ``freeze()``, ``unfreeze()`` and a
    ``slice(body_lr, head_lr)`` act on."""
    return [params(model[0]), params(model[1])]


def build_learner(split: FolderSplit, options) -> Learner:
    """An ImageNet body plus fastai's head (concat pooling, BN, dropout, two linears), body frozen.

    Its ``path`` is a scratch folder for :func:`keep_best`'s checkpoints, removed with the learner."""
    size, crop = options["image_size"], _crop(options)
    # A bad file fails now, not at scoring; the check fills the decode cache training reads from.
    check_images([f for files in split.files.values() for f in files], read=lambda f: _cell_pixels(str(f), size, crop))
    seed_everything(options["seed"])
    net = backbone(options["backbone"], options["pretrained"])
    read = ReadCell(size, crop)
    dls = make_dataloaders(split, options, net.stats, read)
    head = create_head(net.n_features, len(split.class_names))
    apply_init(head, nn.init.kaiming_normal_)
    # Channels-last memory: the layout oneDNN and cuDNN convolve fastest. Same network; sums run in
    # another order, so a seed's result can move by an image or two against the default layout.
    learn = Learner(dls, nn.Sequential(net.body, head), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                    splitter=body_head_splitter, train_bn=False, cbs=ChannelsLast())
    learn.freeze()
    learn.reader = read  # predict() reads another set's images at this size, in their own framing
    learn.path = Path(tempfile.mkdtemp(prefix="bloodcells-checkpoints-"))
    weakref.finalize(learn, shutil.rmtree, learn.path, True)
    return learn


def trainable_parameters(learn: Learner) -> int:
    """How many weights the optimiser may change now (falls at ``freeze()``, rises at ``unfreeze()``)."""
    return sum(p.numel() for p in learn.model.parameters() if p.requires_grad)


def keep_best(patience: int, tag: str) -> list:
    """Callbacks for one phase: stop after ``patience`` epochs without a lower validation loss, and
    reload the best epoch's weights at the end (checkpoint ``best-<tag>`` under ``learn.path``)."""
    return [EarlyStoppingCallback(monitor="valid_loss", patience=patience),
            SaveModelCallback(monitor="valid_loss", fname=f"best-{tag}", with_opt=False)]


def quiet(learn: Learner):
    """fastai's live bars in a notebook (they end as one table row per epoch); in scripts and
    logs, one printed line per epoch instead of pages of progress fragments."""
    return contextlib.nullcontext() if "ipykernel" in sys.modules else learn.no_bar()


def reseed(learn: Learner, seed: int) -> None:
    """Seed every generator training draws from, the DataLoaders' own shufflers included, so
    training from here on does not depend on batches drawn before (``show_batch``, the finder)."""
    seed_everything(seed)
    for number, loader in enumerate(learn.dls.loaders):
        loader.rng = random.Random(seed + number)


def phase_history(learn: Learner) -> dict:
    """The last ``fit``'s per-epoch training loss, validation loss and accuracy."""
    values = np.array(learn.recorder.values, dtype=float)
    return {"loss": values[:, 0].tolist(), "val_loss": values[:, 1].tolist(), "val_accuracy": values[:, 2].tolist()}


def find_lr(learn: Learner, num_it: int = 100):
    """fastai's learning-rate finder on a learner from :func:`build_learner`: a look only, its
    weights are restored afterwards. Returns the suggestion (the valley) and draws loss against rate."""
    with quiet(learn):  # lr_find saves the weights under learn.path and restores them
        return learn.lr_find(num_it=num_it)


def record(learn: Learner, phases: list[dict], options, split: FolderSplit, seconds: float) -> RunRecord:
    """Both phases' histories (with a ``phase`` column) and the options as the labs' RunRecord."""
    history = {"loss": [], "val_loss": [], "val_accuracy": [], "phase": []}
    params = {**options, "dataset": split.title, "synthetic": split.synthetic, "class_names": list(split.class_names)}
    for number, (tag, part) in enumerate(zip(("frozen", "unfrozen"), phases), start=1):
        for key, values in part.items():
            history[key] += values
        history["phase"] += [number] * len(part["loss"])
        params[f"epochs_run_{tag}"] = len(part["loss"])
        params[f"best_epoch_{tag}"] = int(np.argmin(part["val_loss"])) + 1
    return RunRecord(learn, history, params, seconds)


def train(split: FolderSplit, options) -> RunRecord:
    """Notebook 03's training cells in one call: build, phase 1 on the frozen body, unfreeze,
    phase 2 with discriminative rates, each phase early-stopped with its best weights kept."""
    options = frame(options, split)
    learn = build_learner(split, options)
    reseed(learn, options["seed"])
    start = time.perf_counter()
    with quiet(learn):
        learn.fit_one_cycle(options["epochs_frozen"], options["lr_frozen"],
                            cbs=keep_best(options["patience_frozen"], "frozen"))
        frozen = phase_history(learn)
        learn.unfreeze()
        learn.fit_one_cycle(options["epochs_unfrozen"], slice(options["lr_unfrozen_body"], options["lr_unfrozen"]),
                            cbs=keep_best(options["patience_unfrozen"], "unfrozen"))
        unfrozen = phase_history(learn)
    return record(learn, [frozen, unfrozen], options, split, time.perf_counter() - start)


def predict(learn: Learner, files, tta: bool = False, seed: int = 0, crop: float | None = None,
            adapt_batchnorm: bool = False) -> np.ndarray:
    """Class probabilities for image files; ``tta`` blends the plain view with four randomly
    augmented ones (fastai's ``Learner.tta``), drawn from ``seed`` so a score is repeatable.
    ``crop`` frames another set's images its own way (default: the training framing);
    ``adapt_batchnorm`` first re-estimates batch-norm statistics on these images (AdaBN, on a copy)."""
    label = learn.dls.vocab[0]  # unused at inference
    if crop is None:
        items = [[str(f), label] for f in files]
    else:
        size = reader(learn).size
        items = [[_cell_pixels(str(f), size, crop), label] for f in files]
    dl = learn.dls.test_dl(items, with_labels=False, num_workers=0)
    trained = learn.model
    if adapt_batchnorm:
        learn.model = robustness.adapt_batchnorm(trained, (batch[0] for batch in dl))
    if tta:
        seed_everything(seed)
    try:
        with learn.no_bar():  # a prediction's bar ends empty in a stored notebook ("0.00% [0/8]")
            probs, _ = learn.tta(dl=dl) if tta else learn.get_preds(dl=dl)
    finally:
        learn.model = trained
    return probs.numpy()


def evaluate(run: RunRecord, split: FolderSplit) -> dict:
    """Score a run on the test split (and keep validation probabilities), with its TTA setting."""
    p = run.params
    probs = {s: predict(run.model, split.files[s], tta=p["tta"], seed=p["seed"]) for s in ("test", "val")}
    return experiment.score(
        run, split.labels["test"], probs["test"], split.class_names, val_probabilities=probs["val"],
        model=f"transfer-{p['backbone']}", backbone=p["backbone"], image_size=p["image_size"],
        dataset=split.title, synthetic=split.synthetic,
        tta=p["tta"], epochs_phase1=p["epochs_run_frozen"], epochs_phase2=p["epochs_run_unfrozen"])


def save_run(run: RunRecord, split: FolderSplit, output_dir="runs") -> Path:
    """A new run folder: learner.pkl (fastai export) and the run, with the test images as the
    model saw them (cropped) and their names within the data folder."""
    files = split.files["test"]
    return experiment.save(run, output_dir, f"transfer-{run.params['backbone']}",
                           lambda folder: export(run.model, folder / "learner.pkl"),
                           split.labels["test"], split.class_names, val_labels=split.labels["val"],
                           images=view(files, run.params["image_size"], run.params["crop"]),
                           image_names=[str(Path(f).relative_to(split.root)) for f in files])


def export(learn: Learner, file: Path) -> None:
    """fastai's export, without the scratch checkpoint folder in the pickle (a loaded learner
    saves under the working folder, like any fastai learner)."""
    scratch, learn.path = learn.path, Path(".")
    try:
        learn.export(Path(file).resolve())
    finally:
        learn.path = scratch


def load(folder: str | Path) -> Learner:
    """A run folder's exported learner, ready for :func:`predict` and :func:`bloodcells.models.external.evaluate`.

    The file is a pickle (fastai's format): load only run folders you or your course made."""
    path = Path(folder) / "learner.pkl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; train with notebook 03 (or run_experiment) first")
    return load_learner(path)


def run_experiment(split: FolderSplit, options, output_dir="runs") -> RunRecord:
    """Train both phases, evaluate on the test split, save a new run folder, in one call."""
    experiment.check_output_dir(output_dir)
    options = frame(options, split)
    run = train(split, options)
    evaluate(run, split)
    save_run(run, split, output_dir)
    return run
