"""What a trainer process (``isolation=process``) may reach on the file system and the network.

A trainer runs a submission's code, and before this could read the dataset's files (the
validation split with them), the records of every trial, and write files that a later trial of
the sweep read back (trained weights: a review measured a third seed reaching its target in 0.19 s
where the first did not). With the kernel's Landlock (:mod:`harness.landlock`) the trainer, before
it imports the submission, gives up for good, for itself and every process it starts:

- **writing** anywhere but a private scratch folder (``TMPDIR``; removed with the trainer) and
  existing devices (``/dev/null``, a GPU's; not the files of ``/dev/shm``, which outlive a trial);
- **reading** anything but code and the system: the system's folders (``/usr``, ``/etc``, ...),
  Python's prefixes, every folder on ``sys.path``, the folders of the libraries it has mapped, the
  submission's and workload's source folders — less what :func:`denied_paths` names: the results
  root, ``data_dir``, optbench's and Hugging Face's caches and every file a workload opened while
  loading its data in the harness (:func:`data_reads`), wherever they are inside those folders;
- **TCP** (ABI >= 4: no connection, no listening port) and (ABI >= 6) signals and abstract Unix
  sockets reaching outside its own processes;
- with a seccomp filter (:mod:`harness.seccomp`), **UDP**, raw and packet sockets, io_uring and
  clearing its child-subreaper flag.

``sandbox=auto`` (the default) does this where the kernel has Landlock and records why not where
it has none; ``sandbox=true`` refuses a trial that cannot have it; ``sandbox=false`` does not try.
The manifest's ``sandbox`` says what held.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness import seccomp
from harness.config.plugins import Source, module_origin
from harness.errors import UserError
from harness.landlock import IOCTL_DEV, READ, READ_DIR, READ_FILE, WRITE_FILE, Ruleset, abi_version, fs_rights
from harness.paths import cache_dir
from harness.scratch import scratch_parent, use_scratch

SETTINGS = ("auto", "true", "false")
#: the system's folders a trainer may read (those that exist): programs, libraries, their settings
SYSTEM_FOLDERS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/opt", "/nix", "/gnu")
#: files opened while loading that are code, not data: kept readable (a lazy import needs them)
_CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd")  # not .pth: torch saves tensors under it too
_NOT_DATA = ("/proc/", "/sys/", "/dev/")

#: folders of /dev that hold files, not devices: a file left there by one trial could be read by the next
SHARED_FILE_FOLDERS = ("/dev/shm", "/dev/mqueue")

_opened_while_loading: set[str] = set()
_watching = 0
_hooked = False


def _note_open(event: str, args: tuple[Any, ...]) -> None:
    if not _watching or event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.path.realpath(os.fsdecode(args[0]))
    if not path.endswith(_CODE_SUFFIXES) and "/__pycache__/" not in path and not path.startswith(_NOT_DATA):
        _opened_while_loading.add(path)


@contextlib.contextmanager
def data_reads() -> Iterator[None]:
    """Note every file Python opens while the block runs (a workload loading its data), code
    excepted, so that no trainer of this process may read them (:func:`denied_paths`). Files
    opened by C code that bypasses Python (pyarrow's memory maps) are not seen: the folders they
    are usually in are denied by name."""
    global _watching, _hooked
    if not _hooked:
        sys.addaudithook(_note_open)  # for good (audit hooks cannot be removed): idle unless watching
        _hooked = True
    _watching += 1
    try:
        yield
    finally:
        _watching -= 1


def denied_paths(results: str, data_dir: str | None) -> list[str]:
    """What a trainer may not read (nor write) even inside a folder it may: the results root, the
    data folders by name, and the files workloads opened while loading data in this process."""
    named = [results, data_dir, str(cache_dir()), os.environ.get("HF_HOME"), os.environ.get("HF_DATASETS_CACHE"),
             str(Path.home() / ".cache" / "huggingface"), str(scratch_parent())]
    every = {os.path.realpath(os.path.expanduser(p)) for p in named if p} | _opened_while_loading
    return sorted(Paths(map(Path, every)).paths)  # outermost only: a denied folder's files need no mention


def source_folders(*sources: str | None) -> list[str]:
    """The folders a trainer reads a user's plugin from: its file's folder, the root that made its
    module importable, and its top-level package's folder (an editable install's finder maps a
    project that is on no path), given ``submission.source`` / ``workload.source`` texts (None: built in)."""
    folders = []
    for text in filter(None, sources):
        source = Source.from_text(text)
        if source.is_file:
            folders.append(os.path.dirname(source.module))
        if source.root:
            folders.append(source.root)
        origin = None if source.is_file else module_origin(source)
        if origin:
            package = Path(origin).parent
            while (package / "__init__.py").exists() and (package.parent / "__init__.py").exists():
                package = package.parent
            folders.append(str(package))
    return folders


def check_setting(setting: str) -> str | None:
    """Refuse a bad ``sandbox=`` and, for ``sandbox=true``, a kernel without Landlock (before any
    record is started); why a trainer will not be confined (``sandbox=false``, or the kernel's
    reason under ``auto``), else None."""
    value = str(setting).lower()
    if value not in SETTINGS:
        raise UserError(f"sandbox={setting!r} is not valid: auto (where the kernel has Landlock), true (refuse "
                        f"a trial without it) or false.")
    if value == "false":
        return "sandbox=false"
    abi, why = abi_version()
    if abi:
        return None
    if value == "true":
        raise UserError(f"sandbox=true, but this kernel cannot confine a trainer process: {why}. Run on a Linux "
                        f">= 5.13 with Landlock enabled, or set sandbox=auto to train without the sandbox "
                        f"(the manifest says so).")
    return why


def record_entry(cfg: Any) -> dict[str, Any] | None:
    """The manifest's ``sandbox``: whether the trial's trainer process is confined (by which Landlock
    ABI, and ``seccomp``: true, or why its system call filter is missing), or why not; None in
    process (no trainer process to confine)."""
    if cfg.isolation != "process":
        return None
    missing = check_setting(cfg.sandbox)
    if missing:
        return {"confined": False, "why": missing}
    filtered, why = seccomp.supported()
    return {"confined": True, "landlock_abi": abi_version()[0], "seccomp": filtered or why}


def plan(cfg: Any, scratch: str) -> dict[str, Any]:
    """What the trainer is to confine itself to (sent in its set-up): JSON, from a trial's config."""
    entry = record_entry(cfg) or {}
    return {"confined": bool(entry.get("confined")), "scratch": scratch,
            "deny": denied_paths(str(cfg.results), cfg.data_dir),
            "read": source_folders(cfg.submission.get("source"), cfg.workload.get("source"))
            + [p for p in [cfg.submission.get("config_from")] if p]}


