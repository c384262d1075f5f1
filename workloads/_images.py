"""CIFAR-style image datasets on disk → uint8 arrays, decoded once and cached.

Two formats are read: class folders (``train/<class>/*``, ``test/<class>/*`` of JPEG, PNG, BMP
or WebP files, as torchvision's ImageFolder reads them) and the python-pickle batches of the original
CIFAR-10 release (``cifar-10-batches-py``). Decoding 60k small JPEGs costs seconds, so the
decoded arrays are cached as a folder of ``.npy`` files (about 180 MB for CIFAR-10, loaded in
well under a second) beside the images when that folder is writable, else in the cache; its
name carries a hash of every file's path, size and mtime (an archive's extraction: of its
content), so a changed source is decoded afresh.
Every problem with the files is a :class:`UserError` that names the file or folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import OptbenchWarning, UserError
from harness.paths import cache_dir, cache_write_error
from workloads._tensors import check_labels

SIDE = 32  # CIFAR images are 32x32 RGB
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # ImageFolder's common image types
SPLITS = ("train", "test")
PICKLE_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CACHE_PREFIX = "cifar10-uint8-"


@dataclass(frozen=True)
class ImageData:
    """Both splits of a dataset as uint8 HWC arrays with int64 labels (indices into ``classes``)."""

    train_images: np.ndarray  # (N, 32, 32, 3) uint8
    train_labels: np.ndarray  # (N,) int64
    test_images: np.ndarray  # (M, 32, 32, 3) uint8
    test_labels: np.ndarray  # (M,) int64
    classes: tuple[str, ...]


# ---------------------------------------------------------------------------- class folders
def has_class_folders(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def read_class_folders(root: Path, num_classes: int) -> ImageData:
    """The images under ``root/{train,test}/<class>/``, from the decoded cache when it is current."""
    files, key = list_class_folders(root, num_classes)
    for cache in _cache_candidates(root, key):
        data = _load_cache(cache)
        if data is not None:
            return data
    data = _decode_all(files)
    _save_cache(data, root, key)
    return data


def list_class_folders(root: Path, num_classes: int) -> tuple[dict[str, list[list[Path]]], str]:
    """Per split, per class (sorted class names, as ImageFolder numbers them): the image files.

    Also returns a hash of every image's relative path, size and mtime: the cache key, which
    any added, removed or rewritten file changes.
    """
    names = {split: sorted(p.name for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith("."))
             for split in SPLITS}
    for split, other in (("train", "test"), ("test", "train")):
        missing = sorted(set(names[other]) - set(names[split]))
        if missing:
            raise UserError(
                f"Class folder '{missing[0]}' is in {root / other} but missing from {root / split}"
                f"{f' (also missing: {missing[1:]})' if missing[1:] else ''}. train/ and test/ must hold "
                f"the same {num_classes} class folders."
            )
    if len(names["train"]) != num_classes:
        raise UserError(
            f"{root / 'train'} holds {len(names['train'])} class folders ({', '.join(names['train']) or 'none'}); "
            f"this dataset has {num_classes} classes, one folder each, with the same names under test/."
        )
    digest = hashlib.sha256()
    files: dict[str, list[list[Path]]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        for name in names[split]:
            folder = root / split / name
            with os.scandir(folder) as entries:
                images = sorted((e for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES),
                                key=lambda e: e.name)
            if not images:
                raise UserError(f"Class folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)} files).")
            for entry in images:
                stat = entry.stat()
                digest.update(f"{split}/{name}/{entry.name}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            files[split].append([Path(e.path) for e in images])
    return files, digest.hexdigest()[:20]


def decode_file(path: Path) -> np.ndarray:
    """One image file as a (32, 32, 3) uint8 RGB array; a clear error when unreadable or of the wrong size.

    Decoded with Pillow, as torchvision's ImageFolder does (torchvision.io's decoders are
    deprecated); a truncated file raises instead of being padded with grey.
    """
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except FileNotFoundError:  # listed a moment ago: removed meanwhile (the cache's extraction cleared?)
        raise UserError(f"Image {path} vanished while the images were read (was the folder or optbench's cache "
                        f"{cache_dir()} removed meanwhile?). Run the same command again: a damaged extraction in "
                        f"the cache is made anew.") from None
    except (OSError, SyntaxError, ValueError) as error:  # SyntaxError: Pillow's "broken PNG file"
        raise UserError(f"Could not read image {path}: {error}. The file is truncated or corrupt; "
                        f"replace it or remove it.") from None
    if pixels.shape != (SIDE, SIDE, 3):
        raise UserError(f"Image {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels; CIFAR images are "
                        f"{SIDE}x{SIDE}. Resize the dataset or point data_dir at the original images.")
    return pixels


def _decode_all(files: dict[str, list[list[Path]]]) -> ImageData:
    arrays = {}
    for split in SPLITS:
        n = sum(len(paths) for paths in files[split])
        images = np.empty((n, SIDE, SIDE, 3), dtype=np.uint8)  # (N, H, W, C)
        labels = np.empty(n, dtype=np.int64)
        i = 0
        for label, paths in enumerate(files[split]):
            for path in paths:
                images[i] = decode_file(path)
                labels[i] = label
                i += 1
        arrays[split] = (images, labels)
    classes = tuple(paths[0].parent.name for paths in files["train"])
    return ImageData(*arrays["train"], *arrays["test"], classes=classes)


def write_class_folders(root: Path, split: str, images: np.ndarray, labels: np.ndarray,
                        classes: tuple[str, ...]) -> None:
    """Write (N, 32, 32, 3) uint8 images as ``root/<split>/<class>/NNNN.png`` (generated datasets, tests)."""
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / split / classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{i:04d}.png")


# ---------------------------------------------------------------------------- the decoded cache
CACHE_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels", "classes")


def _cache_candidates(root: Path, key: str) -> list[Path]:
    """Beside the images first, then the optbench cache (for read-only data folders)."""
    return [root / f"{CACHE_PREFIX}{key}", cache_dir() / "cifar10" / "decoded" / f"{CACHE_PREFIX}{key}"]


def _load_cache(folder: Path) -> ImageData | None:
    """The cached arrays (a folder of .npy files), or None when absent or unreadable (then rewritten)."""
    if not folder.is_dir():
        return None
    try:
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False) for name in CACHE_ARRAYS}
    except (OSError, ValueError, EOFError):
        return None
    return ImageData(**{**arrays, "classes": tuple(str(c) for c in arrays["classes"])})


def _save_cache(data: ImageData, root: Path, key: str) -> None:
    """Write the cache atomically (a folder renamed into place) beside the images, else in the cache."""
    arrays = {name: getattr(data, name) for name in CACHE_ARRAYS[:-1]}
    arrays["classes"] = np.array(data.classes)
    for target in _cache_candidates(root, key):
        staging: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
            for name, array in arrays.items():
                np.save(staging / f"{name}.npy", array)
            staging.chmod(0o755)  # mkdtemp makes it private; the data folder's users may share it
            if target.exists():  # an unreadable earlier cache
                shutil.rmtree(target)
            os.replace(staging, target)
        except OSError:  # a read-only data folder: try the next place
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            continue
        if target.parent == root:  # one source per folder: older caches of it are stale
            for old in root.glob(f"{CACHE_PREFIX}*"):
                if old != target and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
        return


# ---------------------------------------------------------------------------- archives
def extract_once(archive: Path) -> Path:
    """Extract a ``.tar.gz`` of class folders into the cache once; return the folder holding train/ and test/.

    The extraction is named by the archive's content (sha256: 0.015 s for the shipped 20 MB), not its
    path, size and mtime: another archive of the same size copied over it with its mtime kept
    (``cp -p``, rsync) would have been trained on as the old one, under the old data digest."""
    with open(archive, "rb") as f:
        key = hashlib.file_digest(f, "sha256").hexdigest()[:16]
    target = cache_dir() / "cifar10" / f"extracted-{key}"
    if target.is_dir() and not _intact(target):  # a file of it removed or added since: extracted anew
        warnings.warn(OptbenchWarning(f"the extraction of {archive} in the cache ({target}) was changed since it "
                                      f"was made (files removed or added); extracting it again"), stacklevel=2)
        shutil.rmtree(target, ignore_errors=True)
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extracting-"))
        try:
            _extract(archive, tmp)
            (tmp / EXTRACTED).write_text(json.dumps({"files": _file_count(tmp)}))
        except BaseException:  # a corrupt archive, a full disk, Ctrl-C: no partial copy (up to 122 MB) is left
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.replace(tmp, target)
        except OSError:  # another process extracted it first
            shutil.rmtree(tmp, ignore_errors=True)
    if has_class_folders(target):
        return target
    inner = [p for p in target.iterdir() if p.is_dir() and has_class_folders(p)]
    if len(inner) != 1:
        raise UserError(f"The archive {archive} holds no train/ and test/ class folders (extracted into {target}).")
    return inner[0]


EXTRACTED = ".optbench-extracted.json"  # written last into an extraction: how many files it made


def _file_count(folder: Path) -> int:
    """The files the archive put under ``folder``: not the marker :data:`EXTRACTED`, nor what is
    written beside the images later (the decoded arrays' cache, its staging folders)."""
    count = 0
    for _, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if not f.startswith((".", CACHE_PREFIX))]
        count += len([f for f in files if f != EXTRACTED])
    return count


