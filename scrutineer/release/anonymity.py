"""The anonymity set of a release's restricted rows.

It is the release's removed rows that no recomputable reason of the policy explains
(:func:`scrutineer.core.policy.recomputable_sql`). A removed row that a recomputable reason also
removes is explained to whoever holds the original and gives a restricted row no cover (a
restricted row so explained is not told apart from the others); the rest look alike to them (dead
links, crowd decisions and hash-list matches). The restricted rows such an outsider could single
out are the restricted rows inside that set; the manifest and the card give its size and how many
of them are restricted. A release whose restricted rows are more than
``release.max_restricted_share`` of that set is refused, unless its variant acknowledges it
(``acknowledge_restricted_share``).
"""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.compute as pc

from scrutineer.core.config import Config
from scrutineer.core.wording import plural
from scrutineer.core.errors import ReleaseError


def anonymity_set(removed: pa.Table, cfg: Config, variant: str) -> dict:
    """The anonymity set of the restricted rows (module docstring), checked against
    ``release.max_restricted_share`` and the variant's ``acknowledge_restricted_share``.

    Args:
        removed: one row per removed row, with bool columns ``restricted`` and ``recomputable``.

    Returns:
        ``{"rows": n, "restricted": k, "restricted_share": k / n}`` (the share rounded to 4
        places; 0 for an empty set).

    Raises:
        ReleaseError: the share is over both the limit and the acknowledgement; one line with the
            numbers, the limit and the config key that acknowledges.
    """
    hidden = removed.filter(pc.invert(removed["recomputable"]))
    rows, restricted = hidden.num_rows, pc.sum(hidden["restricted"]).as_py() or 0
    share = restricted / rows if rows else 0.0
    limit, acknowledged = cfg.release.max_restricted_share, cfg.release.variants[variant].acknowledge_restricted_share
    if share > limit and (acknowledged is None or share > acknowledged):
        key = f"release.variants.{variant}.acknowledge_restricted_share"
        over = f"release.max_restricted_share ({limit})" + (f" and {key} ({acknowledged})" if acknowledged is not None else "")
        raise ReleaseError(
            f"release {variant} refused: {restricted} of the {rows} removed rows no recomputable reason explains are restricted "
            f"({share:.0%}), more than {over}: whoever holds the original narrows them down to {plural(rows, 'row')}. "
            f"Set {key}: {math.ceil(share * 100) / 100} to release anyway"
        )
    return {"rows": rows, "restricted": restricted, "restricted_share": round(share, 4)}
