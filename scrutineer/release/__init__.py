"""RE- releases: the input dataset minus the rows a variant's policy removes, with a verifiable manifest and card."""
