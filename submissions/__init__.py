"""Training algorithms: one module per submission, each exporting ``SUBMISSION``.

Modules whose name starts with ``_`` (such as ``_template.py``) are not registered.
"""
