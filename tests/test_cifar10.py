"""CIFAR-10: class-folder and pickle loading, the decoded cache, augmentation, clear errors."""

from __future__ import annotations

import hashlib
import itertools
import os
import pickle
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import workloads._images as images_module
import workloads.cifar10 as c10
from harness.config.compose import compose_config
from harness.core.trial import run_trial
from harness.errors import UserError
from workloads._images import write_class_folders
from workloads._tensors import shuffled_batches

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parent.parent
PER_CLASS_TRAIN, PER_CLASS_TEST = 6, 2


def _real_archive() -> Path | None:
    """The real CIFAR-10 archive for integration tests: $OPTBENCH_TEST_DATA or ../shared/data."""
    base = Path(os.environ.get("OPTBENCH_TEST_DATA", REPO.parent / "shared" / "data"))
    return base if (base / c10.ARCHIVE).is_file() else None


def random_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n // 10)
    return rng.integers(0, 256, (labels.size, 32, 32, 3), dtype=np.uint8), labels


def make_class_folders(root: Path) -> Path:
    """10 classes x 6 train / 2 test random 32x32 PNGs in ImageFolder's layout."""
    for split, per_class, seed in (("train", PER_CLASS_TRAIN, 0), ("test", PER_CLASS_TEST, 1)):
        write_class_folders(root, split, *random_images(10 * per_class, seed), c10.CLASSES)
    return root


def workload(data_dir: Path | None, *overrides: str, validation: int = 10) -> c10.Cifar10:
    cfg = compose_config(
        "trial", ["workload=cifar10", f"workload.sizes.cpu.options.validation_examples={validation}", *overrides]
    ).workload
    return c10.Cifar10(cfg, CPU, str(data_dir) if data_dir else None)


def loaded(data_dir: Path, *overrides: str) -> c10.Cifar10:
    w = workload(data_dir, *overrides)
    w.load()
    return w


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    return make_class_folders(tmp_path / "cifar")


# ------------------------------------------------------------------------ loading and caching
def test_class_folders_load_with_a_fixed_validation_split(folders: Path) -> None:
    a, b = loaded(folders), loaded(folders)
    assert a.num_train_examples == 10 * PER_CLASS_TRAIN - 10
    assert a._splits["test"][0].shape == (10 * PER_CLASS_TEST, 3, 32, 32)
    assert a._train_padded.shape == (a.num_train_examples, 40, 40, 3) and a._train_padded.dtype == torch.uint8
    assert torch.equal(a._splits["validation"][0], b._splits["validation"][0])
    assert sorted(a._train_labels.tolist() + a._splits["validation"][1].tolist()) == sorted(
        np.repeat(np.arange(10), PER_CLASS_TRAIN).tolist()
    )


def test_second_load_reads_the_cache_not_the_images(folders: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = images_module.read_class_folders(folders, 10)
    assert len(list(folders.glob(f"{images_module.CACHE_PREFIX}*"))) == 1  # beside the images

    def no_decoding(path: Path) -> np.ndarray:
        raise AssertionError(f"decoded {path} although a current cache exists")

    monkeypatch.setattr(images_module, "decode_file", no_decoding)
    second = images_module.read_class_folders(folders, 10)
    assert np.array_equal(first.train_images, second.train_images) and first.classes == second.classes
    assert np.array_equal(first.test_labels, second.test_labels)


def test_a_changed_image_invalidates_the_cache(folders: Path) -> None:
    before = images_module.read_class_folders(folders, 10)
    image = sorted((folders / "train" / "airplane").iterdir())[0]
    write_class_folders(folders / "changed", "train", np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1), c10.CLASSES)
    os.replace(folders / "changed" / "train" / "airplane" / "0000.png", image)
    after = images_module.read_class_folders(folders, 10)
    assert not np.array_equal(before.train_images, after.train_images) and after.train_images[0].max() == 0
    assert len(list(folders.glob(f"{images_module.CACHE_PREFIX}*"))) == 1  # the stale cache is gone


