"""Scoring from records alone: the leaderboard (performance profiles, area scores, bootstrap
uncertainty, steps view), its tables, plots and HTML page, and AlgoPerf's logs (docs/scoring.md).

Nothing here imports the harness's training code or torch: scoring reads the records
(``manifest.json``, ``evals.jsonl``, ``sweep.json``; schema in ``results/README.md``) through
the harness's record readers, and nothing else. It sits between the trial core and the
orchestration in the layers of docs/architecture.md.
"""
