"""Backup archives on disk: written whole or not at all, checksummed, kept by a retention rule.

An archive is written under a temporary name (``.<name>.tmp``, mode 0600, created exclusively),
hashed while it is written, flushed and fsynced; its checksum goes beside it in ``<name>.sha256``
(``sha256sum`` format) the same way; then both are renamed into place and the folder fsynced.
Any failure (a full disk) removes the temporary files: older backups are never touched until
a new one is complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable, Generator
from typing import IO

from crawjud_tasks.errors import ArchiveError, BackupError

__all__ = [
    "ARCHIVE_GLOB",
    "HashingWriter",
    "archive_name",
    "backups_in",
    "read_checksum",
    "retain",
    "verify",
    "write_atomically",
]

ARCHIVE_GLOB = "crawjud-backup-*.tar.gz"
_NAME = re.compile(r"^crawjud-backup-(\d{8}T\d{6}(?:\d{6})?Z)\.tar\.gz$")
_CHUNK = 1 << 20


def archive_name(when: dt.datetime) -> str:
    """The file name of a backup taken at ``when`` (UTC, to the microsecond)."""
    return f"crawjud-backup-{when.astimezone(dt.timezone.utc):%Y%m%dT%H%M%S%fZ}.tar.gz"


class HashingWriter:
    """A binary file object over a descriptor that hashes what passes through it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        self.digest.update(view)
        written = 0
        while written < len(view):
            written += os.write(self.fd, view[written:])
        self.size += written
        return written

    def flush(self) -> None:
        """Nothing is buffered here; :func:`write_atomically` fsyncs."""

    def tell(self) -> int:
        return self.size


@contextlib.contextmanager
def write_atomically(folder_fd: int, name: str) -> Generator[HashingWriter, None, None]:
    """Write ``name`` in the folder ``folder_fd`` whole or not at all (see the module doc).

    Raises:
        BackupError: the archive or its checksum could not be written; nothing is left behind.
    """
    temp, sum_temp = f".{name}.tmp", f".{name}.sha256.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temp, flags, 0o600, dir_fd=folder_fd)
    except OSError as exc:
        msg = f"backup {name} cannot be created ({exc.strerror}); check the backup folder"
        raise BackupError(msg) from exc
    try:
        try:
            writer = HashingWriter(fd)
            yield writer
            os.fsync(fd)
        finally:
            os.close(fd)
        line = f"{writer.digest.hexdigest()}  {name}\n".encode()
        sum_fd = os.open(sum_temp, flags, 0o600, dir_fd=folder_fd)
        try:
            os.write(sum_fd, line)
            os.fsync(sum_fd)
        finally:
            os.close(sum_fd)
        os.rename(temp, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        os.rename(sum_temp, f"{name}.sha256", src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        os.fsync(folder_fd)
    except BaseException as exc:
        for leftover in (temp, sum_temp):
            with contextlib.suppress(OSError):
                os.unlink(leftover, dir_fd=folder_fd)
        if isinstance(exc, OSError):
            msg = (
                f"backup {name} was not written ({exc.strerror or exc}); the partial archive "
                "was removed and older backups are kept"
            )
            raise BackupError(msg) from exc
        raise


def read_checksum(folder_fd: int, name: str) -> str:
    """The sha256 recorded beside archive ``name``.

    Raises:
        ArchiveError: there is no checksum file, or it does not name this archive.
    """
    try:
        fd = os.open(f"{name}.sha256", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
    except OSError as exc:
        msg = f"{name} has no readable checksum file {name}.sha256 ({exc.strerror}); refused"
        raise ArchiveError(msg) from exc
    try:
        text = os.read(fd, 4096).decode("ascii", errors="replace")
    finally:
        os.close(fd)
    digest, _, named = text.strip().partition("  ")
    if not re.fullmatch(r"[0-9a-f]{64}", digest) or named not in {name, f"*{name}"}:
        msg = f"{name}.sha256 is not a sha256sum line for {name}; refused"
        raise ArchiveError(msg)
    return digest


def verify(file: IO[bytes], expected: str, name: str) -> None:
    """Check that ``file`` hashes to ``expected`` (then rewind it).

    Raises:
        ArchiveError: it does not.
    """
    digest = hashlib.sha256()
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
    file.seek(0)
    if digest.hexdigest() != expected:
        msg = f"{name} does not match its checksum (damaged or altered); nothing was restored"
        raise ArchiveError(msg)


def backups_in(folder_fd: int) -> list[tuple[dt.datetime, str]]:
    """The backups in a folder, newest first."""
    found: list[tuple[dt.datetime, str]] = []
    with os.scandir(folder_fd) as entries:
        for entry in entries:
            match = _NAME.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            stamp = match.group(1)
            layout = "%Y%m%dT%H%M%S%fZ" if len(stamp) > 16 else "%Y%m%dT%H%M%SZ"
            when = dt.datetime.strptime(stamp, layout).replace(tzinfo=dt.timezone.utc)
            found.append((when, entry.name))
    found.sort(reverse=True)
    return found


def retain(folder_fd: int, *, daily: int, weekly: int, monthly: int) -> list[str]:
    """Remove the backups the rule does not keep; return their names.

    Kept: the newest backup, and the newest of each of the last ``daily`` days, ``weekly`` ISO
    weeks and ``monthly`` months that have a backup.
    """
    backups = backups_in(folder_fd)
    keep: set[str] = {name for _, name in backups[:1]}
    rules: list[tuple[int, Callable[[dt.datetime], object]]] = [
        (daily, lambda when: when.date()),
        (weekly, lambda when: tuple(when.isocalendar())[:2]),
        (monthly, lambda when: (when.year, when.month)),
    ]
    for limit, bucket_of in rules:
        buckets: set[object] = set()
        for when, name in backups:
            bucket = bucket_of(when)
            if bucket in buckets:
                continue
            if len(buckets) >= limit:
                break
            buckets.add(bucket)
            keep.add(name)
    removed: list[str] = []
    for _, name in backups:
        if name in keep:
            continue
        for leftover in (name, f"{name}.sha256"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover, dir_fd=folder_fd)
        removed.append(name)
    return removed