def confine(sandbox: dict[str, Any]) -> None:
    """In the trainer, before any submission code runs and before it has a second thread: point its
    temporary files at the scratch folder and, when ``sandbox["confined"]`` (:func:`plan`), apply the
    rules; a kernel that refuses them raises (the manifest says the trainer is confined)."""
    scratch = sandbox["scratch"]
    use_scratch(scratch)
    if not sandbox["confined"]:
        return
    abi, why = abi_version()
    if not abi:
        raise RuntimeError(f"the harness found Landlock, but the trainer cannot use it: {why}")
    if len(os.listdir("/proc/self/task")) > 1:  # Landlock confines the calling thread and its future children
        raise RuntimeError("the trainer has threads before it is confined: they would not be")
    ruleset = Ruleset(abi)
    roots = readable_roots(sandbox["read"])
    denied = Paths(carved(Paths(Path(p) for p in sandbox["deny"]), roots))
    for root in roots:
        allow_except(ruleset, root, READ, denied)
    allow_except(ruleset, Path("/proc"), READ | WRITE_FILE, denied)
    allow_except(ruleset, Path("/sys"), READ_FILE | READ_DIR, denied)
    devices = Paths([*map(Path, denied.paths), *map(Path, SHARED_FILE_FOLDERS)])  # files there outlive a trial
    allow_except(ruleset, Path("/dev"), READ_FILE | READ_DIR | WRITE_FILE | IOCTL_DEV, devices)
    ruleset.allow(Path(scratch), fs_rights(abi))
    filtered = seccomp.supported()[0]
    ruleset.restrict()
    if filtered:
        seccomp.install()  # what Landlock cannot refuse: UDP, clearing the subreaper flag (harness/seccomp.py)


