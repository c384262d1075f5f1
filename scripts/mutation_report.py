"""The core modules of scripts/mutation.sh and its report: per module the mutants, how many the tests
detected, the survivors, the equivalent mutants excluded (scripts/mutation-equivalent.txt) and the score.

    python scripts/mutation_report.py patterns [MODULE ...]   the mutmut name patterns to run
    python scripts/mutation_report.py report [MODULE ...]     the table and the surviving mutants

The numbers come from mutmut's own result files (mutants/<path>.meta). A mutant is detected when its
tests failed, crashed or ran out of time (mutmut's "killed", "timeout", "segfault"); it survives when
they passed or when no test of the selection reaches it ("no tests"). The score is
detected / (mutants - equivalent survivors).
"""

from __future__ import annotations

import fnmatch
import json
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "scripts" / "mutation-equivalent.txt"


@dataclass(frozen=True)
class Module:
    """A core module: its files and the mutmut name patterns of the functions that are mutated."""

    name: str
    paths: tuple[str, ...]
    patterns: tuple[str, ...]


def _functions(prefix: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{prefix}.x_{name}__mutmut_*" for name in names)


# The runner's loop decision code: the training loop (runner.py: evaluation, stopping rules, budget;
# steps.py: the steps between evaluations, divergence, the contract check)
# and the timing audit; not the record writing and manifest plumbing around it. Record reading: what
# turns one trial's files into a row (manifest, end line, evaluations), not the directory walk.
MODULES = (
    Module("scores", ("scoring/scores.py",), ("scoring.scores.*",)),
    Module("clock", ("harness/core/clock.py",), ("harness.core.clock.*",)),
    Module("sweep", ("harness/orchestration/sweep.py",), ("harness.orchestration.sweep.*",)),
    Module("sweep_file", ("harness/core/sweep_file.py",), ("harness.core.sweep_file.*",)),
    Module("search_space", ("harness/config/search_space.py",), ("harness.config.search_space.*",)),
    Module("runner", ("harness/core/runner.py",),
           _functions("harness.core.runner", "_train", "_loop", "_timing", "clock_suspect")),
    Module("steps", ("harness/core/steps.py",), ("harness.core.steps.*",)),
    Module("records", ("scoring/trial_files.py", "scoring/records.py"),
           _functions("scoring.trial_files", "_load_manifest", "_check_for_scoring", "_fits", "_row", "_end_line",
                      "_end_line_read", "_last_line", "_end_line_of_all", "_evaluations", "_numbered_rows",
                      "_is_number") + _functions("scoring.records", "load_evals", "evaluation_curve")),
)
DETECTED = {"killed", "timeout", "segfault", "caught by type check"}
STATUS = {0: "survived", 1: "killed", 3: "killed", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          37: "caught by type check", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", None: "not checked"}


def selected(names: list[str]) -> list[Module]:
    """The modules named (all when none is)."""
    known = {m.name: m for m in MODULES}
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names] if names else list(MODULES)


def equivalent() -> dict[str, str]:
    """The allow-list: ``<mutant name>  <reason>`` per line; ``#`` starts a comment line."""
    entries = {}
    for line in EQUIVALENT_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            if not reason.strip():
                sys.exit(f"{EQUIVALENT_FILE.name}: {name} has no reason")
            entries[name] = reason.strip()
    return entries


def results(module: Module) -> dict[str, str]:
    """Mutant name -> status, for the mutants of the module's patterns."""
    found = {}
    for path in module.paths:
        meta = ROOT / "mutants" / f"{path}.meta"
        codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.is_file() else {}
        found.update({name: STATUS.get(code, "suspicious") for name, code in codes.items()
                      if any(fnmatch.fnmatchcase(name, p) for p in module.patterns)})
    return found


def report(modules: list[Module]) -> int:
    allowed = equivalent()
    rows, survivors, stale, unchecked = [], [], [], 0
    for module in modules:
        found = results(module)
        detected = sum(status in DETECTED for status in found.values())
        alive = sorted(name for name, status in found.items()
                       if status not in DETECTED | {"skipped", "not checked"})
        unchecked += sum(status == "not checked" for status in found.values())
        excluded = [name for name in alive if name in allowed]
        stale += [name for name in allowed if found.get(name) in DETECTED]
        survivors += [(name, found[name]) for name in alive if name not in allowed]
        counted = len(found) - sum(s in ("skipped", "not checked") for s in found.values()) - len(excluded)
        score = 100.0 * detected / counted if counted else float("nan")
        rows.append((module.name, len(found), detected, len(alive) - len(excluded), len(excluded), score))
    print(f"\n{'module':<14}{'mutants':>9}{'detected':>10}{'survived':>10}{'equivalent':>12}{'score':>9}")
    for name, total, detected, alive, excluded, score in rows:
        print(f"{name:<14}{total:>9}{detected:>10}{alive:>10}{excluded:>12}{score:>8.1f}%")
    if survivors:
        print(f"\nSurviving mutants ({len(survivors)}; see each with: .venv/bin/mutmut show <name>):")
        for name, status in survivors:
            print(f"  {name}  [{status}]")
    if unchecked:
        print(f"\n{unchecked} mutants were not checked (an interrupted run?): the scores count the others only.")
    if stale:
        print(f"\nAllow-listed as equivalent but detected now (remove from {EQUIVALENT_FILE.name}):")
        for name in stale:
            print(f"  {name}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("patterns", "report"):
        sys.exit(__doc__)
    modules = selected(argv[1:])
    if argv[0] == "patterns":
        print("\n".join(p for m in modules for p in m.patterns))
        return 0
    return report(modules)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
