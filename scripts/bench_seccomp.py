"""What the trainer's seccomp filter (harness/seccomp.py) adds to one system call.

Each run forks a child that makes ``calls`` ``getppid`` calls (a system call that does nothing but
enter and leave the kernel), with the filter installed or not, alternately (filtered first on odd
repeats) so that machine noise hits both. Prints the best time per call of each and their
difference: the filter's cost per call, which a training step pays once per system call it makes.

Usage: python scripts/bench_seccomp.py [calls=1000000] [repeats=4]
"""

from __future__ import annotations

import os
import sys
import time

from harness import seccomp


def seconds_per_call(filtered: bool, calls: int) -> float:
    """The time of one ``getppid`` in a forked child, with the filter installed or not."""
    out, into = os.pipe()
    pid = os.fork()
    if pid == 0:
        if filtered:
            seccomp.install()
        started = time.perf_counter()
        for _ in range(calls):
            os.getppid()
        os.write(into, repr((time.perf_counter() - started) / calls).encode())
        os._exit(0)
    os.close(into)
    with os.fdopen(out) as pipe:
        value = float(pipe.read())
    os.waitpid(pid, 0)
    return value


def main(argv: list[str]) -> None:
    options = {"calls": "1000000", "repeats": "4"} | dict(arg.split("=", 1) for arg in argv)
    calls, repeats = int(options["calls"]), int(options["repeats"])
    ok, why = seccomp.supported()
    if not ok:
        sys.exit(f"no seccomp filter here: {why}")
    times: dict[bool, list[float]] = {False: [], True: []}
    for repeat in range(repeats):
        for filtered in ((True, False) if repeat % 2 else (False, True)):
            times[filtered].append(seconds_per_call(filtered, calls))
    without, with_filter = min(times[False]) * 1e9, min(times[True]) * 1e9
    print(f"getppid, {calls} calls, best of {repeats}: {without:.1f} ns without the filter, {with_filter:.1f} ns "
          f"with it: +{with_filter - without:.1f} ns per system call (x{with_filter / without:.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
