"""The trial core: the training loop, its clock, checkpoints, records, memory, progress, locks, pruning."""
