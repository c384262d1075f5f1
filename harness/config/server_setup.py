"""Imported first by the forkserver (its preload: :func:`harness.config.child_process.context`) and by
nothing else. Everything the forkserver forks may run a submission's code: a trainer, the child that
describes a submission's class, and any process a trainer has it fork (it can reach the server's
socket). So the server gives up ``CAP_SYS_PTRACE`` for itself and every child at once
(:mod:`harness.untraceable`): a forked child of root's kept it and could write the harness's memory.
"""

from harness.untraceable import give_up_tracing

give_up_tracing()
