"""create_app and install: the Celery configuration they produce and task isolation."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.worker import WorkController

from crawjud_tasks import (
    CrawjudTasksError,
    Settings,
    SettingsError,
    app_settings,
    create_app,
    install,
    ping,
)
from crawjud_tasks.testing import RedisServer, close_app, settings_for

MakeApp = Callable[..., Celery]


def test_create_app_pins_json_utc_queues_and_routes(
    crawjud_app: Celery, crawjud_settings: Settings
) -> None:
    app = crawjud_app
    conf = app.conf
    assert conf.accept_content == ["json"]
    assert conf.result_accept_content == ["json"]
    assert conf.task_serializer == conf.result_serializer == conf.event_serializer == "json"
    assert conf.enable_utc is True
    assert conf.timezone == "America/Sao_Paulo"
    assert [q.name for q in conf.task_queues] == [
        "crawjud",
        "crawjud.bots",
        "crawjud.mail",
        "crawjud.maintenance",
    ]
    assert conf.task_default_queue == "crawjud"
    router = app.amqp.router
    assert router.route({}, "crawjud.bots.execute_bot")["queue"].name == "crawjud.bots"
    assert router.route({}, "crawjud.mail.send_email")["queue"].name == "crawjud.mail"
    assert router.route({}, "crawjud.maintenance.health")["queue"].name == "crawjud.maintenance"
    assert router.route({}, "crawjud.ping")["queue"].name == "crawjud"
    assert conf.worker_send_task_events is False
    assert conf.task_send_sent_event is False
    assert conf.result_expires == 86400.0
    assert conf.broker_transport_options["visibility_timeout"] == 3600.0
    assert conf.broker_transport_options["unacked_key"] == "crawjud:unacked"
    assert conf.broker_transport_options["unacked_index_key"] == "crawjud:unacked_index"
    assert "global_keyprefix" not in conf.broker_transport_options  # it wraps every command
    assert conf.result_backend_transport_options["global_keyprefix"] == "crawjud:"
    assert conf.control_exchange == "crawjud"
    assert conf.task_publish_retry is True
    assert app_settings(app).broker_url == crawjud_settings.broker_url
    assert "crawjud.ping" in app.tasks


def test_settings_reach_celery(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    settings = settings_for(
        crawjud_redis,
        crawjud_data_dir,
        namespace="acme",
        task_events=True,
        visibility_timeout=7200,
        result_expires=60,
        queues={"bots": "robots"},
        celery={"worker_prefetch_multiplier": 1, "task_routes": {"host.*": {"queue": "host"}}},
    )
    app = make_app(settings)
    conf = app.conf
    assert conf.worker_send_task_events is True
    assert conf.task_send_sent_event is True
    assert conf.broker_transport_options["visibility_timeout"] == 7200
    assert conf.broker_transport_options["unacked_key"] == "acme:unacked"
    assert conf.result_backend_transport_options["global_keyprefix"] == "acme:"
    assert conf.event_exchange == "acme.events"
    assert conf.result_expires == 60
    assert conf.worker_prefetch_multiplier == 1
    assert "acme.ping" in app.tasks
    assert app.amqp.router.route({}, "acme.bots.run")["queue"].name == "robots"
    assert app.amqp.router.route({}, "host.thing")["queue"].name == "host"


def test_create_app_accepts_a_mapping_and_validates_it(
    crawjud_redis: RedisServer, make_app: MakeApp
) -> None:
    app = make_app(
        {"broker_url": crawjud_redis.url_for(0), "result_backend": crawjud_redis.url_for(1)}
    )
    assert app.conf.broker_url == crawjud_redis.url_for(0)
    with pytest.raises(SettingsError, match="did you mean 'broker_url'"):
        create_app({"broker": crawjud_redis.url})


def test_create_app_reads_the_environment(
    crawjud_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, clean_env: None, make_app: MakeApp
) -> None:
    monkeypatch.setenv("CRAWJUD_TASKS_BROKER_URL", crawjud_redis.url_for(0))
    monkeypatch.setenv("CRAWJUD_TASKS_NAMESPACE", "fromenv")
    app = make_app()
    assert app.conf.broker_url == crawjud_redis.url_for(0)
    assert app.conf.result_backend == crawjud_redis.url_for(0)
    assert "fromenv.ping" in app.tasks


def test_ping_runs_through_a_real_worker(
    crawjud_app: Celery, crawjud_worker: WorkController
) -> None:
    answer = ping(crawjud_app, timeout=20)
    assert answer.hostname in crawjud_worker.hostname
    assert answer.version
    assert answer.time.tzinfo is not None


@pytest.mark.slow
def test_two_apps_in_one_process_never_share_tasks(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    first = make_app(settings_for(crawjud_redis, crawjud_data_dir, namespace="one"))
    second = make_app(settings_for(crawjud_redis, crawjud_data_dir, namespace="two"))
    first_tasks = {name for name in first.tasks if not name.startswith("celery.")}
    second_tasks = {name for name in second.tasks if not name.startswith("celery.")}
    own = {
        "ping",
        "canvas.map_chunk",
        "canvas.flatten",
        "mail.send_email",
        "mail.send_bulk",
        "bots.execute_bot",
        "bots.run_chunk",
        "bots.finish_run",
        "bots.notification_failed",
        "bots.reap_runs",
        "bots.run_failed",
        "maintenance.clean_files",
        "maintenance.clean_defaults",
        "maintenance.backup",
        "maintenance.restore",
        "maintenance.redis_hygiene",
        "maintenance.health_check",
        "maintenance.sync",
        "monitoring.periodic_report",
    }
    assert first_tasks == {f"one.{name}" for name in own}
    assert second_tasks == {f"two.{name}" for name in own}
    assert first.tasks["one.ping"].app is first
    # A worker of the first app runs the first app's ping only: the second's stays queued,
    # and the second app's remote control does not reach it.
    second.tasks["two.ping"].apply_async(ignore_result=True)
    with start_worker(first, pool="solo", perform_ping_check=False) as worker:
        assert ping(first, timeout=20).version
        assert first.control.ping(timeout=1.0) == [{worker.hostname: {"ok": "pong"}}]
        assert second.control.ping(timeout=1.0) == []
    client = crawjud_redis.client()
    try:
        assert client.llen("two") == 1
        assert client.llen("one") == 0
        # Every broker key says by its name which deployment it belongs to, but for kombu's
        # index of binding deadlines, whose members do.
        keys = [key.decode() for key in client.keys("*")]
        assert keys
        shared = "_kombu.binding_deadlines"
        strays = [k for k in keys if k != shared and not _owned(k)]
        assert strays == []
        members = [m.decode() for m in client.zrange(shared, 0, -1)]
        assert members
        assert all(_owned(m) for m in members)
    finally:
        client.close()


def _owned(key: str) -> bool:
    name = re.sub(r"^(_kombu\.binding\w*\.)?(reply\.)?", "", key)  # reply.<ns>.pidbox
    return name.startswith(("one", "two"))


@pytest.mark.slow
def test_install_adds_tasks_and_keeps_host_settings(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    host = make_app(plain=True, broker=crawjud_redis.url_for(0), backend=crawjud_redis.url_for(1))
    host.conf.update(
        task_default_queue="host-default",
        worker_prefetch_multiplier=4,
        task_routes={"host.*": {"queue": "host-queue"}},
    )

    @host.task(name="host.add", shared=False)
    def add(x: int, y: int) -> int:
        return x + y

    returned = install(host, settings_for(crawjud_redis, crawjud_data_dir))
    assert returned is host
    assert "crawjud.ping" in host.tasks and "host.add" in host.tasks
    assert host.conf.task_default_queue == "host-default"
    assert host.conf.worker_prefetch_multiplier == 4
    assert host.amqp.router.route({}, "host.add")["queue"].name == "host-queue"
    assert host.amqp.router.route({}, "crawjud.ping")["queue"].name == "crawjud"
    with start_worker(host, pool="solo", perform_ping_check=False, queues="host-queue,crawjud"):
        assert add.delay(2, 3).get(timeout=20) == 5
        assert ping(host, timeout=20).version
    with pytest.raises(CrawjudTasksError, match="already installed"):
        install(host, settings_for(crawjud_redis, crawjud_data_dir))


def test_install_extends_explicit_host_queues(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    from kombu import Queue

    host = make_app(plain=True, broker=crawjud_redis.url_for(0))
    host.conf.task_queues = [Queue("host")]
    install(host, settings_for(crawjud_redis, crawjud_data_dir))
    assert [q.name for q in host.conf.task_queues] == [
        "host",
        "crawjud",
        "crawjud.bots",
        "crawjud.mail",
        "crawjud.maintenance",
    ]


def test_install_refuses_an_app_without_json(
    crawjud_redis: RedisServer, crawjud_data_dir: Path, make_app: MakeApp
) -> None:
    host = make_app(plain=True, broker=crawjud_redis.url_for(0))
    host.conf.accept_content = ["yaml"]
    with pytest.raises(
        SettingsError, match="the app's accept_content is \\['yaml'\\]; crawjud-tasks needs 'json'"
    ):
        install(host, settings_for(crawjud_redis, crawjud_data_dir))
    assert "crawjud.ping" not in host.tasks


def test_app_settings_of_a_foreign_app() -> None:
    with pytest.raises(CrawjudTasksError, match="build it with create_app\\(\\) or install\\(\\)"):
        app_settings(Celery("foreign", set_as_current=False))


@pytest.mark.slow
def test_embedded_default_when_no_broker(
    crawjud_data_dir: Path, clean_env: None, make_app: MakeApp
) -> None:
    from crawjud_tasks import EmbeddedRedis

    app = make_app({"data_dir": str(crawjud_data_dir)})
    embedded = EmbeddedRedis(crawjud_data_dir)
    try:
        assert app.conf.broker_url == embedded.url(0)
        assert app.conf.result_backend == embedded.url(1)
        assert app.conf.redbeat_redis_url == f"unix://{embedded.socket_path}?db=0"
        with start_worker(app, pool="solo", perform_ping_check=False):
            assert ping(app, timeout=20).version
    finally:
        close_app(app)
        embedded.stop()
