"""CNJ lawsuit numbers: the pure functions, and the built-in bot ``cnj.validar`` run end to end by
a plain library worker (no host module imported) against real Redis.

Check digits are computed here independently of the library, with the piecewise mod-97 algorithm
of the resolution's annex (which never needs more than 18-digit integers).
"""

from __future__ import annotations

import csv
import io
import pickle
import random
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from crawjud_tasks import ItemError, Settings, create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.bots import Item, NoOptions, RunContext, RunLog, known_bots
from crawjud_tasks.bots.cnj import (
    MIN_YEAR,
    CnjNumber,
    InvalidCnjNumber,
    ValidarCnj,
    compute_check_digits,
    parse_cnj,
)
from crawjud_tasks.bots.contracts import BotInput, BotParameters, RunStatus, execute_bot
from crawjud_tasks.testing import RedisServer, WorkerProcess, settings_for

STATES = (
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
    "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SE", "SP", "TO",
)  # fmt: skip
THIS_YEAR = time.gmtime().tm_year


def fullwidth(digits: str) -> str:
    """The digits as Unicode FULLWIDTH DIGITs (``str.isdigit()`` is true for them)."""
    return "".join(chr(0xFF10 + int(c)) for c in digits)


def piecewise_dd(n: str, a: str, j: str, tr: str, o: str) -> str:
    """The annex's algorithm: mod 97 in three pieces."""
    r1 = int(n) % 97
    r2 = int(f"{r1}{a}{j}{tr}") % 97
    r3 = int(f"{r2}{o}00") % 97
    return f"{98 - r3:02d}"


def make(n: str, a: str, j: str, tr: str, o: str) -> str:
    """A formatted number with correct check digits."""
    return f"{n}-{piecewise_dd(n, a, j, tr, o)}.{a}.{j}.{tr}.{o}"


def with_dd(number: str, dd: str) -> str:
    return f"{number[:8]}{dd}{number[10:]}"


# -- check digits ------------------------------------------------------------------------------


def test_check_digits_agree_with_the_piecewise_algorithm() -> None:
    rng = random.Random(65_2008)
    for _ in range(5_000):
        fields = (
            f"{rng.randrange(10**7):07d}",
            f"{rng.randrange(10**4):04d}",
            str(rng.randrange(10)),
            f"{rng.randrange(100):02d}",
            f"{rng.randrange(10**4):04d}",
        )
        assert compute_check_digits(*fields) == piecewise_dd(*fields)


@pytest.mark.parametrize(
    "fields",
    [
        ("123456", "2023", "8", "26", "0100"),
        ("0001234", "23", "8", "26", "0100"),
        ("0001234", "2023", "10", "26", "0100"),
        ("0001234", "2023", "8", "2a", "0100"),
        ("0001234", "2023", "8", "26", fullwidth("0100")),
    ],
)
def test_check_digits_refuse_malformed_fields(fields: tuple[str, str, str, str, str]) -> None:
    with pytest.raises(ValueError, match="must be"):
        compute_check_digits(*fields)


@pytest.mark.parametrize(
    "number",
    [
        # Numbers printed in CNJ and TRT10 documents.
        "0200043-65.2009.2.00.0000",
        "0005581-54.2022.2.00.0000",
        "0005021-43.2022.5.10.8000",
    ],
)
def test_published_numbers_are_valid(number: str) -> None:
    n, dd, a, j, tr, o = (
        number[:7],
        number[8:10],
        number[11:15],
        number[16],
        number[18:20],
        number[21:],
    )
    assert piecewise_dd(n, a, j, tr, o) == dd
    assert parse_cnj(number).formatted == number


# -- parsing -----------------------------------------------------------------------------------


def test_a_number_is_split_into_its_fields() -> None:
    number = parse_cnj("0001234-08.2023.8.26.0100")
    assert number == CnjNumber("0001234", "08", 2023, 8, "26", "0100")
    assert number.digits == "00012340820238260100"
    assert number.formatted == str(number) == "0001234-08.2023.8.26.0100"
    assert number.tribunal_code == "8.26"
    assert number.segment_name == "Justiça Estadual"
    assert number.tribunal_name == "TJSP"


def test_formatted_bare_padded_and_int_forms_give_one_number() -> None:
    formatted = make("0000012", "2019", "5", "02", "0471")
    bare = formatted.replace("-", "").replace(".", "")
    expected = parse_cnj(formatted)
    assert parse_cnj(bare) == expected
    assert parse_cnj(f"  {formatted}\t\n") == expected
    assert parse_cnj(f" {bare} ") == expected
    assert parse_cnj(int(bare)) == expected  # an Excel number cell lost the leading zeros
    assert len(str(int(bare))) == 15


