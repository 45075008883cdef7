"""How lab 2's training pipeline and external scoring use the tools against another lab's look
(tests/test_domain_tools.py tests each tool on its own)."""
import numpy as np
import pytest
import torch
from torch import nn

from bloodcells.data.folders import split_folder
from bloodcells.data.synthetic import write_class_folders
from bloodcells.models import cell_images, transfer

pytestmark = pytest.mark.slow  # trains fastai learners

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


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
