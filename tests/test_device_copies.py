"""Host-to-device copies in the batch streams (workloads/_tensors.py ``to_device``): on a GPU a
plain ``.to("cuda")`` from ordinary memory makes the host wait for the queued kernels, so a stream
that makes one per batch puts a host sync in every step. Every copy the streams make is
non-blocking (and pinned on CUDA); checked on the CPU by recording the copies."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from workloads._tensors import shuffled_batches, to_device
from workloads._text import random_windows


@contextmanager
def recorded_copies() -> Iterator[list[dict]]:
    """Every ``Tensor.to`` call made inside, with its keyword arguments."""
    calls: list[dict] = []
    real = torch.Tensor.to

    def to(self, *args, **kwargs):
        calls.append(kwargs)
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.Tensor, "to", to)
        yield calls


def assert_none_blocks(calls: list[dict]) -> None:
    assert calls and all(call.get("non_blocking") for call in calls), calls


def test_on_cuda_the_copy_is_pinned_and_non_blocking(monkeypatch: pytest.MonkeyPatch) -> None:
    pinned: list[torch.Tensor] = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self) or self)
    with recorded_copies() as calls:
        monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: calls.append({"args": a, **k}) or self)
        to_device(torch.arange(4), torch.device("cuda"))
    assert len(pinned) == 1 and calls == [{"args": (torch.device("cuda"),), "non_blocking": True}]


def test_the_shuffled_and_text_streams_never_block() -> None:
    with recorded_copies() as calls:
        list(itertools.islice(shuffled_batches(torch.arange(40.0), torch.arange(40), 8, 0), 12))  # 2+ epochs
    assert_none_blocks(calls)
    with recorded_copies() as calls:
        list(itertools.islice(random_windows(torch.arange(500), 16, 4, 0, chunk=4), 10))  # 3 chunks
    assert_none_blocks(calls)
