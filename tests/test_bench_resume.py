"""scripts/bench_resume.py, as the README runs it: no data folder outside the repository is assumed,
and a trial that fails stops the script with the trial's own message, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "bench_resume.py"


def test_no_data_dir_is_passed_unless_one_is_given() -> None:
    result = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import bench_resume; "
                             "print(bench_resume.common_settings(None, ['workload=fashion_mnist'])); "
                             "print(bench_resume.common_settings('/data', []))", str(SCRIPT.parent)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    without, given = result.stdout.splitlines()
    assert "data_dir" not in without and "workload=fashion_mnist" in without
    assert "'data_dir=/data'" in given


def test_a_failing_trial_stops_the_script_with_its_own_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-data"
    result = subprocess.run([sys.executable, str(SCRIPT), "--data-dir", str(missing), "workload.size=smoke"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"data_dir '{missing}' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
