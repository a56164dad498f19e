"""Hyperparameter models, one per optimizer family, with torch.optim's field names."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _finite_positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be finite and > 0, got {value!r}")
    return value


def _non_negative(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be finite and >= 0, got {value!r}")
    return value


def _unit_interval(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"must be in [0, 1), got {value!r}")
    return value


def _closed_unit_interval(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be in [0, 1], got {value!r}")
    return value


ECHO_CHARS = 100
"""The most characters of an input that an error message repeats."""


def short_repr(value: object) -> str:
    """``repr(value)`` cut to ECHO_CHARS characters (then "..."), for error messages."""
    text = repr(value)
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "..."


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as users write it: ("betas", 1) -> "betas[1]"."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


PositiveFloat = Annotated[float, AfterValidator(_finite_positive)]
NonNegativeFloat = Annotated[float, AfterValidator(_non_negative)]
UnitFloat = Annotated[float, AfterValidator(_unit_interval)]
ClosedUnitFloat = Annotated[float, AfterValidator(_closed_unit_interval)]


class HParams(BaseModel):
    """Fields every family shares: a learning rate and (L2) weight decay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: PositiveFloat
    weight_decay: NonNegativeFloat = 0.0


class SGDParams(HParams):
    """Plain (mini-batch) gradient descent."""

    lr: PositiveFloat = 1e-3


class MomentumParams(HParams):
    """SGD with heavy-ball or Nesterov momentum."""

    lr: PositiveFloat = 1e-3
    momentum: UnitFloat = 0.9
    dampening: ClosedUnitFloat = 0.0
    nesterov: bool = False

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Self:
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                "nesterov requires momentum > 0 and dampening == 0, "
                f"got momentum={self.momentum!r}, dampening={self.dampening!r}"
            )
        return self


class AdagradParams(HParams):
    """Adagrad: per-coordinate step sizes from the sum of squared gradients."""

    lr: PositiveFloat = 1e-2
    lr_decay: NonNegativeFloat = 0.0
    eps: PositiveFloat = 1e-10
    initial_accumulator_value: NonNegativeFloat = 0.0


class AdadeltaParams(HParams):
    """Adadelta: Adagrad with decaying averages of squared gradients and updates."""

    lr: PositiveFloat = 1.0
    rho: UnitFloat = 0.9
    eps: PositiveFloat = 1e-6


class RMSpropParams(HParams):
    """RMSprop, optionally centred and with momentum."""

    lr: PositiveFloat = 1e-2
    alpha: UnitFloat = 0.99
    eps: PositiveFloat = 1e-8
    momentum: UnitFloat = 0.0
    centered: bool = False


class AdamParams(HParams):
    """Adam with bias correction, optionally AMSGrad."""

    lr: PositiveFloat = 1e-3
    betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    amsgrad: bool = False


class AdamWParams(AdamParams):
    """Adam with decoupled weight decay."""

    weight_decay: NonNegativeFloat = 1e-2


class AdamaxParams(HParams):
    """Adamax: Adam with the infinity norm in place of the second moment."""

    lr: PositiveFloat = 2e-3
    betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8


class RAdamParams(HParams):
    """Rectified Adam (Liu et al., 2020): Adam's adaptive step only once the variance of its
    adaptive learning rate is tractable, plain momentum steps before."""

    lr: PositiveFloat = 1e-3
    betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    decoupled_weight_decay: bool = False
    """Weight decay as AdamW applies it (the parameter shrunk by lr * weight_decay) instead of
    L2 folded into the gradient."""


class LionParams(HParams):
    """Lion: the sign of an interpolation of momentum and gradient; weight decay decoupled (as
    the lion-pytorch package applies it: the parameter shrunk by lr * weight_decay)."""

    lr: PositiveFloat = 1e-4
    betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.99)


