"""printer.layout: the receipt's lines, wrapped by printer columns."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from printer import texts
from printer.glyphs import text_columns
from printer.layout import NO_LINE_START, Gap, Line, Qr, _units, receipt_blocks, wrap
from printer.profile import PrinterProfile
from printer.receipt import Receipt
from tests.printer.fakes import receipt

TEXT = st.text(
    alphabet=st.sampled_from("办件回执评价窗口：，。（）AB12-/ 事项名称居民身份证换领"),
    max_size=120,
)


@given(TEXT, st.integers(min_value=2, max_value=48))
def test_no_line_is_wider_than_the_paper_and_nothing_but_break_spaces_is_lost(
    text: str, width: int
) -> None:
    lines = wrap(text, width)
    assert all(text_columns(line) <= width for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


@given(TEXT)
def test_closing_punctuation_starts_a_line_only_after_a_line_it_cannot_be_taken_from(
    text: str,
) -> None:
    lines = wrap(text, 16)
    for before, line in itertools.pairwise(lines):
        if line[0] in NO_LINE_START:
            assert len(_units(before)) == 1, (before, line)


def test_an_ascii_word_moves_whole_to_the_next_line_and_a_too_long_one_is_cut() -> None:
    assert wrap("业务流水号：4405002026112700001", 24) == ["业务流水号：", "4405002026112700001"]
    assert wrap("x" * 40, 32) == ["x" * 32, "x" * 8]
    assert wrap("1" + "。" * 7 + "）", 16) == ["1", "。" * 7 + "）"]
    assert wrap("1" + "。" * 7 + "）", 15) == ["1" + "。" * 7, "）"]  # no room to take them along
    assert wrap("办理人员：陈晓明（工号：A1023）", 16) == ["办理人员：陈晓明", "（工号：A1023）"]


@pytest.mark.parametrize("paper", ["58mm", "80mm"])
def test_the_receipt_holds_everything_issue_7_asks_in_order(paper: str) -> None:
    made = receipt(3, serials=3)
    blocks = receipt_blocks(made, PrinterProfile(paper=paper))
    text = [b.text for b in blocks if isinstance(b, Line)]
    joined = "\n".join(text)
    wanted = [
        texts.TITLE,
        made.hall,
        made.window,
        made.matter_name,
        texts.SERIALS_FMT.format(count=3),
        *made.serials,
        made.clerk_name,
        made.clerk_id,
        "2026-11-27 10:21",
        texts.PROMPT,
        made.short_code,
    ]
    positions = [joined.find(w) for w in wanted]
    assert -1 not in positions, dict(zip(wanted, positions, strict=True))
    assert positions == sorted(positions)
    assert [b for b in blocks if isinstance(b, Qr)] == [Qr(made.qr_url.encode())]
    assert all(isinstance(b, Line | Gap | Qr) for b in blocks)
    cols = PrinterProfile(paper=paper).columns
    assert all(text_columns(b.text) * b.scale <= cols for b in blocks if isinstance(b, Line))


def test_a_self_service_receipt_has_no_clerk_line() -> None:
    bare = Receipt.from_json(receipt(1).to_json() | {"clerk_name": "", "clerk_id": ""})
    lines = [b.text for b in receipt_blocks(bare, PrinterProfile()) if isinstance(b, Line)]
    assert not any("办理人员" in line for line in lines)
