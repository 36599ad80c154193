"""``python -m crawjud_tasks``: the ``crawjud-tasks`` command line."""

from crawjud_tasks._cli import main

main()
