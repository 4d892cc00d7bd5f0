"""``[screen] language``: the pad in English shows English texts and reasons, and stores the
same rating as in Chinese (codes and the national texts)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from evaluator.rules.reasons import OTHER_CODE, load_reasons
from kiosk import texts
from kiosk.screen import Screen
from kiosk.view import PressLevel, Submit, ToggleReason

REPO = Path(__file__).resolve().parents[2]
CASE = {
    "serial": "44050020261126000123",
    "matter_code": "11440500MB2C9300XR4442111009000",
    "matter_name": "居民身份证换领",
    "kind": "instant",
}
START = {"clerk": {"id": "A1023", "name": "陈晓明"}, "stage": "deliver", "cases": [CASE]}


def make_app(tmp_path: Path, language: str) -> App:
    override = tmp_path / f"{language}.toml"
    override.write_text(
        f'[device]\nid = "unit-1"\n[counter]\nport = ""\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / (language + '.db')))}\n"
        f'[screen]\nlanguage = "{language}"\n[session]\npress_guard = "0s"\n',
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", override]), clock=FakeClock())


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.shutdown()
    texts.select(texts.DEFAULT_LANGUAGE)


def rate_dissatisfied(app: App, code: str) -> dict[str, Any]:
    """差评 with reason ``code`` through the real screen; the stored record."""
    app.screen = Screen(driver="dummy")
    assert app.handle(Message(1, "evaluation.start", START))["ok"]
    app.act(PressLevel(Level.DISSATISFIED))
    app._show()
    assert app.screen.layout.screen == "reasons"
    view = app.view()
    app.act(ToggleReason(code))
    app.act(Submit())
    with contextlib.closing(sqlite3.connect(app.config.storage.path)) as conn:
        [(record,)] = conn.execute("SELECT record FROM ratings").fetchall()
    return {"view": view, "record": json.loads(record)}


def test_english_shows_english_and_stores_what_chinese_stores(
    apps: list[App], tmp_path: Path
) -> None:
    catalog = load_reasons()
    reason = catalog.for_level(Level.DISSATISFIED)[0]
    assert reason.text_en and reason.text_en != reason.text

    apps.append(en := make_app(tmp_path, "en"))
    assert texts.language() == "en"
    english = rate_dissatisfied(en, reason.code)
    shown = {item.code: item.text for item in english["view"].reasons}
    assert shown[reason.code] == reason.text_en
    assert shown[OTHER_CODE] == "Other"
    assert en.view().screen == "thanks"

    apps.append(zh := make_app(tmp_path, "zh"))
    assert texts.language() == "zh"
    chinese = rate_dissatisfied(zh, reason.code)
    assert {item.code: item.text for item in chinese["view"].reasons}[reason.code] == reason.text

    def stored(record: dict[str, Any]) -> Any:
        return record["level"], record["reasons"]

    assert stored(english["record"]) == stored(chinese["record"])
    assert {"code": reason.code, "text": reason.text} in [
        {k: r[k] for k in ("code", "text")} for r in english["record"]["reasons"]
    ]


def test_a_reason_without_english_shows_its_national_text(tmp_path: Path) -> None:
    path = tmp_path / "reasons.toml"
    path.write_text(
        "\n".join(
            f'[[reason]]\ncode = "{code}"\nlevel = "{level}"\ntarget = "clerk"\ntext = "{text}"\n'
            for code, level, text in (("1", "dissatisfied", "甲"), ("2", "very_dissatisfied", "乙"))
        )
        + 'text_en = "B"\n',
        encoding="utf-8",
    )
    first, second = load_reasons(path).reasons
    assert (first.shown("en"), first.shown("zh")) == ("甲", "甲")
    assert (second.shown("en"), second.shown("zh")) == ("B", "乙")


def test_an_english_pad_offers_the_english_quick_notes(apps: list[App], tmp_path: Path) -> None:
    from evaluator.rules.phrases import default_phrases_path, load_phrases

    apps.append(en := make_app(tmp_path, "en"))
    assert en.config.session.phrases_file == default_phrases_path("en")
    assert en.phrases.phrases == load_phrases(default_phrases_path("en")).phrases
    assert "System failure" in en.phrases.phrases
    apps.append(zh := make_app(tmp_path, "zh"))
    assert "系统故障办不了" in zh.phrases.phrases


def test_each_pad_draws_in_its_own_language_whatever_ran_before(
    apps: list[App], tmp_path: Path
) -> None:
    """The language is chosen again before each drawing: building an App of another language in
    the same process (tools, tests) never leaves a pad drawing in the wrong one."""
    apps.append(en := make_app(tmp_path, "en"))
    apps.append(make_app(tmp_path, "zh"))  # selects zh after the English pad was built
    en.screen = Screen(driver="dummy")
    assert en.handle(Message(1, "evaluation.start", START))["ok"]
    en._show()
    drawn = {text.shown for text in en.screen.layout.texts}
    assert "Please rate our service" in drawn and "请您对本次服务进行评价" not in drawn
