"""RE- releases: the input dataset minus the rows a variant's policy removes, with a verifiable
manifest and card.

- :mod:`~scrutineer.release.build`: the filtering and the manifest (``build_release``);
- :mod:`~scrutineer.release.anonymity`: the anonymity set of the restricted rows, and the refusal
  when they are too large a share of it;
- :mod:`~scrutineer.release.card`: the Hugging Face dataset card (``README.md``);
- :mod:`~scrutineer.release.croissant`: ``croissant.json``, Croissant 1.1 metadata with its
  Responsible AI fields, which mlcroissant validates and reads the release's rows with.

The policy a variant names (which reasons remove a row, which of them an outsider can recompute)
is :mod:`scrutineer.core.policy`: the config validates against it.
"""
