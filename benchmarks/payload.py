"""Result rebuilding: JSON data back into a 100-field dataclass, as ``TypedResult.get()`` does.

    python benchmarks/payload.py

Prints microseconds per rebuild (best of 5 repeats of 10,000), for a flat 100-field dataclass
and for a list of 100 small dataclasses; the issue's target is under 50 µs for the first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import timeit

import msgspec

from crawjud_tasks import task_contract

Wide = dataclasses.make_dataclass(
    "Wide",
    [(f"f{i}", [int, str, float, bool, dt.datetime][i % 5]) for i in range(100)],
)


@dataclasses.dataclass
class Row:
    number: str
    year: int
    valid: bool


@task_contract("bench.wide")
def wide() -> Wide:  # type: ignore[valid-type]  # a class made at run time by make_dataclass
    raise NotImplementedError


@task_contract("bench.rows")
def rows() -> list[Row]:
    raise NotImplementedError


def main() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    sample = [7, "text", 1.5, True, now]
    wide_value = Wide(*(sample[i % 5] for i in range(100)))
    wide_json = msgspec.json.decode(msgspec.json.encode(wide_value))
    rows_json = msgspec.json.decode(msgspec.json.encode([Row("1", 2020, True)] * 100))
    for label, decode, data in (
        ("100-field dataclass", wide.codec.decode_result, wide_json),
        ("list of 100 dataclasses", rows.codec.decode_result, rows_json),
    ):
        assert decode(data) is not None
        timer = timeit.Timer(functools.partial(decode, data))
        best = min(timer.repeat(number=10_000, repeat=5)) / 10_000
        print(f"{label:26} {best * 1e6:8.1f} µs per rebuild")


if __name__ == "__main__":
    main()
