"""CIFAR-10: 32x32 RGB photos, 10 classes; an airbench-style conv net, random crop + flip.

Model ``convnet``, after airbench's fast CIFAR-10 net: a 2x2 stem conv, then blocks of
conv3x3 → maxpool → BatchNorm → GELU → conv3x3 → BatchNorm → GELU, a global max pool and a
linear classifier. The widths live in each size's ``options.arch`` (airbench's 24/64/256/256 on
``gpu``, a downscaled net with a stride-2 stem on ``cpu``); ``model_options`` (which variants
override) set the activation, the BatchNorm scale and whether to augment.

Data: the python-pickle batches of the original release (``cifar-10-batches-py``), class
folders ``train/<class>/*`` + ``test/<class>/*`` (or a ``cifar10-jpg.tar.gz`` of them),
looked for in ``data_dir`` and then in the cache, else downloaded by torchvision where a
network exists. Class-folder images are decoded once and cached (``workloads/_images.py``).
The ``smoke`` size generates a tiny learnable dataset as PNG class folders and reads it
through the same path.

Splits: a fixed validation split (``validation_examples``, seed ``split_seed``) carved from the
50k training images; the official 10k test images are the test split. Training batches are
randomly cropped (zero padding 4) and mirrored on the device, with randomness drawn from the
workload's own generator. Targets, budgets and measurements: ``workloads/cifar10.md``.
"""

from __future__ import annotations

import inspect
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

from harness.errors import UserError
from harness.paths import cache_dir
from harness.workload import Workload, data_sha256
from workloads._bundled import bundled
from workloads._downloads import removed_on_failure
from workloads._images import (
    ImageData,
    extract_once,
    has_class_folders,
    has_pickle_batches,
    missing_pickle_batches,
    read_class_folders,
    read_pickle_batches,
    write_class_folders,
)
from workloads._tensors import evaluate_classifier, shuffled_batches, split_off, to_device

NUM_CLASSES = 10
PAD = 4  # random-crop padding, in pixels
ARCHIVE = "cifar10-jpg.tar.gz"
PICKLE_FOLDER = "cifar-10-batches-py"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


