"""Background training jobs (`POST /admin/train`): `training.train` in a child process, one at a time.

A job runs in a `spawn` child process (a fresh interpreter: forking a server worker that already
ran OpenMP/BLAS code can hang, and a crash in training cannot take the worker down), in its own
session so a Ctrl-C to the server does not stop it. The child's output goes to the job's log file.
Status and output are files under ARTIFACTS/.train-jobs, so any worker can report any job; a lock
file held while a job runs makes a second one a JobConflict in every worker, and the artifacts'
train lock makes it one while `recsys train` runs.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from . import artifacts as artifact_store
from .errors import JobConflict, LockError, NotFoundError, RecsysError
from .fsutil import atomic_write, prune
from .holder import utc_iso

JOBS_DIR = ".train-jobs"
KEEP_JOBS = 20
JOB_OUTPUT_LINES = 20

log = logging.getLogger("recsys.server")


def train_job(data: Path, artifacts: Path, live_store: str | None = None) -> None:
    """What a job runs: `recsys train --data DATA --artifacts ARTIFACTS` (settings from the config file and environment)."""
    from .config import load_settings
    from .training import train

    def say(message: str) -> None:
        print(message, flush=True)

    outcome = train(data, artifacts, load_settings(), progress=lambda stage: say(f"stage: {stage}"), log=say, live_store=live_store)
    if outcome.skipped:
        say(f"Nothing to do: version {outcome.version} was trained on the same inputs and settings.")
    else:
        say(f"Trained version {outcome.version} in {outcome.seconds.get('total', 0.0):.1f} s")


def _run_in_child(work: Callable[[], object], output: str) -> None:
    """The child's body: own session, output to the job's log, a RecsysError as one line and its CLI exit code."""
    os.setsid()
    fd = os.open(output, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        work()
    except RecsysError as error:
        print(f"Error: {error}", file=sys.stderr, flush=True)
        sys.exit(error.exit_code)


class TrainJobs:
    """Start and report training jobs; `work` is what a job calls in its child process (picklable)."""

    def __init__(self, folder: Path, *, data: Path, artifacts: Path, live_store: str | None = None):
        self.folder = folder
        self.artifacts = artifacts
        self.work: Callable[[], object] = functools.partial(train_job, data, artifacts, live_store)
        self._lock = threading.Lock()

    def start(self) -> dict:
        """Start a job, or JobConflict while one runs in any worker or a `recsys train` holds the artifacts."""
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            running = FileLock(str(self.folder / "running.lock"), thread_local=False)  # held until the job ends, across workers
            try:
                running.acquire(timeout=0)
            except Timeout:
                raise JobConflict(f"a training job is still running{self._latest_running()}; start another when it has finished") from None
            try:
                with artifact_store.train_lock(self.artifacts, wait=False):
                    pass
            except LockError:
                running.release()
                raise JobConflict("`recsys train` is running on these artifacts; start a job when it has finished") from None
            job_id = uuid.uuid4().hex[:16]
            output = self.folder / f"{job_id}.log"
            try:
                output.touch()
                process = multiprocessing.get_context("spawn").Process(
                    target=_run_in_child, args=(self.work, str(output)), name=f"recsys-train-{job_id}"
                )
                process.start()
            except BaseException:
                running.release()
                raise
            record = {"job_id": job_id, "status": "running", "exit_code": None, "started_at": utc_iso(time.time()), "finished_at": None}
            self._write(job_id, record)
            threading.Thread(target=self._wait, args=(process, record, running), name=f"recsys-train-{job_id}", daemon=True).start()
            prune(self.folder.glob("*.json"), keep=KEEP_JOBS, delete=_remove_job)
        log.info("training job started job_id=%s pid=%s", job_id, process.pid)
        return self.status(job_id)

    def _wait(self, process: multiprocessing.process.BaseProcess, record: dict, running: FileLock) -> None:
        try:
            process.join()
            code = process.exitcode if process.exitcode is not None else 1
            record.update(status="succeeded" if code == 0 else "failed", exit_code=code, finished_at=utc_iso(time.time()))
            self._write(record["job_id"], record)
        finally:
            running.release()
        log.info("training job finished job_id=%s exit_code=%s", record["job_id"], code)

    def _write(self, job_id: str, record: dict) -> None:
        atomic_write(self.folder / f"{job_id}.json", json.dumps(record))

    def status(self, job_id: str) -> dict:
        """The job's record and the last lines of its output; NotFoundError for an unknown id."""
        if not re.fullmatch(r"[0-9a-f]{16}", job_id) or not (self.folder / f"{job_id}.json").exists():
            raise NotFoundError(f"no training job '{job_id[:40]}'")
        record = json.loads((self.folder / f"{job_id}.json").read_text(encoding="utf-8"))
        record["output"] = _tail(self.folder / f"{job_id}.log", JOB_OUTPUT_LINES)
        return record

    def _latest_running(self) -> str:
        records = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for path in records[:KEEP_JOBS]:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if record.get("status") == "running":
                return f" (poll /admin/train/{record['job_id']})"
        return ""


def _remove_job(record: Path) -> None:
    record.unlink(missing_ok=True)
    record.with_suffix(".log").unlink(missing_ok=True)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]
