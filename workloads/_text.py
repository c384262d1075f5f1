"""Character-level text corpora for language-model workloads: read, encode, split, cut windows.

A corpus is one string, from a UTF-8 text file or from a text column of a Hugging Face
``datasets`` dataset. Its vocabulary is the sorted set of its characters; its token stream is
split into contiguous train / validation / test parts (no window straddles two parts). Training
windows start at positions drawn by a CPU generator the workload owns, so the stream is the same
on every device; evaluation windows are fixed and evenly spaced, so every evaluation sees the
same text. Everything stays on the device as one int64 tensor per split.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.errors import UserError
from workloads._tensors import to_device


@dataclass(frozen=True)
class CharCorpus:
    """A corpus encoded one token per character."""

    tokens: torch.Tensor  # (N,) int64; token i stands for vocab[i]
    vocab: str  # the sorted distinct characters

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def encode_chars(text: str, source: str) -> CharCorpus:
    """Encode ``text`` with its own sorted character vocabulary; an empty text is a UserError."""
    if not text.strip():
        raise UserError(
            f"The text corpus from {source} is empty (no characters, or only white space); "
            f"a language model needs at least a few thousand characters."
        )
    # Code points through numpy: one pass in C instead of a Python loop over a million characters.
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    alphabet, tokens = np.unique(codes, return_inverse=True)
    vocab = "".join(map(chr, alphabet.tolist()))
    return CharCorpus(torch.from_numpy(tokens.astype(np.int64).reshape(-1)), vocab)


def read_text_file(path: Path) -> str:
    """The whole file as UTF-8 text, with a clear error when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text ({error}). Give a plain UTF-8 text file.") from None
    except OSError as error:
        raise UserError(f"Could not read the text file {path}: {error}.") from None


def download_text(url: str, destination: Path, timeout_s: float = 20.0) -> None:
    """Fetch ``url`` into ``destination`` (written whole, then renamed: never half a file)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f"{destination.name}.{os.getpid()}.part")
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        partial.write_bytes(response.read())
    partial.replace(destination)


def load_hf_text(dataset: str, config: str | None, split: str, column: str, data_dir: Path | None) -> str:
    """The rows of ``column`` joined by newlines, from a saved dataset folder or the Hugging Face Hub.

    ``dataset`` is a folder written by ``save_to_disk`` (absolute, or relative to ``data_dir``
    or the working directory), read with ``datasets.load_from_disk``; anything else is a Hub
    name for ``datasets.load_dataset(dataset, config, split=split)``. With OPTBENCH_OFFLINE set,
    a Hub name is only tried when HF_HUB_OFFLINE=1 says to read it from Hugging Face's cache.
    """
    import datasets  # imported here: it takes a second, and only this source needs it

    local = _local_dataset_folder(dataset, data_dir)
    try:
        if local is not None:
            data = datasets.load_from_disk(str(local))
            if isinstance(data, datasets.DatasetDict):
                if split not in data:
                    raise UserError(
                        f"The saved dataset {local} has no split '{split}'. Its splits: {', '.join(data)}. "
                        f"Set the option hf_split."
                    )
                data = data[split]
        else:
            if _offline() and os.environ.get("HF_HUB_OFFLINE") in (None, "", "0"):
                raise UserError(
                    f"'{dataset}' is not a folder, and OPTBENCH_OFFLINE is set, so the Hugging Face Hub "
                    f"is not contacted. Give the path of a dataset saved with save_to_disk, or set "
                    f"HF_HUB_OFFLINE=1 to read '{dataset}' from Hugging Face's local cache."
                )
            data = datasets.load_dataset(dataset, config, split=split)
    except UserError:
        raise
    except Exception as error:  # no network, unknown name, wrong config or split, corrupt folder...
        raise UserError(
            f"Could not load the Hugging Face dataset '{dataset}' (config {config}, split '{split}'): "
            f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}. "
            f"Check the name, config and split, or save the dataset with save_to_disk and give its folder."
        ) from None
    if column not in data.column_names:
        raise UserError(
            f"The dataset '{dataset}' has no column '{column}'. Its columns: {', '.join(data.column_names)}. "
            f"Set the option text_column to the one that holds the text."
        )
    rows = data[column]
    bad = [index for index, row in enumerate(rows) if not isinstance(row, str)]
    if len(bad) == len(rows):
        raise UserError(f"The column '{column}' of '{dataset}' does not hold strings; pick a text column.")
    if bad:
        raise UserError(
            f"The column '{column}' of '{dataset}' holds {len(bad)} row(s) that are not text (the first: row "
            f"{bad[0]}, {rows[bad[0]]!r}). Drop them (dataset.filter(lambda r: isinstance(r['{column}'], str)), "
            f"then save_to_disk) and give the saved folder: the benchmark does not guess what they meant.")
    return "\n".join(rows)


def _local_dataset_folder(dataset: str, data_dir: Path | None) -> Path | None:
    path = Path(dataset).expanduser()
    candidates = [path] if path.is_absolute() else [*([data_dir / path] if data_dir else []), path]
    return next((p for p in candidates if p.is_dir()), None)


def _offline() -> bool:
    return os.environ.get("OPTBENCH_OFFLINE") not in (None, "", "0")


def contiguous_split(tokens: torch.Tensor, validation_fraction: float, test_fraction: float) -> dict[str, torch.Tensor]:
    """Train, validation and test as consecutive, non-overlapping slices of the token stream."""
    if not (validation_fraction > 0 and test_fraction > 0 and validation_fraction + test_fraction < 1):
        raise UserError(
            f"validation_fraction={validation_fraction} and test_fraction={test_fraction} must be positive "
            f"and leave some text for training (their sum below 1)."
        )
    n = tokens.numel()
    n_validation, n_test = round(n * validation_fraction), round(n * test_fraction)
    n_train = n - n_validation - n_test
    return {
        "train": tokens[:n_train],
        "validation": tokens[n_train : n_train + n_validation],
        "test": tokens[n_train + n_validation :],
    }


def random_windows(
    tokens: torch.Tensor, block_size: int, batch_size: int, seed: int, chunk: int = 64
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (inputs, targets) batches of random windows: x = tokens[i:i+T], y = tokens[i+1:i+T+1].

    Start positions come from a CPU generator seeded with ``seed`` (the same on every device),
    drawn ``chunk`` batches at a time so that a GPU gets one small copy per chunk, not per step.
    """
    high = tokens.numel() - block_size  # starts i in [0, n - T - 1], so that i + T + 1 <= n
    if high < 1:
        raise ValueError(f"{tokens.numel()} tokens cannot hold a window of {block_size + 1}")
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(block_size + 1, device=tokens.device)  # (T+1,)
    while True:
        starts = to_device(torch.randint(high, (chunk, batch_size), generator=generator), tokens.device)
        for row in starts:  # (B,)
            windows = tokens[row[:, None] + offsets]  # (B, T+1)
            yield windows[:, :-1], windows[:, 1:]


