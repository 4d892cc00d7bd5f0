"""常用意见: phrases a citizen taps for 其他 on a touch-only pad (art. 11/23).

The list comes from a data file (``config/phrases.toml``, versioned like the reason list); a tap
appends a phrase to the 其他 text, a second tap takes it out again.  The text stays the one
``comment`` of the rating, so the 150-character cap and the identity check apply as to typed text.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from evaluator.rules.errors import DataFileError
from evaluator.rules.request import identity_in, unshowable
from evaluator.rules.shipped import read_data_file, shipped_file

log = logging.getLogger(__name__)

#: Separates phrases inside the 其他 text.
SEPARATOR = "；"
#: Longest phrase, in columns (a hanzi or other wide character is two, a letter one): ten hanzi or
#: twenty letters make a chip of about the same width on the reason screen.
PHRASE_MAX = 20
#: Most phrases a file may list (they must all fit the reason screen at 800×480).
PHRASES_MAX = 12


@dataclass(frozen=True)
class PhraseList:
    """The phrases in force, in file order."""

    version: str
    phrases: tuple[str, ...]
    problem: str = ""
    """Why no phrases are shown (the file in use is broken); ``""`` when it loaded."""


def default_phrases_path(language: str = "zh") -> Path:
    """The shipped list for the display ``language``: ``config/phrases.toml`` (Chinese) or
    ``config/phrases_en.toml`` (English), from the checkout or the installed package data."""
    return shipped_file("phrases.toml" if language == "zh" else f"phrases_{language}.toml")


def columns(text: str) -> int:
    """Display width of ``text``: 2 for each wide or full-width character (hanzi, "；"), else 1."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


@functools.cache
def shipped_phrases(path: Path | None = None) -> PhraseList:
    """The list in force (default: the shipped one), read once per process.

    A broken file gives no phrases, with its problems logged once: the citizen can still type or
    pick a reason, and a rating screen never stops on a data file.
    """
    try:
        return load_phrases(path or default_phrases_path())
    except DataFileError as exc:
        log.error("no 常用意见 shown: %s", exc)
        return PhraseList("", (), str(exc))


def load_phrases(path: Path | None = None) -> PhraseList:
    """Load and validate a phrase file; ``DataFileError`` listing every problem otherwise."""
    path = path or default_phrases_path()
    data, entries = read_data_file(path, "phrase list", "phrase")
    problems: list[str] = []
    if len(entries) > PHRASES_MAX:
        problems.append(f"{path}: {len(entries)} phrases; at most {PHRASES_MAX} fit the screen")
    phrases: list[str] = []
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: phrase #{i}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a table")
            continue
        unknown = set(entry) - {"text"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        raw = entry.get("text", "")
        text = raw.strip() if isinstance(raw, str) else ""
        if not text:
            problems.append(f"{where}: empty text")
            continue
        if columns(text) > PHRASE_MAX:
            problems.append(
                f"{where}: {columns(text)} columns; at most {PHRASE_MAX} "
                f"({PHRASE_MAX // 2} hanzi or {PHRASE_MAX} letters)"
            )
        if SEPARATOR in text or ";" in text:
            problems.append(f"{where}: holds {SEPARATOR!r} or ';' (they separate phrases)")
        bad = unshowable(text)  # the rule every text the pad shows follows
        if bad:
            problems.append(f"{where}: holds {bad}, a character the pad cannot show")
        kind = identity_in(text)
        if kind:
            problems.append(f"{where}: holds a {kind}; a phrase never names a citizen")
        if text in phrases:
            problems.append(f"{where}: duplicate {text!r}")
        phrases.append(text)
    for i, text in enumerate(phrases, start=1):
        for other in phrases:
            if other != text and text in other:
                problems.append(
                    f"{path}: phrase #{i} {text!r} is part of {other!r} (a tap would mark both)"
                )
    if problems:
        raise DataFileError("\n".join(problems))
    return PhraseList(str(data.get("version", "")), tuple(phrases))


def _segments(comment: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each part of the 其他 text between separators, spaces trimmed."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in [*_SEPARATORS.finditer(comment), None]:
        end = match.start() if match else len(comment)
        part = comment[start:end]
        lead = len(part) - len(part.lstrip())
        spans.append((start + lead, start + len(part.rstrip())))
        start = match.end() if match else end
    return spans


def has_phrase(comment: str, phrase: str) -> bool:
    """True when ``phrase`` is one whole part of the 其他 text (tapped, or typed on its own):
    "等候时间太长了" or "Long waiting…" does not hold "等候时间太长" or "Long wait"."""
    return bool(phrase) and any(comment[a:b] == phrase for a, b in _segments(comment))


def toggle_phrase(comment: str, phrase: str, limit: int) -> str:
    """The 其他 text after a tap on ``phrase``.

    A whole part of the text: taken out with one separator next to it (nothing else the
    citizen typed is touched).  Not: appended after a separator, or the text unchanged when
    the whole phrase would not fit in ``limit`` characters (a phrase is never cut).
    """
    for a, b in _segments(comment):
        if comment[a:b] == phrase and phrase:
            before, after = comment[:a], comment[b:]
            if _SEPARATORS.fullmatch(before.rstrip()[-1:]):
                before = before.rstrip()[:-1]
            elif _SEPARATORS.fullmatch(after.lstrip()[:1]):
                after = after.lstrip()[1:]
            return before + after
    head = comment.rstrip()
    joined = head + (SEPARATOR if head and not _ends_a_clause(head) else "") + phrase
    return joined if len(joined) <= limit else comment


def fits(comment: str, phrase: str, limit: int) -> bool:
    """True when a tap on ``phrase`` changes the text (it is in it, or it fits)."""
    return toggle_phrase(comment, phrase, limit) != comment


_SEPARATORS = re.compile(r"[；;]")
_CLAUSE_END = re.compile(r"[；;，,。.！!？?、]$")


def _ends_a_clause(text: str) -> bool:
    return bool(_CLAUSE_END.search(text))
