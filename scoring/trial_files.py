"""One trial's record files as scoring reads them: the checks a ``manifest.json`` must pass to be
scored, the ``end`` line of its ``evals.jsonl`` found from the file's tail, and the row a trial
becomes; and the kinds of :class:`Problem` a trial (or sweep plan) can have.

Plain Python, without pandas or NumPy: :mod:`scoring.record_walk` reads records with it in forked
processes started before ``optbench score`` imports those (see there why).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config.code_files import code_digest, package_list
from harness.core.records import (
    EVALS_FILE,
    FINAL_STATUSES,
    MANIFEST_FIELDS,
    MANIFEST_FILE,
    SUMMARY_FIELDS,
    DamagedRecord,
    numbered_jsonl,
    read_manifest,
)
from harness.errors import OptbenchWarning

# Problem kinds. Lost (a trial of the plan not scored): MISSING, RUNNING, DAMAGED, FOREIGN, UNREADABLE. Scored from the
# manifest: EVALS. Outside the plan (not scored, and no planned trial is lost): STRAY.
MISSING = "missing"  # a planned sweep trial without manifest.json (not run yet, or its record was lost)
RUNNING = "running"  # manifest.json says running: interrupted, or still running
DAMAGED = "damaged"  # manifest.json exists but cannot be used
EVALS = "evals"  # a finished trial whose evals.jsonl is missing or lacks its end line (one contradicting the
#                  manifest is DAMAGED: neither file is believed)
SWEEP = "sweep"  # sweep.json cannot be read: which trials it planned is unknown
FOREIGN = "foreign"  # in a sweep's folder, a record that is not the trial its plan puts there (copied or moved
#                     from another slot or sweep, or edited)
STRAY = "stray"  # in a sweep's folder, a record in a folder its plan has no trial of (a backup copy, a study
#                 copied in beside the planned ones)
UNREADABLE = "unreadable"  # a folder that cannot be listed (its permissions): the records under it are unknown
MISPLACED = "misplaced"  # a record file directly in the results folder, where no trial's record lies: not read


@dataclass(frozen=True)
class Problem:
    """One trial (or sweep file) that is missing, unfinished or damaged."""

    kind: str
    record_dir: Path  # the trial's folder (for SWEEP: the sweep's folder)
    file: Path  # the file that is missing or damaged
    detail: str  # what was found, against what was expected
    submission: str | None = None
    workload: str | None = None  # "<workload>-<size>"
    ruleset: str | None = None
    sweep: Path | None = None  # the sweep folder of a sweep trial
    study: int | None = None  # its study in the sweep's plan

    @property
    def lost(self) -> bool:
        """Whether a trial of the plan (or a lone trial) does not count in the scores: missing,
        unfinished, damaged or not the slot's own. Not an unreadable plan (its trials are scored as
        found), a record scored from its manifest, nor a record outside the plan (none is lost)."""
        return self.kind not in (EVALS, SWEEP, STRAY, MISPLACED)

    @property
    def incomplete(self) -> bool:
        """Whether it makes its submission's records of its workload incomplete (the board marks them)."""
        return self.kind not in (STRAY, MISPLACED)


def _child(folder: str, *names: str) -> str:
    """``str(Path(folder, *names))`` for a folder spelled as ``str(Path(...))`` spells it, quicker."""
    tail = os.sep.join(names)
    if folder == ".":
        return tail
    return folder + tail if folder.endswith(os.sep) else folder + os.sep + tail


def _problem(kind: str, folder: Path, file: Path, detail: str, sweep: dict[str, Any] | None,
             entry: dict[str, Any] | None, manifest: dict[str, Any] | None = None) -> Problem:
    if sweep is not None and entry is not None:
        return Problem(kind, folder, file, detail, sweep["submission"], f"{sweep['workload']}-{sweep['size']}",
                       sweep["ruleset"], folder.parent.parent, entry["study"])
    if manifest is not None:
        return Problem(kind, folder, file, detail, manifest["submission"],
                       f"{manifest['workload']}-{manifest['size']}", str(manifest.get("ruleset") or "single"))
    return Problem(kind, folder, file, detail, ruleset=None)


def _read_trial(folder: str, unlisted: bool, sweep: dict[str, Any] | None,
                entry: dict[str, Any] | None) -> tuple[dict[str, Any] | None, Problem | None]:
    """(row or None, problem or None) of one trial folder; (None, None) for an ``unlisted`` (planned,
    not listed) folder that holds neither a manifest.json nor an evals.jsonl."""
    row, problem, _ = _read_trial_files(folder, unlisted, sweep, entry)
    return row, problem


