"""Reading, validating and generating the canonical CSV data."""
