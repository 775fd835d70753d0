"""One exception hierarchy for the core; translated to exit codes in cli.py and statuses in server.py.

Core errors say what went wrong and what to do; they carry no HTTP status. The REST edge maps
each class to a status once (`server.HTTP_STATUS`).
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base of every error a user can cause or fix. `exit_code` is what the CLI exits with."""

    exit_code: int = 1


class InputError(RecsysError):
    """Unusable input as a whole: a missing file or column, an empty file, a bad option."""

    exit_code = 2


class DataError(RecsysError):
    """Bad rows inside otherwise readable input (strict mode, or too many bad rows)."""

    exit_code = 1


class EventsError(InputError):
    """Invalid events in a POST /events body; `details` lists every problem found."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []


class NotFoundError(RecsysError):
    """An unknown product (or other id) where a known one is required."""

    exit_code = 1


class ArtifactError(RecsysError):
    """Artifacts are missing, corrupt, tampered with or of another format version."""

    exit_code = 1


class ArtifactWriteError(ArtifactError, OSError):
    """Writing a version, a snapshot or the `current` pointer failed (disk full, permissions).

    Also an OSError, like io.UnsupportedOperation is also a ValueError, so callers that catch
    the operating system's error keep working.
    """


class LiveStoreError(RecsysError):
    """The live-event database cannot be written or read (disk full, permissions, corruption)."""


class LockError(RecsysError):
    """Another training run holds the artifacts lock."""

    exit_code = 3


class PublishRefused(RecsysError):
    """A trained version failed the publish guard; `current` still names the previous version."""

    exit_code = 4


class ReloadRefused(RecsysError):
    """A new version could not be loaded (or `current` is unusable); the previous one keeps serving."""

    exit_code = 1


class JobConflict(RecsysError):
    """A training job is already running (in any server worker, or as `recsys train`)."""

    exit_code = 3


class SparkError(RecsysError):
    """Spark could not start or a Spark job failed (`train --engine spark`)."""
