"""The publish guard: a readable but bad input never replaces the published version.

The stray-quote case is the issue's reproduction: `sed '3s/^/"/' events.csv` used to make the
reader swallow the rest of the file as one record and `train` published a one-customer model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recsys_cli import artifacts

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data"
FAST = ("--collaborative", "itemknn")


@pytest.fixture
def published(tmp_path, run_cli) -> tuple[Path, Path, str]:
    """A copy of data/ trained once: (data, artifacts, the published version)."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    folder = tmp_path / "artifacts"
    result = run_cli("train", "--data", data, "--artifacts", folder, *FAST)
    assert result.exit_code == 0, result.output
    return data, folder, artifacts.current_version(folder)


def insert_quote(events: Path, line: int) -> None:
    """What `sed '<line>s/^/"/'` does."""
    lines = events.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line - 1] = '"' + lines[line - 1]
    events.write_text("".join(lines), encoding="utf-8")


def test_a_stray_quote_on_line_3_fails_train_and_keeps_current(published, run_cli):
    data, folder, before = published
    insert_quote(data / "events.csv", 3)
    result = run_cli("train", "--data", data, "--artifacts", folder, *FAST)
    assert result.exit_code != 0
    assert "29,999 of 30,000 lines are bad" in result.stderr
    assert "lines 3-30001 (an unclosed quote?)" in result.stderr
    assert artifacts.current_version(folder) == before
    assert len(list((folder / "versions").iterdir())) == 1


def test_a_stray_quote_on_a_first_train_publishes_nothing(tmp_path, run_cli):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    insert_quote(data / "events.csv", 3)
    result = run_cli("train", "--data", data, "--artifacts", tmp_path / "artifacts", *FAST)
    assert result.exit_code != 0
    assert artifacts.current_version(tmp_path / "artifacts") is None


def test_a_late_stray_quote_trips_the_reject_rate_check(published, run_cli):
    data, folder, before = published
    insert_quote(data / "events.csv", 25_002)  # 5,000 of 30,000 lines swallowed: under ingest's 50%, over the guard's 10%
    result = run_cli("train", "--data", data, "--artifacts", folder, *FAST)
    assert result.exit_code == 4
    message = result.stderr.strip().splitlines()[-1]  # progress lines before it; the error is one line
    assert message.startswith("Error: publish guard")
    assert "publish guard 'reject rate': 5,000 of 30,000 event lines rejected" in message
    assert f"`current` still names {before}" in message
    assert artifacts.current_version(folder) == before
    forced = run_cli("train", "--data", data, "--artifacts", folder, *FAST, "--force")
    assert forced.exit_code == 0, forced.output
    assert artifacts.current_version(folder) != before


def test_a_truncated_export_trips_the_shrink_check_and_force_publishes_it(published, run_cli):
    data, folder, before = published
    events = data / "events.csv"
    events.write_text("".join(events.read_text(encoding="utf-8").splitlines(keepends=True)[:5001]), encoding="utf-8")
    result = run_cli("train", "--data", data, "--artifacts", folder, *FAST)
    assert result.exit_code == 4
    assert "publish guard 'events shrank': 5,000 events against 30,000" in result.stderr
    assert artifacts.current_version(folder) == before
    looser = run_cli("train", "--data", data, "--artifacts", folder, *FAST, "--max-shrink", "0.9")
    assert looser.exit_code == 0, looser.output
    assert artifacts.current_version(folder) != before


def test_a_small_shrink_publishes(published, run_cli):
    data, folder, before = published
    events = data / "events.csv"
    events.write_text("".join(events.read_text(encoding="utf-8").splitlines(keepends=True)[:25001]), encoding="utf-8")
    result = run_cli("train", "--data", data, "--artifacts", folder, *FAST)
    assert result.exit_code == 0, result.output
    assert artifacts.current_version(folder) != before


def test_guard_limits_are_checked(tmp_path, run_cli):
    result = run_cli("train", "--data", SAMPLE, "--artifacts", tmp_path, "--max-shrink", "1.5")
    assert result.exit_code == 2
    assert "max_shrink must be between 0 and 1" in result.stderr
