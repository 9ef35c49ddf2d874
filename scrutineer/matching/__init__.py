"""Matching: signal types (each makes its banks' index), Hamming-space codes and their search
(hex codes and distance, multi-index hashing, pigeonhole blocks), and MinHash."""
