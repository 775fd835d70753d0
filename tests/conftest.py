"""Shared fixtures: a tiny canonical dataset written once per session, and the CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from recsys_cli.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data"
SHARED = ROOT.parent / "shared" / "datasets"

EVENTS_HEADER = "customer_id,product_id,type,timestamp\n"


@pytest.fixture
def run_cli():
    """Invoke `recsys ...` in-process; returns the click Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
