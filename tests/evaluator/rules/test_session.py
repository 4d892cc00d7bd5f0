"""The session state machine: the rules of art. 4, 11, 22–25, 27–32 as executable statements."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.rules.clock import FakeClock
from evaluator.rules.errors import RequestError, SubmitError
from evaluator.rules.levels import BUTTON_ORDER, Level
from evaluator.rules.reasons import OTHER_CODE, load_reasons
from evaluator.rules.request import parse_request, rating_slot
from evaluator.rules.session import (
    CITIZEN_RATING,
    Closing,
    Finished,
    FirstRating,
    Outcome,
    Presentation,
    Session,
    State,
)

REASONS = load_reasons()


class MemoryLedger:
    """An in-memory ledger that keeps everything the session hands it, in order."""

    def __init__(self) -> None:
        self.ratings: list[dict[str, Any]] = []
        self.opened: list[Presentation] = []
        self.closed: list[tuple[str, Outcome, tuple[str, ...]]] = []
        self.causes: list[str] = []
        self.fail_next = False

    def _slots(self, record: dict[str, Any]) -> set[tuple[str, str, int]]:
        return {
            (c["serial"], rating_slot(c["kind"], record["stage"], record["visit"]), n)
            for c in record["cases"]
            for n in [record["assess_number"]]
        }

    def already_rated(self, slots: tuple[tuple[str, str], ...], assess_number: int) -> list[str]:
        done = set().union(*(self._slots(r) for r in self.ratings))
        return [s for s, slot in slots if (s, slot, assess_number) in done]

    def case_kinds(self, serials: tuple[str, ...]) -> dict[str, str]:
        return {c["serial"]: c["kind"] for r in self.ratings for c in r["cases"]
                if c["serial"] in serials}  # fmt: skip

    def first_ratings(self, slots: tuple[tuple[str, str], ...]) -> dict[str, FirstRating]:
        found = {}
        for r in self.ratings:
            for serial, slot, n in self._slots(r):
                if n == 1 and (serial, slot) in slots:
                    found[serial] = FirstRating(serial, r["id"], r["rated_at"], True)
        return found

    def last_ratings(self, serials: tuple[str, ...]) -> dict[str, FirstRating]:
        found = {}
        for r in self.ratings:
            for c in r["cases"]:
                if c["serial"] in serials:
                    found[c["serial"]] = FirstRating(c["serial"], r["id"], r["rated_at"], True)
        return found

    def left_unrated(self, slots: tuple[tuple[str, str], ...], assess_number: int) -> list[str]:
        unrated = {pid for pid, outcome, _ in self.closed if outcome is not Outcome.RATED}
        left = {
            pair
            for p in self.opened
            if p.id in unrated and p.touched and p.request.assess_number == assess_number
            for pair in p.request.slots()
        }
        return [s for s, slot in slots if (s, slot) in left]

    def open_presentation(self, presentation: Presentation) -> None:
        self.opened.append(presentation)

    def record_rating(self, content: dict[str, Any], *, closing: Closing | None) -> str:
        if self.fail_next:
            self.fail_next = False
            raise OSError("database or disk is full")
        self.ratings.append(dict(content))
        if closing is not None:
            self.close_presentation(closing)
        return str(content["id"])

    def close_presentation(self, closing: Closing) -> None:
        self.closed.append((closing.presentation.id, closing.outcome, closing.rating_ids))
        self.causes.append(closing.cause)


def request(
    serials: tuple[str, ...] = ("S1",),
    *,
    kind: str = "instant",
    stage: str = "deliver",
    theme: bool = False,
    agencies: tuple[str, ...] = (),
    assess_number: int = 1,
    visit: int = 1,
) -> Any:
    body: dict[str, Any] = {
        "visit": visit,
        "clerk": {"id": "A1023", "name": "陈晓明"},
        "stage": stage,
        "assess_number": assess_number,
        "agencies": list(agencies),
        "cases": [
            {
                "serial": s,
                "matter_code": f"M{i}" if theme else "M0",
                "matter_name": "居民身份证换领",
                "kind": kind,
            }
            for i, s in enumerate(serials)
        ],
    }
    if theme:
        body["theme"] = {"code": "T1", "name": "我要开饭店"}
    return parse_request(body)


BODY: dict[str, Any] = {
    "clerk": {"id": "A1023", "name": "陈晓明"},
    "stage": "deliver",
    "cases": [
        {"serial": "X1", "matter_code": "M0", "matter_name": "居民身份证换领", "kind": "instant"}
    ],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture
def finished() -> list[Finished]:
    return []


@pytest.fixture
def session(ledger: MemoryLedger, clock: FakeClock, finished: list[Finished]) -> Session:
    return Session(
        ledger=ledger,
        reasons=REASONS,
        clock=clock,
        timeout=60,
        thanks=3,
        on_finished=finished.append,
    )


def test_good_rating_is_recorded_before_thanks_and_reported_without_level(
    session: Session, ledger: MemoryLedger, clock: FakeClock, finished: list[Finished]
) -> None:
    session.start(request())
    assert session.state is State.PRESENTING
    rid = session.press(Level.SATISFIED)
    assert session.state is State.THANKS
    [rating] = ledger.ratings
    assert rating["id"] == rid
    # The outcome went with the rating, in the same ledger call (one transaction).
    assert ledger.closed == [(ledger.opened[0].id, Outcome.RATED, (rid,))]
    assert (rating["level"], rating["score"], rating["satisfaction"], rating["gbt_code"]) == (
        "satisfied",
        8,
        4,
        2,
    )
    assert rating["targets"] == ["clerk", "matter"]
    assert rating["reasons"] == [] and rating["comment"] == ""
    # Durable now, told when the 谢谢 ends (art. 4: a 差评 reaches 谢谢 only at its submit).
    assert finished == [] and session.untold == [
        Finished(ledger.opened[0].id, ("S1",), Outcome.RATED)
    ]
    clock.advance(2.9)
    session.tick()
    assert finished == [] and session.public_state == "rating"
    clock.advance(0.2)
    session.tick()
    assert finished == [Finished(ledger.opened[0].id, ("S1",), Outcome.RATED)]
    assert session.untold == [] and session.public_state == "idle"
    assert "level" not in vars(finished[0])


def test_storage_failure_keeps_the_rating_screen_and_reports_nothing(
    session: Session, ledger: MemoryLedger, finished: list[Finished]
) -> None:
    session.start(request())
    ledger.fail_next = True
    with pytest.raises(OSError):
        session.press(Level.VERY_SATISFIED)
    assert session.state is State.PRESENTING
    assert finished == [] and ledger.ratings == []
    session.press(Level.VERY_SATISFIED)
    assert len(ledger.ratings) == 1 and session.state is State.THANKS


def test_timeout_is_not_rated_never_a_rating(
    session: Session, ledger: MemoryLedger, clock: FakeClock, finished: list[Finished]
) -> None:
    session.start(request())
    clock.advance(59.9)
    session.tick()
    assert session.state is State.PRESENTING
    clock.advance(0.2)
    session.tick()
    assert session.state is State.IDLE
    assert ledger.ratings == []
    assert finished[-1].outcome is Outcome.NOT_RATED
    assert session.press(Level.VERY_SATISFIED) is None
    assert ledger.ratings == []


def test_touches_extend_the_timeout_on_the_reason_screen(
    session: Session, clock: FakeClock
) -> None:
    session.start(request())
    session.press(Level.DISSATISFIED)
    for _ in range(5):
        clock.advance(50)
        session.toggle_reason("214")
    assert session.state is State.CHOOSING_REASONS
    clock.advance(61)
    session.tick()
    assert session.state is State.IDLE


def test_bad_rating_needs_reason_or_other_text(session: Session, ledger: MemoryLedger) -> None:
    session.start(request())
    session.press(Level.VERY_DISSATISFIED)
    assert session.state is State.CHOOSING_REASONS
    with pytest.raises(SubmitError):
        session.submit()
    session.toggle_reason(OTHER_CODE)
    with pytest.raises(SubmitError):
        session.submit()  # 其他 without text
    session.type_text("   ")
    with pytest.raises(SubmitError):
        session.submit()
    session.type_text("等了很久")
    rid = session.submit()
    [rating] = ledger.ratings
    assert rating["id"] == rid and rating["level"] == "very_dissatisfied"
    assert rating["comment"] == "等了很久"
    assert rating["reasons"] == [{"code": "other", "text": "其他", "target": "other"}]


def test_reasons_are_those_of_the_level_and_targets(session: Session, ledger: MemoryLedger) -> None:
    session.start(request(kind="promise", stage="accept"))
    session.press(Level.DISSATISFIED)
    assert session.choice is not None
    assert [r.code for r in session.choice.offered] == ["213", "214"]  # clerk only at acceptance
    assert not session.toggle_reason("207")  # a matter reason is not offered
    assert not session.toggle_reason("115")  # another level's reason
    assert session.toggle_reason("214")
    session.submit()
    assert ledger.ratings[0]["reasons"] == [
        {"code": "214", "text": "服务态度生硬", "target": "clerk"}
    ]
    assert ledger.ratings[0]["targets"] == ["clerk"]


def test_other_text_is_capped_at_150_characters(session: Session, ledger: MemoryLedger) -> None:
    session.start(request())
    session.press(Level.DISSATISFIED)
    session.toggle_reason(OTHER_CODE)
    session.type_text("慢" * 200)
    session.submit()
    assert len(ledger.ratings[0]["comment"]) == 150


def test_back_returns_to_levels_and_a_good_rating_then_has_no_reasons(
    session: Session, ledger: MemoryLedger
) -> None:
    session.start(request())
    session.press(Level.DISSATISFIED)
    session.toggle_reason("214")
    session.back()
    assert session.state is State.PRESENTING
    session.press(Level.SATISFIED)
    assert ledger.ratings[0]["reasons"] == []


def test_one_rating_per_presentation_whatever_the_buttons_do(
    session: Session, ledger: MemoryLedger
) -> None:
    session.start(request())
    for level in BUTTON_ORDER * 3:
        session.press(level)
    assert len(ledger.ratings) == 1
    assert ledger.ratings[0]["level"] == "very_satisfied"


def test_batch_one_press_rates_every_case(session: Session, ledger: MemoryLedger) -> None:
    session.start(request(("S1", "S2", "S3")))
    session.press(Level.VERY_SATISFIED)
    [rating] = ledger.ratings
    assert [c["serial"] for c in rating["cases"]] == ["S1", "S2", "S3"]


def test_already_rated_case_is_refused_but_follow_up_allowed(
    session: Session, clock: FakeClock
) -> None:
    session.start(request())
    session.press(Level.SATISFIED)
    clock.advance(3.1)  # the 谢谢 ends
    with pytest.raises(RequestError) as err:
        session.start(request())
    assert err.value.code == "already_rated"
    clock.advance(4 * 3600)  # [session] followup_gap
    session.start(request(assess_number=2))
    assert session.state is State.PRESENTING


def test_promise_case_rated_at_accept_and_again_at_deliver(
    session: Session, clock: FakeClock
) -> None:
    session.start(request(kind="promise", stage="accept"))
    session.press(Level.SATISFIED)
    clock.advance(3.1)  # the 谢谢 ends
    session.start(request(kind="promise", stage="deliver"))
    assert session.state is State.PRESENTING


def test_busy_and_paused_refuse_new_requests(session: Session) -> None:
    session.start(request(("S1",)))
    with pytest.raises(RequestError) as err:
        session.start(request(("S2",)))
    assert err.value.code == "busy"
    session.pause()
    with pytest.raises(RequestError) as err:
        session.start(request(("S2",)))
    assert err.value.code == "paused"
    session.resume()
    assert session.state is State.IDLE


def test_cancel_before_any_press_ends_cancelled_without_rating(
    session: Session, ledger: MemoryLedger, finished: list[Finished]
) -> None:
    session.start(request())
    assert session.cancel()
    assert ledger.ratings == [] and finished[-1].outcome is Outcome.CANCELLED
    assert ledger.causes == ["evaluation.cancel"]
    assert not session.cancel()


@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("action", ["cancel", "pause", "sign_out", "sign_in"])
def test_once_the_citizen_pressed_a_level_the_clerk_cannot_end_the_presentation(
    session: Session, ledger: MemoryLedger, clock: FakeClock, level: Level, action: str
) -> None:
    """Art. 4: the 差评 suppression (press 非常不满意, clerk cancels, starts again, gets a 好评)
    is closed for every clerk-side request, with one refusal code whatever the level."""
    session.start(request(("S1", "S2"), theme=True))
    session.expand_theme()  # items one by one: a 好评 on item 1 leaves the screen open
    session.press(level)
    assert session.rating_open and session.public_state == "rating"
    call = {
        "cancel": session.cancel,
        "pause": session.pause,
        "sign_out": session.sign_out,
        "sign_in": lambda: session.sign_in(
            parse_request({**BODY, "clerk": {"id": "B7", "name": "王强"}}).clerk
        ),
    }[action]
    with pytest.raises(RequestError) as err:
        call()
    # sign_in is refused the same way whether or not the citizen touched the screen.
    assert err.value.code == ("busy" if action == "sign_in" else CITIZEN_RATING)
    assert "dissatisfied" not in err.value.message and "satisfied" not in err.value.message
    assert session.rating_open and session.presentation is not None
    assert ledger.closed == []
    # The screen times out: the clerk's side may act again, nothing was rated by the timeout.
    clock.advance(61)
    session.tick()
    assert not session.rating_open
    if level.is_bad:
        assert ledger.closed[-1][1] is Outcome.NOT_RATED and ledger.causes[-1] == "timeout"


def test_status_state_is_the_same_on_the_level_and_the_reason_screen(
    session: Session,
) -> None:
    session.start(request())
    looking = session.public_state
    session.press(Level.VERY_DISSATISFIED)
    assert session.public_state == looking == "rating"


def test_a_timeout_on_the_reason_screen_is_not_rated_and_stores_no_level(
    session: Session, ledger: MemoryLedger, clock: FakeClock, finished: list[Finished]
) -> None:
    session.start(request())
    session.press(Level.DISSATISFIED)
    session.toggle_reason("213")  # chosen but never submitted
    clock.advance(61)
    session.tick()
    assert ledger.ratings == []
    assert finished[-1].outcome is Outcome.NOT_RATED
    assert ledger.closed[-1][1] is Outcome.NOT_RATED


def test_sign_in_while_a_screen_is_open_is_refused_so_screen_and_record_agree(
    session: Session, ledger: MemoryLedger
) -> None:
    session.start(request())
    with pytest.raises(RequestError) as err:
        session.sign_in(parse_request({**BODY, "clerk": {"id": "B7", "name": "王强"}}).clerk)
    assert err.value.code == "busy"
    session.press(Level.SATISFIED)
    assert ledger.ratings[0]["clerk"] == {"id": "A1023", "name": "陈晓明"}


def test_a_follow_up_needs_a_first_rating_and_names_it(
    session: Session, ledger: MemoryLedger, clock: FakeClock
) -> None:
    with pytest.raises(RequestError) as err:
        session.start(request(("S1",), assess_number=2))
    assert err.value.code == "no_first_rating"
    session.start(request(("S1",)))
    first = session.press(Level.SATISFIED)
    clock.advance(4 * 3600)
    session.tick()
    session.start(request(("S1",), assess_number=2))
    session.press(Level.BASICALLY_SATISFIED)
    assert ledger.ratings[-1]["follows"] == [first]
    assert ledger.ratings[-1]["assess_number"] == 2
    clock.advance(5)
    session.tick()
    with pytest.raises(RequestError) as again:
        session.start(request(("S1",), assess_number=2))
    assert again.value.code == "already_rated"


def test_a_follow_up_after_the_window_is_refused(ledger: MemoryLedger) -> None:
    clock = FakeClock()
    s = Session(ledger=ledger, reasons=REASONS, clock=clock, followup_window=3600)
    s.sign_in(request().clerk)
    s.start(request(("S1",)))
    s.press(Level.SATISFIED)
    clock.advance(3601)
    s.tick()
    with pytest.raises(RequestError) as err:
        s.start(request(("S1",), assess_number=2))
    assert err.value.code == "followup_expired"


def test_a_promise_case_rates_the_clerk_once_per_window_visit(
    session: Session, ledger: MemoryLedger, clock: FakeClock
) -> None:
    session.start(request(("P1",), kind="promise", stage="accept"))
    session.press(Level.SATISFIED)
    clock.advance(5)
    session.tick()
    with pytest.raises(RequestError) as err:
        session.start(request(("P1",), kind="promise", stage="accept"))
    assert err.value.code == "already_rated"
    clock.advance(2 * 3600)
    session.start(request(("P1",), kind="promise", stage="accept", visit=2))
    session.press(Level.SATISFIED)
    clock.advance(5)
    session.tick()
    session.start(request(("P1",), kind="promise", stage="deliver"))
    session.press(Level.SATISFIED)
    assert [r["visit"] for r in ledger.ratings] == [1, 2, 1]
    assert [r["targets"] for r in ledger.ratings][-1] == ["clerk", "matter"]


@pytest.mark.parametrize("stages", [("accept", "deliver"), ("deliver", "accept")])
def test_a_consult_case_is_rated_once_in_total(
    session: Session, clock: FakeClock, stages: tuple[str, str]
) -> None:
    session.start(request(("C1",), kind="consult", stage=stages[0]))
    session.press(Level.SATISFIED)
    clock.advance(5)
    session.tick()
    with pytest.raises(RequestError) as err:
        session.start(request(("C1",), kind="consult", stage=stages[1]))
    assert err.value.code == "already_rated"


def test_thanks_returns_to_idle_and_a_new_start_waits_for_it(
    session: Session, clock: FakeClock
) -> None:
    """A start during 谢谢 is refused ``busy``, as on an open rating screen: a 好评 is on 谢谢
    while a 差评 is still on its reasons, and the clerk's side must not tell them apart."""
    session.start(request(("S1",)))
    session.press(Level.SATISFIED)
    clock.advance(3.1)
    session.tick()
    assert session.state is State.IDLE
    session.start(request(("S2",)))
    session.press(Level.SATISFIED)
    with pytest.raises(RequestError) as err:
        session.start(request(("S3",)))
    assert err.value.code == "busy" and session.state is State.THANKS
    clock.advance(3.1)
    session.start(request(("S3",)))  # the start's own tick ends the 谢谢 first
    assert session.state is State.PRESENTING


