"""Autograder tests proven by mutation: for every autograded exercise, the model answer (the
solution cell, run as written) passes the exercise's test cell, visible and hidden parts together,
and each plausible wrong answer a student might hand in fails it with an assertion.

Each exercise runs in a namespace like the notebook's at that point, built from the package on
SYNTHETIC data (no training), so the proofs run in seconds and offline.
"""
import io
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
from PIL import Image

from bloodcells.data.medmnist_recipe import official_steps
from bloodcells.data.synthetic import render_cell

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _cells(notebook: str) -> dict[str, str]:
    nb = nbformat.read(NOTEBOOKS / f"{notebook}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "grade_id" in c.metadata.get("nbgrader", {})}


def _solve(notebook: str, exercise: str, namespace: dict) -> dict:
    """The namespace after the exercise's solution cell (its displays and prints silenced)."""
    source = _cells(notebook)[f"{exercise}-solution"]
    body = source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
    solved = dict(namespace)
    exec(body, solved)
    return solved


def _passes(notebook: str, exercise: str, namespace: dict) -> bool:
    """Whether the exercise's test cell (hidden tests included, as the autograder runs it) passes;
    anything but an assertion is a broken test, not a caught answer."""
    try:
        exec(_cells(notebook)[f"{exercise}-tests"], dict(namespace))
    except AssertionError:
        return False
    return True


def _prove(notebook: str, exercise: str, namespace: dict, wrong: dict[str, dict]) -> None:
    answer = _solve(notebook, exercise, namespace)
    assert _passes(notebook, exercise, answer), f"{exercise}: the model answer fails its own test"
    assert len(wrong) >= 3
    passed = [name for name, overrides in wrong.items() if _passes(notebook, exercise, {**answer, **overrides})]
    assert not passed, f"{exercise}: wrong answers the test lets through: {passed}"


# ------------------------------------------------------------------ notebook 01
@pytest.fixture(scope="module")
def nb01():
    from bloodcells.data import open_bloodmnist, prepare_split

    dataset = open_bloodmnist("synthetic")
    n = len(dataset.class_names)
    x_train, _ = prepare_split(dataset.images["train"], dataset.labels["train"], n)
    _, y_test = prepare_split(dataset.images["test"], dataset.labels["test"], n)
    return {"np": np, "dataset": dataset, "n_classes": n, "x_train": x_train, "y_test": y_test}


def test_exercise_01_1_class_shares(nb01):
    counts = {s: np.bincount(nb01["dataset"].labels[s], minlength=nb01["n_classes"]) for s in ("train", "test")}
    names = nb01["dataset"].class_names
    everything = counts["train"] + counts["test"] + np.bincount(nb01["dataset"].labels["val"], minlength=len(names))
    _prove("01_explore_and_preprocess", "e01-1", nb01, {
        "the most common class": {"rarest": names[counts["train"].argmax()]},
        "the ratio upside down": {"ratio": counts["train"].min() / counts["train"].max()},
        "the class number, not its name": {"rarest": int(counts["train"].argmin())},
        "counted over every split": {"ratio": everything.max() / everything.min()},
        "counted on the test split": {"ratio": counts["test"].max() / counts["test"].min()},
    })


def test_exercise_01_2_one_hot(nb01):
    labels, n = nb01["dataset"].labels, nb01["n_classes"]
    _prove("01_explore_and_preprocess", "e01-2", nb01, {
        "float64": {"onehot_10": np.eye(n)[labels["test"][:10]]},
        "the training split's labels": {"onehot_10": np.eye(n, dtype=np.float32)[labels["train"][:10]]},
        "shifted by one class": {"onehot_10": np.eye(n, dtype=np.float32)[(labels["test"][:10] + 1) % n]},
        "the labels themselves": {"onehot_10": labels["test"][:10].astype(np.float32)},
        "transposed": {"onehot_10": np.eye(n, dtype=np.float32)[labels["test"][:10]].T},
    })


def test_exercise_01_3_mean_image(nb01):
    dataset, x = nb01["dataset"], nb01["x_train"]
    train = dataset.labels["train"]

    def mean_of(name, images=x, labels=train):
        return images[labels == dataset.class_names.index(name)].mean(axis=0)

    test_x = dataset.images["test"].astype(np.float32) / 255
    _prove("01_explore_and_preprocess", "e01-3", nb01, {
        "every class": {"mean_neutrophil": x.mean(axis=0)},
        "the monocytes": {"mean_neutrophil": mean_of("monocyte")},
        "the test split's neutrophils": {"mean_neutrophil": mean_of("neutrophil", test_x, dataset.labels["test"])},
        "float64": {"mean_neutrophil": mean_of("neutrophil").astype(np.float64)},
        "unscaled 0-255": {"mean_neutrophil": mean_of("neutrophil", dataset.images["train"].astype(np.float32))},
    })


def _recipe(photo, crop_offsets=round, filter=Image.Resampling.BILINEAR, quality=75, subsampling="4:2:0",
            jpeg=True, crop=True):
    image = Image.fromarray(photo)
    if crop:
        left, top = crop_offsets((image.width - 200) / 2), crop_offsets((image.height - 200) / 2)
        image = image.crop((left, top, left + 200, top + 200))
    small = image.resize((28, 28), filter)
    if not jpeg:
        return np.asarray(small)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return np.asarray(Image.open(buffer).convert("RGB"))


# 363x360 like a PBC photo: the odd margin makes rounding of the crop offsets matter.
PHOTO = np.ascontiguousarray(np.pad(render_cell("neutrophil", 360, np.random.default_rng(0)), ((1, 2), (0, 0), (0, 0)),
                                    mode="edge"))


def test_exercise_01_4_the_pixel_recipe():
    namespace = {"np": np, "Image": Image, "io": io, "photo": PHOTO, "steps": official_steps(PHOTO)}
    assert np.array_equal(_solve("01_explore_and_preprocess", "e01-4", namespace)["my_pixels"],
                          official_steps(PHOTO)["jpeg"])  # the model answer is the kit's recipe
    _prove("01_explore_and_preprocess", "e01-4", namespace, {
        "offsets truncated, not rounded": {"my_pixels": _recipe(PHOTO, crop_offsets=int)},
        "Lanczos instead of bilinear": {"my_pixels": _recipe(PHOTO, filter=Image.Resampling.LANCZOS)},
        "JPEG quality 95": {"my_pixels": _recipe(PHOTO, quality=95)},
        "no chroma subsampling": {"my_pixels": _recipe(PHOTO, subsampling="4:4:4")},
        "no JPEG round trip": {"my_pixels": _recipe(PHOTO, jpeg=False)},
        "whole photo, no crop": {"my_pixels": _recipe(PHOTO, crop=False)},
        "scaled to [0, 1]": {"my_pixels": _recipe(PHOTO) / 255.0},
        "a single channel": {"my_pixels": _recipe(PHOTO)[..., 0]},
    })


# ------------------------------------------------------------------ notebook 02
@pytest.mark.slow  # builds a Keras model
def test_exercise_02_1_shapes_and_weights():
    from bloodcells.models import cnn

    _prove("02_cnn_keras", "e02-1", {"cnn": cnn}, {
        "pooling rounded up": {"side_64": 15},
        "no biases": {"dense_64": 14 * 14 * 64 * 128},
        "the first block's 32 channels": {"dense_64": (14 * 14 * 32 + 1) * 128},
        "a float side (/ not //)": {"side_64": 14.5},
        "the 28-pixel network's layer": {"dense_64": (5 * 5 * 64 + 1) * 128},
    })


@pytest.fixture(scope="module")
def nb02(nb01):
    rng = np.random.default_rng(0)
    labels = nb01["dataset"].labels["test"]
    calls = np.where(rng.random(len(labels)) < 0.7, labels, (labels + 1) % 8)  # 70% right
    probs = rng.dirichlet(np.ones(8), len(labels)) * 0.5
    probs[np.arange(len(labels)), calls] += 0.5
    return {**nb01, "report_run": SimpleNamespace(probabilities=probs.astype(np.float32))}


@pytest.mark.slow  # imports Keras
def test_exercise_02_2_cross_entropy(nb02):
    import keras

    p, t = nb02["report_run"].probabilities, nb02["dataset"].labels["test"]
    true_p = p[np.arange(100), t[:100]]
    _prove("02_cnn_keras", "e02-2", {**nb02, "keras": keras}, {
        "log10": {"my_loss": float(-np.log10(true_p).mean())},
        "summed, not averaged": {"my_loss": float(-np.log(true_p).sum())},
        "the minus sign missing": {"my_loss": float(np.log(true_p).mean())},
        "every test image": {"my_loss": float(-np.log(p[np.arange(len(t)), t]).mean())},
        "the predicted class's probability": {"my_loss": float(-np.log(p[:100].max(axis=1)).mean())},
    })


def _record(**params):
    base = {"augment": True, "schedule": "cosine", "weight_decay": 5e-4, "label_smoothing": 0.1, "tta": False,
            "epochs": 6, "seed": 0}
    return SimpleNamespace(params={**base, **params}, metrics={"accuracy": 0.9, "n_correct": 900})


def test_exercise_02_3_ablation():
    solved = {"with_it": _record(), "without_it": _record(augment=False)}
    assert _passes("02_cnn_keras", "e02-3", solved)  # the model answer trains; its records look like these
    wrong = {
        "two options switched": {"without_it": _record(augment=False, label_smoothing=0.0)},
        "another seed": {"without_it": _record(augment=False, seed=1)},
        "no ingredient (fewer epochs)": {"without_it": _record(epochs=3)},
        "the same run twice": {"without_it": _record()},
        "not scored": {"without_it": SimpleNamespace(params=_record(augment=False).params, metrics={})},
    }
    passed = [name for name, overrides in wrong.items() if _passes("02_cnn_keras", "e02-3", {**solved, **overrides})]
    assert not passed, passed


# ------------------------------------------------------------------ notebook 03
def _wilson():
    nb = nbformat.read(NOTEBOOKS / "03_transfer_learning_fastai.ipynb", as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("def wilson("))
    namespace = {"np": np}
    exec(source.split("\ndef interval(")[0], namespace)
    return namespace["wilson"]


@pytest.fixture(scope="module")
def nb03():
    from torch import nn

    body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16))
    head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(16), nn.Linear(16, 5))
    names = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), [6, 12, 9, 7, 41])
    calls = np.where(rng.random(len(labels)) < 0.8, labels, rng.integers(0, 5, len(labels)))
    probs = np.full((len(labels), 5), 0.05)
    probs[np.arange(len(labels)), calls] = 0.8
    run = SimpleNamespace(probabilities=probs, metrics={"n_correct": int((calls == labels).sum()), "n_test": len(labels)})
    return {"np": np, "learn": SimpleNamespace(model=nn.Sequential(body, head)), "wilson": _wilson(), "run": run,
            "split": SimpleNamespace(class_names=names, labels={"test": labels, "train": np.repeat(np.arange(5), 50)})}


