"""Detectors: the base class, the entry-point registry, the built-ins and a conformance kit."""