def test_theme_overall_by_default_or_item_by_item(
    session: Session, ledger: MemoryLedger, clock: FakeClock, finished: list[Finished]
) -> None:
    session.start(request(("S1", "S2"), theme=True))
    session.press(Level.SATISFIED)
    assert [c["serial"] for c in ledger.ratings[0]["cases"]] == ["S1", "S2"]
    clock.advance(3.1)  # the 谢谢 ends

    session.start(request(("S3", "S4", "S5"), theme=True))
    assert session.expand_theme()
    session.press(Level.VERY_SATISFIED)
    assert session.state is State.PRESENTING
    session.press(Level.DISSATISFIED)
    session.toggle_reason("213")
    session.submit()
    assert [r["cases"][0]["serial"] for r in ledger.ratings[1:]] == ["S3", "S4"]
    clock.advance(61)
    session.tick()
    assert finished[-2:] == [
        Finished(finished[-1].presentation_id, ("S3", "S4"), Outcome.RATED),
        Finished(finished[-1].presentation_id, ("S5",), Outcome.NOT_RATED),
    ]


def test_agencies_concerned_only_when_the_matter_is_rated(
    session: Session, ledger: MemoryLedger
) -> None:
    session.start(request(kind="promise", agencies=("市场监管局", "消防救援支队")))
    session.press(Level.DISSATISFIED)
    assert session.toggle_agency("消防救援支队")
    assert not session.toggle_agency("税务局")
    session.toggle_reason("209")
    session.submit()
    assert ledger.ratings[0]["agencies_concerned"] == ["消防救援支队"]
    assert ledger.ratings[0]["agencies"] == ["市场监管局", "消防救援支队"]


