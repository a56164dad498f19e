"""Member k of a mixed population matches torch.optim applied to member k alone (float64)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import torch

from optisweep.optimizers import OPTIMIZERS, PopulationOptimizer
from tests.optimizers.helpers import MUON_TOLERANCE, max_param_diff, max_state_diff, side_by_side

TOLERANCE = 1e-10
STEPS = 100

# A grid per family that covers every code path: amsgrad, nesterov, centred, momentum,
# dampening, weight decay and non-default values of every continuous hyperparameter.
GRID: dict[str, list[dict[str, Any]]] = {
    "sgd": [{"lr": 0.1}, {"lr": 0.05, "weight_decay": 0.01}],
    "momentum": [
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
        {"lr": 0.02, "momentum": 0.5, "dampening": 0.3},
    ],
    "adagrad": [
        {"lr": 0.1},
        {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01},
    ],
    "adadelta": [{"lr": 1.0}, {"lr": 0.5, "rho": 0.95, "eps": 1e-5, "weight_decay": 0.01}],
    "rmsprop": [
        {"lr": 0.01},
        {"lr": 0.01, "centered": True},
        {"lr": 0.005, "momentum": 0.9},
        {"lr": 0.005, "alpha": 0.9, "centered": True, "momentum": 0.5, "weight_decay": 0.01},
    ],
    "adam": [
        {"lr": 0.01},
        {"lr": 0.01, "amsgrad": True},
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.01},
        {"lr": 0.02, "betas": (0.85, 0.95), "amsgrad": True, "weight_decay": 0.05},
    ],
    "adamw": [
        {"lr": 0.01},
        {"lr": 0.01, "amsgrad": True, "weight_decay": 0.1},
        {"lr": 0.01, "betas": (0.7, 0.9), "weight_decay": 0.0},
    ],
    "adamax": [{"lr": 0.01}, {"lr": 0.02, "betas": (0.8, 0.99), "weight_decay": 0.01}],
    "nadam": [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.99), "momentum_decay": 0.01, "weight_decay": 0.01},
    ],
    "radam": [
        {"lr": 0.01},
        {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.01},
        {"lr": 0.02, "betas": (0.9, 0.9), "weight_decay": 0.05, "decoupled_weight_decay": True},
    ],
    "adafactor": [
        {"lr": 0.01},
        {"lr": 0.05, "beta2_decay": -0.5, "eps": (1e-20, 1e-2), "d": 2.0},
        {"lr": 0.02, "weight_decay": 0.1},
    ],
    "muon": [
        {"lr": 0.02},
        {
            "lr": 0.01,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 0.05,
            "adamw_lr": 3e-3,
            "adamw_weight_decay": 0.01,
        },
        {"lr": 0.02, "adjust_lr_fn": "match_rms_adamw", "ns_steps": 3, "adamw_betas": (0.8, 0.99)},
    ],
    "schedulefree_adamw": [
        {"lr": 0.01},
        {"lr": 0.02, "betas": (0.95, 0.99), "weight_decay": 0.01, "warmup_steps": 10},
        {"lr": 0.005, "r": 0.5, "weight_lr_power": 1.0, "eps": 1e-6},
    ],
    "schedulefree_sgd": [
        {"lr": 0.05},
        {"lr": 0.02, "momentum": 0.8, "weight_decay": 0.01, "warmup_steps": 5},
    ],
    "prodigy": [
        {"lr": 1.0},
        {"lr": 0.5, "d_coef": 2.0, "weight_decay": 0.01, "growth_rate": 1.05},
        {"lr": 1.0, "betas": (0.0, 0.99), "weight_decay": 0.01, "decouple": False},
        {
            "lr": 1.0,
            "beta3": 0.9,
            "use_bias_correction": True,
            "safeguard_warmup": True,
            "d0": 1e-4,
        },
    ],
    "lion": [
        {"lr": 1e-3},
        {"lr": 3e-4, "betas": (0.95, 0.98), "weight_decay": 0.1},
    ],
}


def _mixed_members(order: str) -> list[dict[str, Any]]:
    members = [
        {"optimizer": name, "hyperparameters": hyperparameters}
        for name in sorted(GRID)
        for hyperparameters in GRID[name]
    ]
    if order == "interleaved":
        random.Random(0).shuffle(members)
    return members


def test_grid_covers_every_registered_family() -> None:
    assert set(GRID) == set(OPTIMIZERS)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
@pytest.mark.parametrize("order", ["grouped", "interleaved"])
def test_mixed_population_matches_torch_optim(order: str, flat: bool) -> None:
    run = side_by_side(_mixed_members(order), flat=flat)
    for _ in range(STEPS):
        run.step(run.grads())
    if flat:  # every step took the one-buffer path
        assert run.flat is not None
        assert run.flat.grads_in_place()
    assert max_param_diff(run) <= TOLERANCE
    assert max_param_diff(run, muon_matrices=True) <= MUON_TOLERANCE
    assert max_state_diff(run) <= TOLERANCE
    # the parameters really moved, so the comparison is not vacuous
    assert all(p.grad is not None for p in run.stacked)
    start = side_by_side(_mixed_members(order))
    assert (
        max((a - b).abs().max().item() for a, b in zip(run.stacked, start.stacked, strict=True))
        > 0.1
    )


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_family_alone_matches_torch_optim(name: str) -> None:
    run = side_by_side([{"optimizer": name, "hyperparameters": h} for h in GRID[name]])
    for _ in range(STEPS):
        run.step(run.grads())
    assert max_param_diff(run) <= TOLERANCE
    assert max_param_diff(run, muon_matrices=True) <= MUON_TOLERANCE
    assert max_state_diff(run) <= TOLERANCE


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("name", ["schedulefree_adamw", "schedulefree_sgd"])
def test_schedule_free_evaluates_at_the_average_as_its_reference_does(name: str) -> None:
    run = side_by_side([{"optimizer": name, "hyperparameters": h} for h in GRID[name]])
    for _ in range(STEPS):
        run.step(run.grads())
    trained = [p.detach().clone() for p in run.stacked]
    run.population.eval()
    for optimizer in run.optimizers:
        optimizer.eval()  # type: ignore[attr-defined]
    assert max_param_diff(run) <= TOLERANCE  # x, as the reference has it
    assert max((a - b).abs().max().item() for a, b in zip(trained, run.stacked, strict=True)) > 1e-3
    with pytest.raises(RuntimeError, match="call train"):
        run.population.step()
    exported = run.population.export_member(0)  # exports are x, in eval or train mode
    run.population.train()
    for optimizer in run.optimizers:
        optimizer.train()  # type: ignore[attr-defined]
    assert (
        max((a - b).abs().max().item() for a, b in zip(trained, run.stacked, strict=True)) < 1e-12
    )
    again = run.population.export_member(0)
    assert all(
        torch.allclose(a, b, rtol=0, atol=1e-12)
        for a, b in zip(exported.params, again.params, strict=True)
    )
    for _ in range(10):
        run.step(run.grads())
    assert max_param_diff(run) <= TOLERANCE


SCHEDULES: list[tuple[dict[str, Any], Any]] = [
    (
        {"kind": "step", "step_size": 7, "gamma": 0.5},
        lambda opt, lr: torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5),
    ),
    (
        {"kind": "exponential", "gamma": 0.97},
        lambda opt, lr: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97),
    ),
    (
        {"kind": "cosine", "t_max": 30, "min_factor": 0.1},
        lambda opt, lr: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30, eta_min=0.1 * lr),
    ),
    (
        {"kind": "warmup", "start_factor": 0.2, "total_iters": 10},
        lambda opt, lr: torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=0.2, end_factor=1.0, total_iters=10
        ),
    ),
    ({"kind": "constant"}, lambda opt, lr: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0)),
]


@pytest.mark.usefixtures("float64")
def test_schedules_match_torch_lr_schedulers() -> None:
    families = sorted(OPTIMIZERS)
    members = []
    for i, (schedule, _) in enumerate(SCHEDULES):
        for j, name in enumerate(families):
            if (i + j) % 2 == 0:
                members.append(
                    {"optimizer": name, "hyperparameters": GRID[name][-1], "schedule": schedule}
                )
    run = side_by_side(members)
    factories = {s["kind"]: factory for s, factory in SCHEDULES}
    schedulers = [
        factories[m.schedule.kind](opt, m.hyperparameters["lr"])
        for m, opt in zip(run.members, run.optimizers, strict=True)
    ]
    for _ in range(STEPS):
        run.step(run.grads())
        run.population.advance_schedules()
        for scheduler in schedulers:
            scheduler.step()
        for k, optimizer in enumerate(run.optimizers):
            assert abs(run.population.lr(k) - optimizer.param_groups[0]["lr"]) <= 1e-12
    assert max_param_diff(run) <= TOLERANCE
    assert max_param_diff(run, muon_matrices=True) <= MUON_TOLERANCE
    assert max_state_diff(run) <= TOLERANCE


WARMUP = 6


def _warmed(opt: torch.optim.Optimizer, base: torch.optim.lr_scheduler.LRScheduler) -> Any:
    """torch's linear warm-up from 1/(WARMUP+1) to 1, then ``base`` from its own start."""
    warmup = torch.optim.lr_scheduler.LinearLR(
        opt, start_factor=1 / (WARMUP + 1), end_factor=1.0, total_iters=WARMUP
    )
    return torch.optim.lr_scheduler.SequentialLR(opt, [warmup, base], milestones=[WARMUP])


