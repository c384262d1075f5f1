"""Load trial records into tidy pandas tables (one row per trial, one row per evaluation)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from harness.records import FINAL_STATUSES, read_json, read_jsonl


def find_trials(root: Path) -> list[Path]:
    """Every trial folder (one holding a manifest.json) under ``root``."""
    return sorted(p.parent for p in Path(root).rglob("manifest.json"))


def load_trials(root: Path) -> pd.DataFrame:
    """One row per finished trial: identity, hyperparameters (``hp.*``) and outcome."""
    rows = []
    for folder in find_trials(root):
        manifest = read_json(folder / "manifest.json") or {}
        summary = manifest.get("summary") or {}
        if manifest.get("status") not in FINAL_STATUSES:
            continue
        ttt = summary.get("time_to_target_s")
        rows.append({
            "workload": manifest["workload"],
            "size": manifest["size"],
            "submission": manifest["submission"],
            "submission_revision": manifest.get("submission_revision", 1),
            "seed": manifest["seed"],
            "study": manifest.get("study"),
            "trial": manifest.get("trial"),
            "ruleset": manifest.get("ruleset", "single"),
            "schema_version": manifest.get("schema_version"),
            "status": manifest["status"],
            "time_to_target_s": math.inf if ttt is None else float(ttt),
            "steps_to_target": summary.get("steps_to_target"),
            "best_validation": summary.get("best_validation"),
            "target": manifest["target"],
            "metric": manifest["metric"],
            "higher_is_better": manifest["higher_is_better"],
            "max_runtime_s": manifest["max_runtime_s"],
            "steps": summary.get("steps"),
            "record_dir": str(folder),
            "state_bytes_per_param": (summary.get("memory") or {}).get("optimizer_state_bytes_per_parameter"),
            "peak_memory_bytes": (summary.get("memory") or {}).get("peak_memory_bytes"),
            "pruned_rule": (summary.get("pruned") or {}).get("rule"),
            "pruned_tau_max": (summary.get("pruned") or {}).get("tau_max"),
            "special_component": (summary.get("routing") or {}).get("special"),
            "special_parameters": (summary.get("routing") or {}).get("special_parameters"),
            **{f"hp.{k}": v for k, v in manifest.get("hparams", {}).items()},
        })
    return pd.DataFrame(rows)


def load_evals(record_dir: Path) -> pd.DataFrame:
    """The evaluations of one trial: step, submission time and every metric as columns."""
    rows = []
    for row in read_jsonl(Path(record_dir) / "evals.jsonl"):
        if row.get("event") == "eval":
            rows.append({"step": row["step"], "submission_time_s": row["submission_time_s"], **row["metrics"]})
    return pd.DataFrame(rows)