def test_exercise_03_1_batch_norm_weights(nb03):
    from torch import nn

    model = nb03["learn"].model
    body_total = sum(p.numel() for p in model[0].parameters())
    norms = [m for m in model[0].modules() if isinstance(m, nn.BatchNorm2d)]
    weights = sum(m.weight.numel() + m.bias.numel() for m in norms)
    every_norm = sum(p.numel() for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                     for p in m.parameters())
    _prove("03_transfer_learning_fastai", "e03-1", nb03, {
        "every weight of the body": {"bn_weights": body_total, "bn_share": 1.0},
        "the head's batch norm too": {"bn_weights": every_norm},
        "running statistics counted": {"bn_weights": weights + sum(m.running_mean.numel() * 2 for m in norms)},
        "share of the whole network": {"bn_share": weights / sum(p.numel() for p in model.parameters())},
        "only the scales": {"bn_weights": sum(m.weight.numel() for m in norms)},
    })


def test_exercise_03_2_nine_out_of_nine(nb03):
    _prove("03_transfer_learning_fastai", "e03-2", nb03, {
        "one-sided 5%": {"p_low": 0.05 ** (1 / 9)},
        "p to the ninth": {"p_low": 0.025 ** 9},
        "the upper end": {"p_low": 0.975 ** (1 / 9)},
        "nine right: 100%": {"p_low": 1.0},
    })


