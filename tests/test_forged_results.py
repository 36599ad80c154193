"""Results are data: a failure record that a forger wrote into the result backend never makes a
host raise anything but one of the library's errors (issue 13, item 9)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from celery import Celery

from crawjud_tasks._state import app_state
from crawjud_tasks.errors import CrawjudTasksError, InvalidResultError, TaskFailedError
from tests.examples import contracts as c


def forge(app: Celery, result: Any, status: str = "FAILURE") -> str:
    """Write a task-meta record straight into the result backend; return its task id."""
    task_id = str(uuid.uuid4())
    meta = {
        "status": status,
        "result": result,
        "traceback": None,
        "children": [],
        "date_done": "2026-12-03T10:00:00",
        "task_id": task_id,
    }
    key = f"{app_state(app).settings.key_prefix}celery-task-meta-{task_id}"
    app_state(app).redis.set(key, json.dumps(meta))
    return task_id


@pytest.mark.parametrize(
    "exc_type", ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "BaseException"]
)
def test_a_forged_base_exception_is_a_task_failure(crawjud_app: Celery, exc_type: str) -> None:
    task_id = forge(
        crawjud_app, {"exc_type": exc_type, "exc_module": "builtins", "exc_message": ["bye"]}
    )
    handle = c.add.result(task_id, app=crawjud_app)
    with pytest.raises(TaskFailedError) as info:
        handle.get(timeout=5)
    assert info.value.remote_type == exc_type
    assert handle.failed()
    assert handle.state == "FAILURE"


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (["not", "a", "mapping"], InvalidResultError),
        ({"exc_message": ["no type"]}, InvalidResultError),
        (
            {"exc_type": "system", "exc_module": "os", "exc_message": ["echo pwned"]},
            InvalidResultError,
        ),
        ({"exc_type": "Nope", "exc_module": "builtins", "exc_message": "x"}, TaskFailedError),
    ],
    ids=["a-list", "no-exc-type", "not-an-exception-class", "unknown-type"],
)
def test_a_malformed_failure_record_gives_a_library_error(
    crawjud_app: Celery, result: Any, error: type[CrawjudTasksError]
) -> None:
    handle = c.add.result(forge(crawjud_app, result), app=crawjud_app)
    with pytest.raises(error):
        handle.get(timeout=5)
    if error is InvalidResultError:
        # Celery decodes the record on every read: each one says what is wrong, in our terms.
        for read in (lambda: handle.state, handle.ready, handle.failed, handle.successful):
            with pytest.raises(InvalidResultError, match="no record a worker wrote"):
                read()
    else:
        assert handle.failed()


def test_a_record_that_is_not_json_gives_a_library_error(crawjud_app: Celery) -> None:
    task_id = str(uuid.uuid4())
    key = f"{app_state(crawjud_app).settings.key_prefix}celery-task-meta-{task_id}"
    app_state(crawjud_app).redis.set(key, b"\x80not json")
    handle = c.add.result(task_id, app=crawjud_app)
    with pytest.raises(InvalidResultError):
        handle.get(timeout=5)
    with pytest.raises(InvalidResultError):
        _ = handle.state


def test_a_stored_redis_error_is_the_tasks_failure_not_an_unreachable_backend(
    crawjud_app: Celery,
) -> None:
    """A task that failed with redis-py's ConnectionError (its own Redis was down) failed; the
    result backend that says so is up (issue 13, item 3)."""
    record = {
        "exc_type": "ConnectionError",
        "exc_module": "redis.exceptions",
        "exc_message": ["Error 111 connecting to the task's own Redis"],
    }
    handle = c.add.result(forge(crawjud_app, record), app=crawjud_app)
    with pytest.raises(TaskFailedError) as info:
        handle.get(timeout=5)
    assert info.value.remote_type == "redis.exceptions.ConnectionError"
    assert handle.failed()
