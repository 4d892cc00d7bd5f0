"""Attack on the SIGHUP reload (issue 9): a reload that lands while a citizen is rating."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.app import App
from evaluator.config import CONFIG_DIR_ENV, config_files, load_config
from evaluator.rules.levels import Level

REPO = Path(__file__).resolve().parents[2]
CLERK = {"id": "A1023", "name": "陈晓明"}
CASE = {"serial": "44050020261126000123", "matter_code": "11440500MB2C9300XR4442111009000",
        "matter_name": "居民身份证换领", "kind": "instant"}  # fmt: skip
START = {"type": "evaluation.start", "clerk": CLERK, "stage": "deliver", "cases": [CASE]}
ONE_REASON = 'version = "test"\n' + "".join(
    f'[[reason]]\ncode = "{code}"\nlevel = "{level}"\ntarget = "clerk"\ntext = "新的原因"\n'
    for code, level in (("215", "dissatisfied"), ("116", "very_dissatisfied"))
)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    root = tmp_path / "etc"
    (root / "conf.d").mkdir(parents=True)
    (root / "evaluator.toml").write_text(
        f'[device]\nid = "attack-1"\narea_code = "440500"\nschema_version = 2\n'
        f'[counter]\nport = "dummy://"\n[mqtt]\nenabled = false\n'
        f'[storage]\npath = "{tmp_path / "r.db"}"\n[screen]\ndriver = "dummy"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(CONFIG_DIR_ENV, str(root))
    pad = App(load_config(config_files()))
    yield pad
    pad.shutdown()


def _request(app: App, request: dict) -> dict:
    """One request on the counter link (the stand-in's feed), the loop run until its reply."""
    app.link.feed(request)
    while not (replies := [m for m in app.link.sent if m.get("id") == request["id"]]):
        app.step()
    return replies[0]


def test_a_reasons_list_reloaded_during_a_rating_applies_from_the_next_presentation(
    app: App, tmp_path: Path
) -> None:
    """The reload said 'reloaded: [session] reasons_file' while a rating screen was open; the
    open screen keeps its list, but every later presentation must offer the new one."""
    assert _request(app, {"id": 1, "type": "clerk.sign_in", "clerk": CLERK})["ok"]
    assert _request(app, {"id": 2, **START})["ok"]
    assert app.session.rating_open
    (tmp_path / "etc" / "reasons.toml").write_text(ONE_REASON, encoding="utf-8")
    (tmp_path / "etc" / "conf.d" / "50-r.toml").write_text(
        '[session]\nreasons_file = "../reasons.toml"\n', encoding="utf-8"
    )
    assert "reloaded: [session] reasons_file" in app.reload_config()
    assert _request(app, {"id": 3, "type": "evaluation.cancel"})["ok"]
    assert _request(app, {"id": 4, **START})["ok"]
    app.session.press(Level.DISSATISFIED)
    assert app.session.choice is not None
    assert [r.code for r in app.session.choice.offered] == ["215"]