def test_exercise_03_3_one_class_interval(nb03):
    wilson, run, labels = nb03["wilson"], nb03["run"], nb03["split"].labels["test"]
    calls = run.probabilities.argmax(axis=1)
    truth, called = labels == 4, calls == 4
    k, n = int((truth & called).sum()), int(truth.sum())
    wald = (k / n - 1.96 * np.sqrt(k / n * (1 - k / n) / n), k / n + 1.96 * np.sqrt(k / n * (1 - k / n) / n))
    overall = wilson(run.metrics["n_correct"], run.metrics["n_test"])
    lymph = wilson(int(((labels == 2) & (calls == 2)).sum()), int((labels == 2).sum()))
    precision = wilson(k, int(called.sum()))
    _prove("03_transfer_learning_fastai", "e03-3", nb03, {
        "the whole test split's accuracy": {"low": overall[0], "high": overall[1]},
        "the normal (Wald) interval": {"low": wald[0], "high": wald[1]},
        "the lymphocytes": {"low": lymph[0], "high": lymph[1]},
        "precision, not recall": {"low": precision[0], "high": precision[1]},
        "neutrophils of the training split": {"n_neutrophils": 50},
    })


def test_exercise_03_5_mean_entropy(nb03):
    def entropy_with(log=np.log, sign=-1.0, over_images=np.mean, top_only=False, per_entry=False):
        def wrong(probabilities):
            p = np.clip(np.asarray(probabilities, dtype=float), 1e-12, 1.0)
            if top_only:
                p = p.max(axis=1, keepdims=True)
            terms = sign * p * log(p)
            return float(terms.mean() if per_entry else over_images(terms.sum(axis=1)))
        return wrong

    _prove("03_transfer_learning_fastai", "e03-5", nb03, {
        "in bits": {"mean_entropy": entropy_with(log=np.log2)},
        "without the minus sign": {"mean_entropy": entropy_with(sign=1.0)},
        "summed over images": {"mean_entropy": entropy_with(over_images=np.sum)},
        "the top class only": {"mean_entropy": entropy_with(top_only=True)},
        "averaged over every entry": {"mean_entropy": entropy_with(per_entry=True)},
    })