def _intact(folder: Path) -> bool:
    """Whether an extraction holds what it held when it was made (its marker's file count; one
    without a marker was made before markers, or was not finished: not trusted). Counting the
    files of CIFAR-10's 60,000 images takes ~0.1 s; a removed image would otherwise be a dataset
    one example short, trained on under another data digest."""
    try:
        made = json.loads((folder / EXTRACTED).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return made == _file_count(folder)


def _extract(archive: Path, folder: Path) -> None:
    """Extract ``archive`` into ``folder``; a damaged archive is a UserError naming it."""
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(folder, filter="data")
            else:  # Pythons without extraction filters
                tar.extractall(folder)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise UserError((isinstance(error, OSError) and cache_write_error(error))
                        or f"Could not extract {archive}: {error}. The archive is truncated or corrupt; "
                           f"replace it with a complete copy.") from None


# ---------------------------------------------------------------------------- pickle batches
def has_pickle_batches(folder: Path) -> bool:
    return (folder / "data_batch_1").is_file() and (folder / "test_batch").is_file()


def missing_pickle_batches(folder: Path) -> list[str] | None:
    """The batch files absent from ``folder`` when it holds some but not all; None when it holds none or all."""
    names = [*PICKLE_BATCHES["train"], *PICKLE_BATCHES["test"]]
    missing = [name for name in names if not (folder / name).is_file()]
    return missing if 0 < len(missing) < len(names) else None


def read_pickle_batches(folder: Path, num_classes: int = 10) -> ImageData:
    """The CIFAR-10 python batches (``data``: (N, 3072) uint8 in CHW order, ``labels`` in
    ``0..num_classes-1``, checked) in ``folder``.

    Read here rather than through torchvision's ``CIFAR10`` class, which refuses any file
    whose MD5 differs from the official release (so a test could not use a tiny copy).
    """
    arrays = {}
    for split, names in PICKLE_BATCHES.items():
        images, labels = [], []
        for name in names:
            entry = _unpickle(folder / name)
            data, batch_labels = entry.get("data"), entry.get("labels")
            if data is None or batch_labels is None:
                raise UserError(f"{folder / name} has no 'data'/'labels' entries; it is not a CIFAR-10 batch file.")
            data = np.asarray(data, dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE or len(batch_labels) != data.shape[0]:
                raise UserError(f"{folder / name} holds data of shape {data.shape} with {len(batch_labels)} labels; "
                                f"CIFAR-10 batches hold (N, 3072) 32x32 RGB images and N labels.")
            images.append(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))  # (N, H, W, C)
            labels.append(_labels(batch_labels, num_classes, folder / name))
        arrays[split] = (np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))
    meta = folder / "batches.meta"
    names = _unpickle(meta).get("label_names") if meta.is_file() else None
    classes = tuple(str(n) for n in names) if names else tuple(str(i) for i in range(10))
    return ImageData(*arrays["train"], *arrays["test"], classes=classes)


def _labels(values: object, num_classes: int, path: Path) -> np.ndarray:
    """A batch's labels as int64, refused (naming ``path``) unless whole numbers in range."""
    try:
        labels = np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{path} holds labels that are not whole numbers; it is not a CIFAR-10 batch file.") from None
    check_labels(labels, num_classes, str(path))
    return labels


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} is missing; a cifar-10-batches-py folder holds data_batch_1..5 and test_batch.")
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
    except OSError as error:
        raise UserError(f"Could not read {path}: {error}. Make the file readable or replace it.") from None
    except Exception as error:  # any unpickling failure (a damaged length field: OverflowError, MemoryError)
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise UserError(f"Could not read {path}: {detail}. The file is damaged (truncated or corrupt); "
                        f"replace it with a complete copy.") from None
    if not isinstance(entry, dict):
        raise UserError(f"{path} is not a CIFAR-10 batch file (it holds a {type(entry).__name__}).")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
