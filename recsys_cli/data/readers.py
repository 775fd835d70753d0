"""Reading input files into raw canonical frames (strings, as given), with every bad line reported.

A reader never validates values (that is ingest's job); it only gets rows out of files, keeping
each row's file and line so that a rejected row can be named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

REJECT_COLUMNS = ("file", "line", "reason")


@dataclass
class RawInput:
    """What a reader hands to ingest.

    events: columns customer_id, product_id, type, timestamp (strings as read; a preset may
        already map its own event names to the canonical ones), file (str), line (int, 1-based
        physical line of the row in its file; the header is line 1).
    catalog: canonical catalog columns that the source has (product_id required), strings or
        floats for price, plus file and line.
    rejects: rows the reader itself could not use (malformed lines, preset-specific rules),
        columns file, line, reason.
    notes: human-readable remarks for the summary (e.g. "events.csv: timestamps in unix ms").
    """

    events: pd.DataFrame
    catalog: pd.DataFrame
    rejects: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(REJECT_COLUMNS)))
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
