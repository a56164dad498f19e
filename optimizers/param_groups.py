"""Parameter groups: which of a model's parameters get their own weight decay or learning rate.

A group rule selects parameters by kind (``bias``, ``norm``, ``embedding``, ``matrix``,
``vector``), by the class of the module that owns them, by a pattern on their name, or by their
number of dimensions, and overrides ``weight_decay`` and/or multiplies ``lr``. The first rule
that selects a parameter wins; the rest keep the member's own hyperparameters. One resolution
(``assign``) serves both paths: torch.optim's ``param_groups`` for one model and a population's
per-parameter coefficients for a pack, so the two agree by construction.

The model is described once as plain data (``ParamInfo``), so the server can check a sweep's
rules against a worker's description of the model without importing the user's code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from optisweep.optimizers.schemas import NonNegativeFloat, PositiveFloat

Kind = Literal["bias", "norm", "embedding", "matrix", "vector"]
"""``bias``: a parameter named ``bias``; ``norm``: any parameter of a normalisation layer
(BatchNorm, LayerNorm, GroupNorm, RMSNorm, ...); ``embedding``: an Embedding's table;
``matrix``: two or more dimensions; ``vector``: fewer than two."""

NO_DECAY_KINDS: tuple[Kind, ...] = ("bias", "norm", "embedding")
"""What most recipes exempt from weight decay (``no_decay: true`` in a sweep)."""

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)
_EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def _valid_pattern(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression ({exc})") from None
    return pattern


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NameSelector(_Strict):
    """Parameters whose full name (``encoder.layers.0.attn.in_proj_weight``) the pattern
    matches anywhere (``re.search``)."""

    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_valid_pattern)]


class ModuleSelector(_Strict):
    """Parameters of modules of this class (its name: ``Linear``, ``Conv2d``, ``MyBlock``)."""

    module: str = Field(min_length=1, max_length=100)


class NdimSelector(_Strict):
    """Parameters with exactly this many dimensions."""

    ndim: int = Field(ge=0, le=8)


Selector = Kind | NameSelector | ModuleSelector | NdimSelector


class ParamGroup(_Strict):
    """A rule: the parameters any of ``select`` matches, and what changes for them."""

    select: list[Selector] = Field(min_length=1, max_length=16)
    weight_decay: NonNegativeFloat | None = None
    """This group's weight decay instead of the member's (0: none)."""
    lr_multiplier: PositiveFloat | None = None
    """This group's lr is the member's (scheduled) lr times this."""

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.weight_decay is None and self.lr_multiplier is None:
            raise ValueError("a parameter group sets weight_decay, lr_multiplier or both")
        return self


class ParamInfo(_Strict):
    """One parameter as a group rule sees it, in plain data."""

    name: str
    module: str
    """The class name of the module that owns it."""
    kinds: tuple[str, ...]
    """Which of ``norm`` and ``embedding`` its module is."""
    ndim: int


def describe_params(model: nn.Module) -> list[ParamInfo]:
    """Every parameter of ``model`` in ``named_parameters`` order, as group rules see it."""
    owners = dict(model.named_modules())
    infos = []
    for name, param in model.named_parameters():
        owner = owners[name.rpartition(".")[0]]
        kinds = tuple(
            kind
            for kind, types in (("norm", _NORM_TYPES), ("embedding", _EMBEDDING_TYPES))
            if isinstance(owner, types)
        )
        infos.append(
            ParamInfo(name=name, module=type(owner).__name__, kinds=kinds, ndim=param.dim())
        )
    return infos


def matches(selector: Selector, info: ParamInfo) -> bool:
    """Whether ``selector`` selects the parameter ``info``."""
    if isinstance(selector, NameSelector):
        return re.search(selector.name, info.name) is not None
    if isinstance(selector, ModuleSelector):
        return info.module == selector.module
    if isinstance(selector, NdimSelector):
        return info.ndim == selector.ndim
    if selector == "bias":
        return info.name.rpartition(".")[2] == "bias"
    if selector == "matrix":
        return info.ndim >= 2
    if selector == "vector":
        return info.ndim < 2
    return selector in info.kinds


def assign(groups: Sequence[ParamGroup], params: Sequence[ParamInfo]) -> list[int | None]:
    """Each parameter's group: the index of the first rule that selects it, or None."""
    return [
        next(
            (i for i, group in enumerate(groups) if any(matches(s, info) for s in group.select)),
            None,
        )
        for info in params
    ]


