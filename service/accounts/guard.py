"""Authorization by path: a route that names a sweep or a trial checks that the signed-in user
may read it (or, to cancel, change it) before the handler runs, so no handler can forget.
Dashboard pages need a signed-in session, or they send the browser to the sign-in page."""

from __future__ import annotations

from fastapi import Request

from optisweep.service.accounts.access import Principal, check_sweep, check_trial
from optisweep.service.accounts.auth import SAFE_METHODS, PrincipalDep, principal_of
from optisweep.service.accounts.models import ApiToken
from optisweep.service.deps import SessionDep


class SignInRequiredError(Exception):
    """A dashboard page asked for without a signed-in session."""


def _id(request: Request, name: str) -> int | None:
    value = request.path_params.get(name)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def guarded(request: Request, principal: PrincipalDep, session: SessionDep) -> Principal:
    """The principal, once they may act on the sweep or trial the path names (404 if they may
    not see it, 403 if their role is too low)."""
    sweep_id = _id(request, "sweep_id")
    if sweep_id is not None:
        safe = request.method in SAFE_METHODS
        check_sweep(session, principal, sweep_id, action="read" if safe else "cancel")
    trial_id = _id(request, "trial_id")
    if trial_id is not None:
        check_trial(session, principal, trial_id)
    return principal


def page_session(request: Request, session: SessionDep) -> Principal:
    """The dashboard's signed-in user (SignInRequiredError without a session); a page that names
    a sweep or trial the user may not see is a 404, as in the API."""
    token_id = request.session.get("token_id") if "session" in request.scope else None
    token = session.get(ApiToken, token_id) if isinstance(token_id, int) else None
    principal = principal_of(session, token) if token is not None else None
    if principal is None:
        raise SignInRequiredError
    sweep_id = _id(request, "sweep_id")
    if sweep_id is not None:
        check_sweep(session, principal, sweep_id, action="read")
    trial_id = _id(request, "trial_id")
    if trial_id is not None:
        check_trial(session, principal, trial_id)
    return principal