def test_a_big_int_with_wrong_check_digits_hints_at_the_spreadsheet() -> None:
    good = make("1234567", "2023", "8", "26", "0100").replace("-", "").replace(".", "")
    assert parse_cnj(int(good)).digits == good
    truncated = int(good[:15] + "00000")  # what Excel keeps of it
    with pytest.raises(InvalidCnjNumber) as caught:
        parse_cnj(truncated)
    assert caught.value.reason == "check_digits"
    assert "store the column as text" in str(caught.value)


VALID = make("0001234", "2023", "8", "26", "0100")
WRONG_DD = f"{int(VALID[8:10]) + 1 if VALID[8:10] != '98' else 2:02d}"


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        ("", "empty", "no lawsuit number"),
        ("   ", "empty", "no lawsuit number"),
        ("Processo nº 0001234-08.2023.8.26.0100", "characters", "unexpected character 'P'"),
        ("0001234-08.2023.8.26.0100 x", "characters", "unexpected character ' '"),
        ("0001234/08.2023.8.26.0100", "characters", "unexpected character '/'"),
        ("0001234.08.2023.8.26.0100", "characters", "separators out of place"),
        ("00012340-8.2023.8.26.0100", "characters", "separators out of place"),
        (fullwidth("00012340820238260100"), "characters", "unexpected character"),
        (-12345, "characters", "negative"),
        ("0001234-08.2023.8.26.010", "length", "19 digits, expected 20"),
        ("0001234082023826010", "length", "19 digits, expected 20"),
        ("000123408202382601000", "length", "21 digits, expected 20"),
        (10**20, "length", "21 digits, expected 20"),
        (with_dd(VALID, WRONG_DD), "check_digits", f"are {WRONG_DD}, expected {VALID[8:10]}"),
        (make("0001234", "2023", "0", "26", "0100"), "segment", "segment 0"),
        (make("0001234", "2023", "8", "00", "0100"), "tribunal", "8.00 is no tribunal"),
        (make("0001234", "2023", "8", "28", "0100"), "tribunal", "TR 01 to 27"),
        (make("0001234", "2023", "8", "90", "0000"), "tribunal", "8.90"),
        (make("0001234", "2023", "4", "00", "0000"), "tribunal", "4.00"),
        (make("0001234", "2023", "4", "07", "0000"), "tribunal", "TR 01 to 06, 90"),
        (make("0001234", "2023", "5", "25", "0000"), "tribunal", "5.25"),
        (make("0001234", "2023", "1", "01", "0000"), "tribunal", "1.01"),
        (make("0001234", "2023", "7", "13", "0000"), "tribunal", "7.13"),
        (make("0001234", "2023", "9", "28", "0000"), "tribunal", "9.28"),
        (make("0001234", "1899", "8", "26", "0100"), "year", "1899"),
        (make("0001234", str(THIS_YEAR + 1), "8", "26", "0100"), "year", f"to {THIS_YEAR}"),
        (make("0001234", "0000", "8", "26", "0100"), "year", "the year 0 "),
    ],
)
def test_every_reason_a_number_is_invalid(value: str | int, reason: str, detail: str) -> None:
    with pytest.raises(InvalidCnjNumber) as caught:
        parse_cnj(value)
    error = caught.value
    assert error.reason == reason
    assert str(error).startswith(f"{reason}: ")
    assert detail in str(error)
    assert isinstance(error, ItemError)


def test_the_year_bounds_are_inclusive() -> None:
    assert parse_cnj(make("0000001", str(MIN_YEAR), "8", "26", "0001")).year == MIN_YEAR
    assert parse_cnj(make("0000001", str(THIS_YEAR), "8", "26", "0001")).year == THIS_YEAR


def test_the_latest_year_is_read_again_once_its_year_is_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crawjud_tasks.bots import cnj

    monkeypatch.setattr(cnj._Year, "year", 1999)
    monkeypatch.setattr(cnj._Year, "until", time.time() + 60)
    with pytest.raises(InvalidCnjNumber, match="not from 1900 to 1999"):
        parse_cnj(make("0000001", "2000", "8", "26", "0001"))
    monkeypatch.setattr(cnj._Year, "until", time.time() - 1)  # the year 1999 is over
    assert parse_cnj(make("0000001", "2000", "8", "26", "0001")).year == 2000
    assert cnj._Year.year == THIS_YEAR
    assert cnj._Year.until > time.time()