def empty_groups(groups: Sequence[ParamGroup], params: Sequence[ParamInfo]) -> list[int]:
    """The rules that select no parameter (a typo, or a layer the model does not have)."""
    used = set(assign(groups, params))
    return [i for i in range(len(groups)) if i not in used]


def with_no_decay(groups: Sequence[ParamGroup]) -> list[ParamGroup]:
    """``groups`` after the opt-in ``no_decay`` rule: biases, norms and embeddings without
    weight decay (a rule given first still wins for the parameters it selects)."""
    return [*groups, ParamGroup(select=list(NO_DECAY_KINDS), weight_decay=0.0)]


def torch_param_groups(
    params: Sequence[Tensor],
    groups: Sequence[ParamGroup],
    assignment: Sequence[int | None],
    *,
    lr: float,
    roles: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """torch.optim ``param_groups`` for one model: the member's own parameters first, then one
    group per rule with its overrides (rules that select nothing are left out); with
    ``roles`` (a rule that treats parameters differently: Muon), each group lists its
    parameters' roles."""
    order = torch_order(assignment, len(groups))
    result: list[dict[str, Any]] = []
    for index in [None, *range(len(groups))]:
        chosen = [i for i in order if assignment[i] == index]
        if not chosen:
            continue
        entry: dict[str, Any] = {"params": [params[i] for i in chosen]}
        if any(roles):
            entry["roles"] = [roles[i] for i in chosen]
        if index is not None:
            group = groups[index]
            if group.weight_decay is not None:
                entry["weight_decay"] = group.weight_decay
            if group.lr_multiplier is not None:
                entry["lr"] = lr * group.lr_multiplier
        result.append(entry)
    return result


def torch_order(assignment: Sequence[int | None], groups: int) -> list[int]:
    """Parameter indices in the order torch.optim numbers them in a state dict: the member's
    own group first, then each rule's, each in model order."""
    order = [i for i, index in enumerate(assignment) if index is None]
    for g in range(groups):
        order.extend(i for i, index in enumerate(assignment) if index == g)
    return order


@dataclass(frozen=True)
class Overrides:
    """What one parameter's group rules change for a set of members, one value per member
    (NaN weight decay: the member's own; multiplier 1, where no rule of its selects it)."""

    weight_decay: tuple[float, ...]
    lr_multiplier: tuple[float, ...]


def overrides_for(
    groups: Sequence[Sequence[ParamGroup]], params: Sequence[ParamInfo]
) -> list[Overrides | None]:
    """For members with these rules (``groups[m]``), each parameter's overrides; None where
    no member's rule selects it."""
    assignments = [assign(rules, params) for rules in groups]
    result: list[Overrides | None] = []
    for i in range(len(params)):
        chosen = [
            None if assignment[i] is None else rules[assignment[i]]  # type: ignore[index]
            for rules, assignment in zip(groups, assignments, strict=True)
        ]
        if all(group is None for group in chosen):
            result.append(None)
            continue
        result.append(
            Overrides(
                weight_decay=tuple(
                    math.nan if group is None or group.weight_decay is None else group.weight_decay
                    for group in chosen
                ),
                lr_multiplier=tuple(
                    1.0 if group is None or group.lr_multiplier is None else group.lr_multiplier
                    for group in chosen
                ),
            )
        )
    return result