@pytest.mark.usefixtures("float64")
@pytest.mark.filterwarnings("ignore::UserWarning")  # SequentialLR's own deprecation notes
def test_a_warm_up_in_front_of_every_schedule_per_step_matches_torch_sequential_lr() -> None:
    """Per-step schedules advance inside ``step()``; per-epoch ones wait for
    ``advance_schedules()``, and a warm-up in front of any kind equals LinearLR + SequentialLR."""
    families = sorted(OPTIMIZERS)
    members = []
    for i, (schedule, _) in enumerate(SCHEDULES[:3]):  # step, exponential, cosine
        for j, name in enumerate(families):
            if (i + j) % 3 == 0:
                warmed = {**schedule, "warmup": WARMUP, "per": "step"}
                members.append(
                    {"optimizer": name, "hyperparameters": GRID[name][0], "schedule": warmed}
                )
    epoch_member = {"kind": "exponential", "gamma": 0.5, "warmup": 2}  # per epoch: untouched
    members.append({"optimizer": "adam", "hyperparameters": {"lr": 0.01}, "schedule": epoch_member})
    run = side_by_side(members)
    factories = {s["kind"]: factory for s, factory in SCHEDULES}
    schedulers = [
        _warmed(opt, factories[m.schedule.kind](opt, m.hyperparameters["lr"]))
        for m, opt in zip(run.members[:-1], run.optimizers[:-1], strict=True)
    ]
    run.optimizers[-1].param_groups[0]["lr"] = 0.01 / 3  # warm-up's first epoch throughout
    epoch_lrs = []
    for _ in range(STEPS):
        run.step(run.grads())
        for scheduler in schedulers:
            scheduler.step()
        for k, optimizer in enumerate(run.optimizers[:-1]):
            assert abs(run.population.lr(k) - optimizer.param_groups[0]["lr"]) <= 1e-12
        epoch_lrs.append(run.population.lr(len(members) - 1))
    assert set(epoch_lrs) == {epoch_lrs[0]}  # its counter waits for advance_schedules
    assert epoch_lrs[0] == pytest.approx(0.01 / 3, rel=1e-12)
    run.population.advance_schedules()
    assert run.population.lr(len(members) - 1) == pytest.approx(0.01 * 2 / 3, rel=1e-12)
    assert max_param_diff(run) <= TOLERANCE


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("flat", [False, True], ids=["per-tensor", "flat"])
def test_clipping_matches_clip_grad_norm(flat: bool) -> None:
    members: list[dict[str, Any]] = []
    for j, name in enumerate(sorted(OPTIMIZERS)):
        members.append({"optimizer": name, "hyperparameters": GRID[name][0], "clip_norm": 0.5 + j})
        members.append({"optimizer": name, "hyperparameters": GRID[name][-1]})
    run = side_by_side(members, flat=flat)

    def clip(k: int) -> None:
        max_norm = run.members[k].clip_norm
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(run.alone[k], max_norm)

    clipped_some = False
    for step in range(STEPS):
        grads = run.grads(scale=3.0 if step % 2 else 0.3)
        norms = torch.linalg.vector_norm(
            torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1), dim=1
        )
        clipped_some |= bool((norms > 0.5).any())
        run.step(grads, before_alone=clip)
    assert clipped_some
    assert max_param_diff(run) <= TOLERANCE
    assert max_param_diff(run, muon_matrices=True) <= MUON_TOLERANCE
    assert max_state_diff(run) <= TOLERANCE


