"""Schematic figures drawn from the models themselves, so a diagram cannot drift from the code."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# One colour per kind of layer, so the eye finds the convolutions, the pooling and the dense part.
KIND_COLOURS = {"Conv2D": "#8ecae6", "MaxPooling2D": "#ffb703", "Flatten": "#d9d9d9", "Dense": "#90be6d",
                "BatchNormalization": "#cdb4db", "ReLU": "#f4a261", "GlobalAveragePooling2D": "#ffb703",
                "Dropout": "#d9d9d9", "Input": "#ffffff"}


def keras_layers(model) -> list[dict]:
    """Each layer of a Keras model as ``kind``, ``shape`` (output, batch axis dropped) and ``weights``,
    the input first."""
    rows = [{"kind": "Input", "shape": tuple(model.input_shape[1:]), "weights": 0, "detail": ""}]
    for layer in model.layers:
        config = layer.get_config()
        detail = (f"{config['filters']} filters {config['kernel_size'][0]}x{config['kernel_size'][1]}"
                  if "filters" in config else f"{config['units']} units" if "units" in config else "")
        if config.get("activation") not in (None, "linear"):
            detail += f", {config['activation']}"
        rows.append({"kind": type(layer).__name__, "shape": tuple(layer.output.shape[1:]),
                     "weights": layer.count_params(), "detail": detail})
    return rows


def block_diagram(layers: list[dict], title: str):
    """A left-to-right chain of boxes, one per layer: its kind and settings, output shape, weights."""
    fig, ax = plt.subplots(figsize=(1.65 * len(layers) + 0.5, 2.9))
    ax.set(xlim=(-0.1, 1.65 * len(layers)), ylim=(0, 2.2))
    ax.axis("off")
    for i, layer in enumerate(layers):
        x = 1.65 * i
        ax.add_patch(FancyBboxPatch((x, 0.55), 1.3, 1.1, boxstyle="round,pad=0.04",
                                    facecolor=KIND_COLOURS.get(layer["kind"], "#ffffff"), edgecolor="black"))
        shape = "x".join(str(d) for d in layer["shape"])
        ax.text(x + 0.65, 1.38, layer["kind"], ha="center", va="center", fontsize=8.5, weight="bold")
        ax.text(x + 0.65, 1.08, layer["detail"], ha="center", va="center", fontsize=7.5)
        ax.text(x + 0.65, 0.78, shape, ha="center", va="center", fontsize=8)
        ax.text(x + 0.65, 0.3, f"{layer['weights']:,} weights" if layer["weights"] else "no weights",
                ha="center", va="center", fontsize=7.5, color="dimgray")
        if i:
            ax.add_patch(FancyArrowPatch((x - 0.33, 1.1), (x - 0.04, 1.1), arrowstyle="->", mutation_scale=12))
    total = sum(layer["weights"] for layer in layers)
    ax.set_title(f"{title} ({total:,} weights; each box: layer, settings, output shape)", fontsize=10)
    fig.tight_layout()
    return fig


def training_phases(phases: list[tuple[str, list[dict]]], title: str = "What each phase trains"):
    """Each phase of a transfer-learning run as a row of its parameter groups (``transfer.parameter_groups``):
    box width by weights, blue where the optimiser changes every weight (with its peak rate), grey where
    frozen, hatched where only some are trainable."""
    fig, ax = plt.subplots(figsize=(8, 0.6 + 1.3 * len(phases)))  # narrow: its labels stay legible on a page
    total = max(sum(group["weights"] for group in groups) for _, groups in phases)
    ax.set(xlim=(-0.36, 1.01), ylim=(-0.1, len(phases)))
    ax.axis("off")
    for row, (name, groups) in enumerate(phases):
        y, x = len(phases) - row - 1, 0.0
        ax.text(-0.02, y + 0.4, name, ha="right", va="center", fontsize=10, weight="bold")
        for group in groups:
            width = group["weights"] / total
            whole = group["trainable"] == group["weights"]
            state = (f"rate {group['lr']:.0e}" if whole else "frozen" if not group["trainable"]
                     else "partly frozen")  # e.g. fastai's train_bn=True: batch norm trains in a frozen body
            ax.add_patch(FancyBboxPatch((x + 0.004, y + 0.1), width - 0.008, 0.6, boxstyle="round,pad=0.005",
                                        facecolor="#4c9be8" if whole else "#c8c8c8", edgecolor="black",
                                        hatch="" if whole or not group["trainable"] else "//"))
            ax.text(x + width / 2, y + 0.4, f"{group['name']}\n{group['weights']:,} weights\n{state}",
                    ha="center", va="center", fontsize=9.5, color="white" if whole else "black",
                    bbox=None if whole else {"facecolor": "#c8c8c8", "edgecolor": "none", "pad": 1})
            x += width
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
