"""Where the kit looks for data, in one place so every loader agrees."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "BLOODCELLS_DATA_DIR"


def kit_data_dir() -> Path:
    """The repository's ``data/`` folder (download cache and generated synthetic sets).

    For an installed (non-editable) package there is no repository, so ``./data`` is used.
    """
    repo_data = Path(__file__).resolve().parents[2] / "data"
    return repo_data if repo_data.is_dir() else Path.cwd() / "data"


def env_data_dir() -> Path | None:
    value = os.environ.get(ENV_VAR, "").strip()
    return Path(value).expanduser() if value else None


def medmnist_default_root() -> Path:
    """medmnist's own default download folder (``~/.medmnist``)."""
    return Path.home() / ".medmnist"
