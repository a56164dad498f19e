"""Largest-Triangle-Three-Buckets: keep a curve's shape in at most N points (Steinarsson 2013)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def lttb(
    xs: Sequence[float], ys: Sequence[float], max_points: int
) -> tuple[list[float], list[float]]:
    """At most ``max_points`` of the (x, y) points, first and last always kept.

    The points between are split into ``max_points - 2`` buckets; from each, the point that
    forms the largest triangle with the point kept before it and the mean of the next bucket.
    Non-finite values are kept as they are (a diverged curve ends where it ended).
    """
    if max_points < 3:
        raise ValueError(f"max_points must be at least 3, got {max_points}")
    n = len(xs)
    if n <= max_points:
        return list(map(float, xs)), list(map(float, ys))
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    y_filled = np.where(np.isfinite(y), y, 0.0)
    edges = np.linspace(1, n - 1, max_points - 1).astype(np.int64)
    keep = [0]
    for bucket in range(max_points - 2):
        start, stop = edges[bucket], edges[bucket + 1]
        next_stop = edges[bucket + 2] if bucket + 2 < len(edges) else n
        next_start = stop
        mean_x = x[next_start:next_stop].mean() if next_stop > next_start else x[-1]
        mean_y = y_filled[next_start:next_stop].mean() if next_stop > next_start else y_filled[-1]
        a = keep[-1]
        area = np.abs(
            (x[a] - mean_x) * (y_filled[start:stop] - y_filled[a])
            - (x[a] - x[start:stop]) * (mean_y - y_filled[a])
        )
        keep.append(int(start + np.argmax(area)))
    keep.append(n - 1)
    return [float(x[i]) for i in keep], [float(y[i]) for i in keep]
