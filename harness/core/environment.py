"""Facts about the software and hardware a trial ran on, for its manifest."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from harness.config.code_files import HARNESS_PACKAGES
from harness.identity import utc_timestamp


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in HARNESS_PACKAGES:  # a submission's other packages: code_files.code_packages
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> dict[str, Any] | None:
    """Commit and dirtiness of the checkout the harness runs from, if it is a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"sha": sha, "dirty": bool(dirty)}


def describe_device(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "type": device.type,
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),  # what score compares: times on two kinds of machine are not one race
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["name"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda
    return info


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The processor's model name (Linux: /proc/cpuinfo's "model name"; else what the platform
    says), None when nothing says it: ``platform.processor()`` is often empty or just the
    architecture, which cannot tell two machines apart."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    name = platform.processor()
    return name if name and name != platform.machine() else None


SLURM_VARIABLES = {
    "job_id": "SLURM_JOB_ID",
    "array_job_id": "SLURM_ARRAY_JOB_ID",
    "array_task_id": "SLURM_ARRAY_TASK_ID",
    "restart_count": "SLURM_RESTART_COUNT",
    "partition": "SLURM_JOB_PARTITION",
}


def attempt_context() -> dict[str, Any]:
    """Where and when this attempt of a trial runs: host, pid and, under SLURM, the job ids.

    ``optbench status`` uses the SLURM ids to point at the job's logs and to agree with sacct.
    """
    context: dict[str, Any] = {
        "started_at": utc_timestamp(),
        "host": platform.node(),
        "pid": os.getpid(),
    }
    slurm = {key: os.environ[var] for key, var in SLURM_VARIABLES.items() if var in os.environ}
    if slurm:
        context["slurm"] = slurm
    if os.environ.get("OPTBENCH_JOB_DIR"):
        context["job_dir"] = os.environ["OPTBENCH_JOB_DIR"]  # Hydra's output folder of the launched job
    if os.environ.get("SUBMITIT_FOLDER") or os.environ.get("SUBMITIT_EXECUTOR"):
        try:
            import submitit

            paths = submitit.JobEnvironment().paths
            context["logs"] = {"stdout": str(paths.stdout), "stderr": str(paths.stderr)}
        except Exception:
            pass
    return context
