"""One family's part of the optimizer report: its record, and the sentences it says (its lr
basin, what tuning gained over its defaults, a learning-rate-free family's best)."""

from __future__ import annotations

from pydantic import BaseModel


class FamilyReport(BaseModel):
    """What a sweep says about one optimizer family."""

    optimizer: str
    best_trial: int | None
    """The trial number of the family's best configuration (its first repeat), or None."""
    best_objective: float | None
    """Its objective (the mean over repeats with repeats)."""
    best_lr: float | None
    best_hyperparameters: dict[str, object] | None
    best_settings: dict[str, object] | None = None
    """Its searched training settings (batch size, clip norm, schedule), if the sweep searches
    any: the basin is taken among configurations that share those listed as values (a
    setting drawn from a range, such as a warm-up of 0..500 steps, does not split it)."""
    basin_low: float | None
    """The lowest lr of the basin: configurations from here to ``basin_high`` (by lr, without
    a gap) reach within the tolerance of the best."""
    basin_high: float | None
    basin_decades: float | None
    """log10(basin_high / basin_low): 0 when only the best configuration is in it."""
    basin_configurations: int
    """How many configurations the basin holds."""
    open_below: bool
    """The basin starts at the lowest lr tried: it may reach lower."""
    open_above: bool
    """The basin ends at the highest lr tried: it may reach higher."""
    configurations: int
    """The family's configurations with a finite objective."""
    diverged: int
    """Its trials that diverged (a NaN or infinite loss)."""
    lowest_diverged_lr: float | None
    """The lowest lr at which one of its trials diverged."""
    default_trial: int | None = None
    """With ``search.defaults_first``: the trial number of the family's defaults (its first
    repeat); None without, or while it has no finite objective. The best, the basin and
    ``configurations`` are the searcher's configurations, without it."""
    default_objective: float | None = None
    """Its objective (the mean over repeats with repeats)."""
    default_lr: float | None = None
    """The family's default lr it ran at."""
    tuning_gain: float | None = None
    """How much better the best searched configuration is than the defaults, in the
    objective's units: positive when tuning helped (for either mode), negative when the
    defaults won; None without both."""
    tuning_gain_relative: float | None = None
    """``tuning_gain`` / |``default_objective``| (None when that is 0)."""
    lr_tuning_gain: float | None = None
    """For a learning-rate-free family (Prodigy): how much better the sweep's best family
    with a tuned lr did than this family's best, in the objective's units (negative: leaving
    lr to the estimate won); None without both."""
    summary: str
    """One sentence a person can act on."""


def lr_free_sentence(report: FamilyReport, metric: str) -> str:
    """A learning-rate-free family's sentence: its best and what it searched, no lr basin (it
    has one lr, its default, that multiplies the step size it estimates)."""
    assert report.best_objective is not None
    hyperparameters = report.best_hyperparameters or {}
    chosen = "".join(
        f", {name} {value:.3g}"
        for name in SEARCHED_LR_FREE
        if isinstance(value := hyperparameters.get(name), int | float)
    )
    settings = "".join(
        f", {setting_text(key, value)}" for key, value in (report.best_settings or {}).items()
    )
    text = (
        f"{report.optimizer} (learning-rate free, lr {report.best_lr:.2g}): best {metric} "
        f"{report.best_objective:.4g}{chosen}{settings} over {report.configurations} "
        "configurations"
    )
    if report.lowest_diverged_lr is not None:
        text += f"; {report.diverged} diverged"
    return text


SEARCHED_LR_FREE = ("d_coef", "weight_decay", "growth_rate")
"""The hyperparameters a learning-rate-free family's sentence names with its best."""


def tuning_gains(best: float, default: float | None, *, maximize: bool) -> dict[str, float | None]:
    """``tuning_gain`` (positive when the best beats the defaults) and its relative size."""
    if default is None:
        return {}
    gain = best - default if maximize else default - best
    return {"tuning_gain": gain, "tuning_gain_relative": gain / abs(default) if default else None}


def defaults_text(report: FamilyReport, metric: str) -> str:
    """What the sentence adds about the family's defaults trial, if it has one."""
    if report.default_objective is None or report.default_lr is None:
        return ""
    at = f"{report.default_objective:.4g} at lr {report.default_lr:.2g}"
    if report.tuning_gain is None:
        return f"; its defaults reached {at}"
    relative = report.tuning_gain_relative
    share = f" ({relative:+.1%})" if relative is not None else ""
    return f"; tuning gained {report.tuning_gain:+.3g} {metric}{share} over its defaults ({at})"


def basin_sentence(
    report: FamilyReport, tolerance: float, metric: str, *, highest_tried: float
) -> str:
    """One sentence: where to set this family's lr, and where it breaks."""
    assert report.best_objective is not None
    assert report.best_lr is not None
    name, within = report.optimizer, f"within {tolerance:.0%} of its best {metric}"
    best = f"{report.best_objective:.4g} at lr {report.best_lr:.2g}"
    if report.best_settings:
        best += "".join(
            f", {setting_text(key, value)}" for key, value in report.best_settings.items()
        )
    if report.basin_configurations == 1:
        text = f"{name}: only lr {report.best_lr:.2g} is {within} ({best}); try more lrs near it"
    else:
        text = (
            f"{name}: lr {report.basin_low:.2g}..{report.basin_high:.2g} "
            f"({report.basin_decades or 0:.1f} decades, {report.basin_configurations} "
            f"configurations) {within} ({best})"
        )
    if report.lowest_diverged_lr is not None:
        text += f"; diverged at lr {report.lowest_diverged_lr:.2g}"
    else:
        text += f"; none diverged up to lr {highest_tried:.2g}"
    edges = [side for side, open_ in (("below", report.open_below), ("above", report.open_above))]
    edges = [
        side
        for side, open_ in zip(
            ("below", "above"), (report.open_below, report.open_above), strict=True
        )
        if open_
    ]
    if edges and report.basin_configurations > 1:
        text += f"; the basin may reach further {' and '.join(edges)} the lrs tried"
    return text


def setting_text(name: str, value: object) -> str:
    """A searched setting in words: "batch size 64", "clip norm none", "cosine schedule"."""
    if name == "schedule" and isinstance(value, dict):
        parameters = ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in value.items() if k != "kind"
        )
        return f"{value['kind']} schedule" + (f" ({parameters})" if parameters else "")
    if name.startswith("param_groups."):  # param_groups.0.weight_decay
        _, index, field = name.split(".")
        return f"group {index} {field.replace('_', ' ')} {value}"
    return f"{name.replace('_', ' ')} {'none' if value is None else value}"
