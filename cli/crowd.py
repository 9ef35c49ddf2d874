"""The commands of the crowd: ``users`` (accounts of the review app), ``flags import`` and
``flags export``, ``sync`` and ``serve`` (the review app)."""

from __future__ import annotations

import os
import sys
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from scrutineer.cli.console import ConfigArg, err, out, reported
from scrutineer.core.config import load_config
from scrutineer.core.extras import require

if TYPE_CHECKING:
    from scrutineer.crowd.store import CrowdStore

users = typer.Typer(no_args_is_help=True, help="Accounts of the review app.")
flags = typer.Typer(no_args_is_help=True, help="Flags from people.")
AccountName = Annotated[str, typer.Argument(help="Account name.")]


def _crowd_store(config: Path) -> CrowdStore:
    """The crowd store of the config at ``config`` (a context manager)."""
    # start-up: scrutineer.crowd.store costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.store import CrowdStore

    return CrowdStore(load_config(config).crowd)


@users.command("add")
def users_add(
    config: ConfigArg,
    name: Annotated[str, typer.Argument(help="Account name (how the person logs in).")],
    role: Annotated[str, typer.Option(help="contributor (flags samples), reviewer (also decides flags) or maintainer (also sees takedowns).")],
) -> None:
    """Create an account; print its password and API token, once (only their hashes are stored)."""
    with reported(), _crowd_store(config) as crowd:
        password, token = crowd.add_account(name, role)
    out.print(f"{role} {name!r} created.\npassword: {password}\nAPI token: {token}\nKeep them now: they are not shown again.", highlight=False)


@users.command("list")
def users_list(config: ConfigArg) -> None:
    """List the accounts: name, role, state, when created, last log-in, API tokens and live
    sessions (no secrets: only their hashes are stored)."""
    with reported(), _crowd_store(config) as crowd:
        rows = crowd.list_accounts()
    table = Table(box=None)
    table.add_column("name", overflow="fold")  # never cut short: it is what the other commands take
    for column in ("role", "state", "created", "last log-in", "tokens", "sessions"):
        table.add_column(column, no_wrap=True)
    for a in rows:
        signed_in = a["signed_in_at"].strftime("%Y-%m-%d %H:%M") if a["signed_in_at"] else "never"
        table.add_row(a["name"], a["role"], a["state"], f"{a['created_at']:%Y-%m-%d}", signed_in, str(a["tokens"]), str(a["sessions"]))
    out.print(table)


def _change_account(config: Path, name: str, change: str) -> str | None:
    """:meth:`scrutineer.crowd.store.CrowdStore.change_account`, audited as made by ``cli``."""
    with reported(), _crowd_store(config) as crowd:
        return crowd.change_account(name, change, "cli")


@users.command("disable")
def users_disable(config: ConfigArg, name: AccountName) -> None:
    """Disable an account: its sessions and API tokens stop working at once, in every app
    process, and it cannot log in until enabled."""
    _change_account(config, name, "disable")
    out.print(f"{name!r} disabled: its sessions and tokens have ended.", highlight=False)


@users.command("enable")
def users_enable(config: ConfigArg, name: AccountName) -> None:
    """Enable a disabled account: it logs in with its password again (its old tokens stay ended:
    `users rotate-token` gives it a new one)."""
    _change_account(config, name, "enable")
    out.print(f"{name!r} enabled.", highlight=False)


@users.command("rotate-token")
def users_rotate_token(config: ConfigArg, name: AccountName) -> None:
    """End an account's API tokens and print a new one, once."""
    token = _change_account(config, name, "rotate-token")
    out.print(f"API token of {name!r}: {token}\nIts earlier tokens have stopped working. Keep this one now: it is not shown again.", highlight=False)


@users.command("reset-password")
def users_reset_password(config: ConfigArg, name: AccountName) -> None:
    """Give an account a new random password, printed once, and end its sessions."""
    password = _change_account(config, name, "reset-password")
    out.print(f"password of {name!r}: {password}\nIts sessions have ended. Keep it now: it is not shown again.", highlight=False)