def _read_trial_files(folder: str, unlisted: bool, sweep: dict[str, Any] | None, entry: dict[str, Any] | None
                      ) -> tuple[dict[str, Any] | None, Problem | None, bool]:
    """:func:`_read_trial`, and whether the trial was read cleanly: finished, no problem, its end
    line found at the tail of evals.jsonl (so nothing was warned about)."""
    path = _child(folder, MANIFEST_FILE)
    evals = _child(folder, EVALS_FILE)
    try:
        manifest = _load_manifest(path)
        if manifest is not None:
            _check_for_scoring(manifest, path)
    except DamagedRecord as error:
        return None, _problem(DAMAGED, Path(folder), Path(path), f"damaged: {error.problem}", sweep, entry), False
    if manifest is None:
        if unlisted and not os.path.exists(evals):
            return None, None, False
        return None, _problem(MISSING, Path(folder), Path(path), "no manifest.json, only an evals.jsonl (its record "
                              "was lost)", sweep, entry), False
    if entry is not None:
        said = (manifest.get("study"), manifest.get("trial"), manifest["seed"])
        planned = (entry["study"], entry["trial"], entry["seed"])
        if said != planned:
            return None, _problem(FOREIGN, Path(folder), Path(path), "not the trial the sweep's plan (sweep.json) "
                                  "puts here: its manifest says study {}, trial {}, seed {} where the plan says "
                                  "study {}, trial {}, seed {} (a record copied or moved from another slot or sweep, "
                                  "or an edited one)".format(*said, *planned), sweep, entry, manifest), False
    if manifest["status"] not in FINAL_STATUSES:
        return None, _problem(RUNNING, Path(folder), Path(path), "status running (interrupted, or still running)",
                              sweep, entry, manifest), False
    end, present, whole = _end_line_read(evals)
    problem = None
    if not present:
        problem = "missing"
    elif end is None:
        problem = "has no end line"
    elif (said := _disagreement(end, manifest)) is not None:
        return None, _problem(DAMAGED, Path(folder), Path(evals), f"damaged: it ends with {said[0]} where "
                              f"manifest.json says {said[1]}: the two records of the trial disagree (one was edited "
                              f"or damaged), so neither is believed", sweep, entry, manifest), False
    if problem is not None:
        problem = _problem(EVALS, Path(folder), Path(evals), problem, sweep, entry, manifest)
    return _row(manifest, folder, evals_file=present), problem, problem is None and not whole


def _disagreement(end: dict[str, Any], manifest: dict[str, Any]) -> tuple[str, str] | None:
    """What the evaluations' end line says otherwise than the manifest (the status, the time or the
    steps to the target, where the end line has them), as (its words, the manifest's value)."""
    if end.get("status") != manifest["status"]:
        return f"status {end.get('status')!r}", repr(manifest["status"])
    for name in ("time_to_target_s", "steps_to_target"):
        if name in end and end[name] != manifest["summary"].get(name):
            return f"{name} {end[name]!r}", repr(manifest["summary"].get(name))
    return None


