"""Fashion-MNIST: 28x28 grey clothing images, 10 classes; the course slides' 784-100-10 MLP.

Data: the four IDX ``.gz`` files (as Zalando ships them) read with torchvision's
``FashionMNIST``. Looked for, in order, in ``data_dir`` (directly, in ``data_dir/fashion-mnist``
or in torchvision's ``FashionMNIST/raw`` layout), in Debian's ``/usr/share/datasets/fashion-mnist`` (package
``dataset-fashion-mnist``), then downloaded by torchvision into ``data_dir`` (or the cache)
where a network exists. The ``smoke`` size generates a tiny learnable dataset in the same IDX
format and loads it through the same path.

Splits: a fixed validation split (seed ``split_seed``, default 0) carved from the 60k training
images; the official 10k test images are the test split. Targets, budgets and how they were
measured: ``workloads/fashion_mnist.md`` and ``configs/workload/fashion_mnist.yaml``.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST

from harness.errors import UserError
from harness.paths import cache_dir, cache_write_error
from harness.workload import Workload, data_sha256
from workloads._downloads import removed_on_failure
from workloads._idx import gunzip_to, write_idx_gz
from workloads._tensors import check_labels, evaluate_classifier, shuffled_batches, split_off

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"Unknown activation '{name}'. Valid activations: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


def build_mlp(hidden: int = 100, activation: str = "relu") -> nn.Module:
    """784-100-10 with ReLU by default: 79,510 trainable parameters, the network of the course slides."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), _activation(activation), nn.Linear(hidden, 10))


def build_cnn(channels: tuple[int, int] = (16, 32), hidden: int = 128, activation: str = "relu") -> nn.Module:
    """A small conv net: two conv-activation-maxpool stages (28 -> 14 -> 7), then a 2-layer head."""
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), _activation(activation), nn.MaxPool2d(2),  # (B, c1, 14, 14)
        nn.Conv2d(c1, c2, 3, padding=1), _activation(activation), nn.MaxPool2d(2),  # (B, c2, 7, 7)
        nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), _activation(activation), nn.Linear(hidden, 10),
    )


MODELS = {"mlp": build_mlp, "cnn": build_cnn}


