"""``skyfleet token``: operator tokens with roles (viewer, operator, admin)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from skyfleet import store
from skyfleet.cli._client import DEFAULT_SERVER, JsonOption, ServerOption, TokenOption, once
from skyfleet.cli._common import iso, out, print_json

__all__ = ["token_app"]

token_app = typer.Typer(
    help="Operator tokens: who may read (viewer), change the fleet (operator), or manage tokens "
    "and signing roots (admin).",
    no_args_is_help=True,
)

_Name = Annotated[str, typer.Argument(help="The token's name, e.g. alice or ci-bot.")]


@token_app.command("create")
def token_create(
    name: _Name,
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")] = "viewer",
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Create it in this database directly instead of through the server "
            "(to bootstrap, or to recover a lost admin token).",
            show_default=False,
        ),
    ] = None,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print it (the only time it is shown; the server keeps a hash).

    Examples:

      skyfleet token create ci-bot --role operator

      skyfleet token create rescue --role admin --database-url sqlite:///skyfleet.db
    """
    if database_url is not None:
        db = store.open_store(database_url)
        try:
            with db.begin() as conn:
                secret = store.create_operator_token(
                    conn, time.time(), name=name, role=role, actor="skyfleet token create"
                )
        finally:
            db.close()
        answer = {"name": name, "role": role, "token": secret}
    else:
        answer = once(server, token, "POST", "/tokens", json={"name": name, "role": role})
    if as_json:
        print_json(answer)
    else:
        out.print(f"token {answer['name']} ({answer['role']}): {answer['token']}")


@token_app.command("list")
def token_list(
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """List tokens: name, role, who created it, when, and whether it is revoked (admin)."""
    answer = once(server, token, "GET", "/tokens")
    if as_json:
        print_json(answer)
        return
    table = Table(title="operator tokens")
    for col in ("name", "role", "created", "by", "revoked"):
        table.add_column(col)
    for t in answer["tokens"]:
        table.add_row(
            t["name"],
            t["role"],
            iso(t["created_at"]),
            t["created_by"],
            iso(t["revoked_at"]) if t["revoked_at"] else "-",
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    name: _Name,
    server: ServerOption = DEFAULT_SERVER,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a token at once (admin); the last admin token cannot be revoked."""
    answer = once(server, token, "DELETE", f"/tokens/{name}")
    if as_json:
        print_json(answer)
    else:
        out.print(f"token {name} revoked")


@token_app.command("whoami")
def token_whoami(
    server: ServerOption = DEFAULT_SERVER, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """The name and role of the token in use."""
    answer = once(server, token, "GET", "/whoami")
    if as_json:
        print_json(answer)
    else:
        out.print(f"{answer['name']} ({answer['role']})")
