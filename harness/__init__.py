"""optbench's harness, in layers; each imports only from the layers below it (tests/test_architecture.py
checks it; docs/architecture.md draws it):

- the contracts, this folder's own modules: :mod:`harness.workload` and :mod:`harness.submission`
  (what workloads and submissions implement), :mod:`harness.specs`, :mod:`harness.routing`,
  :mod:`harness.errors`, :mod:`harness.paths`, :mod:`harness.log`. Plugins import only these.
- ``config/``: the schemas of every command, composing configs, the registries, external plugins;
- ``core/``: one trial: the training loop, its clock, checkpoints, records, memory, progress, pruning;
- (``scoring/``, beside the harness: from records to the leaderboard);
- ``orchestration/``: sweeps: planning, launching, tune, suite, status;
- ``tools/``: calibration, info, trajectories, the conformance check;
- ``cli.py``: the ``optbench`` command, on top.
"""

from harness.untraceable import refuse_tracing

__version__ = "0.1.0"

refuse_tracing()  # no process of the user's reaches into a harness process (harness/untraceable.py)
