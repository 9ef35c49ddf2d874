"""Scrutineer: audit open image-text datasets against hash lists, licences and duplicates, and
publish verifiable RE- releases. See README.md and DESIGN.md.

From Python, read a workspace with :class:`Workspace` (:mod:`scrutineer.core.workspace`).
"""

__version__ = "0.1.0"  # the one place it is spelled: pyproject.toml reads it (dynamic version)

from scrutineer.core.workspace import Workspace

__all__ = ["Workspace", "__version__"]
