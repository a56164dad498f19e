"""Population-based training inside a pack: who copies whom, and what they copy."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from optisweep.optimizers import MemberConfig
from optisweep.workers.checkpoint import Checkpoint
from optisweep.workers.pbt import Exploit, perturbed, plan_exploits
from optisweep.workers.specs import MemberSpec, PackSpec, PbtConfig
from optisweep.workers.train import train_pack

WORKLOAD = {"name": "mlp-digits", "epochs": 5, "batch_size": 64}
PBT = PbtConfig(interval=2, quantile=0.25, metric="val_accuracy", mode="max")
# Two families, four members each, lrs far apart so the ranking is clear.
MEMBERS = [
    {"optimizer": family, "hyperparameters": {"lr": lr}, "seed": 10 + i}
    for family, lrs in (("adam", [1e-4, 3e-4, 1e-3, 3e-3]), ("momentum", [1e-3, 3e-3, 1e-2, 3e-2]))
    for i, lr in enumerate(lrs)
]


def _run() -> tuple[list[tuple[int, list[Exploit]]], dict[tuple[int, int], Checkpoint], list[Any]]:
    events: list[tuple[int, list[Exploit]]] = []
    saved: dict[tuple[int, int], Checkpoint] = {}

    def save(k: int, ckpt: Checkpoint) -> None:
        saved[(k, ckpt.epoch)] = ckpt

    spec = PackSpec(
        workload=WORKLOAD,
        members=[MemberSpec(**m) for m in MEMBERS],
        data_seed=7,
        device="cpu",
        pbt=PBT,
    )
    results = train_pack(spec, exploited=lambda e, x: events.append((e, x)), checkpoint=save)
    return events, saved, results


def test_the_bottom_of_each_family_copies_its_top_every_interval() -> None:
    events, saved, results = _run()
    assert [epoch for epoch, _ in events] == [2, 4]  # not after the last epoch
    for epoch, exploits in events:
        assert len(exploits) == 2  # a quarter of each family of four
        for exploit in exploits:
            source, target = MEMBERS[exploit.source], MEMBERS[exploit.target]
            assert source["optimizer"] == target["optimizer"] == exploit.config.optimizer
            before = saved[(exploit.source, epoch)]
            after = saved[(exploit.target, epoch)]
            # The checkpoint taken after the exploit: the source's weights and optimizer state,
            # and the source's settings with a perturbed lr.
            for name, value in before.model.items():
                assert torch.equal(after.model[name], value)
            assert after.config == exploit.config
            ratio = exploit.config.hyperparameters["lr"] / before.config.validated().lr
            assert ratio == pytest.approx(0.8) or ratio == pytest.approx(1.2)
            state_before, state_after = (
                before.optimizer_state["state"],
                after.optimizer_state["state"],
            )
            for index, slots in state_before.items():
                for slot, tensor in slots.items():
                    assert torch.equal(state_after[index][slot], tensor), slot
    assert all(result.status == "completed" for result in results)


def test_pbt_is_reproducible() -> None:
    first, _, _ = _run()
    again, _, _ = _run()
    assert [(e, [(x.target, x.source, x.config) for x in xs]) for e, xs in first] == [
        (e, [(x.target, x.source, x.config) for x in xs]) for e, xs in again
    ]


def test_the_worst_member_of_a_family_copies_one_of_its_best() -> None:
    configs = [
        MemberConfig(optimizer="adam", hyperparameters={"lr": 10.0**-i}) for i in range(1, 9)
    ]
    values = {k: float(k) for k in range(8)}  # member 7 is the best when maximising
    exploits = plan_exploits(PBT, epoch=4, seed=0, values=values, configs=configs)
    assert sorted(e.target for e in exploits) == [0, 1]
    assert all(e.source in (6, 7) for e in exploits)
    assert plan_exploits(PBT, epoch=3, seed=0, values=values, configs=configs) == []


def test_perturbation_scales_lr_and_one_minus_beta() -> None:
    config = MemberConfig(optimizer="adam", hyperparameters={"lr": 1e-3, "betas": [0.9, 0.99]})
    new = perturbed(config, random.Random(0), 0.2)
    lr, (beta1, beta2) = new.hyperparameters["lr"], new.hyperparameters["betas"]
    assert lr / 1e-3 == pytest.approx(0.8) or lr / 1e-3 == pytest.approx(1.2)
    assert (1 - beta1) / 0.1 == pytest.approx(0.8) or (1 - beta1) / 0.1 == pytest.approx(1.2)
    assert (1 - beta2) / 0.01 == pytest.approx(0.8) or (1 - beta2) / 0.01 == pytest.approx(1.2)