class FashionMNIST(Workload):
    name = "fashion_mnist"
    metric = "accuracy"
    higher_is_better = True
    metric_range = (0.0, 1.0)
    models = tuple(MODELS)
    options = {"synthetic": (bool,), "seed": (int,), "validation_examples": (int,), "split_seed": (int,)}

    def load(self) -> None:
        root = self._root()
        train = read_split(root, train=True, source=self._source)
        validation = self._load_training(*train)
        test_x, test_y = read_split(root, train=False, source=self._source)
        self._digest = data_sha256(*train, test_x, test_y)
        self._splits = {"validation": validation, "test": self._prepare(test_x, test_y)}

    def load_training_data(self) -> None:
        root = self._root()
        self._load_training(*read_split(root, train=True, source=self._source))  # validation dropped

    def _load_training(self, train_x: torch.Tensor, train_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split (the training file's images and labels, uint8) on the device; returns
        the validation split (carved from the same file), for :meth:`load` to keep."""
        options = self.spec.options
        (train_x, train_y), (val_x, val_y) = split_off(
            train_x, train_y, int(options.get("validation_examples", 10_000)), int(options.get("split_seed", 0))
        )
        # Normalise with training-split statistics; keep (N, 1, 28, 28) float32 on the device.
        self._mean, self._std = train_x.float().mean() / 255, train_x.float().std() / 255
        self._train = self._prepare(train_x, train_y)
        return self._prepare(val_x, val_y)

    def _root(self) -> Path:
        """The folder of the IDX files (generated for the smoke size); sets the data's description."""
        options = self.spec.options
        if options.get("synthetic", False):
            root, self._source = generated_root(int(options.get("seed", 0))), "generated smoke data"
        else:
            root, self._source = find_or_download(self.data_dir)
        return root

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((images.float() / 255 - self._mean) / self._std).unsqueeze(1).to(self.device), labels.long().to(
            self.device)

    @property
    def num_train_examples(self) -> int:
        return int(self._train[0].shape[0])

    def describe_data(self) -> str:
        return self._source

    def data_digest(self) -> str:
        return self._digest

    def build_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MODELS[self.model_name](**self.model_options)
        return model.to(self.device)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return shuffled_batches(*self._train, batch_size=batch_size, seed=seed)

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        return F.cross_entropy(model(images), labels)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return evaluate_classifier(model, *self._splits[split])


WORKLOAD = FashionMNIST


# ---------------------------------------------------------------------------- data finding
def _has_files(folder: Path, suffix: str) -> bool:
    return all((folder / (name + suffix)).is_file() for name in RAW_FILES)


def find_or_download(data_dir: Path | None) -> tuple[Path, str]:
    """A torchvision root holding ``FashionMNIST/raw/<uncompressed IDX files>``, and its source.

    Gzipped files found elsewhere are decompressed once into the cache (keyed by their content).
    """
    candidates = []
    if data_dir is not None:
        candidates += [data_dir, data_dir / "fashion-mnist", data_dir / "FashionMNIST" / "raw"]
    candidates.append(DEBIAN_DIR)
    for folder in candidates:
        if _has_files(folder, "") and folder.name == "raw" and folder.parent.name == "FashionMNIST":
            return folder.parent.parent, str(folder)
        if _has_files(folder, ".gz"):
            return decompressed_root(folder), str(folder)
    if os.environ.get("OPTBENCH_OFFLINE") not in (None, "", "0"):
        raise missing_data_error(data_dir, "downloading is off (OPTBENCH_OFFLINE is set)")
    root = data_dir if data_dir is not None else cache_dir() / "downloads"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        with removed_on_failure(root, ("FashionMNIST",)):  # torchvision makes FashionMNIST/raw/ first
            TorchvisionFashionMNIST(str(root), train=True, download=True)
            TorchvisionFashionMNIST(str(root), train=False, download=True)
    except Exception as error:  # no network, a proxy, a read-only folder...
        raise missing_data_error(data_dir, f"the download failed ({type(error).__name__}: {error})") from None
    finally:
        socket.setdefaulttimeout(previous)
    return root, f"downloaded into {root}"


def missing_data_error(data_dir: Path | None, why: str) -> UserError:
    looked = f"'{data_dir}' (and its fashion-mnist/ and FashionMNIST/raw/), " if data_dir else ""
    return UserError(
        f"Fashion-MNIST was not found: looked in {looked}{DEBIAN_DIR}, and {why}. Do one of: "
        f"(1) put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz "
        f"and t10k-labels-idx1-ubyte.gz in a folder and pass data_dir=<that folder>; "
        f"(2) install Debian's package: apt-get install dataset-fashion-mnist; "
        f"(3) run once on a machine with a network (torchvision downloads into data_dir)."
    )


def decompressed_root(folder: Path) -> Path:
    """Decompress the .gz files of ``folder`` into the cache in torchvision's layout.

    The cache folder is named by the .gz files' content (:func:`gz_content_key`), so a file
    replaced by another (even of the same size and mtime) is decompressed afresh, and what is
    trained on, and digested, is always what the folder holds now.
    """
    root = cache_dir() / "fashion_mnist" / gz_content_key(folder)
    raw = root / "FashionMNIST" / "raw"
    for name in RAW_FILES:
        if not (raw / name).is_file():
            try:
                gunzip_to(folder / (name + ".gz"), raw / name)
            except (OSError, EOFError) as error:
                raise UserError(
                    (isinstance(error, OSError) and cache_write_error(error))
                    or f"Could not decompress {folder / (name + '.gz')}: {error}. The file is truncated "
                       f"or corrupt; replace it with a complete copy."
                ) from None
    return root


def gz_content_key(folder: Path) -> str:
    """A hash of the four .gz files' bytes (about 30 MB for the real data: a fraction of a second)."""
    digest = hashlib.sha256()
    for name in RAW_FILES:
        path = folder / (name + ".gz")
        try:
            with open(path, "rb") as f:
                digest.update(name.encode() + hashlib.file_digest(f, "sha256").digest())
        except OSError as error:
            raise UserError(f"Could not read {path}: {error}. Make the file readable or replace it.") from None
    return digest.hexdigest()[:20]


def read_split(root: Path, train: bool, source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) in 0..9 (checked) through torchvision's reader;
    ``source`` (where the files came from) is named in errors."""
    try:
        dataset = TorchvisionFashionMNIST(str(root), train=train, download=False)
        images, labels = dataset.data, dataset.targets
    except Exception as error:
        raise UserError(
            f"Could not read Fashion-MNIST from {root}/FashionMNIST/raw: {type(error).__name__}: {error}. "
            f"The IDX files are missing, truncated or corrupt."
        ) from None
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
        raise UserError(f"Fashion-MNIST files in {root} have unexpected shapes {tuple(images.shape)}.")
    check_labels(labels, 10, f"{'train' if train else 't10k'}-labels-idx1-ubyte (from {source})")
    return images, labels


# ---------------------------------------------------------------------------- smoke data
def generated_root(seed: int, n_train: int = 1200, n_test: int = 300) -> Path:
    """A tiny learnable 10-class dataset written as IDX .gz files, in torchvision's layout.

    Each class is a fixed random blob pattern; examples are noisy, shifted copies. Written once
    per seed into the cache and read back through the same code as the real data.
    """
    folder = cache_dir() / "smoke" / f"fashion_mnist-{seed}-{n_train}-{n_test}"
    if not _has_files(folder, ".gz"):
        rng = np.random.default_rng(seed)
        # Classes share a common pattern and differ by a faint one, under heavy noise: a model
        # needs some tens of steps to separate them, as a real dataset would.
        common = rng.uniform(0.3, 0.7, size=(7, 7))
        prototypes = (common + 0.07 * rng.standard_normal((10, 7, 7))).repeat(4, axis=1).repeat(4, axis=2)
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            labels = rng.integers(0, 10, size=n)
            noise = rng.normal(0, 0.45, size=(n, 28, 28))
            images = np.clip(prototypes[labels] + noise, 0, 1)
            write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", (images * 255).astype(np.uint8))
            write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return decompressed_root(folder)
