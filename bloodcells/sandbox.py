"""The kernel a student's notebook is graded in: ipykernel started under limits.

``python -m bloodcells.sandbox --memory-mb M --file-mb F [--read-only PATH ...] -- python -m
ipykernel_launcher -f CONN`` caps the kernel's memory (``RLIMIT_DATA``: an allocation past it is a
``MemoryError`` in the cell), the size of any file it writes (``RLIMIT_FSIZE``) and forbids core
dumps; its home is its own folder (the working folder nbgrader gives it). Started as root (a
grading container, CI), it also runs the kernel in a mount namespace of its own where the whole
file system is read-only but that folder (``/tmp`` included; temporary files go to that folder):
the student's code cannot write into another student's folder, the gradebook or the instructor's
source. What it does not stop (the network; reading files it may read; ``/dev/shm``) is the job of
a container: the README says how.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import resource
import subprocess
import sys
from pathlib import Path

CLONE_NEWNS = 0x00020000


def isolate_files(workdir: Path, read_only: list[Path]) -> None:
    """As root: a private mount namespace, ``/``, ``/tmp`` and ``read_only`` re-mounted read-only,
    then ``workdir`` writable again. Raises OSError (or CalledProcessError) where it cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")

    def mount(*args: str) -> None:
        subprocess.run(["mount", *args], check=True, capture_output=True)

    mount("--make-rprivate", "/")
    for path in ["/", "/tmp", *map(str, read_only)]:
        mount("--bind", path, path)
        mount("-o", "remount,bind,ro", path)
    mount("--bind", str(workdir), str(workdir))
    mount("-o", "remount,bind,rw", str(workdir))
    os.chdir(workdir)  # the old working folder is the read-only one underneath: enter the writable mount


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bloodcells.sandbox")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--file-mb", type=int, required=True)
    parser.add_argument("--read-only", action="append", default=[], type=Path, help="also made read-only (as root)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    memory, files = args.memory_mb * 2**20, args.file_mb * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (files, files))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    workdir = Path.cwd()
    if os.geteuid() == 0:
        isolate_files(workdir, args.read_only)
    os.environ.update(HOME=str(workdir), TMPDIR=str(workdir), MPLCONFIGDIR=str(workdir / ".matplotlib"),
                      IPYTHONDIR=str(workdir / ".ipython"))
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
