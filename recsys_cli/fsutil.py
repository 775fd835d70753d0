"""Durable files: atomic writes of a file or a whole folder, sha256 of a file, pruning old entries.

The one home of these helpers (artifacts, snapshots, settings files and training-job records use
them). An atomic write goes to a temporary sibling named TEMP_PREFIX + ..., is fsynced, then
renamed over the target and the folder fsynced: a crash at any moment leaves the old content or
the new, never half of either. Temporaries a killed process left behind keep the prefix, so a
later `prune` (or `sweep_temporaries`) can find and remove them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".tmp-"
CHUNK = 1 << 20


def fsync_file(path: Path) -> None:
    """Flush a written file's content to the disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename inside it) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, content: str | bytes, *, encoding: str = "utf-8") -> None:
    """Replace the file at `path` with `content` atomically (temporary sibling, fsync, rename, fsync folder).

    An OSError leaves `path` as it was and no temporary behind.
    """
    path = Path(path)
    data = content.encode(encoding) if isinstance(content, str) else content
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}-", dir=path.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        fsync_file(temp)
        os.replace(temp, path)
        fsync_dir(path.parent)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success its files are fsynced and it is renamed to `target`.

    With `replace`, an existing `target` is removed first (the rename itself cannot replace a
    non-empty folder). Any failure removes the temporary folder and re-raises; `target` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=target.parent))
    try:
        yield temp
        for file in temp.iterdir():
            if file.is_file():
                fsync_file(file)
        if replace and target.exists():
            shutil.rmtree(target)
        os.replace(temp, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def update_digest(digest: Any, path: Path) -> None:
    """Feed a file's bytes into a hashlib digest, a chunk at a time."""
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's content."""
    digest = hashlib.sha256()
    update_digest(digest, path)
    return digest.hexdigest()


def remove(path: Path) -> None:
    """Remove a file, or a folder by renaming it to a temporary first (a crash mid-delete leaves a temporary, never half a folder)."""
    if path.is_dir():
        doomed = path.with_name(f"{TEMP_PREFIX}old-{path.name}")
        os.replace(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_temporaries(folder: Path) -> None:
    """Remove the temporaries (TEMP_PREFIX...) an interrupted write left in `folder`.

    Call only while no other writer can be using the folder (hold its lock).
    """
    for stray in folder.glob(f"{TEMP_PREFIX}*"):
        shutil.rmtree(stray, ignore_errors=True) if stray.is_dir() else stray.unlink(missing_ok=True)


def prune(
    entries: Iterable[Path],
    *,
    keep: int,
    newest: Callable[[Path], Any] = lambda path: path.stat().st_mtime,
    spare: Collection[Path] = (),
    delete: Callable[[Path], None] = remove,
) -> list[Path]:
    """Delete all but the `keep` newest of `entries` (ordered by `newest`), never one in `spare`; the deleted ones."""
    ordered = sorted(entries, key=newest, reverse=True)
    doomed = [path for path in ordered[max(keep, 0) :] if path not in spare]
    for path in doomed:
        delete(path)
    return doomed
