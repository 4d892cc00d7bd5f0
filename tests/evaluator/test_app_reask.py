"""Art. 4 and 22 on the real pad: the counter cannot aim a re-ask (issue 15).

A real App on a real store file and the shipped dummy counter link; a fake clock moves time.
A case the citizen touched and left unrated is never shown again at the counter; a follow-up
(``assess_number`` 2) and a 承诺件 visit after the first wait ``[session] followup_gap`` /
``visit_gap`` since the case's previous rating, and are refused when that time cannot be
measured on a synchronised clock.  ``stats`` counts a slot's first rating only and reports
follow-ups beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from kiosk.view import Back, PressLevel, Submit, ToggleReason
from sync.audit import stats as audited_stats

REPO = Path(__file__).resolve().parents[2]
CLERK = {"id": "A1023", "name": "陈晓明"}
HOUR = 3600.0


def case(serial: str, kind: str = "instant") -> dict[str, str]:
    return {"serial": serial, "matter_code": "M1", "matter_name": "不动产登记", "kind": kind}


@pytest.fixture
def pad(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """Opens Apps on one store file (a second one is a restart); all shut down at the end."""
    opened: list[App] = []

    def open_app(*, synced: bool = True, session: str = "") -> App:
        override = tmp_path / "o.toml"
        override.write_text(
            f'[device]\nid = "reask-1"\narea_code = "440500"\n[counter]\nport = "dummy://"\n'
            f'[mqtt]\nenabled = false\n[storage]\npath = "{tmp_path / "r.db"}"\n'
            f'[screen]\ndriver = "dummy"\n[session]\ntimeout = "15s"\n{session}',
            encoding="utf-8",
        )
        app = App(
            load_config([REPO / "config" / "demo.toml", override]),
            clock=FakeClock(synced=synced),
        )
        opened.append(app)
        assert ask(app, "clerk.sign_in", clerk=CLERK)["ok"]
        return app

    yield open_app
    for app in opened:
        app.shutdown()


_ids = iter(range(1, 1_000_000))


def ask(app: App, rtype: str, **body: Any) -> dict[str, Any]:
    """One request over the counter link, as the loop handles it."""
    return app.handle(Message(next(_ids), rtype, body))


def start(app: App, *serials: str, kind: str = "instant", stage: str = "deliver",
          **more: Any) -> dict[str, Any]:  # fmt: skip
    return ask(app, "evaluation.start", clerk=CLERK, stage=stage,
               cases=[case(s, kind) for s in serials], **more)  # fmt: skip


def code(reply: dict[str, Any]) -> str:
    return "ok" if reply["ok"] else reply["error"]["code"]


def wait(app: App, seconds: float) -> None:
    app.clock.advance(seconds)
    app.step()
    ask(app, "status")


def rate(app: App, level: Level) -> None:
    """The citizen rates the open screen with ``level`` (a 差评 with a reason) and 谢谢 ends."""
    wait(app, 1.0)  # past the press filter's guard
    app.act(PressLevel(level))
    if level.is_bad:
        wait(app, 1.0)
        app.act(ToggleReason("213" if level is Level.DISSATISFIED else "115"))
        wait(app, 1.0)
        app.act(Submit())
    wait(app, 4.0)
    assert app.view().screen == "idle"


# -- a touched case left unrated: not shown again at the counter ---------------------------------

ABANDON = {
    "very_dissatisfied": [PressLevel(Level.VERY_DISSATISFIED)],
    "dissatisfied_with_reason": [PressLevel(Level.DISSATISFIED), ToggleReason("213")],
    "bad_then_back": [PressLevel(Level.VERY_DISSATISFIED), Back()],
}


@pytest.mark.parametrize("how", sorted(ABANDON))
def test_a_touched_case_left_unrated_is_never_shown_again_at_the_counter(
    pad: Callable[..., App], how: str
) -> None:
    """Any case of a presentation the citizen touched and left (a timeout), on any path, and
    after a restart: ``left_unrated`` (today: ``ok``, the clerk re-asks at once)."""
    app = pad()
    assert start(app, "S1", "S2")["ok"]
    for action in ABANDON[how]:
        wait(app, 1.0)
        app.act(action)
    wait(app, 16)
    assert app.view().screen == "idle"
    assert app.store.presentation_row(app.store.db.execute(
        "SELECT id FROM presentations").fetchone()[0])["outcome"] == "not_rated"  # fmt: skip
    for serials in (("S1",), ("S2",), ("S3", "S2"), ("S1", "S2")):
        assert code(start(app, *serials)) == "left_unrated", serials
    again = pad()  # a restart forgets nothing: the store says so
    assert code(start(again, "S2")) == "left_unrated"
    assert start(again, "S3")["ok"]  # another case is shown as ever


def test_an_untouched_case_that_timed_out_may_be_shown_again(pad: Callable[..., App]) -> None:
    app = pad()
    assert start(app, "S1")["ok"]
    wait(app, 16)
    assert start(app, "S1")["ok"]


# -- follow-ups and further visits wait since the case's previous rating -------------------------

RE_ASKS = {
    "follow_up": ({"kind": "instant", "stage": "deliver"}, {"assess_number": 2}, 4 * HOUR),
    "visit_2": ({"kind": "promise", "stage": "accept"}, {"visit": 2}, 2 * HOUR),
    "visit_3": ({"kind": "promise", "stage": "accept"}, {"visit": 3}, 2 * HOUR),
    "promise_follow_up": ({"kind": "promise", "stage": "accept"}, {"assess_number": 2}, 4 * HOUR),
}


@pytest.mark.parametrize("what", sorted(RE_ASKS))
@pytest.mark.parametrize("level", [Level.VERY_DISSATISFIED, Level.VERY_SATISFIED])
def test_a_follow_up_or_further_visit_waits_its_gap_since_the_previous_rating(
    pad: Callable[..., App], what: str, level: Level
) -> None:
    """2.07 s after a rating (today: ``ok``), and up to the gap: ``too_soon``; at the gap:
    ``ok``.  Measured from the case's latest rating, so visit 3 waits after visit 2 too."""
    where, extra, gap = RE_ASKS[what]
    app = pad()
    assert start(app, "S1", **where)["ok"]
    rate(app, level)
    for _ in range(2):  # rate() leaves 4 s after the rating
        assert code(start(app, "S1", **where, **extra)) == "too_soon"
        wait(app, gap - 64)
        assert code(start(app, "S1", **where, **extra)) == "too_soon"
        wait(app, 60)
        assert start(app, "S1", **where, **extra)["ok"]
        if "visit" not in extra:
            break
        rate(app, Level.SATISFIED)  # a further visit waits since this one
        extra = {"visit": extra["visit"] + 1}