def _open_unit_interval(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError(f"must be in (0, 1), got {value!r}")
    return value


def _non_positive(value: float) -> float:
    if not math.isfinite(value) or value > 0:
        raise ValueError(f"must be finite and <= 0, got {value!r}")
    return value


def _at_least_one(value: float) -> float:
    if not math.isfinite(value) or value < 1:
        raise ValueError(f"must be finite and >= 1, got {value!r}")
    return value


class AdafactorParams(HParams):
    """Adafactor as torch.optim implements it: a factored second moment for matrices, a
    relative step size min(lr, 1/sqrt(t)) scaled by the parameter's RMS, update clipping at d;
    weight decay decoupled (the parameter shrunk by lr * weight_decay)."""

    lr: PositiveFloat = 1e-2
    beta2_decay: Annotated[float, AfterValidator(_non_positive)] = -0.8
    """1 - beta2 at step t is t ** beta2_decay."""
    eps: tuple[NonNegativeFloat | None, NonNegativeFloat] = (None, 1e-3)
    """eps1 (None: the parameter dtype's machine epsilon) steadies the second moment; eps2 is
    the smallest parameter RMS a step scales by."""
    d: Annotated[float, AfterValidator(_at_least_one)] = 1.0
    """The update's RMS is clipped to d."""


class MuonParams(HParams):
    """Muon (torch.optim.Muon's fields) for the hidden matrices, and the AdamW beside it for
    every other parameter (``adamw_*``: the defaults of Muon's reference code, MuonWithAuxAdam)."""

    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.1
    momentum: UnitFloat = 0.95
    nesterov: bool = True
    ns_coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
    """The quintic Newton-Schulz iteration's a, b, c."""
    eps: PositiveFloat = 1e-7
    ns_steps: int = Field(default=5, ge=1, le=99)
    adjust_lr_fn: Literal["original", "match_rms_adamw"] | None = None
    """How a matrix's shape scales its lr: sqrt(max(1, rows/cols)) (None, "original"), or
    0.2 sqrt(max(rows, cols)) to match AdamW's update RMS ("match_rms_adamw")."""
    adamw_lr: PositiveFloat = 3e-4
    """The lr of the parameters on AdamW (embeddings, the output layer, biases, norms);
    schedules and group multipliers scale it as they scale ``lr``."""
    adamw_betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.95)
    adamw_eps: PositiveFloat = 1e-10
    adamw_weight_decay: NonNegativeFloat = 0.0


class ScheduleFreeAdamWParams(HParams):
    """Schedule-free AdamW (the schedulefree package's AdamWScheduleFree): no lr schedule (it
    replaces one), evaluation at the average x; weight decay at y, after normalisation."""

    lr: PositiveFloat = 0.0025
    betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    warmup_steps: int = Field(default=0, ge=0, le=10_000_000)
    """A linear lr warm-up over this many steps (its own: a sweep's schedule is refused)."""
    r: NonNegativeFloat = 0.0
    """Step t weighs t**r in the average."""
    weight_lr_power: NonNegativeFloat = 2.0
    """Step t weighs lr_max**weight_lr_power in the average."""

    @model_validator(mode="after")
    def _positive_beta1(self) -> Self:
        if self.betas[0] <= 0:
            raise ValueError(
                f"betas[0] must be > 0 (x is y's average by it), got {self.betas[0]!r}"
            )
        return self


class ScheduleFreeSGDParams(HParams):
    """Schedule-free SGD (the schedulefree package's SGDScheduleFree)."""

    lr: PositiveFloat = 1.0
    momentum: Annotated[float, AfterValidator(_open_unit_interval)] = 0.9
    warmup_steps: int = Field(default=0, ge=0, le=10_000_000)
    r: NonNegativeFloat = 0.0
    weight_lr_power: NonNegativeFloat = 2.0


class ProdigyParams(HParams):
    """Prodigy (the prodigyopt package's Prodigy): Adam whose step size d it estimates as it
    trains, from every parameter's distance travelled; ``lr`` multiplies that estimate (1: as
    estimated) and ``d_coef`` scales it, the way its authors tune it."""

    lr: PositiveFloat = 1.0
    betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.999)
    beta3: UnitFloat | None = None
    """The decay of the estimate's running sums (None: sqrt(betas[1]))."""
    eps: PositiveFloat = 1e-8
    decouple: bool = True
    """Weight decay as AdamW's (decoupled, by the estimated step) rather than L2."""
    use_bias_correction: bool = False
    safeguard_warmup: bool = False
    """Leave lr out of the estimate's denominator (steadier under an lr warm-up)."""
    d0: PositiveFloat = 1e-6
    """The initial estimate of d."""
    d_coef: PositiveFloat = 1.0
    """Multiplies the estimate: the hyperparameter Prodigy's authors tune (0.5 to 2)."""
    growth_rate: PositiveFloat | None = None
    """The most d may grow in one step, as a factor (None: unbounded, the reference's inf)."""


class NAdamParams(HParams):
    """Adam with Nesterov momentum (Dozat's momentum-decay schedule)."""

    lr: PositiveFloat = 2e-3
    betas: tuple[UnitFloat, UnitFloat] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    momentum_decay: NonNegativeFloat = 4e-3
