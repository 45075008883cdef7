"""Train and evaluate the lab 1 CNNs on real BloodMNIST; print one JSON line per model and seed, last.

    python benchmarks/cnn.py --data-dir ../shared/data [--model seed|improved|all] [--quick] [--size 28]
        [--epochs N] [--width W] [--seeds 0 1 2]

Each model trains with notebook 02's options (``bloodcells.config.LAB1``: its recipe, then quick
mode's changes, then the options given here), so a line is what the notebook shows for that seed.
"""
import argparse
import json
import resource

from bloodcells.data import open_bloodmnist
from bloodcells.models import cnn


def measure(dataset, model: str, quick: bool = False, seed: int = 0, **options) -> dict:
    """Train one model as notebook 02 does and return its figures (validation is what settings are chosen on)."""
    run = cnn.train(dataset, cnn.options(model, quick=quick, seed=seed, **options), log=False)
    summary = cnn.evaluate(run, dataset)  # keeps the validation probabilities (with the run's TTA)
    return {
        "benchmark": "cnn", "model": model, "quick": quick, "seed": seed, "image_size": int(dataset.image_shape[0]),
        # exact fractions, not rounded: the answer key's ranges must hold a run's own figure
        "val_accuracy": float((run.val_probabilities.argmax(1) == dataset.labels["val"]).mean()),
        "test_accuracy": summary["accuracy"], "test_correct": summary["n_correct"],
        "macro_f1": round(summary["macro_f1"], 4), "train_seconds": round(run.train_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "epochs": len(run.history["loss"]), "best_epoch": run.best_epoch,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding medmnist/bloodmnist*.npz")
    parser.add_argument("--model", default="all", choices=[*cnn.MODELS, "all"])
    parser.add_argument("--quick", action="store_true", help="notebook 02's quick mode")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--width", type=int, default=None, help="override the improved CNN's first-block filters")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    dataset = open_bloodmnist("real", args.data_dir, size=args.size)
    for seed in args.seeds:
        for model in cnn.MODELS if args.model == "all" else [args.model]:
            print(json.dumps(measure(dataset, model, args.quick, seed, epochs=args.epochs, width=args.width)), flush=True)


if __name__ == "__main__":
    main()
