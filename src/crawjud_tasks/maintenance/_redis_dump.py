"""The Redis half of a backup: a logical dump of the library's keys, and an embedded snapshot.

The logical dump works on any Redis (a managed one too): ``SCAN`` over the namespace's keys,
then ``DUMP`` and ``PTTL`` of each, pipelined, written as JSON lines
(``{"key": b64, "ttl": ms or -1, "value": b64}``). Restoring is ``RESTORE`` with the TTL each key
had. A snapshot (``BGSAVE``, waited for, checked) is only taken of the embedded Redis, whose RDB
file lies on this machine; a remote Redis is never asked to ``SYNC``.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import redis

from crawjud_tasks.errors import ArchiveError, BackupError

__all__ = ["check_keys", "dump_keys", "restore_keys", "snapshot"]

#: Longest accepted line of a dump (one key): Redis's own 512 MB value limit, base64-encoded.
_MAX_LINE = 700 * 1024 * 1024
_RDB_MAGIC = b"REDIS"
_RDB_EOF = 0xFF
_CRC_BYTES = 8


def dump_keys(
    client: redis.Redis,
    match: str,
    out: IO[bytes],
    *,
    source: str,
    exclude: tuple[bytes, ...] = (),
    batch: int = 500,
) -> int:
    """Write every key matching ``match`` (but those starting with one of ``exclude``) with its
    TTL to ``out``; return how many.

    Each line names its ``source`` (``library`` or ``broker``: which database it came from).
    A key that expires between ``SCAN`` and ``DUMP`` is left out.
    """
    count = 0
    cursor: Any = 0
    while True:
        page: Any = client.scan(cursor=cursor, match=match, count=batch)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
        cursor = page[0]
        keys: list[bytes] = [key for key in page[1] if not key.startswith(exclude)]
        if keys:
            pipe = client.pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
            for key in keys:
                pipe.dump(key)
                pipe.pttl(key)
            replies: list[Any] = pipe.execute()
            for index, key in enumerate(keys):
                value, ttl = replies[2 * index], replies[2 * index + 1]
                if value is None or ttl == -2:
                    continue
                line = {
                    "source": source,
                    "key": base64.b64encode(key).decode(),
                    "ttl": int(ttl),
                    "value": base64.b64encode(value).decode(),
                }
                out.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
                count += 1
        if int(cursor) == 0:
            return count


def _entries(lines: Iterable[bytes]) -> Iterator[tuple[str, bytes, int, bytes]]:
    for number, line in enumerate(lines, 1):
        if len(line) > _MAX_LINE:
            msg = f"line {number} of the key dump is longer than any Redis value; refused"
            raise ArchiveError(msg)
        if not line.strip():
            continue
        try:
            entry: Any = json.loads(line)
            key = base64.b64decode(entry["key"], validate=True)
            value = base64.b64decode(entry["value"], validate=True)
            ttl = int(entry["ttl"])
            source = str(entry.get("source", "library"))
        except (ValueError, KeyError, TypeError) as exc:
            msg = f"line {number} of the key dump is not a dumped key ({exc}); refused"
            raise ArchiveError(msg) from exc
        if source not in {"library", "broker"}:
            msg = f"line {number} of the key dump names an unknown source {source!r}; refused"
            raise ArchiveError(msg)
        yield source, key, ttl, value


def check_keys(lines: Iterable[bytes], prefix: bytes) -> int:
    """Check every line of a key dump, before anything is restored; return how many keys.

    Raises:
        ArchiveError: a line is not a dumped key, or names a key outside the namespace.
    """
    count = 0
    for _, key, _, _ in _entries(lines):
        if not key.startswith(prefix):
            msg = (
                f"the key dump holds {key[:80]!r}, outside the namespace {prefix.decode()!r}; "
                "nothing was restored"
            )
            raise ArchiveError(msg)
        count += 1
    return count


def restore_keys(
    clients: dict[str, redis.Redis], lines: Iterable[bytes], *, replace: bool, batch: int = 500
) -> tuple[int, int]:
    """``RESTORE`` every dumped key with its TTL; return (restored, left as they were).

    Each key goes to the client of its source (a source with no client goes to ``library``).
    A key that exists is left as it is unless ``replace``.

    Raises:
        ArchiveError: a line is not a dumped key, or Redis refused a value.
    """
    restored = existing = 0
    pending: dict[str, list[tuple[bytes, int, bytes]]] = {}

    def flush(source: str) -> None:
        nonlocal restored, existing
        entries = pending.pop(source, [])
        pipe = clients.get(source, clients["library"]).pipeline(transaction=False)  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
        for key, ttl, value in entries:
            pipe.restore(key, max(ttl, 0), value, replace=replace)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        for (key, _, _), reply in zip(entries, replies, strict=True):
            if isinstance(reply, redis.ResponseError):
                if "BUSYKEY" in str(reply):
                    existing += 1
                    continue
                msg = f"Redis refused to restore key {key!r}: {reply}"
                raise ArchiveError(msg)
            restored += 1

    for source, key, ttl, value in _entries(lines):
        batch_of = pending.setdefault(source, [])
        batch_of.append((key, ttl, value))
        if len(batch_of) >= batch:
            flush(source)
    for source in list(pending):
        flush(source)
    return restored, existing


def snapshot(client: redis.Redis, *, timeout: float = 300.0) -> Path:
    """``BGSAVE`` the (local, embedded) Redis, wait for it, check the file; return its path.

    Raises:
        BackupError: the save failed, took longer than ``timeout``, or the file is damaged.
    """
    deadline = time.monotonic() + timeout
    persistence = _wait_idle(client, deadline)
    before = int(persistence["rdb_last_save_time"])
    if int(time.time()) <= before:  # the new save must get a later (whole-second) time
        time.sleep(before + 1 - time.time())
    try:
        client.bgsave()  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
    except redis.ResponseError as exc:
        msg = f"the embedded Redis refused BGSAVE: {exc}"
        raise BackupError(msg) from exc
    while True:
        persistence = _wait_idle(client, deadline)
        if int(persistence["rdb_last_save_time"]) > before:
            break
        if time.monotonic() > deadline:
            msg = f"the embedded Redis did not finish its snapshot within {timeout} s"
            raise BackupError(msg)
        time.sleep(0.05)
    if persistence.get("rdb_last_bgsave_status") != "ok":
        msg = "the embedded Redis's snapshot failed (rdb_last_bgsave_status is not ok); see its log"
        raise BackupError(msg)
    config: Any = client.config_get("dir")  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
    names: Any = client.config_get("dbfilename")  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
    path = Path(_text(config["dir"])) / _text(names["dbfilename"])
    check_rdb(path)
    return path


def check_rdb(path: Path) -> None:
    """Check an RDB file's header and end-of-file marker.

    Raises:
        BackupError: it is not a complete RDB file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        msg = f"the snapshot {path} cannot be read ({exc.strerror})"
        raise BackupError(msg) from exc
    try:
        head = os.pread(fd, 9, 0)
        size = os.fstat(fd).st_size
        tail = os.pread(fd, 1, size - _CRC_BYTES - 1) if size > len(head) + _CRC_BYTES else b""
    finally:
        os.close(fd)
    if not head.startswith(_RDB_MAGIC) or tail != bytes([_RDB_EOF]):
        msg = f"the snapshot {path} is not a complete RDB file"
        raise BackupError(msg)


def _wait_idle(client: redis.Redis, deadline: float) -> dict[str, Any]:
    while True:
        info: Any = client.info("persistence")  # pyright: ignore[reportUnknownMemberType]  (redis-py leaves some parameters unannotated)
        if not int(info.get("rdb_bgsave_in_progress", 0)):
            return dict(info)
        if time.monotonic() > deadline:
            msg = "the embedded Redis was still saving a snapshot when the backup's time ran out"
            raise BackupError(msg)
        time.sleep(0.05)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
