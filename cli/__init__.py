"""The ``scrutineer`` command line."""
