"""The searcher interface and what it suggests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from optimizers import get_spec
from service.sweeps.schemas import Space

Outcome = Literal["completed", "stopped", "diverged", "failed"]
"""How a trial ended, as searchers are told."""


@dataclass(frozen=True)
class Suggestion:
    """One trial configuration: a family and its full, validated hyperparameters."""

    optimizer: str
    hyperparameters: dict[str, Any]


class Searcher(Protocol):
    """Suggests configurations; adaptive searchers learn from tell."""

    def suggest(self, count: int) -> list[Suggestion]:
        """Up to ``count`` new configurations (fewer when the space is exhausted)."""
        ...

    def tell(self, number: int, outcome: Outcome, objective: float | None) -> None:
        """How trial ``number`` (in suggestion order) ended, with its objective."""
        ...


def to_suggestion(space: Space, optimizer: str, sampled: dict[str, Any]) -> Suggestion:
    """Map sampled lr/beta1/beta2/overrides onto the family's own fields and validate them."""
    spec = get_spec(optimizer)
    hyperparameters: dict[str, Any] = {"lr": sampled["lr"]} if "lr" in sampled else {}
    hyperparameters = spec.with_betas(
        hyperparameters, beta1=sampled.get("beta1"), beta2=sampled.get("beta2")
    )
    for name, value in sampled.items():
        if name.startswith(f"{optimizer}."):
            hyperparameters[name.split(".", 1)[1]] = value
    validated = spec.validate(hyperparameters)
    return Suggestion(optimizer, validated.model_dump(mode="json"))
