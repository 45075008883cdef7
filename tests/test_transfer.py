"""Lab 2: backbones and their weights, freezing, two-phase training, run folders, external sets."""
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import coffee

from bloodcells.config import PBC_CROP, ConfigError
from bloodcells.data.errors import DataError
from bloodcells.data.folders import split_folder
from bloodcells.data.synthetic import write_class_folders
from bloodcells import runs
from bloodcells.models import backbones, external_validation, transfer

pytestmark = pytest.mark.slow  # trains fastai learners

CLASSES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
SMALL = transfer.options(image_size=48, batch_size=16, epochs_frozen=3, epochs_unfrozen=2, lr_frozen=3e-3, tta=False)


def opts(**given):
    return transfer.options(**{**SMALL, **given})


def framed(split, **given):
    return transfer.frame(opts(**given), split)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """40 synthetic cells per class: learnable, and a few seconds an epoch at 48 pixels."""
    folder = write_class_folders(tmp_path_factory.mktemp("wbc") / "wbc5", CLASSES, per_class=40, size=64, seed=5)
    return split_folder(folder)


@pytest.fixture(scope="module")
def trained(split, tmp_path_factory):
    return transfer.run_experiment(split, SMALL, tmp_path_factory.mktemp("runs"))


def test_lite0_imagenet_weights_are_real(tmp_path):
    """The whole ImageNet network calls scikit-image's coffee photo an espresso (class 967)."""
    model = backbones.imagenet_classifier("efficientnet_lite0")
    photo = Image.fromarray(coffee())  # 400 x 600
    photo = photo.resize((photo.width * 224 // photo.height, 224), Image.Resampling.BILINEAR)
    left = (photo.width - 224) // 2
    pixels = np.asarray(photo.crop((left, 0, left + 224, 224)), np.float32) / 255
    mean, std = backbones.LITE0_STATS
    x = torch.from_numpy((pixels - mean) / std).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert int(probs.argmax()) == 967
    assert float(probs[967]) > 0.5


def test_lite0_body_gives_a_feature_map():
    net = backbones.backbone("efficientnet_lite0")
    assert net.n_features == 1280 and net.stats == backbones.LITE0_STATS
    with torch.no_grad():
        assert net.body.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 1280, 2, 2)


def test_backbone_costs_are_the_known_sizes():
    small = backbones.cost("resnet18", image_size=224, batch=1, repeats=1)
    # torchvision's ResNet18 has 11,689,512 weights, 513,000 of them in the ImageNet head cut off here
    assert small["weights"] == 11_176_512 and 1.80e9 < small["multiply-adds"] < 1.83e9
    assert small["CPU ms per image"] > 0
    assert backbones.cost("resnet18", image_size=448, batch=1, repeats=1)["multiply-adds"] == pytest.approx(
        small["multiply-adds"] * 4, rel=1e-3)  # twice the side, four times the work
    assert backbones.cost("resnet50", image_size=64, batch=1, repeats=1)["weights"] == 23_508_032
    with pytest.raises(ValueError, match="one of"):
        backbones.cost("vgg16")


def test_resnet18_offline_fails_fast_and_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(backbones, "online", lambda url, timeout=3.0: False)
    with pytest.raises(backbones.WeightsUnavailable) as err:
        backbones.backbone("resnet18")
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path) in message
    assert "efficientnet_lite0" in message
    # Random weights only when asked for, and then no file is needed.
    assert backbones.backbone("resnet18", pretrained=False).n_features == 512


def test_unknown_backbone_and_parameters(split):
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        backbones.backbone("vgg")
    with pytest.raises(ConfigError, match="epochs_frozen"):
        transfer.options(epochs_frozn=1)
    with pytest.raises(ConfigError, match="choose from"):
        transfer.options(backbone="resnet19")


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module):
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


