"""Scrutineer: audit open image-text datasets against hash lists, licences and duplicates, and
publish verifiable RE- releases. See README.md and DESIGN.md."""

__version__ = "0.1.0"
