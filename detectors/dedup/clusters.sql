-- Clusters of a kind's links (dedup's near_caption, near_image). The kind gives its link table,
-- pairs (a_shard, a_row) - (b_shard, b_row), and its arc table, each pair in both directions with
-- its rank (the smallest is the nearest) and its score read from a to b.
-- Nodes are numbered in keep order (keep_rank, shard_id, row_index); each node's best link is its
-- nearest (to an earlier node first); connected components come by label propagation (a
-- recursive CTE keyed by node, each node taking the smallest label of its neighbours until none
-- changes), so a component's label is its kept node.
-- Formatted in: signatures, the signatures view's name, and prefix, the kind's table prefix
-- (identifiers: a parameter cannot name a table).
{prefix}_node AS MATERIALIZED (
    SELECT s.shard_id, s.row_index, s.sample_id, s.url, s.observation_id,
           row_number() OVER (ORDER BY s.keep_rank, s.shard_id, s.row_index) AS node
    FROM {signatures} s
    SEMI JOIN (SELECT a_shard AS shard_id, a_row AS row_index FROM {prefix}_link UNION SELECT b_shard, b_row FROM {prefix}_link) p
    USING (shard_id, row_index)),
{prefix}_edge AS MATERIALIZED (
    SELECT m.node AS a, n.node AS b, l.rank, l.score FROM {prefix}_arc l
    JOIN {prefix}_node m ON m.shard_id = l.a_shard AND m.row_index = l.a_row
    JOIN {prefix}_node n ON n.shard_id = l.b_shard AND n.row_index = l.b_row),
{prefix}_best AS (SELECT a, arg_min(l, row(l.b > l.a, l.rank, l.b)) AS link FROM {prefix}_edge l GROUP BY a),
{prefix}_cc(node, comp) USING KEY (node) AS (
    SELECT a, least(a, min(b)) FROM {prefix}_edge GROUP BY a
    UNION
    SELECT l.a, min(c.comp) FROM {prefix}_edge l
    JOIN recurring.{prefix}_cc c ON c.node = l.b JOIN recurring.{prefix}_cc me ON me.node = l.a
    GROUP BY l.a HAVING min(c.comp) < min(me.comp)),
{prefix}_size AS (SELECT comp, count(*) AS size FROM {prefix}_cc GROUP BY comp)
