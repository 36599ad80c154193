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
