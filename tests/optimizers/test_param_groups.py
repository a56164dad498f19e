"""Parameter groups: selectors against a real model, and a packed population with no-decay and
lr-multiplier groups against torch.optim given the same param_groups by hand."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from optisweep.optimizers import (
    MemberConfig,
    ParamGroup,
    ParamInfo,
    PopulationOptimizer,
    describe_params,
)
from optisweep.optimizers.param_groups import assign, empty_groups, with_no_decay
from optisweep.optimizers.rules.muon import muon_roles
from tests.optimizers.helpers import MUON_TOLERANCE, MuonWithAdamW, reference_class

STEPS = 60
TOLERANCE = 1e-9


class Tagger(nn.Module):
    """Embedding, Linear, LayerNorm, Linear: every kind a selector knows."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.hidden = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.norm(torch.relu(self.hidden(self.embed(tokens)))))


GROUPS: list[dict[str, Any]] = [
    {"select": [{"name": r"^head\."}], "lr_multiplier": 0.5, "weight_decay": 0.2},
    *[g.model_dump() for g in with_no_decay([])],
]
"""The head at half the lr with its own decay, then the opt-in no-decay rule."""

NAMES = {
    "no_decay": ["embed.weight", "hidden.bias", "norm.weight", "norm.bias"],
    "head": ["head.weight"],
    "own": ["hidden.weight"],
}

MEMBERS: list[dict[str, Any]] = [
    {"optimizer": "adamw", "hyperparameters": {"lr": 0.01, "weight_decay": 0.1}},
    {"optimizer": "adam", "hyperparameters": {"lr": 0.02, "weight_decay": 0.01}},
    {"optimizer": "momentum", "hyperparameters": {"lr": 0.05, "weight_decay": 0.05}},
    {"optimizer": "lion", "hyperparameters": {"lr": 1e-3, "weight_decay": 0.3}},
    {"optimizer": "radam", "hyperparameters": {"lr": 0.01, "decoupled_weight_decay": True}},
    {"optimizer": "adafactor", "hyperparameters": {"lr": 0.02, "weight_decay": 0.1}},
    {"optimizer": "muon", "hyperparameters": {"lr": 0.02, "adamw_weight_decay": 0.05}},
    {"optimizer": "rmsprop", "hyperparameters": {"lr": 0.01}},  # no groups: all its own
]
GROUPED = len(MEMBERS) - 1
"""Every member but the last has GROUPS."""