def test_phase_one_trains_only_the_head_and_phase_two_the_body(split):
    learn = transfer.build_learner(split, framed(split))
    body, head = learn.model[0], learn.model[1]
    body_before, head_before = _snapshot(body), _snapshot(head)
    frozen = transfer.trainable_parameters(learn)
    assert frozen == sum(p.numel() for p in head.parameters())
    body_group, head_group = transfer.parameter_groups(learn, 1e-3)
    assert (body_group["name"], body_group["weights"]) == ("body", sum(p.numel() for p in body.parameters()))
    assert body_group["trainable"] == 0  # train_bn=False: the body's batch-norm weights are frozen too
    assert head_group["trainable"] == head_group["weights"] and head_group["lr"] == 1e-3
    learn.fit_one_cycle(1, 1e-3, cbs=transfer.keep_best(1, "frozen"))
    changed = _changed(body_before, body)  # only batch-norm statistics, no weight
    assert changed and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in changed)
    assert any(k.endswith("weight") for k in _changed(head_before, head))
    learn.unfreeze()
    assert transfer.trainable_parameters(learn) == sum(p.numel() for p in learn.model.parameters()) > frozen
    groups = transfer.parameter_groups(learn, slice(1e-5, 1e-4))
    assert [g["lr"] for g in groups] == pytest.approx([1e-5, 1e-4]) and all(g["trainable"] == g["weights"] for g in groups)
    from bloodcells import diagrams

    fig = diagrams.training_phases([("phase 1", [body_group, head_group]), ("phase 2", groups)])
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert "body" in texts and "frozen" in texts and "rate 1e-05" in texts and "rate 1e-03" in texts
    learn.fit_one_cycle(1, slice(1e-5, 1e-4), cbs=transfer.keep_best(1, "unfrozen"))
    changed = _changed(body_before, body)
    assert {"conv_stem.weight", "bn1.weight", "conv_head.weight"} <= changed


def test_phase_two_gives_body_and_head_their_own_rates(split):
    """slice(body, head): the body's parameter group runs at the smaller rate all through the cycle."""
    learn = transfer.build_learner(split, framed(split))
    learn.unfreeze()
    with learn.no_bar():
        learn.fit_one_cycle(1, slice(1e-5, 1e-3), cbs=transfer.keep_best(1, "unfrozen"))
    assert len(learn.opt.param_groups) == 2
    body_lr, head_lr = (learn.opt.hypers[i]["lr"] for i in range(2))
    assert head_lr / body_lr == pytest.approx(100, rel=1e-6)


def test_two_phases_learn_well_above_chance(trained, split):
    phases = trained.history["phase"]
    assert phases[0] == 1 and phases[-1] == 2 and len(phases) == len(trained.history["val_loss"])
    phase1_val = [v for v, p in zip(trained.history["val_loss"], phases) if p == 1]
    assert min(phase1_val) < phase1_val[0]  # the head learns
    assert trained.metrics["accuracy"] > 0.6  # chance is 0.2
    assert trained.metrics["n_test"] == len(split.files["test"])


def test_run_folder_reloads_and_reproduces_predictions(trained, split):
    folder = trained.folder
    for name in ("learner.pkl", "predictions.npz", "history.json", "params.json", "metrics.json"):
        assert (folder / name).is_file(), name
    run = runs.load(folder)
    assert run.class_names == CLASSES
    assert run.metrics["accuracy"] == trained.metrics["accuracy"]
    assert run.params["epochs_run_frozen"] == trained.history["phase"].count(1)
    assert run.params["crop"] == 1.0  # the synthetic set is drawn already cropped to the cell
    assert run.image_names == [str(f.relative_to(split.root)) for f in split.files["test"]]
    assert run.images.shape == (len(split.files["test"]), opts()["image_size"], opts()["image_size"], 3)
    learn = transfer.load(folder)
    np.testing.assert_allclose(transfer.predict(learn, split.files["test"]), run.probabilities, atol=1e-5)


def test_training_runs_channels_last(trained):
    """The layout oneDNN and cuDNN convolve fastest; it must survive training and checkpoint reloads."""
    convs = [m for m in trained.model.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)


