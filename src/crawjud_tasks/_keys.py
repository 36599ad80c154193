"""The key table: every Redis key crawjud-tasks writes is built here, and nowhere else.

One :class:`Keys` per app (``app_state(app).keys``), made from the namespace prefix
(``<namespace>:``, ``crawjud:`` by default), so that two deployments can share one Redis. Key
names are part of the wire contract: renaming one is a breaking change recorded in CHANGELOG.

Each line: key, type, TTL, who writes -> who reads (``<p>`` is the prefix).

- ``<p>lease:<name>``, string, lease ttl renewed by a heartbeat; ``Lease`` holders -> other holders.
- ``<p>lease:task:<task>:<id>:<retry>``, string, run lease ttl; at-least-once tasks -> their
  redelivered copies.
- ``<p>lease:run:<run id>[:chunk:<n>]``, string, run lease ttl; bot runs and chunks -> redelivered
  runs.
- ``<p>deliveries:<task>:<id>:<retry>``, string, ``idempotency_ttl``; at-least-once tasks ->
  the next delivery of the same message.
- ``<p>poison``, list capped at 1,000, no TTL; at-least-once tasks -> ``poison_messages``.
- ``<p>idempotency:<task>:<key>``, string, ``idempotency_ttl``; dispatch (claim) -> dispatch.
- ``<p>idempotency:<task>:<key>:result``, string, ``idempotency_ttl``; worker -> worker (replay).
- ``<p>run:<run id>:state``, hash, ``bots.retention``; bot runs -> ``run_state``, the CLI.
- ``<p>run:<run id>:items[:<n>]``, list, ``bots.retention``; a sequential run (chunk ``n`` of a
  parallel run) -> its resumed deliveries.
- ``<p>run:<run id>:events``, stream, ``bots.retention``; bot runs, the notification errback ->
  ``run_events``, the CLI.
- ``<p>run:<run id>:cancel``, string, ``bots.retention``; ``cancel_run`` -> bot runs.
- ``<p>run:<run id>:abort``, string, ``bots.retention``; a failing chunk -> the other chunks.
- ``<p>mail:sent:<Message-ID>``, string, ``idempotency_ttl``; mail sends -> mail sends.
- ``<p>monitoring:totals``, hash, no TTL; every process's metrics flush -> ``stats``, scrapes.
- ``<p>monitoring:minute:<epoch minute>``, hash, ``monitoring.rollup_retention`` + 60 s; metrics
  flushes -> ``stats(window=...)``.
- ``<p>monitoring:processes``, hash (one JSON record per process), no TTL, records older than
  ``monitoring.worker_timeout`` ignored; metrics flushes -> ``stats``, ``active_tasks``, scrapes.
- ``<p>monitoring:beat``, string, ``monitoring.health_timeout``; beat -> ``health beat``.
- ``<p>schedules:defs``, hash (id -> JSON definition), no TTL; ``sync``/``add``/``update``/
  ``import`` -> beat, ``describe``, the CLI.
- ``<p>schedules:due``, sorted set (id -> ms of the next dispatch), no TTL; the store, beat -> beat.
- ``<p>schedules:buffered``, sorted set (ids with a ``buffer_one`` fire waiting), no TTL; beat ->
  beat.
- ``<p>schedules:state:<id>``, hash (next fire, pause, counters, failures), no TTL; the store,
  beat, the worker's outcome recorder -> beat, ``describe``.
- ``<p>schedules:runs:<id>``, list (last runs, at most 20), no TTL; the worker -> ``describe``.
- ``<p>schedules:fire:<id>:<ms>``, string (the claim of one fire: ``<token>`` while it is
  claimed and not yet published, ``sent:<token>`` after), the catch-up window + 1 min; beat,
  ``trigger`` -> beat (recovery of an unpublished fire).
- ``<p>schedules:running:<id>``, string (task id of the running fire), run lease ttl; beat,
  ``trigger`` -> beat, ``trigger`` (overlap), the worker (frees it).
- ``<p>schedules:leader``, string (the leading beat's token), ``schedules.lock_timeout``; beat ->
  beat.
- ``<p>unacked`` (hash), ``<p>unacked_index`` (zset), ``<p>unacked_mutex`` (string); kombu ->
  kombu; the run lease heartbeat also touches ``unacked_index``.
- ``<p>redbeat:*``, RedBeat's keys; beat -> beat.
- ``<p>celery-task-meta-<id>``, string, ``result_expires``; Celery's result backend.
- ``<p>lease:maintenance:<operation>[:<target>]``, string, 60 s renewed; maintenance
  operations -> the next run of the same operation (one at a time per target).
- ``<p>maintenance:hygiene:cursor`` / ``:replies``, string, 1 day; a hygiene pass stopped by its
  budget -> the next pass.
- ``<p>maintenance:health:status``, string, no TTL; the health check -> the next check.
- ``<p>maintenance:health:alert:<status>``, string, ``maintenance.alert_cooldown``; the health
  check -> the next check (the alert's cool-down).
- ``<p>maintenance:health:oldest``, hash queue -> "<delivery tag> <first seen>", 1 day; the
  health check -> the next check (how long the oldest message has waited).
- ``<p>maintenance:sync:<job>``, hash (watermark, checkpoint, metrics), no TTL; sync runs
  (writes fenced by the run's lease) -> the next run, the CLI.
- ``<id>.reply.<namespace>.pidbox``, list, none; Celery's control replies -> the caller;
  hygiene unlinks those left behind.

Celery's own result keys get the prefix through the backend's ``global_keyprefix``; the queue
lists are named after the queues (``crawjud.bots`` ...), which carry the namespace already.
``docs/internals.md`` shows the same table to operators.
"""

