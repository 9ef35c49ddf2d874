"""Dataset formats: one module per format holds its shard reader and its release writer.

- :mod:`~scrutineer.formats.base`: what a format is (``read``, ``write``) and the error naming
  the file and row;
- :mod:`~scrutineer.formats.registry`: ``FORMATS``, the one table of formats by
  ``dataset.format`` name;
- :mod:`~scrutineer.formats.parquet`, :mod:`~scrutineer.formats.csv` (and TSV),
  :mod:`~scrutineer.formats.jsonl`, :mod:`~scrutineer.formats.coco`, :mod:`~scrutineer.formats.hf`,
  :mod:`~scrutineer.formats.webdataset` (img2dataset's parquet and the images in its tars);
- :mod:`~scrutineer.formats.sources`: a dataset's shards, and their rows mapped to the canonical
  columns detectors see.
"""
