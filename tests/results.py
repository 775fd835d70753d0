"""Where the reliability tier's figures go: a temporary folder, unless RECSYS_RESULTS_DIR names one.

Tests never write into the repository on their own; to refresh benchmarks/results, run for example
`RECSYS_RESULTS_DIR=benchmarks/results make reliability`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

RESULTS_ENV = "RECSYS_RESULTS_DIR"


def results_dir() -> Path:
    """$RECSYS_RESULTS_DIR, or a fresh temporary folder."""
    chosen = os.environ.get(RESULTS_ENV)
    folder = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="recsys-results-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_results(name: str, figures: dict) -> Path:
    """Write `figures` as results_dir()/name (JSON); its path."""
    path = results_dir() / name
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return path
