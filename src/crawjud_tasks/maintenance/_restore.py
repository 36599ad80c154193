"""Restoring a backup: checksum first, every member checked before anything is written, then
keys back into Redis and files under a target folder, never outside it.

Refused (the whole archive, before any write): a checksum that does not match, a member with an
absolute path, a ``..`` component or a name outside the archive's layout, a device, FIFO or hard
link, a symbolic link that is absolute or points outside its folder, and a member written
through a link. Files are then created from the target's directory descriptor, one component at
a time with ``O_NOFOLLOW``, so even a link made meanwhile is never followed.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tarfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from crawjud_tasks.errors import ArchiveError, UnsafePathError
from crawjud_tasks.maintenance._archive import read_checksum, verify
from crawjud_tasks.maintenance._paths import DIR_FLAGS, open_dir
from crawjud_tasks.maintenance._redis_dump import check_keys, restore_keys
from crawjud_tasks.maintenance.contracts import RestoreReport

if TYPE_CHECKING:
    import redis

    from crawjud_tasks._settings import Settings

__all__ = ["MAX_MEMBERS", "check_members", "restore_archive"]

#: The most members an archive may have.
MAX_MEMBERS = 1_000_000
_KEYS = "redis/keys.jsonl"
_SNAPSHOT = "redis/dump.rdb"
_FIXED = frozenset({"manifest.json", _KEYS, _SNAPSHOT, "redis", "folders"})
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _problem(member: tarfile.TarInfo, links: set[str]) -> str | None:
    """Why ``member`` is refused (``links``: the symbolic links seen so far), or None."""
    name = member.name.rstrip("/")
    parts = name.split("/")
    checks = (
        ("\x00" in member.name or "\x00" in member.linkname, "has a NUL byte"),
        (member.name.startswith("/") or not name, "has an absolute path"),
        (".." in parts or "." in parts or "" in parts, "has a '..' (or empty) path component"),
        (name not in _FIXED and parts[0] != "folders", "is not part of a crawjud-tasks backup"),
        (member.ischr() or member.isblk() or member.isfifo(), "is a device or FIFO"),
        (member.islnk(), "is a hard link"),
        (
            not (member.isreg() or member.isdir() or member.issym()),
            "is not a file, a folder or a symbolic link",
        ),
        (
            any("/".join(parts[:depth]) in links for depth in range(1, len(parts))),
            "would be written through a symbolic link",
        ),
    )
    found = next((why for applies, why in checks if applies), None)
    if found is not None or not member.issym():
        return found
    if len(parts) < 3 or parts[0] != "folders":
        return "is a symbolic link outside the folders"
    target = member.linkname
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if target.startswith("/") or not resolved.startswith(f"folders/{parts[1]}/"):
        return f"is a symbolic link pointing outside ({target!r})"
    links.add(name)
    return None


def check_members(members: list[tarfile.TarInfo]) -> None:
    """Refuse the archive if any member could write outside its target (see the module doc).

    Raises:
        ArchiveError: the first member refused, and why.
    """
    if len(members) > MAX_MEMBERS:
        msg = f"the archive has more than {MAX_MEMBERS} members; refused"
        raise ArchiveError(msg)
    links: set[str] = set()
    for member in members:
        why = _problem(member, links)
        if why is not None:
            msg = f"archive member {member.name!r} {why}; nothing was restored"
            raise ArchiveError(msg)


class _Writer:
    """Creates members under the target's descriptor, never through a link."""

    def __init__(self, tar: tarfile.TarFile, target_fd: int, *, replace: bool) -> None:
        self.tar = tar
        self.target_fd = target_fd
        self.replace = replace
        self.files = 0

    def parent(self, parts: list[str]) -> int:
        fd = os.dup(self.target_fd)
        for part in parts:
            try:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                os.close(fd)
                msg = f"folder {'/'.join(parts)!r} of the target cannot be used ({exc.strerror})"
                raise UnsafePathError(msg) from exc
            os.close(fd)
            fd = child
        return fd

    def write(self, member: tarfile.TarInfo, parts: list[str]) -> None:
        if member.isdir():
            os.close(self.parent(parts))
            return
        fd = self.parent(parts[:-1])
        try:
            name = parts[-1]
            if self.replace:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    os.unlink(name, dir_fd=fd)
            if member.issym():
                with contextlib.suppress(FileExistsError):
                    os.symlink(member.linkname, name, dir_fd=fd)
                    self.files += 1
                return
            try:
                file_fd = os.open(name, _FILE_FLAGS, member.mode & 0o700 or 0o600, dir_fd=fd)
            except FileExistsError:
                return  # left as it is (restore with replace to overwrite)
            source = self.tar.extractfile(member)
            with os.fdopen(file_fd, "wb") as out:
                if source is not None:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self.files += 1
        finally:
            os.close(fd)