def _load_manifest(path: str) -> dict[str, Any] | None:
    """:func:`harness.core.records.read_manifest`, with a quicker read of a manifest that passes its
    checks; any other (unreadable, not JSON, not an object, a field missing or of the wrong type)
    is handed to ``read_manifest`` itself, which raises its own :class:`DamagedRecord`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return read_manifest(Path(path))
    try:
        chunks = [os.read(fd, 1 << 16)]
        while len(chunks[-1]) == 1 << 16:
            chunks.append(os.read(fd, 1 << 16))
        manifest = json.loads(b"".join(chunks).decode("utf-8"))
        if not _fits(manifest, _EXACT[id(MANIFEST_FIELDS)]):
            raise ValueError("a field")
        status, summary = manifest["status"], manifest.get("summary")
        if status in FINAL_STATUSES and isinstance(summary, dict):
            if not _fits(summary, _EXACT[id(SUMMARY_FIELDS)]):
                raise ValueError("a summary field")
        elif status != "running":
            raise ValueError(status)
        return manifest
    except (OSError, ValueError, TypeError, AttributeError):
        return read_manifest(Path(path))  # raises what is wrong, as every reader of manifests says it
    finally:
        os.close(fd)


# How much of an evals.jsonl's end _end_line reads first (an end line is ~1-3 kB; 4x more until it fits).
_TAIL_BYTES = 16384


def _end_line(path: str) -> tuple[dict[str, Any] | None, bool]:
    """(the last ``end`` event of an evals.jsonl or None, whether the file exists): see
    :func:`_end_line_read`."""
    end, present, _ = _end_line_read(path)
    return end, present


def _end_line_read(path: str) -> tuple[dict[str, Any] | None, bool, bool]:
    """(the last ``end`` event of an evals.jsonl or None, whether the file exists, whether all of
    it had to be read).

    Read from the file's tail: when its last line is a well-formed ``end`` event, that is the
    answer, and nothing before it is read. Otherwise (a torn or corrupt last line, no end line,
    something after it) the whole file is read as :func:`load_evals` reads it: a torn line is
    then reported here, once, with the same warning. A torn line *before* an intact end line is
    not looked for here; it is reported when the evaluations are read (the curves).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None, False, False
    except OSError:  # no permission, ...
        return (_end_line_of_all(path), True, True) if os.path.isfile(path) else (None, False, False)
    try:
        last = _last_line(fd, os.fstat(fd).st_size)
    except OSError:  # a folder of that name, ...
        last = None
        if not os.path.isfile(path):
            return None, False, False
    finally:
        os.close(fd)
    if last is not None:
        try:
            row = json.loads(last)
        except (ValueError, UnicodeDecodeError):
            row = None
        if isinstance(row, dict) and row.get("event") == "end":
            return row, True, False
    return _end_line_of_all(path), True, True


def _last_line(fd: int, size: int) -> bytes | None:
    """The last non-blank line of the file open as ``fd``, of ``size`` bytes (None: none)."""
    window = _TAIL_BYTES
    while True:
        start = max(0, size - window)
        text = os.pread(fd, size - start, start).rstrip()
        cut = text.rfind(b"\n")
        if cut >= 0 or start == 0:
            line = text[cut + 1:].strip()
            return line or None
        window *= 4


def _end_line_of_all(path: str) -> dict[str, Any] | None:
    end = None
    for _, row in _numbered_rows(Path(path)):
        if row.get("event") == "end":
            end = row
    return end


_OPTIONAL = {"study": (int, type(None)), "trial": (int, type(None)), "ruleset": (str,),
             "submission_revision": (int,), "hparams": (dict,), "schema_version": (int, type(None)),
             "precision": (str,), "compile": (bool,), "submission_source_sha256": (str, type(None)),
             "workload_source_sha256": (str, type(None)), "submission_code": (dict,), "workload_code": (dict,),
             "submission_packages": (dict,),
             "data_sha256": (str, type(None)), "target_data_sha256": (str, type(None))}
_OPTIONAL_SUMMARY = {"steps_to_target": (int, float, type(None)), "best_validation": (int, float, type(None)),
                     "memory": (dict, type(None)), "pruned": (dict, type(None)), "routing": (dict, type(None))}


def _fits(data: dict[str, Any], fields: tuple[tuple[str, frozenset[type]], ...], optional: bool = False) -> bool:
    """Whether every key of ``fields`` in ``data`` (with ``optional``: when present) has one of its
    types exactly. For values parsed from JSON (dict, list, str, int, float, bool, None) this is
    :func:`harness.core.records.check_fields`' test (bool is not a number), only quicker; a False
    is handed to the full check, which names what is wrong."""
    for key, types in fields:
        value = data.get(key, _ABSENT)
        if type(value) not in types and not (optional and value is _ABSENT):
            return False
    return True


_ABSENT = object()
_EXACT = {id(fields): tuple((key, frozenset(types)) for key, types in fields.items())
          for fields in (MANIFEST_FIELDS, SUMMARY_FIELDS, _OPTIONAL, _OPTIONAL_SUMMARY)}


