"""The verdict: one or two sentences, first on the sweep page, in ``submit --wait``, ``report``
and ``sweep.report()``: which family to pick, why, and how sure. It reads the leaderboard (its
order, and its ties: a test over repeats, or the report's tolerance from single seeds), each
family's lr basin (a wide one is a family that forgives a wrong lr) and where it diverged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from optisweep.service.trials.schemas import Leaderboard, LeaderboardEntry


class Basin(Protocol):
    """What the verdict reads of a family's report."""

    optimizer: str
    best_lr: float | None
    basin_decades: float | None
    basin_configurations: int
    lowest_diverged_lr: float | None


def _value(entry: LeaderboardEntry) -> float | None:
    """What ranks an entry: its configuration's mean over repeats, or its trial's objective."""
    return entry.objective_mean if entry.objective_mean is not None else entry.trial.objective


def _close(entry: LeaderboardEntry, leader: LeaderboardEntry, tolerance: float) -> bool:
    """From single seeds: within ``tolerance`` (relative) of the leader, at the same fidelity."""
    value, best = _value(entry), _value(leader)
    if value is None or best is None or (entry.stopped_at is None) != (leader.stopped_at is None):
        return False
    return abs(value - best) <= tolerance * max(abs(best), 1e-12)


def _width(report: Basin | None) -> float:
    return (report.basin_decades or 0.0) if report is not None else 0.0


def _basin_text(report: Basin | None) -> str:
    if report is None or report.best_lr is None:
        return "its lr"
    if report.basin_configurations <= 1:
        return f"only lr {report.best_lr:.2g} came within the tolerance of its best"
    return f"its good-lr range spans {_width(report):.1f} decades"


def verdict(board: Leaderboard, families: Sequence[Basin], *, tolerance: float) -> str:
    """Which family to pick and why, and how sure, in one or two sentences."""
    entries = board.entries
    metric = f"{board.metric} ({board.epoch} epoch)"
    if not entries:
        return f"No family has a trial with a finite {metric} yet."
    reports = {family.optimizer: family for family in families}
    leader = entries[0]
    repeats = leader.repeats > 1 or leader.objective_mean is not None
    if repeats:
        contenders = [e for e in entries if e.tied_with_leader]
        relation, test = "tied with", " (Welch's test, p >= 0.05)"
    else:
        contenders = [e for e in entries if _close(e, leader, tolerance)]
        relation, test = f"within {tolerance:.0%} of", ""
    # among families the data cannot tell apart, the one that forgives a wrong lr the most
    pick = max(contenders, key=lambda e: (_width(reports.get(e.optimizer)), -e.rank))
    picked = reports.get(pick.optimizer)
    others = [e for e in contenders if e is not pick]
    if not others:
        runner = entries[1] if len(entries) > 1 else None
        ahead = f", ahead of {runner.optimizer} ({_value(runner):.4g})" if runner else ""
        text = (
            f"Pick {pick.optimizer}: best {metric} {_value(pick):.4g}{ahead}; {_basin_text(picked)}"
        )
    else:
        widths = ", ".join(f"{e.optimizer} {_width(reports.get(e.optimizer)):.1f}" for e in others)
        if pick is leader:
            names = ", ".join(e.optimizer for e in others)
            verb = "are" if len(others) > 1 else "is"
            close = f"it leads on {metric} ({_value(pick):.4g}); {names} {verb} {relation} it{test}"
        else:
            values = (
                f"both {_value(pick):.4g}"
                if _value(pick) == _value(leader)
                else f"{_value(pick):.4g} against {_value(leader):.4g}"
            )
            close = f"it is {relation} the leader {leader.optimizer} on {metric} ({values}){test}"
        text = (
            f"Pick {pick.optimizer}: {close}, and its good-lr range is the widest "
            f"({_width(picked):.1f} decades; {widths})"
        )
    if picked is not None and picked.lowest_diverged_lr is not None:
        text += f"; it diverged at lr {picked.lowest_diverged_lr:.2g}"
    if pick.stopped_at is not None:
        text += f"; its trials were all stopped early (epoch {pick.stopped_at})"
    if repeats:
        sure = f"From {pick.repeats} repeats a configuration; the leaderboard has their intervals."
    else:
        sure = "From single seeds: search.repeats >= 2 would test how sure this is."
    return f"{text}. {sure}"