def readable_roots(extra: list[str]) -> list[Path]:
    """The folders (and files) a trainer may read, outermost only: the system's, Python's, ``sys.path``,
    the folders of every file this process has mapped (shared libraries wherever they are), ``extra``."""
    candidates = [*SYSTEM_FOLDERS, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  *(p or os.getcwd() for p in sys.path), *module_roots(), *mapped_folders(), *extra]
    roots: set[Path] = set()
    for candidate in candidates:
        with contextlib.suppress(OSError):
            path = Path(os.path.realpath(candidate))
            if path.exists():
                roots.add(path)
    return sorted(r for r in roots if not any(parent in roots for parent in r.parents))


def module_roots() -> list[str]:
    """The folders this process's top-level modules were imported from: also those an import hook
    found off ``sys.path`` (an editable install's finder maps a project folder without listing it)."""
    roots = set()
    for name, module in list(sys.modules.items()):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if "." in name or not isinstance(origin, str) or not os.path.isabs(origin):
            continue
        packaged = getattr(module, "__path__", None) is not None  # a package: its folder's parent
        roots.add(os.path.dirname(os.path.dirname(origin)) if packaged else os.path.dirname(origin))
    return sorted(roots)


def mapped_folders() -> list[str]:
    """The folders of the files this process has mapped (``/proc/self/maps``): its libraries."""
    folders = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/maps").read_text().splitlines():
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith("/") and not fields[5].startswith(_NOT_DATA) \
                    and not fields[5].endswith("(deleted)"):
                folders.add(os.path.dirname(fields[5]))
    return sorted(folders)


class Paths:
    """A set of paths, outermost only, asked in a few set lookups (a dataset of image files puts tens
    of thousands in a deny list): whether a path is one of them or beneath one, or holds one."""

    def __init__(self, paths: Iterable[Path]):
        self.paths: set[str] = set()
        last = None
        for path in sorted({str(p) for p in paths}):  # a folder sorts before what is beneath it
            if last is None or not path.startswith(last.rstrip("/") + "/"):
                self.paths.add(path)
                last = path
        self.above: set[str] = set()
        for path in self.paths:
            parent = os.path.dirname(path)
            while parent not in self.above and parent != path:
                self.above.add(parent)
                path, parent = parent, os.path.dirname(parent)

    def cover(self, path: Path) -> bool:
        text = str(path)
        while True:
            if text in self.paths:
                return True
            parent = os.path.dirname(text)
            if parent == text:
                return False
            text = parent

    def hold(self, path: Path) -> bool:
        return str(path) in self.above

    def __contains__(self, path: Path) -> bool:
        return str(path) in self.paths


def carved(denied: Paths, roots: list[Path]) -> list[Path]:
    """``denied``, with each folder that holds (or is) a readable root replaced by its entries that are
    not code: ``results=.`` in a project folder, or ``data_dir=~`` above a virtual environment, must
    not make the trainer's own code unreadable. Code is a root, or a ``.py``/``.so`` file, or a
    folder with Python files (or ``pyvenv.cfg``) at its top."""
    readable = Paths(roots)
    out = []
    for path in map(Path, denied.paths):
        out += _not_code(path, readable) if readable.hold(path) or path in readable else [path]
    return out


def _not_code(folder: Path, roots: Paths) -> list[Path]:
    out = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            path = Path(entry.path)
            if entry.is_symlink() or path in roots:  # a link's target has its own rules; a root is code
                continue
            if roots.hold(path):
                out += _not_code(path, roots)
            elif not _holds_code(path):
                out.append(path)
    return out


def _holds_code(path: Path) -> bool:
    if not path.is_dir():
        return path.suffix in _CODE_SUFFIXES
    with contextlib.suppress(OSError):
        return (path / "pyvenv.cfg").exists() or any(p.suffix in _CODE_SUFFIXES for p in path.iterdir())
    return False


def allow_except(ruleset: Ruleset, path: Path, rights: int, denied: Paths) -> None:
    """Allow ``rights`` beneath ``path`` but not on anything in ``denied``: a folder holding a denied
    path gets a rule per entry instead, and may be listed (Landlock's listing right reaches beneath:
    the names in a denied folder can be listed, not its files read). Symbolic links among the
    entries are not followed: a lookup through one reaches its target only where that is allowed."""
    if denied.cover(path):
        return
    with contextlib.suppress(OSError):  # gone meanwhile, or unreadable: nothing to allow
        if not denied.hold(path):
            ruleset.allow(path, rights)
            return
        if rights & READ_DIR:
            ruleset.allow(path, READ_DIR)
        for entry in os.scandir(path):
            if not entry.is_symlink():
                allow_except(ruleset, Path(entry.path), rights, denied)
