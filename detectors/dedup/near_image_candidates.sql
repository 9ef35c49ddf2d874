-- One signal's candidate pairs of near images (dedup's near_image): the signal's candidate table,
-- (a_shard, a_row, b_shard, b_row). Rows of a code after its first link to it (so a thousand
-- copies of one image make a thousand links, not half a million); the first rows of distinct
-- codes sharing a pigeonhole block (a variant's block (i - 1) % blocks of the probe against an
-- original's block i) link in one direction each, except in a block shared by more than the hot
-- bucket's size of codes, where each links to the block's first code only.
-- Formatted in: signatures, the signatures view's name; signal, pdq or phash (in table names);
-- code, the signal's column; key, the original's code in it (PDQ's first 4 words: the dihedral
-- variants' follow) (identifiers, and a slice of one).
-- Parameters: the blocks per code, twice; the hot bucket's size.
ni_{signal}_code AS MATERIALIZED (
    SELECT {key} AS code, min(struct_pack(keep_rank, shard_id, row_index)) AS first,
           arg_min({code}_blocks, struct_pack(keep_rank, shard_id, row_index)) AS blocks
    FROM {signatures} WHERE {code} IS NOT NULL GROUP BY 1),
ni_{signal}_key AS MATERIALIZED (
    SELECT first, key, (i - 1) % ? AS band, i <= ? AS original FROM (
        SELECT first, unnest(blocks) AS key, generate_subscripts(blocks, 1) AS i FROM ni_{signal}_code)),
-- Blocks seen 3 times in a 2% sample (a block of 1,000 codes fails that with probability 5e-7),
-- then counted exactly: one aggregate over every block would cost more than the candidates
-- themselves (bench/dedup.py --images).
ni_{signal}_hot AS MATERIALIZED (
    SELECT band, key, min(first) AS anchor FROM ni_{signal}_key
    SEMI JOIN (SELECT band, key FROM (SELECT * FROM ni_{signal}_key WHERE original USING SAMPLE 2 PERCENT (bernoulli, 42))
               GROUP BY band, key HAVING count(*) >= 3) USING (band, key)
    WHERE original GROUP BY band, key HAVING count(*) > ?),
ni_{signal}_candidate AS (
    SELECT s.shard_id AS a_shard, s.row_index AS a_row, c.first.shard_id AS b_shard, c.first.row_index AS b_row
    FROM {signatures} s JOIN ni_{signal}_code c ON s.{key} = c.code
    WHERE (s.shard_id, s.row_index) <> (c.first.shard_id, c.first.row_index)
    UNION
    SELECT least(p.first, q.first).shard_id, least(p.first, q.first).row_index, greatest(p.first, q.first).shard_id, greatest(p.first, q.first).row_index
    FROM ni_{signal}_key p JOIN ni_{signal}_key q ON q.original AND p.band = q.band AND p.key = q.key AND p.first <> q.first
    ANTI JOIN ni_{signal}_hot h ON h.band = p.band AND h.key = p.key
    UNION
    SELECT least(p.first, h.anchor).shard_id, least(p.first, h.anchor).row_index, greatest(p.first, h.anchor).shard_id, greatest(p.first, h.anchor).row_index
    FROM ni_{signal}_key p JOIN ni_{signal}_hot h ON h.band = p.band AND h.key = p.key AND p.first <> h.anchor)
