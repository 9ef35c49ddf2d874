"""Dataset formats: the readers of shards (and the writers of releases), one module per format."""