def evaluation_windows(tokens: torch.Tensor, block_size: int, max_windows: int) -> torch.Tensor:
    """A fixed set of (up to) ``max_windows`` evenly spaced windows of T+1 tokens, (W, T+1).

    When the split holds fewer whole windows than ``max_windows``, they tile it without overlap.
    """
    last_start = tokens.numel() - block_size - 1
    if last_start < 0:
        raise UserError(
            f"An evaluation split of {tokens.numel()} tokens is shorter than one window of {block_size + 1}; "
            f"use a longer corpus, larger validation/test fractions or a smaller block_size."
        )
    count = max(1, min(max_windows, tokens.numel() // (block_size + 1)))
    starts = torch.linspace(0, last_start, count, dtype=torch.float64).round().long().to(tokens.device)
    return tokens[starts[:, None] + torch.arange(block_size + 1, device=tokens.device)]


def write_synthetic_text(path: Path, seed: int, n_chars: int) -> None:
    """A corpus with structure a tiny model learns in seconds, for tests and the smoke size.

    A lexicon of 24 made-up words; each word is followed by one of three fixed successors, and
    lines of 5-9 words end with a period. Within a word the next letter is nearly certain, and
    between words there are three choices: the smoke size's one-layer model gets from 3.4 nats
    per character (a uniform guess) to about 0.7 in a few hundred steps.
    """
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lexicon = ["".join(rng.choice(letters, size=rng.integers(3, 7))) for _ in range(24)]
    successors = rng.integers(0, len(lexicon), size=(len(lexicon), 3))
    lines, length, word = [], 0, 0
    while length < n_chars:
        words = []
        for _ in range(rng.integers(5, 10)):
            word = int(successors[word, rng.integers(3)])
            words.append(lexicon[word])
        lines.append(" ".join(words) + ".")
        length += len(lines[-1]) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    partial.write_text("\n".join(lines)[:n_chars], encoding="utf-8")
    partial.replace(path)
