"""FastAPI dependencies, declared once as Annotated aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from optisweep.service.config import Settings
from optisweep.service.controller.loop import Controller


def get_session(request: Request) -> Iterator[Session]:
    """A session whose transaction commits once when the handler succeeds, else rolls back."""
    with request.app.state.sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_controller(request: Request) -> Controller | None:
    """The in-process controller, or None when this server runs without one."""
    controller: Controller | None = request.app.state.controller
    return controller


# scope="function": commit before the response is sent, so a client that got 201 finds the row.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ControllerDep = Annotated[Controller | None, Depends(get_controller)]
