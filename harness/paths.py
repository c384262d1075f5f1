"""Where optbench keeps derived files (decompressed data, generated smoke datasets)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$OPTBENCH_CACHE``, else ``$XDG_CACHE_HOME/optbench``, else ``~/.cache/optbench``."""
    if os.environ.get("OPTBENCH_CACHE"):
        return Path(os.environ["OPTBENCH_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "optbench"
