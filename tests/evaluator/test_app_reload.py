"""Reloading the configuration (issue 9): ``App.reload_config`` on a real App and its files, and
a real pad process that gets SIGHUP (``systemctl reload``) after its drop-in changed."""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from evaluator.app import App
from evaluator.config import CONFIG_DIR_ENV, config_files, load_config
from tests.support import start_pad, stop_pad, wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed pad's folder: the site file and one drop-in that the tests change."""
    root = tmp_path / "etc"
    (root / "conf.d").mkdir(parents=True)
    (root / "evaluator.toml").write_text(
        f'[device]\nid = "reload-1"\nschema_version = 2\n[counter]\nport = ""\n'
        f'[mqtt]\nenabled = false\n[storage]\npath = "{tmp_path / "r.db"}"\n'
        '[screen]\ndriver = "dummy"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(CONFIG_DIR_ENV, str(root))
    return root


@pytest.fixture
def app(etc: Path) -> Iterator[App]:
    pad = App(load_config(config_files()))
    yield pad
    pad.shutdown()


def test_live_keys_apply_and_the_others_are_named_for_a_restart(
    app: App, etc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert (app.session.timeout, app.config.screen.language) == (60.0, "zh")
    phrases = etc / "phrases.toml"
    phrases.write_text('[[phrase]]\ntext = "窗口太冷"\n', encoding="utf-8")
    (etc / "conf.d" / "50-w.toml").write_text(
        '[session]\ntimeout = "90s"\nphrases_file = "../phrases.toml"\n[screen]\nlanguage = "en"\n'
        '[mqtt]\npassword = "hunter2"\nport = 1884\n[idle]\nscreensaver_after = "0s"\n',
        encoding="utf-8",
    )
    caplog.set_level(logging.INFO, "evaluator.reload")
    messages = app.reload_config()
    assert messages == [
        "reloaded: [session] timeout",
        "reloaded: [session] phrases_file",
        "reloaded: [screen] language",
        "reloaded: [idle] screensaver_after",
        "needs a restart: [mqtt] port",
        "needs a restart: [mqtt] password",
    ]
    assert app.session.timeout == 90.0
    assert app.config.screen.language == "en" and app.config.idle.screensaver_after == 0.0
    assert [p for p in app.phrases.phrases] == ["窗口太冷"]
    assert app.config.mqtt.port == 1883  # still what the running pad uses
    assert app.config.sources[-1] == etc / "conf.d" / "50-w.toml"
    assert "hunter2" not in caplog.text
    assert "needs a restart: [mqtt] port" in caplog.messages
    # the same files again: nothing changed (the pad does not pretend it restarted)
    assert app.reload_config() == [
        "needs a restart: [mqtt] port",
        "needs a restart: [mqtt] password",
    ]


def test_a_changed_list_is_read_again_under_the_same_path(app: App, etc: Path) -> None:
    phrases = etc / "phrases.toml"
    phrases.write_text('[[phrase]]\ntext = "窗口太冷"\n', encoding="utf-8")
    (etc / "conf.d" / "50-w.toml").write_text(
        '[session]\nphrases_file = "../phrases.toml"\n', encoding="utf-8"
    )
    app.reload_config()
    phrases.write_text('[[phrase]]\ntext = "等候太久"\n', encoding="utf-8")
    assert app.reload_config() == ["config reload: nothing changed"]
    assert app.phrases.phrases == ("等候太久",)


def test_a_broken_config_is_refused_with_every_problem_and_the_running_one_stays(
    app: App, etc: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bad = etc / "conf.d" / "60-bad.toml"
    bad.write_text('[session]\ntimeout = 90\n[screen]\nlanguage = "fr"\n', encoding="utf-8")
    before = app.config
    caplog.set_level(logging.ERROR, "evaluator.reload")
    messages = app.reload_config()
    assert messages[0].startswith(f"config reload refused: {bad}:2: session.timeout = 90: ")
    assert messages[1].startswith(f'config reload refused: {bad}:4: screen.language = "fr": ')
    assert messages[2:] == ["config reload: the running configuration stays"]
    assert caplog.messages == messages
    assert app.config is before and app.session.timeout == 60.0


def test_a_pad_process_reloads_on_sighup(
    tmp_path: Path, etc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``systemctl reload evaluator`` (ExecReload=kill -HUP): the running process re-reads its
    drop-ins, logs what it applied and what needs a restart, survives a broken file, and still
    stops cleanly on SIGTERM."""
    override = tmp_path / "cli.toml"  # start_pad's --config after demo.toml
    override.write_text(f'[storage]\npath = "{tmp_path / "p.db"}"\n[mqtt]\nenabled = false\n'
                        '[counter]\nport = ""\n', encoding="utf-8")  # fmt: skip
    log_path = tmp_path / "pad.log"
    with log_path.open("wb") as log:
        process = start_pad(override, log, display=None)
        try:
            text = lambda: log_path.read_text(errors="replace")  # noqa: E731
            wait_for(lambda: "running (storage" in text(), 60, "the pad to start")
            dropin = etc / "conf.d" / "50-w.toml"
            dropin.write_text('[session]\ntimeout = "45s"\n[counter]\nbaudrate = 19200\n', "utf-8")
            process.send_signal(signal.SIGHUP)
            wait_for(lambda: "needs a restart: [counter] baudrate" in text(), 30, "the reload")
            assert "reloaded: [session] timeout" in text()
            order = r"reload from .*etc/evaluator\.toml, .*50-w\.toml, .*demo\.toml, .*cli\.toml"
            assert re.search(order, text())
            dropin.write_text('[session]\ntimeout = "45"\n', "utf-8")
            process.send_signal(signal.SIGHUP)
            wait_for(lambda: "the running configuration stays" in text(), 30, "the refusal")
            assert '50-w.toml:2: session.timeout = "45": expected a duration' in text()
            assert process.poll() is None
        finally:
            code = stop_pad(process, 15)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]
    assert os.environ[CONFIG_DIR_ENV] == str(etc)
