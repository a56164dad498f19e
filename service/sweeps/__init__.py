"""Sweeps: a search over optimizer family, learning rate and betas."""
