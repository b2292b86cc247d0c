"""Error types: every refusal names the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class FerError(Exception):
    """Base class for every error this project raises on purpose."""


class ArtifactError(FerError):
    """A file on disk (model folder, soft labels, log, image) is missing or invalid.

    The message always starts with the path so a user can find the culprit.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{problem}")


class ArtifactWriteError(ArtifactError, OSError):
    """A file or folder cannot be written (read-only disk, disk full, a file where a folder should be).

    Also an OSError, so code that already catches OSError around its writes keeps working.
    """

    @classmethod
    def from_os_error(cls, path: str | Path, exc: OSError, doing: str = "cannot write") -> "ArtifactWriteError":
        """``path: <doing> (<reason>)``; the path named is the one the OS refused when it says which."""
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = exc.filename if exc.filename else path
        return cls(where, f"{doing} ({reason})")


class ClassListMismatch(ArtifactError):
    """Two artifacts disagree on the class list or its order."""


class DetectorUnavailable(FerError):
    """The YuNet model file cannot be found, verified or downloaded."""


class CameraError(FerError):
    """A camera cannot be opened or stopped delivering frames."""
