"""The tools against another lab's look, each on its own: HED stain jitter, low resolution, colour
standardisation, LAB conversion and RandStainNA-style stain augmentation, the colour-blind views,
MixStyle, and adaptation with unlabelled images."""
import numpy as np
import pytest
import torch
from fastai.torch_core import TensorImage
from skimage.color import rgb2lab
from torch import nn

from bloodcells.data.errors import DataError
from bloodcells.data.folders import image_files
from bloodcells.models import adaptation, mixstyle, robustness


def smear(n=6, size=32, seed=0):
    """Images made of haematoxylin and eosin in known amounts, like a stained smear."""
    g = torch.Generator().manual_seed(seed)
    amounts = torch.rand(n, size, size, 3, generator=g) * torch.tensor([1.0, 0.6, 0.0])
    return TensorImage(torch.exp(-amounts @ robustness.RGB_FROM_HED).permute(0, 3, 1, 2)), amounts


def test_stain_vectors_unmix_what_they_mix():
    images, amounts = smear()
    density = -torch.log(images.permute(0, 2, 3, 1))
    torch.testing.assert_close(density @ robustness.HED_FROM_RGB, amounts, atol=1e-4, rtol=1e-4)


def test_stain_jitter_changes_stain_amounts_within_bounds_per_image():
    images, amounts = smear()
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
    images, _ = smear(n=2)
    cast = TensorImage(torch.stack([images[0], (images[0] * torch.tensor([0.8, 0.9, 1.0]).view(3, 1, 1))]))
    mean, std = [0.7, 0.6, 0.75], [0.12, 0.15, 0.1]
    out = robustness.StandardizeColour(mean, std)(cast)
    torch.testing.assert_close(out[0], out[1], atol=2e-3, rtol=0)
    torch.testing.assert_close(out.mean(dim=(2, 3))[0], torch.tensor(mean), atol=0.02, rtol=0)


def test_lab_conversion_matches_scikit_image_and_inverts():
    images, _ = smear()
    lab = robustness.rgb_to_lab(images)
    expected = np.stack([rgb2lab(im.permute(1, 2, 0).numpy()) for im in images]).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(lab.numpy(), expected, atol=0.05)
    torch.testing.assert_close(robustness.lab_to_rgb(lab), images.as_subclass(torch.Tensor), atol=1e-4, rtol=0)


