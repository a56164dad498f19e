"""The scale study (``scale``): its checks, and what its report says. Per family, the best lr
at each size (with its basin), a fitted rule log lr* = a + b log size with a 90% interval, and
the lr it predicts at the size the user names.

lr* at a size is the centre of its good-lr basin (the geometric mean of the basin's ends: the
lrs within the report's tolerance of the best), not the single best lr: across a flat basin the
best is whichever configuration's seed was luckiest, while the centre moves only when the basin
does. The fit is scipy's least squares on the logs (``scipy.stats.linregress``); the interval is
the prediction interval of a new size's lr* (Student's t, n - 2 degrees of freedom), and the
range the predicted lr should be good over is the measured basins' mean extent around their
centres, in log space, around the prediction.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from optisweep.service.errors import SpecError
from optisweep.service.sweeps.schemas import SweepCreate
from optisweep.service.sweeps.search_spec import ADAPTIVE
from optisweep.workers.specs import WorkloadReport
from optisweep.workers.workloads import (
    WorkloadConfigError,
    get_workload,
    numeric_fields,
    parse_workload_config,
)

INTERVAL = 0.90
"""The prediction interval's coverage."""


def check_scale(spec: SweepCreate, report: WorkloadReport | None) -> None:
    """SpecError naming the field for a scale study that cannot run: adaptive search, a field
    the workload's config does not have as a number, a size its config refuses."""
    scale = spec.scale
    if scale is None:
        return
    if spec.search.algorithm in ADAPTIVE:
        raise SpecError(
            "a scale study trains every configuration at each size: use grid or random search "
            f"(an adaptive searcher would compare configurations across sizes), got "
            f"{spec.search.algorithm}",
            field="search.algorithm",
        )
    if scale.field == "batch_size" and spec.space.batch_size is not None:
        raise SpecError(
            "batch_size is the scale study's size: leave space.batch_size out", field="scale.field"
        )
    user = spec.workload.entrypoint is not None
    if user and report is None:
        return  # a user's workload: checked once a worker reported on it
    if report is not None and user:
        numeric, name = report.numeric_fields, report.name
    else:
        workload = str(spec.workload.name)
        numeric, name = numeric_fields(get_workload(workload).config_model), workload
    if scale.field not in numeric:
        raise SpecError(
            f"{scale.field!r} is not a numeric field of {name}'s config (its numeric fields: "
            f"{', '.join(numeric) or 'none'})",
            field="scale.field",
        )
    if user:
        return  # its config model is the user's: each size is checked as its trials build
    for index, size in enumerate(scale.sizes()):
        try:
            parse_workload_config({**spec.workload.config(), scale.field: size})
        except WorkloadConfigError as exc:
            raise SpecError(str(exc), field=f"scale.values.{index}") from None


@dataclass(frozen=True)
class SizeBest:
    """One family's best at one size: its lr and the basin of lrs within tolerance."""

    size: float
    lr: float
    basin_low: float | None
    basin_high: float | None

    @property
    def centre(self) -> float:
        """lr* at this size: the basin's geometric centre (the best lr without a basin)."""
        if self.basin_low is None or self.basin_high is None:
            return self.lr
        return math.sqrt(self.basin_low * self.basin_high)


class ScalePoint(BaseModel):
    """A family's best lr at one size, with its basin and the basin's centre (lr*)."""

    size: float
    best_lr: float
    basin_low: float | None
    basin_high: float | None
    centre_lr: float
    """lr* at this size, what the rule is fitted to: the basin's geometric centre."""


class ScaleFamily(BaseModel):
    """One family's rule across sizes: log lr* = intercept + slope log size."""

    optimizer: str
    points: list[ScalePoint]
    slope: float | None
    """b: how lr* (the basin's centre) scales with the size (lr* ~ size^b); None with fewer
    than 2 sizes."""
    intercept: float | None
    slope_low: float | None
    slope_high: float | None
    """The slope's 90% interval (None with fewer than 3 sizes)."""
    predicted_lr: float | None
    """The best lr the rule predicts at ``predict``; None without one."""
    interval_low: float | None
    interval_high: float | None
    """The 90% prediction interval of the best lr at ``predict``."""
    range_low: float | None
    range_high: float | None
    """Where lrs should be good at ``predict``: the measured basins' mean width (in log
    space) around the prediction."""
    summary: str


