"""常用意见 for 其他 (art. 11/23): the shipped list, its validation, and what a tap does."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.rules.errors import DataFileError
from evaluator.rules.phrases import (
    PHRASE_MAX,
    PHRASES_MAX,
    SEPARATOR,
    columns,
    default_phrases_path,
    fits,
    has_phrase,
    load_phrases,
    shipped_phrases,
    toggle_phrase,
)
from evaluator.rules.reasons import COMMENT_MAX
from evaluator.rules.request import identity_in


@pytest.mark.parametrize(
    ("language", "sample"), [("zh", "系统故障办不了"), ("en", "System failure")]
)
def test_the_shipped_lists_are_short_valid_and_name_no_one(language: str, sample: str) -> None:
    shipped = load_phrases(default_phrases_path(language))
    assert shipped == shipped_phrases(default_phrases_path(language))
    assert shipped.version
    assert 8 <= len(shipped.phrases) <= PHRASES_MAX
    assert sample in shipped.phrases
    for text in shipped.phrases:
        assert 0 < columns(text) <= PHRASE_MAX and identity_in(text) is None
    # Every phrase fits the comment together with all the others.
    comment = ""
    for text in shipped.phrases:
        comment = toggle_phrase(comment, text, COMMENT_MAX)
    assert all(has_phrase(comment, text) for text in shipped.phrases)


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "phrases.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('version = "x"\n', "no [[phrase]]"),
        ('[[phrase]]\ntext = ""\n', "empty text"),
        ('[[phrase]]\ntext = "甲"\ncode = 1\n', "unknown keys"),
        (f'[[phrase]]\ntext = "{"长" * (PHRASE_MAX // 2 + 1)}"\n', "22 columns; at most 20"),
        (f'[[phrase]]\ntext = "{"x" * (PHRASE_MAX + 1)}"\n', "21 columns; at most 20"),
        ('[[phrase]]\ntext = "甲；乙"\n', "they separate phrases"),
        ('[[phrase]]\ntext = "A;B"\n', "they separate phrases"),
        ('[[phrase]]\ntext = "甲\\u0007乙"\n', "0007, a character the pad cannot show"),
        ('[[phrase]]\ntext = "甲\\u200e乙"\n', "200E, a character the pad cannot show"),
        ('[[phrase]]\ntext = "请回电13800138000"\n', "mobile phone"),
        ('[[phrase]]\ntext = "110101199003074573"\n', "resident ID"),
        ('[[phrase]]\ntext = "太慢"\n[[phrase]]\ntext = "太慢"\n', "duplicate"),
        ('[[phrase]]\ntext = "时间太长"\n[[phrase]]\ntext = "等候时间太长"\n', "part of"),
        ("".join(f'[[phrase]]\ntext = "意见{n}"\n' for n in range(PHRASES_MAX + 1)), "at most"),
        ("[[phrase\n", "not valid TOML"),
    ],
)
def test_a_bad_file_is_refused_with_the_problem(tmp_path: Path, body: str, problem: str) -> None:
    with pytest.raises(DataFileError, match=problem.replace("[", r"\[")):
        load_phrases(_write(tmp_path, body))


def test_a_broken_file_in_use_shows_no_phrases_and_says_why(tmp_path: Path) -> None:
    """A rating screen never stops on a data file: no phrases, the problem kept (and logged)."""
    path = _write(tmp_path, '[[phrase]]\ntext = "请回电13800138000"\n')
    broken = shipped_phrases(path)
    assert broken.phrases == () and "mobile phone" in broken.problem
    assert shipped_phrases().problem == ""


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot read phrase list"):
        load_phrases(tmp_path / "absent.toml")


def test_a_tap_appends_with_a_separator_and_a_second_tap_takes_it_out() -> None:
    one = toggle_phrase("", "等候时间太长", COMMENT_MAX)
    assert one == "等候时间太长"
    two = toggle_phrase(one, "系统故障办不了", COMMENT_MAX)
    assert two == f"等候时间太长{SEPARATOR}系统故障办不了"
    three = toggle_phrase(two, "叫号秩序混乱", COMMENT_MAX)
    # Out again from the start, the middle and the end: one separator goes with it.
    assert toggle_phrase(three, "等候时间太长", COMMENT_MAX) == "系统故障办不了；叫号秩序混乱"
    assert toggle_phrase(three, "系统故障办不了", COMMENT_MAX) == "等候时间太长；叫号秩序混乱"
    assert toggle_phrase(three, "叫号秩序混乱", COMMENT_MAX) == two
    assert toggle_phrase(one, "等候时间太长", COMMENT_MAX) == ""


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("人太多", "人太多；等候时间太长"),
        ("人太多。", "人太多。等候时间太长"),  # already ends a clause: no separator added
        ("人太多，  ", "人太多，等候时间太长"),
        ("   ", "等候时间太长"),
    ],
)
def test_a_phrase_joins_typed_text(typed: str, expected: str) -> None:
    assert toggle_phrase(typed, "等候时间太长", COMMENT_MAX) == expected


@pytest.mark.parametrize("room", [0, 1, 5, 6])
def test_a_phrase_that_would_pass_the_cap_is_not_cut(room: int) -> None:
    """The cap (150) holds for every remaining room; a phrase goes in whole or not at all."""
    phrase = "等候时间太长"  # 6 characters; with the separator it needs 7
    typed = "字" * (COMMENT_MAX - room)
    after = toggle_phrase(typed, phrase, COMMENT_MAX)
    assert len(after) <= COMMENT_MAX
    assert after == typed and not fits(typed, phrase, COMMENT_MAX)
    full = "字" * (COMMENT_MAX - 7) + "；" + phrase  # at the cap, the phrase one part of it
    assert fits(full, phrase, COMMENT_MAX)  # taking out always works


def test_a_phrase_fits_exactly_at_the_cap() -> None:
    typed = "字" * (COMMENT_MAX - 7)
    assert toggle_phrase(typed, "等候时间太长", COMMENT_MAX) == typed + "；等候时间太长"


def test_columns_count_wide_characters_twice() -> None:
    assert columns("等候时间太长") == 12
    assert columns("Long wait") == 9
    assert columns("等候long；") == 4 + 4 + 2
    assert columns("\uff21") == 2  # a full-width Latin letter is wide too


@pytest.mark.parametrize(
    ("typed", "phrase"),
    [
        ("Long waiting at window 3", "Long wait"),
        ("等候时间太长了，叫号屏看不清", "等候时间太长"),
        ("叫号秩序混乱不堪", "叫号秩序混乱"),
    ],
)
def test_typed_text_that_merely_contains_a_phrase_is_never_cut(typed: str, phrase: str) -> None:
    """A review found "Long waiting at window 3" stored as "ing at window 3" after a tap on
    "Long wait": only a whole part of the text is the phrase; a tap appends it instead."""
    assert not has_phrase(typed, phrase)
    tapped = toggle_phrase(typed, phrase, COMMENT_MAX)
    assert tapped == f"{typed}；{phrase}"
    assert toggle_phrase(tapped, phrase, COMMENT_MAX) == typed  # and out again, typed intact


def test_a_phrase_is_a_part_between_separators_of_either_width() -> None:
    assert has_phrase("甲；等候时间太长；乙", "等候时间太长")
    assert has_phrase("甲; 等候时间太长 ;乙", "等候时间太长")
    assert toggle_phrase("甲; 等候时间太长 ;乙", "等候时间太长", COMMENT_MAX) == "甲 ;乙"


def test_a_phrase_may_hold_a_full_width_space() -> None:
    """The same rule as every text the pad shows (``unshowable``): "　" is shown, not refused."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phrases.toml"
        path.write_text('[[phrase]]\ntext = "等候　太久"\n', encoding="utf-8")
        assert load_phrases(path).phrases == ("等候　太久",)