def test_same_seed_same_training_and_the_pinned_figures(split):
    """Same seed, same run; and golden values: a change that silently alters lab 2's training
    (items, augmentation, the head's init, the phases' schedule) moves these. One set per CPU the
    suite has run on (oneDNN's kernels differ by instruction set); a changed training matches none."""
    twice = [transfer.train(split, opts(epochs_frozen=1, epochs_unfrozen=1)) for _ in range(2)]
    assert twice[0].history["val_loss"] == twice[1].history["val_loss"]
    pinned = [([1.8460695, 1.1042333], [0.6866043, 0.4522234]),  # loss, val_loss: machines until 2026-12-01
              ([1.8461851, 1.0434687], [0.6866005, 0.4736115])]  # the machine of 2026-12-02
    history = twice[0].history
    assert any(np.allclose(history["loss"], loss, rtol=1e-4) and np.allclose(history["val_loss"], val, rtol=1e-4)
               for loss, val in pinned), (history["loss"], history["val_loss"])
    assert twice[0].history["val_accuracy"] == pytest.approx([22 / 30, 24 / 30])


def test_external_validation_maps_names_and_reports_the_rest(trained, split, tmp_path):
    external = tmp_path / "other-lab"
    for theirs, ours in (("Monocyte", "monocyte"), ("NEUTROPHIL", "neutrophil")):
        shutil.copytree(split.root / ours, external / theirs)
    write_class_folders(tmp_path / "extra", ["platelet"], per_class=4, size=64, seed=9)
    shutil.copytree(tmp_path / "extra" / "platelet", external / "platelet")
    result = external_validation.evaluate(trained.model, external)
    assert result["class_map"] == {"Monocyte": "monocyte", "NEUTROPHIL": "neutrophil"}
    assert result["unmapped"] == {"platelet": 4}
    assert result["n_images"] == 80 and set(result["recall_per_class"]) == {"monocyte", "neutrophil"}
    assert result["accuracy"] > 0.5
    assert result["n_correct"] == round(result["accuracy"] * 80)

    only_mono = external_validation.evaluate(trained.model, external, class_map={"Monocyte": "monocyte"})
    assert only_mono["n_images"] == 40 and only_mono["unmapped"] == {"NEUTROPHIL": 40, "platelet": 4}
    runs.add_external(trained.folder, "other-lab", only_mono)
    saved = runs.load(trained.folder).external["other-lab"]
    assert saved["n_images"] == 40 and saved["unmapped"] == {"NEUTROPHIL": 40, "platelet": 4}
    np.testing.assert_array_equal(saved["labels"], only_mono["labels"])

    # adaptation reads the unlabelled folder it is given (any layout), never the scored set's labels
    own = external_validation.evaluate(trained.model, external, class_map={"Monocyte": "monocyte"}, adapt="adabn")
    elsewhere = external_validation.evaluate(trained.model, external, class_map={"Monocyte": "monocyte"},
                                             adapt="adabn", unlabelled=tmp_path / "extra")
    assert own["adapt"] == "adabn" and own["unlabelled"] is None and elsewhere["unlabelled"] == "extra"
    assert not np.allclose(own["probabilities"], elsewhere["probabilities"], atol=1e-5)
    np.testing.assert_allclose(
        external_validation.evaluate(trained.model, external, class_map={"Monocyte": "monocyte"})["probabilities"],
        only_mono["probabilities"], atol=1e-6)  # the learner itself was not adapted
    with pytest.raises(ValueError, match="not classes of this model"):
        external_validation.evaluate(trained.model, external, class_map={"platelet": "thrombocyte"})
    with pytest.raises(DataError, match="does not have"):
        external_validation.evaluate(trained.model, external, class_map={"Lymph": "lymphocyte"})
    with pytest.raises(DataError, match="class_map"):
        external_validation.evaluate(trained.model, external, class_map={})


def test_lr_finder_suggests_a_rate_and_puts_the_weights_back(split):
    learn = transfer.build_learner(split, framed(split))
    before, scratch = _snapshot(learn.model), learn.path
    suggestion = transfer.find_lr(learn, num_it=8)
    assert 1e-7 < suggestion.valley < 10
    assert _changed(before, learn.model) == set() and learn.path == scratch


