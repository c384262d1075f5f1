"""Workload families: one module per family, each exporting ``WORKLOAD``.

Modules whose name starts with ``_`` are shared helpers, not workloads.
"""
