-- Near captions (dedup's near_caption): nc_link, the pairs of captions whose exact Jaccard
-- similarity reaches the threshold, and nc_arc, each pair in both directions.
-- Each row sharing an LSH band key linked to the band bucket's first row, then verified on the
-- exact Jaccard similarity of the two (cut) keys' shingle sets.
-- Formatted in: signatures, the signatures view's name, and shingles, the shingles expression of
-- s.near_caption_key over the n-gram size g.ngram (identifiers, and an expression of them).
-- Parameters: the n-gram size, the threshold.
nc_band AS MATERIALIZED (
    SELECT shard_id, row_index, unnest(near_caption_bands) AS key, generate_subscripts(near_caption_bands, 1) AS band
    FROM {signatures} WHERE near_caption_bands IS NOT NULL),
nc_bucket AS (SELECT band, key, min(struct_pack(shard_id, row_index)) AS anchor FROM nc_band GROUP BY band, key HAVING count(*) > 1),
nc_pair AS MATERIALIZED (
    SELECT DISTINCT b.shard_id, b.row_index, k.anchor.shard_id AS a_shard, k.anchor.row_index AS a_row
    FROM nc_band b JOIN nc_bucket k USING (band, key)
    WHERE (b.shard_id, b.row_index) <> (k.anchor.shard_id, k.anchor.row_index)),
nc_shingles AS MATERIALIZED (
    SELECT s.shard_id, s.row_index, s.near_caption_truncated AS truncated, {shingles} AS shingles
    FROM {signatures} s CROSS JOIN (SELECT ?::BIGINT AS ngram) g
    SEMI JOIN (SELECT shard_id, row_index FROM nc_pair UNION SELECT a_shard, a_row FROM nc_pair) p USING (shard_id, row_index)),
nc_link AS MATERIALIZED (
    SELECT * EXCLUDE (shared, size), shared / (size - shared) AS jaccard FROM (
        SELECT p.shard_id AS a_shard, p.row_index AS a_row, p.a_shard AS b_shard, p.a_row AS b_row, m.truncated OR n.truncated AS truncated,
               len(list_intersect(m.shingles, n.shingles)) AS shared, len(m.shingles) + len(n.shingles) AS size
        FROM nc_pair p
        JOIN nc_shingles m ON m.shard_id = p.shard_id AND m.row_index = p.row_index
        JOIN nc_shingles n ON n.shard_id = p.a_shard AND n.row_index = p.a_row)
    WHERE shared / (size - shared) >= ?),
nc_arc AS (
    SELECT a_shard, a_row, b_shard, b_row, -jaccard AS rank, struct_pack(jaccard, truncated) AS score FROM nc_link
    UNION ALL SELECT b_shard, b_row, a_shard, a_row, -jaccard, struct_pack(jaccard, truncated) FROM nc_link)
