"""Receipts at the window (issue 7, the wiring): when one is printed, what it says, and its QR on
the pad's screen when it cannot be printed.

:class:`ReceiptDesk` sits between the session and the print spooler, on the main thread:

- **When** (``[receipt] print``): ``always`` at the end of every presentation (every case or
  batch shown, rated or not); ``unrated`` when the citizen did not rate on the pad (a timeout or
  a cancel; of a theme rated item by item, the items left unrated); ``request`` only on the
  counter's ``receipt.print`` (:meth:`ReceiptDesk.issue`, which every policy but ``never``
  takes).  A presentation's end is known from the session's ``Finished`` callbacks (a theme
  rated in part ends with two: its rated items, then the rest): ``on_ended`` once its outcome
  is durable (:meth:`ReceiptDesk.ended` notes the receipt, with that moment as its time) and
  ``on_finished`` when the counter is told (:meth:`ReceiptDesk.finished` lets it print).  A
  rating is told when its 谢谢 ends, a cancel or a timeout at once: the receipt prints at that
  same moment, so a 好评 (durable at the press) and a 差评 (durable at its submit) both print
  "press or submit + 谢谢" and the printer at the counter tells the clerk nothing (art. 4).  A
  power cut during 谢谢 loses that receipt (the outcome itself is kept and told).
- **What**: hall, window, 事项名称, every 业务流水号, the clerk's name and 工号 (none for a
  self-service terminal), the date and time, the prompt, the QR of a link signed with the device
  key (:func:`evaluator.rules.ratelink.make_link`; the clerk field is ``T:<终端机编号>`` for a
  terminal) and its short code.  A theme's receipt is named after the theme (one 事项名称 for
  several matters) and carries the theme's code as ``m`` (its first case's matter code when the
  theme has none).  Nothing about the citizen.
- **Never in the citizen's path**: a presentation's end only notes the receipt; the loop makes
  it at its next turn once the end is told (:meth:`ReceiptDesk.flush`: after the frame that
  ended the 谢谢, or after the 谢谢 frame of a cancel or timeout): the link signed (an
  Ed25519 signature, some 35 µs), the :class:`~printer.Receipt` made, ``submit`` (returns at
  once).  The bytes, the device and every wait are the spooler's, on its own thread, which then
  starts building while nothing on the screen waits for it.
- **The QR on screen** when the receipt cannot be printed: the printer is known to fail when the
  receipt is submitted (offline, paper out, cover open; ``unknown`` is not a failure), the
  receipt cannot be made (:class:`~printer.ReceiptError`), or it fails while the citizen is
  likely still at the window: its print is not done and the printer reports a failure, or a
  receipt is dropped, within ``[session] thanks`` + ``[receipt] qr_on_screen`` of its issue.
  The spooler's ``on_change`` only wakes the main loop; :meth:`ReceiptDesk.check` looks.  The
  QR shows once no rating screen and no 谢谢 is up, for ``qr_on_screen`` seconds; a touch
  closes it, the next rating screen drops it (the next citizen is there).

The ``printer`` package is imported only when receipts are printed: it is not loaded at a start
that prints none.
"""

from __future__ import annotations

import datetime
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluator.rules.clock import Clock, Stamp
from evaluator.rules.ratelink import make_link, new_nonce
from evaluator.rules.request import EvaluationRequest
from evaluator.rules.session import Finished, Outcome, Presentation

if TYPE_CHECKING:
    from evaluator.config import Config
    from printer import PrintSpooler, Receipt
    from sync.keys import DeviceKey

log = logging.getLogger(__name__)

#: Printer states in which a receipt is known not to come out (``unknown`` is not one).
FAILING = frozenset({"offline", "paper_out", "cover_open"})
#: Slips kept in :attr:`ReceiptDesk.issued`.
ISSUED_KEPT = 20


@dataclass(frozen=True)
class Slip:
    """A receipt's QR as the citizen gets it, on paper or on the screen."""

    url: str
    short_code: str
    serials: tuple[str, ...]


_Later = tuple[EvaluationRequest, tuple[str, ...], Stamp, int]
"""A receipt to make: request, serials, the time it carries, the rating screen generation."""


@dataclass
class _Watch:
    """A submitted receipt, watched while its citizen is likely still at the window."""

    slip: Slip
    until: float
    dropped: int


@dataclass
class _OnScreen:
    """A slip to show: from when it first shows (``until`` set then) for ``qr_on_screen``."""

    slip: Slip
    show_by: float
    until: float | None = None


def content(
    request: EvaluationRequest, serials: tuple[str, ...]
) -> tuple[str, str, tuple[str, ...]]:
    """``(事项名称, 事项编码, serials)`` a receipt for ``serials`` of ``request`` names: their
    matter, or the theme's name and code when they are of several matters."""
    cases = [c for c in request.cases if c.serial in serials] or list(request.cases)
    matters = dict.fromkeys((c.matter_code, c.matter_name) for c in cases)
    if len(matters) == 1 or request.theme is None:
        code, name = next(iter(matters))
    else:
        name, code = request.theme.name, request.theme.code or cases[0].matter_code
    return name, code, tuple(c.serial for c in cases)