def test_the_error_survives_pickling() -> None:
    error = InvalidCnjNumber("length", "19 digits, expected 20")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.detail, str(copy)) == (
        "length",
        "19 digits, expected 20",
        "length: 19 digits, expected 20",
    )


# -- tribunals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("j", "tr", "name", "segment"),
    [
        ("1", "00", "STF", "Supremo Tribunal Federal"),
        ("2", "00", "CNJ", "Conselho Nacional de Justiça"),
        ("3", "00", "STJ", "Superior Tribunal de Justiça"),
        ("4", "01", "TRF1", "Justiça Federal"),
        ("4", "03", "TRF3", "Justiça Federal"),
        ("4", "06", "TRF6", "Justiça Federal"),
        ("4", "90", "CJF", "Justiça Federal"),
        ("5", "00", "TST", "Justiça do Trabalho"),
        ("5", "02", "TRT2", "Justiça do Trabalho"),
        ("5", "15", "TRT15", "Justiça do Trabalho"),
        ("5", "24", "TRT24", "Justiça do Trabalho"),
        ("5", "90", "CSJT", "Justiça do Trabalho"),
        ("6", "00", "TSE", "Justiça Eleitoral"),
        ("6", "26", "TRE-SP", "Justiça Eleitoral"),
        ("6", "07", "TRE-DF", "Justiça Eleitoral"),
        ("7", "00", "STM", "Justiça Militar da União"),
        ("7", "01", "CJM 1", "Justiça Militar da União"),
        ("7", "12", "CJM 12", "Justiça Militar da União"),
        ("8", "26", "TJSP", "Justiça Estadual"),
        ("8", "07", "TJDFT", "Justiça Estadual"),
        ("8", "19", "TJRJ", "Justiça Estadual"),
        ("8", "25", "TJSE", "Justiça Estadual"),
        ("9", "13", "TJM-MG", "Justiça Militar Estadual"),
        ("9", "21", "TJM-RS", "Justiça Militar Estadual"),
        ("9", "26", "TJM-SP", "Justiça Militar Estadual"),
        ("9", "05", None, "Justiça Militar Estadual"),
    ],
)
def test_tribunal_and_segment_names(j: str, tr: str, name: str | None, segment: str) -> None:
    number = parse_cnj(make("0000100", "2020", j, tr, "0000"))
    assert (number.tribunal_name, number.segment_name) == (name, segment)


def test_state_codes_follow_the_annex_order() -> None:
    for code, state in enumerate(STATES, start=1):
        tr = f"{code:02d}"
        number = parse_cnj(make("0000100", "2020", "8", tr, "0001"))
        assert number.tribunal_name == ("TJDFT" if state == "DF" else f"TJ{state}")
        assert parse_cnj(make("0000100", "2020", "6", tr, "0001")).tribunal_name == f"TRE-{state}"


# -- the bot's process, in process -------------------------------------------------------------


def context() -> RunContext[NoOptions]:
    return RunContext(
        run_id="r",
        bot_id="cnj.validar",
        user_id=1,
        parameters=BotParameters(input=BotInput.inline([{"NUMERO_PROCESSO": "x"}])),
        options=NoOptions(),
        secrets={},
        output_dir=Path("."),
        log=RunLog(lambda level, message, row: None),
        cancel=threading.Event(),
        resumed_at=0,
    )


def item(cell: Any) -> Item:
    return Item(0, 2, {"NUMERO_PROCESSO": cell, "CLIENTE": "ACME"})


def test_process_reports_the_number_s_columns() -> None:
    bot, ctx = ValidarCnj(), context()
    outcome = bot.process(item(" 00012340820238260100 "), ctx)
    assert outcome.status == "succeeded"
    assert outcome.data == {
        "NUMERO_FORMATADO": "0001234-08.2023.8.26.0100",
        "ANO": 2023,
        "SEGMENTO": "Justiça Estadual",
        "TRIBUNAL": "TJSP",
        "ORIGEM": "0100",
    }
    no_name = bot.process(item(make("0000100", "2020", "9", "05", "0001")), ctx)
    assert no_name.data["TRIBUNAL"] == "9.05"


@pytest.mark.parametrize(
    ("cell", "reason", "detail"),
    [
        (None, "empty", "no lawsuit number"),
        (1.2345620238e16, "characters", "a decimal number"),
        (True, "characters", "a bool (True), not text"),
    ],
)
def test_process_fails_a_cell_that_is_no_number(cell: Any, reason: str, detail: str) -> None:
    with pytest.raises(InvalidCnjNumber) as caught:
        ValidarCnj().process(item(cell), context())
    assert caught.value.reason == reason
    assert detail in str(caught.value)


