"""Where the kit looks for data: every source the labs read, and the one search rule they share."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BLOODCELLS_DATA_DIR"

#: Every data source the labs read, in MedMNIST's ``INFO`` style: its folder inside a data folder,
#: its title, what it is for and where it comes from (``bloodcells data prepare`` builds the last two).
SOURCES = {
    "bloodmnist": {"folder": "medmnist", "title": "BloodMNIST", "use": "lab 1: 8 classes, 28x28 RGB",
                   "origin": "medmnist's download (CC BY 4.0), else ~/.medmnist", "evaluation_only": False},
    "wbc5": {"folder": "wbc5", "title": "WBC-5", "use": "lab 2: 5 white-cell classes, 500 images each",
             "origin": "the PBC archive's photos, or built from BloodMNIST", "evaluation_only": False},
    "bccd": {"folder": "external/bccd", "title": "BCCD", "use": "external validation of lab 2 (another lab's cells)",
             "origin": "BCCD_Dataset (MIT), white cells cropped from its boxes", "evaluation_only": True},
}


def kit_data_dir() -> Path:
    """The repository's ``data/`` folder (download cache and generated synthetic sets).

    For an installed (non-editable) package there is no repository, so ``./data`` is used.
    """
    repo_data = Path(__file__).resolve().parents[2] / "data"
    return repo_data if repo_data.is_dir() else Path.cwd() / "data"


def env_data_dir() -> Path | None:
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The one search rule: a data folder the user named is the only place looked in (never
    silently another); otherwise ``$BLOODCELLS_DATA_DIR``, then the kit's ``data/``."""
    if data_dir:
        return [Path(data_dir).expanduser()]
    return [root for root in (env_data_dir(), kit_data_dir()) if root is not None]


def candidates(source: str, data_dir: str | Path | None = None) -> list[Path]:
    """Where ``source`` (a key of :data:`SOURCES`) is looked for, in order."""
    return [root / SOURCES[source]["folder"] for root in data_roots(data_dir)]


def medmnist_default_root() -> Path:
    """medmnist's own default download folder (``~/.medmnist``)."""
    return Path.home() / ".medmnist"
