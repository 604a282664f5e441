"""Where embedkit keeps its files: weights cache and default index.

Indexes live under ``$EMBEDKIT_HOME`` when set, else the platform's user
data folder (``~/.local/share/embedkit`` on Linux). Downloaded weights live
under ``$EMBEDKIT_CACHE`` when set, else the user cache folder
(``~/.cache/embedkit`` on Linux).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "EMBEDKIT_HOME"
CACHE_ENV = "EMBEDKIT_CACHE"


def home() -> Path:
    """The root folder for embedkit's own files (not created here)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("embedkit", appauthor=False))


def cache_dir() -> Path:
    """The root folder for downloaded files (not created here)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("embedkit", appauthor=False))


def weights_dir() -> Path:
    """Folder that caches downloaded backbone weights."""
    return cache_dir() / "weights"


def default_index_dir() -> Path:
    """Index used when a command is given no ``--index``."""
    return home() / "indexes" / "default"
