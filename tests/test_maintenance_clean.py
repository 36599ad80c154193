"""File cleanup against real files (and a real Redis for its lease): what goes, what stays.

Every refused operation leaves a sentinel folder outside the roots byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from crawjud_tasks import create_app, lease
from crawjud_tasks._app import close_app
from crawjud_tasks.errors import LeaseHeldError, UnsafePathError
from crawjud_tasks.maintenance import clean_files
from crawjud_tasks.testing import RedisServer, settings_for

pytestmark = pytest.mark.slow

OLD = 40 * 86400


def checksum(folder: Path) -> str:
    """The sha256 of every path, link target and file content under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def make(path: Path, age: float = OLD, content: str = "x" * 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    then = time.time() - age
    os.utime(path, (then, then))
    return path


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    """A folder outside every root, full of old files; its checksum must never change."""
    folder = tmp_path / "sentinel"
    for name in ("a.log", "b.log", "sub/c.log"):
        make(folder / name)
    before = checksum(folder)
    yield folder
    assert checksum(folder) == before, "a maintenance operation touched the sentinel folder"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def app(crawjud_redis: RedisServer, tmp_path: Path, root: Path) -> Iterator[Celery]:
    settings = settings_for(
        crawjud_redis,
        tmp_path / "data",
        maintenance={"roots": [str(root)], "grace_period": 3600},
    )
    made = create_app(settings)
    yield made
    close_app(made)


def test_removes_old_matching_files_and_keeps_the_rest(app: Celery, root: Path) -> None:
    old = [make(root / f"old{i}.log") for i in range(3)]
    deep = make(root / "a" / "b" / "deep.log")
    young = make(root / "young.log", age=86400)
    other = make(root / "old.txt")
    report = clean_files(app, str(root), "*.log", 30 * 86400)
    assert report.files == 4
    assert report.bytes == 400
    assert not any(path.exists() for path in [*old, deep])
    assert young.exists()
    assert other.exists()


def test_dry_run_removes_nothing(app: Celery, root: Path) -> None:
    make(root / "old.log")
    before = checksum(root)
    report = clean_files(app, str(root), "*.log", 30 * 86400, dry_run=True)
    assert report.files == 1
    assert checksum(root) == before


def test_keep_last_and_max_files(app: Celery, root: Path) -> None:
    for i in range(6):
        make(root / f"r{i}.log", age=OLD + i * 60)  # r0 newest
    report = clean_files(app, str(root), "*.log", 86400, keep_last=2, max_files=3)
    assert report.files == 3
    assert report.truncated
    assert (root / "r0.log").exists()
    assert (root / "r1.log").exists()
    assert report.skipped_counts["kept by keep_last"] == 2


def test_grace_period_keeps_recent_files_whatever_older_than_says(app: Celery, root: Path) -> None:
    recent = make(root / "recent.log", age=60)
    report = clean_files(app, str(root), "*.log", 0)
    assert recent.exists()
    assert report.skipped_counts == {"changed within the grace period": 1}


def test_link_to_sentinel_is_removed_as_a_link(app: Celery, root: Path, sentinel: Path) -> None:
    link = root / "logs.log"
    link.symlink_to(sentinel / "a.log")
    then = time.time() - OLD
    os.utime(link, (then, then), follow_symlinks=False)
    folder_link = root / "into"
    folder_link.symlink_to(sentinel)
    report = clean_files(app, str(root), "*.log", 86400)
    assert report.files == 1
    assert not link.is_symlink()
    assert folder_link.is_symlink()  # the folder link was not entered (nor removed: no match)


def test_file_open_for_writing_is_kept(app: Celery, root: Path) -> None:
    live = make(root / "live.log")
    writer = subprocess.Popen(
        [sys.executable, "-c", f"import time; f = open({str(live)!r}, 'a'); time.sleep(30)"]
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            fds = Path(f"/proc/{writer.pid}/fd")
            if any(Path(os.readlink(fd)) == live for fd in fds.iterdir() if fd.is_symlink()):
                break
            time.sleep(0.05)
        then = time.time() - OLD
        os.utime(live, (then, then))
        report = clean_files(app, str(root), "*.log", 86400)
    finally:
        writer.kill()
        writer.wait()
    assert live.exists()
    assert report.skipped_counts == {"open for writing": 1}


def test_cleanup_racing_a_writer_does_not_crash(app: Celery, root: Path) -> None:
    for i in range(300):
        make(root / "logs" / f"old{i}.log")
    code = (
        "import os, sys, time\n"
        f"folder = {str(root / 'logs')!r}\n"
        "end = time.time() + 3\n"
        "i = 0\n"
        "while time.time() < end:\n"
        "    name = os.path.join(folder, f'old{i % 300}.log')\n"
        "    try:\n"
        "        os.rename(name, name + '.1')\n"
        "    except OSError:\n"
        "        pass\n"
        "    with open(name, 'a') as f: f.write('live')\n"
        "    i += 1\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(5):
            clean_files(app, str(root), "*.log*", 86400)
    finally:
        writer.wait(timeout=30)
    assert writer.returncode == 0
    for path in (root / "logs").glob("old*.log"):
        assert path.stat().st_mtime > time.time() - 3600  # every live file kept


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("{root}/../sentinel", "'..'"),
        ("{sentinel}", "outside the maintenance roots"),
        ("relative/path", "must be absolute"),
        ("{root}/x\x00y", "NUL"),
        ("{root}/link", "symbolic link"),
        ("{root}/link/sub", "symbolic link"),
        ("{root}/missing", "does not exist"),
    ],
)
def test_refused_roots(app: Celery, root: Path, sentinel: Path, given: str, message: str) -> None:
    (root / "link").symlink_to(sentinel)
    with pytest.raises(UnsafePathError, match=message) as caught:
        clean_files(app, given.format(root=root, sentinel=sentinel), "*.log", 0)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("../*.log", "'..'"), ("/etc/*", "relative"), ("sub/*.log", "file names"), ("a\x00", "NUL")],
)
def test_refused_patterns(
    app: Celery, root: Path, sentinel: Path, pattern: str, message: str
) -> None:
    make(root / "old.log")
    before = checksum(root)
    with pytest.raises(UnsafePathError, match=message):
        clean_files(app, str(root), pattern, 0)
    assert checksum(root) == before


