"""The pad's session as a state machine (art. 4, 11, 17, 22–25, 27–32).

States: signed out → idle ⇄ presenting → (choosing reasons) → thanks → idle; paused on demand.

Guarantees, each enforced here and checked by property tests:

* one rating per presentation (per case when a theme is rated item by item), whatever the
  buttons do;
* a rating exists only because a level button was pressed; a timeout ends the presentation
  **not rated**, never with a rating;
* a 差评 cannot be submitted without a reason or 其他 text;
* a rating is handed to the ledger, which makes it durable together with the presentation's
  outcome (one transaction), **before** the session reaches the thanks state or reports it;
* once the citizen has pressed a level, the clerk's side cannot end the presentation (art. 4):
  cancel, pause and sign-out are refused with :data:`CITIZEN_RATING` (start and sign-in with
  ``busy``) until the 谢谢 that follows the rating has ended or the screen times out, and nothing
  the clerk's side reads tells which level it was: a 好评 ends the rating screen at the press, a
  差评 only at its submit, so the clerk's side sees one ``rating`` state from the start until the
  谢谢 has ended (:attr:`Session.public_state`), gets the same refusals meanwhile, and hears of
  a rated outcome (``on_finished``) only when the 谢谢 ends — the moment is "press (or submit)
  + thanks" for both kinds.  The outcome is durable at the press or submit as before;
  only the telling waits (:attr:`Session.untold`, kept across a restart by
  :meth:`Session.window_state`);
* a follow-up (追加评价, ``assess_number`` 2) needs a first rating of every case in the same slot,
  at most once, within the follow-up window, and its record names the ratings it follows;
* the counter cannot aim a re-ask (art. 4, 22): a case the citizen touched and left unrated is
  never shown again at the counter (``left_unrated``; the receipt QR and the art. 25 SMS
  are the citizen's channels for it), a follow-up or a 承诺件 visit after the first needs
  a gap since that case's previous rating (``too_soon``), and where that time cannot be
  measured on a synchronised clock they are refused (``clock_untrusted``).

A timeout on the reason screen ends the presentation **not rated**: the citizen chose a 差评 level
but gave no reason, and a 差评 without a reason cannot be submitted (art. 11); filling one in, or
recording the level alone, would be a rating the citizen did not submit (art. 25: a timeout is
never a rating).  The level is forgotten, not stored; the province's 24-hour SMS (art. 25) gives the
citizen the chance to rate.  The presentation row does record that the citizen touched it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from evaluator.rules.clock import Clock, Stamp
from evaluator.rules.errors import IdentityInComment, RequestError, SubmitError
from evaluator.rules.levels import Level
from evaluator.rules.reasons import COMMENT_MAX, OTHER_CODE, OTHER_TEXT, Reason, ReasonCatalog
from evaluator.rules.records import RatingContent, new_record_id
from evaluator.rules.request import Case, Clerk, EvaluationRequest, identity_in

#: Channel code ``pf`` of the pad itself (政务大厅平板电脑).
CHANNEL_PAD = 4
#: Channel code ``pf`` of a rating at a self-service terminal (政务大厅其他终端/自助终端).
CHANNEL_SELF_SERVICE = 5

#: Refusal code for every clerk-side request that would end a presentation the citizen has
#: started rating (art. 4).  One code whatever the level, so the refusal tells nothing.
CITIZEN_RATING = "citizen_rating"

#: Why a presentation ended, as recorded with it (a supervisor sees who cancels how often).
CAUSE_RATED = "rated"
CAUSE_TIMEOUT = "timeout"
CAUSE_CANCEL = "evaluation.cancel"
CAUSE_PAUSE = "window.pause"
CAUSE_SIGN_OUT = "clerk.sign_out"


class State(Enum):
    SIGNED_OUT = "signed_out"
    IDLE = "idle"
    PRESENTING = "presenting"
    CHOOSING_REASONS = "choosing_reasons"
    THANKS = "thanks"
    PAUSED = "paused"


class Outcome(Enum):
    RATED = "rated"
    NOT_RATED = "not_rated"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class FirstRating:
    """A case's first rating in a slot, as a follow-up needs to know it."""

    serial: str
    rating_id: str
    rated_at: str
    """ISO time with offset, as recorded."""
    clock_synced: bool


