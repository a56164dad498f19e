"""What a fresh Ray worker runs first: the training stack's imports, before any sweep needs them.

A light module on purpose: the server submits this right after Ray starts, before it imports
torch itself, so the workers' imports overlap the server's own start-up.
"""

from __future__ import annotations

from collections.abc import Sequence


def warm_up(modules: Sequence[str] = ()) -> str:
    """Import the training stack in a fresh worker, and ``modules`` (named by the caller: what
    its tasks will load besides), so the first trials skip that cost."""
    import importlib

    import ray
    import torch

    for name in modules:
        importlib.import_module(name)

    import optisweep.workers.backends.stacked  # noqa: F401 (the import is the point)
    from optisweep.workers.workloads.digits import digits_split

    digits_split(torch.device("cpu"))
    # The first torch.optim optimizer a process builds imports torch._dynamo (about 1.5 s here);
    # packs build them to export members (compaction, checkpoints).
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    return str(ray.get_runtime_context().get_node_id())