def build(
    config: Config,
    request: EvaluationRequest,
    serials: tuple[str, ...],
    *,
    key: DeviceKey,
    wall: float,
    nonce: str | None = None,
) -> tuple[Slip, Receipt]:
    """The signed link and the receipt for ``serials`` of ``request``, issued at ``wall``
    (epoch seconds).  :class:`~printer.ReceiptError` when the receipt cannot be made (the slip
    is then in the exception's ``slip``)."""
    from printer import Receipt, ReceiptError

    name, code, serials = content(request, serials)
    clerk = request.clerk
    url, link = make_link(
        config.receipt.url_template,
        device_id=config.device.id,
        serials=serials,
        matter_code=code,
        clerk=clerk.id if clerk is not None else f"T:{request.terminal}",
        now=int(wall),
        key_id=key.key_id,
        sign=key.sign,
        expiry_s=int(config.receipt.expiry),
        nonce=nonce,
    )
    slip = Slip(url, link.short_code, serials)
    try:
        receipt = Receipt(
            hall=config.receipt.hall,
            window=config.device.window,
            matter_name=name,
            serials=serials,
            clerk_name=clerk.name if clerk is not None else "",
            clerk_id=clerk.id if clerk is not None else "",
            issued_at=datetime.datetime.fromtimestamp(int(wall)),
            qr_url=url,
            short_code=link.short_code,
        )
    except ReceiptError as exc:
        exc.slip = slip  # type: ignore[attr-defined]
        raise
    return slip, receipt


