"""The searcher interface and what it suggests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from optimizers import get_spec
from service.sweeps.schemas import Space


@dataclass(frozen=True)
class Suggestion:
    """One trial configuration: a family and its full, validated hyperparameters."""

    optimizer: str
    hyperparameters: dict[str, Any]


class Searcher(Protocol):
    """Suggests configurations; adaptive searchers learn from on_result."""

    def suggest(self, count: int) -> list[Suggestion]:
        """Up to ``count`` new configurations (fewer when the space is exhausted)."""
        ...

    def on_result(self, suggestion: Suggestion, objective: float | None) -> None:
        """A finished trial's objective (None if it failed or diverged)."""
        ...


def to_suggestion(space: Space, optimizer: str, sampled: dict[str, Any]) -> Suggestion:
    """Map sampled lr/beta1/beta2/overrides onto the family's own fields and validate them."""
    spec = get_spec(optimizer)
    hparams: dict[str, Any] = {"lr": sampled["lr"]}
    hparams = spec.with_betas(hparams, beta1=sampled.get("beta1"), beta2=sampled.get("beta2"))
    for name, value in sampled.items():
        if name.startswith(f"{optimizer}."):
            hparams[name.split(".", 1)[1]] = value
    validated = spec.validate(hparams)
    return Suggestion(optimizer, validated.model_dump(mode="json"))
