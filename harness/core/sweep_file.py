"""``sweep.json``: writing, reading and checking a sweep's plan file, and the state of its trials.

Kept apart from :mod:`harness.orchestration.sweep` (which plans sweeps and needs the registries and the
calibration code) so that the runner's pruning, ``optbench status`` and the scoring code can read
sweeps without importing the planner. The file never holds an absolute path: see :func:`load_sweep`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from harness.config.schema import TrialConfig
from harness.core.records import (
    CHARGED_SETTINGS,
    FINAL_STATUSES,
    DamagedRecord,
    check_fields,
    harness_failed,
    read_json,
    read_manifest,
    write_json_atomic,
)
from harness.errors import UserError
from harness.identity import utc_timestamp
from harness.paths import ensure_writable_folder

SWEEP_FILE = "sweep.json"

# Where things are, relative to the sweep folder ``<results>/<workload>-<size>/<submission>/<ruleset>-<hash>``:
# the file never holds an absolute path, so a results folder can be moved or copied elsewhere.
_RESULTS_FROM_SWEEP = Path("..", "..", "..")


#: how to run some of a sweep's trials again (said wherever that is asked otherwise)
RUN_AGAIN = ("To run some of a sweep's trials again, move their folders (study<k>/trial<j>) out of the results folder "
             "(their records are kept where you put them) and rerun the same tune or suite command, which runs the "
             "trials that have not ended; after a change of code, tune into a new results folder (results=DIR).")


def _record_path(study: int, trial: int) -> Path:
    return Path(f"study{study}", f"trial{trial}")


def write_sweep(sweep: dict[str, Any]) -> Path:
    """Write ``sweep.json`` once; an existing one (same hash, same plan) is kept as it is.

    Its trials run with the settings it holds, so one whose charged settings (``threads``,
    ``isolation``: not in the sweep's hash) differ from this command's is planned anew while none
    of its trials has started (a launch that failed left it); once one has, it is kept, and tune and
    suite refuse the command for the settings its started trials were made with.
    Paths are stored relative to the sweep folder (see :func:`load_sweep`).
    """
    path = Path(sweep["dir"]) / SWEEP_FILE
    if path.exists():
        existing = load_sweep(path.parent)
        if [t["seed"] for t in existing["trials"]] != [t["seed"] for t in sweep["trials"]]:
            raise UserError(f"{path} describes another plan than this command; it is left untouched. "
                            f"Use another results folder.")
        now, then = _charged(sweep), _charged(existing)
        if now == then:
            return path
        if any(trial_state(Path(t["record_dir"])) != "pending" for t in existing["trials"]):
            return path  # kept: tune and suite refuse a command whose settings differ from its started trials'
    trials = []
    for entry in sweep["trials"]:
        where = str(_record_path(entry["study"], entry["trial"]))
        config = {**entry["config"], "record_dir": where, "results": str(_RESULTS_FROM_SWEEP)}
        trials.append({**entry, "record_dir": where, "config": config})
    stored = {k: v for k, v in sweep.items() if k != "dir"}
    ensure_writable_folder(path.parent, "results", sweep["trials"][0]["config"].get("results"))
    write_json_atomic(path, {**stored, "trials": trials,
                             "created_at": utc_timestamp()})
    return path


def _charged(sweep: dict[str, Any]) -> dict[str, Any]:
    """The charged settings (:data:`~harness.core.records.CHARGED_SETTINGS`) a plan's trials run with."""
    config = sweep["trials"][0]["config"] if sweep["trials"] else {}
    return {key: config.get(key) for key in CHARGED_SETTINGS}


SWEEP_FIELDS = {"sweep_id": (str,), "workload": (str,), "size": (str,), "submission": (str,), "ruleset": (str,),
                "studies": (int,), "trials_per_study": (int,), "trials": (list,)}
ENTRY_FIELDS = {"index": (int,), "study": (int,), "trial": (int,), "seed": (int,), "config": (dict,)}


def check_place(sweep: dict[str, Any], path: Path) -> None:
    """Raise :class:`DamagedRecord` where the plan ``sweep`` (read from ``path``) is not the one of
    the folder it lies in: a sweep's folder is ``<workload>-<size>/<submission>/<ruleset>-<sweep_id>``,
    so another sweep's file copied over it would pass its trials off as that sweep's (the folder's
    trials listed under another submission, a rerun finding the other plan's trials finished)."""
    folder = Path(os.path.abspath(path)).parent  # as found: a link in the path (scratch space) is not resolved
    found = (folder.parent.parent.name, folder.parent.name, folder.name)
    expected = (f"{sweep['workload']}-{sweep['size']}", sweep["submission"], f"{sweep['ruleset']}-{sweep['sweep_id']}")
    if found != expected:
        raise DamagedRecord(path, f"it is the plan of {sweep['submission']}'s sweep {expected[2]} on {expected[0]}, "
                                  f"but lies in {'/'.join(found)} (a sweep folder is "
                                  f"<workload>-<size>/<submission>/<ruleset>-<sweep id>): another sweep's file "
                                  f"copied over this one's?")


def load_sweep(folder: Path) -> dict[str, Any]:
    """The sweep in ``folder``, checked, with absolute paths rebuilt from where the file is now.

    ``dir``, every entry's ``record_dir`` and its config's ``record_dir``/``results`` point into
    ``folder`` (older files held absolute paths: they are ignored the same way), so a moved
    results folder keeps working. A damaged file raises :class:`DamagedRecord` naming it.
    """
    folder = Path(folder).resolve()
    path = folder / SWEEP_FILE
    sweep = read_json(path)
    if sweep is None:
        raise UserError(f"No {SWEEP_FILE} in {folder}.")
    check_fields(sweep, SWEEP_FIELDS, path)
    trials = []
    for position, entry in enumerate(sweep["trials"]):
        if not isinstance(entry, dict):
            raise DamagedRecord(path, f"trials[{position}] should be an object")
        check_fields(entry, ENTRY_FIELDS, path, where=f"trials[{position}].")
        record_dir = str(folder / _record_path(entry["study"], entry["trial"]))
        results = str(folder.parents[2]) if len(folder.parents) > 2 else str(folder)
        trials.append({**entry, "record_dir": record_dir,
                       "config": {**entry["config"], "record_dir": record_dir, "results": results}})
    return {**sweep, "dir": str(folder), "trials": trials}


def trial_config(entry: dict[str, Any]) -> DictConfig:
    """The typed trial config of a sweep entry (as returned by :func:`load_sweep`)."""
    return OmegaConf.merge(OmegaConf.structured(TrialConfig), entry["config"])


def trial_state(record_dir: Path) -> str:
    """pending (no record), running (an attempt started), damaged (an unusable manifest, see
    :class:`DamagedRecord`), or the final status of the record."""
    try:
        manifest = read_manifest(Path(record_dir) / "manifest.json")
    except DamagedRecord:
        return "damaged"
    if manifest is None:
        return "pending"
    return manifest["status"] if manifest["status"] in FINAL_STATUSES else "running"


def unfinished(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries whose trial has not ended (pending, started and interrupted/running, or failed
    by the harness rather than the submission).

    A damaged record is not among them: running it again would overwrite what is there.
    """
    return [t for t in sweep["trials"] if needs_run(Path(t["record_dir"]))]


def needs_run(record_dir: Path) -> bool:
    """Whether running the trial's command would do something: it has not ended, or the harness failed it."""
    state = trial_state(record_dir)
    if state == "failed":  # a harness failure is retried; a submission's is final
        return harness_failed(read_manifest(record_dir / "manifest.json"))
    return state not in (*FINAL_STATUSES, "damaged")
