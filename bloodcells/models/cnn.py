"""Lab 1: Keras CNNs for BloodMNIST, the parts a notebook should not have to spell out.

``seed`` is the course report's network as described (91.61% test accuracy there); ``improved``
keeps to a laptop CPU budget but adds what the field knows helps: batch norm, deeper blocks,
augmentation that respects cells (no orientation: flips and 90-degree turns; mild stain jitter),
AdamW with a cosine schedule, label smoothing and test-time augmentation, each a switch in
:data:`bloodcells.config.LAB1`. Notebook 02 writes compile, EarlyStopping and fit out in its cells;
:func:`train` does the very same steps in one call for benchmarks and the lab runner.
"""
from __future__ import annotations

import time
import warnings

import keras  # importing this module imports bloodcells first, which quiets TensorFlow
import numpy as np
import tensorflow as tf

from bloodcells import experiment
from bloodcells.config import CNN_MODELS as MODELS, LAB1
from bloodcells.data.preprocess import check_pixels, normalize_images, one_hot
from bloodcells.experiment import RunRecord
from bloodcells.seeding import seed_everything

# model.fit's default shuffle=True does not apply to a tf.data pipeline, which shuffles itself.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed", category=UserWarning)


def options(model: str = "seed", quick: bool = False, **given):
    """Training options for ``model``: its recipe, quick mode's changes, then ``given`` (None = unset)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return LAB1.options(quick=quick, base=(model,), **given)


def build_seed_cnn(input_shape, n_classes: int) -> keras.Model:
    """Two Conv+ReLU+MaxPool blocks, Flatten, Dense+ReLU, Dense softmax (the report's model)."""
    return keras.Sequential([
        keras.Input(input_shape),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(n_classes, activation="softmax"),
    ], name="seed_cnn")


def build_improved_cnn(input_shape, n_classes: int, width: int = LAB1.params["width"].default) -> keras.Model:
    """Three double-conv blocks with batch norm, global average pooling and dropout.

    Pooling count adapts to the image size so 64 and 128 pixel inputs end near 7x7 too.
    """
    n_blocks = 3 + max(0, int(np.log2(input_shape[0] / 28)))
    inputs = keras.Input(input_shape)
    x = inputs
    for block in range(n_blocks):
        filters = width * 2 ** min(block, 2)
        for _ in range(2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=0.9)(x)  # stats keep up with short runs
            x = keras.layers.ReLU()(x)
        if block < n_blocks - 1:
            x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="improved_cnn")


