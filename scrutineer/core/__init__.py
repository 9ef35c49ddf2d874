"""The core: the data contract, the config, the store and its working files, errors, hash banks and release policy."""
