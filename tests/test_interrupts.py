"""A signal's own handler that raises (submitit's at its last allowed timeout) stops the trial as an
interrupt: the record stays unfinished and resumable, the handler's error goes up."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from submitit.core.utils import UncompletedJobError

from harness.core.checkpoint import CHECKPOINT_NAME
from harness.core.records import read_json
from harness.core.trial import run_trial

REPO = Path(__file__).resolve().parent.parent
SIGNALLING_SUBMISSION = """
import os
import signal

from submissions.sgd import SGD


class Signalling(SGD):
    steps = 0

    def update(self, batch, compute_loss):
        self.steps += 1
        if self.steps == 40:  # SLURM's timeout signal arrives in the middle of a step
            os.kill(os.getpid(), signal.SIGUSR2)
        return super().update(batch, compute_loss)
"""


def _out_of_requeues(signum, frame):
    """What submitit's SIGUSR2 handler does once a job has timed out max_num_timeout times."""
    raise UncompletedJobError("Job not requeued because: timed-out too many times.")


@pytest.fixture
def submitit_handler():
    previous = signal.signal(signal.SIGUSR2, _out_of_requeues)
    yield
    signal.signal(signal.SIGUSR2, previous)


def test_a_handler_s_error_leaves_the_trial_resumable(submitit_handler, smoke_cfg, results: Path,
                                                      tmp_path: Path) -> None:
    (tmp_path / "sub.py").write_text(SIGNALLING_SUBMISSION)
    (tmp_path / "sub.yaml").write_text((REPO / "configs" / "submission" / "sgd.yaml").read_text()
                                       .replace("name: sgd", "name: signalling"))
    cfg = smoke_cfg(f"submission={tmp_path / 'sub.py'}:Signalling", "workload.sizes.smoke.target=2.0",
                    "workload.sizes.smoke.eval_every_steps=10", "checkpoint_every_s=0", "threads=1",
                    "max_runtime_s=120")
    with pytest.raises(UncompletedJobError, match="timed-out too many times"):
        run_trial(cfg)
    record = next(results.rglob("manifest.json")).parent
    assert read_json(record / "manifest.json").get("status") not in ("failed", "not_reached", "reached")
    assert (record / CHECKPOINT_NAME).is_file()  # the next attempt resumes from step 30
    assert signal.getsignal(signal.SIGUSR2) is _out_of_requeues  # the handler is put back
