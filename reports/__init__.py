"""Outputs built from the store: the takedown manifest and the HTML run report."""
