"""``[screen] rotate`` in the configuration: 0, 90, 180 or 270, anything else a clear
``config check`` error on its file, line and key; the panel checks use the panel as mounted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaluator.cli import main
from evaluator.config import check_config, load_config
from evaluator.reload import LIVE
from evaluator.rules.errors import ConfigError

MINIMAL = '[device]\nid = "pad-1"\n'


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_each_quarter_turn_is_taken(tmp_path: Path, rotate: int) -> None:
    files = [write(tmp_path, "site.toml", f"{MINIMAL}[screen]\nrotate = {rotate}\n")]
    assert check_config(files) == []
    screen = load_config(files).screen
    assert (screen.rotate, screen.width, screen.height) == (rotate, 800, 480)  # native mode


def test_rotate_defaults_to_0(tmp_path: Path) -> None:
    assert load_config([write(tmp_path, "site.toml", MINIMAL)]).screen.rotate == 0


EXPECTED = "expected one of 0, 90, 180, 270 (degrees the panel is turned clockwise)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("45", f"site.toml:5: screen.rotate = 45: {EXPECTED}", id="not-a-quarter"),
        pytest.param("-90", f"screen.rotate = -90: {EXPECTED}; did you mean 270?", id="minus"),
        pytest.param("450", f"screen.rotate = 450: {EXPECTED}; did you mean 90?", id="past-360"),
        pytest.param("360", f"screen.rotate = 360: {EXPECTED}; did you mean 0?", id="full-turn"),
        pytest.param(
            '"90"',
            'screen.rotate = "90": expected an integer (no quotes); did you mean 90?',
            id="quoted",
        ),
        pytest.param("90.0", "screen.rotate = 90.0: expected an integer", id="float"),
    ],
)
def test_any_other_rotate_is_refused_on_its_line(tmp_path: Path, value: str, message: str) -> None:
    files = [write(tmp_path, "site.toml", f"{MINIMAL}[screen]\n\nrotate = {value}\n")]
    problems = check_config(files)
    assert len(problems) == 1, problems
    assert message in str(problems[0])
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(files)


def test_config_check_names_the_bad_rotate_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = write(tmp_path, "site.toml", f"{MINIMAL}[screen]\nrotate = 45\n")
    assert main(["config", "check", str(site)]) != 0
    out = capsys.readouterr()
    assert f"screen.rotate = 45: {EXPECTED}" in out.out + out.err


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_the_15_mm_check_is_on_the_panel_as_mounted(tmp_path: Path, rotate: int) -> None:
    """The short side of the logical screen is the short side of the panel whichever way it is
    turned: 800×480 at 260 dpi is refused at every rotate, at 133 dpi taken at every rotate."""
    text = f"{MINIMAL}[screen]\nrotate = {rotate}\ndpi = 260\n"
    problems = check_config([write(tmp_path, "dense.toml", text)])
    assert [p.key for p in problems] == ["screen.dpi"]
    assert "is 47 mm on its short side; 15 mm buttons need at least 58 mm" in str(problems[0])
    text = f"{MINIMAL}[screen]\nrotate = {rotate}\ndpi = 133\n"
    assert check_config([write(tmp_path, "official.toml", text)]) == []


def test_rotate_is_not_applied_live() -> None:
    """The display is opened once, at start: a reload names rotate as needing a restart."""
    assert ("screen", "rotate") not in LIVE
