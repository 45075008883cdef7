"""MixStyle (Zhou et al. 2021): feature-statistics mixing in the body's early stages.

A convolution's per-channel mean and spread over an image carry its "style" (stain, exposure,
camera) more than its content. While training, with probability ``p`` per batch, each image's
early feature maps are re-normalised to a random blend of its own statistics and another image's,
so the later layers learn not to depend on them. At prediction the hooks do nothing.
"""
from __future__ import annotations

import torch
from torch import nn

#: Stages of the body after which styles are mixed: the early ones, where style lives (the paper
#: mixes after ResNet's first three of four).
STAGES = 3


class MixStyle:
    """A forward hook (a plain class, so an exported learner pickles it)."""

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6):
        self.p, self.alpha, self.eps = p, alpha, eps

    def __call__(self, module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        if not module.training or output.shape[0] < 2 or float(torch.rand(1)) > self.p:
            return output
        n = output.shape[0]
        mean = output.mean(dim=(2, 3), keepdim=True).detach()
        std = (output.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        weight = torch.distributions.Beta(self.alpha, self.alpha).sample((n, 1, 1, 1)).to(output.device)
        other = torch.randperm(n)
        mixed_mean = weight * mean + (1 - weight) * mean[other]
        mixed_std = weight * std + (1 - weight) * std[other]
        return (output - mean) / std * mixed_std + mixed_mean


def stages(body: nn.Module) -> list[nn.Module]:
    """The body's stages: its ``blocks`` (timm's EfficientNet) or its residual ``layer`` groups."""
    children = list(body.children())
    blocks = [c for c in children if isinstance(c, nn.Sequential) and len(c) > 1]
    if len(blocks) == 1:  # timm keeps the stages in one Sequential named blocks
        return list(blocks[0].children())
    return blocks


def attach(body: nn.Module, p: float) -> list:
    """Hook MixStyle after the body's first :data:`STAGES` stages; returns the hook handles."""
    return [stage.register_forward_hook(MixStyle(p)) for stage in stages(body)[:STAGES]]
