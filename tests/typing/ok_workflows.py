"""Workflows: every chain spelling, groups, chords and chunked maps infer the final type."""

from __future__ import annotations

import typing_contracts as c
from typing_extensions import assert_type

from crawjud_tasks import PartialSig, Sig, TypedResult, chord, group, map_chunks, pipeline

lawsuits = [c.Lawsuit(number="0001", year=2024), c.Lawsuit(number="0002", year=2024)]

# The three chain spellings.
flow = pipeline(c.prepare.s(["1"], 2024), c.check_all.s(), c.summarize.s())
assert_type(flow, Sig[c.Summary])
assert_type(flow.delay().get(), c.Summary)
piped = c.prepare.s(["1"], 2024) | c.check_all.s() | c.summarize.s()
assert_type(piped, Sig[c.Summary])
chained = c.prepare.s(["1"], 2024).then(c.check_all.s()).then(c.summarize.s())
assert_type(chained, Sig[c.Summary])
assert_type(pipeline(c.add.s(1)), Sig[int])
six = pipeline(c.add.s(1), c.add.s(), c.add.s(b=2), c.add.s(), c.add.s(), c.add.s())
assert_type(six, Sig[int])
assert_type(six.apply_async(countdown=1, queue="crawjud"), TypedResult[int])

# Options of the next step are keywords; an immutable step ignores the previous result.
assert_type(c.add.s(1, 2) | c.add.s(b=10) | c.add.s(b=100), Sig[int])
assert_type(c.add.s(1) | c.status.si("1"), Sig[c.Status])
assert_type(c.check.s(lawsuits[0]) | c.record.si("checked"), Sig[None])

# Partial signatures chain into a partial signature.
assert_type(c.add.s() | c.add.s(b=1), PartialSig[int, int])
assert_type(c.check_all.s().then(c.summarize.s()), PartialSig[list[c.Lawsuit], c.Summary])
assert_type((c.add.s() | c.add.s()).delay(1), TypedResult[int])

# A group gives the list of its members' results; a group of partials is partial.
assert_type(group([c.add.s(1), c.add.s(2, b=3)]), Sig[list[int]])
assert_type(group(c.check.s(each) for each in lawsuits), Sig[list[c.Checked]])
assert_type(group([c.add.s(1)]).delay().get(), list[int])
assert_type(group([c.add.s(b=10), c.add.s(b=20)]), PartialSig[int, list[int]])
assert_type(c.add.s(1) | group([c.add.s(b=10), c.add.s()]) | c.total.s(), Sig[int])

# A chord runs its header in parallel, then its body with the list of their results.
header = [c.check.s(each) for each in lawsuits]
assert_type(chord(header, c.summarize.s()), Sig[c.Summary])
assert_type(chord([c.add.s(1), c.add.s(2)], c.total.s()), Sig[int])
assert_type(chord(header, c.summarize.s(), on_error=c.record.s()), Sig[c.Summary])
assert_type(group(header) | c.summarize.s(), Sig[c.Summary])  # the same, spelled as a chain

# map_chunks: a partial signature or a contract that takes one argument.
assert_type(map_chunks(c.add.s(b=1000), range(25), 10), Sig[list[int]])
assert_type(map_chunks(c.add, range(25), 10), Sig[list[int]])
assert_type(map_chunks(c.check.s(strict=True), lawsuits, 1), Sig[list[c.Checked]])
assert_type(map_chunks(c.check, lawsuits, 1), Sig[list[c.Checked]])
assert_type(map_chunks(c.total.using(c.app), [[1, 2], [3]], 1), Sig[list[int]])
assert_type(map_chunks(c.add, range(25), 10).then(c.total.s()), Sig[int])
