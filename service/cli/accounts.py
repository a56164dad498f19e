"""Commands for signing in and managing access: login, token, project, user."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from optisweep.service.accounts.tokens import token_file, write_token_file
from optisweep.service.cli.common import (
    DEFAULT_URL,
    JsonOption,
    TokenDays,
    UrlOption,
    app,
    connect,
    console,
    fail,
    print_json,
    project_app,
    token_app,
    user_app,
)
from optisweep.service.client import Client, NotSignedInError, OptisweepError


@app.command()
def login(
    token: Annotated[
        str | None,
        typer.Option(help="An API token; asked for (hidden) when left out.", show_default=False),
    ] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Sign the CLI in: check a token with the server, then keep it in the token file (0600)."""
    token = (token or typer.prompt("API token", hide_input=True)).strip()
    try:
        with Client(url, token) as client:
            me = client.me()
    except NotSignedInError:
        raise fail("that token is unknown, expired or revoked") from None
    except OptisweepError as exc:
        raise fail(str(exc), code=exc.exit_code) from None
    path = token_file()
    write_token_file(path, token)
    projects = ", ".join(f"{p.name} ({p.role})" for p in me.projects) or "none yet"
    console.print(f"signed in as {me.user.name}; token kept in {path}; projects: {projects}")


@app.command()
def whoami(url: UrlOption = DEFAULT_URL, as_json: JsonOption = False) -> None:
    """Who the CLI is signed in as, and their projects."""
    with connect(url) as client:
        if as_json:
            print_json(client.request("GET", "/me"))
            return
        me = client.me()
    admin = " (admin)" if me.user.is_admin else ""
    console.print(
        f"{me.user.name}{admin}, token {me.token.prefix}... expiring {me.token.expires_at:%Y-%m-%d}"
    )
    for project in me.projects:
        console.print(f"- {project.name}: {project.role}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    days: TokenDays = 90,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Make a new token for yourself; it is shown once."""
    with connect(url) as client:
        created = client.create_token(name, days=days)
    console.print(f"token {created.id} ({created.name}), expires {created.expires_at:%Y-%m-%d}:")
    console.print(created.token, soft_wrap=True, highlight=False)


@token_app.command("list")
def token_list(url: UrlOption = DEFAULT_URL) -> None:
    """Your tokens (never their secrets)."""
    with connect(url) as client:
        tokens = client.tokens()
    table = Table(title="Your tokens")
    for column in ("id", "name", "starts", "created", "expires", "last used", "revoked"):
        table.add_column(column)
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            t.prefix + "...",
            f"{t.created_at:%Y-%m-%d}",
            f"{t.expires_at:%Y-%m-%d}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "-",
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (optisweep token list).")],
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Revoke a token: it signs in no more."""
    with connect(url) as client:
        revoked = client.revoke_token(token_id)
    console.print(f"token {revoked.id} ({revoked.name}) revoked")


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="The new project's name.")],
    owner: Annotated[str | None, typer.Option(help="Its first owner (a user name).")] = None,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Create a project (admins)."""
    with connect(url) as client:
        created = client.create_project(name, owner=owner)
    console.print(f"project {created.name} created")


@project_app.command("list")
def project_list(url: UrlOption = DEFAULT_URL) -> None:
    """The projects you are in, with your role."""
    with connect(url) as client:
        projects = client.projects()
    table = Table(title="Projects")
    for column in ("name", "your role", "created"):
        table.add_column(column)
    for p in projects:
        table.add_row(p.name, p.role or "-", f"{p.created_at:%Y-%m-%d}")
    console.print(table)


@project_app.command("add-member")
def project_add_member(
    project: Annotated[str, typer.Argument(help="The project.")],
    user: Annotated[str, typer.Argument(help="The user to add (or whose role to change).")],
    role: Annotated[str, typer.Option(help="viewer, member or owner.")] = "member",
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Give a user a role in a project (its owners and admins)."""
    with connect(url) as client:
        member = client.set_member(project, user, role=role)
    console.print(f"{member.user} is {member.role} of {project}")


@user_app.command("create")
def user_create(
    name: Annotated[str, typer.Argument(help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make them a server admin.")] = False,
    url: UrlOption = DEFAULT_URL,
) -> None:
    """Create a user (admins); their first token is shown once: hand it to them."""
    with connect(url) as client:
        created = client.create_user(name, admin=admin)
    console.print(f"user {created.user.name} created; their token (shown once):")
    console.print(created.token.token, soft_wrap=True, highlight=False)


@user_app.command("list")
def user_list(url: UrlOption = DEFAULT_URL) -> None:
    """Every user (admins)."""
    with connect(url) as client:
        users = client.users()
    for user in users:
        console.print(f"{user.name}{' (admin)' if user.is_admin else ''}")
