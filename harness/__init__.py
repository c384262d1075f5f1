"""optbench's harness: config schemas, the training loop, the clock, records and the CLI.

The harness owns the loop, the data order, the clock, evaluation and records; workloads
(``workloads/``) and submissions (``submissions/``) plug into it through the two contracts in
:mod:`harness.workload` and :mod:`harness.submission`.
"""

__version__ = "0.1.0"
