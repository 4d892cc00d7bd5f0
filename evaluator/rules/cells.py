"""Spreadsheet cells: what a spreadsheet would run as a formula (standard library only).

Both CSV writers (the pad's ``evaluator ratings --format csv`` and the receiver's export) quote
such text with a leading apostrophe, which shows the text as typed."""

from __future__ import annotations

import unicodedata

#: What a spreadsheet takes as the start of a formula (compared after NFKC: ＝ ＋ － ＠ too).
FORMULA_STARTS = ("=", "+", "-", "@")


def formula_like(text: str) -> bool:
    """Whether a spreadsheet could read ``text`` as a formula: it starts with a tab or a
    return, or its first visible character is ``= + - @`` or a full-width (NFKC) look-alike,
    after any whitespace, newlines, controls or zero-width characters (issue 16: ``\\n=``,
    `` =`` and ``＝`` reached the sheet as text that Excel and LibreOffice run)."""
    if text[:1] in ("\t", "\r"):
        return True
    for char in text:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
            continue
        return unicodedata.normalize("NFKC", char).startswith(FORMULA_STARTS)
    return False


def safe_cell(value: object) -> object:
    """``value`` as a CSV cell: formula-like text with a leading apostrophe, ``None`` empty,
    anything else (numbers stay numbers: only text is ever a formula) unchanged."""
    if isinstance(value, str) and formula_like(value):
        return "'" + value
    return "" if value is None else value
