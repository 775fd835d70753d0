"""Versioned artifacts: save, verify, load, and the atomic `current` switch.

Layout under the artifacts folder:
    versions/<version>/manifest.json + one joblib file per part
    current            the name of the live version (replaced atomically)
    .train.lock        held by a training run

joblib is pickle, so a part is unpickled only after its sha256 matches the manifest; the folder
must be writable only by the operator. A version directory is written under a temporary name
and renamed when complete, and `current` is switched last, so a crash at any moment leaves the
previous version live and intact.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
from filelock import FileLock, Timeout

from . import fsutil
from .errors import ArtifactError, ArtifactWriteError, LockError
from .fsutil import TEMP_PREFIX, atomic_folder, atomic_write, sha256_file, sweep_temporaries

FORMAT_VERSION = 2  # 2: per-segment models chosen at train time (few.joblib, popularity modes, ALS, blends)
VERSIONS_DIR = "versions"
CURRENT = "current"
LOCK_FILE = ".train.lock"
MAX_POINTER_BYTES = 255


@dataclass(frozen=True)
class Loaded:
    """A verified, loaded version."""

    version: str
    path: Path
    manifest: dict
    parts: dict[str, Any]


def new_version_name() -> str:
    """Sortable, unique: UTC time to the microsecond plus the process id."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}.{int((now % 1) * 1e6):06d}-{os.getpid()}"


def current_version(artifacts_dir: Path) -> str | None:
    """The version `current` names; None if there is none yet.

    ArtifactError (one line, no traceback) when `current` is not a small text file naming a
    version directly under versions/: a directory, binary junk, or a path such as
    `../../elsewhere` that would load files from outside the artifacts folder.
    """
    pointer = artifacts_dir / CURRENT
    try:
        with open(pointer, "rb") as handle:
            raw = handle.read(MAX_POINTER_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ArtifactError(f"{pointer} is a directory, not a version pointer; remove it and retrain") from None
    except OSError as error:
        raise ArtifactError(f"{pointer}: cannot be read ({_reason(error)})") from None
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = None
    if name is None or len(raw) > MAX_POINTER_BYTES or not name.isprintable():
        raise ArtifactError(f"{pointer} is not a version pointer (binary or oversized content); remove it and retrain")
    if not name:
        return None
    version_path(artifacts_dir, name)
    return name


def version_path(artifacts_dir: Path, name: str) -> Path:
    """versions/<name>, refusing any name that is not one plain directory name inside versions/."""
    if name in (".", "..") or Path(name).name != name or "\\" in name or name.startswith(TEMP_PREFIX):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise ArtifactError(f"{artifacts_dir / CURRENT} names {shown!r}, which is not a version under {VERSIONS_DIR}/; refusing to load it")
    return artifacts_dir / VERSIONS_DIR / name


def publish(artifacts_dir: Path, parts: dict[str, Any], manifest: dict, *, keep: int = 3) -> str:
    """Write a complete new version, verify it, switch `current` to it, prune old versions.

    A failed write (disk full, permissions) raises ArtifactWriteError and leaves `current` as it was.
    """
    versions = artifacts_dir / VERSIONS_DIR
    name = new_version_name()
    final = versions / name
    writing = versions
    try:
        with atomic_folder(final) as temp:
            files = {}
            for part, obj in parts.items():
                writing = temp / f"{part}.joblib"
                joblib.dump(obj, writing, compress=0)
                files[writing.name] = {"sha256": sha256_file(writing), "bytes": writing.stat().st_size}
            full = {"format_version": FORMAT_VERSION, "version": name, **manifest, "files": files}
            writing = temp / "manifest.json"
            writing.write_text(json.dumps(full, indent=2, default=str), encoding="utf-8")
            writing = final
    except OSError as error:
        raise ArtifactWriteError(
            f"{versions}: cannot write a new version ({_reason(error)} while writing {writing.name}); "
            "`current` is unchanged; free space or fix permissions and retrain"
        ) from error
    try:
        verify(final)
    except ArtifactError:
        fsutil.remove(final)  # never leave a version that does not verify
        raise
    switch_current(artifacts_dir, name)
    prune(artifacts_dir, keep=keep)
    return name


def switch_current(artifacts_dir: Path, name: str) -> None:
    """Point `current` at version `name` with write-temp-then-rename."""
    try:
        atomic_write(artifacts_dir / CURRENT, name + "\n")
    except OSError as error:
        raise ArtifactWriteError(f"{artifacts_dir / CURRENT}: cannot switch to version {name} ({_reason(error)})") from error


def prune(artifacts_dir: Path, *, keep: int) -> list[str]:
    """Remove all but the newest `keep` versions (never `current`) and stray temporaries.

    Call only while holding the train lock: temporaries of a live run would be removed too.
    """
    versions = artifacts_dir / VERSIONS_DIR
    live = current_version(artifacts_dir)
    sweep_temporaries(versions)
    for stray in artifacts_dir.glob(f"{TEMP_PREFIX}{CURRENT}-*"):
        stray.unlink(missing_ok=True)
    complete = [p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(TEMP_PREFIX)]
    spare = [versions / live] if live else []
    return [path.name for path in fsutil.prune(complete, keep=max(keep, 1), newest=lambda path: path.name, spare=spare)]


def verify(path: Path) -> dict:
    """Check the manifest's format version and every file's checksum; return the manifest."""
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise ArtifactError(f"{manifest_path}: manifest missing; the version is incomplete or damaged (retrain)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({error}); retrain") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: artifact format {manifest.get('format_version')!r}, this recsys reads {FORMAT_VERSION}; retrain"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{manifest_path}: lists no files; retrain")
    for name, meta in files.items():
        file = path / name
        if Path(name).name != name or not file.exists():
            raise ArtifactError(f"{file}: missing (listed in the manifest); retrain")
        if sha256_file(file) != meta.get("sha256"):
            raise ArtifactError(f"{file}: checksum does not match the manifest (corrupt or tampered); refusing to load it")
    return manifest


def load(artifacts_dir: Path, version: str | None = None) -> Loaded:
    """Load `version` (default: current) after verifying it."""
    name = version or current_version(artifacts_dir)
    if name is None:
        raise ArtifactError(f"no trained model in {artifacts_dir}: run `recsys train --data DATA_DIR --artifacts {artifacts_dir}` first")
    path = version_path(artifacts_dir, name)
    if not path.is_dir():
        raise ArtifactError(f"{path}: version '{name}' named by {artifacts_dir / CURRENT} does not exist; retrain")
    manifest = verify(path)
    parts = {}
    for file in manifest["files"]:
        try:
            parts[file.removesuffix(".joblib")] = joblib.load(path / file)
        except Exception as error:  # a verified file that still fails to unpickle: wrong library versions
            raise ArtifactError(f"{path / file}: cannot be loaded ({type(error).__name__}: {error}); retrain") from None
    return Loaded(version=name, path=path, manifest=manifest, parts=parts)


@contextmanager
def train_lock(artifacts_dir: Path, *, wait: bool = False, timeout: float = 3600.0) -> Iterator[None]:
    """Hold the artifacts folder's training lock; without `wait`, fail at once if it is taken."""
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(artifacts_dir / LOCK_FILE))
    try:
        lock.acquire(timeout=timeout if wait else 0)
    except Timeout:
        raise LockError(f"another training run holds {artifacts_dir / LOCK_FILE}; pass --wait to queue behind it") from None
    try:
        yield
    finally:
        lock.release()


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__
