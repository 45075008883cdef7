"""Train and evaluate the lab 1 CNNs on real BloodMNIST; print one JSON line per model, last.

    python benchmarks/cnn.py --data-dir ../shared/data [--model seed|improved|all] [--quick] [--size 28]
        [--epochs N] [--width W]

Each model trains with notebook 02's options (``bloodcells.config.LAB1``: its recipe, then quick
mode's changes, then the options given here).
"""
import argparse
import json
import resource

from bloodcells.data import open_bloodmnist
from bloodcells.models import cnn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding medmnist/bloodmnist*.npz")
    parser.add_argument("--model", default="all", choices=[*cnn.MODELS, "all"])
    parser.add_argument("--quick", action="store_true", help="notebook 02's quick mode")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--width", type=int, default=None, help="override the improved CNN's first-block filters")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dataset = open_bloodmnist("real", args.data_dir, size=args.size)
    lines = []
    for name in cnn.MODELS if args.model == "all" else [args.model]:
        run = cnn.train(dataset, cnn.options(name, quick=args.quick, epochs=args.epochs, width=args.width, seed=args.seed))
        summary = cnn.evaluate(run, dataset)
        lines.append({
            "benchmark": "cnn", "model": name, "quick": args.quick, "image_size": args.size,
            # what settings are chosen on; evaluate() kept the validation probabilities (with the run's TTA)
            "val_accuracy": round(float((run.val_probabilities.argmax(1) == dataset.labels["val"]).mean()), 4),
            "test_accuracy": round(summary["accuracy"], 4), "macro_f1": round(summary["macro_f1"], 4),
            "train_seconds": round(run.train_seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "epochs": len(run.history["loss"]),
        })
    for line in lines:
        print(json.dumps(line))


if __name__ == "__main__":
    main()