@pytest.mark.parametrize("extra", [{"assess_number": 2}, {"visit": 2}])
@pytest.mark.parametrize(("then", "now"), [(False, False), (False, True), (True, False)])
def test_without_a_trusted_clock_a_re_ask_is_refused_never_allowed(
    pad: Callable[..., App], extra: dict[str, int], then: bool, now: bool
) -> None:
    """A Pi with no RTC in an offline hall: any follow-up or further visit whose time since the
    previous rating cannot be measured is ``clock_untrusted``, however long one waits (today:
    follow-ups allowed forever)."""
    app = pad(synced=then)
    assert start(app, "S1", kind="promise", stage="accept")["ok"]
    rate(app, Level.VERY_DISSATISFIED)
    assert isinstance(app.clock, FakeClock)
    app.clock.synced = now
    for days in (0.001, 1, 30):
        wait(app, days * 24 * HOUR)
        reply = start(app, "S1", kind="promise", stage="accept", **extra)
        assert code(reply) == "clock_untrusted", days
        assert "S1" in reply["error"]["message"]


def test_the_gaps_are_configurable(pad: Callable[..., App]) -> None:
    app = pad(session='followup_gap = "10m"\nvisit_gap = "0s"\n')
    assert start(app, "P1", kind="promise", stage="accept")["ok"]
    rate(app, Level.SATISFIED)
    assert start(app, "P1", kind="promise", stage="accept", visit=2)["ok"]
    rate(app, Level.SATISFIED)
    assert code(start(app, "P1", kind="promise", stage="accept", assess_number=2)) == "too_soon"
    wait(app, 600)
    assert start(app, "P1", kind="promise", stage="accept", assess_number=2)["ok"]


# -- figures: first ratings only, follow-ups beside ----------------------------------------------


def test_stats_count_first_ratings_and_report_follow_ups_beside(pad: Callable[..., App]) -> None:
    """A 非常不满意 then a follow-up 非常满意: the clerk's mean is 0 (not 5), the follow-up is
    reported beside it (count 1, mean 10, 1 changed the level)."""
    app = pad()
    for serial, level in (("S1", Level.VERY_DISSATISFIED), ("S2", Level.SATISFIED)):
        assert start(app, serial)["ok"]
        rate(app, level)
    wait(app, 4 * HOUR)
    for serial, level in (("S1", Level.VERY_SATISFIED), ("S2", Level.SATISFIED)):
        assert start(app, serial, assess_number=2)["ok"]
        rate(app, level)
    stats = audited_stats(app.store)
    scores = {lv: lv.score for lv in Level}
    first_mean = (scores[Level.VERY_DISSATISFIED] + scores[Level.SATISFIED]) / 2
    follow_mean = (scores[Level.VERY_SATISFIED] + scores[Level.SATISFIED]) / 2
    for row in (stats["device"], stats["clerks"][0], stats["matters"][0]):
        assert (row["ratings"], row["mean_score"]) == (2, first_mean), row
        assert row["follow_ups"] == {"count": 2, "mean_score": follow_mean, "changed_level": 1}