@dataclass(frozen=True)
class Closing:
    """A presentation's end, written in the same transaction as its last rating (if any)."""

    presentation: Presentation
    outcome: Outcome
    at: Stamp
    rating_ids: tuple[str, ...]
    cause: str


class Ledger(Protocol):
    """Where the session's facts go; ``record_rating`` returns only once the rating is durable."""

    def already_rated(self, slots: tuple[tuple[str, str], ...], assess_number: int) -> list[str]:
        """Serials of ``(serial, slot)`` pairs already rated with ``assess_number``."""
        ...

    def case_kinds(self, serials: tuple[str, ...]) -> Mapping[str, str]:
        """Serial → the kind it was rated with before, for those already rated."""
        ...

    def first_ratings(self, slots: tuple[tuple[str, str], ...]) -> Mapping[str, FirstRating]:
        """Serial → its first rating (assess number 1) in that slot, for those that have one."""
        ...

    def last_ratings(self, serials: tuple[str, ...]) -> Mapping[str, FirstRating]:
        """Serial → its latest rating in any slot or assess number, for those rated."""
        ...

    def left_unrated(self, slots: tuple[tuple[str, str], ...], assess_number: int) -> list[str]:
        """Serials of ``(serial, slot)`` pairs a presentation with ``assess_number`` showed,
        the citizen touched and that ended without a rating."""
        ...

    def open_presentation(self, presentation: Presentation) -> None: ...

    def record_rating(self, content: dict[str, Any], *, closing: Closing | None) -> str:
        """Commit ``content`` (and ``closing``, atomically with it); return the rating id."""
        ...

    def close_presentation(self, closing: Closing) -> None: ...


@dataclass(frozen=True)
class Finished:
    """A presentation (or part of one) ended: reported to the counter, never with the level."""

    presentation_id: str
    serials: tuple[str, ...]
    outcome: Outcome


@dataclass
class Presentation:
    """One showing of the rating screen for a request."""

    id: str
    request: EvaluationRequest
    started: Stamp
    itemised: bool = False
    index: int = 0
    rating_ids: list[str] = field(default_factory=list)
    rated_serials: list[str] = field(default_factory=list)
    touched: bool = False
    """The citizen pressed a level: from then on only the citizen or the timeout ends it."""
    follows: tuple[str, ...] = ()
    """For a follow-up: the ids of the first ratings it follows."""

    @property
    def current_cases(self) -> tuple[Case, ...]:
        """The cases the next rating covers: all of them, or the current theme item."""
        if self.itemised:
            return (self.request.cases[self.index],)
        return self.request.cases

    @property
    def targets(self) -> tuple[str, ...]:
        return self.request.targets(self.current_cases)


@dataclass
class ReasonChoice:
    """The reason screen's state for a chosen 差评 level."""

    level: Level
    offered: tuple[Reason, ...]
    selected: list[str] = field(default_factory=list)
    other: bool = False
    comment: str = ""
    agencies: list[str] = field(default_factory=list)

    @property
    def can_submit(self) -> bool:
        """A reason chosen, or 其他 chosen with text (art. 11, 23)."""
        return bool(self.selected) or (self.other and bool(self.comment.strip()))