def test_an_unreadable_cache_is_decoded_again(folders: Path) -> None:
    first = images_module.read_class_folders(folders, 10)
    (cache,) = folders.glob(f"{images_module.CACHE_PREFIX}*")
    (cache / "train_images.npy").write_bytes(b"\x93NUMPY truncated")
    second = images_module.read_class_folders(folders, 10)
    assert np.array_equal(first.train_images, second.train_images)
    assert np.load(cache / "train_images.npy").shape == first.train_images.shape  # rewritten in place


def test_cache_goes_to_the_cache_dir_when_the_data_folder_is_read_only(
    folders: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save = np.save

    def refuse_beside_data(path: Path, array: np.ndarray) -> None:
        if Path(path).parent.parent == folders:
            raise PermissionError("read-only")
        save(path, array)

    monkeypatch.setattr(np, "save", refuse_beside_data)
    images_module.read_class_folders(folders, 10)
    assert not list(folders.glob(f"{images_module.CACHE_PREFIX}*"))
    assert list((Path(os.environ["OPTBENCH_CACHE"]) / "cifar10" / "decoded").glob(f"{images_module.CACHE_PREFIX}*"))


def archived(tmp_path: Path) -> Path:
    """``tmp_path/data/`` holding the generated class folders as the archive cifar10 reads."""
    source = make_class_folders(tmp_path / "src")
    (tmp_path / "data").mkdir()
    with tarfile.open(tmp_path / "data" / c10.ARCHIVE, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(source / split, arcname=split)
    return tmp_path / "data"


def test_archive_of_class_folders_is_extracted_once(tmp_path: Path) -> None:
    archived(tmp_path)
    w = loaded(tmp_path / "data")
    assert w.num_train_examples == 10 * PER_CLASS_TRAIN - 10 and w.describe_data().endswith(c10.ARCHIVE)
    assert len(list((Path(os.environ["OPTBENCH_CACHE"]) / "cifar10").glob("extracted-*"))) >= 1


def test_an_extraction_changed_in_the_cache_is_made_anew_not_trained_on(tmp_path: Path) -> None:
    """A file removed from the cache's extraction was trained on as a dataset one example short
    (another data digest, "calibrate on these data"); a full cache was blamed on the archive."""
    data = archived(tmp_path)
    whole = loaded(data)
    key = hashlib.sha256((data / c10.ARCHIVE).read_bytes()).hexdigest()[:16]
    extraction = Path(os.environ["OPTBENCH_CACHE"]) / "cifar10" / f"extracted-{key}"
    assert list(extraction.glob(f"{images_module.CACHE_PREFIX}*"))  # the decoded arrays, written beside the images
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # they are no change to the extraction: loaded again, not extracted again
        loaded(data)
    next((extraction / "train").rglob("*.png")).unlink()
    with pytest.warns(UserWarning, match="was changed since it was made"):
        again = loaded(tmp_path / "data")
    assert again.num_train_examples == whole.num_train_examples and again.data_digest() == whole.data_digest()
    shutil.rmtree(extraction)
    full = OSError(28, "No space left on device", str(extraction / "train"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tarfile, "open", lambda *a, **k: (_ for _ in ()).throw(full))
        with pytest.raises(UserError, match=r"Cannot use optbench.s data cache .* OPTBENCH_CACHE") as refused:
            loaded(tmp_path / "data")
    assert "truncated or corrupt" not in str(refused.value)


def test_another_archive_of_the_same_size_and_mtime_is_extracted_afresh(tmp_path: Path) -> None:
    """The extraction was keyed by the archive's path, size and mtime: two classes' images swapped in
    an archive of the same size, its mtime kept (cp -p), trained on the old labels and digest."""
    source = make_class_folders(tmp_path / "src")
    archive = tmp_path / "data" / c10.ARCHIVE
    archive.parent.mkdir()

    def pack() -> None:  # uncompressed (tarfile reads it all the same): the size is the files' alone
        with tarfile.open(archive, "w") as tar:
            for split in ("train", "test"):
                tar.add(source / split, arcname=split)

    pack()
    before = loaded(tmp_path / "data")
    stat = archive.stat()
    first, second = (source / "train" / name for name in c10.CLASSES[:2])
    first.rename(tmp_path / "swap")
    second.rename(first)
    (tmp_path / "swap").rename(second)
    pack()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert archive.stat().st_size == stat.st_size
    after = loaded(tmp_path / "data")
    assert after.data_digest() != before.data_digest()


def test_a_truncated_archive_leaves_no_partial_extraction_in_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "cache"))
    source = make_class_folders(tmp_path / "src")
    archive = tmp_path / "data" / c10.ARCHIVE
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(source / split, arcname=split)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    with pytest.raises(UserError, match=r"Could not extract .*truncated or corrupt"):
        loaded(tmp_path / "data")
    assert list((tmp_path / "cache" / "cifar10").iterdir()) == []


def test_a_failed_download_leaves_nothing_in_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTBENCH_OFFLINE", "0")

    def failing_download(root: str, train: bool, download: bool) -> None:  # as torchvision: folders, then fails
        (Path(root) / c10.PICKLE_FOLDER).mkdir(parents=True)
        (Path(root) / "cifar-10-python.tar.gz").write_bytes(b"partial")
        raise OSError("Name or service not known")

    monkeypatch.setattr(c10, "TorchvisionCIFAR10", failing_download)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.txt").write_text("the user's")
    with pytest.raises(UserError, match="the download failed"):
        loaded(tmp_path / "data")
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["mine.txt"]


def write_pickle_batches(folder: Path, per_batch: int = 10) -> dict[str, np.ndarray]:
    """A tiny cifar-10-batches-py: the release's format (dicts of (N, 3072) CHW uint8 rows + labels)."""
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate([*images_module.PICKLE_BATCHES["train"], "test_batch"]):
        hwc, labels = random_images(per_batch, seed=10 + i)
        data = hwc.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # (N, 3*32*32): red plane, green, blue
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels.tolist()}, f)
        written[name] = hwc
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(c10.CLASSES), "num_vis": 3072}, f)
    return written