def test_times_are_recorded_with_sync_state(
    session: Session, ledger: MemoryLedger, clock: FakeClock
) -> None:
    clock.synced = False
    session.start(request())
    clock.advance(4.5)
    session.press(Level.SATISFIED)
    r = ledger.ratings[0]
    assert r["presented_clock_synced"] is False and r["elapsed_ms"] == 4500
    assert r["presented_at"] < r["rated_at"]


# -- property tests over random event sequences ------------------------------------------------

events = st.one_of(
    st.tuples(st.just("start"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("press"), st.sampled_from(BUTTON_ORDER)),
    st.tuples(st.just("reason"), st.sampled_from(["108", "115", "207", "213", "214", "other"])),
    st.tuples(st.just("text"), st.text(max_size=5)),
    st.tuples(st.just("submit")),
    st.tuples(st.just("back")),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("expand")),
    st.tuples(st.just("wait"), st.floats(0, 120)),
    st.tuples(st.just("pause")),
    st.tuples(st.just("resume")),
    st.tuples(st.just("sign_out")),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(events, max_size=60))
def test_invariants_hold_for_any_event_sequence(seq: list[tuple[Any, ...]]) -> None:
    clock, ledger, finished = FakeClock(), MemoryLedger(), []
    s = Session(ledger=ledger, reasons=REASONS, clock=clock, on_finished=finished.append)
    presses: dict[str, list[str]] = {}
    for event in seq:
        before = len(ledger.ratings)
        name = event[0]
        try:
            if name == "start":
                serials = tuple(f"S{event[1]}-{i}" for i in range(1 + event[1] % 3))
                s.start(request(serials, theme=event[2]))
            elif name == "press":
                if s.state is State.PRESENTING and s.presentation is not None:
                    presses.setdefault(s.presentation.id, []).append(event[1].value)
                s.press(event[1])
            elif name == "reason":
                s.toggle_reason(event[1])
            elif name == "text":
                s.type_text(event[1])
            elif name == "submit":
                s.submit()
            elif name == "back":
                s.back()
            elif name == "cancel":
                s.cancel()
            elif name == "expand":
                s.expand_theme()
            elif name == "wait":
                clock.advance(event[1])
                s.tick()
            else:
                getattr(s, name)()
        except (RequestError, SubmitError):
            pass
        if name in ("wait", "cancel", "pause", "sign_out", "start", "back", "reason", "text"):
            assert len(ledger.ratings) == before, f"{name} produced a rating"
    # never two ratings for one (presentation, case)
    keys = [(r["presentation_id"], c["serial"]) for r in ledger.ratings for c in r["cases"]]
    assert len(keys) == len(set(keys))
    for r in ledger.ratings:
        # never a rating without a press of that level in that presentation
        assert r["level"] in presses.get(r["presentation_id"], [])
        # never a bad rating without a reason or text
        if Level(r["level"]).is_bad:
            assert r["reasons"] and (
                any(x["code"] != "other" for x in r["reasons"]) or r["comment"].strip()
            )
    ratings_per_presentation: dict[str, int] = {}
    for r in ledger.ratings:
        ratings_per_presentation[r["presentation_id"]] = (
            ratings_per_presentation.get(r["presentation_id"], 0) + 1
        )
    for pid, n in ratings_per_presentation.items():
        assert n <= len(presses[pid])
    # every outcome reported as rated is backed by a stored rating for those serials
    rated_serials = {
        (r["presentation_id"], c["serial"]) for r in ledger.ratings for c in r["cases"]
    }
    for f in finished:
        for serial in f.serials:
            assert ((f.presentation_id, serial) in rated_serials) == (f.outcome is Outcome.RATED)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (("instant", "deliver"), ("consult", "deliver")),
        (("instant", "deliver"), ("promise", "accept")),
        (("consult", "accept"), ("promise", "accept")),
        (("consult", "deliver"), ("instant", "deliver")),
        (("promise", "accept"), ("consult", "deliver")),
    ],
)
def test_a_rated_case_keeps_its_kind_so_no_new_slot_opens(
    session: Session, ledger: MemoryLedger, clock: FakeClock, first: Any, then: Any
) -> None:
    """A kind sent differently later must not give the same case a second first rating."""
    session.start(request(("S1",), kind=first[0], stage=first[1]))
    session.press(Level.VERY_DISSATISFIED)
    session.toggle_reason(session.choice.offered[0].code)
    session.submit()
    clock.advance(5)
    session.tick()
    with pytest.raises(RequestError) as err:
        session.start(request(("S1",), kind=then[0], stage=then[1]))
    assert err.value.code == "kind_changed"
    assert len(ledger.ratings) == 1


