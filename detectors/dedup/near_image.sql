-- Near images (dedup's near_image): ni_link, the pairs of candidates (each signal's candidate
-- table) within a threshold, with pdq_distance over the dihedral variants (d(a_t, b) for each
-- variant t of a, and d(b_t, a): the nearest decides), transform (the dihedral transform taking a
-- to b; one found from b's side is undone) and phash_distance; and ni_arc, each pair in both
-- directions.
-- Formatted in: signatures, the signatures view's name; candidates, a UNION of a SELECT of each
-- signal's candidate table (identifiers).
-- Parameters: the transform undoing each dihedral transform (a list, in PDQ_DIHEDRAL order), the
-- PDQ threshold, the pHash threshold (null when pHash is not used).
ni_inverse AS (SELECT CAST(? AS INTEGER[]) AS inverse),
ni_candidate AS MATERIALIZED ({candidates}),
ni_link AS MATERIALIZED (
    SELECT a_shard, a_row, b_shard, b_row, nearest.d AS pdq_distance, nearest.t AS transform, phash_distance FROM (
        SELECT c.*,
               list_min(list_concat(
                   list_transform(range(len(x.near_image_pdq) // 4), lambda t: struct_pack(
                       d := bit_count(xor(x.near_image_pdq[4 * t + 1], y.near_image_pdq[1])) + bit_count(xor(x.near_image_pdq[4 * t + 2], y.near_image_pdq[2]))
                            + bit_count(xor(x.near_image_pdq[4 * t + 3], y.near_image_pdq[3])) + bit_count(xor(x.near_image_pdq[4 * t + 4], y.near_image_pdq[4])),
                       t := t)),
                   list_transform(range(len(y.near_image_pdq) // 4), lambda t: struct_pack(
                       d := bit_count(xor(y.near_image_pdq[4 * t + 1], x.near_image_pdq[1])) + bit_count(xor(y.near_image_pdq[4 * t + 2], x.near_image_pdq[2]))
                            + bit_count(xor(y.near_image_pdq[4 * t + 3], x.near_image_pdq[3])) + bit_count(xor(y.near_image_pdq[4 * t + 4], x.near_image_pdq[4])),
                       t := k.inverse[t + 1])))) AS nearest,
               bit_count(xor(x.near_image_phash, y.near_image_phash)) AS phash_distance
        FROM ni_candidate c
        JOIN {signatures} x ON x.shard_id = c.a_shard AND x.row_index = c.a_row
        JOIN {signatures} y ON y.shard_id = c.b_shard AND y.row_index = c.b_row
        CROSS JOIN ni_inverse k)
    WHERE pdq_distance <= ? OR phash_distance <= ?),
ni_arc AS (
    SELECT a_shard, a_row, b_shard, b_row, struct_pack(pdq_distance, phash_distance) AS rank,
           struct_pack(pdq_distance := pdq_distance, transform := transform, phash_distance := phash_distance) AS score
    FROM ni_link
    UNION ALL
    SELECT b_shard, b_row, a_shard, a_row, struct_pack(pdq_distance, phash_distance),
           struct_pack(pdq_distance := pdq_distance, transform := k.inverse[transform + 1], phash_distance := phash_distance)
    FROM ni_link CROSS JOIN ni_inverse k)