def test_torchvision_pickle_format(tmp_path: Path) -> None:
    written = write_pickle_batches(tmp_path / "data" / c10.PICKLE_FOLDER)
    data = images_module.read_pickle_batches(tmp_path / "data" / c10.PICKLE_FOLDER)
    assert data.train_images.shape == (50, 32, 32, 3) and data.test_images.shape == (10, 32, 32, 3)
    assert np.array_equal(data.train_images[:10], written["data_batch_1"])  # planes became HWC correctly
    assert np.array_equal(data.test_images, written["test_batch"]) and data.classes == c10.CLASSES
    w = loaded(tmp_path / "data")
    assert w.num_train_examples == 40 and w.describe_data().endswith(c10.PICKLE_FOLDER)


# ------------------------------------------------------------------------ augmentation
def test_crop_and_flip_matches_a_per_example_reference() -> None:
    g = torch.Generator().manual_seed(0)
    padded = F.pad(torch.randint(0, 256, (20, 32, 32, 3), dtype=torch.uint8, generator=g), (0, 0, 4, 4, 4, 4))
    index = torch.randint(0, 20, (16,), generator=g)
    offsets = torch.randint(0, 9, (16, 2), generator=g)
    flips = torch.randint(0, 2, (16,), generator=g).bool()
    crops = c10.crop_and_flip(padded, index, offsets, flips)
    for k in range(16):
        r, c = offsets[k].tolist()
        expected = padded[index[k], r : r + 32, c : c + 32]
        assert torch.equal(crops[k], expected.flip(1) if flips[k] else expected)


