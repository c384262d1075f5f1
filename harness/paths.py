"""Where optbench keeps derived files (decompressed data, generated smoke datasets), and the
check that an output folder can be written before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import UserError


def cache_dir() -> Path:
    """``$OPTBENCH_CACHE``, else ``$XDG_CACHE_HOME/optbench``, else ``~/.cache/optbench``."""
    if os.environ.get("OPTBENCH_CACHE"):
        return Path(os.environ["OPTBENCH_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "optbench"


def ensure_writable_folder(folder: Path, setting: str, value: object) -> None:
    """Create ``folder`` and prove a file can be written in it, or raise one clear UserError.

    Called before data is loaded or trials are launched, so an unwritable ``results=`` or
    ``out=`` (a file, /proc, a read-only mount) costs nothing and prints no traceback.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(f"Cannot write to {folder} ({error.strerror or error}). "
                        f"Set {setting}= (now {str(value)!r}) to a folder you can write to.") from None
