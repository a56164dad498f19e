"""Comparisons: several sweeps (workloads) side by side, with time to target and performance
profiles."""
