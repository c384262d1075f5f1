"""The one exception type that reaches the user as a clear paragraph instead of a traceback."""

from __future__ import annotations

from collections.abc import Callable


class OptbenchWarning(UserWarning):
    """A warning of optbench's own (a record it skipped, a file it could not use): the command line
    prints these in its own words, once each (harness/cli.py); the libraries' warnings as Python does."""


class UserError(Exception):
    """Bad input the user can fix: an unknown name, an invalid value, missing data.

    The CLI prints the message as one paragraph and exits with status 2; nothing already
    written to disk is touched.
    """


class Incomplete(UserError):
    """``strict=true`` and some records are missing, unfinished or damaged: the command refuses.

    Exit status 1, not 2: the settings are fine, the records are not (yet) complete.
    """

    exit_code = 1


def refuse_or_warn(messages: list[str], strict: bool, log: Callable[[str], None], refusal: str, remedy: str) -> None:
    """``strict=true``: refuse (:class:`Incomplete`, exit 1) with ``refusal``, ``messages`` listed and
    ``remedy``; without it, log each message as a warning and go on."""
    if messages and strict:
        listed = "".join(f"\n  - {message}" for message in messages)
        raise Incomplete(f"strict=true: {refusal}; nothing was scored or written.{listed}\n{remedy}")
    for message in messages:
        log(f"warning: {message}")


# A failed trial's ``error_in`` where the failure is not the submission's (the harness's, such as an
# I/O error, or the workload's evaluation): the trial exits 1, not 3, and a rerun retries it.
NOT_THE_SUBMISSIONS = ("harness", "workload.evaluate")
