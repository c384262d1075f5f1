"""Every file of this repository that the docs, docstrings, comments or configs name exists: a
moved or deleted file cannot leave a reader with a dead path."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOPS = ("harness", "scoring", "workloads", "submissions", "configs", "scripts", "tests", "docs", "results", ".ci")
TOP = "|".join(map(re.escape, TOPS))
PATH = re.compile(rf"(?<![\w./-])((?:{TOP})/[\w./-]*\w\.(?:py|md|yaml|sh|json|png|txt|toml))\b")
COMMITTED_RESULTS = ("results/README.md", "results/leaderboard.png")  # the rest of results/ is made by commands


def texts() -> list[Path]:
    out = [*REPO.glob("*.md"), *REPO.glob("docs/*.md"), *REPO.glob("workloads/*.md"), REPO / "results" / "README.md",
           *REPO.glob("configs/**/*.yaml"), *REPO.glob("scripts/**/*.sh")]
    for folder in ("harness", "scoring", "workloads", "submissions", "scripts", "tests"):
        out += (REPO / folder).rglob("*.py")
    return out


def cited(text: str) -> list[str]:
    """The repository paths ``text`` names (templates such as <name> or * left out; outputs under
    results/ are what commands write, not files of the repository)."""
    found = [m.group(1) for m in PATH.finditer(text)]
    return [p for p in found if not any(c in p for c in "<*{")
            and (not p.startswith("results/") or p in COMMITTED_RESULTS)]


def test_every_cited_repository_path_exists() -> None:
    files = texts()
    assert len(files) > 100
    dead = sorted({f"{path} (in {source.relative_to(REPO)})" for source in files for path in cited(source.read_text())
                   if not (REPO / path).exists()})
    assert dead == []


def test_the_check_sees_a_dead_path() -> None:
    dead = "docs/" + "nothing.md"  # spelled apart: this file is read by the test above
    assert cited(f"see harness/core/runner.py and `{dead}`, results/suite-mini/suite.md, "
                 "configs/submission/<name>.yaml") == ["harness/core/runner.py", dead]