def _check_for_scoring(manifest: dict[str, Any], path: Path | str) -> None:
    """What scoring relies on beyond :func:`harness.core.records.read_manifest`'s checks: the optional
    keys' types, and an outcome that agrees with itself (a finite time exactly when reached)."""
    for fields, data, where in ((_OPTIONAL, manifest, ""), (_OPTIONAL_SUMMARY, manifest.get("summary") or {},
                                                             "summary.")):
        if _fits(data, _EXACT[id(fields)], optional=True):
            continue
        for key, types in fields.items():
            value = data.get(key)
            if key in data and (not isinstance(value, types) or isinstance(value, bool)):
                expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
                raise DamagedRecord(path, f"{where}'{key}' should be {expected}, found "
                                          f"{type(value).__name__} {value!r}"[:200])
    _check_target(manifest, path)
    if manifest["status"] not in FINAL_STATUSES:
        return
    summary = manifest["summary"]
    if summary["status"] != manifest["status"]:
        raise DamagedRecord(path, f"status is {manifest['status']!r} but summary.status is {summary['status']!r}")
    time, steps = summary["time_to_target_s"], summary.get("steps_to_target")
    if manifest["status"] == "reached":
        if time is None or not math.isfinite(time) or time <= 0:
            raise DamagedRecord(path, f"status is 'reached' but summary.time_to_target_s is {time!r} (expected a "
                                      f"finite number of seconds > 0: the first evaluation follows a step)")
        if time > manifest["max_runtime_s"] * (1 + 1e-9):
            raise DamagedRecord(path, f"status is 'reached' but summary.time_to_target_s {time!r} exceeds the budget "
                                      f"max_runtime_s {manifest['max_runtime_s']!r} (a target met after the budget "
                                      f"does not count)")
        if steps is None or not math.isfinite(steps):
            raise DamagedRecord(path, f"status is 'reached' but summary.steps_to_target is {steps!r} (expected a "
                                      f"number of steps)")
    elif time is not None or steps is not None:
        raise DamagedRecord(path, f"status is {manifest['status']!r} but summary.time_to_target_s / "
                                  f"steps_to_target are {time!r} / {steps!r} (expected null: never reached)")


def _check_target(manifest: dict[str, Any], path: Path | str) -> None:
    """The target the trial ran for (its identity's size spec, which its config hash covers) is the
    one its record states (``target``, ``summary.target``): a record whose target was edited, alone or
    with every record of its workload (which the check of one target per workload cannot see), is
    damaged. Records without an identity (older ones) are not checked."""
    identity = manifest.get("identity")
    spec = identity.get("spec") if isinstance(identity, dict) else None
    ran_for = spec.get("target") if isinstance(spec, dict) else None
    if not isinstance(ran_for, (int, float)) or isinstance(ran_for, bool):
        return
    summary = manifest.get("summary") if isinstance(manifest.get("summary"), dict) else {}
    for where, value in (("target", manifest.get("target")), ("summary.target", summary.get("target"))):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value != ran_for:
            raise DamagedRecord(path, f"{where} is {value!r}, but the trial ran for the target {ran_for!r} (its "
                                      f"identity.spec.target): the record was edited")


PER_WORKLOAD_HPARAMS = ("batch_size",)  # a submission may choose them per workload (AlgoPerf's get_batch_size;
# a workload's batch-size range may exclude the default, and optbench then asks for another)


def tuning_setup(manifest: dict[str, Any]) -> str | None:
    """How a tuned trial's submission was tuned, as canonical JSON: under ``external`` its search
    space and the hyperparameters outside it (fixed: the defaults, or the values a tune command
    gave), under ``self`` its hyperparameters (the defaults: it searches nothing); the batch size
    aside (:data:`PER_WORKLOAD_HPARAMS`). The same for every workload of a submission under one
    ruleset, or its row of the table would stand for an algorithm tuned by hand per workload. None
    for a lone trial (``ruleset=single``: set by hand on purpose) or a record that does not say."""
    config = manifest.get("config")
    submission = config.get("submission") if isinstance(config, dict) else None
    hparams, ruleset = manifest.get("hparams"), manifest.get("ruleset")
    if ruleset not in ("external", "self") or not isinstance(submission, dict) or not isinstance(hparams, dict):
        return None
    space = (submission.get("search_space") or {}) if ruleset == "external" else {}
    fixed = {k: v for k, v in hparams.items() if k not in space and k not in PER_WORKLOAD_HPARAMS}
    return json.dumps({"search_space": space, "fixed": fixed}, sort_keys=True, default=str)


def generated_data(identity: dict[str, Any]) -> bool | None:
    """Whether the trial trained on generated data (its size's ``options.synthetic``: the smoke
    sizes, a pipeline check); None for a record that does not say."""
    spec = identity.get("spec")
    if not isinstance(spec, dict):
        return None
    options = spec.get("options")
    return bool(options.get("synthetic", False)) if isinstance(options, dict) else False


def size_budget(identity: dict[str, Any]) -> float | None:
    """The budget the trial's size registers (its identity's spec), in seconds; None for a record that
    does not say. A trial's ``max_runtime_s`` differs from it where a command overrode the budget."""
    spec = identity.get("spec")
    budget = spec.get("max_runtime_s") if isinstance(spec, dict) else None
    return float(budget) if _is_number(budget) else None