class ScaleStudyRead(BaseModel):
    """A scale study's record: per family its best lr at each size and its fitted rule."""

    field: str
    sizes: list[float]
    predict: float | None
    families: list[ScaleFamily]
    summary: str


def _fit(name: str, points: Sequence[SizeBest], predict: float | None, field: str) -> ScaleFamily:
    """One family's fit over its sizes (least squares on the logs)."""
    from scipy import stats

    read = [
        ScalePoint(
            size=p.size,
            best_lr=p.lr,
            basin_low=p.basin_low,
            basin_high=p.basin_high,
            centre_lr=p.centre,
        )
        for p in points
    ]
    empty = dict.fromkeys(
        (
            "slope",
            "intercept",
            "slope_low",
            "slope_high",
            "predicted_lr",
            "interval_low",
            "interval_high",
            "range_low",
            "range_high",
        )
    )
    if len(points) < 2:
        text = f"{name}: a best lr at {len(points)} size(s), too few to fit a rule"
        return ScaleFamily(optimizer=name, points=read, summary=text, **empty)
    xs = [math.log(p.size) for p in points]
    ys = [math.log(p.centre) for p in points]
    fit = stats.linregress(xs, ys)
    found: dict[str, float | None] = dict(empty, slope=fit.slope, intercept=fit.intercept)
    n = len(points)
    t = stats.t.ppf(0.5 + INTERVAL / 2, n - 2) if n > 2 else math.nan
    mean = statistics.fmean(xs)
    spread = sum((x - mean) ** 2 for x in xs)
    residual = (
        math.sqrt(
            sum((y - fit.intercept - fit.slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
            / (n - 2)
        )
        if n > 2
        else math.nan
    )
    if n > 2:  # the slope's standard error, as linregress's (which is nan for a flat line)
        half = t * residual / math.sqrt(spread)
        found["slope_low"], found["slope_high"] = fit.slope - half, fit.slope + half
    if predict is not None:
        x0 = math.log(predict)
        y0 = fit.intercept + fit.slope * x0
        found["predicted_lr"] = math.exp(y0)
        if n > 2:
            half = t * residual * math.sqrt(1 + 1 / n + (x0 - mean) ** 2 / spread)
            found["interval_low"], found["interval_high"] = math.exp(y0 - half), math.exp(y0 + half)
        widths = [
            (math.log(p.basin_low / p.centre), math.log(p.basin_high / p.centre))
            for p in points
            if p.basin_low is not None and p.basin_high is not None
        ]
        if widths:
            found["range_low"] = math.exp(y0 + statistics.fmean(w[0] for w in widths))
            found["range_high"] = math.exp(y0 + statistics.fmean(w[1] for w in widths))
    return ScaleFamily(
        optimizer=name, points=read, summary=_sentence(name, found, predict, field), **found
    )


def _sentence(
    name: str, found: Mapping[str, float | None], predict: float | None, field: str
) -> str:
    """What the rule says, in one sentence a person can act on."""
    slope = found["slope"]
    assert slope is not None
    text = f"{name}: the good-lr basin's centre goes as {field}^{slope:.2f}"
    if found["slope_low"] is not None:
        text += f" (90% interval {found['slope_low']:.2f} to {found['slope_high']:.2f})"
    if predict is not None and found["predicted_lr"] is not None:
        text += f"; at {field} {predict:g} use lr {found['predicted_lr']:.3g}"
        if found["interval_low"] is not None:
            text += (
                f" (90% prediction interval {found['interval_low']:.3g} to "
                f"{found['interval_high']:.3g})"
            )
        low, high = found["range_low"], found["range_high"]
        if low is not None and high is not None and math.isclose(low, high, rel_tol=1e-9):
            text += "; its basin was one lr of the grid at each size (a finer grid shows its width)"
        elif low is not None:
            text += f", good from about {low:.3g} to {high:.3g}"
    return text + "."


def scale_study(
    spec: SweepCreate, bests: Mapping[str, Sequence[SizeBest]]
) -> ScaleStudyRead | None:
    """The study's record from each family's best at each size; None without ``scale``."""
    scale = spec.scale
    if scale is None:
        return None
    families = [
        _fit(name, sorted(points, key=lambda p: p.size), scale.predict, scale.field)
        for name, points in bests.items()
    ]
    summary = " ".join(f.summary for f in families) or "No family has a best lr at any size yet."
    return ScaleStudyRead(
        field=scale.field,
        sizes=sorted(scale.values),
        predict=scale.predict,
        families=families,
        summary=summary,
    )
