"""Lab 2: two-phase fastai transfer learning on a class-folder set (the five white-cell classes).

Phase 1 trains a new head on a frozen ImageNet body; phase 2 unfreezes everything and fine-tunes
with a smaller learning rate. Each phase early-stops on validation loss and keeps its best weights.
In phase 1 every weight of the body is frozen, batch-norm scales and shifts included (fastai's
``train_bn=False``), so no gradient flows into the body and an epoch costs about one forward pass
per image, cheap on a CPU. The body's batch-norm layers still run in training mode: they normalise
with batch statistics and re-estimate their running statistics on cell images, so the head learns on
the same kind of features phase 2 fine-tunes. (Keeping ImageNet's statistics throughout was tried:
phase 1 scored a little higher, but phase 2's validation loss then jumped about from epoch to epoch
and it stopped early at 97% validation accuracy.)
"""
from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and lr_find)
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

from bloodcells import metrics as M
from bloodcells.data.errors import DataError
from bloodcells.data.folders import FolderSplit, discover, read_rgb
from bloodcells.models.backbones import BACKBONES, backbone
from bloodcells.runs import new_run_dir, save_predictions, write_json
from bloodcells.seeding import seed_everything

# The course report's recipe; image_size 224 is its size (a GPU's), smaller sizes suit a CPU.
DEFAULTS = {
    "backbone": "efficientnet_lite0", "pretrained": True, "image_size": 224, "batch_size": 32,
    "epochs_frozen": 20, "lr_frozen": 1e-3, "patience_frozen": 3,
    "epochs_unfrozen": 20, "lr_unfrozen": 1e-4, "patience_unfrozen": 5,
    "crop": None, "seed": 42, "max_train_per_class": None, "tta": False,
}

# PBC photos are 360 pixels with the cell in the middle; BloodMNIST keeps the central 200. Cropping
# to that before resizing gives the network more pixels per cell at the same cost (linear probe of
# frozen EfficientNet-Lite0 features on wbc5 at 128 px: 88.8% on whole photos, 96% on the crop).
# The synthetic set is drawn already cropped to the cell, so it is not cropped again.
PHOTO_CROP = 0.55

# What notebook 03 runs on a CPU: the recipe at a smaller image size, a fine-tuning rate of 5e-4
# (1e-4 was still climbing after 20 epochs: 97.3% test accuracy, 1,115 s), scored with test-time
# augmentation; and a quick mode for a classroom: smaller images, fewer epochs.
# benchmarks/transfer.py measures both.
CPU_LAB = {"image_size": 128, "lr_unfrozen": 5e-4, "tta": True}
QUICK = {"image_size": 96, "epochs_frozen": 3, "epochs_unfrozen": 8}


def lab_options(quick: bool = False, image_size: int | None = None) -> dict:
    """Notebook 03's training options: the recipe with :data:`CPU_LAB`'s changes, and :data:`QUICK`'s
    on top in quick mode; ``image_size`` overrides both."""
    options = {**DEFAULTS, **CPU_LAB, **(QUICK if quick else {})}
    if image_size:
        options["image_size"] = image_size
    return options


@lru_cache(maxsize=20_000)
def _cell_pixels(path: str, size: int, crop: float) -> np.ndarray:
    """Decode, crop and resize each JPEG once per session: epochs then only pay for augmentation."""
    return read_rgb(path, size, crop)


class ReadCell:
    """fastai ``get_x``: an item ``[path, label]`` to its centre-cropped, square ``size`` image
    (a plain class, so an exported learner pickles it)."""

    def __init__(self, size: int, crop: float = 1.0):
        self.size, self.crop = size, crop

    def __call__(self, item) -> PILImage:
        return PILImage.create(_cell_pixels(str(item[0]), self.size, self.crop))


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


def make_dataloaders(split: FolderSplit, image_size: int = 224, batch_size: int = 32, seed: int = 42,
                     stats=None, max_train_per_class: int | None = None, crop: float = 1.0):
    """fastai DataLoaders over the split's train and val files (the test split stays held out)."""
    train_files, train_labels = _train_subset(split, max_train_per_class, seed)
    items = (_items(train_files, train_labels, split.class_names)
             + _items(split.files["val"], split.labels["val"], split.class_names))
    n_train = len(train_files)
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=list(split.class_names))),
        get_x=ReadCell(image_size, crop), get_y=ItemGetter(1),
        splitter=IndexSplitter(list(range(n_train, len(items)))),
        batch_tfms=[*augmentations(image_size), *([Normalize.from_stats(*stats)] if stats else [])],
    )
    seed_everything(seed)
    # num_workers=0: the cache lives in this process, and the order is reproducible.
    return block.dataloaders(items, bs=batch_size, num_workers=0)


