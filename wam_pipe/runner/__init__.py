"""Turns a validated pipeline into a run: context, run directory, training loop, checkpoints, distributed set-up."""
