"""The command that looks after the workspace itself: ``gc``."""

from __future__ import annotations

from typing import Annotated

import typer

from scrutineer.cli.console import ConfigArg, out, reported
from scrutineer.core.config import load_config
from scrutineer.flows.gc import KEEP_RUNS, collect

#: How each kind of thing gc deletes is counted in its report.
KINDS = {"observations": "observation sets", "judgements": "judgement sets", "banks": "bank entries files", "temporaries": "temporaries"}


def gc(
    config: ConfigArg,
    keep_runs: Annotated[int, typer.Option(min=1, help="Finished runs of the dataset to keep, the latest first.")] = KEEP_RUNS,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Delete nothing: print what would be deleted and freed.")] = False,
) -> None:
    """Delete the observation and judgement sets, bank entries and temporaries that no kept run
    needs: the --keep-runs latest finished runs of the dataset, every other dataset's runs and every
    run a release was built from are kept, with the newest observation of every recheck lineage.
    Print the bytes freed. From the store it deletes only the judgements no run uses (crowd flags
    a later sync replaced). It holds the workspace as a scan does: it stops with an error while
    another process (a scan) holds it."""
    with reported():
        done = collect(load_config(config), keep_runs, dry_run)
    out.print(f"kept runs: {', '.join(done.kept_runs) or 'none'}", highlight=False)
    for kind, paths in done.deleted.items():
        out.print(f"{'would delete' if dry_run else 'deleted'} {len(paths)} {KINDS[kind]}", highlight=False)
    if done.stored[0]:
        out.print(f"{'would delete' if dry_run else 'deleted'} {done.stored[0]} judgements no run uses from the store "
                  f"({done.stored[1]} findings)", highlight=False)
    verb = "would free" if dry_run else "freed"
    readable = f" ({_readable(done.bytes)})" if done.bytes >= 1000 else ""  # "0 bytes (0 bytes)" said it twice
    out.print(f"{verb} {done.bytes} bytes{readable}" + ("; nothing deleted (--dry-run)" if dry_run else ""), highlight=False)


def _readable(size: int) -> str:
    """``size`` bytes in decimal units (1 kB = 1000 bytes), as ``du --si`` shows them."""
    units = ["bytes", "kB", "MB", "GB", "TB"]
    value, unit = float(size), 0
    while value >= 1000 and unit < len(units) - 1:
        value, unit = value / 1000, unit + 1
    return f"{size} bytes" if unit == 0 else f"{value:.1f} {units[unit]}"
