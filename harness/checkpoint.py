"""Trial checkpoints: everything needed to resume a trial exactly after a kill or a requeue.

A checkpoint holds the model, the submission's state (optimizers, schedules), every RNG the
training step can draw from (torch CPU and CUDA, Python, NumPy), the loop's counters (step,
best validation value, next evaluation time) and the submission clock. The batch stream is
not saved: it is a deterministic function of the seed, so on resume the runner recreates it
and skips the batches already consumed (see :func:`harness.runner._train`).

It is written at evaluation boundaries only (the clock is paused there, so writing it is never
charged), atomically (write to a temporary file, fsync, rename), and deleted when the trial
ends. It carries the trial's config hash: a checkpoint of another configuration is ignored.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_NAME = "checkpoint.pt"


def capture_rng() -> dict[str, Any]:
    """The state of every global random number generator a training step may use."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the generators saved by :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``folder/checkpoint.pt`` so that a crash leaves the old or the new file."""
    path = folder / CHECKPOINT_NAME
    tmp = folder / f".{CHECKPOINT_NAME}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(folder: Path, config_hash: str) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` if there is one of this configuration, else None.

    The file is our own (written by :func:`save_checkpoint`), so it is loaded with pickle
    support: the RNG states are Python and NumPy objects.
    """
    path = folder / CHECKPOINT_NAME
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated file from a crash during the very first write
        print(f"[optbench] ignoring an unreadable checkpoint {path}: {error}", flush=True)
        return None
    if state.get("config_hash") != config_hash:
        return None
    return state


def remove_checkpoint(folder: Path) -> None:
    """Delete the checkpoint of a finished trial (its records are what remain)."""
    (folder / CHECKPOINT_NAME).unlink(missing_ok=True)
