"""Renders per second of a shipped mail template, in one process (best of 5).

    python benchmarks/render.py [--template bot_finished] [--locale pt_BR] [--seconds 1]

The issue's target is at least 5,000 renders/s for ``bot_finished`` in pt_BR (subject, HTML
part and text part each time, with the compiled templates cached as in a worker).
"""

from __future__ import annotations

import argparse
import time

from crawjud_tasks._settings import MailSettings
from crawjud_tasks.mail._templates import example_context, render


def renders_per_second(template: str, locale: str, seconds: float) -> float:
    settings = MailSettings()
    context = example_context(template)
    render(settings, template, context, locale)  # compile once, as a worker's first mail does
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        for _ in range(100):
            render(settings, template, context, locale)
        count += 100
        now = time.perf_counter()
    return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", default="bot_finished")
    parser.add_argument("--locale", default="pt_BR")
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    best = max(renders_per_second(args.template, args.locale, args.seconds) for _ in range(5))
    print(f"{args.template} ({args.locale}): {best:,.0f} renders/s (best of 5)")


if __name__ == "__main__":
    main()
