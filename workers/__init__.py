"""Ray workers: workloads and training loops that use the shared optimizers module."""
