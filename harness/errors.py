"""The one exception type that reaches the user as a clear paragraph instead of a traceback."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path


class OptbenchWarning(UserWarning):
    """A warning of optbench's own (a record it skipped, a file it could not use): the command line
    prints these in its own words, once each (harness/cli.py); the libraries' warnings as Python does."""


class UserError(Exception):
    """Bad input the user can fix: an unknown name, an invalid value, missing data.

    The CLI prints the message as one paragraph and exits with status 2; nothing already
    written to disk is touched.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C of a command that leaves something going on without it (SLURM jobs still queued or
    running): the message says what and how to stop it; the CLI adds it to its interrupted line."""


class Incomplete(UserError):
    """``strict=true`` and some records are missing, unfinished or damaged: the command refuses.

    Exit status 1, not 2: the settings are fine, the records are not (yet) complete.
    """

    exit_code = 1


class NoSuchSize(UserError):
    """A workload asked for at a size it does not have (``sizes``: the ones it has)."""

    def __init__(self, message: str, sizes: list[str]):
        super().__init__(message)
        self.sizes = sizes


class SubmissionFailed(UserError):
    """The submission's code raised outside a trial (``optbench info``'s timed steps): exit status 3,
    as for a trial whose submission failed, and no traceback of the harness's, which is not at fault."""

    exit_code = 3

    @classmethod
    def raised_in(cls, part: str, error: Exception) -> SubmissionFailed:
        """The error ``error`` raised in ``part`` (a record's ``error_in``: ``submission.update``),
        with the frames of the code below the harness's (the submission's, and what it called)."""
        said = SUBMISSION_PART_WORDS.get(part, part)
        frames = "".join(traceback.format_list(_frames_below_the_harness(error)))
        return cls(f"The submission's code raised in its {said} ({part}), not optbench: {type(error).__name__}: "
                   f"{error}. Fix the submission's code (optbench check submission=... runs its conformance "
                   f"checks; an optbench trial records the whole traceback)."
                   + (f"\nIts frames (most recent call last):\n{frames.rstrip()}" if frames else ""))


class WorkloadFailed(UserError):
    """The workload's own code raised while it was built or loaded its data, before the trial began:
    exit status 2 (the workload is the trial's input), its frames shown, nothing recorded."""

    @classmethod
    def raised_in(cls, part: str, error: Exception) -> WorkloadFailed:
        """The error ``error`` raised in ``part`` (``Blobs.load()``), with the frames below the harness's."""
        frames = "".join(traceback.format_list(_frames_below_the_harness(error)))
        return cls(f"The workload's {part} raised {type(error).__name__}: {error}. Nothing was recorded. Fix the "
                   f"workload or its data (optbench info workload=... builds and loads it alone)."
                   + (f"\nIts frames (most recent call last):\n{frames.rstrip()}" if frames else ""))


SUBMISSION_PART_WORDS = {"submission.__init__": "construction", "submission.update": "update",
                         "submission.prepare_for_eval": "prepare_for_eval", "submission.routing": "routing()"}
_HARNESS = Path(__file__).resolve().parent
_MOST_FRAMES = 8  # the last ones: where it raised


def _frames_below_the_harness(error: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``error``'s traceback that are not the harness's own (harness/), the last few."""
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not Path(frame.filename).resolve().is_relative_to(_HARNESS)]
    return frames[-_MOST_FRAMES:]


def refuse_or_warn(messages: list[str], strict: bool, log: Callable[[str], None], refusal: str, remedy: str) -> None:
    """``strict=true``: refuse (:class:`Incomplete`, exit 1) with ``refusal``, ``messages`` listed and
    ``remedy``; without it, log each message as a warning and go on."""
    if messages and strict:
        listed = "".join(f"\n  - {message}" for message in messages)
        raise Incomplete(f"strict=true: {refusal}; nothing was scored or written.{listed}\n{remedy}")
    for message in messages:
        log(f"warning: {message}")


# A failed trial's ``error_in`` where the failure is not the submission's (the harness's, such as an
# I/O error, or the workload's evaluation or batch stream): the trial exits 1, not 3, and a rerun retries it.
#: the workload's parts whose failure is the workload's, in words
WORKLOAD_PARTS = {"workload.evaluate": "evaluate()", "workload.train_batches": "train_batches()"}
NOT_THE_SUBMISSIONS = ("harness", *WORKLOAD_PARTS)
