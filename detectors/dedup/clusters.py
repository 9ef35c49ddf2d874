"""``dedup``'s near-duplicate clusters: the connected components of a kind's links
(``clusters.sql``), one sample of each kept, every other one flagged naming its nearest linked
sample.

A kind (:mod:`~scrutineer.detectors.dedup.near_caption`, :mod:`~scrutineer.detectors.dedup.near_image`)
gives three tables under its prefix: ``{prefix}_link``, its pairs of rows
``(a_shard, a_row, b_shard, b_row)``; ``{prefix}_arc``, each pair in both directions with its
``rank`` (the smallest is the nearest) and its ``score`` (a struct, read from a to b); and, after
the clusters' tables, ``{prefix}_evidence``: per node ``a``, the kind's ``evidence`` of its best
link, ``{prefix}_best.link`` (an edge: ``a``, ``b``, ``rank``, ``score``), as a struct, and its
``patch``, a JSON object of the fields that apply to some links only.
"""

from __future__ import annotations

from scrutineer.detectors.dedup.query import Query, sql_file

#: The clusters' tables of one kind: ``{prefix}_node`` (its linked rows, numbered in keep order),
#: ``{prefix}_edge``, ``{prefix}_best`` (each node's nearest link), ``{prefix}_cc`` (each node's
#: component: its kept node) and ``{prefix}_size``.
CLUSTERS_SQL = sql_file("clusters.sql")
#: A near-duplicate cluster's id: the first 16 hex characters of the MD5 of its kept sample's
#: ``shard_id:row_index`` (stable while that sample is kept).
CLUSTER_ID_SQL = "md5(k.shard_id || ':' || k.row_index::VARCHAR)[:16]"
#: The findings of one kind: every node but its component's kept one, with evidence naming the
#: kept sample, the cluster and the nearest linked sample, then the kind's own fields (a struct:
#: JSON keeps their order and nulls) and the kind's patch (a JSON object merged in: the fields that
#: apply to some links only). Parameters: the detector's name and version, the reason. {prefix}:
#: the kind's table prefix (an identifier).
FINDINGS_SQL = f"""
    SELECT d.shard_id, d.row_index, d.sample_id, d.url,
           ? AS detector, ? AS detector_version, ? AS reason,
           json_merge_patch(to_json(struct_concat(
               struct_pack(kept_row_index := k.row_index, kept_sample_id := k.sample_id, kept_shard_id := k.shard_id,
                           cluster_id := {CLUSTER_ID_SQL}, cluster_size := z.size,
                           near_row_index := n.row_index, near_sample_id := n.sample_id, near_shard_id := n.shard_id),
               x.evidence)), x.patch)::VARCHAR AS evidence,
           false AS restricted, d.observation_id
    FROM {{prefix}}_cc c JOIN {{prefix}}_best e ON e.a = c.node JOIN {{prefix}}_node d ON d.node = c.node
    JOIN {{prefix}}_node n ON n.node = e.link.b JOIN {{prefix}}_node k ON k.node = c.comp JOIN {{prefix}}_size z ON z.comp = c.comp
    JOIN {{prefix}}_evidence x ON x.a = c.node
    WHERE c.node <> c.comp
"""

def findings(query: Query, signatures: str, prefix: str, detector: str, version: str, reason: str) -> None:
    """Add to ``query`` the clusters' tables of the kind whose tables are under ``prefix`` (its
    links already in ``query``; its ``{prefix}_evidence`` to follow), and its findings, of
    ``reason``."""
    query.with_(CLUSTERS_SQL.format(signatures=signatures, prefix=prefix))
    query.union(FINDINGS_SQL.format(prefix=prefix), detector, version, reason)
