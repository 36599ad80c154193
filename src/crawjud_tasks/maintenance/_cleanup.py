"""File cleanup: remove old files under a root, walking with directory file descriptors.

No link is ever followed: a folder is entered with ``O_NOFOLLOW`` from its parent's descriptor,
a symbolic link that matches is removed as a link (its target is never touched), and each file
is checked again by name right before it is unlinked (same inode, still old). Files changed
within the grace period, files some process has open for writing, and special files are skipped
with their reason. A file that vanishes meanwhile (a bot rotating its log) is skipped, never an
error.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from crawjud_tasks.errors import UnsafePathError
from crawjud_tasks.maintenance._paths import DIR_FLAGS, check_name, open_dir
from crawjud_tasks.maintenance.contracts import CleanReport, SkippedPath

if TYPE_CHECKING:
    from crawjud_tasks._settings import Settings

__all__ = ["MAX_DEPTH", "clean_tree", "open_for_writing"]

#: Folders deeper than this below the root are not entered.
MAX_DEPTH = 64
#: Skipped paths listed in a report (all are counted).
_MAX_LISTED = 100
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)

Progress = Callable[[int, int], None]


def open_for_writing() -> frozenset[tuple[int, int]]:
    """``(device, inode)`` of every file a process of this machine has open for writing.

    Read from ``/proc/<pid>/fdinfo`` (Linux); empty where there is no ``/proc``. Processes
    this user may not inspect are passed over.
    """
    found: set[tuple[int, int]] = set()
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return frozenset()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                    text = info.read(512)
                flags = int(text.split("flags:", 1)[1].split()[0], 8)
                if flags & os.O_ACCMODE not in _WRITE_MODES:
                    continue
                target = os.stat(f"/proc/{pid}/fd/{fd}")
            except (OSError, ValueError, IndexError):
                continue
            if stat.S_ISREG(target.st_mode):
                found.add((target.st_dev, target.st_ino))
    return frozenset(found)


class _Walk:
    """One cleanup: its rules, its counts and the report it makes."""

    def __init__(
        self,
        *,
        pattern: str,
        cutoff: float,
        grace: float,
        keep_last: int,
        max_files: int | None,
        dry_run: bool,
        progress: Progress | None,
    ) -> None:
        self.pattern = pattern
        self.young = cutoff
        self.grace = grace
        self.cutoff = min(cutoff, grace)
        self.keep_last = keep_last
        self.max_files = max_files
        self.dry_run = dry_run
        self.progress = progress
        self.busy = open_for_writing()
        self.files = 0
        self.bytes = 0
        self.seen = 0
        self.truncated = False
        self.counts: dict[str, int] = {}
        self.listed: list[SkippedPath] = []

    def skip(self, path: str, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.listed) < _MAX_LISTED:
            self.listed.append(SkippedPath(path=path, reason=reason))

    def walk(self, fd: int, shown: str, depth: int) -> None:
        candidates: list[tuple[float, str, os.stat_result]] = []
        folders: list[str] = []
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished
                if stat.S_ISDIR(info.st_mode):
                    folders.append(entry.name)
                elif fnmatch.fnmatchcase(entry.name, self.pattern):
                    candidates.append((info.st_mtime, entry.name, info))
        candidates.sort(reverse=True)  # newest first: keep_last keeps the head
        for index, (_, name, info) in enumerate(candidates):
            if self.truncated:
                return
            self.consider(fd, name, f"{shown}/{name}", info, kept=index < self.keep_last)
        for name in sorted(folders):
            if self.truncated:
                return
            path = f"{shown}/{name}"
            if depth >= MAX_DEPTH:
                self.skip(path, f"deeper than {MAX_DEPTH} folders")
                continue
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except OSError:
                self.skip(path, "folder cannot be opened (or was replaced by a link)")
                continue
            try:
                self.walk(child, path, depth + 1)
            finally:
                os.close(child)

    def verdict(self, info: os.stat_result, *, kept: bool) -> str | None:
        """Why a matching file stays ("" for a young one, not worth a line), or None: it goes."""
        is_link = stat.S_ISLNK(info.st_mode)
        reasons = (
            (not is_link and not stat.S_ISREG(info.st_mode), "not a regular file"),
            (info.st_mtime > self.young, ""),
            (info.st_mtime > self.grace, "changed within the grace period"),
            (kept, "kept by keep_last"),
            (not is_link and (info.st_dev, info.st_ino) in self.busy, "open for writing"),
        )
        return next((reason for applies, reason in reasons if applies), None)

    def consider(self, fd: int, name: str, path: str, info: os.stat_result, *, kept: bool) -> None:
        self.seen += 1
        if self.progress is not None and self.seen % 1000 == 0:
            self.progress(self.seen, self.files)
        reason = self.verdict(info, kept=kept)
        if reason is None and self.max_files is not None and self.files >= self.max_files:
            self.truncated = True
            return
        if reason is None:
            reason, size = self.remove(fd, name, info)
            if reason is None:
                self.files += 1
                self.bytes += size
                return
        if reason:
            self.skip(path, reason)

    def remove(self, fd: int, name: str, info: os.stat_result) -> tuple[str | None, int]:
        """Remove ``name`` if it is still the file looked at and still old: (why not, bytes)."""
        try:
            now = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return "vanished", 0
        if (now.st_ino, now.st_dev) != (info.st_ino, info.st_dev) or now.st_mtime > self.cutoff:
            return "changed during the cleanup", 0
        if not self.dry_run:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                return "vanished", 0
            except OSError as exc:
                return f"cannot be removed ({exc.strerror})", 0
        return None, 0 if stat.S_ISLNK(now.st_mode) else now.st_size


def clean_tree(
    settings: Settings,
    root: str | Path,
    pattern: str,
    older_than: float,
    *,
    keep_last: int = 0,
    max_files: int | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> CleanReport:
    """Remove files under ``root`` (and its subfolders) matching ``pattern``, older than
    ``older_than`` seconds and than the grace period (see ``maintenance.clean_files``).

    Raises:
        UnsafePathError: the root, the pattern or a bound is refused.
    """
    check_name(pattern, "pattern")
    if "/" in pattern:
        msg = f"pattern {pattern!r} matches file names: leave folders out of it (e.g. '*.log')"
        raise UnsafePathError(msg)
    if not older_than >= 0:
        msg = f"older_than must be 0 seconds or more, got {older_than!r}"
        raise UnsafePathError(msg)
    if keep_last < 0 or (max_files is not None and max_files < 1):
        msg = f"keep_last must be 0 or more and max_files 1 or more, got {keep_last}, {max_files}"
        raise UnsafePathError(msg)
    now = time.time()
    walk = _Walk(
        pattern=pattern,
        cutoff=now - older_than,
        grace=now - settings.maintenance.grace_period,
        keep_last=keep_last,
        max_files=max_files,
        dry_run=dry_run,
        progress=progress,
    )
    text: str = os.fspath(root)
    shown = os.path.normpath(text) if "\x00" not in text else "?"
    with open_dir(settings, root) as fd:
        walk.walk(fd, shown, 0)
        if not dry_run and walk.files:
            with contextlib.suppress(OSError):
                os.fsync(fd)
    return CleanReport(
        root=shown,
        pattern=pattern,
        dry_run=dry_run,
        files=walk.files,
        bytes=walk.bytes,
        skipped_counts=walk.counts,
        skipped=walk.listed,
        truncated=walk.truncated,
    )
