"""Trials: one configuration trained once, with its per-epoch metrics."""
