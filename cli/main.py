"""The ``scrutineer`` command line (typer + rich): the app and the list of its commands.

Each command lives in the module of what it serves: :mod:`scrutineer.cli.scan` (scan, rematch,
recheck, banks), :mod:`scrutineer.cli.outputs` (release, takedown, report, summary,
query), :mod:`scrutineer.cli.gc` (gc), :mod:`scrutineer.cli.service` (deploy), :mod:`scrutineer.cli.crowd`
(users, flags, sync, serve), :mod:`scrutineer.cli.holds` (holds) and :mod:`scrutineer.cli.demo`; :mod:`scrutineer.cli.console` says how
they print and exit (exit status 0 success, 1 error, 3 a scan that finished with failed or
inconclusive shards).

Start-up: ``scrutineer --help`` imports every command module, so a module a command needs that
adds 100 ms or more to the CLI's own ~0.7 s import (Prefect, SQLAlchemy, FastAPI, Jinja2, ...;
measured over ``import scrutineer.cli.main``) is imported inside that command, with a comment
giving the measured cost; an optional dependency likewise, with a comment naming its extra.
"""

from __future__ import annotations

import typer

from scrutineer.cli import crowd, demo, gc, holds, outputs, scan, service
from scrutineer.core.files import keep_private

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Audit image-text datasets and publish clean RE- releases.")


@app.callback()
def main() -> None:
    """Audit image-text datasets and publish clean RE- releases. Every file a command writes is
    its owner's only (umask 077: scrutineer.core.files.keep_private)."""
    keep_private()


for command in (scan.scan, outputs.release, outputs.takedown, outputs.report, outputs.summary, scan.rematch, scan.recheck,
                gc.gc, service.deploy, scan.banks, outputs.query):
    app.command()(command)
app.add_typer(crowd.users, name="users")
app.add_typer(crowd.flags, name="flags")
app.add_typer(holds.holds, name="holds")
for command in (crowd.sync, crowd.serve, demo.demo):
    app.command()(command)
