"""The kernel's Landlock interface (Linux >= 5.13): a process narrows, for good, which files it and
every process it starts may read, write and execute, and (ABI >= 4) which TCP ports they may bind
or connect to, and (ABI >= 6) whom they may signal. No privilege is needed; what a process gave up
it cannot take back, nor can its children.

Only the system calls, through ``ctypes`` (the ``landlock`` package on PyPI has neither the TCP
rules nor the scopes: docs/dependencies.md); what a trainer process may reach is decided in
:mod:`harness.core.sandbox`, what a describing child may write in :mod:`harness.scratch`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from pathlib import Path

# System call numbers: the same on every architecture (added after the tables were unified).
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1  # flag: return the ABI version instead of a ruleset
_RULE_PATH_BENEATH = 1  # a rule on a file or folder and what lies beneath it
PR_SET_NO_NEW_PRIVS = 38  # prctl(2): required of an unprivileged process before restricting itself

# Access rights on files (linux/landlock.h), with the ABI version that added each.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
#: the rights a rule on a file (not a folder) may carry
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ = EXECUTE | READ_FILE | READ_DIR
#: every right on files, by the ABI version that knows it
_FS_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
# Network (ABI 4) and scopes (ABI 6).
BIND_TCP, CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi_version() -> tuple[int, str]:
    """The kernel's Landlock ABI version (0 where it has none) and, when 0, why in words."""
    if not sys.platform.startswith("linux"):
        return 0, f"Landlock is Linux's; this is {sys.platform}"
    version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    if version > 0:
        return int(version), ""
    code = ctypes.get_errno()
    why = {errno.ENOSYS: "the kernel has no Landlock (Linux >= 5.13 built with it), or a seccomp filter "
                         "(a container's) refuses its system calls",
           errno.EOPNOTSUPP: "Landlock is built into the kernel but not enabled (boot with lsm=...,landlock)"}
    return 0, why.get(code, os.strerror(code))


def fs_rights(abi: int) -> int:
    """Every right on files that ABI version ``abi`` handles."""
    return _FS_RIGHTS[max(v for v in _FS_RIGHTS if v <= abi)]


class Ruleset:
    """What a process will be allowed once it calls :meth:`restrict`: every right on files that is
    handled (``handled``, else all that ABI ``abi`` knows) is refused except where a rule allows it,
    and so are TCP (``network``) and signals and abstract sockets to other processes (``scopes``)."""

    def __init__(self, abi: int, network: bool = True, scopes: bool = True, handled: int | None = None):
        self.abi = abi
        self.fs = fs_rights(abi) if handled is None else handled & fs_rights(abi)
        self.net = (BIND_TCP | CONNECT_TCP) if network and abi >= 4 else 0
        self.scoped = (SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL) if scopes and abi >= 6 else 0
        attr = _RulesetAttr(self.fs, self.net, self.scoped)
        size = 24 if abi >= 6 else 16 if abi >= 4 else 8  # the struct as the kernel of that ABI knows it
        self._libc = _libc()
        self.fd = self._libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
        self.rules = 0

    def allow(self, path: Path, rights: int) -> None:
        """Allow ``rights`` on ``path`` and (a folder) everything beneath it. On a file only
        :data:`FILE_RIGHTS` apply; rights this ABI does not know are dropped."""
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            rights &= self.fs
            if not os.path.isdir(f"/proc/self/fd/{fd}"):
                rights &= FILE_RIGHTS
            if not rights:
                return
            attr = _PathBeneathAttr(rights, fd)
            if self._libc.syscall(_ADD_RULE, ctypes.c_int(self.fd), ctypes.c_int(_RULE_PATH_BENEATH),
                                  ctypes.byref(attr), ctypes.c_uint32(0)) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"landlock_add_rule({path}): {os.strerror(code)}")
            self.rules += 1
        finally:
            os.close(fd)

    def restrict(self) -> None:
        """Apply the rules to this process (its calling thread: call it while it has one) and to
        everything it starts from now on. Irreversible."""
        try:
            one, zero = ctypes.c_ulong(1), ctypes.c_ulong(0)  # prctl's arguments are unsigned longs
            if self._libc.prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), one, zero, zero, zero) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
            if self._libc.syscall(_RESTRICT_SELF, ctypes.c_int(self.fd), ctypes.c_uint32(0)) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"landlock_restrict_self: {os.strerror(code)}")
        finally:
            os.close(self.fd)
