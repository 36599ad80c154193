"""Implementations that do not fit their contracts (markers as in neg_dispatch.py).

Both checkers report on the decorator's line: the implementation is the decorator's argument.
"""

# Each marker must stay on the line it is about: the formatter leaves these files alone.
# fmt: off

from __future__ import annotations

import typing_contracts as c

app = c.app


@c.add.implement(app)  # E: mypy[arg-type] pyright[reportArgumentType `Parameter 1: type "int" is incompatible with type "str"`]
def wrong_parameter_type(a: str, b: int = 0) -> int:
    return len(a) + b


@c.add.implement(app)  # E: mypy[arg-type `def wrong_name(x: int`] pyright[reportArgumentType `Parameter name mismatch: "a" versus "x"`]
def wrong_name(x: int, b: int = 0) -> int:
    return x + b


@c.add.implement(app)  # E: mypy[arg-type `expected "Callable[[int, int], int]"`] pyright[reportArgumentType `Function return type "str" is incompatible with type "int"`]
def wrong_return_type(a: int, b: int = 0) -> str:
    return str(a + b)


@c.add.implement(app)  # E: mypy[arg-type] pyright[reportArgumentType `expected 2 but received 1`]
def missing_parameter(a: int) -> int:
    return a


@c.add.implement(app)  # E: mypy[arg-type] pyright[reportArgumentType `Parameter "b" is missing default argument`]
def dropped_default(a: int, b: int) -> int:
    return a + b


@c.check.implement(app)  # E: mypy[arg-type] pyright[reportArgumentType `Parameter "strict" is missing default argument`]
def dropped_keyword_default(lawsuit: c.Lawsuit, *, strict: bool) -> c.Checked:
    return c.Checked(number=lawsuit.number, status=c.Status.VALID)


@c.label.implement(app)  # E: mypy[arg-type] pyright[reportArgumentType]
def positional_only(text: str, /) -> str:
    return text


@c.record.implement(app)  # E: mypy[arg-type] pyright[reportArgumentType]
def extra_required_parameter(marker: str, level: int) -> None:
    print(marker, level)


# implement_bound passes the Celery task first: an implementation without it does not fit.
@c.add.implement_bound(app)  # E: mypy[arg-type `expected "Callable[[Any, int, int], int]"`] pyright[reportArgumentType `expected 3 but received 2`]
def bound_without_task(a: int, b: int = 0) -> int:
    return a + b


# ... and implement does not pass it.
@c.add.implement(app)  # E: mypy[arg-type] pyright[reportArgumentType]
def unbound_with_task(task: object, a: int, b: int = 0) -> int:
    return a + b


# Implementation options have types, and there is no catch-all for unknown ones.
@c.add.implement(app, time_limit="60")  # E: mypy[arg-type] pyright[reportArgumentType]
def time_limit_as_text(a: int, b: int = 0) -> int:
    return a + b


# pyright strict also says the failed decorator leaves the function untyped.
@c.add.implement(app, max_retries=3)  # E: mypy[call-arg `"max_retries"`] pyright[reportCallIssue] pyright[reportUntypedFunctionDecorator]
def unknown_option(a: int, b: int = 0) -> int:
    return a + b