def test_sign_in_is_refused_alike_before_and_after_a_press(session: Session) -> None:
    """A side-effect-free probe must not tell the clerk that a 差评 screen is showing."""
    session.start(request(("S1",)))
    other = request().clerk
    codes = []
    for press in (False, True):
        if press:
            session.press(Level.VERY_DISSATISFIED)
        with pytest.raises(RequestError) as err:
            session.sign_in(other)
        codes.append(err.value.code)
    assert codes == ["busy", "busy"]


@pytest.mark.parametrize(
    "text", ["请回电13812345678", "身份证440524199003071236", "手机 +86 138-1234-5678"]
)
def test_identity_in_the_other_text_is_refused_and_nothing_stored(
    session: Session, ledger: MemoryLedger, text: str
) -> None:
    from evaluator.rules.errors import IdentityInComment

    session.start(request())
    session.press(Level.DISSATISFIED)
    session.toggle_reason(OTHER_CODE)
    session.type_text(text)
    with pytest.raises(IdentityInComment):
        session.submit()
    assert ledger.ratings == [] and session.state is State.CHOOSING_REASONS
    for _ in text:
        session.backspace()
    session.type_text("等了很久")
    session.submit()
    assert ledger.ratings[0]["comment"] == "等了很久"


# --- self-service terminal (自助终端, art. 18/23, art. 9) ------------------------------------


