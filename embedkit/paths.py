"""Where embedkit keeps its files: weights cache and default index.

Everything lives under one folder, ``$EMBEDKIT_HOME`` when set, else the
platform's user data folder (``~/.local/share/embedkit`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "EMBEDKIT_HOME"


def home() -> Path:
    """The root folder for embedkit's own files (not created here)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("embedkit", appauthor=False))


def weights_dir() -> Path:
    """Folder that caches downloaded backbone weights."""
    return home() / "weights"


def default_index_dir() -> Path:
    """Index used when a command is given no ``--index``."""
    return home() / "indexes" / "default"
