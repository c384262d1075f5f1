"""GPT: a decoder-only transformer trained on next-character prediction (nanoGPT's shakespeare_char).

Model (``gpt``): token + position embeddings, ``n_layer`` pre-LayerNorm blocks of causal
self-attention (``scaled_dot_product_attention(is_causal=True)``) and a 4x MLP, a final
LayerNorm and an output head tied to the token embedding. Loss: mean cross-entropy over every
position of every window. Metric: validation cross-entropy in nats per character (lower is better);
``evaluate`` also reports perplexity and next-character accuracy.

Where the model's settings come from: the size's ``options`` hold its dimensions (``n_layer``,
``n_head``, ``n_embd``, ``block_size``, ``dropout``), since they differ per size; the workload's
``model_options`` (the base config's, with a variant's merged over them) hold family-wide
choices (``activation``, ``bias``) and win over the size's options, so a variant may also
change a dimension. Unknown keys in either are refused with the list of valid ones.

Data: one corpus, character-level, vocabulary = its sorted distinct characters, split into
contiguous train / validation / test slices (90 / 5 / 5 % by default). Sources, by option:
``synthetic: true`` (smoke: generated text written to the cache and read back as a text file),
``hf_dataset`` (a folder saved with ``save_to_disk``, or a Hub name with ``hf_config``,
``hf_split`` and ``text_column``), else the text file ``text_file`` (default: tiny Shakespeare),
looked for in ``data_dir`` (also as nanoGPT's ``input.txt``) when one is given, else in the cache
and the copy shipped in ``workloads/data/``; else downloaded (into ``data_dir``, or the cache)
where a network exists and OPTBENCH_OFFLINE is unset. Sizes, targets and how they were measured:
``workloads/gpt.md`` and ``configs/workload/gpt.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import UserError
from harness.paths import cache_dir
from harness.specs import WorkloadConfig
from harness.workload import Workload, data_sha256
from workloads._bundled import bundled
from workloads._text import (
    contiguous_split,
    download_text,
    encode_chars,
    evaluation_windows,
    load_hf_text,
    random_windows,
    read_text_file,
    write_synthetic_text,
)

SHAKESPEARE_FILE = "tinyshakespeare.txt"
SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}

#: data options and their defaults (the model's dimensions are the fields of GPTConfig)
DATA_OPTIONS: dict[str, Any] = {
    "synthetic": False,  # generate the smoke corpus instead of reading one
    "synthetic_chars": 60_000,
    "synthetic_seed": 0,
    "text_file": SHAKESPEARE_FILE,  # a name in data_dir, or an absolute path
    "hf_dataset": None,  # a save_to_disk folder or a Hub name; when set, text_file is not used
    "hf_config": None,
    "hf_split": "train",
    "text_column": "text",
    "validation_fraction": 0.05,
    "test_fraction": 0.05,
    "eval_windows": 256,  # evaluation windows per split (evenly spaced, the same every time)
    "eval_batch_size": 256,
}


# ---------------------------------------------------------------------------- model
@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """The model's settings; ``vocab_size`` comes from the corpus."""

    vocab_size: int
    block_size: int = 64  # context length T
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128  # width C
    dropout: float = 0.0
    bias: bool = False  # biases in Linear and LayerNorm layers (nanoGPT's shakespeare_char: none)
    activation: str = "gelu"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise UserError(f"Unknown activation '{self.activation}'. Valid activations: {', '.join(ACTIVATIONS)}.")
        if min(self.block_size, self.n_layer, self.n_head, self.n_embd) < 1 or self.n_embd % self.n_head:
            raise UserError(
                f"GPT needs positive block_size, n_layer, n_head and n_embd, with n_embd divisible by "
                f"n_head; got block_size={self.block_size}, n_layer={self.n_layer}, n_head={self.n_head}, "
                f"n_embd={self.n_embd}."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"dropout={self.dropout} must be in [0, 1).")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.proj_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)  # heads side by side again: (B, T, C)
        return self.proj_dropout(self.proj(y))


