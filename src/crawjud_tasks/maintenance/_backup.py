"""Writing a backup: one ``.tar.gz`` archive with the library's Redis keys, the embedded Redis's
snapshot and the configured folders, written atomically (see :mod:`._archive`).

Layout of an archive::

    manifest.json          what is inside (format, time, namespace, counts)
    redis/keys.jsonl       the logical dump of the library's keys, with their TTLs
    redis/dump.rdb         the embedded Redis's snapshot (only when it is the embedded one)
    folders/<n>-<name>/... the files of each folder of ``maintenance.backup_folders``
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import redis

from crawjud_tasks._keys import Keys
from crawjud_tasks.errors import BackupError
from crawjud_tasks.maintenance._archive import (
    HashingWriter,
    archive_name,
    retain,
    write_atomically,
)
from crawjud_tasks.maintenance._paths import DIR_FLAGS, backup_dir, open_dir
from crawjud_tasks.maintenance._redis_dump import dump_keys, snapshot
from crawjud_tasks.maintenance.contracts import BackupReport, SkippedPath

if TYPE_CHECKING:
    from crawjud_tasks._settings import Settings

__all__ = ["FORMAT", "RedisSources", "write_backup"]

#: The archive layout's version, in its manifest.
FORMAT = 1
_MAX_LISTED = 100
_MAX_DEPTH = 64


class RedisSources:
    """Where a backup reads keys from: the library's Redis, and the broker's when it differs
    (RedBeat's schedules live there), plus whether the library's Redis is the embedded one."""

    def __init__(self, library: redis.Redis, broker: redis.Redis | None, *, embedded: bool) -> None:
        self.library = library
        self.broker = broker
        self.embedded = embedded


class _Folders:
    """Adds the configured folders to the archive, never through a link."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.files = 0
        self.skipped: list[SkippedPath] = []

    def skip(self, path: str, reason: str) -> None:
        if len(self.skipped) < _MAX_LISTED:
            self.skipped.append(SkippedPath(path=path, reason=reason))

    def add(self, fd: int, shown: str, arcname: str, depth: int) -> None:
        self.tar.addfile(_info(arcname, os.fstat(fd), tarfile.DIRTYPE))
        with os.scandir(fd) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            path, member = f"{shown}/{entry.name}", f"{arcname}/{entry.name}"
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) and depth < _MAX_DEPTH:
                child = os.open(entry.name, DIR_FLAGS, dir_fd=fd)
                try:
                    self.add(child, path, member, depth + 1)
                finally:
                    os.close(child)
            elif stat.S_ISREG(info.st_mode):
                self.add_file(fd, entry.name, path, member)
            else:
                kind = "symbolic link" if stat.S_ISLNK(info.st_mode) else "special file"
                self.skip(path, f"{kind}: not backed up")

    def add_file(self, fd: int, name: str, path: str, member: str) -> None:
        try:
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            self.skip(path, f"cannot be read ({exc.strerror})")
            return
        with os.fdopen(file_fd, "rb") as file:
            self.tar.addfile(_info(member, os.fstat(file_fd), tarfile.REGTYPE), file)
        self.files += 1


def _info(name: str, info: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = info.st_mode & 0o755  # no set-id bits, nothing writable by others
    member.mtime = int(info.st_mtime)
    member.size = info.st_size if kind == tarfile.REGTYPE else 0
    return member


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mode = 0o600
    member.mtime = int(dt.datetime.now(dt.timezone.utc).timestamp())
    tar.addfile(member, io.BytesIO(data))


def write_backup(
    settings: Settings, sources: RedisSources, *, to: str | Path | None, take_snapshot: bool | None
) -> BackupReport:
    """Write one archive into ``to`` (default: the backup folder) and apply the retention rule.

    Raises:
        UnsafePathError: ``to`` or a configured folder is refused.
        BackupError: the archive could not be written (nothing is left of it).
        BrokerUnavailableError: Redis did not answer (callers translate redis-py errors).
    """
    folder = Path(to) if to is not None else backup_dir(settings)
    section = settings.maintenance
    snap = sources.embedded if take_snapshot is None else take_snapshot
    if snap and not sources.embedded:
        msg = "a snapshot is only taken of the embedded Redis; back up a remote one by its keys"
        raise BackupError(msg)
    keys_table = Keys(settings.key_prefix)
    match = keys_table.library_pattern()
    # Leases belong to processes alive now: a restored one would block a run for its ttl.
    leases = (keys_table.lease("").encode(),)
    now = dt.datetime.now(dt.timezone.utc)
    name = archive_name(now)
    with open_dir(settings, folder, create=True) as folder_fd:
        try:
            with tempfile.TemporaryFile(dir=folder) as spool:
                keys = dump_keys(sources.library, match, spool, source="library", exclude=leases)
                if sources.broker is not None:
                    keys += dump_keys(sources.broker, match, spool, source="broker", exclude=leases)
                rdb = snapshot(sources.library) if snap else None
                size = spool.tell()
                spool.seek(0)
                with write_atomically(folder_fd, name) as writer:
                    contents = _Contents(
                        settings, now=now, keys=keys, spool=spool, size=size, rdb=rdb
                    )
                    folders = contents.write(writer)
                digest = writer.digest.hexdigest()
                removed = retain(
                    folder_fd,
                    daily=section.backup_keep_daily,
                    weekly=section.backup_keep_weekly,
                    monthly=section.backup_keep_monthly,
                )
        except OSError as exc:
            msg = (
                f"backup {name} was not written ({exc.strerror or exc}); the partial archive "
                "was removed and older backups are kept"
            )
            raise BackupError(msg) from exc
    return BackupReport(
        path=str(folder / name),
        sha256=digest,
        bytes=writer.size,
        keys=keys,
        snapshot=rdb is not None,
        files=folders.files,
        removed=removed,
        skipped=folders.skipped,
    )


class _Contents:
    """What goes into one archive, in its layout's order."""

    def __init__(
        self,
        settings: Settings,
        *,
        now: dt.datetime,
        keys: int,
        spool: IO[bytes],
        size: int,
        rdb: Path | None,
    ) -> None:
        self.settings = settings
        self.now = now
        self.keys = keys
        self.spool = spool
        self.size = size
        self.rdb = rdb

    def write(self, writer: HashingWriter) -> _Folders:
        section = self.settings.maintenance
        fileobj: Any = writer  # a write-only file object is all tarfile's "w:gz" needs
        with tarfile.open(fileobj=fileobj, mode="w:gz", compresslevel=6) as tar:
            manifest = {
                "format": FORMAT,
                "created_at": self.now.isoformat(),
                "namespace": self.settings.namespace,
                "keys": self.keys,
                "snapshot": self.rdb is not None,
                "folders": [str(path) for path in section.backup_folders],
            }
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode())
            member = tarfile.TarInfo("redis/keys.jsonl")
            member.size, member.mode, member.mtime = self.size, 0o600, int(self.now.timestamp())
            tar.addfile(member, self.spool)
            if self.rdb is not None:
                _add_snapshot(tar, self.rdb)
            folders = _Folders(tar)
            for index, path in enumerate(section.backup_folders):
                with open_dir(self.settings, path) as fd:
                    folders.add(fd, str(path), f"folders/{index}-{path.name}", 0)
        return folders


def _add_snapshot(tar: tarfile.TarFile, rdb: Path) -> None:
    fd = os.open(rdb, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        member = tarfile.TarInfo("redis/dump.rdb")
        member.size, member.mode, member.mtime = info.st_size, 0o600, int(info.st_mtime)
        tar.addfile(member, file)