def terminal_request(serial: str = "T1", *, assess_number: int = 1, **extra: Any) -> Any:
    return parse_request(
        {
            "terminal": "ZZ-0107",
            "stage": "deliver",
            "assess_number": assess_number,
            "cases": [
                {"serial": serial, "matter_code": "M0", "matter_name": "社保", "kind": "instant"}
            ],
            **extra,
        }
    )


def test_a_terminal_rating_rates_the_matter_on_channel_5_with_the_terminal(
    session: Session, ledger: MemoryLedger, clock: FakeClock, finished: list[Finished]
) -> None:
    from evaluator.rules.session import CHANNEL_PAD, CHANNEL_SELF_SERVICE

    assert (CHANNEL_PAD, CHANNEL_SELF_SERVICE) == (4, 5)
    presentation = session.start(terminal_request())
    assert presentation.targets == ("matter",)
    session.press(Level.SATISFIED)
    [record] = ledger.ratings
    assert record["channel"] == 5 and record["terminal"] == "ZZ-0107"
    assert record["clerk"] is None and record["targets"] == ["matter"]
    assert record["area_code"] == "440500" and record["cases"][0]["serial"] == "T1"
    clock.advance(3.1)  # told when the 谢谢 ends
    session.tick()
    assert finished == [Finished(presentation.id, ("T1",), Outcome.RATED)]
    with pytest.raises(RequestError) as info:  # one rating per case and slot, as at a window
        session.start(terminal_request())
    assert info.value.code == "already_rated"


