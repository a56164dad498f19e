"""The Pareto front of a multi-objective sweep: the points no other point dominates."""

from __future__ import annotations

from collections.abc import Sequence


def _minimised(values: Sequence[float], modes: Sequence[str]) -> tuple[float, ...]:
    """The values as costs: a maximised objective negated."""
    return tuple(-v if mode == "max" else v for v, mode in zip(values, modes, strict=True))


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether cost ``a`` is no worse than ``b`` on every objective and better on one."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def pareto_front(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """The indices of the non-dominated ``points`` (finite values, one per objective in
    ``modes``), best by the first objective first; equal points are all kept.

    Sorted lexicographically by cost, a point can only be dominated by one before it, and
    then by one of the front found so far: for two objectives a point is on the front when
    its second cost beats every earlier one (O(n log n)); for three it is checked against
    the front so far."""
    costs = [_minimised(values, modes) for values in points]
    order = sorted(range(len(costs)), key=lambda i: (costs[i], i))
    front: list[int] = []
    for index in order:
        cost = costs[index]
        if len(modes) == 2 and front:
            last = costs[front[-1]]
            kept = cost[1] < last[1] or cost == last
        else:
            kept = not any(_dominates(costs[f], cost) for f in front)
        if kept:
            front.append(index)
    return front
