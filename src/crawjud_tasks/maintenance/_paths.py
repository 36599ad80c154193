"""Confinement: every folder a maintenance task acts in is opened from a configured root down,
one component at a time, with directory file descriptors that never follow a link.

A root is one of ``maintenance.roots`` (resolved when the settings were loaded) or one of the
library's own folders (logs, backups, reports, outbox). A path is refused with one line when it
has a NUL byte or a ``..`` component, lies outside every root, passes through a symbolic link,
or ends in a folder that others may write to without the sticky bit, or that another user owns.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

from crawjud_tasks.errors import UnsafePathError

if TYPE_CHECKING:
    from crawjud_tasks._settings import Settings

__all__ = [
    "DIR_FLAGS",
    "allowed_roots",
    "backup_dir",
    "check_name",
    "logs_dir",
    "open_dir",
    "outbox_dir",
    "reports_dir",
]

#: Open a folder, never through a link, not inherited by child processes.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def logs_dir(settings: Settings) -> Path:
    """The library's own log folder."""
    return _absolute(settings.maintenance.logs_dir or settings.resolved_data_dir / "logs")


def backup_dir(settings: Settings) -> Path:
    """Where backups are written."""
    return _absolute(settings.maintenance.backup_dir or settings.resolved_data_dir / "backups")


def reports_dir(settings: Settings) -> Path:
    """Where bot run reports are written."""
    return _absolute(settings.bots.reports_dir or settings.resolved_data_dir / "reports")


def outbox_dir(settings: Settings) -> Path:
    """Where the mail outbox writes ``.eml`` files."""
    return _absolute(settings.mail.outbox_dir or settings.resolved_data_dir / "outbox")


def allowed_roots(settings: Settings) -> tuple[Path, ...]:
    """The configured roots, then the library's own folders."""
    own = (logs_dir(settings), backup_dir(settings), reports_dir(settings), outbox_dir(settings))
    return tuple(dict.fromkeys((*settings.maintenance.roots, *own)))


def check_name(value: str, what: str) -> str:
    """``value`` if it is a plain relative name: no NUL, not absolute, no ``..``, not empty.

    Raises:
        UnsafePathError: it is not.
    """
    if "\x00" in value:
        msg = f"{what} {value!r} has a NUL byte; give a plain name"
        raise UnsafePathError(msg)
    if not value or value.startswith("/") or ".." in value.split("/"):
        msg = f"{what} {value!r} must be a relative name without '..'"
        raise UnsafePathError(msg)
    return value


@contextlib.contextmanager
def open_dir(
    settings: Settings, path: str | Path, *, create: bool = False
) -> Generator[int, None, None]:
    """A directory file descriptor on ``path``, opened from its root without following links.

    Args:
        settings: Whose roots confine ``path``.
        path: An absolute path inside a root (no ``..``, no NUL, no link on the way).
        create: Make missing folders (mode 0700) on the way down.

    Raises:
        UnsafePathError: ``path`` is refused (the message says why and how to fix it).
    """
    text = os.fspath(path)
    if "\x00" in text:
        msg = f"path {text!r} has a NUL byte; give a plain path"
        raise UnsafePathError(msg)
    if not os.path.isabs(text):
        msg = f"path {text!r} must be absolute (a folder inside maintenance.roots)"
        raise UnsafePathError(msg)
    if ".." in text.split("/"):
        msg = f"path {text!r} has a '..' component; give the folder's own path"
        raise UnsafePathError(msg)
    target = Path(os.path.normpath(text))
    root, parts = _split(settings, target)
    if create:
        _make_root(root)
    try:
        fd = os.open(root, DIR_FLAGS)
    except OSError as exc:
        msg = f"root {root} cannot be opened ({exc.strerror}); create it or fix maintenance.roots"
        raise UnsafePathError(msg) from exc
    try:
        for index, part in enumerate(parts):
            child = _step(fd, part, root.joinpath(*parts[: index + 1]), create=create)
            os.close(fd)
            fd = child
        check_root(fd, target)
        yield fd
    finally:
        os.close(fd)


def check_root(fd: int, shown: Path) -> None:
    """Refuse a folder that others may write to without the sticky bit, or another user owns.

    Raises:
        UnsafePathError: it is such a folder.
    """
    info = os.fstat(fd)
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        msg = (
            f"{shown} is writable by every user without the sticky bit; "
            f"run 'chmod o-w {shown}' (or 'chmod +t') first"
        )
        raise UnsafePathError(msg)
    if info.st_uid != os.geteuid():
        msg = (
            f"{shown} is owned by uid {info.st_uid}, not by this process's uid {os.geteuid()}; "
            "maintenance acts only in folders it owns"
        )
        raise UnsafePathError(msg)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def _split(settings: Settings, target: Path) -> tuple[Path, tuple[str, ...]]:
    """The root holding ``target`` (the deepest one), and the components below it."""
    best: Path | None = None
    for root in allowed_roots(settings):
        if (target == root or root in target.parents) and (
            best is None or len(root.parts) > len(best.parts)
        ):
            best = root
    if best is None:
        shown = ", ".join(str(root) for root in settings.maintenance.roots) or "none configured"
        msg = (
            f"{target} is outside the maintenance roots ({shown}); "
            "add its folder to maintenance.roots"
        )
        raise UnsafePathError(msg)
    return best, target.parts[len(best.parts) :]


def _make_root(root: Path) -> None:
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"root {root} cannot be created ({exc.strerror}); create it or fix the setting"
        raise UnsafePathError(msg) from exc


def _step(fd: int, part: str, shown: Path, *, create: bool) -> int:
    """Open ``part`` under ``fd``, never through a link."""
    try:
        try:
            return os.open(part, DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=fd)
            return os.open(part, DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if _is_link(fd, part):
            msg = f"{shown} is a symbolic link; maintenance never follows links, give its target"
        elif isinstance(exc, FileNotFoundError):
            msg = f"{shown} does not exist"
        elif isinstance(exc, NotADirectoryError):
            msg = f"{shown} is not a folder"
        else:
            msg = f"{shown} cannot be opened ({exc.strerror})"
        raise UnsafePathError(msg) from exc


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode)
    except OSError:
        return False
