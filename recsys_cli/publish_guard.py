"""Sanity checks a freshly trained version must pass before it replaces `current`.

A bad input file can still be readable: one stray quote turns the rest of a file into a single
malformed record, and a truncated export is just a smaller file. Either would train a tiny model
that every server hot-swaps to. The guard compares the new version's data with the version it
replaces and refuses to publish (one-line reason naming the check, `current` kept) when

- rejected lines exceed `max_reject_rate` of the event files' physical lines, or
- events, customers or products shrank by more than `max_shrink` against the published version, or
- there is nothing to fit (no events, customers or products).

`force=True` (`recsys train --force`) publishes anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from . import artifacts
from .errors import InputError, PublishRefused

SHRINK_CHECKED = ("events", "customers", "products")


@dataclass(frozen=True)
class GuardConfig:
    """Limits for publishing; the defaults refuse a version built from half the data or worse."""

    max_shrink: float = 0.5
    max_reject_rate: float = 0.1
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("max_shrink", "max_reject_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise InputError(f"publish guard {name} must be between 0 and 1, got {value}")


def check(
    artifacts_dir: Path,
    counts: Mapping[str, int],
    summary: Mapping[str, object],
    config: GuardConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> None:
    """Raise PublishRefused unless the new version (its manifest `counts`, its snapshot `summary`) may be published."""
    config = config or GuardConfig()
    log = log or (lambda message: None)
    try:
        _check(artifacts_dir, counts, summary, config)
    except PublishRefused as refusal:
        if not config.force:
            raise
        log(f"--force: publishing despite the publish guard ({refusal})")


def _check(artifacts_dir: Path, counts: Mapping[str, int], summary: Mapping[str, object], config: GuardConfig) -> None:
    current = artifacts.current_version(artifacts_dir)
    keep = f"`current` still names {current}" if current else "nothing was published"
    advice = f"{keep}; fix the input, or pass --force to publish anyway"
    empty = [name for name in SHRINK_CHECKED if not counts.get(name)]
    if empty:
        raise PublishRefused(f"publish guard 'nothing to fit': the new data has no {empty[0]}; {advice}")
    lines = int(summary.get("event_lines") or 0)
    rejected = int(summary.get("event_lines_rejected") or 0)
    if lines and rejected / lines > config.max_reject_rate:
        raise PublishRefused(
            f"publish guard 'reject rate': {rejected:,} of {lines:,} event lines rejected ({rejected / lines:.1%}, "
            f"limit {config.max_reject_rate:.0%}; `recsys ingest` lists them); {advice}"
        )
    previous = _published_counts(artifacts_dir, current)
    for name in SHRINK_CHECKED:
        before, after = int(previous.get(name) or 0), int(counts[name])
        if before and after < before * (1 - config.max_shrink):
            raise PublishRefused(
                f"publish guard '{name} shrank': {after:,} {name} against {before:,} in version {current} "
                f"({1 - after / before:.0%} fewer, limit {config.max_shrink:.0%}); {advice}"
            )


def _published_counts(artifacts_dir: Path, version: str | None) -> Mapping[str, int]:
    """The counts in the published version's manifest; empty when there is none or it is unreadable
    (a broken `current` is a reason to train, not a baseline to compare with)."""
    if version is None or Path(version).name != version:
        return {}
    try:
        manifest = json.loads((artifacts_dir / artifacts.VERSIONS_DIR / version / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    counts = manifest.get("counts") if isinstance(manifest, dict) else None
    return counts if isinstance(counts, dict) else {}
