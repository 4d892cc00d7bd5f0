"""CJK font lookup: real font files, real glyph rendering."""

from __future__ import annotations

import os
from pathlib import Path

import pygame
import pytest

from evaluator.rules.errors import FontError
from kiosk import fonts

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def default_font_path() -> Path:
    """pygame's bundled freesansbold.ttf: Latin only, no hanzi."""
    return Path(os.path.dirname(pygame.__file__)) / pygame.font.get_default_font()


def test_finds_the_installed_wqy_font() -> None:
    assert WQY.is_file(), "fonts-wqy-microhei must be installed for these tests"
    assert fonts.find_cjk_font(None) == WQY


def test_configured_font_is_used_and_checked() -> None:
    assert fonts.find_cjk_font(WQY) == WQY


def test_configured_missing_font_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "font.ttc"
    with pytest.raises(FontError) as info:
        fonts.find_cjk_font(missing)
    assert str(missing) in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_font_without_hanzi_is_refused() -> None:
    latin = default_font_path()
    assert latin.is_file()
    with pytest.raises(FontError) as info:
        fonts.find_cjk_font(latin)
    assert str(latin) in str(info.value)
    assert "Chinese" in str(info.value)


def test_unreadable_font_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ttf"
    junk.write_bytes(b"this is not a font" * 10)
    with pytest.raises(FontError) as info:
        fonts.find_cjk_font(junk)
    assert str(junk) in str(info.value)


def test_no_known_font_names_every_path_and_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    searched = (tmp_path / "a.ttc", tmp_path / "b.otf")
    monkeypatch.setattr(fonts, "KNOWN_FONT_PATHS", searched)
    with pytest.raises(FontError) as info:
        fonts.find_cjk_font(None)
    message = str(info.value)
    for path in searched:
        assert str(path) in message
    assert "fonts-wqy-microhei" in message


def test_known_latin_only_font_is_not_picked_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fonts, "KNOWN_FONT_PATHS", (default_font_path(), WQY))
    with pytest.raises(FontError):
        fonts.find_cjk_font(None)


def test_has_hanzi_tells_cjk_from_latin() -> None:
    pygame.font.init()
    assert fonts.has_hanzi(pygame.font.Font(str(WQY), 30))
    assert not fonts.has_hanzi(pygame.font.Font(str(default_font_path()), 30))


# -- the bold face: a real one or none ---------------------------------------------------------

DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def test_a_configured_bold_face_is_used_and_checked_for_hanzi(tmp_path: Path) -> None:
    assert fonts.find_bold_font(WQY) == WQY
    with pytest.raises(FontError, match="Chinese"):
        fonts.find_bold_font(DEJAVU_BOLD)  # a bold face without hanzi: boxes, refused
    with pytest.raises(FontError):
        fonts.find_bold_font(tmp_path / "gone.ttc")


def test_the_bold_search_skips_faces_without_hanzi_and_may_find_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(fonts, "KNOWN_BOLD_FONT_PATHS", (tmp_path / "a.ttc", DEJAVU_BOLD))
    assert fonts.find_bold_font(None) is None  # the regular face then draws bold text
    monkeypatch.setattr(fonts, "KNOWN_BOLD_FONT_PATHS", (tmp_path / "a.ttc", DEJAVU_BOLD, WQY))
    assert fonts.find_bold_font(None) == WQY
