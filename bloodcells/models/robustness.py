"""What lab 2 does so a model trained on one lab's slides still reads another lab's.

A white cell photographed elsewhere differs in three ways the network can be taught to ignore:
its **stain** (how much haematoxylin and eosin, so the hue of nucleus and granules), its
**sharpness** (another camera, objective and focus) and its **framing** (how large the cell is in the
picture). The training-time transforms below show the network those differences on its own photos,
or (``colour``) hide the stain's hue from it altogether; :mod:`bloodcells.models.adaptation` adapts a
trained model with the new lab's unlabelled images.

All act on fastai batches of float images in [0, 1], shape (batch, 3, height, width), before the
backbone's ``Normalize`` (order 99).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from fastai.vision.augment import RandTransform
from fastai.torch_core import TensorImage
from fasttransform import Transform

from bloodcells.config import COLOURS

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


# sRGB (D65) to CIE XYZ, and the D65 white: the CIELAB conversion scikit-image's rgb2lab makes.
XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                             [0.019334, 0.119193, 0.950227]])
D65 = torch.tensor([0.95047, 1.0, 1.08883]).view(1, 3, 1, 1)
_EPSILON, _KAPPA = 216 / 24389, 24389 / 27


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """CIELAB of a batch of sRGB images in [0, 1] (L in 0-100, a and b about -100 to 100)."""
    linear = torch.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = torch.einsum("ij,njhw->nihw", XYZ_FROM_RGB.to(x.device), linear) / D65.to(x.device)
    f = torch.where(xyz > _EPSILON, xyz.clamp(min=1e-12) ** (1 / 3), (_KAPPA * xyz + 16) / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] of a CIELAB batch (the inverse of :func:`rgb_to_lab`, clipped to the gamut)."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], dim=1)
    xyz = torch.where(f ** 3 > _EPSILON, f ** 3, (116 * f - 16) / _KAPPA) * D65.to(lab.device)
    linear = torch.einsum("ij,njhw->nihw", torch.linalg.inv(XYZ_FROM_RGB).to(lab.device), xyz).clamp(0, 1)
    return torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=1e-12) ** (1 / 2.4) - 0.055, 12.92 * linear).clamp(0, 1)


def lab_statistics(images) -> dict[str, list[float]]:
    """How the training photos' stain varies: over the images, the mean and spread of each one's
    per-channel LAB mean and LAB spread (``images``: uint8 arrays, height x width x 3)."""
    per_image = []
    for pixels in images:
        lab = rgb_to_lab(torch.tensor(pixels).permute(2, 0, 1)[None].float() / 255)[0].flatten(1)
        per_image.append(torch.stack([lab.mean(1), lab.std(1)]))
    stats = torch.stack(per_image)  # image, (mean, spread), channel
    return {"mean_mean": stats[:, 0].mean(0).tolist(), "mean_spread": stats[:, 0].std(0).tolist(),
            "std_mean": stats[:, 1].mean(0).tolist(), "std_spread": stats[:, 1].std(0).tolist()}


class LabStain(RandTransform):
    """Stain augmentation in the spirit of RandStainNA (Shen et al. 2022): each training image is
    given a new stain, a random "virtual template" whose per-channel LAB mean and spread are drawn
    from the training photos' own (:func:`lab_statistics`), their spread widened ``widen`` times,
    by Reinhard's transfer in LAB. Real stains vary so; the widening stands in for labs not seen."""
    order = 42  # after fastai's lighting (40), before the HED jitter (45)

    def __init__(self, statistics: dict, widen: float = 1.0, p: float = 1.0):
        super().__init__(p=p)
        self.statistics, self.widen = statistics, widen

    def encodes(self, x: TensorImage) -> TensorImage:
        n, s = x.shape[0], {k: torch.tensor(v, device=x.device) for k, v in self.statistics.items()}
        lab = rgb_to_lab(x)
        own_mean = lab.mean(dim=(2, 3), keepdim=True)
        own_std = lab.std(dim=(2, 3), keepdim=True).clamp(min=1e-3)
        noise = torch.randn(2, n, 3, device=x.device) * self.widen
        mean = (s["mean_mean"] + s["mean_spread"] * noise[0]).view(n, 3, 1, 1)
        std = (s["std_mean"] + s["std_spread"] * noise[1]).clamp(min=0.5).view(n, 3, 1, 1)
        return TensorImage(lab_to_rgb((lab - own_mean) / own_std * std + mean))


LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


class ColourView(Transform):
    """What of the colour the network sees, in training and at prediction alike: ``"grayscale"``
    (luminance: shape and texture, no hue) or ``"haematoxylin"`` (the nuclear stain alone, by colour
    deconvolution, redrawn in its own blue; eosin's pink is gone). Both hide the stain cues that
    differ most between labs, and with them the eosinophil's red granules."""
    order = 96  # after colour standardisation (95), before Normalize (99)

    def __init__(self, kind: str):
        super().__init__()
        if kind not in COLOURS[1:]:
            raise ValueError(f"colour must be one of {COLOURS}, got {kind!r}")
        self.kind = kind

    def encodes(self, x: TensorImage) -> TensorImage:
        if self.kind == "grayscale":
            return TensorImage((x * LUMA.to(x.device)).sum(1, keepdim=True).expand(-1, 3, -1, -1).contiguous())
        density = -torch.log(x.clamp(min=1e-3)).permute(0, 2, 3, 1)
        haematoxylin = (density @ HED_FROM_RGB.to(x.device))[..., :1].clamp(min=0)
        return TensorImage(torch.exp(-haematoxylin * RGB_FROM_HED[0].to(x.device)).permute(0, 3, 1, 2).contiguous())


def transforms(options, colour_reference=None, stain_statistics=None) -> list:
    """The robustness transforms ``options`` switch on (``lab_stain``, ``stain_jitter``,
    ``low_resolution``, ``standardize_colour``, ``colour``); ``colour_reference`` = (mean, std) per
    channel of the training photos, ``stain_statistics`` their :func:`lab_statistics`."""
    chosen = []
    if options["lab_stain"]:
        chosen.append(LabStain(stain_statistics, options["lab_stain"]))
    if options["stain_jitter"]:
        chosen.append(StainJitter(options["stain_jitter"]))
    if options["low_resolution"]:
        chosen.append(LowResolution(options["low_resolution"]))
    if options["standardize_colour"]:
        chosen.append(StandardizeColour(*colour_reference))
    if options["colour"] != "rgb":
        chosen.append(ColourView(options["colour"]))
    return chosen
