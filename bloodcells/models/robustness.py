"""What lab 2 does so a model trained on one lab's slides still reads another lab's.

A white cell photographed elsewhere differs in three ways the network can be taught to ignore:
its **stain** (how much haematoxylin and eosin, so the hue of nucleus and granules), its
**sharpness** (another camera, objective and focus) and its **framing** (how large the cell is in the
picture). The training-time transforms below show the network those differences on its own photos;
:func:`adapt_batchnorm` lets a trained model re-learn its feature statistics on the new lab's images
(AdaBN: their pixels only, never their labels).

All act on fastai batches of float images in [0, 1], shape (batch, 3, height, width), before the
backbone's ``Normalize`` (order 99).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from fastai.vision.augment import RandTransform
from fastai.torch_core import TensorImage
from fasttransform import Transform
from torch import nn

# Ruifrok and Johnston's stain vectors (as in scikit-image's rgb2hed): rows are the optical
# densities of haematoxylin, eosin and DAB in R, G, B.
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)


class StainJitter(RandTransform):
    """HED jitter (Tellez et al. 2018): split each training image into its stains by colour
    deconvolution, scale each stain's amount by 1 + U(-sigma, sigma), shift it by U(-sigma, sigma)/10
    and recombine. A different lab's staining is, to first order, exactly this."""
    order = 45  # after fastai's lighting transforms (40), before Normalize (99)

    def __init__(self, sigma: float = 0.05, p: float = 1.0):
        super().__init__(p=p)
        self.sigma = sigma

    def encodes(self, x: TensorImage) -> TensorImage:
        n = x.shape[0]
        density = -torch.log(x.clamp(min=1e-3)).permute(0, 2, 3, 1)  # Beer-Lambert: optical density
        stains = density @ HED_FROM_RGB.to(x.device)
        scale = 1 + (torch.rand(n, 1, 1, 3, device=x.device) * 2 - 1) * self.sigma
        shift = (torch.rand(n, 1, 1, 3, device=x.device) * 2 - 1) * self.sigma / 10
        density = (stains * scale + shift) @ RGB_FROM_HED.to(x.device)
        return TensorImage(torch.exp(-density).clamp(0, 1).permute(0, 3, 1, 2).contiguous())


class LowResolution(RandTransform):
    """With probability ``p`` per image, shrink it to a random 25-60% of its size and enlarge it back
    (bilinear, anti-aliased): the blur of a lower-resolution camera or a cell cut out of a wide field."""
    order = 46

    def __init__(self, p: float = 0.5, smallest: float = 0.25, largest: float = 0.6):
        super().__init__(p=1.0)  # the per-image draw below decides
        self.per_image, self.smallest, self.largest = p, smallest, largest

    def encodes(self, x: TensorImage) -> TensorImage:
        size = x.shape[-2:]
        out = x.clone()
        chosen = torch.nonzero(torch.rand(x.shape[0]) < self.per_image).flatten().tolist()
        for i in chosen:
            factor = self.smallest + (self.largest - self.smallest) * float(torch.rand(1))
            small = F.interpolate(x[i:i + 1], scale_factor=factor, mode="bilinear", antialias=True)
            out[i:i + 1] = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
        return TensorImage(out)


class StandardizeColour(Transform):
    """Every image, in training and at prediction, gets the same per-channel mean and spread
    (``mean``, ``std``: the training photos' averages), so a global stain cast is removed: Reinhard's
    colour transfer, in RGB."""
    order = 95

    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = torch.as_tensor(mean).view(1, 3, 1, 1), torch.as_tensor(std).view(1, 3, 1, 1)

    def encodes(self, x: TensorImage) -> TensorImage:
        own_mean = x.mean(dim=(2, 3), keepdim=True)
        own_std = x.std(dim=(2, 3), keepdim=True).clamp(min=1e-3)
        target_mean, target_std = self.mean.to(x.device), self.std.to(x.device)
        return TensorImage(((x - own_mean) / own_std * target_std + target_mean).clamp(0, 1))


def transforms(options, colour_reference=None) -> list:
    """The robustness transforms ``options`` switch on (``stain_jitter``, ``low_resolution``,
    ``standardize_colour``); ``colour_reference`` = (mean, std) per channel of the training photos."""
    chosen = []
    if options["stain_jitter"]:
        chosen.append(StainJitter(options["stain_jitter"]))
    if options["low_resolution"]:
        chosen.append(LowResolution(options["low_resolution"]))
    if options["standardize_colour"]:
        chosen.append(StandardizeColour(*colour_reference))
    return chosen


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, batches) -> nn.Module:
    """AdaBN (Li et al. 2016): a copy of ``model`` whose batch-norm layers' running mean and variance
    are re-estimated on ``batches`` of the new lab's images (their pixels, no labels); every weight
    stays as trained. The original model is left untouched."""
    adapted = copy.deepcopy(model)
    norms = [m for m in adapted.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over all the new images, not a moving one
    adapted.eval()  # dropout stays off: it would inflate the variances measured behind it
    for norm in norms:
        norm.train()
    for images in batches:
        adapted(images)
    return adapted.eval()
