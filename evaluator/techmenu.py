"""The technician's menu on the pad: the hidden gesture, the PIN, the lockout, the items.

Pure logic, no pygame and no store: the app (``evaluator.app``) feeds it taps, digits and the
monotonic time, gives it a place to keep its lockout (the store's ``meta``) and a recorder for
what happened (a log line and a durable record), and draws what :meth:`TechMenu.phase` says.

The gesture: **five taps on the top-left corner (a 15 mm square) within three seconds, on the idle
or signed-out screen only**.  Why this one:

* a citizen never taps there on purpose: the idle and signed-out screens have no target at all,
  and the corner holds only the window label's edge; five taps in three seconds on one 15 mm
  square, with no tap elsewhere in between, is not what a bored hand or a leaning elbow does;
* it is never possible while a presentation is open: the rating and reason screens have their
  own targets in that corner's neighbourhood, and the app only counts taps while no rating screen
  is up (a citizen mid-rating can never land in the menu);
* taps need no finger-up events and no timer while the finger rests (a long press would need
  both, and a resting palm or a stuck touch panel would open it), so the same five ``FINGERDOWN``
  events work with a touch panel, a mouse on a bench and in the tests;
* and the gesture only shows the PIN pad: without ``[tech] pin`` the menu does not exist, and
  three wrong PINs lock it for ``[tech] lockout``.

The menu never shows or changes a rating (art. 4 and the records' integrity): the app keeps every
level press away from the session while it is open (the button test only names the button), and a
counter ``evaluation.start`` closes it at once: the citizen first.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

log = logging.getLogger(__name__)

#: Taps on the corner that open the PIN pad, and the seconds they must fall within.
GESTURE_TAPS = 5
GESTURE_WINDOW = 3.0
#: Seconds without a touch after which the open menu (or PIN pad) closes by itself.
IDLE_CLOSE = 60.0
#: Wrong PINs in a row that lock the menu for ``[tech] lockout``.
MAX_FAILURES = 3
#: Most digits the PIN pad takes (the config allows 4 to 12).
PIN_MAX = 12
#: The store ``meta`` key of the failure count and the lockout (they survive a restart).
META_KEY = "tech_menu"
#: The menu's items, in the order they are drawn.
ITEMS: tuple[str, ...] = ("test_print", "button_test", "reload_config", "close")


class Phase(Enum):
    """What the menu shows: nothing, the PIN pad, the menu, the button test."""

    CLOSED = "closed"
    PIN = "pin"
    MENU = "menu"
    BUTTON_TEST = "button_test"


def in_corner(pos: tuple[int, int], side: int) -> bool:
    """``pos`` (pixels) is in the top-left ``side`` × ``side`` square, the gesture's corner."""
    x, y = pos
    return 0 <= x < side and 0 <= y < side


@dataclass
class CornerTaps:
    """Counts taps on the corner: :data:`GESTURE_TAPS` within :data:`GESTURE_WINDOW` seconds,
    with no tap elsewhere between them, complete the gesture."""

    taps: int = GESTURE_TAPS
    window: float = GESTURE_WINDOW
    _times: list[float] = field(default_factory=list)

    def tap(self, now: float, corner: bool) -> bool:
        """One tap at ``now`` (monotonic s); ``corner``: on the corner.  ``True`` completes it."""
        if not corner:
            self._times.clear()
            return False
        self._times = [t for t in self._times if now - t < self.window] + [now]
        if len(self._times) >= self.taps:
            self._times.clear()
            return True
        return False

    def reset(self) -> None:
        self._times.clear()


Recorder = Callable[[str, dict[str, object]], None]
"""``record(event, fields)``: what happened (``opened``, ``pin_wrong``, ``locked``, ``closed``,
an item chosen); the app logs it and keeps it durably.  Never given the PIN or a digit."""


