"""Run a population and one torch.optim per member side by side on the same gradients."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from optisweep.optimizers import MemberConfig, PopulationOptimizer, create_optimizer, get_spec
from optisweep.optimizers.flat import FlatParameters

SHAPES: tuple[tuple[int, ...], ...] = ((6, 4), (4,), (3, 2, 2))


def _lion() -> type[torch.optim.Optimizer]:
    from lion_pytorch import Lion

    return Lion  # type: ignore[no-any-return]


REFERENCES: dict[str, Callable[[], type[torch.optim.Optimizer]]] = {
    "lion": _lion,
}
"""The reference implementation of each family torch.optim lacks (a test dependency only);
the parity tests compare those families' population rules against it, the others against
torch.optim."""


def reference_class(name: str) -> type[torch.optim.Optimizer]:
    """The class family ``name`` is checked against: its reference package's, or torch.optim's."""
    if name in REFERENCES:
        return REFERENCES[name]()
    return get_spec(name).torch_class


def reference_optimizer(config: MemberConfig, params: list[Tensor]) -> torch.optim.Optimizer:
    """The optimizer a member is checked against: its reference package's, or torch.optim's."""
    hyperparameters = config.validated().model_dump()
    if config.optimizer in REFERENCES:
        return REFERENCES[config.optimizer]()(params, **hyperparameters)
    return create_optimizer(config.optimizer, params, **config.hyperparameters)


@dataclass
class SideBySide:
    """A population over stacked params, and for each member its own params and torch optimizer."""

    members: list[MemberConfig]
    population: PopulationOptimizer
    stacked: list[Tensor]
    alone: list[list[Tensor]]
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[Any] = field(default_factory=list)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(1))
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    flat: FlatParameters | None = None

    def grads(self, scale: float = 1.0) -> list[Tensor]:
        """Random gradients for every stacked parameter (drawn on the CPU, then moved)."""
        k = len(self.members)
        return [
            (torch.randn((k, *shape), generator=self.generator) * scale).to(self.device)
            for shape in SHAPES
        ]

    def step(
        self, grads: Sequence[Tensor], before_alone: Callable[[int], None] | None = None
    ) -> None:
        """One step of the population and of every (unfrozen) torch optimizer."""
        if self.flat is not None:  # gradients land in the flat buffer, as backward puts them
            self.population.zero_grad()
        for p, g in zip(self.stacked, grads, strict=True):
            if self.flat is not None:
                assert p.grad is not None
                p.grad.copy_(g)
            else:
                p.grad = g.clone()
        self.population.step()
        frozen = self.population.frozen
        for k, (params, optimizer) in enumerate(zip(self.alone, self.optimizers, strict=True)):
            if frozen[k]:
                continue
            for p, g in zip(params, grads, strict=True):
                p.grad = g[k].clone()
            if before_alone is not None:
                before_alone(k)
            optimizer.step()


def side_by_side(
    members: Sequence[MemberConfig | dict[str, Any]],
    *,
    seed: int = 0,
    compile: bool = False,
    device: str = "cpu",
    torch_options: dict[str, Any] | None = None,
    flat: bool = False,
) -> SideBySide:
    """Identical starting parameters for a population and K separate torch optimizers.

    The torch optimizers come from ``create_optimizer`` (fused on CUDA where torch has it), or,
    with ``torch_options`` (``{"foreach": True}``), from torch.optim's class with those options.
    With ``flat`` the population's parameters are views of one ``FlatParameters`` buffer.
    """
    configs = [MemberConfig.model_validate(m) for m in members]
    generator = torch.Generator().manual_seed(seed)
    init = [torch.randn((len(configs), *shape), generator=generator).to(device) for shape in SHAPES]
    flat_params = FlatParameters(init) if flat else None
    stacked = flat_params.params if flat_params else [t.clone().requires_grad_() for t in init]
    alone = [[t[k].clone().requires_grad_() for t in init] for k in range(len(configs))]
    optimizers = [
        reference_optimizer(c, params)
        if torch_options is None
        else c.spec.torch_class(params, **c.validated().model_dump(), **torch_options)
        for c, params in zip(configs, alone, strict=True)
    ]
    population = PopulationOptimizer(stacked, configs, compile=compile, flat=flat_params)
    return SideBySide(
        configs,
        population,
        stacked,
        alone,
        optimizers,
        device=torch.device(device),
        flat=flat_params,
    )


def max_param_diff(run: SideBySide) -> float:
    """Largest absolute difference between a member's stacked row and its own parameters."""
    return max(
        (stacked[k] - own).abs().max().item()
        for k, params in enumerate(run.alone)
        for stacked, own in zip(run.stacked, params, strict=True)
    )


def max_state_diff(run: SideBySide) -> float:
    """Largest absolute difference between exported member state and torch.optim's own state."""
    worst = 0.0
    for k, optimizer in enumerate(run.optimizers):
        exported = run.population.export_member(k).optimizer_state["state"]
        reference = optimizer.state_dict()["state"]
        assert set(exported) == set(reference), f"member {k}: state params differ"
        for index, ref_entry in reference.items():
            entry = exported[index]
            assert set(entry) == set(ref_entry), (
                f"member {k} param {index}: {set(entry)} vs {set(ref_entry)}"
            )
            for slot, value in ref_entry.items():
                mine = entry[slot]
                diff = torch.as_tensor(mine).to("cpu", torch.float64) - torch.as_tensor(value).to(
                    "cpu", torch.float64
                )
                worst = max(worst, diff.abs().max().item())
    return worst