def test_augmented_batches_are_seeded_and_really_augmented(folders: Path) -> None:
    w = loaded(folders)
    first = list(itertools.islice(w.train_batches(16, seed=0), 3))
    again = list(itertools.islice(w.train_batches(16, seed=0), 3))
    other = next(w.train_batches(16, seed=1))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], other[0])
    x, y = first[0]
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (16,)
    assert x.is_contiguous(memory_format=torch.channels_last)

    # The same examples in the same order without augmentation: the labels are unchanged and
    # most images differ (a crop offset other than the centre, or a flip).
    plain = loaded(folders, "workload.model_options.augment=false")
    for (xa, ya), (xp, yp) in zip(first, itertools.islice(plain.train_batches(16, seed=0), 3)):
        assert torch.equal(ya, yp)
        assert sum(not torch.equal(a, p) for a, p in zip(xa, xp)) >= 12
    order = shuffled_batches(torch.arange(w.num_train_examples), w._train_labels, 16, 0)
    assert torch.equal(y, next(order)[1])


def test_drawing_a_batch_makes_no_blocking_copy(folders: Path) -> None:
    """On a GPU a blocking host-to-device copy per batch (the crop offsets, the flips) is a host sync
    in every step (tests/test_device_copies.py)."""
    from tests.test_device_copies import assert_none_blocks, recorded_copies

    for options in ((), ("workload.model_options.augment=false",)):
        w = loaded(folders, *options)
        with recorded_copies() as calls:
            list(itertools.islice(w.train_batches(16, seed=0), 5))
        assert_none_blocks(calls)


def test_unaugmented_batches_are_the_normalised_images(folders: Path) -> None:
    w = loaded(folders, "workload.model_options.augment=false")
    n = w.num_train_examples
    x, _ = next(w.train_batches(n, seed=0))
    order, _ = next(shuffled_batches(torch.arange(n), w._train_labels, n, 0))
    images = w._train_padded[order, 4:36, 4:36].float()  # (N, 32, 32, 3) without the padding
    expected = ((images - w._mean) * w._inv_std).permute(0, 3, 1, 2)
    assert torch.allclose(x, expected)
    assert abs(float(x.mean())) < 0.2 and abs(float(x.std()) - 1) < 0.2


# ------------------------------------------------------------------------ model and variants
def test_convnet_shapes_and_options() -> None:
    x = torch.randn(2, 3, 32, 32)
    for arch in ({}, {"stem_width": 24, "stem_stride": 2, "widths": (48, 96)}):
        assert c10.build_convnet(**arch)(x).shape == (2, 10)
    with_scale, without = c10.build_convnet(), c10.build_convnet(bn_scale=False)
    assert sum(p.numel() for p in with_scale.parameters()) - sum(p.numel() for p in without.parameters()) == 2 * (
        64 + 256 + 256
    )
    assert any(isinstance(m, torch.nn.ReLU) for m in c10.build_convnet(activation="relu").modules())


def test_unknown_model_option_is_a_clear_error(folders: Path) -> None:
    w = workload(folders, "+workload.model_options.width=3")
    with pytest.raises(UserError, match=r"Unknown option.* width .*Valid options: widths, stem_width"):
        w.build_model(0)


def test_relu_variant_has_its_own_target(folders: Path) -> None:
    w = loaded(folders, "workload.variant=relu")
    assert w.label == "cifar10.relu" and w.model_options["activation"] == "relu"
    assert any(isinstance(m, torch.nn.ReLU) for m in w.build_model(0).modules())


# ------------------------------------------------------------------------ errors
def test_missing_class_folder_is_named(folders: Path) -> None:
    for image in (folders / "test" / "cat").iterdir():
        image.unlink()
    (folders / "test" / "cat").rmdir()
    with pytest.raises(UserError, match=r"Class folder 'cat' is in .*train but missing from .*test"):
        loaded(folders)


def test_no_data_names_every_option(tmp_path: Path, without_shipped_data: None) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as error:
        loaded(tmp_path / "empty")
    message = str(error.value)
    assert "train/<class>" in message and c10.PICKLE_FOLDER in message and c10.ARCHIVE in message
    assert "network" in message and "OPTBENCH_OFFLINE" in message