class TechMenu:
    """The menu's state machine.  ``pin`` from ``[tech] pin`` (``""`` = no menu at all),
    ``lockout`` seconds after :data:`MAX_FAILURES` wrong PINs.  ``read``/``write`` keep the
    failure count and the lockout's end (``wall`` time: monotonic time restarts at boot) across a
    restart; ``record`` is told every opening, failure, lockout, closing and item."""

    def __init__(
        self,
        pin: str,
        lockout: float,
        *,
        read: Callable[[], str | None] | None = None,
        write: Callable[[str], None] | None = None,
        record: Recorder | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self._pin = pin
        self._wall = wall
        self.lockout = lockout
        self._read = read
        self._write = write
        self._record = record
        self.phase = Phase.CLOSED
        self.gesture = CornerTaps()
        self.entered = ""
        """Digits typed on the PIN pad (drawn as dots, never logged)."""
        self.failures = 0
        self.locked_until: float | None = None
        """Monotonic time the lockout ends; ``None`` when not locked."""
        self._locked_wall: float | None = None
        self.message = ""
        """The last thing to tell the technician: a wrong PIN, an item's result."""
        self.pressed = ""
        """Button test: the level button pressed last (its label)."""
        self.presses = 0
        self._last_touch = 0.0
        self._restored = False

    # -- state -------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """A PIN is configured: the gesture does anything at all."""
        return bool(self._pin)

    @property
    def is_open(self) -> bool:
        return self.phase is not Phase.CLOSED

    def locked_for(self, now: float) -> float:
        """Seconds the lockout still runs at ``now`` (0 when not locked)."""
        if self.locked_until is None:
            return 0.0
        return max(0.0, self.locked_until - now)

    def restore(self, now: float, wall: float) -> None:
        """Bring back the failures and a lockout kept before a restart (once).  The lockout
        ends at the kept wall time, but never later than ``lockout`` from now: a clock set back
        at boot does not lock the technician out for days."""
        if self._restored or self._read is None:
            return
        try:
            text = self._read()
        except Exception as exc:  # an unreadable store: start unlocked, say so
            log.error("the technician menu's lockout could not be read: %s", exc)
            return
        self._restored = True
        if not text:
            return
        try:
            kept = json.loads(text)
            failures = int(kept.get("failures", 0))
            until = kept.get("locked_until")
            until = None if until is None else float(until)
        except (ValueError, TypeError, AttributeError) as exc:
            log.error("the technician menu's kept lockout is unusable (%s): ignored", exc)
            return
        self.failures = max(0, failures)
        if until is not None and until > wall:
            self._locked_wall = until
            self.locked_until = now + min(self.lockout, until - wall)
            log.warning("technician menu still locked for %.0f s (kept across a restart)",
                        self.locked_until - now)  # fmt: skip

    def _keep(self) -> None:
        if self._write is None:
            return
        state = {"failures": self.failures, "locked_until": self._locked_wall}
        try:
            self._write(json.dumps(state, sort_keys=True))
        except Exception as exc:  # the pad goes on; the count is kept in memory
            log.error("the technician menu's lockout could not be kept: %s", exc)

    def _tell(self, event: str, **fields: object) -> None:
        if self._record is not None:
            try:
                self._record(event, fields)
            except Exception:  # recording must never break the pad
                log.exception("the technician menu event %s could not be recorded", event)

    # -- input -------------------------------------------------------------------------

    def tap(self, now: float, corner: bool) -> bool:
        """A tap on the idle or signed-out screen (``corner``: on the gesture's corner).  Opens
        the PIN pad when the gesture is complete and a PIN is configured; ``True`` then."""
        if self.is_open or not self.gesture.tap(now, corner):
            return False
        if not self.enabled:
            log.info("technician gesture seen, but no [tech] pin is set: no menu")
            return False
        self.phase = Phase.PIN
        self.entered = ""
        self.message = ""
        self._last_touch = now
        log.info("technician gesture: PIN pad shown")
        return True

    def touch(self, now: float) -> None:
        """Any touch while open: the idle close starts again."""
        self._last_touch = now

    def digit(self, digit: str, now: float) -> None:
        """A digit on the PIN pad (ignored while locked or beyond :data:`PIN_MAX`)."""
        self.touch(now)
        typing = self.phase is Phase.PIN and not self.locked_for(now)
        if typing and len(digit) == 1 and digit.isdigit() and len(self.entered) < PIN_MAX:
            self.entered += digit
            self.message = ""

    def backspace(self, now: float) -> None:
        self.touch(now)
        if self.phase is Phase.PIN:
            self.entered = self.entered[:-1]

    def enter(self, now: float) -> str:
        """OK on the PIN pad: ``"opened"``, ``"wrong"``, ``"locked"`` or ``""`` (nothing typed,
        not on the PIN pad)."""
        self.touch(now)
        if self.phase is not Phase.PIN:
            return ""
        if self.locked_for(now):
            self.entered = ""
            return "locked"
        if not self.entered:
            return ""
        good = hmac.compare_digest(self.entered.encode(), self._pin.encode())
        self.entered = ""
        if good:
            self.failures = 0
            self._keep()
            self.phase = Phase.MENU
            self.message = ""
            self._tell("opened")
            return "opened"
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            self.locked_until = now + self.lockout
            self._tell("locked", failures=self.failures, lockout_s=round(self.lockout))
            self.message = "locked"
            self._keep_lock(now)
            return "locked"
        self._keep()
        self._tell("pin_wrong", failures=self.failures)
        self.message = "wrong"
        return "wrong"

    def _keep_lock(self, now: float) -> None:
        """Keep the lockout's end as wall time (``wall``): monotonic time restarts at boot."""
        if self._wall is not None and self.locked_until is not None:
            self._locked_wall = self._wall() + (self.locked_until - now)
        self._keep()

    def choose(self, item: str, now: float) -> str:
        """An item of the open menu; returns the item to carry out (``""``: none).  ``close``
        closes here, ``button_test`` starts the button test; the others are the app's work."""
        self.touch(now)
        if self.phase is Phase.BUTTON_TEST and item in ("close", "button_test"):
            self.phase = Phase.MENU  # 返回 from the button test
            self.pressed = ""
            return ""
        if self.phase is not Phase.MENU or item not in ITEMS:
            return ""
        self._tell("item", item=item)
        if item == "close":
            self.close(now, "closed by the technician")
            return ""
        if item == "button_test":
            self.phase = Phase.BUTTON_TEST
            self.pressed = ""
            self.presses = 0
        return item

    def button(self, label: str, now: float) -> bool:
        """A level button pressed: named on the button test (``True``); never a rating."""
        if self.phase is not Phase.BUTTON_TEST:
            return False
        self.touch(now)
        self.pressed = label
        self.presses += 1
        return True

    def close(self, now: float, why: str) -> None:
        """Close whatever is shown (PIN pad or menu); the menu's closing is recorded."""
        if not self.is_open:
            return
        was = self.phase
        self.phase = Phase.CLOSED
        self.entered = ""
        self.message = ""
        self.pressed = ""
        self.gesture.reset()
        if was is not Phase.PIN:
            self._tell("closed", why=why)
        else:
            log.info("technician PIN pad closed: %s", why)

    def tick(self, now: float) -> None:
        """Deadlines: the idle close after :data:`IDLE_CLOSE`, the lockout's end."""
        if self.is_open and now - self._last_touch >= IDLE_CLOSE:
            self.close(now, f"no touch for {IDLE_CLOSE:g} s")
        if self.locked_until is not None and now >= self.locked_until:
            self.locked_until = None
            self._locked_wall = None
            self.failures = 0
            if self.message == "locked":
                self.message = ""
            self._keep()
            log.info("technician menu lockout over")

    def next_deadline(self) -> float | None:
        """Monotonic time of the next :meth:`tick` work, if any."""
        times = []
        if self.is_open:
            times.append(self._last_touch + IDLE_CLOSE)
        if self.locked_until is not None:
            times.append(self.locked_until)
        return min(times) if times else None
