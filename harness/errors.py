"""The one exception type that reaches the user as a clear paragraph instead of a traceback."""


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


# A failed trial's ``error_in`` where the failure is not the submission's (the harness's, such as an
# I/O error, or the workload's evaluation): the trial exits 1, not 3, and a rerun retries it.
NOT_THE_SUBMISSIONS = ("harness", "workload.evaluate")
