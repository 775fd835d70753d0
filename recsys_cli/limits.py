"""Limits and names of the public interface, defined once.

The service and the server enforce them; the OpenAPI document states them. Nothing here imports
anything, so both edges and the docs can depend on it.
"""

from __future__ import annotations

MAX_N = 1000
"""The most items one recommendation, similar or popular answer holds (`n` is 1..MAX_N)."""
MAX_BATCH = 1000
"""The most events one POST /events body may carry."""
MAX_BODY = 1 << 20
"""The largest request body the server reads, in bytes."""
SOURCES = ("collaborative", "content", "popularity")
"""The `source` a recommendation names: which kind of model answered."""
RULE_SOURCE = "rules"
"""The `source` of a product a shop rule pinned to its place (not a model's choice)."""
WINDOW_PATTERN = r"^([0-9]{1,9}(?:\.[0-9]{1,6})?)([mhdw])$"
"""A time window such as 7d, 12h, 30m or 2w (/trending?window=)."""
