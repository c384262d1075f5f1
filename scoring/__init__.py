"""Scoring from records alone: tables of time-to-target now; profiles and leaderboards later.

Nothing here imports the harness's training code: scoring reads ``manifest.json`` and
``evals.jsonl`` files (schema in ``results/README.md``) and nothing else.
"""
