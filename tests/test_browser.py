"""The leaderboard page as a person sees it: real records scored, leaderboard.html rendered in headless
Chromium, and checked for errors, its table and its images.

Chromium is driven by scripts/screenshot_leaderboard.py's DevTools-over-pipe client (standard library
only; why, in that file's docstring). Skipped, saying why, where no Chromium is installed
(scripts/setup.sh installs Debian's as root); ``-m "not browser"`` deselects it.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main
from harness.orchestration.tune import run_tune

REPO = Path(__file__).resolve().parent.parent
SUBMISSIONS = ("adamw", "sgd")


def _load_script():
    spec = importlib.util.spec_from_file_location("screenshot_leaderboard",
                                                  REPO / "scripts" / "screenshot_leaderboard.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


shot = _load_script()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shot.find_chromium() is None, reason=shot.no_chromium_reason()),
]


@pytest.fixture(scope="module")
def leaderboard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The leaderboard folder of a real sweep: 2 submissions x 1 study x 2 trials on the smoke workload."""
    results = tmp_path_factory.mktemp("browser") / "results"
    for submission in SUBMISSIONS:
        run_tune(["workload=fashion_mnist", "workload.size=smoke", f"submission={submission}", "studies=1",
                  "trials=2", "max_steps=30", f"results={results}", "progress=false", "device=cpu"],
                 log=lambda _: None)
    out = results / "leaderboard"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["score", f"results={results}", f"out={out}", "bootstrap=50"]) == 0
    (out / "summary.json").write_text(printed.getvalue().strip().splitlines()[-1])  # the command's JSON summary
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with shot.HeadlessChromium() as chromium:
        yield chromium


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])  # the IHDR chunk's width and height


def test_the_leaderboard_renders_without_errors_with_every_row_and_image(leaderboard: Path, browser) -> None:
    page = browser.render(leaderboard / "leaderboard.html", width=1100, height=1500, screenshot=True)
    assert page.console_errors == [] and page.page_errors == []
    assert page.header is not None and page.header[:3] == ["rank", "submission", "score"]

    with open(leaderboard / "leaderboard.csv", newline="") as f:
        ranked = [row["submission"] for row in csv.DictReader(f)]
    assert sorted(ranked) == sorted(SUBMISSIONS)
    assert [cells[1] for cells in page.rows] == ranked  # one row per submission, in rank order
    assert all(len(cells) == len(page.header) for cells in page.rows)

    plots = json.loads((leaderboard / "summary.json").read_text())["plots"]  # those the page embeds
    assert len(plots) >= 4 and len(page.images) == len(plots)  # profiles, time to target, curves, sensitivity
    assert page.broken_images == [], page.images
    assert all(img["naturalWidth"] > 0 and img["naturalHeight"] > 0 for img in page.images)

    assert page.height > 1500 and png_size(page.png) == (1100, 1500)


def test_the_check_sees_console_and_script_errors_and_broken_images(tmp_path: Path, browser) -> None:
    """The same check on a page that is wrong in each way: so a clean result above means something."""
    page = tmp_path / "broken.html"
    page.write_text("""<!doctype html><html><head><meta charset="utf-8"><title>broken</title></head><body>
<table id="leaderboard"><thead><tr><th>rank</th><th>submission</th></tr></thead>
<tbody><tr><td>1</td><td>a</td></tr></tbody></table>
<img alt="corrupt" src="data:image/png;base64,AAAA"><img alt="missing" src="missing.png">
<script>console.error("logged error"); null.field;</script></body></html>""")
    seen = browser.render(page)
    assert seen.rows == [["1", "a"]]
    assert seen.broken_images == ["corrupt", "missing"]
    assert "logged error" in seen.console_errors
    assert any("missing.png" in e for e in seen.console_errors)  # the failed load, from the browser's log
    assert len(seen.page_errors) == 1 and "TypeError" in seen.page_errors[0]


def test_the_screenshot_script_writes_a_png(leaderboard: Path, tmp_path: Path) -> None:
    out = tmp_path / "board.png"
    assert shot.main([str(leaderboard / "leaderboard.html"), str(out), "--width", "800", "--height", "600"]) == 0
    assert png_size(out.read_bytes()) == (800, 600)