class Block(nn.Module):
    """Pre-LayerNorm residual block: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias),  # (B, T, 4C)
            ACTIVATIONS[cfg.activation](),
            nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias),  # (B, T, C)
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Maps token ids (B, T) to next-token logits (B, T, vocab_size)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.position_embedding = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.token_embedding.weight  # weight tying: one (V, C) matrix, counted once
        self.apply(_init_weights)
        # GPT-2's scaling: each residual branch's output layer starts smaller, so that the
        # residual stream's variance does not grow with depth at initialisation.
        for block in self.blocks:
            for layer in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * cfg.n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]  # idx: (B, T)
        if self.cfg.block_size < T:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.cfg.block_size}")
        positions = torch.arange(T, device=idx.device)  # (T,)
        x = self.dropout(self.token_embedding(idx) + self.position_embedding(positions))  # (B, T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, V)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------- workload
class CharGPT(Workload):
    name = "gpt"
    metric = "loss"
    higher_is_better = False
    metric_range = (0.0, math.inf)
    models = ("gpt",)

    def __init__(self, config: WorkloadConfig, device: torch.device, data_dir: str | None = None):
        super().__init__(config, device, data_dir)
        model_keys = {f.name for f in dataclasses.fields(GPTConfig)} - {"vocab_size"}
        options = dict(self.spec.options)
        unknown = sorted(set(options) - model_keys - set(DATA_OPTIONS))
        if unknown:
            raise UserError(
                f"Unknown option(s) {', '.join(unknown)} for workload 'gpt' (size {self.size}). "
                f"Valid options: {', '.join(sorted(model_keys | set(DATA_OPTIONS)))}."
            )
        unknown = sorted(set(self.model_options) - model_keys)
        if unknown:
            raise UserError(
                f"Unknown model_options {', '.join(unknown)} for workload 'gpt'. "
                f"Valid model_options: {', '.join(sorted(model_keys))}."
            )
        self.data_options = {**DATA_OPTIONS, **{k: v for k, v in options.items() if k in DATA_OPTIONS}}
        self.model_settings = {**{k: v for k, v in options.items() if k in model_keys}, **self.model_options}
        self.block_size = GPTConfig(vocab_size=1, **self.model_settings).block_size  # validates early

    def load(self) -> None:
        splits = self._load_training()
        self._eval = {  # (W, T+1) each: the same windows at every evaluation
            split: evaluation_windows(splits[split], self.block_size, int(self.data_options["eval_windows"])).to(
                self.device)
            for split in ("validation", "test")
        }

    def load_training_data(self) -> None:
        self._load_training()  # the held-out slices of the corpus it returns are dropped here

    def _load_training(self) -> dict[str, torch.Tensor]:
        """The training slice on the device and the vocabulary (of the whole corpus: the model's
        size depends on it); returns every slice, for :meth:`load` to keep the held-out ones."""
        text, source = self._read_corpus()
        self._digest = data_sha256(text)
        corpus = encode_chars(text, source)
        self.vocab = corpus.vocab
        o = self.data_options
        splits = contiguous_split(corpus.tokens, float(o["validation_fraction"]), float(o["test_fraction"]))
        if splits["train"].numel() <= self.block_size:
            raise UserError(f"The corpus from {source} ({len(text)} characters) is too short to train on.")
        # A copy, not a view: a view's storage would still hold the held-out slices.
        self._train = splits["train"].clone().to(self.device)
        self._source = f"{source}: {len(text):,} characters, vocabulary of {corpus.vocab_size}"
        return splits

    def _read_corpus(self) -> tuple[str, str]:
        o = self.data_options
        if o["synthetic"]:
            path = cache_dir() / "smoke" / f"gpt-{o['synthetic_seed']}-{o['synthetic_chars']}.txt"
            if not path.is_file():
                write_synthetic_text(path, int(o["synthetic_seed"]), int(o["synthetic_chars"]))
            return read_text_file(path), f"generated smoke text {path}"
        if o["hf_dataset"]:
            name, split, column = str(o["hf_dataset"]), str(o["hf_split"]), str(o["text_column"])
            text = load_hf_text(name, o["hf_config"], split, column, self.data_dir)
            return text, f"Hugging Face dataset {name} (split {split}, column {column})"
        path = find_text_file(self.data_dir, str(o["text_file"]))
        return read_text_file(path), str(path)

    @property
    def num_train_examples(self) -> int:
        """Training windows of ``block_size`` tokens that fit side by side: one epoch's worth."""
        return self._train.numel() // self.block_size

    def describe_data(self) -> str:
        return self._source

    def data_digest(self) -> str:
        return self._digest

    def build_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = GPT(GPTConfig(vocab_size=len(self.vocab), **self.model_settings))
        return model.to(self.device)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return random_windows(self._train, self.block_size, batch_size, seed)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch  # (B, T) each
        logits = model(inputs)  # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        windows = self._eval[split]  # (W, T+1)
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for chunk in windows.split(int(self.data_options["eval_batch_size"])):
            inputs, targets = chunk[:, :-1], chunk[:, 1:]  # (b, T) each
            logits = model(inputs).float().flatten(0, 1)  # (b*T, V)
            total_loss += F.cross_entropy(logits, targets.flatten(), reduction="sum").double()
            correct += (logits.argmax(dim=1) == targets.flatten()).sum()
        n = windows.shape[0] * (windows.shape[1] - 1)
        loss = total_loss.item() / n
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "accuracy": correct.item() / n}


