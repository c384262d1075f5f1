"""Trial checkpoints: everything needed to resume a trial exactly after a kill or a requeue.

A checkpoint holds the model, the submission's state (optimizers, schedules), every RNG the
training step can draw from (torch CPU and CUDA, Python, NumPy), the loop's counters (step,
best validation value, next evaluation time) and the submission clock. The batch stream is
not saved: it is a deterministic function of the seed, so on resume the runner recreates it
and skips the batches already consumed (see :func:`harness.core.runner._train`).

It is written at evaluation boundaries only (the clock is paused there, so writing it is never
charged), atomically (write to a temporary file, fsync, rename; the temporary file is removed
on every failure), and deleted when the trial ends. It carries the trial's config hash: a
checkpoint of another configuration is ignored.

Results folders travel between people and clusters, so a checkpoint is untrusted input: it is
read with ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers only and
never runs code from the file. Everything saved is therefore tensors, numbers, strings, lists,
tuples and dicts (NumPy's RNG state is stored as plain values). A file that cannot be read that
way is named, moved aside to ``checkpoint.rejected.pt`` and the trial starts from the beginning.
So that a submission whose ``state_dict`` holds anything else (a NumPy array) does not train on
with checkpoints no resume can read, a trial's first checkpoint is read back the same way before
it is written: :class:`UnloadableState` fails the trial as the submission's.
"""

from __future__ import annotations

import io
import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.core.records import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"


def capture_rng(device: torch.device) -> dict[str, Any]:
    """The state of every global random number generator a training step on ``device`` may use.

    On CUDA only the trial's device's generator: the others are not the trial's (in a data-parallel
    trial each rank has its own GPU, and every rank's generator is where rank 0's is, since they
    start from one seed and draw alike), and reading them would create a context on every GPU.
    """
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": _numpy_state(),
    }
    if device.type == "cuda" and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Put back the generators saved by :func:`capture_rng`; the CUDA one into ``device``'s (a data-
    parallel rank's own GPU, whichever GPU rank 0 saved it from)."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    cuda = state.get("cuda")
    if cuda is not None and device.type == "cuda":
        if isinstance(cuda, list | tuple):  # every GPU's, from before only the trial's was kept: as it was then
            torch.cuda.set_rng_state_all(cuda)
        else:
            torch.cuda.set_rng_state(cuda, device)


def _numpy_state() -> tuple[str, list[int], int, int, float]:
    """NumPy's legacy global RNG state with its key array as a list (loadable without pickle)."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return str(name), keys.tolist(), int(position), int(has_gauss), float(cached)


class UnloadableState(Exception):
    """The submission's state cannot be read back from a checkpoint (``torch.load(weights_only=True)``)."""


def save_checkpoint(folder: Path, state: dict[str, Any], verify: bool = False) -> Path:
    """Write ``state`` to ``folder/checkpoint.pt`` so that a crash leaves the old or the new file.

    A failed write (full disk, file-size limit) removes its temporary file and raises. ``verify``
    (a trial's first checkpoint): read it back as a resume would first, :class:`UnloadableState`
    where that fails.
    """
    path = folder / CHECKPOINT_NAME
    buffer = io.BytesIO()
    torch.save(state, buffer)  # serialised in memory first: a failed write then raises the real OSError
    if verify:
        check_loadable(buffer.getvalue())
    write_atomic(path, buffer.getvalue())
    return path


def check_loadable(data: bytes) -> None:
    """Raise :class:`UnloadableState` where ``data`` (a saved state) cannot be loaded with
    ``weights_only=True``, saying what it holds that cannot be and what to do."""
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise UnloadableState(
            f"the submission's state_dict() holds what a checkpoint cannot (checkpoints are loaded with "
            f"torch.load(weights_only=True), which rebuilds tensors, numbers, strings and containers of them "
            f"only): {load_failure(error)}. Keep such state as tensors (torch.as_tensor(array) for a NumPy "
            f"array) or plain values, or a killed or requeued trial could not resume; optbench check tests "
            f"this") from None


def load_failure(error: BaseException) -> str:
    """What ``torch.load`` refused, in one line: its "Unsupported global ..." (what the file holds)
    where it says one, else its first line; without the terminal's colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = next((line for line in lines if "Unsupported global" in line), lines[0] if lines else "")
    found = found.split(" was not an allowed global")[0].removeprefix("WeightsUnpickler error: ")
    return f"{type(error).__name__}: {found[:300]}"


REJECTED_NAME = "checkpoint.rejected.pt"


def load_checkpoint(folder: Path, config_hash: str, say: Any = print) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` if there is a usable one of this configuration, else None.

    Loaded with ``weights_only=True``: no code in the file can run. A file that is unreadable
    (truncated, not a checkpoint, or holding objects other than tensors and plain values) or of
    another configuration is reported through ``say`` and moved aside to ``checkpoint.rejected.pt``
    (kept for inspection, never loaded); the trial then starts from the beginning.
    """
    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        problem = None if isinstance(state, dict) else f"expected a dict, found {type(state).__name__}"
    except Exception as error:  # truncated, foreign or unsafe: never unpickled
        state, problem = None, load_failure(error)
    if problem is None and state.get("config_hash") != config_hash:
        problem = f"it belongs to config hash {state.get('config_hash')!r}, this trial is {config_hash!r}"
    if problem is None:
        return state
    os.replace(path, folder / REJECTED_NAME)
    say(f"not resuming from {path} ({problem}); moved it to {REJECTED_NAME}, starting from step 0")
    return None


def remove_checkpoint(folder: Path) -> None:
    """Delete the checkpoint of a finished trial (its records are what remain)."""
    (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
