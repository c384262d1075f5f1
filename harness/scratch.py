"""A process that runs a submission's code writes only in a private scratch folder: its temporary
files and the caches its libraries keep are pointed there, and (where the kernel has Landlock,
:mod:`harness.landlock`) writing anywhere else is given up for good.

Used by the trainer (:mod:`harness.core.sandbox`, which also narrows what it reads) and by the
child that imports a user's submission to describe it (:mod:`harness.config.described`): a
module's top level runs there, and a file it wrote beside itself (the dataset's text, say) would be
read by its trainer, which may read its own source folder.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path

from harness.landlock import EXECUTE, READ_DIR, READ_FILE, WRITE_FILE, Ruleset, abi_version, fs_rights

#: caches a process's libraries write in the home folder, pointed into its scratch folder instead
CACHES = {"XDG_CACHE_HOME": "cache", "TRITON_CACHE_DIR": "triton", "TORCH_EXTENSIONS_DIR": "torch_extensions",
          "TORCHINDUCTOR_CACHE_DIR": "inductor", "CUDA_CACHE_PATH": "nv", "MPLCONFIGDIR": "matplotlib"}


def scratch_parent() -> Path:
    """The folder of every scratch folder of this user's processes (on the temporary files' disk)."""
    return Path(tempfile.gettempdir()) / f"optbench-scratch-{os.getuid()}"


def scratch_folder(kind: str) -> str:
    """A new private folder for one process (``kind``: what it is for), under :func:`scratch_parent`,
    which no trainer may read (harness/core/sandbox.py): another trainer's files stay its own."""
    parent = scratch_parent()
    parent.mkdir(mode=0o700, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"{kind}-", dir=parent)


def use_scratch(folder: str) -> None:
    """Point this process's temporary files (``TMPDIR``, :mod:`tempfile`, multiprocessing's folder)
    and library caches (:data:`CACHES`) into ``folder``."""
    os.environ["TMPDIR"] = tempfile.tempdir = folder
    for variable, name in CACHES.items():
        os.environ[variable] = os.path.join(folder, name)
    multiprocessing.current_process()._config.pop("tempdir", None)  # the forkserver's folder: not to be used


def confine_writes(folder: str) -> bool:
    """Give up writing anywhere but beneath ``folder`` and to ``/dev/null``, and TCP, for this process
    (while it has one thread) and all it starts; reading stays as it was. False where the kernel
    has no Landlock (nothing given up)."""
    abi, _ = abi_version()
    if not abi:
        return False
    ruleset = Ruleset(abi, handled=fs_rights(abi) & ~(READ_FILE | READ_DIR | EXECUTE))
    ruleset.allow(Path(folder), fs_rights(abi))
    ruleset.allow(Path(os.devnull), WRITE_FILE)
    ruleset.restrict()
    return True
