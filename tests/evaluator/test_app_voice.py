"""The real App speaks (issue 6): a prompt when the rating screen is shown, once per
presentation, and one when 谢谢 is shown; never on the reason screen; silent and harmless without
an audio device.

Real parts: the App on a real ``Screen`` (SDL ``dummy`` video), the real store, and SDL's ``disk``
audio driver, which writes what the mixer plays to ``SDL_DISKAUDIOFILE``: a prompt's exact
samples must be in that file.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygame
import pytest

from evaluator.config import default_voice_dir
from evaluator.rules.levels import Level
from kiosk.view import Back, ExpandTheme, PressLevel, UiAction
from kiosk.voice import PRESENTING, THANKS, SdlVoice, SilentVoice, prompt_path
from tests.evaluator.test_app import START_BODY, THEME_BODY, db_count, msg
from tests.kiosk.test_voice import PLAY_TIMEOUT, prompts, voice_warnings, wav_frames

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "speaker.raw"
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(out))
    return out


def site(tmp_path: Path, voice: str, *, screen: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[device]\nid = "unit-1"\n[counter]\nport = "dummy://"\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
        f'[screen]\ndriver = "dummy"\n{screen}\n[voice]\n{voice}\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Any]:
    """``make_app(voice_toml)``: an App (FakeClock, dummy:// counter, real dummy Screen) with
    ``voice_toml`` as its [voice] section; shut down after the test."""
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock
    from kiosk.screen import Screen

    made: list[Any] = []

    def make(voice: str = "", *, screen: str = "") -> Any:
        config = load_config([REPO / "config" / "demo.toml", site(tmp_path, voice, screen=screen)])
        app = App(config, clock=FakeClock())
        app.screen = Screen(driver="dummy")
        made.append(app)
        return app

    yield make
    for app in made:
        app.shutdown()


def show(app: Any) -> None:
    """One turn of App.run's loop without the wait: work, then draw what changed."""
    app.step()
    app._show()


def act(app: Any, action: UiAction) -> None:
    """A citizen's tap, a second after the screen changed (past the press filter)."""
    app.clock.advance(1.0)
    app.act(action)
    show(app)


def test_the_rating_screen_and_thanks_come_out_of_the_speaker(make_app: Any, disk: Path) -> None:
    """The shipped Chinese prompts, through the real App and SDL audio, in order."""
    app = make_app("enabled = true")
    assert isinstance(app.voice, SdlVoice)
    assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
    show(app)
    assert app.screen.view.screen == "presenting"
    assert app.voice.wait_done(PLAY_TIMEOUT)
    act(app, PressLevel(Level.SATISFIED))
    assert app.screen.view.screen == "thanks"
    assert app.voice.wait_done(PLAY_TIMEOUT)
    app.shutdown()
    assert app.voice.returncode == 0  # the voice process quit the mixer and exited
    assert pygame.mixer.get_init() is None  # the pad's own process never opened it
    out = disk.read_bytes()
    presenting = wav_frames(prompt_path(default_voice_dir(), "zh", PRESENTING))
    thanks = wav_frames(prompt_path(default_voice_dir(), "zh", THANKS))
    assert -1 < out.find(presenting) < out.find(thanks)
    assert db_count(app.config.storage.path, "ratings") == 1


def test_each_presentation_is_announced_once_and_the_reasons_never(
    make_app: Any, disk: Path
) -> None:
    """Countdown re-renders, 返回 from the reasons, a batch and a theme rated item by item are
    one presentation: one prompt.  The reason screen has none (it would tell a 差评 across the
    counter, art. 4).  A timeout has no 谢谢.  Voice off: nothing opened at all."""
    app = make_app()  # [voice] enabled = false: the silent stand-in keeps what it would play
    voice = app.voice
    assert isinstance(voice, SilentVoice)

    def rated(body: dict[str, Any], *taps: UiAction) -> None:
        assert app.handle(msg(1, "evaluation.start", **body))["ok"]
        show(app)
        for _ in range(3):  # the countdown: a new frame every second
            app.clock.advance(1.0)
            show(app)
        for tap in taps:
            act(app, tap)
        assert app.screen.view.screen == "thanks"
        app.clock.advance(10)  # 谢谢 ends
        show(app)
        assert app.screen.view.screen == "idle"

    rated(START_BODY, PressLevel(Level.DISSATISFIED), Back(), PressLevel(Level.SATISFIED))
    assert voice.events == [PRESENTING, THANKS]
    batch = {
        **START_BODY,
        "cases": [{**START_BODY["cases"][0], "serial": f"4405002026112600030{n}"} for n in (1, 2)],
    }
    rated(batch, PressLevel(Level.VERY_SATISFIED))
    assert voice.events == [PRESENTING, THANKS] * 2
    rated(THEME_BODY, ExpandTheme(), *[PressLevel(Level.SATISFIED)] * 3)
    assert voice.events == [PRESENTING, THANKS] * 3
    assert app.handle(msg(2, "evaluation.start", **{**START_BODY, "cases": [
        {**START_BODY["cases"][0], "serial": "44050020261126000999"}]}))["ok"]  # fmt: skip
    show(app)
    act(app, PressLevel(Level.VERY_DISSATISFIED))
    assert app.screen.view.screen == "reasons"
    app.clock.advance(120)  # the citizen walks away: not rated, no 谢谢
    show(app)
    assert app.screen.view.screen == "idle"
    assert voice.events == [PRESENTING, THANKS] * 3 + [PRESENTING]
    assert voice.played[0].path == default_voice_dir() / "zh" / "presenting.wav"
    assert db_count(app.config.storage.path, "ratings") == 1 + 1 + 3
    app.shutdown()
    assert not disk.exists() and pygame.mixer.get_init() is None


def test_no_audio_device_keeps_the_pad_rating_and_storing(
    make_app: Any, disk: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-audio-driver")
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    app = make_app("enabled = true")
    app.voice.start()  # as run() does once the pad is ready
    for n, serial in enumerate(("44050020261126000501", "44050020261126000502")):
        body = {**START_BODY, "cases": [{**START_BODY["cases"][0], "serial": serial}]}
        assert app.handle(msg(n, "evaluation.start", **body))["ok"]
        show(app)
        assert app.screen.view.screen == "presenting"
        act(app, PressLevel(Level.VERY_SATISFIED))
        assert app.screen.view.screen == "thanks"
        app.clock.advance(10)
        show(app)
    assert app.voice.wait_done(PLAY_TIMEOUT)
    assert db_count(app.config.storage.path, "ratings") == 2
    finished = [f for f in app.link.sent if f.get("event") == "evaluation.finished"]
    assert [f["outcome"] for f in finished] == ["rated", "rated"]
    assert app.voice.failure and app.voice.played == []
    [warning] = voice_warnings(caplog)
    assert "no audio output" in warning
    assert app.voice.state == "ended"  # the voice process said why and ended
    app.shutdown()
    assert not disk.exists() and pygame.mixer.get_init() is None


def test_a_missing_prompt_silences_its_event_only(
    tmp_path: Path, make_app: Any, disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    tones = prompts(tmp_path / "voice")
    prompt_path(tmp_path / "voice", "zh", PRESENTING).unlink()
    app = make_app(f"enabled = true\ndir = {json.dumps(str(tmp_path / 'voice'))}")
    assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
    show(app)
    act(app, PressLevel(Level.SATISFIED))
    assert app.screen.view.screen == "thanks"
    assert app.voice.wait_done(PLAY_TIMEOUT)
    app.shutdown()
    assert tones[THANKS] in disk.read_bytes()
    assert db_count(app.config.storage.path, "ratings") == 1
    [warning] = voice_warnings(caplog)
    assert "presenting.wav is missing" in warning


def test_the_display_language_picks_the_prompts(make_app: Any) -> None:
    app = make_app(screen='language = "en"')
    assert app.handle(msg(1, "evaluation.start", **START_BODY))["ok"]
    show(app)
    assert [p.path for p in app.voice.played] == [default_voice_dir() / "en" / "presenting.wav"]


def test_run_opens_the_voice_after_ready_and_quits_it_on_shutdown(
    tmp_path: Path, disk: Path
) -> None:
    """``App.run`` itself: the mixer opens only once the loop runs, a trigger arriving through
    the counter link is announced, and stopping quits the mixer."""
    from evaluator.app import App
    from evaluator.config import load_config

    tones = prompts(tmp_path / "voice")
    voice_toml = f"enabled = true\ndir = {json.dumps(str(tmp_path / 'voice'))}"
    app = App(load_config([REPO / "config" / "demo.toml", site(tmp_path, voice_toml)]))
    assert pygame.mixer.get_init() is None and not disk.exists()  # nothing opened yet
    failures: list[str] = []

    def counter_side() -> None:
        try:
            deadline = time.monotonic() + PLAY_TIMEOUT
            while app.screen is None or app._shown is None:  # the loop has drawn its first frame
                if time.monotonic() > deadline:
                    raise AssertionError("the pad never drew a screen")
                time.sleep(0.01)
            app.link.feed({"id": 1, "type": "evaluation.start", **START_BODY})
            while not app.voice.played:
                if time.monotonic() > deadline:
                    raise AssertionError("no prompt was played")
                time.sleep(0.01)
            if not app.voice.wait_done(PLAY_TIMEOUT):
                raise AssertionError("the prompt did not finish")
        except AssertionError as exc:
            failures.append(str(exc))
        finally:
            app._on_signal(signal.SIGTERM, None)

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    helper = threading.Thread(target=counter_side)
    helper.start()
    try:
        assert app.run() == 0
    finally:  # run() installs its own handlers: give pytest its own back
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        helper.join(PLAY_TIMEOUT)
    assert failures == []
    assert app.voice.returncode == 0 and pygame.mixer.get_init() is None
    assert tones[PRESENTING] in disk.read_bytes()
    assert app.link.sent[0] == {"id": 1, "ok": True}


@pytest.fixture
def hung(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An audio device whose open never returns: SDL's disk driver writing to a FIFO that nobody
    reads.  In the pad's own process it froze the screen after READY=1 (SDL holds the GIL)."""
    fifo = tmp_path / "speaker.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(fifo))
    return fifo


def test_an_audio_device_that_hangs_never_stops_the_pad(
    make_app: Any, hung: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The voice process is stuck opening the device for the whole test: the pad shows, rates
    and stores as ever, ``play`` returns at once (a full pipe drops the prompt), and shutdown
    still ends the voice process."""
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    app = make_app("enabled = true")
    voice = app.voice
    voice.answer_timeout = 3600.0  # no watchdog: it must still be stuck at shutdown
    voice.start()  # as run() does once the pad is ready
    assert voice.wait_state("opening", timeout=PLAY_TIMEOUT)
    for n, serial in enumerate(("44050020261126000601", "44050020261126000602")):
        body = {**START_BODY, "cases": [{**START_BODY["cases"][0], "serial": serial}]}
        assert app.handle(msg(n, "evaluation.start", **body))["ok"]
        show(app)
        assert app.screen.view.screen == "presenting"
        act(app, PressLevel(Level.VERY_SATISFIED))
        assert app.screen.view.screen == "thanks"
        app.clock.advance(10)
        show(app)
        assert app.screen.view.screen == "idle"
    assert db_count(app.config.storage.path, "ratings") == 2
    finished = [f for f in app.link.sent if f.get("event") == "evaluation.finished"]
    assert [f["outcome"] for f in finished] == ["rated", "rated"]
    asked = 0

    def fill() -> None:  # past the pipe's 64 KiB a write that waits would never return
        nonlocal asked
        while voice.dropped == 0:
            voice.play(THANKS)
            asked += 1

    pad = threading.Thread(target=fill, daemon=True)
    pad.start()
    pad.join(PLAY_TIMEOUT)
    waited = pad.is_alive()
    if waited and voice.pid is not None:  # free the stuck write, so the failure is reported
        os.kill(voice.pid, signal.SIGKILL)
    assert not waited, "play() waited for the voice process"
    assert asked > 1000
    assert voice.state == "opening" and voice.played == []  # stuck all along: nothing played
    app.shutdown()
    assert voice.returncode == -signal.SIGTERM  # stopped at shutdown, not waited for
    [warning] = voice_warnings(caplog)
    assert "hung while opening" in warning and "silent" in warning
    assert db_count(app.config.storage.path, "ratings") == 2


def test_run_takes_requests_and_sigterm_while_the_voice_process_hangs(
    tmp_path: Path, hung: Path
) -> None:
    """``App.run`` itself, the reviewer's freeze: READY=1, the voice process stuck in the
    device, a trigger through the counter link answered and shown, then a real SIGTERM stops
    the pad and the voice process with it."""
    from evaluator.app import App
    from evaluator.config import load_config

    app = App(load_config([REPO / "config" / "demo.toml", site(tmp_path, "enabled = true")]))
    app.voice.answer_timeout = 3600.0
    failures: list[str] = []

    def counter_side() -> None:
        try:
            if not app.voice.wait_state("opening", timeout=PLAY_TIMEOUT):  # started after READY
                raise AssertionError(f"the voice process is {app.voice.state}, not opening")
            app.link.feed({"id": 1, "type": "evaluation.start", **START_BODY})
            deadline = time.monotonic() + PLAY_TIMEOUT
            while app._shown is None or app._shown.screen != "presenting":
                if time.monotonic() > deadline:
                    raise AssertionError("the pad froze: no rating screen")
                time.sleep(0.01)
            if app.voice.state != "opening":
                raise AssertionError(f"the voice process is {app.voice.state}, not stuck")
        except AssertionError as exc:
            failures.append(str(exc))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # a real signal, handled by the main thread

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    helper = threading.Thread(target=counter_side)
    helper.start()
    try:
        assert app.run() == 0
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        helper.join(PLAY_TIMEOUT)
    assert failures == []
    assert app.link.sent[0] == {"id": 1, "ok": True}
    assert app._stopped_by == signal.SIGTERM
    assert app.voice.returncode == -signal.SIGTERM and app.voice.played == []