def test_world_writable_root_without_sticky_bit_is_refused(
    app: Celery, root: Path, sentinel: Path
) -> None:
    shared = root / "shared"
    shared.mkdir()
    make(shared / "old.log")
    shared.chmod(0o777)
    with pytest.raises(UnsafePathError, match="writable by every user"):
        clean_files(app, str(shared), "*.log", 0)
    assert (shared / "old.log").exists()
    shared.chmod(0o1777)
    assert clean_files(app, str(shared), "*.log", 86400).files == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")
def test_root_owned_by_another_user_is_refused(app: Celery, root: Path) -> None:
    theirs = root / "theirs"
    theirs.mkdir()
    make(theirs / "old.log")
    os.chown(theirs, 65534, 65534)
    with pytest.raises(UnsafePathError, match="owned by uid 65534"):
        clean_files(app, str(theirs), "*.log", 0)
    assert (theirs / "old.log").exists()


def test_one_cleanup_per_root_at_a_time(app: Celery, root: Path) -> None:
    from crawjud_tasks.maintenance._api import _target  # the lease key of a root

    make(root / "old.log")
    with (
        lease(app, f"maintenance:clean:{_target(str(root))}", 30),
        pytest.raises(LeaseHeldError),
    ):
        clean_files(app, str(root), "*.log", 0)
    assert (root / "old.log").exists()


def test_clean_defaults_uses_each_folders_retention(
    crawjud_redis: RedisServer, tmp_path: Path
) -> None:
    from crawjud_tasks.maintenance import clean_defaults

    data = tmp_path / "data"
    settings = settings_for(
        crawjud_redis,
        data,
        bots={"retention": 10 * 86400},
        maintenance={"log_retention": 20 * 86400, "outbox_retention": 5 * 86400},
    )
    made = create_app(settings)
    try:
        log_old, log_kept = (
            make(data / "logs" / "w.log", 25 * 86400),
            make(data / "logs" / "x", 15 * 86400),
        )
        report_old = make(data / "reports" / "r.xlsx", 11 * 86400)
        report_kept = make(data / "reports" / "s.xlsx", 9 * 86400)
        eml_old = make(data / "outbox" / "m.eml", 6 * 86400)
        other = make(data / "outbox" / "notes.txt", 60 * 86400)
        reports = clean_defaults(made)
    finally:
        close_app(made)
    assert [report.files for report in reports] == [1, 1, 1]
    assert not log_old.exists() and not report_old.exists() and not eml_old.exists()
    assert log_kept.exists() and report_kept.exists() and other.exists()
