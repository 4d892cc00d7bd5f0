"""printer.profile: paper widths and the modes a printer model is driven in."""

from __future__ import annotations

import pytest

from printer.errors import PrinterConfigError
from printer.profile import PrinterProfile


@pytest.mark.parametrize(("paper", "dots", "columns"), [("58mm", 384, 32), ("80mm", 576, 48)])
def test_paper_widths(paper: str, dots: int, columns: int) -> None:
    profile = PrinterProfile(paper=paper)
    assert (profile.dots, profile.columns) == (dots, columns)


def test_the_defaults_are_a_58mm_gb18030_printer_with_native_qr_and_status() -> None:
    assert PrinterProfile.from_config({}) == PrinterProfile(
        paper="58mm", text="gb18030", qr="native", four_byte=False, cut=True, status=True
    )


def test_every_problem_is_named_at_once_unknown_keys_too() -> None:
    with pytest.raises(PrinterConfigError) as caught:
        PrinterProfile.from_config(
            {"paper": "76mm", "text": "utf8", "qr": "svg", "cut": "yes", "colour": "red"}
        )
    problems = caught.value.problems
    assert len(problems) == 5
    assert any("'colour'" in p for p in problems)
    assert any("58mm, 80mm" in p for p in problems)
    assert any("gb18030, raster" in p for p in problems)
    assert any("native, image" in p for p in problems)
    assert any("cut must be true or false" in p for p in problems)