def workload_setup(identity: dict[str, Any]) -> str | None:
    """A trial's workload as its identity states it, but for the target and budget (compared on their
    own): the model, its options and the size's settings (evaluation cadence, step hint, data options),
    as canonical JSON; None for a record that does not say (made before identities were recorded)."""
    spec = identity.get("spec")
    if not isinstance(spec, dict):
        return None
    return json.dumps({"model": identity.get("model"), "model_options": identity.get("model_options"),
                       "spec": {k: v for k, v in spec.items() if k not in ("target", "max_runtime_s")}},
                      sort_keys=True, default=str)


def _row(manifest: dict[str, Any], folder: str, evals_file: bool) -> dict[str, Any]:
    summary = manifest["summary"]
    identity = manifest["identity"] if isinstance(manifest.get("identity"), dict) else {}
    ttt = summary["time_to_target_s"]
    memory, pruned, routing = (summary.get(k) or {} for k in ("memory", "pruned", "routing"))
    device = manifest.get("device")
    return {
        "workload": manifest["workload"],
        "size": manifest["size"],
        "submission": manifest["submission"],
        "submission_revision": manifest.get("submission_revision", 1),
        "submission_source_sha256": manifest.get("submission_source_sha256"),  # the code the record was made
        "workload_source_sha256": manifest.get("workload_source_sha256"),  # with; absent: not told (older)
        "submission_code_sha256": code_digest(manifest.get("submission_code") or {}),  # with the modules of
        "workload_code_sha256": code_digest(manifest.get("workload_code") or {}),  # its package it imports
        "submission_packages": package_list(manifest.get("submission_packages")),  # absent: not told (older)
        "workload_setup": workload_setup(identity),
        "synthetic_data": generated_data(identity),
        "tuning_setup": tuning_setup(manifest),
        "data_sha256": manifest.get("data_sha256"),  # the examples it trained on; absent: not told
        "target_data_sha256": manifest.get("target_data_sha256"),  # those its target was calibrated on
        "max_steps": ("none" if identity["max_steps"] is None else identity["max_steps"]) if "max_steps" in identity
        else None,  # the trial's step cap ("none": uncapped; None: the record does not say)
        "size_budget_s": size_budget(identity),  # the size's own budget, which max_runtime_s= may have overridden
        "config_hash": manifest.get("config_hash"),  # the trial's identity: a copied record has its original's
        "precision": manifest.get("precision", "fp32"),  # absent: made before precisions existed, fp32
        "compile": manifest.get("compile", False),  # torch.compile; absent: made before it existed, eager
        "seed": manifest["seed"],
        "study": manifest.get("study"),
        "trial": manifest.get("trial"),
        "ruleset": manifest.get("ruleset", "single"),
        "schema_version": manifest.get("schema_version"),
        "status": manifest["status"],
        "error_in": summary.get("error_in"),  # a failed trial's: submission.update, workload.evaluate, harness, ...
        "error_type": summary.get("error_type"),
        "time_to_target_s": math.inf if ttt is None else float(ttt),
        "steps_to_target": summary.get("steps_to_target"),
        "reached_at_first_eval": _reached_at_first_eval(manifest, summary),
        "best_validation": summary.get("best_validation"),
        "target": manifest["target"],
        "metric": manifest["metric"],
        "higher_is_better": manifest["higher_is_better"],
        "max_runtime_s": manifest["max_runtime_s"],
        "steps": summary.get("steps"),
        "submission_time_s": summary.get("submission_time_s"),  # charged seconds of all its steps
        "record_dir": folder,
        "evals_file": evals_file,
        "state_bytes_per_param": memory.get("optimizer_state_bytes_per_parameter"),
        "peak_memory_bytes": memory.get("peak_memory_bytes"),
        "peak_memory_kind": memory.get("peak_memory_kind"),  # cuda_allocated_growth | cpu_rss_growth
        "device_type": device.get("type") if isinstance(device, dict) else None,
        "nproc": manifest.get("nproc", 1),  # data parallel: the processes (GPUs) one trial trained on
        "isolation": manifest.get("isolation", "inprocess"),  # absent: made before isolation existed, in process
        "sandbox": _sandbox(manifest),  # a trainer process's files and network: confined, or why not (None: n/a)
        "cpu_threads": _cpu_threads(device),
        "hardware": _hardware(device),
        "process": _process(manifest.get("attempts")),
        "pruned_rule": pruned.get("rule"),
        "pruned_tau_max": pruned.get("tau_max"),
        "pruned_competitor": pruned.get("competitor"),  # rule (b): whose times the trial was stopped against
        "special_component": routing.get("special"),
        "special_parameters": routing.get("special_parameters"),
        "audit": _audit_kinds(manifest.get("submission_audit")),
        "clock_suspect": bool((summary.get("timing") or {}).get("clock_suspect", False)),
        **{f"hp.{k}": v for k, v in manifest.get("hparams", {}).items()},
    }


