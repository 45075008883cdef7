"""Each lab's configuration, in one place: its parameters (type, choices, range, help), its recipes
(the course report's, the kit's CPU lab, quick mode), the data defaults, and the one rule that
combines them.

**Precedence**, the same for notebooks, ``benchmarks/`` and ``bloodcells labs``: the lab's base
recipe, then quick mode's changes when ``quick`` is on, then every value the user set. ``None``
means "not set": the recipe decides. The notebooks' parameters are declared in
:mod:`bloodcells.course`, which writes each notebook's ``parameters`` cell from them.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml


class ConfigError(ValueError):
    """A parameter value the lab cannot use; the message lists what is valid."""


class _ValueLoader(yaml.SafeLoader):
    """YAML as people write numbers: ``1e-3`` and ``5E-4`` are floats (YAML 1.1 would read strings),
    and an integer YAML 1.1 would silently change (``010`` read as octal 8, ``1_000``, ``1:30``) is refused."""

    def construct_yaml_int(self, node):
        text = self.construct_scalar(node)
        if not re.fullmatch(r"[-+]?(0|[1-9][0-9]*)", text):
            raise ConfigError(f"{text!r} is not a plain decimal integer (YAML would read it as "
                              f"{yaml.SafeLoader.construct_yaml_int(self, node)!r}); write it without leading zeros, "
                              "underscores or colons, or quote it to mean text")
        return int(text)


_ValueLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
                                   list("-+0123456789."))
_ValueLoader.add_constructor("tag:yaml.org,2002:int", _ValueLoader.construct_yaml_int)


def load_yaml(text: str, where: str = "value"):
    """Parameters from YAML text (a ``-p`` value, a parameters or sweep file), read as people write them."""
    try:
        return yaml.load(text, Loader=_ValueLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None


@dataclass(frozen=True)
class Param:
    """One parameter: its default, type, allowed values and meaning."""
    default: Any
    kind: type | tuple[type, ...]
    help: str
    choices: tuple | None = None
    low: float | None = None  # inclusive
    high: float | None = None  # inclusive
    optional: bool = False  # None is a valid value ("the recipe's", "none given")
    path: bool = False  # a folder or file: relative to where a command was typed, ~ expanded

    def describe(self) -> str:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        text = " or ".join(k.__name__ for k in kinds)
        if self.choices:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is not None or self.high is not None:
            text += f" in [{'' if self.low is None else self.low}, {'' if self.high is None else self.high}]"
        return text + (" or None" if self.optional else "")

    def check(self, name: str, value) -> None:
        """Raise :class:`ConfigError` naming the parameter and what it accepts."""
        if value is None:
            if self.optional:
                return
            raise ConfigError(f"{name}=None is not allowed; {name} must be {self.describe()} ({self.help})")
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        numeric = float in kinds and isinstance(value, int)
        if isinstance(value, bool) and bool not in kinds or not (isinstance(value, kinds) or numeric):
            raise ConfigError(f"{name}={value!r} should be {self.describe()} ({self.help})")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name}={value!r} is not a finite number; {name} must be {self.describe()} ({self.help})")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.choices is not None and not (number and float in kinds):  # (float, str): a number or a choice
            bad = [v for v in (value if isinstance(value, list) else [value]) if v not in self.choices]
            if bad or value == []:
                raise ConfigError(f"{name}={value!r}: choose from {list(self.choices)} ({self.help})")
        if number and ((self.low is not None and value < self.low) or (self.high is not None and value > self.high)):
            raise ConfigError(f"{name}={value!r} is out of range; {name} must be {self.describe()} ({self.help})")


class Options(dict):
    """Resolved training options; ``sources`` says which layer set each value."""

    def __init__(self, values: dict, sources: dict):
        super().__init__(values)
        self.sources = sources

    def table(self) -> pd.DataFrame:
        """Every option with its value and where it came from, for a notebook to display."""
        return pd.DataFrame({"value": [repr(v) for v in self.values()], "set by": list(self.sources.values())},
                            index=pd.Index(list(self), name="option"))


@dataclass(frozen=True)
class Lab:
    """A lab's training parameters (their defaults: the course report's recipe) and named recipes
    (partial settings applied in order)."""
    title: str
    params: dict[str, Param]
    recipes: dict[str, dict]
    base: tuple[str, ...]  # the recipes every run starts from, in order

    def options(self, quick: bool = False, base: tuple[str, ...] | None = None, **given) -> Options:
        """Base recipes, then ``quick``'s changes, then ``given`` (``None`` = not set)."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise ConfigError(f"{self.title}: unknown option(s) {unknown}; valid: {sorted(self.params)}")
        values = {name: p.default for name, p in self.params.items()}
        sources = dict.fromkeys(values, "report")  # the defaults are the course report's recipe
        base = base or self.base
        layers = [(name, self.recipes[name]) for name in base]
        if quick:  # "quick" for every run of the lab, or "quick <recipe>" for each base recipe
            layers += [("quick mode", self.recipes[name]) for name in ("quick", *(f"quick {b}" for b in base))
                       if name in self.recipes]
        layers += [("you", {k: v for k, v in given.items() if v is not None})]
        for layer, settings in layers:
            for name, value in settings.items():
                values[name], sources[name] = value, layer
        for name, value in values.items():
            self.params[name].check(name, value)
        return Options(values, sources)


