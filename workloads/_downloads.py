"""Leave a user's folder as it was when a download into it fails.

torchvision's dataset classes create their folders (``FashionMNIST/raw/``, ``cifar-10-batches-py``)
and partial archives before the network is tried; a failed attempt (no network, a proxy) would
leave them in ``data_dir``, where the next run finds an empty or half copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def removed_on_failure(root: Path, names: tuple[str, ...]) -> Iterator[None]:
    """On an exception, remove those of ``root/<name>`` that did not exist before, then re-raise.

    Only the named entries (what the download writes) are touched: other processes may be writing
    other things into a shared data folder at the same time.
    """
    created = [root / name for name in names if not (root / name).exists()]
    try:
        yield
    except BaseException:
        for path in created:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
