"""Measure the answer key: every lab 1 recipe (report's CNN and improved CNN, full length and quick
mode) over several seeds, as notebook 02 trains them, into ``bloodcells/answers/lab1.json`` and the
instructor's table ``docs/answer-key-lab1.md``.

    python benchmarks/answer_key.py --data-dir ../shared/data [--seeds 0 1 2]

About 16 minutes for three seeds on 2 CPU cores. Each JSON line is printed as it is measured.
"""
import argparse
import datetime
import json
import os
import platform
from pathlib import Path

from cnn import measure

from bloodcells import answer_key
from bloodcells.data import open_bloodmnist
from bloodcells.models import cnn

DOCS = Path(__file__).resolve().parents[1] / "docs"


def markdown(key: dict) -> str:
    """The instructor's page: each figure's range over the seeds, per recipe."""
    lines = [f"# Lab 1 answer key: expected figures on {key['data']}", "",
             f"Measured {key['measured_on']} on {key['machine']} with `{key['command']}` (seeds "
             f"{', '.join(map(str, key['seeds']))}). A run with one of these seeds repeats its figures on the same",
             "library versions; other seeds land near the range. Times scale with the machine: compare them with",
             f"the report's CNN time of the same sitting ({key['yardstick_seconds']} s here on average).", "",
             answer_key.table("lab1").reset_index().to_markdown(index=False)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="folder holding medmnist/bloodmnist.npz (the real file)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if len(args.seeds) < 3:
        parser.error("an answer key needs at least three seeds to show the spread")

    dataset = open_bloodmnist("real", args.data_dir)
    rows = []
    for seed in args.seeds:
        for quick in (False, True):
            for model in cnn.MODELS:
                rows.append(measure(dataset, model, quick, seed))
                print(json.dumps(rows[-1]), flush=True)
    yardstick = [r["train_seconds"] for r in rows if r["model"] == "seed" and not r["quick"]]
    key = {"lab": "lab1", "data": dataset.title + " 28x28, the kit's fixed split of medmnist's pixels",
           "measured_on": datetime.date.today().isoformat(),
           "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, no GPU",
           "command": "python benchmarks/answer_key.py --data-dir DATA --seeds " + " ".join(map(str, args.seeds)),
           "seeds": args.seeds, "yardstick_seconds": round(sum(yardstick) / len(yardstick), 1), "runs": rows}
    answer_key.FOLDER.mkdir(exist_ok=True)
    (answer_key.FOLDER / "lab1.json").write_text(json.dumps(key, indent=1) + "\n")
    DOCS.mkdir(exist_ok=True)
    (DOCS / "answer-key-lab1.md").write_text(markdown(key))
    print(answer_key.ranges("lab1").round(4).to_string())


if __name__ == "__main__":
    main()
