"""``periodic_report`` through a real worker subprocess, to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from crawjud_tasks import create_app
from crawjud_tasks._app import close_app
from crawjud_tasks.errors import SettingsError
from crawjud_tasks.mail.contracts import EmailReceipt, send_email
from crawjud_tasks.monitoring.contracts import periodic_report
from crawjud_tasks.testing import RedisServer, WorkerProcess, settings_for
from tests.smtp_server import Recorder

pytestmark = pytest.mark.slow


def test_the_report_mails_the_last_periods_task_stats(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, smtp: tuple[Recorder, int]
) -> None:
    recorder, port = smtp
    settings = settings_for(
        crawjud_redis,
        crawjud_data_dir,
        namespace="cjr",
        mail={"host": "127.0.0.1", "port": port, "security": "none", "timeout": 10},
        monitoring={
            "metrics_flush_interval": 0.2,
            "report_to": ["ops@example.org"],
            "report_period": 3600,
            "report_locale": "en",
        },
    )
    app = create_app(settings)
    worker = WorkerProcess(app, settings=settings, pool="threads", concurrency=2).start()
    try:
        first = periodic_report.using(app).delay().get(timeout=30)
        assert first.recipients == ["ops@example.org"] and first.seconds == 3600
        receipt = app.AsyncResult(first.mail_task_id).get(timeout=30)
        assert EmailReceipt(**receipt).accepted == ["ops@example.org"]  # type: ignore[arg-type]
        time.sleep(1.0)  # the worker flushes its counts (every 0.2 s)
        second = periodic_report.using(app).delay(period=600).get(timeout=30)
        app.AsyncResult(second.mail_task_id).get(timeout=30)
        rows = {row.label: row.value for row in second.rows}
        # The first report and its mail ran in the period: the second one counts them.
        assert int(rows["Tasks finished"]) >= 2 and rows["Failed"] == "0"
        assert any("monitoring.periodic_report" in label for label in rows), rows
        assert any(send_email.name.split(".", 1)[-1] in label for label in rows), rows
        mails = recorder.parsed()
        assert len(mails) == 2
        assert mails[1]["Subject"].startswith("CrawJUD periodic report: ")
        text = mails[1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "Tasks finished: " in text and "Success ratio: 100.0%" in text
    finally:
        worker.stop()
        close_app(app)


def test_the_report_refuses_to_run_with_nobody_to_mail(
    crawjud_redis: RedisServer, crawjud_data_dir: Path
) -> None:
    settings = settings_for(crawjud_redis, crawjud_data_dir, namespace="cjr2")
    app = create_app(settings)
    worker = WorkerProcess(app, settings=settings, pool="threads", concurrency=1).start()
    try:
        with pytest.raises(SettingsError, match=r"monitoring\.report_to"):
            periodic_report.using(app).delay().get(timeout=30)
    finally:
        worker.stop()
        close_app(app)
