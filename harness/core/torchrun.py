"""torch's launcher (torchrun) for the ranks of ``optbench trial nproc=N`` on one machine
(started by :mod:`harness.core.ranks`), in a process that imports nothing of the harness but
:mod:`harness.exits`: it only starts and watches the ranks, and the harness's imports (torch's
compiler among them, ~2 s) would delay every rank's start by as much.

It ends when the process that started it dies.
"""

from __future__ import annotations

import signal
import sys

from harness.exits import die_with_parent

if __name__ == "__main__":
    die_with_parent(signal.SIGTERM)  # torchrun passes SIGTERM on to its workers
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main as torchrun

    try:
        torchrun(sys.argv[1:])
    except SignalException as interrupted:  # passed on to the ranks, which said what they did with it
        sys.exit(128 + int(interrupted.sigval))