from __future__ import annotations

from typing import Literal, final

__all__ = [
    "HygieneCursor",
    "Keys",
    "RunPart",
    "maintenance_lease_name",
    "run_lease_name",
    "task_lease_name",
]

#: The records of one bot run.
RunPart = Literal["state", "items", "events", "cancel", "abort"]
#: The two scans of a hygiene pass: the library's keys, the broker's control reply queues.
HygieneCursor = Literal["cursor", "replies"]


def task_lease_name(task: str, task_id: str, retries: int | None) -> str:
    """The lease name (for :meth:`Keys.lease`) of an at-least-once run of ``task_id``.

    One per retry: a retry's message may start while the attempt that sent it still holds its
    own lease. The task's name is part of it: a task replaced by a workflow (``Task.replace``)
    gives its id to the workflow's last task.
    """
    return f"task:{task}:{task_id}:{retries or 0}"


def run_lease_name(run_id: str, chunk: int | None = None) -> str:
    """The lease name (for :meth:`Keys.lease`) of bot run ``run_id``, or of one of its chunks."""
    return f"run:{run_id}" if chunk is None else f"run:{run_id}:chunk:{chunk}"


def maintenance_lease_name(operation: str, target: str | None = None) -> str:
    """The lease name (for :meth:`Keys.lease`) of a maintenance operation on ``target``."""
    return f"maintenance:{operation}" if target is None else f"maintenance:{operation}:{target}"


