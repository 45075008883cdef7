"""Time `bloodcells data prepare` building lab 2's white cells from a BloodMNIST-128-layout file.

    python benchmarks/prepare.py --photos ../shared/data/wbc5 --out /tmp/prepared [--size 128]

Offline there is no bloodmnist_128.npz to download, so this first writes one in medmnist's layout
from PBC photos with medmnist's own pixel recipe (``bloodcells.data.medmnist_recipe``: centre
200x200, bilinear to ``size``, a JPEG round trip at quality 75; Pillow's libjpeg-turbo lands within
a grey level or two of the official files, made with IJG libjpeg 9), under the official label
numbers, then times the build (pick 500 per class with seed 42, write PNGs). The last line printed
is one JSON object; train on the result with ``benchmarks/transfer.py --data-dir OUT``.
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np

from bloodcells.data.folders import discover, read_rgb
from bloodcells.data.medmnist_io import class_names, file_name
from bloodcells.data.medmnist_recipe import official_pixels
from bloodcells.data.prepare import wbc5_from_bloodmnist


def write_layout_file(photos: Path, path: Path, size: int, seed: int = 0) -> dict:
    """Every photo of ``photos/<class>/`` into a medmnist npz, split 70/10/20 at random."""
    names, files, _ = discover(photos)
    short = class_names()[0]
    images = np.stack([official_pixels(read_rgb(f), size) for group in files for f in group])
    labels = np.concatenate([np.full(len(group), short.index(name)) for name, group in zip(names, files)])
    order = np.random.default_rng(seed).permutation(len(labels))
    cuts = np.split(order, [int(0.7 * len(order)), int(0.8 * len(order))])
    arrays = {}
    for split, idx in zip(("train", "val", "test"), cuts):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images[idx], labels[idx, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return {name: len(group) for name, group in zip(names, files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", required=True, help="PBC photos in class folders (e.g. ../shared/data/wbc5)")
    parser.add_argument("--out", required=True, help="new data folder to build into")
    parser.add_argument("--size", type=int, default=128, choices=(64, 128, 224))
    args = parser.parse_args()

    out = Path(args.out)
    npz = out / "medmnist" / file_name(args.size)
    start = time.perf_counter()
    sources = write_layout_file(Path(args.photos), npz, args.size)
    layout_seconds = time.perf_counter() - start
    start = time.perf_counter()
    folder, _ = wbc5_from_bloodmnist(out, args.size, npz=npz)
    build_seconds = time.perf_counter() - start
    built = {d.name: sum(1 for _ in d.iterdir()) for d in sorted(folder.iterdir()) if d.is_dir()}
    print(json.dumps({"benchmark": "prepare", "size": args.size, "photos_per_class": sources,
                      "layout_file_seconds": round(layout_seconds, 1), "npz_mb": round(npz.stat().st_size / 2**20, 1),
                      "build_seconds": round(build_seconds, 1), "images_per_class": built}))


if __name__ == "__main__":
    main()
