"""Workflows whose steps do not fit together (markers as in neg_dispatch.py).

A failed ``a | b`` has no type, so pyright strict also reports the variable it is assigned to.
"""

# Each marker must stay on the line it is about: the formatter leaves these files alone.
# fmt: off

from __future__ import annotations

import typing_contracts as c

from crawjud_tasks import chord, group, map_chunks, pipeline

lawsuit = c.Lawsuit(number="0001", year=2024)

# A step whose input is not the previous step's result: list[Lawsuit] into list[Checked].
piped = c.prepare.s(["1"], 2024) | c.summarize.s()  # E: mypy[operator `Unsupported operand types for |`] pyright[reportOperatorIssue] pyright[reportUnknownVariableType]
c.prepare.s(["1"], 2024).then(c.summarize.s())  # E: mypy[arg-type `expected "PartialSig[list[Lawsuit]`] pyright[reportArgumentType `"list[Checked]" is not a supertype of "list[Lawsuit]"`]
pipeline(c.prepare.s(["1"], 2024), c.summarize.s())  # E: mypy[misc `Cannot infer value of type parameter "T1" of "pipeline"`] pyright[reportArgumentType `parameter "s2"`]
pipeline(c.prepare.s(["1"], 2024), c.check_all.s(), c.check_all.s())  # E: mypy[misc] pyright[reportArgumentType `parameter "s3"`]
partial = c.add.s() | c.status.s()  # E: mypy[operator] pyright[reportOperatorIssue] pyright[reportUnknownVariableType]
c.check_all.s().then(c.check_all.s())  # E: mypy[arg-type] pyright[reportArgumentType]

# A complete .s(...) after another step would receive the previous result as an extra argument.
middle = c.add.s(1) | c.add.s(2) | c.add.s()  # E: mypy[operator `No overload variant of "__or__" of "Sig" matches argument type "Sig[int]"`] pyright[reportOperatorIssue] pyright[reportUnknownVariableType]
c.add.s(1).then(c.add.s(2))  # E: mypy[arg-type] pyright[reportArgumentType `"Sig[int]" is not assignable to "PartialSig[int, S@then]"`]
pipeline(c.add.s(1), c.add.s(2))  # E: mypy[call-overload `No overload variant of "pipeline"`] pyright[reportArgumentType]

# A pipeline starts with a complete signature, and has six steps at most (a | b | ... has no
# limit).
pipeline(c.add.s(), c.add.s())  # E: mypy[call-overload] pyright[reportArgumentType]
pipeline(c.add.s(1), c.add.s(), c.add.s(), c.add.s(), c.add.s(), c.add.s(), c.add.s())  # E: mypy[call-overload] pyright[reportCallIssue `No overloads for "pipeline"`]

# A chord body that does not take the list of the header's results.
chord([c.add.s(1), c.add.s(2)], c.summarize.s())  # E: mypy[misc `Cannot infer value of type parameter "R" of "chord"`] pyright[reportArgumentType `parameter "body"`]
chord([c.check.s(lawsuit)], c.check_all.s())  # E: mypy[misc] pyright[reportArgumentType]
chord([c.add.s()], c.total.s())  # E: mypy[list-item] pyright[reportArgumentType `parameter "header"`]
chord([c.add.s(1)], c.total.s(), on_error=c.add.s())  # E: mypy[arg-type `"on_error"`] pyright[reportArgumentType]

# A group with mixed results is a list of the union: not an error by itself, but no body that
# takes list[int] accepts it.
chord([c.add.s(1), c.status.s("1")], c.total.s())  # E: mypy[misc] pyright[reportArgumentType `"Status | int" is not the same as "int"`]
mixed = group([c.add.s(1), c.status.s("1")]) | c.total.s()  # E: mypy[operator] pyright[reportOperatorIssue] pyright[reportUnknownVariableType]
group([c.add.s(1), c.status.s("1")]).then(c.total.s())  # E: mypy[arg-type] pyright[reportArgumentType]

# map_chunks: items of the wrong type, a task that takes more than the item, or a function that
# is not a contract (it would not run on a worker).
map_chunks(c.add.s(b=1), ["1", "2"], 10)  # E: mypy[misc `Cannot infer value of type parameter "A" of "map_chunks"`] pyright[reportArgumentType `parameter "items"`]
map_chunks(c.check, [lawsuit, "0002"], 10)  # E: mypy[misc] pyright[reportArgumentType `"Literal['0002']" is not assignable to "Lawsuit"`]
map_chunks(c.prepare, [["1"]], 10)  # E: mypy[arg-type] pyright[reportArgumentType `Extra parameter "year"`]
map_chunks(c.label, ["x"], 10)  # E: mypy[arg-type] pyright[reportArgumentType]
map_chunks(len, [[1], [2]], 10)  # E: mypy[arg-type] pyright[reportArgumentType `"codec" is not present`]
map_chunks(c.add.s(1), [1, 2], 10)  # E: mypy[arg-type] pyright[reportArgumentType]
map_chunks(c.add.s(), range(3), "10")  # E: mypy[arg-type] pyright[reportArgumentType]
