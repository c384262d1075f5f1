"""A seccomp filter for a confined trainer: the system calls Landlock cannot refuse.

Landlock (:mod:`harness.landlock`) governs files, TCP and (ABI >= 6) signals and abstract sockets,
but not UDP, raw or packet sockets (HTTP/3 and DNS run over UDP: a submission could fetch trained
weights), nor the process's own flags: a submission that clears the trainer's child-subreaper flag
before a double fork leaves a process the harness no longer finds at the trial's end. This filter
makes the kernel answer ``EPERM`` to:

- ``socket()`` of the IPv4, IPv6 and packet families (a trainer process runs no data-parallel
  trial, so it has no use for them; Unix sockets stay: a DataLoader's workers use them);
- ``prctl(PR_SET_CHILD_SUBREAPER, ...)``: the harness set it before the filter;
- ``io_uring_setup()``: io_uring's operations (sockets among them) pass no filter;
- any system call of another ABI than the process's own (x32, i386 through ``int 0x80``), whose
  numbers differ.

Installed through ``prctl(PR_SET_SECCOMP)`` with classic BPF built here with ``ctypes`` (no
library: libseccomp's Python binding is not on PyPI, docs/dependencies.md); x86-64 and AArch64
only (elsewhere the manifest says the filter is missing). Irreversible, and inherited by every
process the trainer starts.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import sys

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little-endian here)
_NR, _ARCH, _ARG0 = 0, 4, 16
_LD_ABS, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JGE|K, BPF_RET|K
_ALLOW, _DENY = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PR_SET_NO_NEW_PRIVS = 22, 2, 38
PR_SET_CHILD_SUBREAPER = 36
ACTIONS = "/proc/sys/kernel/seccomp/actions_avail"  # the filters' actions the kernel has (Linux >= 4.14)
X32_BIT = 0x40000000  # x86-64's x32 ABI: the same calls under numbers with this bit

#: per machine: its audit architecture and the numbers of socket, prctl and io_uring_setup
ARCHITECTURES = {"x86_64": (0xC000003E, 41, 157, 425), "aarch64": (0xC00000B7, 198, 167, 425)}
REFUSED_FAMILIES = (socket.AF_INET, socket.AF_INET6, getattr(socket, "AF_PACKET", 17))


class _Instruction(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def supported() -> tuple[bool, str]:
    """Whether this machine's filter can be built here, and if not why, in words."""
    machine = platform.machine()
    if not sys.platform.startswith("linux"):
        return False, f"seccomp is Linux's; this is {sys.platform}"
    if machine not in ARCHITECTURES:
        return False, f"no system call table for {machine} (x86_64 and aarch64 only)"
    if "errno" not in _read(ACTIONS):
        return False, f"the kernel offers no seccomp filter that returns an error ({ACTIONS})"
    return True, ""


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return ""


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter's instructions for ``machine`` (a key of :data:`ARCHITECTURES`), as
    (code, jump if true, jump if false, constant): jumps count the instructions skipped."""
    arch, sys_socket, sys_prctl, sys_io_uring_setup = ARCHITECTURES[machine]
    families = list(REFUSED_FAMILIES)
    head = [
        (_LD_ABS, 0, 0, _ARCH),
        (_JEQ, 1, 0, arch),  # another ABI's call: refused
        (_RET, 0, 0, _DENY),
        (_LD_ABS, 0, 0, _NR),
    ]
    if machine == "x86_64":
        head += [(_JGE, 0, 1, X32_BIT), (_RET, 0, 0, _DENY)]
    # after head: [socket?, prctl?, io_uring?, allow, (socket's checks), (prctl's check)]
    socket_checks = [(_LD_ABS, 0, 0, _ARG0)]
    for index, family in enumerate(families):
        socket_checks.append((_JEQ, len(families) - index, 0, family))  # to the refusal after them
    socket_checks += [(_RET, 0, 0, _ALLOW), (_RET, 0, 0, _DENY)]
    prctl_checks = [(_LD_ABS, 0, 0, _ARG0), (_JEQ, 0, 1, PR_SET_CHILD_SUBREAPER), (_RET, 0, 0, _DENY),
                    (_RET, 0, 0, _ALLOW)]
    dispatch = [
        (_JEQ, 4, 0, sys_socket),  # skip: the 3 below and allow
        (_JEQ, 3 + len(socket_checks), 0, sys_prctl),
        (_JEQ, 0, 1, sys_io_uring_setup),
        (_RET, 0, 0, _DENY),
        (_RET, 0, 0, _ALLOW),
    ]
    return head + dispatch + socket_checks + prctl_checks


def install() -> None:
    """Apply the filter to this process (its calling thread: call it while it has one) and to every
    process it starts; raises OSError where the kernel refuses it."""
    ok, why = supported()
    if not ok:
        raise OSError(errno.ENOSYS, why)
    instructions = program(platform.machine())
    array = (_Instruction * len(instructions))(*(_Instruction(*i) for i in instructions))
    prog = _Program(len(instructions), array)
    libc = ctypes.CDLL(None, use_errno=True)
    one, zero = ctypes.c_ulong(1), ctypes.c_ulong(0)
    if libc.prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), one, zero, zero, zero) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
    if libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog),
                  zero, zero) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_SECCOMP): {os.strerror(code)}")