def test_a_window_rating_has_channel_4_and_no_terminal(
    session: Session, ledger: MemoryLedger
) -> None:
    session.start(request())
    session.press(Level.SATISFIED)
    [record] = ledger.ratings
    assert (record["channel"], record["terminal"]) == (4, None)
    assert record["clerk"] == {"id": "A1023", "name": "陈晓明"}


@pytest.mark.parametrize("level", [Level.DISSATISFIED, Level.VERY_DISSATISFIED])
def test_a_terminal_bad_rating_offers_the_matter_reasons_only(
    session: Session, ledger: MemoryLedger, level: Level
) -> None:
    session.start(terminal_request(agencies=["汕头市人社局"]))
    session.press(level)
    choice = session.choice
    assert choice is not None and choice.offered
    assert choice.offered == REASONS.for_level(level, ("matter",))
    assert {r.target for r in choice.offered} == {"matter"}
    clerk_reason = REASONS.for_level(level, ("clerk",))[0]
    assert not session.toggle_reason(clerk_reason.code)  # not offered: no clerk to blame
    assert session.toggle_agency("汕头市人社局")
    assert session.toggle_reason(choice.offered[0].code)
    session.submit()
    [record] = ledger.ratings
    assert record["targets"] == ["matter"] and record["clerk"] is None
    assert [r["target"] for r in record["reasons"]] == ["matter"]
    assert record["agencies_concerned"] == ["汕头市人社局"]


def test_a_terminal_request_leaves_the_window_clerk_as_it_was(session: Session) -> None:
    from evaluator.rules.request import Clerk

    session.sign_in(Clerk("A1", "李娜"))
    session.start(terminal_request())
    assert session.clerk == Clerk("A1", "李娜")
    session.press(Level.SATISFIED)
    assert session.clerk == Clerk("A1", "李娜")


def test_a_terminal_follow_up_follows_the_first_terminal_rating(
    session: Session, ledger: MemoryLedger, clock: FakeClock
) -> None:
    session.start(terminal_request())
    session.press(Level.BASICALLY_SATISFIED)
    clock.advance(4 * 3600)  # [session] followup_gap
    session.tick()
    session.start(terminal_request(assess_number=2))
    session.press(Level.VERY_SATISFIED)
    first, follow = ledger.ratings
    assert follow["follows"] == [first["id"]] and follow["assess_number"] == 2
    assert (follow["channel"], follow["terminal"], follow["clerk"]) == (5, "ZZ-0107", None)


# -- art. 4 through the clerk's side: a touched presentation looks alike until 谢谢 ends -------


def _clerk_view(session: Session) -> tuple[str, tuple[str, ...]]:
    """What the clerk's side can learn now without changing anything: the state, and the
    refusal code of each request that would end or replace the presentation (a request that
    succeeds is reported as ``ok``: then the probe changed the session, and it is a leak)."""
    codes = []
    other = request().clerk
    for call in (
        session.cancel,
        session.pause,
        session.sign_out,
        lambda: session.sign_in(other),
        lambda: session.start(request(("PROBE",))),
    ):
        try:
            call()
        except RequestError as err:
            codes.append(err.code)
        else:
            codes.append("ok")
    return session.public_state, tuple(codes)


def _present_and_rate(session: Session, clock: FakeClock, level: Level) -> list[Any]:
    """Start, press ``level`` (a 差评: 10 s on the reasons, then submit), and what the
    clerk's side sees at the press, on the reasons, at the start of 谢谢 and just before
    its end (a 好评: at the press, twice, and just before the end of its 谢谢)."""
    session.start(request(("S1",)))
    seen: list[Any] = []
    session.press(level)
    seen.append(_clerk_view(session))
    if level.is_bad:
        clock.advance(10)
        seen.append(_clerk_view(session))  # still choosing reasons
        session.toggle_reason(session.choice.offered[0].code)
        session.submit()
    else:
        seen.append(_clerk_view(session))
    seen.append(_clerk_view(session))
    clock.advance(session.thanks - 0.1)
    session.tick()
    seen.append(_clerk_view(session))
    return seen


@pytest.mark.parametrize("thanks", [3.0, 30.0])
def test_the_clerks_side_sees_the_same_for_every_level_until_the_thanks_ends(
    ledger: MemoryLedger, clock: FakeClock, thanks: float
) -> None:
    """Every level gives one view: ``rating``, cancel/pause/sign-out refused
    ``citizen_rating``, sign-in and start ``busy`` — on the reason screen and on 谢谢 alike."""
    views = {}
    for level in Level:
        told: list[Finished] = []
        s = Session(ledger=MemoryLedger(), reasons=REASONS, clock=clock, thanks=thanks,
                    on_finished=told.append)  # fmt: skip
        views[level] = _present_and_rate(s, clock, level)
        assert told == [], f"{level} told before its 谢谢 ended"
    expected = ("rating", (CITIZEN_RATING, CITIZEN_RATING, CITIZEN_RATING, "busy", "busy"))
    assert all(v == [expected] * 4 for v in views.values()), views


