"""The crowd: accounts, flags and reviews (the crowd store), the review snapshot, sync into the findings store, flag import, and the review app."""
