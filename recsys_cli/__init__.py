"""recsys: personalized product recommendations for a single online store."""

__version__ = "0.1.0"
