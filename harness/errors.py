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