# ---------------------------------------------------------------------------- model
def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise UserError(f"Unknown activation '{name}'. Valid activations: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


def _batch_norm(channels: int, scale: bool) -> nn.BatchNorm2d:
    """BatchNorm2d; without ``scale`` only the shift is learnt (airbench fixes the scale at 1)."""
    norm = nn.BatchNorm2d(channels)
    if not scale:
        norm.weight = None  # F.batch_norm then multiplies by 1
    return norm


def conv_block(c_in: int, c_out: int, activation: str, bn_scale: bool) -> nn.Sequential:
    """conv3x3 → maxpool2 → BN → act → conv3x3 → BN → act: halves the height and width."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2),  # (B, c_out, H/2, W/2)
        _batch_norm(c_out, bn_scale), _activation(activation),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),  # (B, c_out, H/2, W/2)
        _batch_norm(c_out, bn_scale), _activation(activation),
    )


def build_convnet(
    widths: tuple[int, ...] = (64, 256, 256),
    stem_width: int = 24,
    stem_stride: int = 1,
    activation: str = "gelu",
    bn_scale: bool = True,
    stem_kernel: int = 2,
) -> nn.Module:
    """Airbench-style net: 2x2 stem conv, one conv block per width, global max pool, linear head.

    The defaults are airbench's widths (stem 24 → 31x31 maps, then 15, 7, 3); ``stem_stride=2``
    patchifies to 16x16 first, which cuts the cost of every later layer by 4 (the cpu size);
    ``stem_kernel=4, stem_stride=4`` patchifies 4x4 pixels to 8x8 maps (the mini size).
    """
    layers: list[nn.Module] = [
        nn.Conv2d(3, stem_width, stem_kernel, stride=stem_stride), _activation(activation),  # (B, stem, 31/16/8, ..)
    ]
    channels = stem_width
    for width in widths:
        layers.append(conv_block(channels, width, activation, bn_scale))
        channels = width
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(channels, NUM_CLASSES, bias=False)]  # (B, 10)
    return nn.Sequential(*layers)


MODELS = {"convnet": build_convnet}


# ---------------------------------------------------------------------------- augmentation
def crop_and_flip(padded: torch.Tensor, index: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor,
                  side: int = 32) -> torch.Tensor:
    """Crops ``side`` x ``side`` of ``padded`` images at per-example offsets, mirrored where ``flips``.

    One gather of whole pixels for the batch: ``padded`` (N, W, W, C) contiguous with
    W = side + 2 * padding, ``index`` (B,) example indices, ``offsets`` (B, 2) top-left corners
    (row, column), ``flips`` (B,) booleans. Returns (B, side, side, C) with the dtype of ``padded``.
    """
    n, width, _, channels = padded.shape
    steps = torch.arange(side, device=padded.device)
    rows = offsets[:, :1] + steps  # (B, side)
    cols = offsets[:, 1:] + torch.where(flips[:, None], side - 1 - steps, steps)  # (B, side), reversed if flipped
    pixel = (index[:, None] * width + rows)[:, :, None] * width + cols[:, None, :]  # (B, side, side) flat pixel ids
    crops = padded.view(n * width * width, channels).index_select(0, pixel.flatten())  # (B * side * side, C)
    return crops.view(-1, side, side, channels)


# ---------------------------------------------------------------------------- workload
class Cifar10(Workload):
    name = "cifar10"
    metric = "accuracy"
    higher_is_better = True
    metric_range = (0.0, 1.0)
    models = tuple(MODELS)
    options = {"synthetic": (bool,), "seed": (int,), "validation_examples": (int,), "split_seed": (int,),
               "arch": (dict,)}

    def load(self) -> None:
        data = self._read()
        self._digest = data_sha256(data.train_images, data.train_labels, data.test_images, data.test_labels,
                                   "|".join(data.classes))
        validation = self._load_training(data)
        test = (torch.from_numpy(data.test_images), torch.from_numpy(data.test_labels))
        self._splits = {
            name: (self._normalise(x.to(self.device)), y.to(self.device))
            for name, (x, y) in (("validation", validation), ("test", test))
        }

    def load_training_data(self) -> None:
        self._load_training(self._read())  # the test images are read with the training ones, then dropped

    def _read(self) -> ImageData:
        """Both splits as uint8 arrays (generated for the smoke size); sets the data's description."""
        options = self.spec.options
        if options.get("synthetic", False):
            root = generated_root(int(options.get("seed", 0)))
            data, self._source = read_class_folders(root, NUM_CLASSES), "generated smoke data"
        else:
            data, self._source = find_data(self.data_dir)
        return data

    def _load_training(self, data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split on the device; returns the validation split (uint8, on the CPU),
        carved from the training images, for :meth:`load` to keep."""
        options = self.spec.options
        images, labels = torch.from_numpy(data.train_images), torch.from_numpy(data.train_labels)
        (train_x, train_y), validation = split_off(
            images, labels, int(options.get("validation_examples", 5000)), int(options.get("split_seed", 0))
        )
        # Per-channel statistics of the training split (its first 5,000 images, a random sample
        # after the split's shuffle), in 0-255 units, shape (3,) to broadcast over (..., C).
        sample = train_x[:5000].float()
        self._mean = sample.mean(dim=(0, 1, 2)).to(self.device)
        self._inv_std = 1 / sample.std(dim=(0, 1, 2)).to(self.device)
        # Training images stay uint8 NHWC, zero-padded once for the random crops: (N, 40, 40, 3).
        self._train_padded = F.pad(train_x, (0, 0, PAD, PAD, PAD, PAD)).to(self.device)
        self._train_labels = train_y.to(self.device)
        return validation

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, C) → normalised float32 (B, C, H, W), stored channels-last.

        Normalised while still (B, H, W, C) (a broadcast over the last dimension, several times
        faster on CPU than over dim 1 of a channels-last tensor), then only the view is permuted.
        """
        return images.float().sub_(self._mean).mul_(self._inv_std).permute(0, 3, 1, 2)

    @property
    def num_train_examples(self) -> int:
        return int(self._train_labels.shape[0])

    def describe_data(self) -> str:
        return self._source

    def data_digest(self) -> str:
        return self._digest

    def build_model(self, seed: int) -> nn.Module:
        """The size's ``options.arch`` with ``model_options`` (base + variant) over it."""
        arch = {**self.spec.options.get("arch", {}), **self.model_options}
        arch.pop("augment", None)  # a data option, not the network's
        valid = inspect.signature(MODELS[self.model_name]).parameters
        unknown = sorted(set(arch) - set(valid))
        if unknown:
            raise UserError(
                f"Unknown option(s) {', '.join(unknown)} for model '{self.model_name}' of workload 'cifar10'. "
                f"Valid options: {', '.join(valid)}, augment."
            )
        if "widths" in arch:
            arch["widths"] = tuple(arch["widths"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = MODELS[self.model_name](**arch)
        return model.to(self.device, memory_format=torch.channels_last)

    def train_batches(self, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches in ``shuffled_batches``' order for ``seed``, each randomly cropped and mirrored.

        The crop offsets and flips come from a second CPU generator seeded from ``seed``, so the
        augmented stream is the same for every submission and every device.
        """
        augment = bool(self.model_options.get("augment", True))
        n = self.num_train_examples
        generator = torch.Generator().manual_seed(seed + 7_919)  # the augmentation stream
        indices = torch.arange(n, device=self.device)
        for index, labels in shuffled_batches(indices, self._train_labels, batch_size, seed):
            if augment:
                offsets = torch.randint(0, 2 * PAD + 1, (batch_size, 2), generator=generator)
                flips = torch.randint(0, 2, (batch_size,), generator=generator).bool()
            else:
                offsets = torch.full((batch_size, 2), PAD)
                flips = torch.zeros(batch_size, dtype=torch.bool)
            crops = crop_and_flip(self._train_padded, index, to_device(offsets, self.device),
                                  to_device(flips, self.device))
            yield self._normalise(crops), labels

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, labels = batch
        logits = model(images)  # (B, 10); under bfloat16 autocast when the size's precision is bf16
        return F.cross_entropy(logits.float(), labels)

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return evaluate_classifier(model, *self._splits[split], batch_size=1000)


WORKLOAD = Cifar10


# ---------------------------------------------------------------------------- data finding
def find_data(data_dir: Path | None) -> tuple[ImageData, str]:
    """The dataset and a line saying where it came from.

    Looked for in ``data_dir`` alone when one is given (an empty or incomplete copy there is
    refused, never replaced by another copy), else in the cache's ``downloads`` folder and the
    copy shipped in ``workloads/data/``: pickle batches (the folder itself or its
    ``cifar-10-batches-py``), class folders, a ``cifar10-jpg.tar.gz`` of class folders; else
    torchvision downloads the pickle batches (into ``data_dir``, or the cache).
    """
    downloads = cache_dir() / "downloads"
    shipped = bundled(ARCHIVE)
    folders = [data_dir] if data_dir is not None else [downloads, *([shipped.parent] if shipped else [])]
    for folder in folders:
        found = read_folder(folder)
        if found is not None:
            return found
    if data_dir is not None:
        refuse_incomplete(data_dir)
    if os.environ.get("OPTBENCH_OFFLINE") not in (None, "", "0"):
        raise missing_data_error(data_dir, "downloading is off (OPTBENCH_OFFLINE is set)")
    root = data_dir if data_dir is not None else downloads
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        with removed_on_failure(root, (PICKLE_FOLDER, "cifar-10-python.tar.gz")):  # what torchvision writes
            TorchvisionCIFAR10(str(root), train=True, download=True)
    except Exception as error:  # no network, a proxy, a read-only folder...
        raise missing_data_error(data_dir, f"the download failed ({type(error).__name__}: {error})") from None
    finally:
        socket.setdefaulttimeout(previous)
    return read_pickle_batches(root / PICKLE_FOLDER, NUM_CLASSES), f"downloaded into {root / PICKLE_FOLDER}"


def read_folder(folder: Path) -> tuple[ImageData, str] | None:
    """The dataset in ``folder`` in any of the three layouts, or None when it holds none whole."""
    for batches in (folder, folder / PICKLE_FOLDER):
        if has_pickle_batches(batches):
            return read_pickle_batches(batches, NUM_CLASSES), str(batches)
    if has_class_folders(folder):
        return read_class_folders(folder, NUM_CLASSES), f"class folders in {folder}"
    if (folder / ARCHIVE).is_file():
        return read_class_folders(extract_once(folder / ARCHIVE), NUM_CLASSES), str(folder / ARCHIVE)
    return None


def refuse_incomplete(data_dir: Path) -> None:
    """A UserError naming what is missing when ``data_dir`` holds part of a copy (some pickle
    batches, or train/ without test/ or the reverse), rather than downloading over it."""
    for batches in (data_dir, data_dir / PICKLE_FOLDER):
        missing = missing_pickle_batches(batches)
        if missing is not None:
            raise UserError(
                f"{batches} holds part of CIFAR-10's pickle batches: {', '.join(missing)} missing. "
                f"A {PICKLE_FOLDER} folder holds data_batch_1 to data_batch_5 and test_batch (and "
                f"batches.meta); copy the missing files there, or point data_dir at a complete copy."
            )
    halves = [split for split in ("train", "test") if (data_dir / split).is_dir()]
    if len(halves) == 1:
        absent = "test" if halves == ["train"] else "train"
        raise UserError(
            f"{data_dir} holds {halves[0]}/ but {absent}/ is missing. CIFAR-10 class folders are "
            f"train/<class>/* and test/<class>/* (the same 10 classes in both); add {absent}/, or "
            f"point data_dir at a complete copy."
        )


def missing_data_error(data_dir: Path | None, why: str) -> UserError:
    looked = (f"'{data_dir}' (the shipped copy in workloads/data/ is used only when no data_dir is given)"
              if data_dir else f"{cache_dir() / 'downloads'} and workloads/data/")
    return UserError(
        f"CIFAR-10 was not found: looked in {looked}, and {why}. Do one of: "
        f"(1) pass data_dir=<folder> holding class folders train/<class>/*.jpg and test/<class>/*.jpg "
        f"(10 classes, 32x32 images; or a {ARCHIVE} archive of those folders); "
        f"(2) pass data_dir=<folder> holding torchvision's {PICKLE_FOLDER} folder (the extracted "
        f"cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html); "
        f"(3) run once on a machine with a network (torchvision downloads into data_dir or the cache)."
    )


# ---------------------------------------------------------------------------- smoke data
def generated_root(seed: int, per_class_train: int = 48, per_class_test: int = 12) -> Path:
    """A tiny learnable 10-class dataset written as PNG class folders in the cache, once per seed.

    Each class is a fixed coarse colour pattern (4x4 cells of 8 pixels) shared in part with the
    others; examples are noisy copies, so a small net needs some tens of steps to separate them.
    """
    root = cache_dir() / "smoke" / f"cifar10-{seed}-{per_class_train}-{per_class_test}"
    if has_class_folders(root):
        return root
    rng = np.random.default_rng(seed)
    common = rng.uniform(0.3, 0.7, size=(4, 4, 3))
    prototypes = (common + 0.12 * rng.standard_normal((NUM_CLASSES, 4, 4, 3))).repeat(8, axis=1).repeat(8, axis=2)
    staging = root.with_name(root.name + f".tmp{os.getpid()}")
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        labels = np.repeat(np.arange(NUM_CLASSES), per_class)
        noise = rng.normal(0, 0.25, size=(labels.size, 32, 32, 3))
        images = (np.clip(prototypes[labels] + noise, 0, 1) * 255).astype(np.uint8)
        write_class_folders(staging, split, images, labels, CLASSES)
    try:
        os.replace(staging, root)
    except OSError:  # another process wrote it first
        shutil.rmtree(staging, ignore_errors=True)
        if not has_class_folders(root):
            raise
    return root
