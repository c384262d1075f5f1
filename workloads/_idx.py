"""Reading checks and writing of IDX files (the MNIST / Fashion-MNIST format).

Reading goes through torchvision; this module only writes IDX files (for the generated
``smoke`` datasets, so tests exercise the real loading path) and decompresses ``.gz`` copies.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (type code 0x08)."""
    if array.dtype != np.uint8:
        raise ValueError("IDX writer supports uint8 arrays only")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with gzip.open(tmp, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())
    tmp.replace(path)


def gunzip_to(source: Path, target: Path) -> None:
    """Decompress ``source`` to ``target`` atomically (a partial file never appears)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, length=1 << 20)
    tmp.replace(target)
