"""Assembly: turn :class:`Settings` into a configured Celery app with the CrawJUD tasks on it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from celery import Celery
from celery.signals import worker_init
from kombu import Exchange, Queue

from crawjud_tasks._checks import REDIS_PY_SCHEMES, url_scheme
from crawjud_tasks._contracts import use_binder
from crawjud_tasks._delivery import bind_contract, prepare_worker
from crawjud_tasks._embedded import EmbeddedRedis
from crawjud_tasks._guards import is_list_or_tuple
from crawjud_tasks._keys import Keys
from crawjud_tasks._ping import register_ping
from crawjud_tasks._redis import is_redis_url, redis_py_url
from crawjud_tasks._settings import DOMAINS, Settings, load_settings
from crawjud_tasks._state import APP_OPTION, close_state, has_state, new_state
from crawjud_tasks._tls import tls_config, warn_if_unverified
from crawjud_tasks._typed_send import use_typed_send
from crawjud_tasks._workflows import register_canvas_tasks
from crawjud_tasks.errors import CrawjudTasksError, SettingsError

if TYPE_CHECKING:
    from crawjud_tasks._state import AppState

__all__ = ["DOMAIN_REGISTRARS", "close_app", "create_app", "install"]

#: The registrar module of each domain, called in this order by :func:`register_tasks`: adding a
#: domain adds its folder and a line here. Imported on use: a domain's runtime (Jinja2, the bot
#: runner) loads when an app is made, not when ``crawjud_tasks`` is imported.
DOMAIN_REGISTRARS: tuple[str, ...] = (
    "crawjud_tasks.mail._register",
    "crawjud_tasks.bots._register",
    "crawjud_tasks.maintenance._register",
    "crawjud_tasks.monitoring._register",
    "crawjud_tasks.schedules._register",
)


# Contracts (core) declare; delivery binds their implementations on the worker.
use_binder(bind_contract)


class _Registrar(Protocol):
    def __call__(self, app: Celery, state: AppState, /) -> None: ...


#: A dispatch to an unreachable broker makes this many attempts. Each waits at most 40% of
#: ``broker_connection_timeout`` and the pause between them is 10%, so the whole dispatch gives up
#: within 90% of it. Reads never time out sooner than ``_MIN_SOCKET_TIMEOUT``, which must stay
#: above kombu's one-second BRPOP poll.
_ATTEMPTS = 2
_ATTEMPT_SHARE = 0.4
_PAUSE_SHARE = 0.1
_MIN_SOCKET_TIMEOUT = 1.5


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Celery:
    """Build a configured Celery app with every CrawJUD task registered.

    Args:
        config: A :class:`Settings`, a mapping (validated like :meth:`Settings.from_mapping`) or
            ``None`` (``CRAWJUD_TASKS_*`` environment variables, then defaults). With no broker
            URL the embedded Redis in the data folder is started, or attached to.

    Returns:
        A plain :class:`celery.Celery` app: ``celery -A ...`` and every Celery tool work with it.

    Raises:
        SettingsError: the configuration is invalid.
        EmbeddedRedisError: the embedded Redis was needed and could not be started.
    """
    settings = _resolve_connection(load_settings(config))
    app = Celery(settings.namespace, set_as_current=False, fixups=[], autofinalize=True)
    state = new_state(app, settings)
    app.conf.update(_celery_config(settings, state.ident))
    register_tasks(app, state)
    return app


def install(app: Celery, config: Settings | Mapping[str, Any] | None = None) -> Celery:
    """Register the CrawJUD tasks on a Celery app the host already has, and return it.

    The host's broker, backend, serializers and other settings are kept. crawjud-tasks adds its
    queues next to the host's (its default queue when it declared none, so that a worker with
    no ``-Q`` consumes both) and its routes (ahead of the host's routes), and sends its own
    messages as JSON; it refuses an app whose ``accept_content`` leaves JSON out.
    ``broker_url``, ``result_backend`` and the ``celery`` passthrough of ``config`` are ignored
    here: the host's app owns them.

    Raises:
        SettingsError: the configuration is invalid, or the app does not accept JSON.
        CrawjudTasksError: the CrawJUD tasks are already installed on this app.
    """
    if has_state(app):
        msg = "the CrawJUD tasks are already installed on this app; install them once per app"
        raise CrawjudTasksError(msg)
    settings = load_settings(config)
    conf = app.conf
    for key in ("accept_content", "result_accept_content"):
        accepted = conf.get(key)
        if accepted is not None and "json" not in accepted and "application/json" not in accepted:
            msg = f"the app's {key} is {list(accepted)!r}; crawjud-tasks needs 'json' in it"
            raise SettingsError(msg)
    _add_queues(app, _queues(settings))
    existing = conf.task_routes
    host_routes: tuple[Any, ...] = (
        () if existing is None else tuple(existing) if is_list_or_tuple(existing) else (existing,)
    )
    conf.task_routes = (_routes(settings), *host_routes)
    for key, value in tls_config(conf.broker_url, conf.result_backend, settings.tls).items():
        if not conf.get(key):  # the host's own TLS options win
            conf[key] = value
    state = new_state(app, settings)
    guarded = _guarded_transport(str(conf.broker_url or ""), settings, state.ident)
    if guarded and not conf.get("broker_transport"):  # a host's own transport is kept as it is
        transport = guarded.pop("broker_transport_options")
        conf.broker_transport_options = {**(conf.broker_transport_options or {}), **transport}
        conf.broker_transport = guarded["broker_transport"]
        if conf.get("worker_consumer") == "celery.worker.consumer:Consumer":
            conf.worker_consumer = guarded["worker_consumer"]
    register_tasks(app, state)
    return app


def _add_queues(app: Celery, queues: list[Queue]) -> None:
    """Declare ``queues`` on ``app`` next to the host's, so that a worker started with no ``-Q``
    consumes both. With no ``task_queues``, Celery's workers consume only the default queue; it
    is declared explicitly here (as Celery would make it) before the CrawJUD ones."""
    conf = app.conf
    # Celery's own declaration of the host's queues (its default queue when there are none).
    host_queues = list(app.amqp.Queues(conf.task_queues).values())
    known = {queue.name for queue in host_queues}
    conf.task_queues = [*host_queues, *(queue for queue in queues if queue.name not in known)]
    # app.amqp.queues is made once, on first use: one made before install() learns them too.
    made: Any = app.amqp.__dict__.get("queues")
    if made is not None:
        for queue in queues:
            if queue.name not in made:
                made.add(queue)


def register_tasks(app: Celery, state: AppState) -> None:
    """Bind every contract of the library to its implementation on ``app``: the core tasks,
    then each domain's, through its registrar; every dispatch of ``app`` raises the library's
    errors."""
    use_typed_send(app)
    warn_if_unverified(app.conf, state.settings.tls)
    register_ping(app)
    register_canvas_tasks(app)
    for module in DOMAIN_REGISTRARS:
        registrar: _Registrar = importlib.import_module(module).register
        registrar(app, state)
    worker_init.connect(prepare_worker, weak=False, dispatch_uid=_PREPARE_UID)


_PREPARE_UID = "crawjud_tasks.prepare_worker"


def close_app(app: Celery) -> None:
    """Close ``app``'s result backend and library Redis connections in this thread, then the app.

    Broker connection pools are shared by every app with the same broker URL (kombu keeps them
    per process), so they are left to kombu.
    """
    # None if the app never made its backend: never build one just to close it.
    backend = getattr(app, "_backend", None)
    if backend is not None:
        consumer = getattr(backend, "result_consumer", None)
        if consumer is not None:
            consumer.stop()
            # Results still pending unsubscribe when collected; with nothing left subscribed,
            # a result collected after the server went away does not try to reconnect.
            subscribed = getattr(consumer, "subscribed_to", None)
            if subscribed is not None:
                subscribed.clear()
        client = backend.__dict__.get("client")
        if client is not None:
            client.connection_pool.disconnect()
    close_state(app)
    app.close()


def _resolve_connection(settings: Settings) -> Settings:
    """Fill in the broker (embedded Redis when unset) and the result backend (the broker's)."""
    import dataclasses  # noqa: PLC0415

    broker = settings.broker_url
    backend = settings.result_backend
    if broker is None:
        embedded = EmbeddedRedis(settings.resolved_data_dir)
        embedded.start()
        broker = embedded.url(0)
        backend = backend or embedded.url(1)
    elif backend is None and is_redis_url(broker):
        backend = broker
    return dataclasses.replace(settings, broker_url=broker, result_backend=backend)


def _queues(settings: Settings) -> list[Queue]:
    names = settings.queue_names
    return [Queue(name, Exchange(name), routing_key=name) for name in dict.fromkeys(names.values())]


def _routes(settings: Settings) -> dict[str, dict[str, str]]:
    names = settings.queue_names
    routes = {f"{settings.namespace}.{domain}.*": {"queue": names[domain]} for domain in DOMAINS}
    routes[f"{settings.namespace}.*"] = {"queue": names["default"]}
    return routes


#: The worker's broker transport for Redis brokers: kombu's, checking every message on arrival.
_GUARDED_TRANSPORT = "crawjud_tasks._delivery._transport:GuardedTransport"
#: The worker's consumer: Celery's, recording each message it refuses as a poison record.
_GUARDED_CONSUMER = "crawjud_tasks._delivery._consumer:GuardedConsumer"


def _guarded_transport(broker: str, settings: Settings, ident: str) -> dict[str, Any]:
    """The configuration that makes a worker refuse and record a malformed message instead of
    crashing on it (``{}`` for a broker the guarded transport does not serve)."""
    if url_scheme(broker) not in REDIS_PY_SCHEMES:
        return {}
    return {
        "worker_consumer": _GUARDED_CONSUMER,
        "broker_transport": _GUARDED_TRANSPORT,
        "broker_transport_options": {
            APP_OPTION: ident,
            "max_message_bytes": settings.max_message_bytes,
        },
    }


def _celery_config(settings: Settings, ident: str) -> dict[str, Any]:
    timeout = settings.broker_connection_timeout
    per_attempt = timeout * _ATTEMPT_SHARE
    socket_timeout = max(per_attempt, _MIN_SOCKET_TIMEOUT)
    retry_policy = {
        "max_retries": _ATTEMPTS - 1,
        "interval_start": timeout * _PAUSE_SHARE,
        "interval_step": 0,
        "interval_max": timeout * _PAUSE_SHARE,
    }
    keys = Keys(settings.key_prefix)
    config: dict[str, Any] = dict(settings.celery)  # passthrough; pinned keys were refused
    routes: tuple[Any, ...] = (_routes(settings),)
    host_routes = config.get("task_routes")
    if host_routes is not None:
        routes += tuple(host_routes) if is_list_or_tuple(host_routes) else (host_routes,)
    config |= {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only, for tasks, results and events.
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        # UTC inside; schedules read in the configured zone.
        "enable_utc": True,
        "timezone": settings.timezone,
        # One queue and route per domain.
        "task_default_queue": settings.queue_names["default"],
        "task_default_exchange": settings.queue_names["default"],
        "task_default_routing_key": settings.queue_names["default"],
        "task_queues": _queues(settings),
        "task_routes": routes,
        # Events cost Redis writes per task: off unless asked for (Flower can enable them live).
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "result_expires": settings.result_expires,
        # A dispatch to an unreachable broker fails within broker_connection_timeout.
        "broker_connection_timeout": per_attempt,
        "broker_connection_retry_on_startup": True,
        "task_publish_retry": True,
        "task_publish_retry_policy": retry_policy,
        # Remote control and events on exchanges of our own, apart from other deployments.
        "control_exchange": settings.namespace,
        "event_exchange": f"{settings.namespace}.events",
    }
    # rediss:// URLs check certificates (the passthrough's own options win).
    for key, value in tls_config(
        settings.broker_url, settings.result_backend, settings.tls
    ).items():
        config.setdefault(key, value)
    if is_redis_url(settings.broker_url):
        transport = dict(settings.celery.get("broker_transport_options", {}))
        # kombu scans for messages past their visibility timeout every 10 s, but by default
        # only on every 10th look: a message of a worker that died would wait 100 s more.
        transport.setdefault("unacked_restore_throttle", 1)
        transport.update(
            visibility_timeout=settings.visibility_timeout,
            socket_connect_timeout=per_attempt,
            socket_timeout=socket_timeout,
            # Queue lists, exchange bindings and broadcast channels carry the namespace in their
            # names already. kombu's global_keyprefix would prefix every key too, but it wraps
            # every Redis command to do so (about 3% more instructions per executed task);
            # naming the few keys kombu keeps costs nothing.
            **keys.kombu_transport(),
        )
        guarded = _guarded_transport(settings.broker_url or "", settings, ident)
        transport.update(guarded.pop("broker_transport_options", {}))
        config["broker_transport_options"] = transport
        config.update({k: v for k, v in guarded.items() if k not in settings.celery})
    if is_redis_url(settings.broker_url) and settings.broker_url is not None:
        # Beat keeps its schedules in Redis as JSON and fires each (schedule, time) once, under
        # a fenced leader lock renewed every tick (see "Schedules").
        config.setdefault("beat_scheduler", "crawjud_tasks.schedules._scheduler:ScheduleScheduler")
        config.setdefault("beat_max_loop_interval", settings.schedules.loop_interval)
        config.setdefault("redbeat_redis_url", redis_py_url(settings.broker_url))
        config.setdefault("redbeat_redis_options", {"socket_connect_timeout": per_attempt})
        config.setdefault("redbeat_key_prefix", keys.redbeat_prefix())
        config.setdefault("redbeat_lock_timeout", settings.schedules.lock_timeout)
    if is_redis_url(settings.result_backend):
        backend = dict(settings.celery.get("result_backend_transport_options", {}))
        backend.setdefault("global_keyprefix", settings.key_prefix)
        # The result backend's first attempt is the subscription itself: one reconnect more.
        backend.setdefault("retry_policy", retry_policy | {"max_retries": _ATTEMPTS - 2})
        config["result_backend_transport_options"] = backend
        config.setdefault("redis_socket_connect_timeout", per_attempt)
        config.setdefault("redis_socket_timeout", socket_timeout)
    return config
