"""printer.glyphs: the CJK font by path, and text in the printer's cells."""

from __future__ import annotations

from pathlib import Path

import pygame
import pytest
from PIL import Image, ImageChops

from evaluator.rules.errors import FontError
from printer.glyphs import (
    columns,
    draw_text,
    find_font,
    from_raster,
    glyph,
    has_hanzi,
    text_columns,
    to_raster,
)


def test_cells_follow_the_encoding_ascii_one_column_everything_else_two() -> None:
    assert [columns(c) for c in "A1：办¥"] == [1, 1, 2, 2, 2]
    assert text_columns("工号：A1023") == 2 * 3 + 5


def test_the_font_is_found_by_path_and_has_hanzi() -> None:
    font = find_font()
    assert has_hanzi(font)
    assert find_font(str(font)) == font


def test_a_missing_or_hanzi_less_font_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FontError, match="not found"):
        find_font(str(tmp_path / "nope.ttf"))
    latin = Path(pygame.__file__).parent / "freesansbold.ttf"  # shipped with pygame, Latin only
    with pytest.raises(FontError, match="no hanzi"):
        find_font(str(latin))


def test_each_glyph_fills_exactly_its_cell_and_has_ink() -> None:
    font = find_font()
    for char, scale in (("办", 1), ("A", 1), ("W", 2), ("：", 2)):
        cell = glyph(font, char, scale, False)
        assert cell.size == (12 * columns(char) * scale, 24 * scale)
        assert ImageChops.invert(cell).getbbox() is not None


def test_raster_bits_round_trip() -> None:
    image = Image.new("L", (48, 30), 255)
    draw_text(image, 0, 3, "评价A", font=find_font())
    width, rows, data = to_raster(image)
    assert (width, rows, len(data)) == (6, 30, 180)
    back = from_raster(width, rows, data)
    assert back.tobytes() == image.point(lambda v: 0 if v < 128 else 255).tobytes()