def body_head_splitter(model: nn.Sequential) -> list:
    """Two parameter groups, body then head: what ``freeze()`` and ``unfreeze()`` act on."""
    return [params(model[0]), params(model[1])]


def _params(overrides: dict, split: FolderSplit) -> dict:
    """:data:`DEFAULTS` updated with the given values (``None`` keeps a default); ``crop`` resolved."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown parameters {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **{k: v for k, v in overrides.items() if v is not None}}
    p["crop"] = p["crop"] or (1.0 if split.synthetic else PHOTO_CROP)
    return p


def build_learner(split: FolderSplit, **overrides) -> Learner:
    """An ImageNet body plus fastai's head (concat pooling, BN, dropout, two linears), body frozen.

    Takes :data:`DEFAULTS`' names; the ones that shape the model and its data are used here."""
    p = _params(overrides, split)
    if p["backbone"] not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {p['backbone']!r}")
    if p["image_size"] < 32:
        raise ValueError(f"image_size must be at least 32 pixels for an ImageNet body, got {p['image_size']}")
    seed_everything(p["seed"])
    net = backbone(p["backbone"], p["pretrained"])
    dls = make_dataloaders(split, p["image_size"], p["batch_size"], p["seed"], net.stats, p["max_train_per_class"],
                           p["crop"])
    head = create_head(net.n_features, len(split.class_names))
    apply_init(head, nn.init.kaiming_normal_)
    learn = Learner(dls, nn.Sequential(net.body, head), loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                    splitter=body_head_splitter, train_bn=False)
    learn.freeze()
    return learn


@dataclass
class TransferResult:
    learner: Learner
    history: dict
    params: dict
    train_seconds: float
    probabilities: np.ndarray | None = None  # test split, filled by run_experiment
    metrics: dict = field(default_factory=dict)
    folder: Path | None = None


def _quiet_bar(learn: Learner):
    """fastai's progress bars in a notebook; in scripts and logs, one printed line per epoch."""
    return contextlib.nullcontext() if "ipykernel" in sys.modules else learn.no_bar()


def fit_phase(learn: Learner, epochs: int, lr: float, patience: int, tag: str) -> dict:
    """One-cycle training that stops after ``patience`` epochs without a lower val loss and then
    reloads the best epoch's weights. Returns this phase's per-epoch history."""
    cbs = [EarlyStoppingCallback(monitor="valid_loss", patience=patience),
           SaveModelCallback(monitor="valid_loss", fname=f"best-{tag}", with_opt=False)]
    with _quiet_bar(learn):
        learn.fit_one_cycle(epochs, lr, cbs=cbs)
    values = np.array(learn.recorder.values, dtype=float)
    return {"loss": values[:, 0].tolist(), "val_loss": values[:, 1].tolist(),
            "val_accuracy": values[:, 2].tolist()}


def find_lr(learn: Learner, num_it: int = 100):
    """fastai's learning-rate finder on a learner from :func:`build_learner`: a look only, its
    weights are restored afterwards. Returns the suggestion (the valley) and draws loss against rate."""
    home = learn.path
    try:
        with tempfile.TemporaryDirectory() as scratch, _quiet_bar(learn):
            learn.path = Path(scratch)  # lr_find saves and restores the weights there
            return learn.lr_find(num_it=num_it)
    finally:
        learn.path = home


