"""Train and evaluate lab 2 (two-phase fastai transfer learning) on the real white-cell set.

    python benchmarks/transfer.py --data-dir ../shared/data [--quick] [--image-size N] [--external DIR
        [--external-crop auto|C] [--adapt METHOD ...]] [--stain-jitter S] [--low-resolution P]
        [--standardize-colour] [--lab-stain W] [--colour rgb|grayscale|haematoxylin] [--mixstyle P]

It trains with notebook 03's options (``bloodcells.config.LAB2``: the report's recipe, the CPU
lab's changes, quick mode's with --quick, then the options given here: the same precedence as the
notebook and ``bloodcells labs``). The last line printed is one JSON object with the figures.
"""
import argparse
import json
import resource

from bloodcells.config import BACKBONES, COLOURS
from bloodcells.data.folders import split_folder
from bloodcells.data.sources import wbc5_folder
from bloodcells.models import adaptation, external_validation, transfer


def crop_value(text: str):
    return text if text == "auto" else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding wbc5/<class>/*.jpg")
    parser.add_argument("--backbone", default=None, choices=BACKBONES, help="default: the CPU lab's")
    parser.add_argument("--quick", action="store_true", help="notebook 03's quick mode")
    parser.add_argument("--recipe", default="cpu", choices=("cpu", "report", "auto"),
                        help="'cpu' (default) or the report's (ResNet18, 224 px: a GPU's)")
    parser.add_argument("--image-size", type=int, default=None, help="override the image size")
    parser.add_argument("--epochs-unfrozen", type=int, default=None, help="override phase 2's epochs")
    parser.add_argument("--seed", type=int, default=None, help="default: the lab's 42")
    parser.add_argument("--stain-jitter", type=float, default=None, help="HED stain jitter (default: the recipe's, off)")
    parser.add_argument("--low-resolution", type=float, default=None, help="share of blurred training images")
    parser.add_argument("--standardize-colour", action="store_true", default=None)
    parser.add_argument("--lab-stain", type=float, default=None, help="RandStainNA-style stain augmentation's widening")
    parser.add_argument("--colour", default=None, choices=COLOURS)
    parser.add_argument("--mixstyle", type=float, default=None, help="MixStyle's chance per batch")
    parser.add_argument("--external", default=None, help="another lab's class folders to score as well")
    parser.add_argument("--external-crop", type=crop_value, default="auto",
                        help="framing of the external images: 'auto' (found from their stain) or a centre crop")
    parser.add_argument("--adapt", nargs="*", default=list(adaptation.METHODS), choices=adaptation.METHODS,
                        help="adaptations with the external images (no labels) to score at --external-crop (default: all)")
    args = parser.parse_args()

    split = split_folder(wbc5_folder("real", args.data_dir))
    options = transfer.options(args.quick, args.recipe, backbone=args.backbone, image_size=args.image_size, seed=args.seed,
                                epochs_unfrozen=args.epochs_unfrozen,
                                stain_jitter=args.stain_jitter, low_resolution=args.low_resolution,
                                standardize_colour=args.standardize_colour, lab_stain=args.lab_stain,
                                colour=args.colour, mixstyle=args.mixstyle)
    run = transfer.train(split, options)
    summary = transfer.evaluate(run, split)  # with the lab's test-time augmentation
    plain = transfer.predict(run.model, split.files["test"], tta=False)
    val = transfer.predict(run.model, split.files["val"], tta=False)  # what settings are chosen on
    line = {
        "benchmark": "transfer", "recipe": args.recipe, "backbone": options["backbone"], "image_size": options["image_size"],
        "quick": args.quick, "tta": options["tta"], "test_accuracy": round(summary["accuracy"], 4),
        "test_correct": f"{summary['n_correct']}/{summary['n_test']}", "macro_f1": round(summary["macro_f1"], 4),
        "val_accuracy_no_tta": round(float((val.argmax(1) == split.labels["val"]).mean()), 4),
        "test_accuracy_no_tta": round(float((plain.argmax(1) == split.labels["test"]).mean()), 4),
        "options": {k: options[k] for k in ("seed", "stain_jitter", "low_resolution", "standardize_colour",
                                            "lab_stain", "colour", "mixstyle")},
        "train_seconds": round(run.train_seconds, 1),
        "epochs_phase1": summary["epochs_phase1"], "epochs_phase2": summary["epochs_phase2"],
    }
    if args.external:  # as given, then at --external-crop as trained and adapted (never with their labels)
        trials = [(1.0, None)] + [(args.external_crop, method) for method in [None, *args.adapt]]
        for crop, method in dict.fromkeys(trials):
            ext = external_validation.evaluate(run.model, args.external, tta=options["tta"], crop=crop, adapt=method)
            prefix = f"external_crop_{crop}" + (f"_{method}" if method else "")
            line.update({f"{prefix}_accuracy": round(ext["accuracy"], 4),
                         f"{prefix}_balanced_accuracy": round(ext["balanced_accuracy"], 4),
                         f"{prefix}_median_crop": round(ext["median_crop"], 3),
                         f"{prefix}_recall": {c: round(r, 3) for c, r in ext["recall_per_class"].items()}})
    line["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(line))


if __name__ == "__main__":
    main()
