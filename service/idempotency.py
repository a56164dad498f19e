"""Idempotency-Key: a client that retries a POST (a timeout, a dropped connection) with the
same key and body within 24 hours gets the first answer back, and nothing is created twice.

The first request with a key claims it (a row, unique per user, route and key, committed at
once); requests that find the claim wait for its answer. The answer is stored with what it
created, in one transaction; a request that fails gives its claim up, so a retry runs again.
The same key with another body is a 422 naming the header.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from optisweep.service.accounts.models import IdempotencyRecord
from optisweep.service.db.base import utcnow
from optisweep.service.errors import ConflictError, InputError

KEY_HEADER = "Idempotency-Key"
KEPT_FOR = timedelta(hours=24)
WAIT_SECONDS = 120.0
"""How long a repeat waits for the first request's answer before a 409."""

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=KEY_HEADER,
        min_length=1,
        max_length=200,
        description="Repeat a POST safely: the same key and body within 24 h get the first "
        "answer, and nothing is created twice.",
    ),
]


@dataclass(frozen=True)
class Claim:
    """This request holds the key: it answers, then ``finish`` stores the answer."""

    record_id: int


def body_hash(body: bytes) -> str:
    """What identifies a request's body."""
    return hashlib.sha256(body).hexdigest()


def begin(
    session: Session, *, user_id: int, route: str, key: str, digest: str
) -> Claim | JSONResponse:
    """Claim ``key`` for this request, or the first request's answer to send back (after
    waiting for it while that request runs). Commits ``session`` as it goes, so a waiting
    request holds no database connection while it sleeps."""
    session.commit()
    deadline = time.monotonic() + WAIT_SECONDS
    mine = (
        IdempotencyRecord.user_id == user_id,
        IdempotencyRecord.route == route,
        IdempotencyRecord.key == key,
    )
    while True:
        session.execute(
            delete(IdempotencyRecord).where(
                *mine, IdempotencyRecord.created_at < utcnow() - KEPT_FOR
            )
        )
        record = session.scalar(select(IdempotencyRecord).where(*mine))
        if record is None:
            record = IdempotencyRecord(user_id=user_id, route=route, key=key, body_hash=digest)
            session.add(record)
            try:
                session.commit()
            except IntegrityError:  # another request claimed it first: wait for it
                session.rollback()
                continue
            return Claim(record.id)
        answer = (record.body_hash, record.status_code, record.response, record.headers)
        session.commit()  # let the connection go while waiting
        body_seen, status_code, body, headers = answer
        if body_seen != digest:
            raise InputError(
                f"this {KEY_HEADER} was used with another body in the last 24 hours: "
                "use a new key for a new request",
                loc=("header", KEY_HEADER),
            )
        if status_code is not None:
            return JSONResponse(body, status_code=status_code, headers=headers or {})
        if time.monotonic() > deadline:
            raise ConflictError(f"a request with this {KEY_HEADER} is still being answered")
        time.sleep(0.05)
        session.expire_all()


def finish(
    session: Session, claim: Claim, *, status_code: int, body: Any, headers: dict[str, str]
) -> None:
    """Store the answer with what the request changed (the caller commits both)."""
    record = session.get(IdempotencyRecord, claim.record_id)
    if record is not None:
        record.status_code = status_code
        record.response = body
        record.headers = headers


def abandon(sessions: sessionmaker[Session], claim: Claim) -> None:
    """Give a failed request's claim up: a retry with the key runs again."""
    with sessions() as session:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == claim.record_id))
        session.commit()
