"""The real datasets shipped in ``workloads/data/`` (origins and licences in its README.md).

Loaders fall back to them after ``data_dir`` and the download cache, so the main job runs with
no network and no data folder.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "data"


def bundled(name: str) -> Path | None:
    """The shipped file ``name``, or None when this copy of optbench does not carry it."""
    path = FOLDER / name
    return path if path.is_file() else None