@pytest.mark.usefixtures("float64")
def test_clipping_does_not_touch_the_callers_grads() -> None:
    params = [torch.zeros(2, 3, requires_grad=True)]
    pop = PopulationOptimizer(
        params, [{"optimizer": "sgd", "hyperparameters": {"lr": 1.0}, "clip_norm": 0.1}] * 2
    )
    grad = torch.full((2, 3), 10.0)
    params[0].grad = grad.clone()
    pop.step()
    assert torch.equal(params[0].grad, grad)
    # each row was clipped to norm 0.1 (within torch's 1e-6 guard)
    norms = torch.linalg.vector_norm(params[0].detach(), dim=1)
    assert torch.allclose(norms, torch.full((2,), 0.1), atol=1e-6)


def _drawn(name: str, rng: random.Random) -> dict[str, Any]:
    """Random hyperparameters for one of issue 30's families, over each field's useful range
    (log-uniform lr and decay, betas near 1, every flag either way)."""
    log = lambda low, high: 10 ** rng.uniform(math.log10(low), math.log10(high))  # noqa: E731
    betas = (rng.uniform(0.7, 0.95), 1 - log(1e-3, 1e-1))
    drawn: dict[str, dict[str, Any]] = {
        "radam": {"lr": log(1e-3, 3e-2), "betas": betas, "weight_decay": log(1e-4, 1e-1),
                  "decoupled_weight_decay": rng.random() < 0.5},
        "lion": {"lr": log(1e-4, 3e-3), "betas": betas, "weight_decay": log(1e-3, 0.3)},
        "adafactor": {"lr": log(1e-3, 5e-2), "beta2_decay": -rng.uniform(0.5, 1.0),
                      "d": rng.uniform(0.5, 2.0), "weight_decay": log(1e-3, 1e-1)},
        "muon": {"lr": log(3e-3, 5e-2), "momentum": rng.uniform(0.8, 0.98),
                 "nesterov": rng.random() < 0.5, "weight_decay": log(1e-3, 0.1),
                 "adamw_lr": log(1e-4, 1e-2), "adamw_betas": betas},
        "schedulefree_adamw": {"lr": log(1e-3, 3e-2), "betas": betas,
                               "weight_decay": log(1e-4, 1e-2),
                               "warmup_steps": rng.randrange(0, 20), "r": rng.uniform(0, 1)},
        "schedulefree_sgd": {"lr": log(1e-2, 0.2), "momentum": rng.uniform(0.7, 0.95),
                             "warmup_steps": rng.randrange(0, 20)},
        "prodigy": {"lr": rng.uniform(0.5, 1.5), "betas": betas, "d_coef": log(0.3, 3.0),
                    "weight_decay": log(1e-4, 1e-1), "decouple": rng.random() < 0.5,
                    "use_bias_correction": rng.random() < 0.5,
                    "safeguard_warmup": rng.random() < 0.5},
    }  # fmt: skip
    return drawn[name]


NEW_FAMILIES = (
    "adafactor",
    "lion",
    "muon",
    "prodigy",
    "radam",
    "schedulefree_adamw",
    "schedulefree_sgd",
)


@pytest.mark.usefixtures("float64")
def test_new_families_with_random_hyperparameters_match_their_references() -> None:
    """Issue 30's bar: each new family, three members with random hyperparameters, packed with
    the older families, equals its reference member by member after 60 float64 steps."""
    rng = random.Random(30)
    members = [
        {"optimizer": name, "hyperparameters": _drawn(name, rng)}
        for name in NEW_FAMILIES
        for _ in range(3)
    ]
    members += [{"optimizer": name, "hyperparameters": GRID[name][-1]} for name in GRID]
    rng.shuffle(members)
    run = side_by_side(members)
    for _ in range(60):
        run.step(run.grads())
    assert max_param_diff(run) <= 1e-9
    assert max_param_diff(run, muon_matrices=True) <= MUON_TOLERANCE
    assert max_state_diff(run) <= 1e-9