WORKLOAD = CharGPT


# ---------------------------------------------------------------------------- data finding
def find_text_file(data_dir: Path | None, name: str) -> Path:
    """The corpus file: an absolute ``name``; else ``data_dir/name`` (for tiny Shakespeare also
    nanoGPT's ``input.txt``) when a data_dir is given, and nothing else (an explicit data_dir
    without the file is refused, never replaced by another copy); without a data_dir, for tiny
    Shakespeare, the cached download, then the copy shipped in ``workloads/data/``. Tiny
    Shakespeare not found is downloaded (into data_dir, or the cache) where a network exists.
    """
    path = Path(name).expanduser()
    shakespeare = name == SHAKESPEARE_FILE
    cached = cache_dir() / "downloads" / SHAKESPEARE_FILE
    if path.is_absolute():
        candidates = [path]
    elif data_dir is not None:
        candidates = [data_dir / path, *([data_dir / "input.txt"] if shakespeare else [])]
    else:
        candidates = [cached, *filter(None, [bundled(SHAKESPEARE_FILE)])] if shakespeare else []
    found = next((p for p in candidates if p.is_file()), None)
    if found is not None:
        return found
    if not shakespeare:
        raise UserError(
            f"The text file '{name}' was not found (looked at: {', '.join(map(str, candidates)) or 'nowhere'}; "
            f"a relative name is looked for in data_dir, so pass data_dir=<its folder>). Give an existing UTF-8 "
            f"text file, or a Hugging Face dataset with the option hf_dataset."
        )
    if os.environ.get("OPTBENCH_OFFLINE") not in (None, "", "0"):
        raise missing_shakespeare_error(data_dir, "downloading is off (OPTBENCH_OFFLINE is set)")
    destination = data_dir / SHAKESPEARE_FILE if data_dir is not None else cached
    try:
        download_text(SHAKESPEARE_URL, destination)
    except Exception as error:  # no network, a proxy, a read-only folder...
        raise missing_shakespeare_error(data_dir, f"the download failed ({type(error).__name__}: {error})") from None
    return destination


def missing_shakespeare_error(data_dir: Path | None, why: str) -> UserError:
    looked = (f"'{data_dir}' (as {SHAKESPEARE_FILE} or input.txt; the cached and shipped copies are used "
              f"only when no data_dir is given)" if data_dir else f"the cache {cache_dir() / 'downloads'}")
    return UserError(
        f"The tiny Shakespeare corpus was not found: looked in {looked}, and {why}. Do one of: "
        f"(1) put the file (1,115,394 characters, "
        f"from {SHAKESPEARE_URL}) in a folder as {SHAKESPEARE_FILE} and pass data_dir=<that folder>; "
        f"(2) train on a Hugging Face dataset: workload.sizes.<size>.options.hf_dataset=<name or folder "
        f"saved with save_to_disk> (with hf_config, hf_split, text_column); (3) run once where a network exists."
    )