def _measurable(rating: FirstRating, now: Stamp) -> float:
    """The wall time of ``rating``; ``RequestError`` ``clock_untrusted`` when the time since it
    cannot be trusted (either clock unsynchronised, or an unreadable time): refused, never
    allowed without limit."""
    try:
        rated = datetime.fromisoformat(rating.rated_at).timestamp()
    except ValueError:
        rated = None
    if rated is None:  # a damaged row, most likely: the clock is not the thing to fix
        raise RequestError(
            "clock_untrusted",
            f"case {rating.serial}: the stored time of its previous rating {rating.rating_id} "
            f"({rating.rated_at!r}) cannot be read, so the time since it cannot be measured; "
            "refused, not allowed without limit (evaluator verify names a damaged record)",
        )
    if not (rating.clock_synced and now.synced):
        raise RequestError(
            "clock_untrusted",
            f"case {rating.serial}: the time since its previous rating cannot be measured "
            "(the pad's clock was not synchronised then or is not now); refused, not allowed "
            "without limit",
        )
    return rated


def _untold_entry(entry: Any) -> Finished:
    """One ``untold`` entry of a saved window state; ``ValueError`` when it is not one."""
    outcomes = {o.value: o for o in Outcome}
    if not (
        isinstance(entry, Mapping)
        and isinstance(entry.get("presentation_id"), str)
        and isinstance(entry.get("serials"), list)
        and entry["serials"]
        and all(isinstance(s, str) and s for s in entry["serials"])
        and entry.get("outcome") in outcomes
    ):
        raise ValueError(f"not an untold outcome: {entry!r}")
    return Finished(entry["presentation_id"], tuple(entry["serials"]), outcomes[entry["outcome"]])


