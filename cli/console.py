"""How every command speaks and stops: its two consoles, its exit statuses and its one-line errors.

Exit status: 0 success; 1 error (bad config, bad bank file, no scan to release, a workspace that
another process holds or that is not a directory); 3 the scan finished but some shards failed
(``partial``) or could not check their links because the network went down (``inconclusive``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from scrutineer.core.errors import ScrutineerError

# soft_wrap: a line is never broken at the console's width (80 columns when piped), so a path or a
# run id stays whole for whoever copies it or reads the output with grep
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
EXIT_ERROR = 1
EXIT_PARTIAL = 3

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", exists=True, dir_okay=False)]


@contextmanager
def reported(*errors: type[Exception]) -> Iterator[None]:
    """Turn Scrutineer's errors (and ``errors``) into a one-line message on stderr and exit status 1."""
    try:
        yield
    except (ScrutineerError, *errors) as e:
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False)  # as written: [serve] is no markup
        raise typer.Exit(EXIT_ERROR) from None
