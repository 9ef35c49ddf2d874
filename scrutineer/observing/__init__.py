"""Observing: fetching URLs politely, hashing their bytes in memory, reading hosts' policy files and opt-out signals."""