def test_lab_stain_gives_each_image_a_template_drawn_from_the_training_stains():
    images, _ = smear(n=8)
    pixels = [(im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for im in images]
    stats = robustness.lab_statistics(pixels)
    own = robustness.rgb_to_lab(images).mean(dim=(2, 3))
    np.testing.assert_allclose(stats["mean_mean"], own.mean(0).numpy(), atol=0.3)
    # widen 0: every image is given the average stain exactly (within the gamut's clipping)
    same = robustness.LabStain(stats, widen=0.0)(images, split_idx=0)
    np.testing.assert_allclose(robustness.rgb_to_lab(same).mean(dim=(2, 3)).numpy(),
                               np.tile(stats["mean_mean"], (8, 1)), atol=1.0)
    torch.manual_seed(0)
    varied = robustness.rgb_to_lab(robustness.LabStain(stats, widen=3.0)(images, split_idx=0)).mean(dim=(2, 3))
    assert float(varied.std(0).min()) > float(own.std(0).min())  # wider than the photos' own spread
    assert robustness.LabStain(stats)(images, split_idx=1) is images  # training only


def test_colour_views_drop_the_hue_in_training_and_prediction_alike():
    images, amounts = smear()
    grey = robustness.ColourView("grayscale")(images)
    torch.testing.assert_close(grey[:, 0], grey[:, 2])
    for split_idx in (0, 1):
        torch.testing.assert_close(robustness.ColourView("haematoxylin")(images, split_idx=split_idx),
                                   robustness.ColourView("haematoxylin")(images))
    only_h = robustness.ColourView("haematoxylin")(images)
    unmixed = (-torch.log(only_h.permute(0, 2, 3, 1).clamp(min=1e-3))) @ robustness.HED_FROM_RGB
    torch.testing.assert_close(unmixed[..., 0], amounts[..., 0], atol=1e-3, rtol=1e-3)  # the nucleus stain kept
    assert float(unmixed[..., 1].abs().max()) < 1e-3  # eosin gone
    with pytest.raises(ValueError, match="colour must be one of"):
        robustness.ColourView("sepia")


def test_mixstyle_mixes_image_statistics_only_while_training():
    torch.manual_seed(0)
    stage = nn.Sequential(nn.Identity(), nn.Identity())
    stage.register_forward_hook(mixstyle.MixStyle(p=1.0, alpha=0.1))
    x = torch.cat([torch.randn(4, 3, 8, 8) * 0.5 + 2, torch.randn(4, 3, 8, 8) * 2 - 3])
    stage.eval()
    assert torch.equal(stage(x), x)
    stage.train()
    out = stage(x)
    before, after = x.mean(dim=(2, 3)), out.mean(dim=(2, 3))
    assert not torch.allclose(before, after)
    low, high = before.min(0).values, before.max(0).values
    assert bool(((after >= low - 1e-4) & (after <= high + 1e-4)).all())  # blends of the batch's own styles
    torch.testing.assert_close(((out - after[..., None, None]) / out.std(dim=(2, 3), keepdim=True)).std(dim=(2, 3)),
                               torch.ones(8, 3), atol=1e-3, rtol=0)  # content (normalised maps) kept


def shifted_problem(seed=0):
    """A small BN network that separates two classes on its source, then sees them shifted."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    x = torch.randn(256, 3, 8, 8)
    y = (x[:, 0].mean((1, 2)) > 0).long()
    x[:, 0] += torch.where(y == 1, 1.0, -1.0).view(-1, 1, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    target = x * 1.8 + 0.7  # another lab: contrast and brightness
    return model, [target[i:i + 64] for i in range(0, 256, 64)], y


def entropy(model, batches):
    with torch.no_grad():
        p = torch.cat([torch.softmax(model(b), 1) for b in batches])
    return float(-(p * p.clamp(min=1e-8).log()).sum(1).mean())


def test_adabn_measures_the_new_images_on_a_copy():
    model, batches, _ = shifted_problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adapted = adaptation.adabn(model, batches)
    features = torch.cat([adapted[0](b) for b in batches]).detach()
    torch.testing.assert_close(adapted[1].running_mean, features.mean((0, 2, 3)), atol=1e-4, rtol=0)
    assert not adapted.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_tent_moves_only_batchnorm_affine_and_lowers_entropy():
    model, batches, _ = shifted_problem()
    adapted = adaptation.tent(model, batches, steps=30, lr=1e-2)
    start = adaptation.adabn(model, batches)
    changed = {k for k, v in adapted.state_dict().items() if not torch.allclose(v.float(), start.state_dict()[k].float())}
    assert {"1.weight", "1.bias"} <= changed
    assert changed <= {"1.weight", "1.bias", "1.running_mean", "1.running_var"}
    assert entropy(adapted, batches) < entropy(start, batches)
    assert not any(p.requires_grad for p in adapted.parameters())


def test_self_training_learns_its_confident_guesses_and_returns_adabn_when_unsure():
    model, batches, _ = shifted_problem()
    start = adaptation.adabn(model, batches)
    unsure = adaptation.self_train(model, batches, threshold=1.01)  # no image that sure
    for key, value in start.state_dict().items():
        assert torch.equal(value, unsure.state_dict()[key]), key
    trained = adaptation.self_train(model, batches, threshold=0.9, epochs=10, lr=1e-2)
    assert entropy(trained, batches) < entropy(start, batches)
    with pytest.raises(ValueError, match="adapt must be one of"):
        adaptation.adapt(model, batches, "fixmatch")


def test_unlabelled_folders_are_read_at_any_depth_and_never_by_class(tmp_path):
    from PIL import Image
    for rel in ("a.png", "day1/b.jpg", "day1/.hidden/c.png", "notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("txt"):
            (tmp_path / rel).write_text("x")
        else:
            Image.new("RGB", (4, 4)).save(tmp_path / rel)
    assert [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)] == ["a.png", "day1/b.jpg"]
    with pytest.raises(DataError, match="holds no images"):
        image_files(_empty(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        image_files(tmp_path / "missing")


def _empty(root):
    folder = root / "empty"
    folder.mkdir()
    return folder
