"""Reading checks and writing of IDX files (the MNIST / Fashion-MNIST format).

Reading goes through torchvision; this module only writes IDX files (for the generated
``smoke`` datasets, so tests exercise the real loading path) and decompresses ``.gz`` copies.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import uuid
from pathlib import Path

import numpy as np


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (type code 0x08)."""
    if array.dtype != np.uint8:
        raise ValueError("IDX writer supports uint8 arrays only")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _private_tmp(path)
    with gzip.open(tmp, "wb") as f:
        f.write(header + np.ascontiguousarray(array).tobytes())
    tmp.replace(path)


def gunzip_to(source: Path, target: Path) -> None:
    """Decompress ``source`` to ``target`` atomically (a partial file never appears)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _private_tmp(target)
    try:
        with gzip.open(source, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        tmp.replace(target)
    except BaseException:  # a full disk, a truncated .gz, Ctrl-C: no partial file left in the cache
        tmp.unlink(missing_ok=True)
        raise


def _private_tmp(path: Path) -> Path:
    """A temporary name beside ``path`` that no other process uses: parallel jobs (a sweep's
    trials starting at once) may write the same generated file at the same moment."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