@pytest.mark.parametrize("level", [Level.SATISFIED, Level.DISSATISFIED])
def test_a_rating_is_told_when_its_thanks_ends_and_only_then(
    session: Session, ledger: MemoryLedger, clock: FakeClock, finished: list[Finished],
    level: Level,
) -> None:  # fmt: skip
    """Durable at the press (or submit), told ``thanks`` seconds later: for both kinds the
    moment is "the citizen's last touch + 谢谢"."""
    ended: list[Finished] = []
    session.on_ended = ended.append
    p = session.start(request(("S1",)))
    session.press(level)
    if level.is_bad:
        clock.advance(7)
        session.toggle_reason(session.choice.offered[0].code)
        session.submit()
    assert len(ledger.ratings) == 1 and ledger.closed[-1][1] is Outcome.RATED  # durable now
    assert ended == [Finished(p.id, ("S1",), Outcome.RATED)] and finished == []
    clock.advance(2.99)
    session.tick()
    assert finished == [] and session.state is State.THANKS
    clock.advance(0.02)
    session.tick()
    assert finished == ended and session.state is State.IDLE and session.untold == []
    assert session.cancel() is False  # nothing open: the counter may go on


def test_with_thanks_zero_a_rating_is_told_at_the_next_tick(
    ledger: MemoryLedger, clock: FakeClock
) -> None:
    told: list[Finished] = []
    s = Session(ledger=ledger, reasons=REASONS, clock=clock, thanks=0, on_finished=told.append)
    s.start(request(("S1",)))
    s.press(Level.VERY_SATISFIED)
    assert told == []
    s.tick()
    assert [f.outcome for f in told] == [Outcome.RATED] and s.state is State.IDLE


def test_an_untouched_screen_is_rating_and_may_still_be_cancelled(
    session: Session, finished: list[Finished]
) -> None:
    """Before any touch the clerk may withdraw the screen: that reveals nothing."""
    session.start(request(("S1",)))
    assert session.public_state == "rating"
    assert session.cancel()
    assert [f.outcome for f in finished] == [Outcome.CANCELLED]  # told at once, as before
    assert session.public_state == "idle"


def test_a_theme_rated_in_part_then_timed_out_is_told_at_the_timeout(
    session: Session, clock: FakeClock, finished: list[Finished]
) -> None:
    """Not-rated and cancelled outcomes are told as before, at once (the timeout here)."""
    session.start(request(("S1", "S2"), theme=True))
    session.expand_theme()
    session.press(Level.SATISFIED)  # item 1 rated, item 2 waits
    assert finished == [] and session.public_state == "rating"
    clock.advance(61)
    session.tick()
    assert [(f.serials, f.outcome) for f in finished] == [
        (("S1",), Outcome.RATED),
        (("S2",), Outcome.NOT_RATED),
    ]


def test_an_untold_rating_survives_a_restart_in_the_window_state(
    session: Session, ledger: MemoryLedger, clock: FakeClock
) -> None:
    """A restart during 谢谢: the rating is stored, its telling is kept with the window state
    and the next start tells it (:meth:`Session.tell_untold`)."""
    session.sign_in(request().clerk)
    p = session.start(request(("S1", "S2")))
    session.press(Level.VERY_SATISFIED)
    saved = session.window_state()
    assert saved["state"] == "idle" and saved["untold"] == [
        {"presentation_id": p.id, "serials": ["S1", "S2"], "outcome": "rated"}
    ]
    told: list[Finished] = []
    again = Session(ledger=ledger, reasons=REASONS, clock=clock, on_finished=told.append)
    again.restore_window(saved)
    assert again.untold == [Finished(p.id, ("S1", "S2"), Outcome.RATED)] and told == []
    again.tick()  # a restored outcome waits for tell_untold (the counter may not be up yet)
    assert told == []
    again.tell_untold()
    assert told == [Finished(p.id, ("S1", "S2"), Outcome.RATED)] and again.untold == []
    assert "untold" not in again.window_state()


@pytest.mark.parametrize(
    "untold",
    [
        "rated",
        7,
        [{"presentation_id": "p", "serials": [], "outcome": "rated"}],
        [{"presentation_id": "p", "serials": ["S1"], "outcome": "very_satisfied"}],
        [{"serials": ["S1"], "outcome": "rated"}],
    ],
)
def test_a_kept_untold_that_is_not_one_is_refused_and_changes_nothing(
    ledger: MemoryLedger, clock: FakeClock, untold: Any
) -> None:
    s = Session(ledger=ledger, reasons=REASONS, clock=clock)
    with pytest.raises(ValueError):
        s.restore_window({"clerk": None, "state": "idle", "untold": untold})
    assert s.state is State.SIGNED_OUT and s.untold == []


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=60))
def test_a_rating_is_never_told_before_its_thanks_ends_and_always_after(
    seq: list[tuple[Any, ...]],
) -> None:
    """For any sequence: 谢谢 reads ``rating`` to the clerk's side and a rated outcome is told
    only once no 谢谢 is up; in the end every stored rating has been told exactly once."""
    clock, ledger, told = FakeClock(), MemoryLedger(), []
    s = Session(ledger=ledger, reasons=REASONS, clock=clock)

    def tell(f: Finished) -> None:
        assert s.state is not State.THANKS or f.outcome is not Outcome.RATED
        told.append(f)

    s.on_finished = tell
    for event in seq:
        name = event[0]
        try:
            if name == "start":
                s.start(request(tuple(f"S{event[1]}-{i}" for i in range(1 + event[1] % 3)),
                                theme=event[2]))  # fmt: skip
            elif name == "press":
                s.press(event[1])
            elif name == "reason":
                s.toggle_reason(event[1])
            elif name == "text":
                s.type_text(event[1])
            elif name == "wait":
                clock.advance(event[1])
                s.tick()
            elif name == "expand":
                s.expand_theme()
            else:
                getattr(s, name)()
        except (RequestError, SubmitError):
            pass
        if s.state is State.THANKS:
            assert s.public_state == "rating"
    clock.advance(1000)
    s.tick()
    rated = sorted((r["presentation_id"], c["serial"]) for r in ledger.ratings for c in r["cases"])
    told_rated = sorted(
        (f.presentation_id, serial)
        for f in told
        if f.outcome is Outcome.RATED
        for serial in f.serials
    )
    assert told_rated == rated