def train(split: FolderSplit, **overrides) -> TransferResult:
    """Phase 1 (frozen body) then phase 2 (unfrozen), with :data:`DEFAULTS` for what is not given."""
    p = _params(overrides, split)
    learn = build_learner(split, **p)
    history = {"loss": [], "val_loss": [], "val_accuracy": [], "phase": []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:  # SaveModelCallback's checkpoints
        learn.path = Path(scratch)
        for phase, tag in ((1, "frozen"), (2, "unfrozen")):
            if phase == 2:
                learn.unfreeze()
            part = fit_phase(learn, p[f"epochs_{tag}"], p[f"lr_{tag}"], p[f"patience_{tag}"], tag)
            for key, values in part.items():
                history[key] += values
            history["phase"] += [phase] * len(part["loss"])
            p[f"epochs_run_{tag}"] = len(part["loss"])
            p[f"best_epoch_{tag}"] = int(np.argmin(part["val_loss"])) + 1
    learn.path = Path(".")
    p.update(dataset=str(split.root), synthetic=split.synthetic, class_names=list(split.class_names))
    return TransferResult(learn, history, p, time.perf_counter() - start)


def predict(learn: Learner, files, tta: bool = False, seed: int = 0) -> np.ndarray:
    """Class probabilities for image files; ``tta`` blends the plain view with four randomly
    augmented ones (fastai's ``Learner.tta``), drawn from ``seed`` so a score is repeatable."""
    items = [[str(f), learn.dls.vocab[0]] for f in files]  # the label is unused at inference
    dl = learn.dls.test_dl(items, with_labels=False, num_workers=0)
    if tta:
        seed_everything(seed)
    with _quiet_bar(learn):
        probs, _ = learn.tta(dl=dl) if tta else learn.get_preds(dl=dl)
    return probs.numpy()


def evaluate(result: TransferResult, split: FolderSplit) -> tuple[np.ndarray, dict]:
    """Test-split probabilities and the same metrics summary lab 1 records."""
    probs = predict(result.learner, split.files["test"], tta=result.params["tta"], seed=result.params["seed"])
    summary = M.summary(split.labels["test"], probs.argmax(1), split.class_names)
    p = result.params
    summary.update(model=f"transfer-{p['backbone']}", backbone=p["backbone"], image_size=p["image_size"],
                   dataset=Path(p["dataset"]).name + (" (SYNTHETIC)" if split.synthetic else ""),
                   synthetic=split.synthetic, tta=p["tta"], train_seconds=round(result.train_seconds, 1),
                   epochs_phase1=p["epochs_run_frozen"], epochs_phase2=p["epochs_run_unfrozen"])
    return probs, summary


def evaluate_external(learn: Learner, folder: str | Path, class_map: dict[str, str] | None = None,
                      tta: bool = False) -> dict:
    """Score a trained learner on another labelled class-folder set (another lab, stain, scanner).

    ``class_map`` maps that set's folder names to our class names; without it, folders named like
    our classes (any case) map to them. Classes that map to nothing are reported with their image
    counts and left out of the scores, never guessed.
    """
    ours = list(learn.dls.vocab)
    names, files, _ = discover(folder, min_per_class=1)
    if class_map is None:
        lookup = {c.lower(): c for c in ours}
        class_map = {n: lookup[n.lower()] for n in names if n.lower() in lookup}
    wrong = {k: v for k, v in class_map.items() if v not in ours}
    if wrong:
        raise ValueError(f"class_map targets {sorted(set(wrong.values()))} are not classes of this model; "
                         f"use some of {ours}")
    missing = sorted(set(class_map) - set(names))
    if missing:
        raise DataError(f"class_map names folders {missing} that {folder} does not have; it has {names}")
    mapped = [(f, ours.index(class_map[n])) for n, group in zip(names, files) if n in class_map for f in group]
    unmapped = {n: len(group) for n, group in zip(names, files) if n not in class_map}
    if not mapped:
        raise DataError(f"none of the classes in {folder} ({names}) map to this model's classes {ours}; "
                        "pass class_map={their_name: our_name, ...}")
    paths, labels = [f for f, _ in mapped], np.array([y for _, y in mapped])
    probs = predict(learn, paths, tta=tta)
    pred = probs.argmax(1)
    present = sorted(set(labels.tolist()))
    return {
        "folder": str(folder), "class_map": class_map, "unmapped": unmapped,
        "n_images": len(labels), "n_correct": int((pred == labels).sum()),
        "accuracy": float((pred == labels).mean()),
        "recall_per_class": {ours[c]: float((pred[labels == c] == c).mean()) for c in present},
        "files": paths, "labels": labels, "probabilities": probs,
    }


def save_run(folder: str | Path, result: TransferResult, split: FolderSplit, probabilities, summary: dict) -> Path:
    """Write learner.pkl (fastai export), predictions.npz, history/params/metrics JSON."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result.learner.export(folder.resolve() / "learner.pkl")
    save_predictions(folder, probabilities, split.labels["test"], split.class_names,
                     files=[Path(f).resolve() for f in split.files["test"]])  # readable from any working folder
    write_json(folder / "history.json", result.history)
    write_json(folder / "params.json", result.params)
    write_json(folder / "metrics.json", summary)
    return folder


def save_external(folder: str | Path, name: str, external: dict) -> Path:
    """Add an external-validation result to a run folder (``external.json``, one entry per set)."""
    import json

    path = Path(folder) / "external.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[name] = {k: v for k, v in external.items() if k not in ("files", "labels", "probabilities")}
    return write_json(path, results)


def load(folder: str | Path) -> Learner:
    """A run folder's exported learner, ready for :func:`predict` and :func:`evaluate_external`.

    The file is a pickle (fastai's format): load only run folders you or your course made."""
    path = Path(folder) / "learner.pkl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; train with run_experiment (notebook 03) first")
    return load_learner(path)


def run_experiment(split: FolderSplit, output_dir: str | Path = "runs", **overrides) -> TransferResult:
    """Train both phases, evaluate on the test split, save a new run folder: notebook 03's job."""
    result = train(split, **overrides)
    result.probabilities, result.metrics = evaluate(result, split)
    name = f"transfer-{result.params['backbone']}"
    result.folder = save_run(new_run_dir(output_dir, name), result, split, result.probabilities, result.metrics)
    return result
