"""Wrong dispatches: each marked line must fail with the named error of each checker.

A marker is a trailing comment ``E: mypy[code] pyright[rule]``, with a message substring in
backticks after a code where the wording matters. tests/test_typing.py checks that every marker
is hit on its line, and that nothing else is reported.
"""

# Each marker must stay on the line it is about: the formatter leaves these files alone.
# fmt: off

from __future__ import annotations

import typing_contracts as c

lawsuit = c.Lawsuit(number="0001", year=2024)

# A wrong argument type.
c.add.delay("1")  # E: mypy[arg-type `expected "int"`] pyright[reportArgumentType `"a"`]
c.add.si(1, b="2")  # E: mypy[arg-type] pyright[reportArgumentType]
c.check.delay(c.Checked(number="1", status=c.Status.VALID))  # E: mypy[arg-type] pyright[reportArgumentType]
c.publish.delay({"total": 1})  # E: mypy[typeddict-item `"valid"`] pyright[reportArgumentType `"valid" is required`]

# .s(...) is overloaded (complete or partial): the messages are less direct, the error is there.
c.check.s(lawsuit, strict="yes")  # E: mypy[call-overload `No overload variant of "s"`] pyright[reportArgumentType `"strict"`]

# A misspelled keyword.
c.check.delay(lawsuit, strikt=True)  # E: mypy[call-arg `did you mean "strict"`] pyright[reportCallIssue `No parameter named "strikt"`]
c.check.si(lawsuit, strikt=True)  # E: mypy[call-arg] pyright[reportCallIssue]
c.check.s(lawsuit, strikt=True)  # E: mypy[call-overload `did you mean "strict"`] pyright[reportCallIssue]

# A missing argument.
c.prepare.delay(["1"])  # E: mypy[call-arg `Missing positional argument "year"`] pyright[reportCallIssue `"year"`]
c.prepare.si(year=2024)  # E: mypy[call-arg] pyright[reportCallIssue `Argument missing for parameter "numbers"`]
c.add.delay()  # E: mypy[call-arg] pyright[reportCallIssue]

# An extra argument.
c.add.delay(1, 2, 3)  # E: mypy[call-arg `Too many arguments`] pyright[reportCallIssue `Expected 2 positional arguments`]
c.add.s(1, 2, 3)  # E: mypy[call-overload] pyright[reportCallIssue]
c.add.delay(1, c=3)  # E: mypy[call-arg `Unexpected keyword argument "c"`] pyright[reportCallIssue]

# Options passed as the task's arguments: options only go to apply_async, which takes no
# arguments of the task.
c.add.delay(1, countdown=3)  # E: mypy[call-arg `"countdown"`] pyright[reportCallIssue `No parameter named "countdown"`]
c.add.s(1).apply_async(args=(1,))  # E: mypy[call-arg `"args"`] pyright[reportCallIssue `"args"`]
c.add.s(1).apply_async(kwargs={"b": 2})  # E: mypy[call-arg `"kwargs"`] pyright[reportCallIssue `"kwargs"`]
c.add.s(1).apply_async(countdown="3")  # E: mypy[arg-type] pyright[reportArgumentType]
c.add.s(1).apply_async(retries=3)  # E: mypy[call-arg] pyright[reportCallIssue]

# A keyword-only first parameter cannot receive the previous result: no partial signature.
c.label.s()  # E: mypy[call-arg `Missing named argument "text"`] pyright[reportCallIssue `"text"`]

# A partial signature sent with a first argument of the wrong type.
c.add.s(b=2).delay("1")  # E: mypy[arg-type `"delay" of "PartialSig"`] pyright[reportArgumentType `"first"`]
c.check.s().apply_async(c.Checked(number="1", status=c.Status.VALID))  # E: mypy[arg-type] pyright[reportArgumentType]
c.add.s(b=2).delay()  # E: mypy[call-arg] pyright[reportCallIssue]