def test_an_empty_data_dir_is_refused_not_replaced_by_the_cache_or_the_shipped_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped archive (and the cache's downloads) serve only when no data_dir is given."""
    monkeypatch.setenv("OPTBENCH_CACHE", str(tmp_path / "cache"))
    write_pickle_batches(tmp_path / "cache" / "downloads" / c10.PICKLE_FOLDER)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as error:
        loaded(tmp_path / "empty")
    message = str(error.value)
    assert str(tmp_path / "empty") in message and "only when no data_dir is given" in message
    assert "downloads" not in message.split("Do one of")[0]


@pytest.mark.parametrize(("remove", "named"), [
    ("cifar-10-batches-py/test_batch", "test_batch"),
    ("cifar-10-batches-py/data_batch_4", "data_batch_4"),
    ("cifar/test", "test/"),
])
def test_an_incomplete_copy_in_data_dir_names_what_is_missing(tmp_path: Path, remove: str, named: str) -> None:
    write_pickle_batches(tmp_path / "data" / c10.PICKLE_FOLDER)
    make_class_folders(tmp_path / "data" / "cifar")
    if remove.startswith("cifar/"):
        data_dir = tmp_path / "data" / "cifar"
        shutil.rmtree(data_dir / "test")
    else:
        data_dir = tmp_path / "data"
        (data_dir / remove).unlink()
    with pytest.raises(UserError) as error:
        loaded(data_dir)
    message = str(error.value)
    assert named in message and "missing" in message and str(data_dir) in message


def test_an_empty_data_dir_is_downloaded_into_where_a_network_exists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTBENCH_OFFLINE", "0")
    roots = []

    def fake_download(root: str, train: bool, download: bool) -> None:  # no network in tests
        roots.append(Path(root))
        write_pickle_batches(Path(root) / c10.PICKLE_FOLDER)

    monkeypatch.setattr(c10, "TorchvisionCIFAR10", fake_download)
    (tmp_path / "empty").mkdir()
    w = loaded(tmp_path / "empty")
    assert roots == [tmp_path / "empty"] and w.num_train_examples == 40


def test_truncated_image_is_named(folders: Path) -> None:
    image = sorted((folders / "train" / "dog").iterdir())[2]
    image.write_bytes(image.read_bytes()[:60])
    with pytest.raises(UserError, match=rf"Could not read image .*{image.name}.*truncated or corrupt"):
        loaded(folders)


def test_wrong_image_size_is_named(folders: Path) -> None:
    small = np.zeros((1, 16, 16, 3), np.uint8)
    write_class_folders(folders / "small", "train", small, np.zeros(1), c10.CLASSES)
    os.replace(folders / "small" / "train" / "airplane" / "0000.png", folders / "train" / "frog" / "0000.png")
    with pytest.raises(UserError, match=r"0000.png is 16x16 pixels; CIFAR images are 32x32"):
        loaded(folders)


@pytest.mark.parametrize(("name", "label"), [("data_batch_2", 10), ("test_batch", -1)])
def test_a_label_outside_the_classes_names_its_batch_file(tmp_path: Path, name: str, label: int) -> None:
    """Caught when read (exit 2), not as an IndexError in the submission's update, nor scored as wrong."""
    folder = tmp_path / "data" / c10.PICKLE_FOLDER
    write_pickle_batches(folder)
    with open(folder / name, "rb") as f:
        entry = pickle.load(f)
    entry["labels"][3] = label
    with open(folder / name, "wb") as f:
        pickle.dump(entry, f)
    with pytest.raises(UserError, match=rf"{name} holds label {label}.*0\.\.9"):
        loaded(tmp_path / "data")


def test_truncated_pickle_batch_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "data" / c10.PICKLE_FOLDER
    write_pickle_batches(folder)
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    with pytest.raises(UserError, match=r"data_batch_3.*truncated or corrupt"):
        loaded(tmp_path / "data")


@pytest.mark.parametrize("header", [
    b"\x80\x04\x8d" + (2**63 + 5).to_bytes(8, "little"),  # a string longer than memory: OverflowError
    b"\x80\x04\x8e" + (2**62).to_bytes(8, "little"),  # bytes of 4 EiB: MemoryError
])
def test_a_damaged_pickle_header_is_a_clear_error(tmp_path: Path, header: bytes) -> None:
    folder = tmp_path / "data" / c10.PICKLE_FOLDER
    write_pickle_batches(folder)
    (folder / "data_batch_1").write_bytes(header + b"x" * 100)
    with pytest.raises(UserError, match=r"data_batch_1.*damaged"):
        loaded(tmp_path / "data")


# ------------------------------------------------------------------------ end to end
def test_adamw_defaults_reach_the_smoke_target(smoke_cfg) -> None:
    summary = run_trial(smoke_cfg("workload=cifar10"))
    assert summary["status"] == "reached", summary


@pytest.mark.realdata
@pytest.mark.slow
def test_real_archive_loads_45k_5k_10k(shipped_calibration_digests) -> None:
    data_dir = _real_archive()
    if data_dir is None:
        pytest.skip(f"real {c10.ARCHIVE} not found (set OPTBENCH_TEST_DATA or provide ../shared/data)")
    w = workload(data_dir, validation=5000)
    w.load()  # extracts and decodes 60k JPEGs once (seconds), then reads the cache
    assert w.num_train_examples == 45_000
    assert w._splits["validation"][0].shape[0] == 5000 and w._splits["test"][0].shape[0] == 10_000
    assert sorted(set(w._splits["test"][1].tolist())) == list(range(10))
    mean = (w._mean / 255).tolist()
    assert mean == pytest.approx([0.4913, 0.4821, 0.4465], abs=0.01)
    assert shipped_calibration_digests("cifar10") == {w.data_digest()}  # the examples its targets are for


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_adamw_defaults_reach_the_cpu_target_on_real_data(results: Path) -> None:
    data_dir = _real_archive()
    if data_dir is None:
        pytest.skip(f"real {c10.ARCHIVE} not found (set OPTBENCH_TEST_DATA or provide ../shared/data)")
    # evaluated half as often as the size says (each evaluation of the 5k images takes ~1 s of the test's
    # wall time, none of the budget): the calibrated seeds reached the target at steps 1400-1800 of the
    # 2000 hinted. Counted in steps, not seconds: the size's budget is 2x an idle machine's time to the
    # target, which other work on the cores can eat. Two threads, as calibrated: another thread count sums
    # in another order, and one thread (a parallel test run's share of 2 cores) took seed 0 to 0.7586 in
    # the 2000 steps. Its 2 threads share the cores with the other test worker's (scripts/test.sh): 315 s of
    # wall time in a parallel run against ~100 s alone, hence a budget of 10x the size's (a cap, not a measure)
    size = compose_config("trial", ["workload=cifar10"]).workload.sizes.cpu
    cfg = compose_config("trial", ["workload=cifar10", f"data_dir={data_dir}", f"results={results}", "device=cpu",
                                   "threads=2",
                                   "progress=false", "workload.sizes.cpu.eval_every_steps=300",
                                   f"workload.sizes.cpu.max_runtime_s={10 * size.max_runtime_s}",
                                   f"max_steps={size.step_hint}"])
    summary = run_trial(cfg)
    assert summary["status"] == "reached", summary
    assert summary["steps_to_target"] <= size.step_hint


def test_the_shipped_archive_is_found_with_no_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh machine has only the repository: CIFAR-10 comes from workloads/data/ (not decoded here)."""
    seen = []

    def extract(archive: Path) -> Path:
        seen.append(archive)
        raise RuntimeError("stop before decoding")

    monkeypatch.setattr(c10, "extract_once", extract)
    with pytest.raises(RuntimeError, match="stop before decoding"):
        c10.find_data(None)
    assert seen and seen[0].parts[-3:] == ("workloads", "data", c10.ARCHIVE) and seen[0].stat().st_size > 19_000_000
