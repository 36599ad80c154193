"""The pytest plugin in a host's own suite: its workers use the test's settings, its fixtures stay
inside the test's folders, and a typed contract is tested with one fixture."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow


def _files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.fixture
def sentinel_home(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """HOME and the XDG folders of the inner run: anything written there left the test's folders.

    The inner run's temporary files go to a folder of this test (``TMPDIR``)."""
    home = tmp_path_factory.mktemp("sentinel-home")
    for name in ("HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(home))
    monkeypatch.setenv("TMPDIR", str(tmp_path_factory.mktemp("inner-tmp")))
    for name in list(__import__("os").environ):
        if name.startswith("CRAWJUD_TASKS_"):
            monkeypatch.delenv(name)
    return home


def test_a_host_worker_process_uses_the_test_settings_and_stays_in_the_test_folders(
    pytester: pytest.Pytester, sentinel_home: Path
) -> None:
    # The host's module makes its app from the environment, as a deployed host does: with no
    # settings it would start the embedded Redis in the user's data folder.
    pytester.makepyfile(
        hostapp="""
        from crawjud_tasks import create_app

        app = create_app()
        """,
        test_host=textwrap.dedent(
            """
            from crawjud_tasks import ping

            def test_host_worker(crawjud_app, crawjud_worker_process):
                worker = crawjud_worker_process(app_spec="hostapp:app")
                assert ping(crawjud_app, timeout=20).hostname == worker.nodename
            """
        ),
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"
    )
    result.assert_outcomes(passed=1)
    assert _files_under(sentinel_home) == []


def test_a_contract_implemented_in_the_test_body_runs_on_the_thread_worker_with_no_warning(
    pytester: pytest.Pytester, sentinel_home: Path
) -> None:
    pytester.makepyfile(
        test_contract=textwrap.dedent(
            """
            import dataclasses

            from crawjud_tasks import task_contract


            @dataclasses.dataclass(frozen=True)
            class Total:
                value: int


            @task_contract("billing.add")
            def add(a: int, b: int) -> Total:
                raise NotImplementedError


            def test_add(crawjud_app, crawjud_worker):
                @add.implement(crawjud_app)
                def _add(a: int, b: int) -> Total:
                    return Total(a + b)

                assert add.using(crawjud_app).delay(2, 3).get(timeout=20) == Total(5)
            """
        ),
    )
    # Warnings are errors in many host suites: the worker thread's every stored result would
    # fail on redis-py's SETEX deprecation (and the test time out) if the plugin did not filter it.
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=0)
    assert _files_under(sentinel_home) == []