# ------------------------------------------------------------------ notebook 04
@pytest.fixture(scope="module")
def nb04(make_run):
    from bloodcells import analysis

    rng = np.random.default_rng(2)
    names = ["a", "b", "c", "d"]

    def run(n, sure):
        labels = rng.integers(0, 4, n)
        calls = np.where(rng.random(n) < 0.75, labels, rng.integers(0, 4, n))
        top = np.where(rng.random(n) < sure, rng.choice([0.9, 0.95, 0.99], n), rng.uniform(0.4, 0.89, n))
        probs = np.tile(((1 - top) / 3)[:, None], (1, 4))
        probs[np.arange(n), calls] = top
        return make_run(labels, probs, names)

    return {"np": np, "analysis": analysis, "calibration_bins": 10, "runs": [run(300, 0.5), run(200, 0.6)]}


def test_exercise_04_1_expected_calibration_error(nb04):
    probs, labels = nb04["runs"][0].probabilities, nb04["runs"][0].labels
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, 11)
    bins = [(conf > lo) & (conf <= hi) for lo, hi in zip(edges[:-1], edges[1:])]
    gaps = [right[b].mean() - conf[b].mean() for b in bins if b.any()]
    true_conf = probs[np.arange(len(labels)), labels]
    _prove("04_error_analysis", "e04-1", nb04, {
        "bins not weighted by size": {"my_ece": float(np.mean(np.abs(gaps)))},
        "signed gaps": {"my_ece": float(abs(sum(b.mean() * g for b, g in zip([b for b in bins if b.any()], gaps))))},
        "the true class's probability": {"my_ece": float(sum(b.mean() * abs(right[b].mean() - true_conf[b].mean())
                                                            for b in bins if b.any()))},
        "overall gap": {"my_ece": float(abs(right.mean() - conf.mean()))},
    })


def test_exercise_04_2_deferral(nb04):
    probs, labels = nb04["runs"][-1].probabilities, nb04["runs"][-1].labels
    sure, right = probs.max(axis=1) >= 0.9, probs.argmax(axis=1) == labels
    strict = probs.max(axis=1) > 0.9
    _prove("04_error_analysis", "e04-2", nb04, {
        "the share reported, not deferred": {"deferred": sure.mean()},
        "strictly above 0.9": {"deferred": 1 - strict.mean(), "auto_accuracy": right[strict].mean()},
        "accuracy of every cell": {"auto_accuracy": right.mean()},
        "accuracy of the deferred cells": {"auto_accuracy": right[~sure].mean()},
        "the first run": {"auto_accuracy": (nb04["runs"][0].predictions == nb04["runs"][0].labels)[
            nb04["runs"][0].probabilities.max(axis=1) >= 0.9].mean()},
    })


def test_exercise_04_3_temperature_keeps_accuracy(nb04):
    first, last = nb04["runs"][0], nb04["runs"][-1]
    accuracy = (first.predictions == first.labels).mean()
    scaled = nb04["analysis"].rescale(first.probabilities, 2.0)
    _prove("04_error_analysis", "e04-3", nb04, {
        "in percent": {"accuracy_t2": accuracy * 100},
        "the last run": {"accuracy_t2": (last.predictions == last.labels).mean()},
        "mean confidence after scaling": {"accuracy_t2": scaled.max(axis=1).mean()},
        "a count, not a share": {"accuracy_t2": float((first.predictions == first.labels).sum())},
    })