class Session:
    """The pad's state machine.  Deadlines run on the clock's monotonic time.

    ``timeout`` (seconds, default 60) is how long the rating screen waits without any touch
    before the presentation ends not rated; ``thanks`` (default 3) how long 谢谢 stays up;
    ``followup_window`` (default 7 days) how long after a first rating a follow-up is taken;
    ``followup_gap`` (default 4 h) and ``visit_gap`` (default 2 h) the least time since that
    case's previous rating before a follow-up, or a 承诺件 visit after the first, is taken.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        reasons: ReasonCatalog,
        clock: Clock,
        timeout: float = 60.0,
        thanks: float = 3.0,
        followup_window: float = 7 * 24 * 3600.0,
        followup_gap: float = 4 * 3600.0,
        visit_gap: float = 2 * 3600.0,
        area_code: str = "440500",
        on_finished: Callable[[Finished], None] | None = None,
        on_ended: Callable[[Finished], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.reasons = reasons
        self.next_reasons: ReasonCatalog | None = None
        """A list reloaded while a rating screen was open: offered from the next presentation
        on (the open one keeps what it offers)."""
        self.clock = clock
        self.timeout = timeout
        self.thanks = thanks
        self.followup_window = followup_window
        self.followup_gap = followup_gap
        self.visit_gap = visit_gap
        self.area_code = area_code
        self.on_finished = on_finished
        """Tells the clerk's side an outcome: at once for a cancel or a timeout, when the 谢谢
        ends for a rating (art. 4: a 好评 and a 差评 are told alike, after press/submit + 谢谢)."""
        self.on_ended = on_ended
        """Called as soon as an outcome is durable, before it is told (receipts, and keeping
        :attr:`untold` durable); never for the clerk's side."""
        self.untold: list[Finished] = []
        """Durable outcomes not yet told (``on_finished``): the rating whose 谢谢 is showing,
        or restored by :meth:`restore_window` after a restart (then told by
        :meth:`tell_untold`, once the counter can hear)."""
        self.state = State.SIGNED_OUT
        self.clerk: Clerk | None = None
        self.presentation: Presentation | None = None
        self.choice: ReasonChoice | None = None
        self._deadline: float | None = None
        self._resume_to = State.IDLE

    # -- the clerk's side ------------------------------------------------------------------

    @property
    def rating_open(self) -> bool:
        """A rating screen (level buttons or reasons) is showing."""
        return self.presentation is not None and self.state in (
            State.PRESENTING,
            State.CHOOSING_REASONS,
        )

    @property
    def held(self) -> bool:
        """The clerk's side sees a rating going on: a rating screen is open, or the 谢谢 that
        follows a rating is up (a 好评 reaches 谢谢 at the press, a 差评 only at its submit,
        so 谢谢 must look like the rating screen to the clerk's side, art. 4)."""
        return self.rating_open or self.state is State.THANKS

    @property
    def public_state(self) -> str:
        """The state as the clerk's side may see it: one ``rating`` from the start of a
        presentation until the 谢谢 after its rating has ended, so a 差评 on the reason screen
        looks the same as a citizen still looking and as a 好评's 谢谢 (art. 4)."""
        return "rating" if self.held else self.state.value

    def _guard_citizen(self, what: str) -> None:
        """Refuse a clerk-side request that would end a presentation the citizen has touched,
        also during the 谢谢 after a rating: a 好评 is on 谢谢 when a 差评 is on its reasons,
        and both must get the same answer (art. 4)."""
        self.tick()
        touched = self.rating_open and self.presentation is not None and self.presentation.touched
        if touched or self.state is State.THANKS:
            raise RequestError(
                "citizen_rating",  # == CITIZEN_RATING, literal for the docs check
                f"{what} refused: the citizen is rating; wait until the rating screen closes",
            )

    def sign_in(self, clerk: Clerk) -> None:
        """A clerk takes the window.  Refused (``busy``) while a rating screen is open, touched
        or not, and during the 谢谢 after a rating (so the refusal tells nothing of the
        citizen), so the screen and the record always name the same person (the one on the
        open presentation)."""
        self.tick()
        if self.held:
            raise RequestError("busy", "a rating screen is open; wait for it to end")
        self.clerk = clerk
        if self.state is State.SIGNED_OUT:
            self.state = State.IDLE
        elif self.state is State.PAUSED:
            self._resume_to = State.IDLE

    def sign_out(self) -> None:
        """The clerk leaves; an untouched presentation ends cancelled (art. 4: a touched one
        cannot be ended from the clerk's side)."""
        self._guard_citizen("clerk.sign_out")
        self._abort(Outcome.CANCELLED, CAUSE_SIGN_OUT)
        self.clerk = None
        self.state = State.SIGNED_OUT
        self._deadline = None

    def pause(self) -> None:
        """Pause the window (暂停服务); an untouched presentation ends cancelled."""
        if self.state is State.PAUSED:
            return
        self._guard_citizen("window.pause")
        self._abort(Outcome.CANCELLED, CAUSE_PAUSE)
        self._resume_to = State.SIGNED_OUT if self.state is State.SIGNED_OUT else State.IDLE
        self.state = State.PAUSED
        self._deadline = None

    def resume(self) -> None:
        if self.state is State.PAUSED:
            self.state = self._resume_to

    #: The screens a window rests on between presentations (what a restart brings back).
    RESTING = (State.SIGNED_OUT, State.IDLE, State.PAUSED)

    def window_state(self) -> dict[str, Any]:
        """What survives a restart: the clerk signed in and the screen the window rests on
        (signed out, idle or paused, and where a pause resumes to).  A rating screen or 谢谢
        rests on idle: a presentation open at a restart ends not rated at the next start.
        Outcomes not yet told (:attr:`untold`: a restart during 谢谢) are kept as ``untold``,
        so the next start tells them (art. 4 delays the telling; nothing may lose it)."""
        state = self.state if self.state in self.RESTING else State.IDLE
        saved: dict[str, Any] = {
            "clerk": self.clerk.to_json() if self.clerk is not None else None,
            "state": state.value,
        }
        if state is State.PAUSED:
            saved["resume_to"] = self._resume_to.value
        if self.untold:
            saved["untold"] = [
                {"presentation_id": f.presentation_id, "serials": list(f.serials),
                 "outcome": f.outcome.value}
                for f in self.untold
            ]  # fmt: skip
        return saved

    def restore_window(self, saved: Mapping[str, Any]) -> None:
        """Bring back a :meth:`window_state` (at start, before any presentation); a value that
        is not one raises ``ValueError`` and changes nothing."""
        if self.presentation is not None:
            raise ValueError("a window state is restored only before any presentation")
        if not isinstance(saved, Mapping):
            raise ValueError(f"a window state is an object, not {type(saved).__name__}")
        clerk_json = saved.get("clerk")
        clerk: Clerk | None = None
        if clerk_json is not None:
            if not (
                isinstance(clerk_json, Mapping)
                and isinstance(clerk_json.get("id"), str)
                and isinstance(clerk_json.get("name"), str)
                and clerk_json["id"]
            ):
                raise ValueError(f"not a clerk: {clerk_json!r}")
            clerk = Clerk(clerk_json["id"], clerk_json["name"])
        resting = {s.value: s for s in self.RESTING}
        state = resting.get(saved.get("state"))  # type: ignore[arg-type]
        if state is None:
            raise ValueError(f"not a resting state: {saved.get('state')!r}")
        resume_to = self._resume_to
        if state is State.PAUSED:
            resume_to = resting.get(saved.get("resume_to"), State.IDLE)  # type: ignore[arg-type]
            if resume_to is State.PAUSED:
                raise ValueError("a pause cannot resume to a pause")
        raw_untold = saved.get("untold", [])
        if not isinstance(raw_untold, list):
            raise ValueError(f"untold is a list, not {type(raw_untold).__name__}")
        untold = [_untold_entry(entry) for entry in raw_untold]
        self.clerk, self.state, self._resume_to = clerk, state, resume_to
        self.untold = [*untold, *self.untold]
        self._deadline = None

    def start(self, request: EvaluationRequest) -> Presentation:
        """Open the rating screen for ``request`` (art. 17(1)).

        Refused (``RequestError``) while paused, while another presentation is open or the
        谢谢 after its rating is up (``busy`` for both: art. 4), when a case was already rated in
        its slot with this assess number, and for a follow-up without a first rating or after
        the follow-up window (art. 22); for a case the citizen touched and left unrated
        (``left_unrated``), and for a follow-up or further visit too soon after the case's
        previous rating (``too_soon``) or when that time cannot be measured
        (``clock_untrusted``): the counter cannot aim a re-ask (art. 4, 22).
        """
        self.tick()
        if self.state is State.PAUSED:
            raise RequestError("paused", "the window is paused (暂停服务); resume it first")
        if self.held:
            raise RequestError("busy", "a rating is in progress; wait for it to end")
        if self.next_reasons is not None:
            self.reasons, self.next_reasons = self.next_reasons, None
        before = self.ledger.case_kinds(request.serials)
        for case in request.cases:
            kind = before.get(case.serial)
            if kind and kind != case.kind:
                raise RequestError(
                    "kind_changed",
                    f"case {case.serial} was rated as kind {kind}; a case keeps its kind "
                    "(a consult case is rated once in total, a 即办件 once after completion)",
                )
        slots = request.slots()
        rated = self.ledger.already_rated(slots, request.assess_number)
        if rated:
            raise RequestError(
                "already_rated",
                f"case {rated[0]} was already rated at stage {request.stage} "
                f"(assess_number {request.assess_number})",
            )
        left = self.ledger.left_unrated(slots, request.assess_number)
        if left:
            raise RequestError(
                "left_unrated",
                f"case {left[0]} was shown, touched and left unrated: it is not shown again at "
                "the counter (the receipt QR and the SMS follow-up are the citizen's channels)",
            )
        now = self.clock.now()
        follows: tuple[str, ...] = ()
        if request.assess_number == 2:
            follows = self._follow_up_of(request, now)
        if request.assess_number == 2 or request.visit > 1:
            self._check_gap(request, now)
        presentation = Presentation(new_record_id(), request, now, follows=follows)
        self.ledger.open_presentation(presentation)
        if request.clerk is not None:  # a self-service terminal leaves the window's clerk as is
            self.clerk = request.clerk
        self.presentation = presentation
        self.choice = None
        self.state = State.PRESENTING
        self._deadline = now.mono + self.timeout
        return presentation

    def _follow_up_of(self, request: EvaluationRequest, now: Stamp) -> tuple[str, ...]:
        """The first ratings a follow-up follows; ``RequestError`` when it may not be taken."""
        firsts = self.ledger.first_ratings(request.slots())
        missing = [s for s in request.serials if s not in firsts]
        if missing:
            raise RequestError(
                "no_first_rating",
                f"case {missing[0]} has no first rating at stage {request.stage}: a follow-up "
                "(追加评价) comes only after one",
            )
        for first in firsts.values():
            rated = _measurable(first, now)
            if now.wall - rated > self.followup_window:
                raise RequestError(
                    "followup_expired",
                    f"case {first.serial} was first rated {first.rated_at}; a follow-up is "
                    f"taken within {self.followup_window / 86400:g} days",
                )
        return tuple(sorted({f.rating_id for f in firsts.values()}))

    def _check_gap(self, request: EvaluationRequest, now: Stamp) -> None:
        """A follow-up or a 承诺件 visit after the first: ``min gap`` since each case's previous
        rating, measured on synchronised clocks only (never allowed without limit)."""
        gap = self.followup_gap if request.assess_number == 2 else self.visit_gap
        what = "a follow-up" if request.assess_number == 2 else f"visit {request.visit}"
        for last in self.ledger.last_ratings(request.serials).values():
            rated = _measurable(last, now)
            if now.wall - rated < gap:
                raise RequestError(
                    "too_soon",
                    f"case {last.serial} was last rated {last.rated_at}; {what} is taken at "
                    f"least {gap / 3600:g} h after the case's previous rating",
                )

    def cancel(self) -> bool:
        """The clerk withdraws the open presentation; ``False`` if none was open.

        Refused with :data:`CITIZEN_RATING` once the citizen has pressed a level, until the
        谢谢 after the rating has ended (art. 4).
        """
        self._guard_citizen("evaluation.cancel")
        if not self.rating_open:
            return False
        self._abort(Outcome.CANCELLED, CAUSE_CANCEL)
        self.state = State.IDLE
        return True

    # -- the citizen's side ------------------------------------------------------------------

    def press(self, level: Level) -> str | None:
        """A level button.  A 好评 is recorded at once; a 差评 opens the reason screen.

        Returns the new rating id when one was recorded.  Ignored outside the rating screen.
        """
        self.tick()
        if self.state is not State.PRESENTING or self.presentation is None:
            return None
        self._touch()
        self.presentation.touched = True
        if level.is_bad:
            p = self.presentation
            self.choice = ReasonChoice(level, self.reasons.for_level(level, p.targets))
            self.state = State.CHOOSING_REASONS
            return None
        return self._rate(level, reasons=(), comment="", agencies=())

    def toggle_reason(self, code: str) -> bool:
        """Select or unselect a reason (``"other"`` toggles 其他); ``False`` if not offered."""
        self.tick()
        choice = self._choosing()
        if choice is None:
            return False
        self._touch()
        if code == OTHER_CODE:
            choice.other = not choice.other
            return True
        if code not in {r.code for r in choice.offered}:
            return False
        if code in choice.selected:
            choice.selected.remove(code)
        else:
            choice.selected.append(code)
        return True

    def toggle_agency(self, name: str) -> bool:
        """Mark an agency (联办, art. 29) as concerned by the 差评."""
        self.tick()
        choice = self._choosing()
        if choice is None or self.presentation is None:
            return False
        p = self.presentation
        if name not in p.request.agencies or "matter" not in p.targets:
            return False
        self._touch()
        if name in choice.agencies:
            choice.agencies.remove(name)
        else:
            choice.agencies.append(name)
        return True

    def type_text(self, text: str) -> None:
        """Append to the 其他 text, up to ``COMMENT_MAX`` characters."""
        self.tick()
        choice = self._choosing()
        if choice is None or not choice.other:
            return
        self._touch()
        clean = "".join(ch for ch in text if ch.isprintable())
        choice.comment = (choice.comment + clean)[:COMMENT_MAX]

    def backspace(self) -> None:
        self.tick()
        choice = self._choosing()
        if choice is not None and choice.other:
            self._touch()
            choice.comment = choice.comment[:-1]

    def back(self) -> None:
        """Leave the reason screen for the level buttons; nothing has been rated."""
        self.tick()
        if self._choosing() is not None:
            self._touch()
            self.choice = None
            self.state = State.PRESENTING

    def submit(self) -> str:
        """Submit the 差评 with its reasons; ``SubmitError`` when nothing explains it."""
        self.tick()
        choice = self._choosing()
        if choice is None:
            raise SubmitError("there is no 差评 to submit")
        if not choice.can_submit:
            raise SubmitError("a 差评 needs a reason or 其他 text (art. 11)")
        offered = {r.code: r for r in choice.offered}
        reasons: list[dict[str, str]] = [
            {"code": code, "text": offered[code].text, "target": offered[code].target}
            for code in choice.selected
        ]
        comment = choice.comment.strip() if choice.other else ""
        if comment and identity_in(comment):
            # No citizen identity is stored (art. 4): the citizen is asked to take it out.
            raise IdentityInComment("the 其他 text holds an ID or mobile number")
        if comment:
            reasons.append({"code": OTHER_CODE, "text": OTHER_TEXT, "target": "other"})
        rating_id = self._rate(
            choice.level, reasons=tuple(reasons), comment=comment, agencies=tuple(choice.agencies)
        )
        return rating_id

    def expand_theme(self) -> bool:
        """Rate a theme's items one by one instead of overall (art. 31)."""
        self.tick()
        p = self.presentation
        if self.state is not State.PRESENTING or p is None or p.request.theme is None:
            return False
        if p.itemised or len(p.request.cases) < 2:
            return False
        self._touch()
        p.itemised = True
        return True

    # -- time ----------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Monotonic time of the next timeout, for the loop to sleep until."""
        return self._deadline

    def tick(self) -> None:
        """Apply deadlines: the rating screen times out not rated; 谢谢 returns to idle and its
        rating is told (``on_finished``)."""
        if self._deadline is None or self.clock.now().mono < self._deadline:
            return
        if self.state in (State.PRESENTING, State.CHOOSING_REASONS):
            self._abort(Outcome.NOT_RATED, CAUSE_TIMEOUT)
            self.state = State.IDLE
        elif self.state is State.THANKS:
            self._deadline = None
            self.state = State.IDLE
            self.tell_untold()

    def tell_untold(self) -> None:
        """Tell (``on_finished``) the outcomes kept in :attr:`untold`, oldest first, and forget
        them.  Nothing while the 谢谢 is up: its rating is told when it ends (art. 4).  The
        list is emptied before the first call, so a callback that keeps the window state keeps
        it without them."""
        if self.state is State.THANKS or not self.untold:
            return
        told, self.untold = self.untold, []
        if self.on_finished is not None:
            for finished in told:
                self.on_finished(finished)

    def keep_alive(self) -> None:
        """The citizen is still at a rating screen (a tap that is no choice, such as turning the
        reason page): its timeout starts again.  Nothing happens on any other screen."""
        if self.state in (State.PRESENTING, State.CHOOSING_REASONS):
            self._touch()

    # -- internals -----------------------------------------------------------------------------

    def _choosing(self) -> ReasonChoice | None:
        return self.choice if self.state is State.CHOOSING_REASONS else None

    def _touch(self) -> None:
        self._deadline = self.clock.now().mono + self.timeout

    def _rate(
        self,
        level: Level,
        *,
        reasons: tuple[dict[str, str], ...],
        comment: str,
        agencies: tuple[str, ...],
    ) -> str:
        p = self.presentation
        assert p is not None
        cases = p.current_cases
        now = self.clock.now()
        req = p.request
        content = RatingContent(
            presentation_id=p.id,
            level=level.value,
            score=level.score,
            satisfaction=level.satisfaction,
            gbt_code=level.gbt_code,
            channel=CHANNEL_SELF_SERVICE if req.self_service else CHANNEL_PAD,
            cases=tuple(c.to_json() for c in cases),
            clerk=req.clerk.to_json() if req.clerk is not None else None,
            terminal=req.terminal,
            agencies=tuple(req.agencies),
            agencies_concerned=agencies,
            targets=tuple(p.targets),
            theme=req.theme.to_json() if req.theme else None,
            reasons=reasons,
            comment=comment,
            stage=req.stage,
            visit=req.visit,
            assess_number=req.assess_number,
            follows=tuple(p.follows),
            area_code=self.area_code,
            presented_at=p.started.iso,
            presented_clock_synced=p.started.synced,
            rated_at=now.iso,
            rated_clock_synced=now.synced,
            elapsed_ms=round((now.mono - p.started.mono) * 1000),
        )
        last = not (p.itemised and p.index + 1 < len(req.cases))
        rating_id = new_record_id()
        closing = (
            Closing(p, Outcome.RATED, now, (*p.rating_ids, rating_id), CAUSE_RATED)
            if last
            else None
        )
        # Durable before anything else happens, and with the outcome in the same transaction:
        # a failure leaves the screen as it was and nothing stored.
        self.ledger.record_rating({"id": rating_id, **content.to_json()}, closing=closing)
        p.rating_ids.append(rating_id)
        p.rated_serials.extend(c.serial for c in cases)
        self.choice = None
        if not last:
            p.index += 1
            self.state = State.PRESENTING
            self._touch()
            return rating_id
        self._finish(Outcome.RATED, CAUSE_RATED, closed=True, later=True)
        self.state = State.THANKS
        self._deadline = now.mono + self.thanks
        return rating_id

    def _abort(self, outcome: Outcome, cause: str) -> None:
        """End an open presentation without (further) rating."""
        if self.presentation is None:
            return
        if self.state not in (State.PRESENTING, State.CHOOSING_REASONS):
            self.presentation = None
            return
        self._finish(outcome, cause)
        self._deadline = None

    def _finish(
        self, outcome: Outcome, cause: str, *, closed: bool = False, later: bool = False
    ) -> None:
        """End the presentation (durably, unless ``closed`` already); its outcomes go to
        ``on_ended`` at once, and to ``on_finished`` at once or, when ``later`` (a rating
        followed by 谢谢), through :attr:`untold` when the 谢谢 ends."""
        p = self.presentation
        assert p is not None
        now = self.clock.now()
        rated = tuple(p.rated_serials)
        rest = tuple(s for s in p.request.serials if s not in rated)
        final = Outcome.RATED if rated else outcome
        if not closed:
            self.ledger.close_presentation(Closing(p, final, now, tuple(p.rating_ids), cause))
        self.presentation = None
        self.choice = None
        ended: list[Finished] = []
        if rated:
            ended.append(Finished(p.id, rated, Outcome.RATED))
        if rest:
            ended.append(Finished(p.id, rest, outcome))
        if later:
            self.untold.extend(ended)
        for finished in ended:
            if self.on_ended is not None:
                self.on_ended(finished)
        if not later and self.on_finished is not None:
            for finished in ended:
                self.on_finished(finished)
