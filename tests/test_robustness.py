"""Lab 2's tools against another lab's look: stain jitter, low resolution, colour standardisation,
and how the training pipeline and external scoring use them and the other domain tools
(tests/test_domain_tools.py tests those on their own)."""
import numpy as np
import pytest
import torch
from fastai.torch_core import TensorImage
from torch import nn

from bloodcells.data.folders import split_folder
from bloodcells.data.synthetic import write_class_folders
from bloodcells.models import cell_images, robustness, transfer

pytestmark = pytest.mark.slow  # trains fastai learners

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def stained_batch(n=6, size=32, seed=0):
    """Images made of haematoxylin and eosin in known amounts (optical densities), like a smear."""
    g = torch.Generator().manual_seed(seed)
    amounts = torch.rand(n, size, size, 3, generator=g) * torch.tensor([1.0, 0.6, 0.0])
    return TensorImage(torch.exp(-amounts @ robustness.RGB_FROM_HED).permute(0, 3, 1, 2)), amounts


def test_stain_vectors_unmix_what_they_mix():
    images, amounts = stained_batch()
    density = -torch.log(images.permute(0, 2, 3, 1))
    torch.testing.assert_close(density @ robustness.HED_FROM_RGB, amounts, atol=1e-4, rtol=1e-4)


def test_stain_jitter_changes_stain_amounts_within_bounds_per_image():
    images, amounts = stained_batch()
    torch.testing.assert_close(robustness.StainJitter(sigma=0.0)(images, split_idx=0), images, atol=1e-5, rtol=1e-5)
    torch.manual_seed(1)
    jittered = robustness.StainJitter(sigma=0.2)(images, split_idx=0)
    assert jittered.shape == images.shape and 0 <= float(jittered.min()) and float(jittered.max()) <= 1
    new = (-torch.log(jittered.clamp(min=1e-3).permute(0, 2, 3, 1))) @ robustness.HED_FROM_RGB
    haematoxylin = new[..., 0] / amounts[..., 0].clamp(min=0.2)  # where there is stain to scale
    spread = haematoxylin.flatten(1).median(1).values
    assert float((spread - 1).abs().max()) < 0.25 and len(set(spread.round(decimals=3).tolist())) == len(spread)
    # training only: validation and prediction batches pass through untouched
    assert robustness.StainJitter(sigma=0.2)(images, split_idx=1) is images


def test_low_resolution_blurs_fine_detail_and_keeps_the_size():
    stripes = torch.zeros(4, 3, 32, 32)
    stripes[..., ::2] = 1.0
    images = TensorImage(stripes)
    blurred = robustness.LowResolution(p=1.0)(images, split_idx=0)
    assert blurred.shape == images.shape
    assert float(blurred.std()) < 0.1 < float(images.std())  # one-pixel stripes cannot survive 60% size
    torch.testing.assert_close(robustness.LowResolution(p=0.0)(images, split_idx=0), images)


def test_colour_standardisation_removes_a_stain_cast():
    images, _ = stained_batch(n=2)
    cast = TensorImage(torch.stack([images[0], (images[0] * torch.tensor([0.8, 0.9, 1.0]).view(3, 1, 1))]))
    mean, std = [0.7, 0.6, 0.75], [0.12, 0.15, 0.1]
    out = robustness.StandardizeColour(mean, std)(cast)
    torch.testing.assert_close(out[0], out[1], atol=2e-3, rtol=0)
    torch.testing.assert_close(out.mean(dim=(2, 3))[0], torch.tensor(mean), atol=0.02, rtol=0)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    folder = write_class_folders(tmp_path_factory.mktemp("wbc") / "wbc5", CLASSES, per_class=16, size=48, seed=3)
    return split_folder(folder)


def test_pipeline_uses_the_switches_and_external_scoring_can_adapt(split):
    options = transfer.options(image_size=32, batch_size=8, epochs_frozen=1, epochs_unfrozen=1, tta=False,
                               stain_jitter=0.1, low_resolution=0.5, standardize_colour=True, lab_stain=1.0,
                               colour="grayscale", mixstyle=0.5)
    learn = transfer.build_learner(split, transfer.frame(options, split))
    names = [type(t).__name__ for t in learn.dls.train.after_batch.fs]
    assert {"StainJitter", "LowResolution", "StandardizeColour", "LabStain", "ColourView"} <= set(names)
    assert names.index("LabStain") < names.index("StainJitter") < names.index("ColourView") < names.index("Normalize")
    hooks = [h for m in learn.model[0].modules() for h in m._forward_hooks.values()]
    assert [type(h).__name__ for h in hooks] == ["MixStyle"] * 3
    # the colour view holds at prediction too: a grayscale model never sees the hue of a test image
    batch = learn.dls.test_dl([[f, "basophil"] for f in split.files["test"][:4]], with_labels=False).one_batch()[0]
    normalize = learn.dls.after_batch.fs[-1]
    raw = batch * normalize.std + normalize.mean
    torch.testing.assert_close(raw[:, 0], raw[:, 1], atol=1e-4, rtol=0)
    reference = next(t for t in learn.dls.train.after_batch.fs if type(t).__name__ == "StandardizeColour")
    expected = cell_images.colour_reference(split.files["train"], 32, 1.0)
    np.testing.assert_allclose(reference.mean.flatten().numpy(), expected[0], rtol=1e-5)
    plain = transfer.frame(transfer.options(image_size=32), split)
    assert not {"StainJitter", "LowResolution", "StandardizeColour", "LabStain", "ColourView"} & {
        type(t).__name__ for t in cell_images.make_dataloaders(split, plain).train.after_batch.fs}

    stats = [m.running_mean.clone() for m in learn.model.modules() if isinstance(m, nn.BatchNorm2d)]
    files = split.files["test"]
    as_trained = transfer.predict(learn, files)
    adapted = transfer.predict(learn, files, adapt="adabn")
    assert not np.allclose(as_trained, adapted, atol=1e-4)
    after = [m.running_mean for m in learn.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(a, b) for a, b in zip(stats, after))  # the learner's own model is unchanged
    np.testing.assert_allclose(transfer.predict(learn, files), as_trained, atol=1e-6)
