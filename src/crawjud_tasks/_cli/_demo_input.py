"""The demo's spreadsheet: lawsuit numbers as a court's export has them, some of them wrong."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from crawjud_tasks.bots.cnj import compute_check_digits

__all__ = ["write_demo_spreadsheet"]

#: (segment, tribunal) pairs the numbers come from: state courts mostly, some federal and labour.
_COURTS = (("8", "26"), ("8", "19"), ("8", "13"), ("8", "05"), ("4", "03"), ("5", "02"))


def write_demo_spreadsheet(folder: Path, rows: int = 1000, *, seed: int = 65) -> Path:
    """Write ``rows`` lawsuit numbers (about one in six wrong) to ``folder``; the file's path.

    Valid numbers are formatted or bare digits; the wrong ones have bad check digits, a missing
    digit, a letter, or nothing at all, as real spreadsheets do.
    """
    rng = random.Random(seed)  # noqa: S311  (sample data, not a secret)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "processos.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter=";")
        writer.writerow(["NUMERO_PROCESSO", "CLIENTE"])
        for index in range(rows):
            writer.writerow([_number(rng, index), f"Cliente {index + 1:04d}"])
    return path


def _number(rng: random.Random, index: int) -> str:
    segment, tribunal = _COURTS[rng.randrange(len(_COURTS))]
    sequence = f"{rng.randrange(10_000_000):07d}"
    year = str(rng.randrange(2012, 2026))
    origin = f"{rng.randrange(1, 700):04d}"
    check = compute_check_digits(sequence, year, segment, tribunal, origin)
    number = f"{sequence}-{check}.{year}.{segment}.{tribunal}.{origin}"
    flaw = index % 12
    if flaw == 5:
        return number.replace(f"-{check}.", f"-{(int(check) + 1) % 100:02d}.")
    if flaw == 11 and index % 24 == 11:
        return number[:-1]
    if flaw == 11:
        return number.replace(".8.", ".X.").replace(".4.", ".X.").replace(".5.", ".X.")
    if index % 97 == 50:
        return ""
    return number if index % 3 else number.replace("-", "").replace(".", "")
