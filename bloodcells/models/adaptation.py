"""Adapting a trained lab 2 model to another lab with that lab's unlabelled images.

A hospital that adopts the model always has its own slides but rarely labels for them. Each
method here takes a batch list of the new lab's images (pixels only, never labels) and returns an
adapted copy of the model; the original stays as trained, so the in-lab score does not move.

- ``"adabn"`` (Li et al. 2016): batch-norm statistics re-estimated on the new images.
- ``"tent"`` (Wang et al. 2021): AdaBN, then the batch-norm scales and shifts trained to make the
  predictions on the new images confident (lower entropy); every other weight stays.
- ``"self_training"``: AdaBN, then the whole model fine-tuned on the new images it is already sure
  of (top probability at least ``threshold``), with those guesses as labels, weighted so each guessed
  class counts the same; then AdaBN again.

The settings are fixed in advance (TENT's paper: Adam at 1e-3 on the affine parameters; a 0.9
threshold as in pseudo-labelling's usual practice), never chosen on the new lab's labels.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from bloodcells.config import ADAPTATIONS as METHODS


def _norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def adabn(model: nn.Module, batches) -> nn.Module:
    """A copy of ``model`` whose batch-norm running mean and variance are re-estimated on
    ``batches`` of the new lab's images; every weight stays as trained."""
    adapted = copy.deepcopy(model)
    norms = _norms(adapted)
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over all the new images, not a moving one
    adapted.eval()  # dropout stays off: it would inflate the variances measured behind it
    for norm in norms:
        norm.train()
    for images in batches:
        adapted(images)
    return adapted.eval()


def _shuffled(batches: list[torch.Tensor], generator: torch.Generator, size: int):
    images = torch.cat(batches)
    order = torch.randperm(len(images), generator=generator)
    return [images[order[i:i + size]] for i in range(0, len(images), size)]


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random flip and quarter turn per batch: a blood cell has no up or left."""
    turns, flip = torch.randint(0, 4, (2,), generator=generator).tolist()
    images = torch.rot90(images, turns, dims=(2, 3))
    return images.flip(3) if flip % 2 else images


def tent(model: nn.Module, batches, steps: int = 50, lr: float = 1e-3, batch_size: int = 64,
         seed: int = 0) -> nn.Module:
    """TENT: entropy minimisation of the batch-norm affine parameters on the new images (normalised
    by each batch's own statistics while adapting), then AdaBN with the adapted weights."""
    batches = list(batches)
    adapted = adabn(model, batches)
    for p in adapted.parameters():
        p.requires_grad_(False)
    affine = [p for norm in _norms(adapted) for p in (norm.weight, norm.bias) if p is not None]
    for p in affine:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(affine, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for norm in _norms(adapted):
        norm.train()
    done = 0
    while done < steps:
        for images in _shuffled(batches, generator, batch_size):
            probs = F.softmax(adapted(_augment(images, generator)), dim=1)
            entropy = -(probs * torch.log(probs.clamp(min=1e-8))).sum(1).mean()
            optimiser.zero_grad()
            entropy.backward()
            optimiser.step()
            done += 1
            if done == steps:
                break
    for p in adapted.parameters():
        p.requires_grad_(False)
    return adabn(adapted, batches)


def self_train(model: nn.Module, batches, threshold: float = 0.9, epochs: int = 5, lr: float = 1e-4,
               batch_size: int = 32, seed: int = 0) -> nn.Module:
    """Pseudo-label self-training: fine-tune an AdaBN copy on the images it already classifies with
    probability >= ``threshold``, each guessed class weighted equally (a confident majority class
    would otherwise pull every other one in). With no image that sure, the AdaBN copy is returned."""
    batches = list(batches)
    adapted = adabn(model, batches)
    with torch.no_grad():
        images = torch.cat(batches)
        probs = torch.cat([F.softmax(adapted(b), dim=1) for b in batches])
    confidence, guesses = probs.max(1)
    chosen = confidence >= threshold
    if not chosen.any():
        return adapted
    images, guesses = images[chosen], guesses[chosen]
    counts = torch.bincount(guesses, minlength=probs.shape[1]).float()
    weights = torch.where(counts > 0, counts.sum() / (counts.clamp(min=1) * (counts > 0).sum()), torch.zeros_like(counts))
    for p in adapted.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(adapted.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    adapted.eval()  # the new lab's batch-norm statistics stay fixed while the weights move
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for i in range(0, len(images), batch_size):
            pick = order[i:i + batch_size]
            loss = F.cross_entropy(adapted(_augment(images[pick], generator)), guesses[pick], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    for p in adapted.parameters():
        p.requires_grad_(False)
    return adabn(adapted, batches)


def adapt(model: nn.Module, batches, method: str, seed: int = 0) -> nn.Module:
    """An adapted copy of ``model`` by ``method`` (one of :data:`METHODS`) on unlabelled ``batches``."""
    if method == "adabn":
        return adabn(model, batches)
    if method == "tent":
        return tent(model, batches, seed=seed)
    if method == "self_training":
        return self_train(model, batches, seed=seed)
    raise ValueError(f"adapt must be one of {METHODS} or None, got {method!r}")
