"""Fashion-MNIST: the slides' MLP, real IDX loading, clear errors for bad data."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import workloads.fashion_mnist as fm
from harness.config.compose import compose_config
from harness.errors import UserError
from workloads._idx import write_idx_gz

CPU = torch.device("cpu")


def make_idx_folder(folder: Path, n_train: int = 300, n_test: int = 50) -> Path:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n, dtype=np.uint8))
    return folder


def workload(data_dir: Path | None, validation: int = 100) -> fm.FashionMNIST:
    cfg = compose_config("trial", [f"workload.sizes.cpu.options.validation_examples={validation}"]).workload
    return fm.FashionMNIST(cfg, CPU, str(data_dir) if data_dir else None)


@pytest.fixture
def no_debian(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "not-installed")


def test_mlp_has_the_slides_parameter_count() -> None:
    model = fm.build_mlp()
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 79_510


def test_reads_gz_files_from_data_dir_with_fixed_validation_split(tmp_path: Path, no_debian) -> None:
    folder = make_idx_folder(tmp_path / "fm")
    a, b = workload(folder), workload(folder)
    a.load()
    b.load()
    assert a.num_train_examples == 200 and a.describe_data() == str(folder)
    assert torch.equal(a._splits["validation"][0], b._splits["validation"][0])
    assert a._splits["test"][0].shape == (50, 1, 28, 28)


@pytest.mark.parametrize("validation", [300, 0, -5])
def test_a_validation_split_the_training_file_cannot_give_names_the_setting(
        tmp_path: Path, no_debian, validation: int) -> None:
    """Before: ValueError('cannot hold out 300 of 300 examples'), a traceback and exit 1."""
    with pytest.raises(UserError, match=rf"validation_examples={validation}: .* training file's 300 examples.*"
                                        r"options.validation_examples between 1 and 299"):
        workload(make_idx_folder(tmp_path / "fm"), validation=validation).load()


def test_reads_torchvision_layout(tmp_path: Path, no_debian) -> None:
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    for gz in make_idx_folder(tmp_path / "gz").iterdir():
        raw.mkdir(parents=True, exist_ok=True)
        with gzip.open(gz) as src, open(raw / gz.name.removesuffix(".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    w = workload(tmp_path / "root")
    w.load()
    assert w.num_train_examples == 200 and w.describe_data() == str(raw)


def test_missing_data_names_all_three_options(tmp_path: Path, no_debian) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as error:
        workload(tmp_path / "empty").load()
    message = str(error.value)
    assert "data_dir=" in message and "apt-get install dataset-fashion-mnist" in message
    assert "network" in message


def test_nonexistent_data_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        workload(tmp_path / "typo")


def test_truncated_file_is_a_clear_error(tmp_path: Path, no_debian) -> None:
    folder = make_idx_folder(tmp_path / "fm")
    images = folder / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        workload(folder).load()


@pytest.mark.realdata
def test_real_files_load(real_data: Path, shipped_calibration_digests) -> None:
    w = workload(real_data, validation=10_000)
    w.load()
    assert w.num_train_examples == 50_000
    assert w._splits["validation"][0].shape[0] == 10_000 and w._splits["test"][0].shape[0] == 10_000
    assert shipped_calibration_digests("fashion_mnist") == {w.data_digest()}  # the examples its targets are for


def test_a_replaced_gz_of_the_same_size_and_mtime_is_decompressed_afresh(tmp_path: Path, no_debian) -> None:
    """The unpacked cache follows the .gz files' content: relabelled labels of the same compressed
    size (and the same mtime, as a copy that keeps it) are trained on, and change the digest."""
    folder = make_idx_folder(tmp_path / "fm")
    labels = folder / "train-labels-idx1-ubyte.gz"
    header = b"\x00\x00\x08\x01" + (300).to_bytes(4, "big")
    rng = np.random.default_rng(1)
    old, new = rng.integers(0, 10, 300, dtype=np.uint8), rng.integers(0, 10, 300, dtype=np.uint8)
    stored = {"compresslevel": 0, "mtime": 0}  # uncompressed blocks: the size depends on the length only
    labels.write_bytes(gzip.compress(header + old.tobytes(), **stored))
    before = workload(folder)
    before.load()
    stat = labels.stat()
    labels.write_bytes(gzip.compress(header + new.tobytes(), **stored))
    os.utime(labels, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert labels.stat().st_size == stat.st_size
    after = workload(folder)
    after.load()
    assert after.data_digest() != before.data_digest()
    trained = torch.cat([after._train[1], after._splits["validation"][1]]).sort().values
    assert torch.equal(trained, torch.from_numpy(new).long().sort().values)


@pytest.mark.parametrize("prefix", ["train", "t10k"])
def test_a_label_outside_the_classes_names_its_file(tmp_path: Path, no_debian, prefix: str) -> None:
    folder = make_idx_folder(tmp_path / "fm")
    labels = np.random.default_rng(2).integers(0, 10, 300 if prefix == "train" else 50, dtype=np.uint8)
    labels[7] = 12
    write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    with pytest.raises(UserError, match=rf"{prefix}-labels-idx1-ubyte.* holds label 12.*0\.\.9"):
        workload(folder).load()


def test_a_failed_download_creates_no_folders_in_data_dir(
        tmp_path: Path, no_debian, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTBENCH_OFFLINE", "0")

    def failing_download(root: str, train: bool, download: bool) -> None:  # as torchvision: raw/ first, then fails
        (Path(root) / "FashionMNIST" / "raw").mkdir(parents=True, exist_ok=True)
        raise OSError("Name or service not known")

    monkeypatch.setattr(fm, "TorchvisionFashionMNIST", failing_download)
    (tmp_path / "data").mkdir()
    with pytest.raises(UserError, match="the download failed"):
        workload(tmp_path / "data").load()
    assert list((tmp_path / "data").iterdir()) == []
