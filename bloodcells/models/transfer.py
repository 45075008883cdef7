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
import io
import random
import shutil
import sys
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np
import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle and lr_find)
from fastai.callback.channelslast import ChannelsLast
from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback
from fastai.layers import apply_init
from fastai.learner import Learner, load_learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import params
from fastai.vision.learner import create_head
from torch import nn

from bloodcells import experiment
from bloodcells.config import LAB2, LAB2_RECIPES, PBC_CROP, ConfigError, Options
from bloodcells.data.folders import FolderSplit, check_images, read_rgb
from bloodcells.data.framing import auto_crops, typical_extent
from bloodcells.experiment import RunRecord
from bloodcells.runs import RunFolderError
from bloodcells.models import adaptation, mixstyle
from bloodcells.models.backbones import backbone
from bloodcells.models.cell_images import ReadCell, cell_pixels, framing, make_dataloaders, view
from bloodcells.seeding import seed_everything


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


def reader(learn: Learner) -> ReadCell:
    """The learner's own image reader (its input size and training framing), which
    :func:`build_learner` keeps on it; it travels in an exported learner."""
    if not isinstance(getattr(learn, "reader", None), ReadCell):
        raise ValueError("this learner was not made by transfer.build_learner (no image reader on it); "
                         "load a run folder's learner with transfer.load")
    return learn.reader


def frame(options: Options, split: FolderSplit) -> Options:
    """The options with the crop resolved, once, for this split: yours, else the folder's own
    framing (SYNTHETIC and prepared BloodMNIST sets are already framed: 1.0), else PBC photos'."""
    if options["crop"] is not None:
        return options
    crop, source = (split.crop, "the data folder") if split.crop else (PBC_CROP, "PBC photos' framing")
    return Options({**options, "crop": crop}, {**options.sources, "crop": source})


def body_head_splitter(model: nn.Sequential) -> list:
    """Two parameter groups, body then head: what ``freeze()``, ``unfreeze()`` and a
    ``slice(body_lr, head_lr)`` act on."""
    return [params(model[0]), params(model[1])]


def build_learner(split: FolderSplit, options) -> Learner:
    """An ImageNet body plus fastai's head (concat pooling, BN, dropout, two linears), body frozen.

    Its ``path`` is a scratch folder for :func:`keep_best`'s checkpoints, removed with the learner."""
    size, crop = options["image_size"], framing(options)
    # A bad file fails now, not at scoring; the check fills the decode cache training reads from.
    check_images([f for files in split.files.values() for f in files], read=lambda f: cell_pixels(str(f), size, crop))
    seed_everything(options["seed"])
    net = backbone(options["backbone"], options["pretrained"])
    if options["mixstyle"]:
        mixstyle.attach(net.body, options["mixstyle"])
    read = ReadCell(size, crop, typical_extent(cell_pixels(str(f), size, crop) for f in split.files["train"]))
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


def parameter_groups(learn: Learner, lr=None) -> list[dict]:
    """The optimiser's parameter groups (body, then head) with their weights, how many are trainable
    now, and the peak rate ``lr`` (a number or a ``slice``, as for ``fit_one_cycle``) gives each."""
    if learn.opt is None:
        learn.create_opt()
    groups, hypers = learn.opt.param_lists, learn.opt.hypers
    rates = [None] * len(groups)
    if lr is not None:  # fastai's own rule for spreading a slice over the groups, then put back
        saved = [dict(h) for h in hypers]
        learn.opt.set_hyper("lr", lr)
        rates = [h["lr"] for h in hypers]
        for h, old in zip(hypers, saved):
            h.update(old)
    names = ["body", "head"] if len(groups) == 2 else [f"group {i}" for i in range(len(groups))]
    return [{"name": name, "weights": sum(p.numel() for p in params),
             "trainable": sum(p.numel() for p in params if p.requires_grad), "lr": rate}
            for name, params, rate in zip(names, groups, rates)]


class QuietSaveModel(SaveModelCallback):
    """fastai's SaveModelCallback without its "Better model found at epoch ..." line: the epoch table
    already shows each validation loss, and the line broke it in two."""

    def after_epoch(self):
        with contextlib.redirect_stdout(io.StringIO()):
            super().after_epoch()


def keep_best(patience: int, tag: str) -> list:
    """Callbacks for one phase: stop after ``patience`` epochs without a lower validation loss, and
    reload the best epoch's weights at the end (checkpoint ``best-<tag>`` under ``learn.path``)."""
    return [EarlyStoppingCallback(monitor="valid_loss", patience=patience),
            QuietSaveModel(monitor="valid_loss", fname=f"best-{tag}", with_opt=False)]


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


def crops_for(learn: Learner, files, crop) -> list[float]:
    """Each file's crop: ``crop`` itself (one number, or one per file), or with ``"auto"`` the one
    that gives the set's cells the share of the view training cells had (:func:`bloodcells.data.framing.auto_crops`)."""
    if isinstance(crop, (list, tuple)):
        return list(crop)
    if crop != "auto":
        return [crop] * len(files)
    target = getattr(reader(learn), "cell_extent", None)
    if target is None:
        raise ConfigError("this learner has no training framing to match (trained on images with no stained cell "
                          "found, or by an older kit version); pass a number as crop, or re-run notebook 03")
    return auto_crops((read_rgb(f) for f in files), target)  # one image in memory at a time


def _test_dl(learn: Learner, files, crop):
    label = learn.dls.vocab[0]  # unused at inference
    if crop is None:
        items = [[str(f), label] for f in files]
    else:
        size = reader(learn).size
        items = [[cell_pixels(str(f), size, c), label] for f, c in zip(files, crops_for(learn, files, crop))]
    return learn.dls.test_dl(items, with_labels=False, num_workers=0)


def predict(learn: Learner, files, tta: bool = False, seed: int = 0, crop=None,
            adapt: str | None = None, unlabelled=None) -> np.ndarray:
    """Class probabilities for image files; ``tta`` blends the plain view with four randomly
    augmented ones (fastai's ``Learner.tta``), drawn from ``seed`` so a score is repeatable.
    ``crop`` frames another set's images its own way (default: the training framing; ``"auto"``:
    :func:`crops_for`). ``adapt`` (one of :data:`bloodcells.models.adaptation.METHODS`) first adapts
    a copy of the model to the ``unlabelled`` image files of that lab (default: ``files`` themselves,
    their pixels only), framed as ``files`` are (one crop per file: their median)."""
    dl = _test_dl(learn, files, crop)
    trained = learn.model
    if adapt:
        same_lab = float(np.median(crop)) if isinstance(crop, (list, tuple)) else crop
        source = dl if unlabelled is None else _test_dl(learn, unlabelled, same_lab)
        learn.model = adaptation.adapt(trained, [batch[0] for batch in source], adapt, seed)
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
    try:
        return load_learner(path)
    except (AttributeError, ModuleNotFoundError) as exc:  # a class the pickle names has moved or gone
        raise RunFolderError(f"{path} was exported by another version of the kit ({exc}); re-run notebook 03 "
                             "to train a learner this version loads") from None


def run_experiment(split: FolderSplit, options, output_dir="runs") -> RunRecord:
    """Train both phases, evaluate on the test split, save a new run folder, in one call."""
    experiment.check_output_dir(output_dir)
    options = frame(options, split)
    run = train(split, options)
    evaluate(run, split)
    save_run(run, split, output_dir)
    return run