def _check_room(target_fd: int, members: list[tarfile.TarInfo], shown: str) -> None:
    """Refuse an archive whose files would not fit under the target (a decompression bomb).

    Raises:
        ArchiveError: they would not.
    """
    needed = sum(m.size for m in members if m.isreg() and m.name != _KEYS)
    info = os.fstatvfs(target_fd)
    free = info.f_bavail * info.f_frsize
    if needed > free:
        msg = (
            f"the archive's files need {needed} bytes and {shown} has {free} free; "
            "nothing was restored"
        )
        raise ArchiveError(msg)


def _write_files(
    tar: tarfile.TarFile,
    members: list[tarfile.TarInfo],
    target_fd: int,
    target: str | Path,
    *,
    replace: bool,
) -> tuple[int, str | None]:
    """Write the folders' members and the snapshot under the target: (files, snapshot path)."""
    writer = _Writer(tar, target_fd, replace=replace)
    snapshot: str | None = None
    for member in members:
        parts = member.name.rstrip("/").split("/")
        if parts[0] == "folders" and len(parts) > 1:
            writer.write(member, parts[1:])
        elif member.name == _SNAPSHOT and member.isreg():
            writer.write(member, ["redis-dump.rdb"])
            snapshot = str(Path(target) / "redis-dump.rdb")
    return writer.files - (snapshot is not None), snapshot


def _lines(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    lines = tar.extractfile(member)
    if lines is None:
        msg = f"archive member {member.name!r} cannot be read; nothing was restored"
        raise ArchiveError(msg)
    return lines


def restore_archive(
    settings: Settings,
    clients: dict[str, redis.Redis] | None,
    archive: str | Path,
    *,
    target: str | Path | None,
    replace: bool,
) -> RestoreReport:
    """Restore ``archive`` (see the module doc): keys into ``clients`` (``None``: no keys),
    files and the snapshot under ``target`` (``None``: no files).

    Raises:
        UnsafePathError: the archive or the target is outside the roots, or through a link.
        ArchiveError: the checksum does not match, or a member is refused.
    """
    path = Path(os.path.normpath(os.fspath(archive))) if "\x00" not in str(archive) else None
    if path is None or not path.name or ".." in Path(os.fspath(archive)).parts:
        msg = f"archive {str(archive)!r} must be a path without '..' or NUL"
        raise UnsafePathError(msg)
    with open_dir(settings, path.parent) as folder_fd:
        digest = read_checksum(folder_fd, path.name)
        try:
            file_fd = os.open(
                path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd
            )
        except OSError as exc:
            msg = f"archive {path} cannot be opened ({exc.strerror}); give a regular file"
            raise UnsafePathError(msg) from exc
    with os.fdopen(file_fd, "rb") as file:
        verify(file, digest, path.name)
        return _restore_from(settings, clients, file, path, target=target, replace=replace)


def _restore_from(
    settings: Settings,
    clients: dict[str, redis.Redis] | None,
    file: IO[bytes],
    path: Path,
    *,
    target: str | Path | None,
    replace: bool,
) -> RestoreReport:
    try:
        tar = tarfile.open(fileobj=file, mode="r:gz")  # noqa: SIM115  (closed by the with below)
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        msg = f"{path.name} is not a readable backup archive ({exc}); nothing was restored"
        raise ArchiveError(msg) from exc
    with tar, contextlib.ExitStack() as stack:
        check_members(members)
        dumps = [m for m in members if m.name == _KEYS and m.isreg()] if clients is not None else []
        prefix = settings.key_prefix.encode()
        for member in dumps:  # every key checked before the first is restored
            check_keys(_lines(tar, member), prefix)
        target_fd = None
        if target is not None:
            target_fd = stack.enter_context(open_dir(settings, target, create=True))
            _check_room(target_fd, members, str(target))
        keys = existing = 0
        if clients is not None:
            for member in dumps:
                keys, existing = restore_keys(clients, _lines(tar, member), replace=replace)
        files, snapshot = 0, None
        if target is not None and target_fd is not None:
            files, snapshot = _write_files(tar, members, target_fd, target, replace=replace)
    return RestoreReport(
        archive=str(path),
        keys=keys,
        keys_existing=existing,
        files=files,
        target=None if target is None else str(target),
        snapshot=snapshot,
    )