def build_model(name: str, input_shape, n_classes: int, width: int = LAB1.params["width"].default) -> keras.Model:
    """The report's network (``width`` does not apply: it is built as described) or the improved one."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    if name == "seed":
        return build_seed_cnn(tuple(input_shape), n_classes)
    return build_improved_cnn(tuple(input_shape), n_classes, width)


def dihedral(x: tf.Tensor, k: int, flip: bool) -> tf.Tensor:
    """One of the 8 flips/quarter turns of a batch of images (a cell looks the same in all)."""
    x = tf.image.rot90(x, k)
    return tf.image.flip_left_right(x) if flip else x


def _augmenter(seed: int):
    rng = tf.random.Generator.from_seed(seed)

    def augment(x, y):
        n = tf.shape(x)[0]
        turns = tf.stack([dihedral(x, k, f) for k in range(4) for f in (False, True)], axis=1)
        choice = rng.uniform([n], 0, 8, dtype=tf.int32)
        x = tf.gather(turns, choice, batch_dims=1)
        brightness = rng.uniform([n, 1, 1, 1], -0.06, 0.06)
        contrast = rng.uniform([n, 1, 1, 1], 0.9, 1.1)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        return tf.clip_by_value((x - mean) * contrast + mean + brightness, 0.0, 1.0), y

    return augment


def training_data(dataset, options) -> tuple[tf.data.Dataset, tuple[np.ndarray, np.ndarray]]:
    """The training batches (shuffled each epoch, augmented if ``options["augment"]``) and the
    validation arrays, both scaled to [0, 1] with one-hot labels."""
    n_classes = len(dataset.class_names)
    x, y = dataset.subset("train", options["max_train_samples"], options["seed"])
    # The pipeline and its full-size shuffle buffer hold uint8 pixels (a quarter of float32's memory);
    # each batch is scaled as normalize_images would (same float32 division, so the same values).
    batches = tf.data.Dataset.from_tensor_slices((check_pixels(x), one_hot(y, n_classes))).shuffle(
        len(x), seed=options["seed"], reshuffle_each_iteration=True).batch(options["batch_size"]).map(
        lambda images, labels: (tf.cast(images, tf.float32) / 255.0, labels))
    if options["augment"]:
        batches = batches.map(_augmenter(options["seed"]))
    val = normalize_images(dataset.images["val"]), one_hot(dataset.labels["val"], n_classes)
    return batches.prefetch(2), val


def optimizer(options, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam at a constant rate (the report), or AdamW with warm-up then cosine decay (improved)."""
    rate = options["learning_rate"]
    if options["schedule"] == "cosine":
        steps = options["epochs"] * steps_per_epoch
        rate = keras.optimizers.schedules.CosineDecay(rate / 10, steps, warmup_target=rate,
                                                      warmup_steps=max(1, steps // 15))
    if options["weight_decay"]:
        return keras.optimizers.AdamW(rate, weight_decay=options["weight_decay"])
    return keras.optimizers.Adam(rate)


def loss(options) -> keras.losses.Loss:
    """Categorical cross-entropy, with label smoothing when the options ask for it."""
    return keras.losses.CategoricalCrossentropy(label_smoothing=options["label_smoothing"])


def early_stopping(options) -> keras.callbacks.EarlyStopping:
    """Stop after ``patience`` epochs without a lower validation loss; keep the best epoch's weights."""
    return keras.callbacks.EarlyStopping(monitor="val_loss", patience=options["patience"],
                                         restore_best_weights=True)


class EpochLog(keras.callbacks.Callback):
    """One printed line per epoch (readable in a notebook, a log and an HTML report, unlike Keras'
    progress bar), and the training time in ``seconds``."""

    def __init__(self, show: bool = True):
        super().__init__()
        self.show, self.seconds = show, 0.0

    def on_train_begin(self, logs=None):
        self._start = self._epoch_start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self._start
        if self.show:
            values = "  ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
            print(f"epoch {epoch + 1:3d}  {values}  ({time.perf_counter() - self._epoch_start:.1f} s)", flush=True)


def record(model: keras.Model, history, options, dataset, seconds: float) -> RunRecord:
    """Wrap a trained model and its ``fit`` history as the labs' :class:`RunRecord`."""
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items() if k != "learning_rate"}
    params = {**options, "dataset": dataset.title, "image_size": int(dataset.image_shape[0])}
    return RunRecord(model, hist, params, seconds)


def train(dataset, options, log: bool = True) -> RunRecord:
    """Notebook 02's training cells in one call: seed, data, build, compile, fit with early stopping."""
    seed_everything(options["seed"])
    train_batches, val = training_data(dataset, options)
    model = build_model(options["model"], dataset.image_shape, len(dataset.class_names), options["width"])
    model.compile(optimizer=optimizer(options, len(train_batches)), loss=loss(options), metrics=["accuracy"])
    epoch_log = EpochLog(show=log)
    history = model.fit(train_batches, validation_data=val, epochs=options["epochs"],
                        callbacks=[early_stopping(options), epoch_log], verbose=0)
    return record(model, history, options, dataset, epoch_log.seconds)


def predict_proba(model: keras.Model, images: np.ndarray, tta: bool = False, batch_size: int = 512) -> np.ndarray:
    """Class probabilities for uint8 images; ``tta`` averages over the 8 flips/quarter turns."""
    x = normalize_images(images)
    if not tta:
        return model.predict(x, batch_size=batch_size, verbose=0)
    # One view at a time: eight float copies of the test set at once cost a Binder session 250 MB.
    return np.mean([model.predict(dihedral(x, k, f).numpy(), batch_size=batch_size, verbose=0)
                    for k in range(4) for f in (False, True)], axis=0)


def evaluate(run: RunRecord, dataset) -> dict:
    """Score a run on the test split (and keep validation probabilities), with its TTA setting."""
    tta = run.params["tta"]
    probs = {split: predict_proba(run.model, dataset.images[split], tta=tta) for split in ("test", "val")}
    return experiment.score(run, dataset.labels["test"], probs["test"], dataset.class_names,
                            val_probabilities=probs["val"], model=run.params["model"], dataset=dataset.title,
                            synthetic=dataset.synthetic, tta=tta)


def save_run(run: RunRecord, dataset, output_dir="runs"):
    """A new run folder: model.keras, predictions.npz (with the test images), history, params, metrics."""
    return experiment.save(run, output_dir, f"cnn-{run.params['model']}", lambda f: run.model.save(f / "model.keras"),
                           dataset.labels["test"], dataset.class_names, val_labels=dataset.labels["val"],
                           images=dataset.images["test"])


def run_experiment(dataset, options, output_dir="runs", log: bool = True) -> RunRecord:
    """Train, evaluate and save: what notebook 02 does for one model, in one call."""
    experiment.check_output_dir(output_dir)
    run = train(dataset, options, log)
    evaluate(run, dataset)
    save_run(run, dataset, output_dir)
    return run
