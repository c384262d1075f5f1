"""Hydra config tree (a package so that Hydra finds it in any install: ``pkg://configs``)."""
