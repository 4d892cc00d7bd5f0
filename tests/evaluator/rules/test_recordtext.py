"""The receiver's text check (evaluator.rules.recordtext) is the pad's rule, only faster."""

from __future__ import annotations

import sys

from evaluator.rules.recordtext import shown_text_problem
from evaluator.rules.request import unshowable


def test_the_fast_path_never_passes_a_character_the_pad_refuses() -> None:
    """``str.isprintable()`` lets the check skip ``unshowable()``; every code point it calls
    printable must be one the pad shows, or the receiver would store what the pad refuses."""
    passed = [c for c in map(chr, range(sys.maxunicode + 1)) if c.isprintable() and unshowable(c)]
    assert passed == []


def test_only_the_texts_a_person_reads_are_checked() -> None:
    record = {"clerk": {"id": "A1", "name": "陈晓明"}, "cases": [{"matter_name": "登记"}],
              "message": "line one\nline two", "previous": {"problem": "x\ny"}}  # fmt: skip
    assert shown_text_problem(record) is None
    record["cases"].append({"matter_name": "登\u202e记"})
    assert str(shown_text_problem(record)).startswith("cases[1].matter_name holds U+202E, ")
    assert shown_text_problem({"clerk": None, "terminal": "T\t1"}) is not None
    why = shown_text_problem({"agencies": ["甲", 3, "乙\x7f"]})
    assert str(why).startswith("agencies[2] holds U+007F")
