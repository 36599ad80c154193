"""The exception tree: one root, every class importable from the package."""

from __future__ import annotations

import crawjud_tasks
from crawjud_tasks import errors


def test_every_error_is_exported_from_the_package_and_derives_from_the_root() -> None:
    for name in errors.__all__:
        error = getattr(crawjud_tasks, name)
        assert error is getattr(errors, name)
        assert issubclass(error, errors.CrawjudTasksError)
    assert crawjud_tasks.__all__ == sorted(crawjud_tasks.__all__)


def test_task_failed_error_survives_pickling_and_celery_rebuilding() -> None:
    import pickle

    from celery.utils.serialization import get_pickleable_exception

    from crawjud_tasks import TaskFailedError

    error = TaskFailedError("id-1", "ValueError", "bad court")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.task_id, copy.remote_type, copy.remote_message) == (
        "id-1",
        "ValueError",
        "bad court",
    )
    assert str(copy) == "task id-1 failed: ValueError: bad court"
    assert str(get_pickleable_exception(error)) == str(error)
