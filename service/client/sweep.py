"""``Sweep``: one sweep on a server, to follow, query and cancel from Python."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from optisweep.service.client.records import (
    CodeUpload,
    Leaderboard,
    MetricPoint,
    Records,
    Report,
    SweepInfo,
    Trial,
)

if TYPE_CHECKING:
    from optisweep.service.client.api import Client


def counts_text(counts: dict[str, int]) -> str:
    """Trial counts as ``completed=3 running=2``, statuses without trials left out."""
    return " ".join(f"{name}={count}" for name, count in counts.items() if count)


def progress_bar(console: Console | None = None) -> Progress:
    """The bar a sweep's progress shows in: done of total, counts per status, time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    )


class Sweep:
    """A sweep on a server; ``info`` is what the server last said of it."""

    def __init__(self, client: Client, info: SweepInfo, *, code: CodeUpload | None = None) -> None:
        self.client = client
        self.info = info
        self.code = code
        """The code package submit() uploaded for it, if any."""

    def __repr__(self) -> str:
        return f"<Sweep {self.id} {self.info.name!r} {self.info.status}>"

    @property
    def id(self) -> int:
        """The sweep's id."""
        return self.info.id

    @property
    def url(self) -> str:
        """Its dashboard page."""
        return f"{self.client.url}/sweeps/{self.id}"

    @property
    def status(self) -> str:
        """Its status now (asks the server)."""
        return self.refresh().status

    def refresh(self) -> SweepInfo:
        """Ask the server for the sweep again; the new ``info``."""
        self.info = SweepInfo.model_validate(self.client.request("GET", f"/sweeps/{self.id}"))
        return self.info

    def wait(
        self,
        *,
        progress: bool = True,
        poll_seconds: float = 0.5,
        timeout: float | None = None,
        console: Console | None = None,
    ) -> SweepInfo:
        """Follow the sweep until it ends (completed, cancelled or failed), with a progress
        bar in a terminal or notebook unless ``progress=False``; TimeoutError after
        ``timeout`` seconds (the sweep goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not progress:
            return self._poll(poll_seconds, deadline, lambda info: None)
        with progress_bar(console) as bar:
            task = bar.add_task(f"sweep {self.id}", total=self.info.num_trials, counts="")

            def show(info: SweepInfo) -> None:
                counts = counts_text(info.trial_counts)
                bar.update(task, total=info.num_trials, completed=info.done, counts=counts)

            return self._poll(poll_seconds, deadline, show)

    def _poll(self, poll_seconds: float, deadline: float | None, show: Any) -> SweepInfo:
        info = self.refresh()
        show(info)
        while not info.finished:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"sweep {self.id} is still {info.status} ({info.done} done)")
            time.sleep(poll_seconds)
            info = self.refresh()
            show(info)
        return info

    def cancel(self) -> SweepInfo:
        """Cancel it; running trials stop after their current epoch."""
        self.info = SweepInfo.model_validate(
            self.client.request("POST", f"/sweeps/{self.id}/cancel")
        )
        return self.info

    def extend(self, trials: int) -> SweepInfo:
        """Give it ``trials`` more configurations (a finished sweep runs again)."""
        self.info = SweepInfo.model_validate(
            self.client.request("POST", f"/sweeps/{self.id}/extend", json={"trials": trials})
        )
        return self.info

    def rerun(self, *, failed: bool = True, stopped: bool = False) -> int:
        """Train its failed (and or early-stopped) trials again from their checkpoints, once
        it finished; how many go again."""
        found = self.client.request(
            "POST", f"/sweeps/{self.id}/rerun", json={"failed": failed, "stopped": stopped}
        )
        self.info = SweepInfo.model_validate(found["sweep"])
        return int(found["rerun"])

    def leaderboard(self) -> Leaderboard:
        """The best trial of each optimizer family, best first."""
        return Leaderboard.from_api(self.client.request("GET", f"/sweeps/{self.id}/leaderboard"))

    def report(self, *, tolerance: float = 0.02) -> Report:
        """The optimizer report: per family its best, its lr basin, where it diverged, and
        one sentence to act on."""
        params = {"tolerance": tolerance}
        return Report.from_api(
            self.client.request("GET", f"/sweeps/{self.id}/report", params=params)
        )

    def trials(
        self,
        *,
        optimizer: str | None = None,
        status: str | None = None,
        sort: str = "number",
        order: str | None = None,
        limit: int | None = None,
    ) -> Records[Trial]:
        """Its trials (every page), filtered and sorted as the API allows; ``limit`` at most."""
        items = self.client.pages(
            f"/sweeps/{self.id}/trials",
            limit=limit,
            optimizer=optimizer,
            status=status,
            sort=sort,
            order=order,
        )
        return Records(Trial.model_validate(item) for item in items)

    def metrics(self, *, name: str | None = None) -> Records[MetricPoint]:
        """Every metric its trials reported (trial, metric, epoch, value): the learning
        curves, one row per value; ``name`` keeps one metric."""
        points: Records[MetricPoint] = Records()
        cursor = None
        while True:
            page = self.client.request(
                "GET", f"/sweeps/{self.id}/metrics", params={"name": name, "cursor": cursor}
            )
            points.extend(MetricPoint.model_validate(item) for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return points