def test_reseed_makes_training_independent_of_earlier_batches(split):
    """The notebook shows batches and runs the finder before phase 1; reseeding makes its phase 1
    the same as run_experiment's, which does neither."""
    histories = []
    for look_first in (False, True):
        learn = transfer.build_learner(split, framed(split))
        if look_first:
            learn.dls.train.one_batch()
            transfer.find_lr(learn, num_it=4)
        transfer.reseed(learn, 42)
        with learn.no_bar():
            learn.fit_one_cycle(1, 1e-3, cbs=transfer.keep_best(1, "frozen"))
        histories.append(transfer.phase_history(learn))
    assert histories[0] == histories[1]


def test_the_crop_is_resolved_once_and_named(split, tmp_path):
    with pytest.raises(ConfigError, match=r"transfer.frame\(options, split\) first"):
        transfer.build_learner(split, opts())
    assert transfer.frame(opts(), split).sources["crop"] == "the data folder"  # SYNTHETIC: drawn framed
    photos = shutil.copytree(split.root, tmp_path / "photos")
    (photos / "SYNTHETIC.txt").unlink()  # a folder that says nothing about its framing: PBC photos'
    plain = transfer.frame(opts(), split_folder(photos))
    assert plain["crop"] == PBC_CROP and plain.sources["crop"] == "PBC photos' framing"
    assert transfer.frame(opts(crop=0.8), split)["crop"] == 0.8


def test_external_framing_is_explicit(trained, split):
    files = split.files["test"][:6]
    same = transfer.predict(trained.model, files, crop=1.0)
    np.testing.assert_allclose(same, transfer.predict(trained.model, files), atol=1e-6)  # synthetic: crop 1.0
    tight = transfer.predict(trained.model, files, crop=0.5)
    assert not np.allclose(tight, same, atol=1e-3)


def test_external_framing_is_found_from_the_images(trained, split, tmp_path):
    from bloodcells.data import framing

    read = transfer.reader(trained.model)
    assert 0.2 < read.cell_extent < 1  # the training views' median cell, recorded when the learner was built
    wide = framing.write_reframed(split.files["test"], split.labels["test"], split.class_names, 1.6, tmp_path / "wide")
    found = external_validation.evaluate(trained.model, wide, crop="auto")
    assert found["crop"] == "auto" and found["median_crop"] == pytest.approx(1 / 1.6, abs=0.1)
    as_given = external_validation.evaluate(trained.model, wide, crop=1.0)
    assert found["accuracy"] > as_given["accuracy"]
    read.cell_extent, recorded = None, read.cell_extent  # a learner without one (an older kit's)
    try:
        with pytest.raises(ConfigError, match="no training framing"):
            external_validation.evaluate(trained.model, wide, crop="auto")
    finally:
        read.cell_extent = recorded


def test_bad_images_and_unwritable_output_fail_before_training(split, tmp_path):
    import shutil as sh

    from bloodcells.experiment import OutputDirError

    broken = tmp_path / "wbc5"
    sh.copytree(split.root, broken)
    (broken / "monocyte" / "._cell.jpg").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # ignored
    (broken / "__MACOSX" / "monocyte").mkdir(parents=True)  # ignored: not a class
    first = sorted((broken / "basophil").glob("*.jpg"))[0]
    first.write_bytes(first.read_bytes()[:60])  # truncated
    (broken / "eosinophil" / "notes.jpg").write_text("not an image")
    bad_split = split_folder(broken)
    assert bad_split.class_names == CLASSES
    with pytest.raises(DataError, match=r"2 image file\(s\) cannot be read") as err:
        transfer.build_learner(bad_split, framed(bad_split))
    message = str(err.value)
    assert first.name in message and "notes.jpg" in message and "._cell" not in message
    assert "nothing was trained" in message
    blocker = tmp_path / "not-a-folder"  # a file where the folder should be: fails even for root
    blocker.write_text("")
    with pytest.raises(OutputDirError, match="choose a writable output_dir"):
        transfer.run_experiment(split, opts(), blocker / "runs")