class ReceiptDesk:
    """Receipts for one pad (see the module docstring).  Main thread only.

    ``spooler`` is the :class:`~printer.PrintSpooler` (started and stopped by the app); ``key``
    gives the device key (``None`` when it cannot be had: then nothing is issued); ``nonce``
    makes the link's nonce (tests and screenshots fix it).
    """

    def __init__(
        self,
        config: Config,
        spooler: PrintSpooler,
        *,
        key: Callable[[], DeviceKey | None],
        clock: Clock,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self.config = config
        self.spooler = spooler
        self.key = key
        self.clock = clock
        self.nonce = nonce
        self.policy = config.receipt.print
        self._presentation: Presentation | None = None
        self._ended: dict[str, Outcome] = {}
        self._watch: _Watch | None = None
        self._screen: _OnScreen | None = None
        self._later: list[_Later] = []
        self._untold: tuple[str, set[str], _Later] | None = None
        """A receipt noted at its presentation's durable end, waiting for the counter to be told
        of it: ``(presentation id, serials not yet told, receipt)``."""
        self._generation = 0
        """Counts rating screens opened: a receipt of an earlier one never reaches the screen."""
        self._unsynced_told = False
        self.issued: deque[Slip] = deque(maxlen=ISSUED_KEPT)
        """The last slips issued, oldest first (for the tests and the screenshots)."""

    # -- when ---------------------------------------------------------------------------------

    def presented(self, presentation: Presentation) -> None:
        """A rating screen opened: remember its request for its end; a QR still waiting or
        shown is dropped (the next citizen is at the window)."""
        if self._untold is not None:  # never expected (start waits for the 谢谢): still printed
            self._later.append(self._untold[2])
            self._untold = None
        self._presentation = presentation
        self._generation += 1
        self._ended = {}
        self._screen = None
        self._watch = None

    def ended(self, finished: Finished) -> None:
        """The session's ``on_ended`` (the outcome is durable): once every case of the
        presentation has ended, note what the policy asks for, with this moment as its time; it
        prints when the counter is told (:meth:`finished`)."""
        p = self._presentation
        if p is None or finished.presentation_id != p.id:
            return
        for serial in finished.serials:
            self._ended[serial] = finished.outcome
        request = p.request
        if not set(request.serials) <= set(self._ended):
            return  # a theme rated in part: the rest ends in the next callback
        ended, self._presentation, self._ended = self._ended, None, {}
        if self.policy == "always":
            serials = request.serials
        elif self.policy == "unrated":
            serials = tuple(s for s in request.serials if ended[s] is not Outcome.RATED)
        else:
            return
        if serials:  # made once told (finished), then after the next frame (flush)
            receipt = (request, serials, self.clock.now(), self._generation)
            self._untold = (p.id, set(request.serials), receipt)

    def finished(self, finished: Finished) -> None:
        """The session's ``on_finished`` (the counter is told: at once for a cancel or a
        timeout, when the 谢谢 ends for a rating): once every case of the noted receipt is told,
        it is made at the loop's next turn, so it prints at the moment the counter hears the end
        whatever the level was (art. 4).  An outcome kept over a restart has none (ignored)."""
        untold = self._untold
        if untold is None or finished.presentation_id != untold[0]:
            return
        untold[1].difference_update(finished.serials)
        if not untold[1]:
            self._untold = None
            self._later.append(untold[2])

    @property
    def due(self) -> bool:
        """Receipts wait to be made (the loop should turn at once: :meth:`flush`)."""
        return bool(self._later)

    def flush(self) -> None:
        """Make and queue the receipts of the presentations that ended (called by the loop at
        the start of its turn, so after the screen that followed the end was drawn)."""
        later, self._later = self._later, []
        for request, serials, stamp, generation in later:
            # Printed in any case; shown (or watched) only while its citizen can still be the
            # one at the window: no rating screen has opened since it ended (a cancel and the
            # next case's start can arrive in one turn of the loop).
            screen = generation == self._generation and self._presentation is None
            self.issue(request, serials, stamp=stamp, screen=screen)

    # -- what ---------------------------------------------------------------------------------

    def issue(
        self,
        request: EvaluationRequest,
        serials: tuple[str, ...] | None = None,
        *,
        stamp: Stamp | None = None,
        screen: bool | None = None,
    ) -> bool:
        """Print a receipt for ``serials`` (default: every case) of ``request``, issued at
        ``stamp`` (default: now); its QR goes on the screen when it cannot be printed, if
        ``screen`` (default: when no rating screen is open — its QR would reach another
        citizen).  False when no receipt can be issued at all (no device key: logged)."""
        if screen is None:
            screen = self._presentation is None
        from printer import ReceiptError

        serials = request.serials if serials is None else serials
        stamp = stamp or self.clock.now()
        key = self.key()
        if key is None:
            log.error("no receipt for cases %s: the device key cannot be used", ",".join(serials))
            return False
        if stamp.synced:
            self._unsynced_told = False
        elif not self._unsynced_told:  # once until the clock is synchronised
            self._unsynced_told = True
            log.warning("receipts issued before the clock is synchronised carry a wrong time: "
                        "the city may refuse their codes as expired")  # fmt: skip
        try:
            slip, receipt = build(
                self.config, request, serials, key=key, wall=stamp.wall, nonce=self.nonce()
            )
        except ReceiptError as exc:
            slip = exc.slip  # type: ignore[attr-defined]
            log.error("receipt for cases %s cannot be printed (%s)%s", ",".join(slip.serials),
                      exc, ": its QR is shown on screen" if screen else "")  # fmt: skip
            self.issued.append(slip)
            if screen:
                self._show(slip, stamp.mono)
            return True
        self.issued.append(slip)
        before = self.spooler.status
        self.spooler.submit(receipt)
        if not screen:
            log.info(
                "receipt for cases %s queued (printer %s); another citizen may be at the "
                "window: no QR on screen",
                ",".join(slip.serials),
                before.state,
            )
        elif before.state in FAILING:
            log.warning("receipt for cases %s queued, printer %s: its QR is shown on screen",
                        ",".join(slip.serials), before.state)  # fmt: skip
            self._show(slip, stamp.mono)
        else:
            log.info("receipt for cases %s queued (printer %s)", ",".join(slip.serials),
                     before.state)  # fmt: skip
            self._watch = _Watch(slip, self._window_end(stamp.mono), before.dropped)
        return True

    def _window_end(self, mono: float) -> float:
        """Until when, from ``mono``, the citizen is likely still at the window."""
        return mono + self.config.session.thanks + self.config.receipt.qr_on_screen

    # -- on the screen ------------------------------------------------------------------------

    def check(self) -> None:
        """After a printer change (or any turn of the loop): a watched receipt that fails while
        its citizen is likely still there goes on the screen."""
        watch = self._watch
        if watch is None:
            return
        if self.clock.now().mono > watch.until:
            self._watch = None
            return
        status = self.spooler.status
        if status.dropped > watch.dropped or (status.pending and status.state in FAILING):
            self._watch = None
            log.warning("receipt for cases %s not printed (printer %s): its QR is shown on "
                        "screen", ",".join(watch.slip.serials), status.state)  # fmt: skip
            self._show(watch.slip, self.clock.now().mono)
        elif not status.pending:
            self._watch = None  # printed

    def _show(self, slip: Slip, mono: float) -> None:
        self._screen = _OnScreen(slip, show_by=self._window_end(mono))

    def showing(self, now: float) -> tuple[Slip, float] | None:
        """The slip to show now and until when, called when the screen may show it (no rating
        screen, no 谢谢): its time starts the first time it is shown; ``None`` when there is
        none, it was closed, or it is over."""
        screen = self._screen
        if screen is None:
            return None
        if screen.until is None:
            if now > screen.show_by:  # never shown while the citizen was likely there
                self._screen = None
                return None
            screen.until = now + self.config.receipt.qr_on_screen
        if now >= screen.until:
            self._screen = None
            return None
        return screen.slip, screen.until

    @property
    def waiting(self) -> bool:
        """A slip waits to be shown or is shown."""
        return self._screen is not None

    def next_change(self) -> float | None:
        """Monotonic time the QR on screen goes away (for the loop's wait), if it shows."""
        screen = self._screen
        return screen.until if screen is not None else None

    def dismiss(self) -> None:
        """A touch on the QR screen: it closes."""
        self._screen = None

    # -- status -------------------------------------------------------------------------------

    def printer_status(self) -> dict[str, Any]:
        """The ``printer`` field of ``status``: the printer's state and the receipts waiting."""
        status = self.spooler.status
        return {"state": status.state, "pending": status.pending}
