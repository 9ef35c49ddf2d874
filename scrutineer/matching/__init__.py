"""Matching: signal types, and search in Hamming space (multi-index hashing, pigeonhole blocks) and MinHash."""
