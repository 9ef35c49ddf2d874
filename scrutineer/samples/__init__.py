"""What a sample's fields mean: registrable domains, canonical URLs, licences as SPDX ids."""
