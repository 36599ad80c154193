"""Backups and restore against a real Redis and real files: keys come back with their TTLs,
archives are written whole or not at all, and a hostile archive writes nothing anywhere."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from crawjud_tasks import create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.errors import ArchiveError, BackupError, UnsafePathError
from crawjud_tasks.maintenance import backup, restore
from crawjud_tasks.maintenance._archive import HashingWriter
from crawjud_tasks.testing import RedisServer, settings_for
from tests.test_maintenance_clean import checksum, make

pytestmark = pytest.mark.slow

#: An absolute path outside every folder of the test that no other process uses.
ESCAPE = f"/tmp/cjt-escape-{uuid.uuid4().hex}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "docs" / "sub").mkdir(parents=True)
    (folder / "docs" / "a.txt").write_text("alpha")
    (folder / "docs" / "sub" / "b.bin").write_bytes(os.urandom(5000))
    return folder


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "sentinel"
    make(folder / "keep.txt")
    before = checksum(folder)
    yield folder
    assert checksum(folder) == before


def make_app(server: RedisServer, tmp_path: Path, root: Path, **maintenance: Any) -> Celery:
    options = {"roots": [str(root)], "backup_folders": [str(root / "docs")]} | maintenance
    return create_app(settings_for(server, tmp_path / "data", maintenance=options))


@pytest.fixture
def app(crawjud_redis: RedisServer, tmp_path: Path, root: Path) -> Iterator[Celery]:
    made = make_app(crawjud_redis, tmp_path, root)
    yield made
    close_app(made)


def fill(server: RedisServer) -> dict[bytes, tuple[bytes, int]]:
    """Keys of every type, with and without TTLs, in the library's and the broker's database;
    plus a foreign key that is not the library's. Returns (dump, pttl) of the library's."""
    library, broker = server.client(1), server.client(0)
    library.set("crawjud:idempotency:t:k", "task-1", ex=5000)
    library.hset("crawjud:run:r1:state", mapping={"status": "running", "items": "3"})
    library.expire("crawjud:run:r1:state", 7000)
    library.rpush("crawjud:poison", "a", "b")
    library.xadd("crawjud:run:r1:events", {"kind": "log"})
    library.zadd("crawjud:metrics:z", {"a": 1.0})
    library.sadd("crawjud:mail:sent:set", "x")
    library.set("crawjud:lease:run:r1", "token host:1", ex=30)  # a live lease: never restored
    library.set("other:key", "not ours")
    broker.hset("crawjud:redbeat:nightly", "definition", "{}")
    broker.set("crawjud:redbeat::lock", "leader", ex=60)
    expected: dict[bytes, tuple[bytes, int]] = {}
    for client in (library, broker):
        for key in client.scan_iter(match="crawjud:*"):
            if key.startswith(b"crawjud:lease:"):
                continue
            expected[key] = (client.dump(key), client.pttl(key))  # type: ignore[assignment]
    library.close()
    broker.close()
    return expected


def test_backup_then_restore_into_an_empty_redis_gives_back_every_key_with_its_ttl(
    app: Celery, crawjud_redis: RedisServer, tmp_path: Path, root: Path
) -> None:
    expected = fill(crawjud_redis)
    report = backup(app)
    archive = Path(report.path)
    assert report.keys == len(expected)
    assert report.files == 2
    assert archive.stat().st_mode & 0o777 == 0o600
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert Path(f"{archive}.sha256").read_text() == f"{digest}  {archive.name}\n"
    assert report.sha256 == digest
    assert [p.name for p in archive.parent.iterdir() if p.name.startswith(".")] == []

    crawjud_redis.client().flushall()
    result = restore(app, archive, target=str(root / "restored"))
    assert result.keys == len(expected)
    library, broker = crawjud_redis.client(1), crawjud_redis.client(0)
    for key, (value, pttl) in expected.items():
        client = broker if b"redbeat" in key else library
        assert client.dump(key) == value, key
        now = client.pttl(key)
        if pttl == -1:
            assert now == -1, key
        else:
            assert pttl - 5000 < now <= pttl, key  # type: ignore[operator]
    assert library.get("other:key") is None
    assert library.exists("crawjud:lease:run:r1") == 0
    assert (root / "restored" / "0-docs" / "a.txt").read_text() == "alpha"
    assert (root / "restored" / "0-docs" / "sub" / "b.bin").read_bytes() == (
        root / "docs" / "sub" / "b.bin"
    ).read_bytes()

    again = restore(app, archive)  # keys exist now: left as they are
    assert (again.keys, again.keys_existing) == (0, len(expected))


def test_backup_from_any_redis_and_restore_into_another(
    app: Celery, crawjud_redis: RedisServer, tmp_path: Path
) -> None:
    with RedisServer() as source, RedisServer() as destination:
        client = source.client()
        client.set("crawjud:idempotency:a:b", "x", ex=900)
        client.set("crawjud:schedules:s", "y")
        report = backup(app, redis_url=source.url_for(0))
        assert report.keys == 2
        restore(app, report.path, redis_url=destination.url_for(0))
        target = destination.client()
        assert target.get("crawjud:schedules:s") == b"y"
        assert 890 < target.ttl("crawjud:idempotency:a:b") <= 900  # type: ignore[operator]
        client.close()
        target.close()


def test_retention_keeps_daily_weekly_monthly(
    crawjud_redis: RedisServer, tmp_path: Path, root: Path
) -> None:
    made = make_app(
        crawjud_redis,
        tmp_path,
        root,
        backup_keep_daily=2,
        backup_keep_weekly=3,
        backup_keep_monthly=3,
    )
    try:
        folder = tmp_path / "data" / "backups"
        folder.mkdir(parents=True)
        stamps = [
            "20260101T010000Z",  # January
            "20260201T010000Z",  # February
            "20260210T010000Z",  # February, later
            "20261101T010000Z",  # November, earlier week
            "20261125T010000Z",  # a week ago
            "20261125T020000Z",  # same day, newer
        ]
        for stamp in stamps:
            name = f"crawjud-backup-{stamp}.tar.gz"
            (folder / name).write_bytes(b"old")
            (folder / f"{name}.sha256").write_text(f"{'0' * 64}  {name}\n")
        report = backup(made)
        kept = sorted(p.name for p in folder.glob("crawjud-backup-*.tar.gz"))
        assert "crawjud-backup-20261125T010000Z.tar.gz" in report.removed  # same day, older
        assert "crawjud-backup-20260101T010000Z.tar.gz" in report.removed  # beyond 3 months
        assert "crawjud-backup-20260201T010000Z.tar.gz" in report.removed  # same month, older
        assert "crawjud-backup-20261125T020000Z.tar.gz" in kept
        assert "crawjud-backup-20261101T010000Z.tar.gz" in kept  # the third week with one
        assert "crawjud-backup-20260210T010000Z.tar.gz" in kept  # the third month with one
        assert Path(report.path).name in kept
        for name in report.removed:
            assert not (folder / f"{name}.sha256").exists()
    finally:
        close_app(made)


def archive_of(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A gzip tar archive with these members, and its (valid) checksum beside it."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    Path(f"{path}.sha256").write_text(f"{digest}  {path.name}\n")
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


def hostile(sentinel: Path) -> dict[str, list[tuple[tarfile.TarInfo, bytes | None]]]:
    keys = b'{"source":"library","key":"Y3Jhd2p1ZDpwd25lZA==","ttl":-1,"value":"AA=="}\n'
    return {
        "dotdot": [(member("folders/0-x/../../../x"), b"evil")],
        "absolute": [(member(f"{sentinel}/keep.txt"), b"evil")],
        "absolute-tmp": [(member(ESCAPE), b"evil")],
        "device": [(member("folders/0-x/null", tarfile.CHRTYPE), None)],
        "fifo": [(member("folders/0-x/pipe", tarfile.FIFOTYPE), None)],
        "hardlink": [(member("folders/0-x/h", tarfile.LNKTYPE, f"{sentinel}/keep.txt"), None)],
        "link-outside": [(member("folders/0-x/l", tarfile.SYMTYPE, str(sentinel)), None)],
        "relative-link-outside": [
            (member("folders/0-x/l", tarfile.SYMTYPE, "../../../sentinel"), None)
        ],
        "write-through-link": [
            (member("folders/0-x/sub", tarfile.DIRTYPE), None),
            (member("folders/0-x/l", tarfile.SYMTYPE, "sub"), None),
            (member("folders/0-x/l/keep.txt"), b"evil"),
        ],
        "unknown-member": [(member("etc/passwd"), b"evil")],
        "keys-then-bad": [(member("redis/keys.jsonl"), keys), (member(ESCAPE), b"evil")],
        "foreign-key": [
            (member("redis/keys.jsonl"), keys + keys.replace(b"Y3Jhd2p1ZDpwd25lZA==", b"b3RoZXI=")),
            (member("folders/0-x/ok.txt"), b"fine"),
        ],
        "not-a-dump": [(member("redis/keys.jsonl"), keys + b"not json\n")],
    }


@pytest.mark.parametrize(
    "case",
    [
        "dotdot",
        "absolute",
        "absolute-tmp",
        "device",
        "fifo",
        "hardlink",
        "link-outside",
        "relative-link-outside",
        "write-through-link",
        "unknown-member",
        "keys-then-bad",
        "foreign-key",
        "not-a-dump",
    ],
)
def test_hostile_archive_writes_nothing(
    app: Celery, crawjud_redis: RedisServer, root: Path, sentinel: Path, case: str
) -> None:
    path = archive_of(root / f"{case}.tar.gz", hostile(sentinel)[case])
    (root / "target").mkdir()
    before = checksum(root / "target")
    with pytest.raises(ArchiveError, match=r"nothing was restored|refused") as caught:
        restore(app, path, target=str(root / "target"))
    assert "\n" not in str(caught.value)
    assert checksum(root / "target") == before
    assert not Path(ESCAPE).exists()
    assert crawjud_redis.client(1).exists("crawjud:pwned", "other") == 0


def test_damaged_or_unchecked_archives_are_refused(
    app: Celery, crawjud_redis: RedisServer, root: Path, sentinel: Path
) -> None:
    fill(crawjud_redis)
    report = backup(app)
    crawjud_redis.client().flushall()
    archive = Path(report.path)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="does not match its checksum"):
        restore(app, archive, target=str(root / "t"))
    Path(f"{archive}.sha256").unlink()
    with pytest.raises(ArchiveError, match="no readable checksum"):
        restore(app, archive)
    assert crawjud_redis.client(1).dbsize() == 0
    assert not (root / "t").exists()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("{sentinel}/keep.txt", "outside the maintenance roots"),
        ("{root}/../sentinel/keep.txt", "'..'"),
        ("{root}/link/keep.txt", "symbolic link"),
        ("{root}/a\x00.tar.gz", "NUL"),
    ],
)
def test_refused_archive_paths(
    app: Celery, root: Path, sentinel: Path, given: str, message: str
) -> None:
    (root / "link").symlink_to(sentinel)
    with pytest.raises(UnsafePathError, match=message):
        restore(app, given.format(root=root, sentinel=sentinel), target=str(root / "t"))
    assert not (root / "t").exists()


def test_restore_target_outside_the_roots_is_refused(
    app: Celery, crawjud_redis: RedisServer, sentinel: Path
) -> None:
    report = backup(app)
    with pytest.raises(UnsafePathError, match="outside the maintenance roots"):
        restore(app, report.path, target=str(sentinel), redis=False)


def test_backup_to_a_folder_outside_the_roots_is_refused(app: Celery, sentinel: Path) -> None:
    with pytest.raises(UnsafePathError, match="outside the maintenance roots"):
        backup(app, to=str(sentinel))


def test_disk_full_mid_backup_removes_the_partial_archive_and_keeps_the_last(
    crawjud_redis: RedisServer, tmp_path: Path, root: Path
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(disk)],
            check=False,
            capture_output=True,
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("no tmpfs here (needs root); test_enospc_writer covers the same path")
    made = make_app(crawjud_redis, tmp_path, root, backup_dir=str(disk))
    try:
        first = backup(made)
        before = checksum(disk)
        (root / "docs" / "big.bin").write_bytes(os.urandom(1024 * 1024))  # does not compress
        with pytest.raises(BackupError, match="partial archive was removed"):
            backup(made)
        assert checksum(disk) == before
        assert Path(first.path).exists()
        assert sorted(p.name for p in disk.iterdir()) == sorted(
            [Path(first.path).name, f"{Path(first.path).name}.sha256"]
        )
    finally:
        close_app(made)
        subprocess.run(["umount", str(disk)], check=True)


def test_enospc_writer(
    app: Celery, crawjud_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = backup(app)
    folder = Path(first.path).parent
    before = checksum(folder)
    written = 0

    def full(self: HashingWriter, data: Any) -> int:
        nonlocal written
        written += len(data)
        if written > 200:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, data)

    original = HashingWriter.write
    time.sleep(0.01)
    monkeypatch.setattr(HashingWriter, "write", full)
    with pytest.raises(BackupError, match="No space left on device"):
        backup(app)
    assert checksum(folder) == before


def test_embedded_redis_snapshot_is_in_the_backup(tmp_path: Path, root: Path) -> None:
    from crawjud_tasks import EmbeddedRedis, Settings

    data = Path(os.path.realpath(tmp_path)) / "d"
    settings = Settings.from_mapping({"data_dir": str(data), "maintenance": {"roots": [str(root)]}})
    made = create_app(settings)
    try:
        client = redis.Redis(unix_socket_path=str(EmbeddedRedis(data).socket_path), db=1)
        client.set("crawjud:idempotency:e:1", "x", ex=600)
        report = backup(made)
        assert report.snapshot
        with tarfile.open(report.path) as tar:
            rdb = tar.extractfile("redis/dump.rdb")
            assert rdb is not None
            assert rdb.read(5) == b"REDIS"
        result = restore(made, report.path, target=str(root / "r"), redis=False)
        assert result.snapshot is not None
        assert Path(result.snapshot).read_bytes()[:5] == b"REDIS"
        client.close()
    finally:
        close_app(made)
        EmbeddedRedis(data).stop()


def test_an_archive_bigger_than_the_target_is_refused(
    app: Celery, crawjud_redis: RedisServer, root: Path
) -> None:
    small = root / "small"
    small.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(small)],
            check=False,
            capture_output=True,
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("no tmpfs here (needs root)")
    try:
        bomb = archive_of(root / "bomb.tar.gz", [(member("folders/0-x/zeros"), b"\0" * 4_000_000)])
        assert bomb.stat().st_size < 64 * 1024
        with pytest.raises(ArchiveError, match="need 4000000 bytes"):
            restore(app, bomb, target=str(small))
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