# -- a whole run through a plain worker --------------------------------------------------------


@pytest.fixture(scope="module")
def cnj_settings(
    crawjud_redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    data = tmp_path_factory.mktemp("cnj")
    (data / "inputs").mkdir()
    return settings_for(
        crawjud_redis_server,
        data,
        namespace="cnjt",
        bots={"allowed_roots": [str(data / "inputs")]},
        visibility_timeout=20,
    )


@pytest.fixture(scope="module")
def cnj_host(cnj_settings: Settings) -> Iterator[Celery]:
    app = create_app(cnj_settings)
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def plain_worker(cnj_host: Celery, cnj_settings: Settings) -> Iterator[WorkerProcess]:
    """``crawjud-tasks worker`` with no ``--app``: create_app() from the environment only."""
    process = WorkerProcess(cnj_host, settings=cnj_settings, pool="solo", loglevel="INFO")
    process.start()
    yield process
    process.stop()
    process.log_path.unlink(missing_ok=True)


def test_every_app_knows_the_built_in_bot(cnj_host: Celery) -> None:
    assert "cnj.validar" in known_bots(cnj_host)


def _read_csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))


@pytest.mark.timeout(120)
def test_a_run_validates_a_spreadsheet(
    cnj_host: Celery, plain_worker: WorkerProcess, cnj_settings: Settings
) -> None:
    rng = random.Random(7)
    valid: dict[int, str] = {}  # spreadsheet row -> expected formatted number
    invalid: dict[int, str] = {}  # spreadsheet row -> expected reason
    lines = ["cliente;numero_processo"]
    courts = [("8", "26"), ("8", "19"), ("5", "02"), ("4", "03"), ("6", "13")]
    for index in range(50):
        row = index + 2
        j, tr = courts[index % len(courts)]
        number = make(f"{rng.randrange(10**7):07d}", str(rng.randrange(2010, 2025)), j, tr, "0100")
        cell = number if index % 2 else number.replace("-", "").replace(".", "")
        if index % 7 == 3:
            cell, invalid[row] = (
                with_dd(number, "00" if number[8:10] != "00" else "01"),
                "check_digits",
            )
        elif index % 11 == 5:
            cell, invalid[row] = number[:-1], "length"
        elif index == 20:
            cell, invalid[row] = "", "empty"
        elif index == 30:
            cell, invalid[row] = f"n. {number}", "characters"
        else:
            valid[row] = number
        lines.append(f"C{index};{cell}")
    path = Path(cnj_settings.bots.allowed_roots[0]) / f"{uuid.uuid4().hex[:8]}.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    run_id = f"cnj-{uuid.uuid4().hex[:8]}"
    handle = execute_bot.using(cnj_host).delay(
        "cnj.validar", 7, BotParameters(input=BotInput.from_file(str(path)), run_id=run_id)
    )
    result = handle.get(timeout=60)

    assert result.status is RunStatus.COMPLETED_WITH_ERRORS
    assert (result.counts.total, result.counts.succeeded) == (50, len(valid))
    assert (result.counts.failed, result.counts.skipped) == (len(invalid), 0)
    assert len(invalid) >= 8
    assert result.report is not None
    with zipfile.ZipFile(result.report) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    successes = _read_csv(next(v for k, v in files.items() if k.endswith("successes.csv")))
    errors = _read_csv(next(v for k, v in files.items() if k.endswith("errors.csv")))
    by_client = {r["CLIENTE"]: r for r in successes}
    assert len(successes) == len(valid)
    for row, number in valid.items():
        out = by_client[f"C{row - 2}"]
        assert out["NUMERO_FORMATADO"] == number
        assert out["ANO"] == number[11:15]
        assert out["ORIGEM"] == "0100"
        expected = {"8.26": "TJSP", "8.19": "TJRJ", "5.02": "TRT2", "4.03": "TRF3"}
        assert out["TRIBUNAL"] == expected.get(number[16:20], "TRE-MG")
    reasons = {r["CLIENTE"]: r["MOTIVO_ERRO"] for r in errors}
    assert {client: reason.split(":")[0] for client, reason in reasons.items()} == {
        f"C{row - 2}": reason for row, reason in invalid.items()
    }
    assert reasons["C20"] == "empty: no lawsuit number"
    assert reasons["C30"] == "characters: unexpected character 'n'"
