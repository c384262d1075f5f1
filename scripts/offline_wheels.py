"""Wheels of optbench's Python dependencies for a machine that cannot reach a package index.

GPU nodes are often offline and come with their own PyTorch (built for their CUDA). This collects,
from the environment it runs in (``scripts/setup.sh``'s ``.venv``, which has every dependency at
the versions optbench is tested with), the dependencies that machine lacks, as wheels for *its*
Python, ready for ``pip install --no-index --no-deps``:

- it walks optbench's requirements through the installed distributions, with their environment
  markers evaluated for the target Python;
- it leaves out PyTorch's own stack (torch, torchvision, triton, nvidia-*: the machine's build is
  the one that matches its driver) and every package the machine already has at a version the
  requirement admits (``--have``: a file of ``pip list --format=freeze`` or ``pip freeze`` lines,
  made there; a line of a name alone admits any version), with that package's own dependencies;
- each remaining one is downloaded as a binary wheel for the target's Python and platform, and
  where PyPI has only a source archive (antlr4-python3-runtime, which omegaconf pins), built here
  into a wheel, which must then be pure Python (``none-any``) to be of use there.

Usage (the target runs CPython 3.12 on x86-64 Linux, and ``have.txt`` is its ``pip list``):
    .venv/bin/python scripts/offline_wheels.py wheels --python-version 3.12 --have have.txt
then on the target, from the repository's root:
    python3 -m pip install --no-index --no-deps --target /tmp/optbench-site wheels/*.whl
    export PYTHONPATH=$PWD:/tmp/optbench-site
``scripts/gpu_check.sh`` does those two steps itself when ``WHEELS=wheels`` is set.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = "optbench"
# PyTorch's stack: the target's own build is the one for its CUDA driver
TORCH_STACK = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|pytorch-triton.*)$")
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


def canonical(name: str) -> str:
    """A distribution's name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def packages_in(have: Path) -> dict[str, str | None]:
    """Name -> version (None where unstated) of each package a ``pip list --format=freeze`` /
    ``pip freeze`` file (or a file of names, one a line) lists."""
    packages: dict[str, str | None] = {}
    for line in have.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            packages[canonical(re.split(r"[<>!~ @;\[]", name, maxsplit=1)[0])] = version.strip() or None
    return packages


def needed(python_version: str, have: dict[str, str | None]) -> dict[str, str]:
    """Name -> installed version of every dependency of optbench (transitively) that the target lacks,
    or has at a version the requirement does not admit (the wheel then comes first on its path)."""
    environment = {**default_environment(), "python_version": python_version,
                   "python_full_version": f"{python_version}.0", "extra": ""}
    found: dict[str, str] = {}
    waiting = [ROOT]
    while waiting:
        name = waiting.pop()
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is not installed here: run this with the Python of scripts/setup.sh's "
                             f".venv (.venv/bin/python scripts/offline_wheels.py ...).") from None
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            key = canonical(requirement.name)
            if key in found or TORCH_STACK.match(key) or admitted(requirement, have.get(key, "")):
                continue
            found[key] = metadata.version(requirement.name)
            waiting.append(requirement.name)
    return found


def admitted(requirement: Requirement, version: str | None) -> bool:
    """Whether the target's ``version`` of the package does ("" where it has none; None: unstated)."""
    if version is None:
        return True
    return bool(version) and requirement.specifier.contains(version, prereleases=True)


def fetch(name: str, version: str, dest: Path, python_version: str) -> Path:
    """The wheel of ``name==version`` for the target in ``dest``: a binary download, else built here."""
    platform_args = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--python-version", python_version, "--implementation", "cp", *platform_args,
                "--dest", str(dest), f"{name}=={version}"]
    if subprocess.run(download, capture_output=True, text=True).returncode != 0:
        with tempfile.TemporaryDirectory() as scratch:  # only a source archive: build it here
            build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
                                    scratch, f"{name}=={version}"], capture_output=True, text=True)
            built = list(Path(scratch).glob("*.whl"))
            if build.returncode != 0 or not built:
                raise SystemExit(f"{name}=={version}: no wheel for Python {python_version} and none could be built "
                                 f"here:\n{build.stderr.strip()}")
            if not built[0].name.endswith("-none-any.whl"):
                raise SystemExit(f"{name}=={version}: PyPI has no wheel for Python {python_version}, and the one "
                                 f"built here ({built[0].name}) is for this machine's Python only.")
            built[0].rename(dest / built[0].name)
    return wheel_in(dest, name, version)


def wheel_in(dest: Path, name: str, version: str) -> Path:
    """The wheel of ``name==version`` in ``dest`` (its file name spells the name its own way)."""
    for wheel in dest.glob("*.whl"):
        wheel_name, wheel_version = wheel.name.split("-")[:2]
        if canonical(wheel_name) == name and wheel_version == version:
            return wheel
    raise SystemExit(f"{name}=={version}: pip reported success but left no wheel of it in {dest}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path, help="the folder the wheels go to")
    parser.add_argument("--python-version", default="3.12", help="the target's Python, major.minor (default 3.12)")
    parser.add_argument("--have", type=Path, help="the target's `pip list --format=freeze` (or one name a line)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python_version):
        parser.error(f"--python-version {args.python_version}: give major.minor, e.g. 3.12")
    if args.have is not None and not args.have.is_file():
        parser.error(f"--have {args.have}: no such file (make it on the target: python3 -m pip list --format=freeze)")
    have = packages_in(args.have) if args.have else {}
    args.dest.mkdir(parents=True, exist_ok=True)
    wanted = needed(args.python_version, have)
    if "numpy" in wanted and have.get("numpy"):
        print(f"note: the target's numpy {have['numpy']} is not one optbench admits, and the wheel collected here "
              f"comes first on its path: its own compiled packages built for that numpy (scipy, pandas, ...) may "
              f"then fail to import; install optbench's numpy range there instead if they do.", file=sys.stderr)
    total = 0
    for name, version in sorted(wanted.items()):
        wheel = fetch(name, version, args.dest, args.python_version)
        total += wheel.stat().st_size
        print(f"{name}=={version}: {wheel.name}", flush=True)
    print(f"{len(wanted)} wheels, {total / 2**20:.1f} MiB in {args.dest}; on the target: python3 -m pip install "
          f"--no-index --no-deps --target /tmp/optbench-site {args.dest}/*.whl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
