"""The deployment's files: reads bounded by what the file could be, writes that are atomic."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from voting.errors import StorageError, UsageError, VotingError

_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


def read_bounded(path: Path, limit: int, what: str, error: type[VotingError]) -> bytes:
    """The file's bytes; a file larger than any real `what`, or unreadable, raises `error` naming it."""
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as problem:
        raise error(f"{path}: cannot read the {what}: {problem.strerror or problem}") from None
    if len(data) > limit:
        raise error(f"{path}: larger than {limit} bytes, cannot be a {what}")
    return data


def add_lines(path: Path, lines: tuple[str, ...], *, mode: int = 0o644) -> None:
    """Append the lines that `path` lacks, keeping what it has (a .gitignore the user may have written)."""
    present = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    missing = [line for line in lines if line not in present]
    if missing:
        write_file_atomically(path, "".join(f"{line}\n" for line in (*present, *missing)).encode(), mode=mode)


def fsync_directory(directory: Path) -> None:
    """Make a rename durable: the directory entry must reach the disk, not only the file."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Write through a temporary file in the same directory and rename it over `path`.

    The temporary file is created with mode 0600 (mkstemp), so a private key is
    never readable by others, not even before the rename; readers see the old
    file or the new one, never half of one.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_failure(error: OSError, what: str) -> VotingError:
    """A write that failed, as the error it is: the disk's (full or failing), which a later try can get past,
    or the path's, which the caller must change."""
    kind = StorageError if error.errno in _DISK_ERRNOS else UsageError
    return kind(f"{what}: {error.strerror or error}")


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of `path` (or of its nearest existing parent)."""
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    stats = os.statvfs(existing)
    return stats.f_bavail * stats.f_frsize