def _reached_at_first_eval(manifest: dict[str, Any], summary: dict[str, Any]) -> bool:
    """Whether a reached trial met the target at its first evaluation: evaluated every
    ``eval_every_steps``, by step ``eval_every_steps``; every ``eval_period_s``, before twice that
    (the second evaluation comes after it). Its time then measures the steps before that evaluation,
    not how fast it trains to the target. With both cadences set, evaluations of either come
    between, so it is not told (False)."""
    if manifest.get("status") != "reached":
        return False
    every, period = manifest.get("eval_every_steps"), manifest.get("eval_period_s")
    steps, time = summary.get("steps_to_target"), summary.get("time_to_target_s")
    if steps is None or time is None or (every is None) == (period is None):
        return False
    return steps <= every if every is not None else time < 2 * period


def _cpu_threads(device: Any) -> str | None:
    """A CPU trial's torch threads, the cores it trained on, as text (a column of numbers and Nones
    would turn into floats); None for a GPU trial's (not compared) or a record that does not say."""
    if not isinstance(device, dict) or device.get("type") != "cpu" or device.get("torch_threads") is None:
        return None
    return str(device["torch_threads"])


def _hardware(device: Any) -> str | None:
    """What a trial ran on, as score compares it: a GPU's name, or for a CPU trial the processor's
    model; None for a record that does not say (made before the model was recorded)."""
    if not isinstance(device, dict):
        return None
    found = device.get("name") if device.get("type") == "cuda" else device.get("cpu_model")
    return str(found) if found else None


def _sandbox(manifest: dict[str, Any]) -> str | None:
    """``"confined"``, why a trainer process was not (``"sandbox=false"``, the kernel's reason; a
    record of a trainer process without the key predates the sandbox), or None without one."""
    if manifest.get("isolation") != "process":
        return None
    entry = manifest.get("sandbox")
    if not isinstance(entry, dict):
        return "made before trainer processes were confined"
    return "confined" if entry.get("confined") is True else str(entry.get("why") or "not confined")


def _audit_kinds(audit: Any) -> str:
    """The kinds of escape hatch the submission's source audit found (harness/core/source_audit.py),
    comma-separated; "" for none or a record without an audit."""
    kinds = audit.get("kinds") if isinstance(audit, dict) else None
    return ", ".join(str(k) for k in kinds) if isinstance(kinds, list) else ""


def _process(attempts: Any) -> str | None:
    """``host:pid`` of the process that ran the trial's last attempt (where its memory was measured),
    or None when the manifest does not say."""
    last = attempts[-1] if isinstance(attempts, list) and attempts else None
    if not isinstance(last, dict) or last.get("pid") is None:
        return None
    return f"{last.get('host')}:{last['pid']}"


def _numbered_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every well-formed line; torn lines skipped with a warning."""
    try:
        rows = numbered_jsonl(path)
    except FileNotFoundError:
        warnings.warn(f"{path}: no such file; expected the trial's evaluations (one JSON object per line), its "
                      f"curve is left out", OptbenchWarning, stacklevel=3)
        return
    except OSError as error:
        warnings.warn(f"{path}: cannot be read ({error}); expected the trial's evaluations (one JSON object per "
                      f"line), its curve is left out", OptbenchWarning, stacklevel=3)
        return
    yield from rows


def _evaluations(record_dir: Path) -> list[dict[str, Any]]:
    path = Path(record_dir) / EVALS_FILE
    rows = []
    for number, row in _numbered_rows(path):
        if row.get("event") != "eval":
            continue
        step, seconds, metrics = row.get("step"), row.get("submission_time_s"), row.get("metrics")
        if not (_is_number(step) and _is_number(seconds) and isinstance(metrics, dict)):
            warnings.warn(f"{path}:{number}: skipped an evaluation line; expected step and submission_time_s "
                          f"(numbers) and metrics (an object)", OptbenchWarning, stacklevel=3)
            continue
        rows.append({"step": step, "submission_time_s": seconds, **metrics})
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
