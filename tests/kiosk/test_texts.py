"""``kiosk.texts``: every text of the pad from ``config/texts.toml``, in Chinese or English."""

from __future__ import annotations

import ast
import re
import string
import tomllib
from pathlib import Path

import pytest

from evaluator.rules.errors import DataFileError
from evaluator.rules.levels import BUTTON_ORDER, Level
from kiosk import texts

REPO = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
#: Code that draws or composes what the citizen sees: no text of its own.
SHOWING = [*sorted((REPO / "kiosk").glob("*.py")), REPO / "evaluator" / "app.py"]
#: Literals that are not texts shown: the font probe (glyphs checked, never drawn).
NOT_SHOWN = {("fonts.py", "满意评价窗口")}


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "texts.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_shipped_file_has_every_text_in_every_language_with_the_same_fields() -> None:
    data = tomllib.loads(texts.texts_path().read_text(encoding="utf-8"))
    assert set(data) == texts.REQUIRED
    for key, entry in data.items():
        assert set(entry) == set(texts.LANGUAGES), key
        assert len({frozenset(_fields(entry[lang])) for lang in texts.LANGUAGES}) == 1, key


def test_chinese_is_the_default_and_english_is_selected_and_restored() -> None:
    assert texts.DEFAULT_LANGUAGE == "zh"
    assert texts.language() == "zh"
    assert texts.THANKS == "谢谢您的评价！"
    with texts.using("en"):
        assert texts.language() == "en"
        assert texts.THANKS == "Thank you!"
        assert texts.BUTTON_SUBMIT == "Submit"
        assert texts.level_label(Level.DISSATISFIED) == "Dissatisfied"
    assert texts.THANKS == "谢谢您的评价！"
    assert texts.level_label(Level.DISSATISFIED) == "不满意"


def test_the_chinese_level_labels_are_the_ones_art_10_names() -> None:
    assert [texts.get(f"level_{lvl.value}", "zh") for lvl in BUTTON_ORDER] == [
        lvl.label for lvl in BUTTON_ORDER
    ]


def test_an_unknown_language_or_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        texts.select("fr")
    assert texts.language() == "zh"
    with pytest.raises(AttributeError):
        texts.NO_SUCH_TEXT  # noqa: B018
    with pytest.raises(AttributeError):
        texts.thanks  # noqa: B018  (names are upper-case, as constants were)


def test_a_broken_file_names_every_problem(tmp_path: Path) -> None:
    shipped = texts.texts_path().read_text(encoding="utf-8")
    broken = (
        shipped.replace('en = "{count} cases"', 'en = "cases"')  # a field lost
        .replace('en = "Thank you!"', "")  # a language missing
        .replace("[idle_welcome]", "[idle_welcom]")  # a typo
    )
    with pytest.raises(DataFileError) as err:
        texts.load_texts(_write(tmp_path, broken))
    message = str(err.value)
    assert "[batch_count_fmt] fields differ" in message
    assert "[thanks] has no en text" in message
    assert "texts missing: idle_welcome" in message
    assert "unknown texts (a typo?): idle_welcom" in message


def test_a_chinese_level_label_other_than_art_10s_is_refused(tmp_path: Path) -> None:
    shipped = texts.texts_path().read_text(encoding="utf-8")
    with pytest.raises(DataFileError, match=r"art\. 10 names it '满意'"):
        texts.load_texts(_write(tmp_path, shipped.replace('zh = "满意"', 'zh = "还行"')))


@pytest.mark.parametrize("body", ["not toml [", "x = 1\n"])
def test_an_unreadable_or_misshapen_file_is_a_clear_error(tmp_path: Path, body: str) -> None:
    with pytest.raises(DataFileError, match=r"texts\.toml"):
        texts.load_texts(_write(tmp_path, body))


def _shown_literals(path: Path) -> list[tuple[int, str]]:
    """String literals holding CJK text in ``path``, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        for stmt in body if isinstance(body, list) else ():
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                docstrings.add(id(stmt.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and CJK.search(node.value)
        and (path.name, node.value) not in NOT_SHOWN
    ]


def test_no_code_that_shows_text_holds_a_text_of_its_own() -> None:
    found = {path.name: lits for path in SHOWING if (lits := _shown_literals(path))}
    assert found == {}, "move these into config/texts.toml"


def test_the_scan_finds_a_literal_when_there_is_one(tmp_path: Path) -> None:
    path = tmp_path / "draw_x.py"
    path.write_text('"""说明文字。"""\nTITLE = "欢迎"\n', encoding="utf-8")
    assert _shown_literals(path) == [(2, "欢迎")]
