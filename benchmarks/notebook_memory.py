"""Peak memory of each notebook's kernel in quick mode (a Binder session gets about 2 GB).

    python benchmarks/notebook_memory.py [--data-dir ../shared/data]

Each notebook runs through ``bloodcells labs run`` in a process of its own, so the peak resident
memory of its children (the kernel) is that notebook's alone; 04 analyses the runs 02 and 03 made.
One JSON line per notebook, then one with the largest.
"""
import argparse
import json
import subprocess
import sys
import tempfile

MEASURE = """
import json, resource, sys
from bloodcells import labs
[nb] = labs.select([sys.argv[1]])
values = {k: v for k, v in json.loads(sys.argv[2]).items() if k in labs.parameters(nb)}
lab = labs.run([nb], values, sys.argv[3], log=lambda *a: None)
print(json.dumps({"ok": lab.ok, "failure": lab.failure,
                  "peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="real data folder (default: the notebooks' own search)")
    parser.add_argument("--notebooks", nargs="*", default=["01", "02", "03", "04"])
    args = parser.parse_args()

    out = tempfile.mkdtemp(prefix="notebook-memory-")
    values = {"quick": True, **({"data_dir": args.data_dir} if args.data_dir else {}), "runs_root": out}
    peaks = {}
    for number in args.notebooks:
        done = subprocess.run([sys.executable, "-c", MEASURE, number, json.dumps(values), out],
                              capture_output=True, text=True, check=True)
        line = {"benchmark": "notebook_memory", "notebook": number, "quick": True, **json.loads(done.stdout.splitlines()[-1])}
        peaks[number] = line["peak_mb"]
        print(json.dumps(line), flush=True)
    print(json.dumps({"benchmark": "notebook_memory", "largest_peak_mb": max(peaks.values()),
                      "notebook": max(peaks, key=peaks.get), "run_folder": out}))


if __name__ == "__main__":
    main()