@flags.command("import")
def flags_import(
    config: ConfigArg,
    file: Annotated[Path, typer.Argument(help="CSV (with a header) or JSONL: rows with sample_id or url, category, note.", exists=True, dir_okay=False)],
    by: Annotated[str, typer.Option("--by", help="The account the flags are recorded for.")],
) -> None:
    """Import flags from a file, all or nothing: a file naming any unknown sample, URL or category
    imports nothing, and every bad line is listed."""
    # start-up: scrutineer.crowd.flag_import costs 560 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.flag_import import import_flags

    with reported():
        made, new = import_flags(load_config(config), file, by)
    out.print(f"{new} flags recorded ({made - new} already recorded) from {file}", highlight=False)


@flags.command("export")
def flags_export(
    config: ConfigArg,
    status: Annotated[Literal["pending", "confirmed", "rejected"] | None, typer.Option(help="Only flags with this status.")] = None,
    fmt: Annotated[Literal["csv", "jsonl"], typer.Option("--format", help="csv (for spreadsheets) or jsonl (exact).")] = "csv",
    as_account: Annotated[str | None, typer.Option("--as", help="Export what this account may see through the API (a contributor: their own "
                                                   "flags, no URLs). Default: a maintainer's view, every flag with its URL.")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write here (readable by its owner only) instead of to stdout.", dir_okay=False)] = None,
) -> None:
    """Export every flag with its reports and reviews' decisions and reasons, newest first, as the
    API shows them to the account named by --as; a contributor's export re-imports with `flags import`."""
    # start-up: scrutineer.crowd.access costs 860 ms at import, as scrutineer.crowd.app (FastAPI, SQLAlchemy)
    from scrutineer.crowd.access import Services

    # start-up: as scrutineer.crowd.access, which it imports
    from scrutineer.crowd.flag_export import export_as, exported, write_export

    with reported(), closing(Services.open(load_config(config))) as s:
        who = export_as(s, as_account)
        records = exported(s, who, status)
        if out_file is None:
            n = write_export(records, sys.stdout, fmt)
        else:
            part = out_file.with_name(out_file.name + ".part")
            try:
                with os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8", newline="") as f:
                    n = write_export(records, f, fmt)
                part.replace(out_file)
            finally:
                part.unlink(missing_ok=True)
    where = f" to {out_file} (readable by its owner only)" if out_file else ""
    view = "a maintainer's view" if as_account is None else f"as {as_account} ({who.role}) sees them"
    restricted = ": it holds restricted facts (URLs and reviewers' notes of restricted samples)" if who.reviews else ""
    err.print(f"{n} flags exported{where}, {view}{restricted}.", highlight=False)


def sync(config: ConfigArg) -> None:
    """Import the confirmed crowd flags into the latest finished run as `crowd.<category>`
    findings (idempotent), and publish the review snapshot again."""
    # start-up: scrutineer.crowd.sync costs 430 ms at import (SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.sync import sync_latest

    with reported():
        run_id, n = sync_latest(load_config(config))
    out.print(f"run {run_id}: {n} crowd findings", highlight=False)


def serve(
    config: ConfigArg,
    host: Annotated[str, typer.Option(help="Address to bind; keep loopback and put a TLS reverse proxy in front (README).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port; it must be free.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="App processes (gunicorn workers running uvicorn); they share the crowd store, sessions and rate limits.")] = 2,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Mark cookies Secure on every request, for a TLS proxy that does not send X-Forwarded-Proto (README \"Behind TLS\").")] = False,
) -> None:
    """Serve the review app: flag samples, review flags, read reports (FastAPI, on uvicorn, in
    gunicorn's worker processes); prints its URL once it listens. A host other than loopback
    serves plain HTTP to the network: it is allowed, with a warning. Needs the serve extra."""
    with reported():
        require("serve")
    # optional: the serve extra; start-up: scrutineer.crowd.app costs 860 ms at import (FastAPI, SQLAlchemy; measured 2026-12-06)
    from scrutineer.crowd.app import CONFIG_ENV, SECURE_COOKIES_ENV, create_app

    # optional: the serve extra (gunicorn, uvicorn-worker)
    from scrutineer.crowd.server import Server, plain_http_warning

    if warning := plain_http_warning(host):
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    with reported():
        cfg = load_config(config)
        create_app(cfg).state.services.close()  # a bad config or crowd store fails here, in one line
        server = Server(host, port, workers)
    os.environ[CONFIG_ENV] = str(cfg.config_path)
    os.environ[SECURE_COOKIES_ENV] = "1" if secure_cookies else "0"
    server.run()
