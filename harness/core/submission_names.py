"""One name, one submission: refuse to record a submission under a name whose folder holds another's.

Records are filed by the submission's name (``<results>/<workload>-<size>/<name>/``), and the
leaderboard ranks names. Two different submissions that share a name (two files ``signsgd.py`` in
two folders; a file named like an installed entry point) would land in one folder, one pruned
against the other, and be scored as one (``optbench score`` then refuses them as two versions of
one code, after every trial has run). So a trial or sweep is refused before it starts when the
folder it would write into already holds records of a submission from another source, and a suite
when two of its submissions share a name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.core.records import read_json
from harness.errors import UserError


def source_of(config: dict[str, Any]) -> str:
    """Where a trial config's submission comes from, as the user would recognise it."""
    submission = config.get("submission") or {}
    return str(submission.get("source") or f"the built-in {submission.get('name')}")


def recorded_sources(folder: Path) -> dict[str, Path]:
    """The submission sources recorded in a submission's folder (its sweeps' plans, its lone trials'
    manifests), each with a file that says so. Unreadable or damaged files are skipped: they are
    reported by ``optbench status`` and ``score``, and a clash needs a readable record."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for child in sorted(folder.iterdir()):
        for name, config_of in (("sweep.json", _sweep_config), ("manifest.json", _manifest_config)):
            path = child / name
            try:
                config = config_of(read_json(path))
            except (UserError, OSError, KeyError, IndexError, TypeError):
                continue
            if config is not None:
                found.setdefault(source_of(config), path)
    return found


def _sweep_config(sweep: dict[str, Any] | None) -> dict[str, Any] | None:
    return sweep["trials"][0]["config"] if sweep else None


def _manifest_config(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    return manifest["config"] if manifest else None


def refuse_another_submission(folder: Path, config: dict[str, Any]) -> None:
    """Refuse to write records of ``config``'s submission into ``folder`` (its name's) when the folder
    holds records of a submission of that name from another source."""
    ours = source_of(config)
    others = {source: path for source, path in recorded_sources(folder).items() if source != ours}
    if others:
        source, path = next(iter(others.items()))
        raise UserError(_clash(str(config["submission"]["name"]), [ours, source]) +
                        f" {folder} holds records of {source} ({path}); nothing was run. If it is the same code, "
                        f"moved, run it from where it was, or into a new results folder (results=DIR).")


def refuse_shared_names(configs: Iterable[dict[str, Any]]) -> None:
    """Refuse a set of trial configs (a suite's sweeps) in which two submissions share a name."""
    sources: dict[str, set[str]] = {}
    for config in configs:
        sources.setdefault(str(config["submission"]["name"]), set()).add(source_of(config))
    for name, found in sorted(sources.items()):
        if len(found) > 1:
            raise UserError(_clash(name, sorted(found)) + " Nothing was run.")


def _clash(name: str, sources: list[str]) -> str:
    return (f"Two submissions are named '{name}': {' and '.join(sources)}. Records and the leaderboard go by name, "
            f"so they would be filed, pruned and scored as one. Give one of them another name (its module's or "
            f"class's: docs/writing-a-submission.md), or run them into separate results folders.")