# ---------------------------------------------------------------- lab 1: Keras CNNs on BloodMNIST
CNN_MODELS = ("seed", "improved")
LAB1 = Lab(
    title="lab 1 (Keras CNN)",
    params={
        "model": Param("seed", str, "which network", choices=CNN_MODELS),
        "width": Param(24, int, "the improved CNN's filters in its first block (doubled in the next two)",
                       low=4, high=256),
        "epochs": Param(15, int, "most epochs to train", low=1, high=500),
        "batch_size": Param(32, int, "images per gradient step", low=1, high=4096),
        "learning_rate": Param(1e-3, float, "Adam's rate (the peak of a schedule)", low=1e-7, high=1.0),
        "patience": Param(3, int, "epochs without a lower val loss before stopping", low=1, high=500),
        "schedule": Param("constant", str, "learning-rate schedule", choices=("constant", "cosine")),
        "weight_decay": Param(0.0, float, "AdamW's decoupled weight decay (0: plain Adam)", low=0.0, high=0.1),
        "label_smoothing": Param(0.0, float, "share of each target spread over all classes", low=0.0, high=0.5),
        "augment": Param(False, bool, "random flips, quarter turns and stain jitter of training images"),
        "tta": Param(False, bool, "test-time augmentation: average the 8 flips/turns of each test image"),
        "max_train_samples": Param(None, int, "stratified cap on training images", low=50, optional=True),
        "seed": Param(0, int, "random seed", low=0),
    },
    recipes={
        # The course report's network and training, as described (91.61% test accuracy there).
        "seed": {"model": "seed"},
        # The kit's improved CNN: each ingredient a switch a student can turn off.
        "improved": {"model": "improved", "epochs": 24, "batch_size": 128, "learning_rate": 3e-3,
                     "patience": 24, "schedule": "cosine", "weight_decay": 5e-4, "label_smoothing": 0.1,
                     "augment": True, "tta": True},
        # Class-time runs. The report's CNN: a 2,000-image subset, 3 epochs, small batches (more steps
        # per epoch). The improved CNN: every image for 6 epochs of its own schedule, chosen to stay
        # within 1.5 times the report's full training time (benchmarks/answer_key.py measures both).
        "quick seed": {"max_train_samples": 2000, "epochs": 3, "batch_size": 32},
        "quick improved": {"epochs": 6},
    },
    base=("seed",),
)

