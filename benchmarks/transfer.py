"""Train and evaluate lab 2 (two-phase fastai transfer learning) on the real white-cell set.

    python benchmarks/transfer.py --data-dir ../shared/data [--backbone efficientnet_lite0] [--quick]

Without --quick it runs notebook 03's default lab (the report's recipe at the kit's CPU image size);
--quick runs its quick mode. The last line printed is one JSON object with the figures.
"""
import argparse
import json
import resource

from bloodcells.data.folders import split_folder
from bloodcells.data.sources import wbc5_folder
from bloodcells.models import transfer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding wbc5/<class>/*.jpg")
    parser.add_argument("--backbone", default="efficientnet_lite0", choices=transfer.BACKBONES)
    parser.add_argument("--quick", action="store_true", help="notebook 03's quick mode")
    parser.add_argument("--image-size", type=int, default=None, help="override the image size")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    split = split_folder(wbc5_folder("real", args.data_dir))
    options = {**transfer.lab_options(args.quick, args.image_size), "backbone": args.backbone, "seed": args.seed}
    result = transfer.train(split, **options)
    _, summary = transfer.evaluate(result, split)  # with the lab's test-time augmentation
    plain = transfer.predict(result.learner, split.files["test"], tta=False)
    print(json.dumps({
        "benchmark": "transfer", "backbone": args.backbone, "image_size": options["image_size"],
        "quick": args.quick, "tta": options["tta"], "test_accuracy": round(summary["accuracy"], 4),
        "test_correct": f"{summary['n_correct']}/{summary['n_test']}", "macro_f1": round(summary["macro_f1"], 4),
        "test_accuracy_no_tta": round(float((plain.argmax(1) == split.labels["test"]).mean()), 4),
        "train_seconds": round(result.train_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "epochs_phase1": summary["epochs_phase1"], "epochs_phase2": summary["epochs_phase2"],
    }))


if __name__ == "__main__":
    main()
