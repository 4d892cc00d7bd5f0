"""Text fitting and hit targets (pure functions of a font; no window needed)."""

from __future__ import annotations

from collections.abc import Iterator

import pygame
import pytest

from evaluator.rules.levels import Level
from kiosk.fonts import find_cjk_font
from kiosk.layout import Drawn, Layout, Target, ellipsize, ellipsize_head, wrap_all, wrap_lines
from kiosk.view import Back, PressLevel, Submit


@pytest.fixture
def font() -> Iterator[pygame.font.Font]:
    pygame.font.init()
    yield pygame.font.Font(str(find_cjk_font(None)), 24)


def test_ellipsize_and_wrap_fit_the_width(font: pygame.font.Font) -> None:
    text = "在线预约办理后到实体大厅重复取号排队" * 4
    short = ellipsize(font, text, 200)
    assert short.endswith("…") and font.size(short)[0] <= 200
    assert ellipsize(font, "满意", 200) == "满意"
    head = ellipsize_head(font, text, 200)
    assert head.startswith("…") and head.endswith("排队") and font.size(head)[0] <= 200
    lines = wrap_lines(font, text, 300, 3)
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(font.size(line)[0] <= 300 for line in lines)
    assert wrap_lines(font, "短句", 300, 3) == ["短句"]


def test_nothing_fits_in_no_room(font: pygame.font.Font) -> None:
    assert ellipsize(font, "满意", 0) == ""
    assert ellipsize_head(font, "满意", 3) == ""
    assert wrap_lines(font, "满意", 300, 0) == []


def test_a_disabled_target_hits_nothing_and_the_topmost_target_wins() -> None:
    layout = Layout(
        "reasons",
        [
            Target(pygame.Rect(0, 0, 100, 100), Back()),
            Target(pygame.Rect(50, 50, 100, 100), Submit(), enabled=False),
            Target(pygame.Rect(200, 0, 10, 10), PressLevel(Level.SATISFIED)),
        ],
    )
    assert layout.hit((10, 10)) == Back()
    assert layout.hit((60, 60)) is None  # the disabled 提交 lies on top
    assert layout.hit((205, 5)) == PressLevel(Level.SATISFIED)
    assert layout.hit((500, 500)) is None
    found = layout.find(Submit())
    assert found is not None and not found.enabled
    assert layout.find(PressLevel(Level.VERY_SATISFIED)) is None


def test_wrap_all_never_shortens_and_keeps_latin_words_whole(font: pygame.font.Font) -> None:
    text = "Please do not enter an ID card or a mobile number"
    lines = wrap_all(font, text, 200)
    assert lines is not None and len(lines) > 1
    assert " ".join(lines) == text  # every word, whole, in order
    assert all(font.size(line)[0] <= 200 for line in lines)
    hanzi = "在线预约办理后到实体大厅重复取号排队"
    lines = wrap_all(font, hanzi, 100)
    assert lines is not None and "".join(lines) == hanzi
    assert wrap_all(font, "满意", 5) is None  # not even one character fits


def test_a_drawn_text_knows_when_it_was_shortened() -> None:
    rect = pygame.Rect(0, 0, 10, 10)
    whole = Drawn("满意", "满意", rect, rect, (0, 0, 0), rect, fixed=True)
    cut = Drawn("非常满意", "非常…", rect, rect, (0, 0, 0), rect)
    assert not whole.shortened and cut.shortened
