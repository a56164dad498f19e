"""Run a population and one torch.optim per member side by side on the same gradients."""

from __future__ import annotations

import inspect
import math
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


class MuonWithAdamW(torch.optim.Optimizer):
    """The reference for ``muon``: torch.optim.Muon on each group's hidden matrices (its
    ``roles``, else every 2-D parameter) and torch.optim.AdamW on the rest, with the group's
    ``adamw_*`` hyperparameters; AdamW's lr follows the group's lr as a scheduler moves it."""

    def __init__(self, params: Any, **hyperparameters: Any) -> None:
        super().__init__(params, hyperparameters)
        self.inner: list[tuple[Any, Any, float]] = []
        for group in self.param_groups:
            roles = group.get("roles") or [
                "muon" if p.ndim == 2 else "adamw" for p in group["params"]
            ]
            muon = [p for p, r in zip(group["params"], roles, strict=True) if r == "muon"]
            rest = [p for p, r in zip(group["params"], roles, strict=True) if r != "muon"]
            keys = (
                "weight_decay",
                "momentum",
                "nesterov",
                "ns_coefficients",
                "eps",
                "ns_steps",
                "adjust_lr_fn",
            )
            self.inner.append(
                (
                    torch.optim.Muon(muon, lr=group["lr"], **{k: group[k] for k in keys})
                    if muon
                    else None,
                    torch.optim.AdamW(
                        rest,
                        lr=group["adamw_lr"],
                        betas=group["adamw_betas"],
                        eps=group["adamw_eps"],
                        weight_decay=group["adamw_weight_decay"],
                        foreach=True,
                    )
                    if rest
                    else None,
                    group["lr"],
                )
            )

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """One step of both."""
        for group, (muon, adamw, base) in zip(self.param_groups, self.inner, strict=True):
            for optimizer, lr in (
                (muon, group["lr"]),
                (adamw, group["adamw_lr"] * group["lr"] / base),
            ):
                if optimizer is None:
                    continue
                optimizer.param_groups[0]["lr"] = lr
                optimizer.step()
                for p in optimizer.param_groups[0]["params"]:
                    if optimizer.state[p]:
                        self.state[p] = optimizer.state[p]


def _muon() -> type[torch.optim.Optimizer]:
    return MuonWithAdamW


def _schedulefree(name: str) -> Callable[[], type[torch.optim.Optimizer]]:
    def reference() -> type[torch.optim.Optimizer]:
        import schedulefree

        cls = getattr(schedulefree, name)

        class InTrainMode(cls):  # type: ignore[misc, valid-type]
            """The reference, put in train mode as its users must before the first step."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.train()

        InTrainMode.__name__ = name
        InTrainMode.__signature__ = inspect.signature(cls)  # type: ignore[attr-defined]
        return InTrainMode

    return reference


def _prodigy() -> type[torch.optim.Optimizer]:
    from prodigyopt import Prodigy

    class Unbounded(Prodigy):  # type: ignore[misc]
        """The reference, taking optisweep's growth_rate None for its unbounded inf."""

        def __init__(self, params: Any, growth_rate: float | None = None, **kw: Any) -> None:
            super().__init__(
                params, growth_rate=math.inf if growth_rate is None else growth_rate, **kw
            )

    Unbounded.__name__ = "Prodigy"
    Unbounded.__signature__ = inspect.signature(Prodigy)  # type: ignore[attr-defined]
    return Unbounded


REFERENCES: dict[str, Callable[[], type[torch.optim.Optimizer]]] = {
    "prodigy": _prodigy,
    "lion": _lion,
    "muon": _muon,
    "schedulefree_adamw": _schedulefree("AdamWScheduleFree"),
    "schedulefree_sgd": _schedulefree("SGDScheduleFree"),
}
"""The reference implementation of each family torch.optim lacks (a test dependency only);
the parity tests compare those families' population rules against it, the others against
torch.optim."""


def reference_class(name: str) -> type[torch.optim.Optimizer]:
    """The class family ``name`` is checked against: its reference package's, or torch.optim's."""
    if name == "muon":  # its matrices' reference; the AdamW beside it is torch.optim.AdamW
        return torch.optim.Muon
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


MUON_TOLERANCE = 1e-3
"""How far a Muon member's matrices may drift from torch.optim.Muon's in 60 float64 steps.
Both orthogonalise in bfloat16, and the population's batched products (baddbmm over members)
round an element differently from torch's one-matrix addmm about once in 30 iterations of a
6x4 matrix; each such flip moves a parameter by lr * ratio * one bfloat16 ulp of that element
(about 1e-4 at lr 0.02; seen: 2e-4 after 60 steps). A wrong step (no Nesterov, another lr
ratio, AdamW's update) differs by about lr every step: 1e-1 to 1 after 60. Everything else of
a Muon member, its momentum buffers and its AdamW side, is held to the families' tolerance."""


def max_param_diff(run: SideBySide, *, muon_matrices: bool = False) -> float:
    """Largest absolute difference between a member's stacked row and its own parameters:
    every parameter but a Muon member's matrices, or (``muon_matrices``) those alone."""
    return max(
        (
            (stacked[k] - own).abs().max().item()
            for k, params in enumerate(run.alone)
            for stacked, own in zip(run.stacked, params, strict=True)
            if (run.members[k].optimizer == "muon" and own.dim() == 2) == muon_matrices
        ),
        default=0.0,
    )


def max_state_diff(run: SideBySide) -> float:
    """Largest difference between exported member state and the reference's own state, per
    parameter and (where the reference keeps them there: schedule-free, Prodigy) in its param
    groups; relative to the state's size where that is over 1 (Prodigy's s grows as d / d0)."""
    worst = 0.0
    for k, optimizer in enumerate(run.optimizers):
        exported = run.population.export_member(k).optimizer_state
        reference = optimizer.state_dict()
        assert set(exported["state"]) == set(reference["state"]), f"member {k}: state params differ"
        for index, ref_entry in reference["state"].items():
            entry = exported["state"][index]
            assert set(entry) == set(ref_entry), (
                f"member {k} param {index}: {set(entry)} vs {set(ref_entry)}"
            )
            for slot, value in ref_entry.items():
                worst = max(worst, _difference(entry[slot], value))
        rule = run.members[k].spec.rule
        if rule.group_scalars:
            for mine, theirs in zip(
                exported["param_groups"], reference["param_groups"], strict=True
            ):
                for name in (*rule.scalars, "k"):
                    worst = max(worst, _difference(mine[name], theirs[name]))
    return worst


def _difference(mine: Any, reference: Any) -> float:
    mine = torch.as_tensor(mine).to("cpu", torch.float64)
    reference = torch.as_tensor(reference).to("cpu", torch.float64)
    scale = max(1.0, reference.abs().max().item())
    return (mine - reference).abs().max().item() / scale