@final
class Keys:
    """The Redis keys of one app, all under ``prefix``."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        #: ``<namespace>:``, the start of every key.
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"Keys({self.prefix!r})"

    # -- delivery guarantees ------------------------------------------------------------------

    def lease(self, name: str) -> str:
        """A lease: ``<p>lease:<name>`` (names from callers of ``lease()``, :func:`task_lease_name`
        and :func:`run_lease_name`)."""
        return f"{self.prefix}lease:{name}"

    def deliveries(self, task: str, task_id: str, retries: int | None) -> str:
        """How often a message of an at-least-once task was delivered (or that it ended)."""
        return f"{self.prefix}deliveries:{task}:{task_id}:{retries or 0}"

    def poison(self) -> str:
        """The list of poison-message records, newest first."""
        return f"{self.prefix}poison"

    def idempotency(self, task: str, key: str) -> str:
        """The claim of an idempotency key: the id of the task that holds it."""
        return f"{self.prefix}idempotency:{task}:{key}"

    def idempotency_result(self, task: str, key: str) -> str:
        """The result of the task that held an idempotency key, replayed to later copies."""
        return f"{self.prefix}idempotency:{task}:{key}:result"

    # -- kombu, Celery and RedBeat ---------------------------------------------------------------

    def kombu_transport(self) -> dict[str, str]:
        """kombu's own Redis keys (transport options), named under the prefix."""
        return {
            "unacked_key": f"{self.prefix}unacked",
            "unacked_index_key": f"{self.prefix}unacked_index",
            "unacked_mutex_key": f"{self.prefix}unacked_mutex",
        }

    def redbeat_prefix(self) -> str:
        """The prefix of RedBeat's keys (``redbeat_key_prefix``)."""
        return f"{self.prefix}redbeat:"

    def redbeat_lock(self) -> str:
        """RedBeat's leader lock, with the default ``redbeat_lock_key``."""
        return f"{self.redbeat_prefix()}:lock"

    def reply_queues(self, namespace: str) -> str:
        """A ``SCAN MATCH`` pattern of Celery's control reply queues (on the broker)."""
        return f"*.reply.{namespace}.pidbox"

    # -- bots ---------------------------------------------------------------------------------

    def run(self, run_id: str, part: RunPart) -> str:
        """One of the records of bot run ``run_id``."""
        return f"{self.prefix}run:{run_id}:{part}"

    def run_checkpoint(self, run_id: str, chunk: int | None) -> str:
        """The checkpoint of bot run ``run_id`` (of its chunk ``chunk`` in a parallel run)."""
        base = f"{self.prefix}run:{run_id}:items"
        return base if chunk is None else f"{base}:{chunk}"

    def run_pattern(self, run_id: str = "*") -> str:
        """A ``SCAN MATCH`` pattern of every record of run ``run_id`` (of every run by default)."""
        return f"{self.prefix}run:{run_id}:*"

    # -- mail ---------------------------------------------------------------------------------

    def mail_sent(self, message_id: str) -> str:
        """The sent-ledger entry (the receipt) of the message ``message_id``."""
        return f"{self.prefix}mail:sent:{message_id}"

    # -- maintenance --------------------------------------------------------------------------

    def library_pattern(self) -> str:
        """A ``SCAN MATCH`` pattern of every key under the prefix."""
        return f"{self.prefix}*"

    def hygiene_cursor(self, scan: HygieneCursor) -> str:
        """Where a hygiene pass stopped by its budget left its ``SCAN`` cursor."""
        return f"{self.prefix}maintenance:hygiene:{scan}"

    def health_status(self) -> str:
        """The status of the last health report."""
        return f"{self.prefix}maintenance:health:status"

    def health_alert(self, status: str) -> str:
        """The cool-down of the alert for ``status``."""
        return f"{self.prefix}maintenance:health:alert:{status}"

    def health_oldest(self) -> str:
        """The oldest message seen at the head of each queue, and since when."""
        return f"{self.prefix}maintenance:health:oldest"

    def sync_state(self, job: str) -> str:
        """A sync job's watermark, checkpoint and metrics."""
        return f"{self.prefix}maintenance:sync:{job}"

    # -- monitoring ---------------------------------------------------------------------------

    def metrics_totals(self) -> str:
        """Cumulative counters and histogram buckets of every process (hash)."""
        return f"{self.prefix}monitoring:totals"

    def metrics_minute(self, minute: int) -> str:
        """The metric deltas flushed in epoch minute ``minute`` (hash with a TTL)."""
        return f"{self.prefix}monitoring:minute:{minute}"

    def metrics_processes(self) -> str:
        """One JSON record per worker or publisher process (hash)."""
        return f"{self.prefix}monitoring:processes"

    def beat_heartbeat(self) -> str:
        """Beat's heartbeat (string with a TTL)."""
        return f"{self.prefix}monitoring:beat"

    # -- schedules ------------------------------------------------------------------------------

    def schedule_definitions(self) -> str:
        """Hash: schedule id -> its JSON definition."""
        return f"{self.prefix}schedules:defs"

    def schedule_due(self) -> str:
        """Sorted set: schedule id -> ms of its next dispatch (paused ones left out)."""
        return f"{self.prefix}schedules:due"

    def schedule_buffered(self) -> str:
        """Sorted set: ids with a fire kept waiting by ``buffer_one``."""
        return f"{self.prefix}schedules:buffered"

    def schedule_state(self, schedule_id: str) -> str:
        """Hash: next fire, pause, counters, consecutive failures of one schedule."""
        return f"{self.prefix}schedules:state:{schedule_id}"

    def schedule_runs(self, schedule_id: str) -> str:
        """List: the last runs of one schedule with their outcome (bounded)."""
        return f"{self.prefix}schedules:runs:{schedule_id}"

    def schedule_fire(self, schedule_id: str, nominal_ms: int) -> str:
        """String: the claim of one fire (schedule, nominal time)."""
        return f"{self.prefix}schedules:fire:{schedule_id}:{nominal_ms}"

    def schedule_running(self, schedule_id: str) -> str:
        """String: the task id of the schedule's fire that still runs."""
        return f"{self.prefix}schedules:running:{schedule_id}"

    def schedule_leader(self) -> str:
        """String: the token of the beat that leads."""
        return f"{self.prefix}schedules:leader"