def _by_hand(config: MemberConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The reference optimizer with param_groups written out, not from optisweep's rules."""
    named = dict(model.named_parameters())
    hyperparameters = config.validated().model_dump()
    if not config.param_groups:
        return reference_class(config.optimizer)(model.parameters(), **hyperparameters)
    lr = hyperparameters["lr"]
    groups: list[dict[str, Any]] = [
        {"params": [named[n] for n in NAMES["own"]]},
        {"params": [named[n] for n in NAMES["head"]], "lr": lr * 0.5, "weight_decay": 0.2},
        {"params": [named[n] for n in NAMES["no_decay"]], "weight_decay": 0.0},
    ]
    if config.optimizer == "muon":  # the hidden matrix on Muon; the rest, head too, on AdamW
        adamw_lr = hyperparameters["adamw_lr"]
        groups[0]["roles"] = ["muon"]
        groups[1].update(roles=["adamw"], adamw_lr=adamw_lr * 0.5, adamw_weight_decay=0.2)
        groups[2].update(roles=["adamw"] * 4, adamw_weight_decay=0.0)
        return MuonWithAdamW(groups, **hyperparameters)
    return reference_class(config.optimizer)(groups, **hyperparameters)


def test_selectors_find_each_kind_of_parameter() -> None:
    infos = describe_params(Tagger())
    by_name = {info.name: info for info in infos}
    assert by_name["norm.weight"].kinds == ("norm",)
    assert by_name["embed.weight"].kinds == ("embedding",)
    assert by_name["hidden.weight"].module == "Linear"
    groups = [ParamGroup.model_validate(g) for g in GROUPS]
    chosen = assign(groups, infos)
    assert {info.name for info, g in zip(infos, chosen, strict=True) if g == 1} == set(
        NAMES["no_decay"]
    )
    assert [info.name for info, g in zip(infos, chosen, strict=True) if g is None] == NAMES["own"]
    typo = ParamGroup(select=[{"module": "Conv2d"}, {"name": "^decoder"}], weight_decay=0.0)
    assert empty_groups([*groups, typo], infos) == [2]
    matrices = ParamGroup(select=["matrix"], lr_multiplier=2.0)
    assert assign([matrices], infos) == [0, 0, None, None, None, 0]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ({"select": ["bias"]}, "sets weight_decay, lr_multiplier or both"),
        ({"select": [], "weight_decay": 0.0}, "at least 1 item"),
        ({"select": ["biases"], "weight_decay": 0.0}, "select.0"),
        ({"select": [{"name": "("}], "weight_decay": 0.0}, "not a valid regular expression"),
        ({"select": ["bias"], "lr_multiplier": 0.0}, "must be finite and > 0"),
        ({"select": ["bias"], "weight_decay": 0.0, "momentum": 0.9}, "momentum"),
    ],
)
def test_bad_groups_name_the_field(group: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        ParamGroup.model_validate(group)


def _members() -> list[MemberConfig]:
    return [
        MemberConfig.model_validate({**m, "param_groups": GROUPS if i < GROUPED else []})
        for i, m in enumerate(MEMBERS)
    ]


@pytest.mark.usefixtures("float64")
def test_packed_groups_match_torch_optim_given_the_same_param_groups() -> None:
    torch.manual_seed(0)
    members = _members()
    models = [Tagger() for _ in members]
    names = [name for name, _ in models[0].named_parameters()]
    stacked = [
        torch.stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_()
        for n in names
    ]
    initial = [p.detach().clone() for p in stacked]
    population = PopulationOptimizer(stacked, members, param_info=describe_params(models[0]))
    alone = [_by_hand(config, model) for config, model in zip(members, models, strict=True)]
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        grads = [torch.randn(p.shape, generator=generator) for p in stacked]
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g.clone()
        population.step()
        for k, (model, optimizer) in enumerate(zip(models, alone, strict=True)):
            for p, g in zip(model.parameters(), grads, strict=True):
                p.grad = g[k].clone()
            optimizer.step()
    info = describe_params(models[0])
    for k, (model, optimizer) in enumerate(zip(models, alone, strict=True)):
        export = population.export_member(k)
        # the export's state dict, numbered as torch.optim numbers grouped parameters
        loaded = members[k].torch_optimizer(export.params, info)
        loaded.load_state_dict(export.optimizer_state)
        pairs = zip(model.parameters(), export.params, names, strict=True)
        for p, mine, name in pairs:
            muon_matrix = members[k].optimizer == "muon" and name == "hidden.weight"
            tolerance = MUON_TOLERANCE if muon_matrix else TOLERANCE
            assert (p - mine).abs().max().item() <= tolerance, (members[k].optimizer, name)
            for slot, value in optimizer.state[p].items():
                if isinstance(value, Tensor) and value.dim() > 0:
                    difference = (loaded.state[mine][slot] - value).abs().max().item()
                    assert difference <= TOLERANCE, (members[k].optimizer, name, slot)
    moved = [(p - s).abs().max().item() for p, s in zip(stacked, initial, strict=True)]
    assert max(moved) > 0.1


@pytest.mark.usefixtures("float64")
def test_groups_change_the_training_and_survive_export_and_load() -> None:
    torch.manual_seed(0)
    plain = MemberConfig(optimizer="adamw", hyperparameters={"lr": 0.05, "weight_decay": 0.5})
    grouped = plain.model_copy(update={"param_groups": [ParamGroup.model_validate(GROUPS[1])]})
    model = Tagger()
    info = describe_params(model)
    stacked = [torch.stack([p.detach()] * 2).requires_grad_() for p in model.parameters()]
    population = PopulationOptimizer(stacked, [plain, grouped], param_info=info)
    for _ in range(5):
        for p in stacked:
            p.grad = torch.ones_like(p)
        population.step()
    by_name = dict(zip([i.name for i in info], stacked, strict=True))
    # no decay on the norm's weight for the grouped member only; the same hidden weights
    assert not torch.equal(by_name["norm.weight"][0], by_name["norm.weight"][1])
    assert torch.equal(by_name["hidden.weight"][0], by_name["hidden.weight"][1])
    export = population.export_member(1)
    optimizer = grouped.torch_optimizer(export.params, info)
    optimizer.load_state_dict(export.optimizer_state)  # torch accepts the grouped state dict
    assert [len(g["params"]) for g in optimizer.param_groups] == [2, 4]
    fresh = [torch.zeros_like(p).requires_grad_() for p in stacked]
    again = PopulationOptimizer(fresh, [plain, grouped], param_info=info)
    again.load_member(1, export)
    for p, q in zip(stacked, fresh, strict=True):
        assert torch.equal(p[1], q[1])
    state = again.state_dict()["groups"]
    assert any(bool(s["exp_avg"].any()) for g in state for s in g["state"])


def test_muon_takes_the_hidden_matrices_and_leaves_embeddings_and_the_head_to_adamw() -> None:
    infos = describe_params(Tagger())
    roles = dict(zip([i.name for i in infos], muon_roles(infos, ()), strict=True))
    assert [name for name, role in roles.items() if role == "muon"] == ["hidden.weight"]
    assert muon_roles(None, [(6, 4), (4,), (3, 2, 2)]) == ("muon", "adamw", "adamw")
    positions = ParamInfo(name="position.weight", module="Positions", kinds=(), ndim=2)
    assert muon_roles([positions, *infos], ())[0] == "adamw"  # an embedding by its name
    logistic = describe_params(nn.Sequential(nn.Linear(64, 10)))
    assert "muon" not in muon_roles(logistic, ())  # its one matrix is the output layer


def test_groups_need_the_parameters_described() -> None:
    member = MemberConfig.model_validate({**MEMBERS[0], "param_groups": GROUPS})
    with pytest.raises(ValueError, match="param_info: members have param_groups"):
        PopulationOptimizer([torch.zeros(1, 3, requires_grad=True)], [member])
    with pytest.raises(ValueError, match="pass the model"):
        member.torch_optimizer([torch.zeros(3, requires_grad=True)])


PRODIGY_GROUPS: list[dict[str, Any]] = [
    {"select": [{"name": r"^head\."}], "weight_decay": 0.2},
    *[g.model_dump() for g in with_no_decay([])],
]
"""Prodigy's groups: its own decay for the head, and none for the no-decay kinds (one lr for
every parameter: its d is one estimate over all of them)."""


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("decouple", [True, False])
def test_prodigy_estimates_one_d_over_every_group_as_its_reference_does(decouple: bool) -> None:
    """Packed and alone (optisweep's own single-model optimizer), Prodigy with a decay group and
    a no-decay group equals prodigyopt given the same param_groups by hand: d and its sums,
    the parameters and every state tensor."""
    torch.manual_seed(0)
    hyperparameters = {"lr": 1.0, "weight_decay": 0.1, "decouple": decouple, "d_coef": 2.0}
    member = MemberConfig(
        optimizer="prodigy",
        hyperparameters=hyperparameters,
        param_groups=[ParamGroup.model_validate(g) for g in PRODIGY_GROUPS],
    )
    models = [Tagger() for _ in range(2)]
    info = describe_params(models[0])
    stacked = [
        torch.stack([p.detach() for p in params]).requires_grad_()
        for params in zip(*(m.parameters() for m in models), strict=True)
    ]
    population = PopulationOptimizer(stacked, [member] * 2, param_info=info)
    named = dict(models[0].named_parameters())
    reference = reference_class("prodigy")(
        [
            {"params": [named[n] for n in NAMES["own"]]},
            {"params": [named[n] for n in NAMES["head"]], "weight_decay": 0.2},
            {"params": [named[n] for n in NAMES["no_decay"]], "weight_decay": 0.0},
        ],
        **member.validated().model_dump(),
    )
    ours = member.model_optimizer(models[1])
    generator = torch.Generator().manual_seed(1)
    for _ in range(STEPS):
        grads = [torch.randn(p.shape, generator=generator) for p in stacked]
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g.clone()
        population.step()
        for k, (model, optimizer) in enumerate(zip(models, [reference, ours], strict=True)):
            for p, g in zip(model.parameters(), grads, strict=True):
                p.grad = g[k].clone()
            optimizer.step()
    assert reference.param_groups[0]["d"] > 10 * reference.param_groups[0]["d0"]  # it adapted
    for k, model in enumerate(models):
        export = population.export_member(k)
        for mine, theirs in zip(export.params, model.parameters(), strict=True):
            assert (mine - theirs).abs().max().item() <= TOLERANCE
        alone = reference if k == 0 else ours
        for mine, theirs in zip(
            export.optimizer_state["param_groups"], alone.state_dict()["param_groups"], strict=True
        ):
            for name in ("d", "d_max", "d_numerator", "d_hat", "k"):
                assert mine[name] == pytest.approx(theirs[name], rel=TOLERANCE), name
        for index, entry in alone.state_dict()["state"].items():
            for slot, value in entry.items():
                mine = torch.as_tensor(export.optimizer_state["state"][index][slot])
                scale = max(1.0, torch.as_tensor(value).abs().max().item())
                assert (mine - value).abs().max().item() <= TOLERANCE * scale, (index, slot)


def test_prodigy_refuses_a_group_lr_multiplier() -> None:
    with pytest.raises(ValidationError, match=r"param_groups\[0\]\.lr_multiplier: prodigy"):
        MemberConfig.model_validate(
            {"optimizer": "prodigy", "param_groups": [{"select": ["bias"], "lr_multiplier": 0.5}]}
        )


def test_prodigy_alone_refuses_groups_with_different_flags() -> None:
    """Its groups step at once (one estimate), so they must share the code path."""
    model = Tagger()
    params = list(model.parameters())
    optimizer = MemberConfig(optimizer="prodigy").spec.torch_class(
        [{"params": params[:2]}, {"params": params[2:], "decouple": False, "weight_decay": 0.1}]
    )
    for p in params:
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match="must share their flags"):
        optimizer.step()
