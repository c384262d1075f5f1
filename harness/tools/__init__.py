"""Tools on top of trials: calibration, info, trajectories, the conformance check."""