# ------------------------------------------------- lab 2: fastai transfer learning, five white cells
BACKBONES = ("efficientnet_lite0", "resnet18")
#: What a lab 2 network may see of the colour (bloodcells.models.robustness.ColourView).
COLOURS = ("rgb", "grayscale", "haematoxylin")
LAB2 = Lab(
    title="lab 2 (fastai transfer learning)",
    params={
        "backbone": Param("resnet18", str, "ImageNet body", choices=BACKBONES),
        "pretrained": Param(True, bool, "start from ImageNet weights (False: random weights)"),
        "image_size": Param(224, int, "pixels per side fed to the network", low=32, high=1024),
        "crop": Param(None, float, "centre crop before resizing; None: the folder's own framing (1.0 for SYNTHETIC "
                   "and prepared BloodMNIST), else PBC photos' (config.PBC_CROP)",
                   low=0.1, high=1.0, optional=True),
        "batch_size": Param(32, int, "images per step", low=2, high=1024),
        "epochs_frozen": Param(20, int, "phase 1 (frozen body) most epochs", low=1, high=200),
        "lr_frozen": Param(1e-3, float, "phase 1 peak learning rate (the head)", low=1e-7, high=1.0),
        "patience_frozen": Param(3, int, "phase 1 early-stopping patience", low=1, high=200),
        "epochs_unfrozen": Param(20, int, "phase 2 (unfrozen) most epochs", low=1, high=200),
        "lr_unfrozen": Param(1e-4, float, "phase 2 peak learning rate of the head", low=1e-7, high=1.0),
        "lr_unfrozen_body": Param(1e-4, float, "phase 2 peak learning rate of the body (slice(body, head))",
                               low=1e-8, high=1.0),
        "patience_unfrozen": Param(5, int, "phase 2 early-stopping patience", low=1, high=200),
        "tta": Param(False, bool, "test-time augmentation when scoring"),
        "stain_jitter": Param(0.0, float, "HED stain jitter of training images: each stain's amount times 1 +/- this",
                              low=0.0, high=0.5),
        "low_resolution": Param(0.0, float, "share of training images shown at 25-60% of their resolution",
                                low=0.0, high=1.0),
        "standardize_colour": Param(False, bool, "give every image the training photos' mean colour and contrast"),
        "lab_stain": Param(0.0, float, "RandStainNA-style stain augmentation: new LAB stain statistics per training "
                           "image, drawn from the training photos' own with their spread widened this many times (0: off)",
                           low=0.0, high=10.0),
        "colour": Param("rgb", str, "what the network sees of the colour, in training and at prediction: 'rgb', "
                        "'grayscale' or 'haematoxylin' (the nuclear stain alone)", choices=COLOURS),
        "mixstyle": Param(0.0, float, "MixStyle: chance per training batch that the body's early features swap "
                          "style statistics between images (0: off)", low=0.0, high=1.0),
        "max_train_per_class": Param(None, int, "cap on training images per class (smoke runs)", low=2, optional=True),
        "seed": Param(42, int, "random seed of the weights, augmentation and batch order (the split's is WBC5_SPLIT's)",
                      low=0),
    },
    recipes={
        # The course report's two-phase recipe (ResNet18 at 224 px on a GPU; 99.47%, 373/375).
        "report": {},
        # What the kit runs on a CPU: offline weights, 128 px, a faster fine-tuning rate for the head
        # (the report's 1e-4 was still climbing after 20 epochs at 128 px: 97.3%), TTA.
        "cpu": {"backbone": "efficientnet_lite0", "image_size": 128, "lr_unfrozen": 5e-4,
                "lr_unfrozen_body": 2.5e-4, "tta": True},
        # A classroom run of a few minutes on a CPU. Eight fine-tuning epochs take twice the CPU lab's
        # rates (chosen on validation, seeds 42/1/2: 1,117 of 1,125 right against 1,107).
        "quick": {"image_size": 96, "epochs_frozen": 3, "epochs_unfrozen": 8, "lr_unfrozen": 1e-3,
                  "lr_unfrozen_body": 5e-4},
    },
    base=("report", "cpu"),
)
#: Ways to adapt a trained lab 2 model to another lab with its unlabelled images (bloodcells.models.adaptation).
ADAPTATIONS = ("adabn", "tent", "self_training")
#: Lab 2's named starting points: the CPU lab (the default) and the report's own (for a GPU).
LAB2_RECIPES = {"cpu": ("report", "cpu"), "report": ("report",)}


# ------------------------------------------------------------------------------ data defaults
#: Lab 2's split of the white-cell folders: the course report's stratified 70/15/15 with seed 42,
#: fixed whatever the training seed, so every run is judged on the same 375 test images.
WBC5_SPLIT = {"fractions": (0.70, 0.15, 0.15), "seed": 42}
#: PBC photos are 360 pixels with the cell in the middle; BloodMNIST keeps the central 200. Lab 2
#: crops them so before resizing: more pixels per cell at the same cost.
PBC_CROP = 0.55
#: The widest framing an image is read at: a close-up padded to 2.5 times its side (``read_rgb``).
MAX_CROP = 2.5
#: `bloodcells data prepare`: white cells per class drawn for wbc5, and the seed of the draw.
PREPARE = {"per_class": 500, "seed": 42}
#: The SYNTHETIC white-cell folder made when no real one is found: cells per class, pixels.
SYNTHETIC_WBC5 = {"per_class": 60, "size": 96}
