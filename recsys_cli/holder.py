"""The hot-swap holder: one swappable `RecommendationService` reference per process, and its health.

Each process polls `ARTIFACTS/current` every `poll_seconds` in a daemon thread started on first
use (`ensure_poller`). A new version is loaded (and checksum-verified) in that thread, then the one
reference is swapped; a request reads the reference once, so requests in flight finish on the old
model and none waits for a load. A version that fails to load is refused: logged, reported by
`health()` as "degraded" with the reason, and the old model keeps serving.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from . import artifacts as artifact_store
from .errors import ArtifactError, RecsysError, ReloadRefused
from .live import LiveEvents
from .service import RecommendationService

log = logging.getLogger("recsys.server")


def utc_iso(seconds: float) -> str:
    """Unix seconds as an ISO 8601 UTC time to the second."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def release_memory(*, collect: bool = True) -> None:
    """After a swap, collect the old model and hand freed heap pages back to the OS (glibc keeps
    them otherwise, and a worker's memory would grow with every published version)."""
    if collect:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


class ServiceHolder:
    """The served model of one process: `service` is swapped whole, never mutated."""

    def __init__(
        self,
        artifacts: Path,
        live: LiveEvents,
        *,
        poll_seconds: float,
        on_refused: Callable[[], None] = lambda: None,
        changes: dict | None = None,
    ):
        self.artifacts = artifacts
        self.live = live
        self.poll_seconds = float(poll_seconds)
        self.on_refused = on_refused
        self.changes = changes  # served settings given at start (`serve --set`), kept across reloads
        self.service = RecommendationService.load(artifacts, live=live, changes=changes)
        self.last_reload_error: str | None = None
        self._refused: str | None = None
        self._reload_lock = threading.Lock()
        self._poller_lock = threading.Lock()
        self._poller_pid: int | None = None

    def reload(self, *, retry_refused: bool = True) -> str:
        """Serve the version `current` names now: 'reloaded' or 'unchanged'; ReloadRefused if it fails to load."""
        with self._reload_lock:
            serving = self.service.version
            try:
                name = artifact_store.current_version(self.artifacts)
            except ArtifactError as error:  # a broken pointer: keep serving what we have
                if self.last_reload_error != str(error):
                    self.on_refused()
                    log.error("reload refused serving=%s error=%s", serving, json.dumps(str(error)))
                self.last_reload_error, self._refused = str(error), None
                raise ReloadRefused(f"{error}; still serving {serving}") from None
            if name is None or name == serving:
                if name == serving:  # `current` points back at what we serve: an earlier refusal is moot
                    self.last_reload_error, self._refused = None, None
                return "unchanged"
            if name == self._refused and not retry_refused:
                raise ReloadRefused(self.last_reload_error or f"version {name} was refused")
            try:
                fresh = RecommendationService.load(self.artifacts, version=name, live=self.live, changes=self.changes)
            except Exception as error:  # any failure to load keeps the old model serving
                reason = str(error) if isinstance(error, RecsysError) else f"{type(error).__name__}: {error}"
                self.last_reload_error, self._refused = f"version {name} refused: {reason}", name
                self.on_refused()
                log.error("reload refused version=%s serving=%s error=%s", name, serving, json.dumps(reason))
                raise ReloadRefused(f"{self.last_reload_error}; still serving {serving}") from None
            self.service = fresh
            self.last_reload_error, self._refused = None, None
            del fresh
            release_memory()
            log.info("model reloaded version=%s previous=%s", name, serving)
            return "reloaded"

    def ensure_poller(self) -> None:
        """Start this process's poll thread once (after a fork, the child starts its own)."""
        if self.poll_seconds <= 0 or self._poller_pid == os.getpid():
            return
        with self._poller_lock:
            if self._poller_pid != os.getpid():
                threading.Thread(target=self._poll, name="recsys-reload", daemon=True).start()
                self._poller_pid = os.getpid()

    def _poll(self) -> None:
        trims_left = 0
        while True:
            time.sleep(self.poll_seconds)
            try:
                if self.reload(retry_refused=False) == "reloaded":
                    trims_left = 3  # requests that were in flight release the old model a little later
            except ReloadRefused:
                pass
            except Exception:  # never let the poll thread die
                log.exception("reload check failed")
            if trims_left:
                trims_left -= 1
                release_memory(collect=False)

    def health(self) -> dict:
        """What /health reports: "degraded" with every problem (joined in `last_reload_error`) when anything is wrong."""
        problems = [self.last_reload_error] if self.last_reload_error else []
        try:
            current = artifact_store.current_version(self.artifacts)
        except ArtifactError as error:
            current = None
            if str(error) not in problems:
                problems.append(str(error))
        try:
            live_events: int | None = self.live.count()
        except RecsysError as error:
            live_events = None
            problems.append(f"live events are not used: {error}")
        if self.live.read_error and live_events is not None:
            problems.append(f"live events are not used: {self.live.read_error}")
        service = self.service
        return {
            "status": "degraded" if problems else "ok",
            "model_version": service.version,
            "current_version": current,
            "loaded_at": utc_iso(service.loaded_at),
            "counts": service.counts(),
            "live_events": live_events,
            "last_reload_error": "; ".join(problems) if problems else None,
            "pid": os.getpid(),
        }
