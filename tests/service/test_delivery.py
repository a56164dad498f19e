"""The inbox keeps events until they are acknowledged; error messages keep no server paths."""

from __future__ import annotations

from pathlib import Path

from optisweep.service.controller.faults import scrub_paths
from optisweep.service.controller.inbox import EpochReport, Inbox, Started


def _report(inbox: Inbox, epoch: int) -> None:
    inbox.report(epoch, [(1, 1, {"val_loss": 1.0 / epoch}, None)])


def test_events_stay_until_acknowledged_and_are_read_again_after_a_failed_write() -> None:
    inbox = Inbox()
    inbox.started([(1, 1, 0)], "node", "cpu")
    for epoch in (1, 2):
        _report(inbox, epoch)
    last, events = inbox.pending()
    assert [type(e) for e in events] == [Started, EpochReport, EpochReport]
    # the write of that batch failed: nothing was acknowledged, the same batch comes again
    _report(inbox, 3)
    again_last, again = inbox.pending()
    assert again[:3] == events
    assert [e.epoch for e in again[1:] if isinstance(e, EpochReport)] == [1, 2, 3]
    # the write committed up to ``last``: only later events remain
    inbox.ack(last)
    remaining_last, remaining = inbox.pending()
    assert remaining_last == again_last
    assert [e.epoch for e in remaining if isinstance(e, EpochReport)] == [3]
    inbox.ack(remaining_last)
    assert inbox.pending() == (0, [])


def test_a_batch_is_bounded_and_the_rest_follows() -> None:
    inbox = Inbox()
    for epoch in range(1, 8):
        _report(inbox, epoch)
    last, first = inbox.pending(limit=5)
    assert [e.epoch for e in first if isinstance(e, EpochReport)] == [1, 2, 3, 4, 5]
    inbox.ack(last)
    _, rest = inbox.pending(limit=5)
    assert [e.epoch for e in rest if isinstance(e, EpochReport)] == [6, 7]


def test_error_messages_keep_no_server_paths(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    message = (
        f"PermissionError: [Errno 13] Permission denied: '{root}/sweep-1-2026/trial-3.pt' "
        "(while importing /usr/lib/python3/site-packages/mod.py)"
    )
    scrubbed = scrub_paths(message, root)
    assert scrubbed == (
        "PermissionError: [Errno 13] Permission denied: 'sweep-1-2026/trial-3.pt' "
        "(while importing mod.py)"
    )
    assert "/" not in scrub_paths("OSError: cannot open /data/x.bin", None).replace(": ", "")