@pytest.mark.parametrize(
    ("kind", "stage", "assess", "visit", "gap"),
    [("instant", "deliver", 2, 1, 4 * 3600), ("promise", "accept", 1, 2, 2 * 3600),
     ("promise", "accept", 1, 3, 2 * 3600), ("promise", "accept", 2, 1, 4 * 3600)],
)  # fmt: skip
def test_a_follow_up_or_further_visit_needs_its_gap_since_the_previous_rating(
    session: Session, clock: FakeClock, kind: str, stage: str, assess: int, visit: int, gap: int
) -> None:
    session.start(request(("S1",), kind=kind, stage=stage))
    session.press(Level.SATISFIED)
    for wait in (3.1, gap - 10):
        clock.advance(wait)
        session.tick()
        with pytest.raises(RequestError) as err:
            session.start(request(("S1",), kind=kind, stage=stage, assess_number=assess,
                                  visit=visit))  # fmt: skip
        assert err.value.code == "too_soon"
    clock.advance(10)
    session.start(request(("S1",), kind=kind, stage=stage, assess_number=assess, visit=visit))
    assert session.state is State.PRESENTING


@pytest.mark.parametrize(("then", "now"), [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize(("assess", "visit"), [(2, 1), (1, 2)])
def test_an_unmeasurable_gap_is_refused_never_allowed(
    ledger: MemoryLedger, then: bool, now: bool, assess: int, visit: int
) -> None:
    clock = FakeClock(synced=True)
    s = Session(ledger=ledger, reasons=REASONS, clock=clock)
    s.sign_in(request().clerk)
    s.start(request(("P1",), kind="promise", stage="accept"))
    s.press(Level.SATISFIED)
    ledger.last_ratings = lambda serials: {  # type: ignore[method-assign]
        "P1": FirstRating("P1", ledger.ratings[0]["id"], ledger.ratings[0]["rated_at"], then)
    }
    ledger.first_ratings = ledger.last_ratings  # type: ignore[assignment]
    clock.advance(30 * 24 * 3600 if assess == 1 else 5 * 3600)
    clock.synced = now
    s.tick()
    with pytest.raises(RequestError) as err:
        s.start(request(("P1",), kind="promise", stage="accept", assess_number=assess,
                        visit=visit))  # fmt: skip
    assert err.value.code == "clock_untrusted"


@pytest.mark.parametrize("rated_at", ["", "2026-13-01T00:00:00+08:00", "2026-01\x0001"])
def test_an_unreadable_previous_time_is_refused_and_named_not_blamed_on_the_clock(
    ledger: MemoryLedger, rated_at: str
) -> None:
    """A flipped byte in a stored rated_at: refused as unmeasurable, and the message sends the
    technician to the damaged row, not to a clock that is synchronised."""
    clock = FakeClock(synced=True)
    s = Session(ledger=ledger, reasons=REASONS, clock=clock)
    s.sign_in(request().clerk)
    s.start(request(("P1",), kind="promise", stage="accept"))
    s.press(Level.SATISFIED)
    rid = ledger.ratings[0]["id"]
    ledger.last_ratings = lambda serials: {  # type: ignore[method-assign]
        "P1": FirstRating("P1", rid, rated_at, True)
    }
    clock.advance(5 * 3600)
    s.tick()
    with pytest.raises(RequestError) as err:
        s.start(request(("P1",), kind="promise", stage="accept", visit=2))
    assert err.value.code == "clock_untrusted"
    assert "cannot be read" in str(err.value) and rid in str(err.value)
    assert "not synchronised" not in str(err.value)


@pytest.mark.parametrize("touches", ["press_bad", "reason", "back"])
def test_a_touched_case_left_unrated_is_not_shown_again_at_the_counter(
    session: Session, clock: FakeClock, touches: str
) -> None:
    session.start(request(("S1", "S2")))
    session.press(Level.VERY_DISSATISFIED if touches != "back" else Level.DISSATISFIED)
    if touches == "reason":
        session.toggle_reason(session.reasons.reasons[0].code)
    if touches == "back":
        session.back()
    clock.advance(session.timeout + 1)
    session.tick()
    assert session.state is State.IDLE
    for serials in (("S1",), ("S2",), ("S3", "S2")):
        with pytest.raises(RequestError) as err:
            session.start(request(serials))
        assert err.value.code == "left_unrated"
    session.start(request(("S3",)))  # another case is shown as ever


def test_an_untouched_case_that_timed_out_may_be_shown_again(
    session: Session, clock: FakeClock
) -> None:
    session.start(request(("S1",)))
    clock.advance(session.timeout + 1)
    session.tick()
    session.start(request(("S1",)))
    assert session.state is State.PRESENTING
