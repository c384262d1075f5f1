"""Sweeps: planning, launching (inline, processes, SLURM), tune, suite, status."""
