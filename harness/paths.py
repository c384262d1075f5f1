"""Where optbench keeps derived files (decompressed data, generated smoke datasets), the check
that an output folder can be written before any work starts, and the walk of a results folder
that scoring and ``optbench status`` share (symbolic links followed, unreadable folders said)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.errors import UserError


def cache_dir() -> Path:
    """``$OPTBENCH_CACHE``, else ``$XDG_CACHE_HOME/optbench``, else ``~/.cache/optbench``."""
    if os.environ.get("OPTBENCH_CACHE"):
        return Path(os.environ["OPTBENCH_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "optbench"


# A write that failed for want of room or rights (not damaged input): a full disk, a quota, a
# file-size limit, a read-only file system, permissions.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


def cache_write_error(error: OSError) -> str | None:
    """What to do when ``error`` is a failed write (:data:`WRITE_ERRNOS`) or any failure on a path
    under the data cache (decompressed, extracted or generated data); None for any other error,
    which is the input's."""
    cache = cache_dir()
    in_cache = bool(error.filename) and Path(os.path.abspath(error.filename)).is_relative_to(os.path.abspath(cache))
    if error.errno not in WRITE_ERRNOS and not in_cache:
        return None
    where = f": {error.filename}" if error.filename else ""
    return (f"Cannot use optbench's data cache {cache} ({error.strerror or error}{where}). The data are "
            f"fine: free some space there, or point OPTBENCH_CACHE (or XDG_CACHE_HOME) at a folder you can write "
            f"to, then run the same command again.")


def ensure_writable_folder(folder: Path, setting: str, value: object) -> list[Path]:
    """Create ``folder`` and prove a file can be written in it, or raise one clear UserError; the
    folders it created, outermost first (for :func:`remove_if_empty` when the command is refused).

    Called before data is loaded or trials are launched, so an unwritable ``results=`` or
    ``out=`` (a file, /proc, a read-only mount) costs nothing and prints no traceback. An output
    folder inside a trial's or a sweep's records is refused: its files would be read as theirs.
    """
    inside = next((f for f in (folder.absolute(), *folder.absolute().parents)
                   if (f / "manifest.json").is_file() or (f / "sweep.json").is_file()), None)
    if inside is not None and setting == "out":
        raise UserError(f"{setting}={value} is inside the records of a trial or sweep ({inside}: its manifest.json or "
                        f"sweep.json): files written there would be read as part of them. Set {setting}= to a "
                        f"folder outside them (the default is beside the records).")
    missing = [f for f in (folder, *folder.parents) if not f.exists()][::-1]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        remove_if_empty(missing)
        raise UserError(f"Cannot write to {folder} ({error.strerror or error}). "
                        f"Set {setting}= (now {str(value)!r}) to a folder you can write to.") from None
    return missing


def remove_if_empty(folders: list[Path]) -> None:
    """Remove the folders :func:`ensure_writable_folder` created (outermost first) that are still
    empty, innermost first: a refused command leaves no empty output folder behind."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


class Unreadable:
    """A folder under a results root that could not be listed (its permissions), and why."""

    def __init__(self, folder: str, error: OSError):
        self.folder, self.reason = folder, error.strerror or str(error)


def walk_folders(root: str, descend: Callable[[str, list[os.DirEntry]], bool]) -> Iterator[
        tuple[str, list[os.DirEntry]] | Unreadable]:
    """Every folder under ``root`` (itself first), depth first in name order, with its entries, or an
    :class:`Unreadable` for one that cannot be listed; below a folder only where ``descend(folder,
    entries)``.

    A symbolic link to a folder is followed (results kept on scratch space and linked in are common
    on clusters) unless its target is inside ``root`` or inside a link already followed: those
    records are found once, by their other path, and a link to an ancestor cannot loop. A folder
    that vanishes meanwhile is skipped."""
    followed = [os.path.realpath(root)]
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as found:
                entries = sorted(found, key=lambda entry: entry.name)
        except FileNotFoundError:
            continue
        except OSError as error:
            yield Unreadable(folder, error)
            continue
        yield folder, entries
        if descend(folder, entries):
            stack += reversed(subfolders(folder, entries, followed))


def subfolders(folder: str, entries: list[os.DirEntry], followed: list[str]) -> list[str]:
    """The paths of the folders among ``entries`` (of ``folder``), links to folders included unless
    their target is inside one of ``followed`` (the walk's root and the links it followed, to which
    a followed link's target is added): see :func:`walk_folders`."""
    below = []
    for entry in entries:
        try:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not os.path.isdir(target) or any(_within(target, seen) for seen in followed):
                    continue
                followed.append(target)
            elif not entry.is_dir(follow_symlinks=False):
                continue
        except OSError:
            continue
        below.append(os.path.join(folder, entry.name) if folder != "." else entry.name)
    return below


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
