"""Shared fixtures. Tests never use the network and never write outside pytest's tmp folders."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _real_fashion_mnist() -> Path | None:
    """The real Fashion-MNIST files for integration tests: $OPTBENCH_TEST_DATA or ../shared/data."""
    base = Path(os.environ.get("OPTBENCH_TEST_DATA", REPO.parent / "shared" / "data"))
    folder = base / "fashion-mnist"
    return folder if (folder / "train-images-idx3-ubyte.gz").is_file() else None


REAL_FASHION_MNIST = _real_fashion_mnist()

# Per-test time limits (pytest-timeout). The default in pyproject.toml ([tool.pytest.ini_options]
# timeout) bounds every test, so a broken clock or a lost child process fails that test in a couple of
# minutes instead of hanging the suite; the markers below name the tests that legitimately take longer
# (training on real data, starting a SLURM cluster) and get these limits unless they set their own
# with @pytest.mark.timeout(seconds). The longest limit of a test's markers applies.
MARKER_TIMEOUTS_S = {"slurm": 1800, "slow": 900, "realdata": 900, "browser": 300}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        limits = [limit for marker, limit in MARKER_TIMEOUTS_S.items() if item.get_closest_marker(marker)]
        if limits:
            item.add_marker(pytest.mark.timeout(max(limits)))


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background by a shell without job control (`pytest ... &` in a script)
    # has SIGINT ignored, and every process it starts inherits that: the tests that press Ctrl-C on
    # an `optbench trial` would see it ignored. Python's own handler is not inherited: children
    # start with the default, as from a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Tests run in parallel (scripts/test.sh: pytest-xdist, one worker per core): each worker's trials
    # and the processes they start get a share of the cores, or torch's threads would spin-wait on
    # each other's cores and every test would run slower than alone.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # One cache for the session's workers (parallel runs): real CIFAR-10 is extracted and decoded once.
    # The harness writes its cache entries atomically, so workers may fill it at the same time.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        cache = tmp_path_factory.getbasetemp().parent / "cache"
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("cache")
    os.environ["OPTBENCH_CACHE"] = str(cache)
    os.environ["OPTBENCH_OFFLINE"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_in_pytest_s_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The system's temporary folder, for this process and every one it starts, inside pytest's own
    (which keeps the last three sessions' only): what the harness leaves there when a test kills it
    (a data-parallel launcher's folder) or by design (a torchrun trial's summary) goes with it."""
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmp"))
    tempfile.tempdir = None  # asked again, from TMPDIR


@pytest.fixture
def without_shipped_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hide the datasets shipped in workloads/data/, as on an install that does not carry them."""
    import workloads._bundled

    monkeypatch.setattr(workloads._bundled, "FOLDER", tmp_path / "no-shipped-data")


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


@pytest.fixture
def smoke_cfg(results: Path):
    """Compose a smoke-size trial config with extra overrides."""
    from harness.config.compose import compose_config

    def make(*overrides: str):
        return compose_config(
            "trial", ["workload.size=smoke", f"results={results}", "progress=false", "device=cpu", *overrides]
        )

    return make


@pytest.fixture
def real_data_root() -> Path:
    """The folder holding every real dataset (fashion-mnist/, tinyshakespeare.txt, cifar10-jpg.tar.gz)."""
    if REAL_FASHION_MNIST is None:
        pytest.skip("real data not found (set OPTBENCH_TEST_DATA or provide ../shared/data)")
    return REAL_FASHION_MNIST.parent


@pytest.fixture
def real_data() -> Path:
    if REAL_FASHION_MNIST is None:
        pytest.skip("real Fashion-MNIST files not found (set OPTBENCH_TEST_DATA or provide ../shared/data)")
    return REAL_FASHION_MNIST


@pytest.fixture
def loaded_parts():
    """``make(cfg)``: the workload a composed trial config names, loaded on the CPU, and its
    submission's hyperparameters (for tests that build a trial's parts themselves)."""
    import torch

    from harness.config.compose import to_plain
    from harness.config.registry import submission_class, workload_class

    def make(cfg):
        workload = workload_class(cfg.workload.name)(cfg.workload, torch.device("cpu"))
        workload.load()
        return workload, submission_class(cfg.submission.name).Hparams.from_mapping(to_plain(cfg.submission.hparams))

    return make


@pytest.fixture
def shipped_calibration_digests():
    """``digests(name)``: the ``data_sha256`` values the shipped ``configs/workload/<name>.yaml`` names
    in its sizes' and variants' calibrations (the examples their targets were calibrated on)."""
    import yaml

    def digests(name: str) -> set[str]:
        config = yaml.safe_load((Path(__file__).parents[1] / "configs" / "workload" / f"{name}.yaml").read_text())
        entries = [*config["sizes"].values(),
                   *(e for v in (config.get("variants") or {}).values() for e in (v.get("sizes") or {}).values())]
        return {e["calibration"]["data_sha256"] for e in entries if "data_sha256" in (e.get("calibration") or {})}

    return digests
