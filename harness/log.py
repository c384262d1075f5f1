"""The one way commands tell the user what they are doing: ``[command] text`` lines on stderr
(stdout carries each command's result)."""

from __future__ import annotations

import sys
from collections.abc import Callable

Log = Callable[[str], None]


def stderr_logger(name: str) -> Log:
    """A function printing ``[name] text`` to stderr, flushed at once (progress must show live)."""
    return lambda text: print(f"[{name}] {text}", file=sys.stderr, flush=True)
