"""One press filter for every input: touch, mouse, keys and GPIO buttons alike.

What it stops (and what stops the rest):

* a press in the first moments after the screen changed (``guard``, default 0.3 s) — it was
  aimed at the previous screen: the second tap of a double tap on 不满意 must not land on the
  reason screen that replaced it, a child hammering the buttons must not pick a reason;
* the same target pressed again within ``repeat`` (default 0.15 s) — switch bounce that got past
  ``bounce_time``, a double tap on a reason chip that would select and unselect it at once.

The rest is done elsewhere: the session takes one rating per presentation whatever arrives; a
touch's synthetic mouse event is dropped where SDL events are translated (one path per tap); a
hand resting on a button is one edge for gpiozero and one FINGERDOWN for SDL.

Times are monotonic seconds (``Clock.now().mono``), so the filter is exact under a FakeClock.
"""

from __future__ import annotations

from collections.abc import Hashable

#: Seconds of float rounding forgiven at the edges (``1000.3 - 1000.0 < 0.3`` in binary).
_EPSILON = 1e-6


class PressFilter:
    """Decides, press by press, whether a press counts."""

    def __init__(self, *, guard: float = 0.3, repeat: float = 0.15) -> None:
        if guard < 0 or repeat < 0:
            raise ValueError("guard and repeat are seconds, 0 or more")
        self.guard = guard
        self.repeat = repeat
        self._screen: Hashable = None
        self._since = float("-inf")
        self._last_target: Hashable = None
        self._last_at = float("-inf")
        self.ignored = 0
        """How many presses were ignored (for the log and the tests)."""

    def screen(self, key: Hashable, now: float) -> None:
        """The screen now showing is ``key``; a new key starts the guard time."""
        if key != self._screen:
            self._screen = key
            self._since = now

    def accept(self, target: Hashable, now: float) -> bool:
        """``True`` when a press on ``target`` at ``now`` counts."""
        if now - self._since < self.guard - _EPSILON:
            self.ignored += 1
            return False
        if target == self._last_target and now - self._last_at < self.repeat - _EPSILON:
            self.ignored += 1
            self._last_at = now  # a resting bounce keeps being one press
            return False
        self._last_target, self._last_at = target, now
        return True
