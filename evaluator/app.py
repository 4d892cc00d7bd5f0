"""The running pad: wires the session to the screen, the counter link, the store and the sync.

Threads: the main thread owns pygame and the session (neither is thread-safe); the counter
link and the MQTT sync each own their device and only queue work for the main thread.  The
main loop blocks on events until the next deadline, so an idle pad uses no CPU.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import signal
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from evaluator.config import Config
from evaluator.devices import Devices, from_config
from evaluator.rules.clock import Clock
from evaluator.rules.errors import (
    EvaluatorError,
    IdentityInComment,
    RequestError,
    StoreError,
    SubmitError,
)
from evaluator.rules.levels import Level
from evaluator.rules.phrases import fits, has_phrase, shipped_phrases, toggle_phrase
from evaluator.rules.pressfilter import PressFilter
from evaluator.rules.protocol import Message, fault_event, finished_event, reply_error, reply_ok
from evaluator.rules.reasons import COMMENT_MAX, OTHER_CODE, load_reasons
from evaluator.rules.request import Clerk, parse_clerk, parse_request
from evaluator.rules.session import Closing, Finished, FirstRating, Presentation, Session, State
from evaluator.rules.witness import make_head
from evaluator.sdnotify import sd_notify as _sd_notify
from kiosk import texts
from kiosk.view import (
    Back,
    Backspace,
    ExpandTheme,
    PhraseItem,
    PressLevel,
    ReasonItem,
    ScreenView,
    Submit,
    TechAction,
    ToggleAgency,
    TogglePhrase,
    ToggleReason,
    TypeText,
    UiAction,
)
from kiosk.voice import PRESENTING, THANKS
from sync.store import DuplicateRating, PresentationEnd, Store, gap_note
from sync.storelock import StoreLocked

if TYPE_CHECKING:
    from evaluator.receipts import ReceiptDesk

log = logging.getLogger(__name__)

#: Fields each request type takes besides ``id`` and ``type`` (start is checked by the parser).
_FIELDS: dict[str, set[str]] = {
    "clerk.sign_in": {"clerk"},
    "receipt.print": {"cases", "clerk", "terminal", "theme"},
}

#: How long a storage-failure notice stays on screen, in seconds.
NOTICE_SECONDS = 5.0
#: Seconds between attempts to reopen / probe a faulty store.
MAINTENANCE_SECONDS = 2.0
#: Requests and commands answered per turn of the loop: a flood of them (a business system or
#: the city gone wild) still leaves the citizen's taps and presses and the screen a turn between.
INBOX_PER_STEP = 32
#: Seconds the screensaver's label stays in one place before it moves on (against burn-in).
SAVER_STEP_SECONDS = 60.0
#: Screens the screensaver may replace (never a rating screen, a pause or a notice).
SAVER_STATES = (State.IDLE, State.SIGNED_OUT)
#: Input events that are a citizen at the pad: they wake the screensaver and restart its timer.
_INPUT_EVENTS = ("KEYDOWN", "TEXTINPUT", "MOUSEBUTTONDOWN", "FINGERDOWN")
#: The ``meta`` key of the window's clerk and pause state (it survives a restart).
WINDOW_STATE_KEY = "window_state"
#: Printer states that are a fault for the city's ``printer_fault`` events.
PRINTER_FAULTS = ("offline", "paper_out", "cover_open")
#: Free bytes the store's file system needs before a storage fault clears: a tiny probe write
#: can succeed on a full disk while a rating (a 差评 with reasons is the largest) would not.
MIN_FREE_BYTES = 1 << 20


class StoreLedger:
    """The session's ledger on top of the SQLite store; wakes the sync after each rating.

    It keeps the pad working through storage faults (disk full, read-only, a store that cannot
    be opened): a failed write raises :class:`StoreError` to the caller (nothing was stored, so
    the screen stays as it was), a presentation's end that cannot be written is kept and
    written when the disk takes writes again, and :attr:`fault` says what is wrong until then.
    :meth:`maintain` (called by the app's loop) reopens, retries and probes.
    """

    def __init__(
        self,
        opener: Callable[[], Store],
        *,
        on_rating: Callable[[], None] | None = None,
        on_fault: Callable[[str], None] | None = None,
        area_code: str | None = None,
    ) -> None:
        self._opener = opener
        self.on_rating = on_rating
        self.on_fault = on_fault
        self.area_code = area_code
        """The hall's area code, kept with each presentation for its city event."""
        self._store: Store | None = None
        self.fault = ""
        self.pending_ends: list[Closing] = []
        self._starting = True
        try:
            self.open()  # StoreLocked: another pad writes this store, this one must not start
        finally:
            self._starting = False

    # -- health ---------------------------------------------------------------------------

    def open(self) -> Store | None:
        """Open the store if it is not open; ``None`` (and a fault) when it cannot be."""
        if self._store is None:
            try:
                self._store = self._opener()
            except StoreLocked as exc:
                if self._starting:  # refused at once: nothing read, closed or written
                    raise
                self._set_fault(str(exc))  # another process took it while the store was away
                return None
            except StoreError as exc:
                self._set_fault(str(exc))
                return None
            except Exception as exc:  # whatever the file holds, the pad starts and says so
                log.exception("the rating store could not be opened")
                self._set_fault(f"the rating store could not be opened: {exc}")
                return None
        return self._store

    @property
    def store(self) -> Store:
        """The open store; :class:`StoreError` while it cannot be opened."""
        store = self.open()
        if store is None:
            raise StoreError(self.fault or "the rating store is not available")
        return store

    def _set_fault(self, message: str) -> None:
        first = not self.fault
        self.fault = message or "storage fault"
        if first:
            log.error("storage fault: %s", self.fault)
            if self.on_fault is not None:
                self.on_fault(self.fault)

    def _clear_fault(self) -> None:
        if self.fault:
            log.warning("storage works again (was: %s)", self.fault)
            self.fault = ""
            if self.on_fault is not None:
                self.on_fault("")

    def maintain(self) -> None:
        """While faulted: reopen, write the presentation ends kept back, probe the disk."""
        if not self.fault and not self.pending_ends:
            return
        try:
            store = self.store
            while self.pending_ends:
                end = self.pending_ends[0]
                try:
                    self._write_end(store, end)
                except StoreError:
                    row = store.presentation_row(end.presentation.id)
                    if row is None or row.get("outcome") is None:
                        raise
                    # Already closed (by a restart): nothing more to write.
                self.pending_ends.pop(0)
            store.probe()
            import shutil  # here: only a storage fault needs it (start-up time, issue 6)

            free = shutil.disk_usage(store.path.parent).free
            if free < MIN_FREE_BYTES:
                raise StoreError(
                    f"the disk of {store.path} is nearly full ({free} bytes free; "
                    f"ratings resume above {MIN_FREE_BYTES})"
                )
        except (StoreError, sqlite3.Error, OSError) as exc:
            self._set_fault(str(exc))
            return
        self._clear_fault()

    def _guard(self, exc: Exception) -> StoreError:
        self._set_fault(str(exc))
        return exc if isinstance(exc, StoreError) else StoreError(str(exc))

    # -- the Ledger protocol --------------------------------------------------------------

    def already_rated(self, slots: tuple[tuple[str, str], ...], assess_number: int) -> list[str]:
        try:
            return self.store.already_rated(slots, assess_number)
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None

    def case_kinds(self, serials: tuple[str, ...]) -> dict[str, str]:
        try:
            return self.store.case_kinds(serials)
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None

    def first_ratings(self, slots: tuple[tuple[str, str], ...]) -> dict[str, FirstRating]:
        try:
            found = self.store.first_ratings(slots)
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None
        return {
            serial: FirstRating(serial, f["rating_id"], f["rated_at"], f["clock_synced"])
            for serial, f in found.items()
        }

    def last_ratings(self, serials: tuple[str, ...]) -> dict[str, FirstRating]:
        try:
            found = self.store.last_ratings(serials)
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None
        return {
            serial: FirstRating(serial, f["rating_id"], f["rated_at"], f["clock_synced"])
            for serial, f in found.items()
        }

    def left_unrated(self, slots: tuple[tuple[str, str], ...], assess_number: int) -> list[str]:
        try:
            return self.store.left_unrated(slots, assess_number)
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None

    def open_presentation(self, presentation: Presentation) -> None:
        if self.fault:  # no new rating screen until the store takes writes again (maintain)
            raise StoreError(self.fault)
        req = presentation.request
        try:
            self.store.open_presentation(
                id=presentation.id,
                serials=req.serials,
                stage=req.stage,
                assess_number=req.assess_number,
                clerk_id=req.clerk.id if req.clerk is not None else None,
                matter_codes=[c.matter_code for c in req.cases],
                started_at=presentation.started.iso,
                clock_synced=presentation.started.synced,
                cases=[
                    (serial, slot, case.matter_code)
                    for (serial, slot), case in zip(req.slots(), req.cases, strict=True)
                ],
                visit=req.visit,
                follows=presentation.follows,
                facts={  # for the city's presentation_end event, should it end unrated
                    "cases": [c.to_json() for c in req.cases],
                    "clerk": {"id": req.clerk.id, "name": req.clerk.name} if req.clerk else None,
                    "terminal": req.terminal,
                    "area_code": self.area_code,
                },
            )
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None
        if self.on_rating is not None:  # a re-presentation wrote its event for the city
            self.on_rating()

    def record_rating(self, content: dict[str, Any], *, closing: Closing | None) -> str:
        try:
            record = self.store.append_rating(content, close=_end(closing) if closing else None)
        except DuplicateRating:
            raise
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None
        # A write that worked does not clear a fault: maintain() decides that, with its
        # free-space rule (a 好评 may fit on a disk too full for a 差评).
        if self.on_rating is not None:
            self.on_rating()
        return str(record["id"])

    def close_presentation(self, closing: Closing) -> None:
        """Write the end; if the disk refuses, keep it for :meth:`maintain` (the session goes
        on: a presentation left open in the store is closed at the next start at worst)."""
        try:
            self._write_end(self.store, closing)
        except (StoreError, sqlite3.Error) as exc:
            self._set_fault(str(exc))
            self.pending_ends.append(closing)
            return
        if self.on_rating is not None:  # an end without a rating wrote its event for the city
            self.on_rating()

    @staticmethod
    def _write_end(store: Store, closing: Closing) -> None:
        end = _end(closing)
        store.close_presentation(
            end.id,
            outcome=end.outcome,
            ended_at=end.ended_at,
            rating_ids=end.rating_ids,
            cause=end.cause,
            touched=end.touched,
            clock_synced=end.clock_synced,
        )

    def read_meta(self, key: str) -> str | None:
        """A small value kept in the store's ``meta`` (:class:`StoreError` if unreadable)."""
        try:
            return self.store.read_meta(key)
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None

    def write_meta(self, key: str, value: str) -> None:
        """Keep a small value durably in ``meta``; a refusal is a storage fault."""
        try:
            self.store.write_meta(key, value)
        except (StoreError, sqlite3.Error) as exc:
            raise self._guard(exc) from None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def _end(closing: Closing) -> PresentationEnd:
    return PresentationEnd(
        closing.presentation.id,
        closing.outcome.value,
        closing.at.iso,
        closing.rating_ids,
        closing.cause,
        closing.presentation.touched,
        closing.at.synced,
    )


@dataclass
class Notice:
    text: str
    until: float


class App:
    """The evaluator as configured: ``App(config).run()`` until SIGTERM/SIGINT or window close."""

    def __init__(
        self, config: Config, *, devices: Devices | None = None, clock: Clock | None = None
    ) -> None:
        """``devices`` default to the ones ``config`` names (:func:`evaluator.devices.from_config`,
        with ``clock`` if given)."""
        self.config = config
        texts.select(config.screen.language)  # every text the pad shows, and the app's notices
        self.devices = devices or from_config(config, clock=clock)
        self.clock = self.devices.clock
        self.inbox: queue.Queue[Message | tuple[Message, Callable[[dict[str, Any]], None]]] = (
            queue.Queue()
        )
        """Counter-link requests, and the city's commands with where their reply goes."""
        self.link: Any = None
        self._fault_told = ""
        """The storage fault as the counter last heard it ("" = none)."""
        self._fault_pending = False
        self.store_gap = ""
        """Set when this start found the store damaged and began a new one (see gap_note)."""
        self.sync = self.devices.sync
        self.printer = self.devices.printer
        """The receipt printer's spooler, or ``None`` (``[receipt] print = "never"``)."""
        self.receipts: ReceiptDesk | None = None
        """When receipts print and the QR on screen when one cannot be; ``None`` without."""
        if self.printer is not None:
            from evaluator.receipts import ReceiptDesk

            self.receipts = ReceiptDesk(config, self.printer, key=self._device_key,
                                        clock=self.clock)  # fmt: skip
            self.printer.on_change = self._printer_changed
        self._city_events: list[tuple[str, dict[str, Any]]] = []
        """Events for the city not yet in the store (it refused writes): kept, then written."""
        self._city_state: tuple[Any, ...] = ()
        """The device state the sync's status message last heard (printer, link, clock)."""
        self._store_fault_since = ""
        self._cert_told: Any = None
        """The client certificate's check (``sync.status.CertState``) the city last heard of."""
        self.sync.on_command = self._queue_command  # the city's commands: queued like the link's
        self.ledger = StoreLedger(
            self._open_store,
            on_rating=self.sync.notify,
            on_fault=self._storage_fault,
            area_code=config.device.area_code,
        )
        self.session = Session(
            ledger=self.ledger,
            reasons=load_reasons(config.session.reasons_file),
            clock=self.clock,
            timeout=config.session.timeout,
            thanks=config.session.thanks,
            followup_window=config.session.followup_window,
            followup_gap=config.session.followup_gap,
            visit_gap=config.session.visit_gap,
            area_code=config.device.area_code,
            on_finished=self._finished,
            on_ended=self._ended,
        )
        self._window_saved = ""
        """The window state (JSON) as the store last kept it."""
        self._window_loaded = False
        self._load_window()  # before READY: the clerk is signed in again, a pause still on
        from evaluator.journal import watch_errors
        from evaluator.techdesk import TechDesk

        watch_errors()  # the technician's menu shows the last error
        self.tech = TechDesk(self)
        """The technician's menu (hidden gesture + PIN; never a rating)."""
        self.link = self.devices.link
        if self.link is not None:
            self.link.on_message = self._queue_message
        self.buttons = self.devices.buttons
        self.presses: queue.Queue[Level] = queue.Queue()
        if self.buttons is not None:
            self.buttons.on_press = self._queue_press
        self.voice = self.devices.voice
        """:class:`kiosk.voice.SdlVoice`/``SilentVoice``, or ``None``: the spoken prompts."""
        self._voiced = ""
        """Id of the presentation whose rating screen was last announced."""
        self.notice: Notice | None = None
        self.press_filter = PressFilter(guard=config.session.press_guard)
        self.phrases = shipped_phrases(config.session.phrases_file)
        """The 常用意见 in force; empty (and logged) when the file is broken."""
        self._next_maintenance = 0.0
        self._stopped_by = 0
        self._shown: ScreenView | None = None
        self._idle_state = self.session.state
        self._idle_since = self.clock.now().mono
        """Monotonic time of the last trigger, touch or screen change: the screensaver's start."""
        self._running = True
        self.screen: Any = None
        self._watchdog_every: float | None = None
        """Seconds between ``WATCHDOG=1`` pings (half of systemd's ``WATCHDOG_USEC``); ``None``
        when systemd watches nothing.  Set by :meth:`run` once every worker is started."""
        self._next_ping = 0.0
        self._watchdog_stopped = ""
        self._held_status: dict[str, Any] = {}
        """``status``'s outbox, faults and printer when the open rating screen opened: said
        until its 谢谢 has ended (art. 4: nothing the counter reads may change at a press)."""
        """The worker whose death stopped the pings ("" while they go on)."""
        self._printer_started = False

    # -- wiring ---------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """The open rating store (:class:`StoreError` while it cannot be opened)."""
        return self.ledger.store

    def _open_store(self) -> Store:
        store = self.devices.open_store()
        try:
            self._close_interrupted_presentations(store)
        except StoreError:
            store.close()
            raise
        if store.recovered_from is not None:
            gap = store.follows_gap() or {"kept_aside": str(store.recovered_from)}
            self.store_gap = gap_note(gap)
            self._tell_store_gap()
            now = self.clock.now()
            try:  # the city learns of the gap too (the store is open and new here)
                gap_event = {
                    "fault": "store_gap",
                    "active": True,
                    "message": self.store_gap[:1000],
                    "at": now.iso,
                    "clock_synced": now.synced,
                }
                store.append_event("store_fault", gap_event)
            except StoreError as exc:
                log.error("the store gap could not be told to the city: %s", exc)
        return store

    def _load_window(self) -> None:
        """Bring back the clerk and the pause the store kept (see :meth:`_save_window`).

        Runs once the store can be read; while the store cannot be opened the pad starts
        signed out and the state is loaded when it opens, unless the clerk's side changed it
        meanwhile.  A value that cannot be used is logged and the pad starts signed out."""
        if self._window_loaded or self.ledger.fault:
            return
        try:
            text = self.ledger.read_meta(WINDOW_STATE_KEY)
        except StoreError as exc:
            log.error("the window's sign-in and pause could not be read: %s", exc)
            return
        self._window_loaded = True
        if text is None:
            return
        self._window_saved = text
        if self.session.presentation is not None or json.loads(self._window_json()) != {
            "clerk": None,
            "state": State.SIGNED_OUT.value,
        }:
            return  # changed by the clerk's side while the store was away: that wins
        try:
            self.session.restore_window(json.loads(text))
        except ValueError as exc:  # json.JSONDecodeError is one too
            log.error("the kept sign-in and pause are unusable (%s): the pad starts signed out",
                      exc)  # fmt: skip
            self._window_saved = ""
            return
        clerk = self.session.clerk
        log.info("restored after a restart: %s%s", self.session.state.value,
                 f", clerk {clerk.id}" if clerk else "")  # fmt: skip

    def _window_json(self) -> str:
        return json.dumps(self.session.window_state(), ensure_ascii=False, sort_keys=True)

    def _save_window(self) -> None:
        """Keep the clerk's sign-in and the pause durably when they changed (one small write
        to the store's ``meta``), so a restart or a power cut brings them back.  Never raises:
        a refused write is a storage fault and is tried again once the store works."""
        if self.ledger.fault:
            return
        self._load_window()
        current = self._window_json()
        if current == self._window_saved:
            return
        try:
            self.ledger.write_meta(WINDOW_STATE_KEY, current)
        except StoreError as exc:
            log.error("the window's sign-in and pause could not be kept: %s", exc)
            return
        self._window_saved = current

    def _tell_store_gap(self) -> None:
        """The store was damaged and kept aside at this start: say so loudly, to the counter too
        (the technician hands the kept file to the city)."""
        if self.store_gap and self.link is not None:
            self.link.send(fault_event("store_gap", True, self.store_gap))

    def _close_interrupted_presentations(self, store: Store) -> None:
        """A presentation open when the power went: not rated (art. 25), unless ratings of it
        were stored (items of a theme rated one by one), then rated with those."""
        now = self.clock.now()
        for row in store.unclosed_presentations():
            ids = row["rating_ids"]
            try:
                store.close_presentation(
                    row["id"],
                    outcome="rated" if ids else "not_rated",
                    ended_at=now.iso,
                    rating_ids=ids,
                    cause="restart",
                    clock_synced=now.synced,
                )
            except (StoreError, sqlite3.Error) as exc:  # a damaged row: reported, not fatal
                log.error("presentation %s could not be closed at start: %s", row["id"], exc)

    def _storage_fault(self, message: str) -> None:
        """The store failed or works again: tell the counter, but never while a rating screen
        or the 谢谢 after it is up — a failed 好评 write happens at the press, a 差评's only at
        submit, so telling then would say which it was (art. 4).  :meth:`step` tells it once
        the 谢谢 has ended."""
        self._city_store_fault(message)
        self._fault_pending = True
        session = getattr(self, "session", None)
        if session is None or not session.held:
            self._tell_fault(message)

    def _link_up(self) -> bool:
        """The counter can hear an event now (no link: nobody to wait for)."""
        connected = getattr(self.link, "connected", None)
        return self.link is None or connected is None or connected.is_set()

    def session_rating_open(self) -> bool:
        """A rating screen is showing (``False`` before the session exists)."""
        session = getattr(self, "session", None)
        return bool(session is not None and session.rating_open)

    def _tell_fault(self, fault: str) -> None:
        """Say the storage fault ``fault`` ("" = none) if it changed since the counter heard."""
        self._fault_pending = False
        if fault == self._fault_told:
            return
        self._fault_told = fault
        if self.link is not None:
            self.link.send(fault_event("storage", bool(fault), fault))

    def _queue_message(self, message: Message) -> None:
        """Called on the counter-link thread: queue only, never raise."""
        self.inbox.put(message)
        self._wake()

    def _queue_command(self, message: Message, reply: Callable[[dict[str, Any]], None]) -> None:
        """A command from the city (the sync's thread): queued like a counter request, handled
        by the same :meth:`handle`, so its refusals and art. 4 are the serial link's."""
        self.inbox.put((message, reply))
        self._wake()

    # -- what the city learns besides ratings (issue 8) ----------------------------------------

    def _city_step(self) -> None:
        """Tell the sync's status what changed (printer, counter link, clock), write the
        printer's fault events, and the events a faulty store refused earlier."""
        printer = self.printer.status.state if self.printer is not None else None
        link = None
        if self.link is not None:
            connected = getattr(self.link, "connected", None)
            link = "up" if connected is None or connected.is_set() else "down"
        state = (printer, link, self.clock.now().synced)
        # Not while a rating or its 谢谢 is up: a 好评's receipt prints from the press, a 差评's
        # from its submit, and the status goes out at once (art. 4); told when the 谢谢 ends.
        if state != self._city_state and not self.session.held:
            before = self._city_state[0] if self._city_state else None
            self._city_state = state
            self.sync.set_device_state(printer=printer, counter_link=link, clock_synced=state[2])
            if printer != before:
                detail = getattr(self.printer.status, "detail", "") if self.printer else ""
                if before in PRINTER_FAULTS:
                    self._city_event("printer_fault", {"fault": before, "active": False,
                                                       "message": f"now {printer}"})  # fmt: skip
                if printer in PRINTER_FAULTS:
                    self._city_event("printer_fault", {"fault": printer, "active": True,
                                                       "message": str(detail or "")})  # fmt: skip
        self._city_cert()
        if self._city_events and not self.ledger.fault:
            self._flush_city_events()

    def _city_cert(self) -> None:
        """A new check of the client certificate (the sync's, at its start and once a day):
        each one that finds it expiring is an event, and the first that no longer does."""
        cert = self.sync.status.cert
        # A check that could not read the file (replaced by garbage, mid-copy) says nothing of
        # the expiry: what the city heard last stays, so a renewal after it still ends the fault.
        if cert is None or cert == self._cert_told or cert.problem:
            return
        told, self._cert_told = self._cert_told, cert
        was_expiring = told is not None and told.expiring
        if not cert.expiring and not was_expiring:
            return
        if cert.days_left < 0:
            message = f"the client certificate {cert.path} expired on {cert.not_after[:10]}"
        else:
            message = (f"the client certificate {cert.path} expires on {cert.not_after[:10]} "
                       f"({cert.days_left} days left)")  # fmt: skip
        self._city_event("cert_expiring", {
            "active": cert.expiring, "not_after": cert.not_after, "days_left": cert.days_left,
            "message": message if cert.expiring else f"renewed: {message}",
        })  # fmt: skip

    def _city_store_fault(self, message: str) -> None:
        """A storage fault began or ended: its events are written once the store works again
        (the one that ends it carries ``since``)."""
        if message and not self._store_fault_since:
            self._store_fault_since = self.clock.now().iso
            self._city_event("store_fault", {"fault": "storage", "active": True,
                                             "message": message[:1000]})  # fmt: skip
        elif not message and self._store_fault_since:
            since, self._store_fault_since = self._store_fault_since, ""
            self._city_event("store_fault", {"fault": "storage", "active": False, "message": "",
                                             "since": since})  # fmt: skip

    def _city_event(self, kind: str, body: dict[str, Any]) -> None:
        """Keep an event for the city (stamped now) and write it if the store takes writes."""
        now = self.clock.now()
        self._city_events.append((kind, {**body, "at": now.iso, "clock_synced": now.synced}))
        if not getattr(self, "ledger", None) or self.ledger.fault:
            return
        self._flush_city_events()

    def _flush_city_events(self) -> None:
        """Write the events kept, in order; a refusal leaves them for the next turn."""
        while self._city_events:
            kind, body = self._city_events[0]
            try:
                self.ledger.store.append_event(kind, body)
            except (StoreError, sqlite3.Error) as exc:
                log.warning("the %s event waits: %s", kind, exc)
                return
            self._city_events.pop(0)
            self.sync.notify()

    def _device_key(self) -> Any:
        """The device key signing the receipts' links (``None`` when it cannot be had)."""
        return self.devices.key() if self.devices.key is not None else None

    def _printer_changed(self, status: Any) -> None:
        """The printer's state changed (its worker thread): only wake the loop, which looks."""
        self._wake()

    def _queue_press(self, level: Level) -> None:
        """A hardware level button (gpiozero's thread): queue only, never work here."""
        self.presses.put(level)
        self._wake()

    def _wake(self) -> None:
        if self.screen is not None:
            try:
                self.screen.post_wake()
            except Exception:  # e.g. the event queue is full: the loop wakes within 1 s anyway
                log.debug("could not post a wake-up event", exc_info=True)

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        sc = self.config.screen
        try:
            self.screen = self.devices.open_screen()
        except EvaluatorError:
            self.ledger.close()
            raise
        except Exception as exc:  # pygame.error: no display, wrong driver, missing permissions
            self.ledger.close()
            raise EvaluatorError(
                f"cannot open the screen (driver {sc.driver!r}): {exc}; "
                "see docs/technician.md, troubleshooting"
            ) from exc
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_hangup)  # reload (systemctl reload evaluator)
        if self.link is not None:
            self.link.start()
        log.info(
            "evaluator %s running (storage %s)", self.config.device.id, self.config.storage.path
        )
        if self.ledger.fault:
            self._fault_told = ""  # the link is up now: say it again
            self._storage_fault(self.ledger.fault)
        self._tell_store_gap()
        _sd_notify("READY=1")
        gc.enable()  # paused for the start-up by ``evaluator run`` (evaluator.cli.cmd_run)
        # The uploads start after READY: ratings wait in the outbox, and the worker's start
        # (its store, importing paho) must not hold up the pad's (issue 6).
        self.sync.start()
        if self.devices.key is not None:  # after ready: the crypto import costs ~27 ms
            self.devices.key.start()
        if self.voice is not None:  # after ready: opening the audio device may take a while
            self.voice.start()
        if self.printer is not None:  # after ready: printing runs beside the pad, never before it
            self.printer.start()
            self._printer_started = True
        self.start_watchdog()
        try:
            while self._running:
                if self._reload_asked:
                    self._reload_asked = False
                    _sd_notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
                    self.reload_config()
                    _sd_notify("READY=1")
                self.step()
                self._show()
                self.watchdog(time.monotonic())
                self.handle_events(self.screen.wait(self._sleep_for()))
        finally:
            _sd_notify("STOPPING=1")  # before the shutdown work (SIGTERM, SIGINT, window closed)
            if self._stopped_by:
                log.info("signal %d: stopped", self._stopped_by)
            self.shutdown()
        return 0

    # -- the systemd watchdog ----------------------------------------------------------------------

    def start_watchdog(self) -> None:
        """Ping systemd's watchdog from now on if it watches this process (``WATCHDOG_USEC``);
        :meth:`run` calls it once every worker is started."""
        self._watchdog_every = watchdog_interval()
        self._next_ping = 0.0
        if self._watchdog_every is not None:
            log.info("systemd watchdog: WATCHDOG=1 every %.1f s while every worker is alive",
                     self._watchdog_every)  # fmt: skip

    def dead_worker(self) -> str:
        """The first worker that has died, by name, or "" while all are alive: the counter
        link's thread, the sync's and the printer's spooler, each only when configured and
        started.  The UI loop is the caller (:meth:`watchdog`): a hung loop stops the pings by
        itself.

        The voice process is not watched: the prompts are optional and the pad rates without
        them (a dead or hung voice is silent and logged by ``kiosk.voice``), while a speaker
        that hung on every prompt would restart the pad every minute and reboot the Pi."""
        if _thread_died(self.link):
            return "the counter link thread"
        if _thread_died(self.sync):
            return "the sync thread"
        if self.printer is not None and self._printer_started and not self.printer.running:
            return "the printer spooler thread"
        return ""

    def watchdog(self, now: float) -> None:
        """One turn of the loop: ``WATCHDOG=1`` when a ping is due (``now``: monotonic
        seconds) and every worker is alive; a dead worker stops the pings for good, logged
        once with its name, and systemd restarts the pad after ``WatchdogSec``."""
        if self._watchdog_every is None or self._watchdog_stopped or now < self._next_ping:
            return
        dead = self.dead_worker()
        if dead:
            self._watchdog_stopped = dead
            log.critical("watchdog: %s has died: no more WATCHDOG=1, systemd restarts the pad",
                         dead)  # fmt: skip
            return
        self._next_ping = now + self._watchdog_every
        _sd_notify("WATCHDOG=1")

    def _show(self) -> None:
        """Draw the session's screen if it changed since the last drawing; a new screen starts
        the press filter's guard time (presses then were aimed at the screen before)."""
        view = self.view()
        if view != self._shown:
            before, self._shown = self._shown, view
            texts.select(self.config.screen.language)  # this pad's language, whatever else ran
            self.screen.render(view)
            self.press_filter.screen(self._screen_key(), self.clock.now().mono)
            self._say(view, before)

    def _say(self, view: ScreenView, before: ScreenView | None) -> None:
        """The voice prompt for a screen just drawn (queued: it never delays the screen).

        The rating screen once per presentation: a batch, a theme's next item and 返回 from the
        reasons are the same presentation.  谢谢 once per rating.  Never the reason screen:
        heard across the counter it would tell the clerk a 差评 was chosen (art. 4)."""
        if self.voice is None:
            return
        p = self.session.presentation
        if view.screen == "presenting" and p is not None and p.id != self._voiced:
            self._voiced = p.id
            self.voice.play(PRESENTING)
        elif view.screen == "thanks" and (before is None or before.screen != "thanks"):
            self.voice.play(THANKS)

    def _screen_key(self) -> tuple[Any, ...]:
        """What makes one screen another for the citizen: the state, the presentation and
        which of a theme's items is asked, and which page of a batch's cases shows (a chip
        toggled on the same screen is no change)."""
        s, p = self.session, self.session.presentation
        cases_page = self.screen.page if s.state is State.PRESENTING and self.screen else 0
        return (s.state, p.id if p else None, p.index if p else 0, self.notice is not None,
                self.tech.phase, cases_page)  # fmt: skip

    def handle_events(self, events: list[Any]) -> None:
        """Apply input events in order, each on the screen the one before it left: keys or
        taps that arrive together (a quick 4, Escape, 2) mean what the citizen saw."""
        import pygame

        from kiosk.screen import is_quit

        inputs = {getattr(pygame, name) for name in _INPUT_EVENTS}
        for event in events:
            if is_quit(event):
                self._running = False
            if event.type in inputs:
                shown = self._shown.screen if self._shown is not None else ""
                self._active()
                if shown == "screensaver":  # the touch or key that wakes the pad rates nothing
                    self._show()
                    continue
                if shown == "receipt_qr" and self.receipts is not None:  # a touch closes it
                    self.receipts.dismiss()
                    self._show()
                    continue
                if self._tech_tap(event, shown):  # the technician's gesture: the PIN pad
                    self._show()
                    continue
            action = self.screen.translate(event)
            if action is not None:
                self.act(action)
                self._show()
            elif event.type in inputs:  # a page turn, or a tap beside the targets: still here
                self.session.keep_alive()
                self.press_filter.screen(self._screen_key(), self.clock.now().mono)

    def _tech_tap(self, event: Any, shown: str) -> bool:
        """A tap (finger, or a real mouse click) counted toward the technician's gesture."""
        import pygame

        touch_echo = event.type == pygame.MOUSEBUTTONDOWN and getattr(event, "touch", False)
        pos = None if touch_echo else self.screen.position(event)  # turned back by [screen] rotate
        if pos is None:
            return False
        return self.tech.tap(pos, shown, self.screen.min_target)

    def step(self) -> None:
        """One turn of the loop's work: requests, deadlines, storage upkeep.  Never raises for
        a storage error: the pad shows the fault and keeps serving the citizen."""
        if self.receipts is not None and self.receipts.due:  # after the last frame was drawn
            try:
                self.receipts.flush()
            except Exception:  # a receipt must never stop the loop
                log.exception("receipts could not be made")
        # The hardware presses first: each was made on the screen drawn now, and a request
        # applied before them would have them rate a screen not drawn yet (a batch's cases
        # never shown).  Its own guard time then starts when that screen is drawn.
        while True:
            try:
                level = self.presses.get_nowait()
            except queue.Empty:
                break
            self._active()
            if self.tech.press(level):  # the technician's menu: named, never a rating
                continue
            self.act(PressLevel(level))
        self._drain_inbox()
        self._city_step()  # the city's status and fault events
        try:
            self.session.tick()
        except (StoreError, OSError, sqlite3.Error) as exc:  # the ledger keeps ends it cannot write
            log.error("storage failed at a deadline: %s", exc)
        now = self.clock.now().mono
        if (self.ledger.fault or self.ledger.pending_ends) and now >= self._next_maintenance:
            self._next_maintenance = now + MAINTENANCE_SECONDS
            self.ledger.maintain()
        if self._fault_pending and not self.session.held:
            self._tell_fault(self.ledger.fault)
        if self.session.untold and self._link_up():  # outcomes kept over a restart (谢谢)
            self.session.tell_untold()
        if self.receipts is not None:
            self.receipts.check()
        self._save_window()  # a change in a failed request, or a store that works again
        self.tech.tick()
        self._watch_idle(self.clock.now().mono)

    def _sleep_for(self) -> float:
        now = self.clock.now().mono
        wakeups = [1.0]  # the countdown shows whole seconds; storage upkeep runs at most this late
        if not self.inbox.empty():  # more requests than one turn answers
            wakeups.append(0.0)
        if self.receipts is not None and self.receipts.due:
            wakeups.append(0.0)  # a receipt to make now that its screen is drawn
        deadline = self.session.next_deadline()
        if deadline is not None:
            wakeups.append(max(0.0, deadline - now) + 0.01)
        if self.notice is not None:
            wakeups.append(max(0.0, self.notice.until - now))
        shown_until = self.receipts.next_change() if self.receipts is not None else None
        if shown_until is not None:
            wakeups.append(max(0.0, shown_until - now) + 0.01)
        if self._watchdog_every is not None and not self._watchdog_stopped:
            wakeups.append(max(0.0, self._next_ping - time.monotonic()))
        saver = self._saver_due()
        if saver is not None:  # the screensaver starts, or its label moves on
            if now < saver:
                wakeups.append(saver - now + 0.01)
            else:
                step = (now - saver) % SAVER_STEP_SECONDS
                wakeups.append(SAVER_STEP_SECONDS - step + 0.01)
        return min(wakeups)

    # -- the screensaver ---------------------------------------------------------------------------

    def _active(self) -> None:
        """A trigger, a touch, a key or a button: the screensaver's time starts again."""
        self._idle_since = self.clock.now().mono

    def _watch_idle(self, now: float) -> None:
        """A new screen state (a rating ended, a clerk signed out) starts the time again."""
        if self.session.state is not self._idle_state:
            self._idle_state = self.session.state
            self._idle_since = now

    def _saver_due(self) -> float | None:
        """Monotonic time the screensaver starts (or started) on this screen; None when this
        screen never gets one (not idle or signed out, a fault or notice shown, turned off)."""
        after = self.config.idle.screensaver_after
        s = self.session
        if after <= 0 or s.state not in SAVER_STATES or self.notice or self.ledger.fault:
            return None
        if self.receipts is not None and self.receipts.waiting:  # a receipt's QR on screen
            return None
        return self._idle_since + after

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set the flag and wake the loop: the handler may interrupt the main thread in the
        # middle of writing a log line, and logging from here would then fail (reentrant write
        # to stderr) before the flag is set, so the pad would ignore SIGTERM.
        self._running = False
        self._stopped_by = signum
        self._wake()

    _reload_asked = False

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        # Like _on_signal: only a flag, the loop reloads (logging here could deadlock).
        self._reload_asked = True
        self._wake()

    def reload_config(self) -> list[str]:
        """Re-read the configuration files and apply what can change at run time; the
        messages (also logged): each key reloaded, each ``needs a restart: [section] key``,
        or every problem and that the running configuration stays (:mod:`evaluator.reload`)."""
        from evaluator.reload import reload

        return reload(self)

    def redraw(self) -> None:
        """Draw the screen again at the next turn of the loop (e.g. a new language)."""
        self._shown = None

    def shutdown(self) -> None:
        if self.link is not None:
            self.link.stop()
        self.sync.stop()
        self.sync.join(5)
        if self.buttons is not None:
            self.buttons.close()
        if self.voice is not None:
            self.voice.close()
        if self.printer is not None:
            self.printer.stop()
        if self.devices.key is not None:
            self.devices.key.join()
        if self.screen is not None:
            self.screen.close()
        self.ledger.close()

    # -- counter requests -------------------------------------------------------------------------

    def _drain_inbox(self) -> None:
        for _ in range(INBOX_PER_STEP):  # the rest in the next turn (_sleep_for waits not)
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return
            message, answer = message if isinstance(message, tuple) else (message, None)
            reply = self.handle(message)
            if answer is not None:  # a command from the city: its reply goes back there
                answer(reply)
            elif self.link is not None:
                self.link.send(reply)

    def handle(self, message: Message) -> dict[str, Any]:
        """Apply one counter request; the reply never mentions a level.  A request other than
        ``status`` (a poll) restarts the screensaver's time."""
        if message.type != "status":
            self._active()
        try:
            reply = self._handle(message)
            self._save_window()  # durable before the counter hears the request was done
            return reply
        except RequestError as exc:
            log.info("request %s refused: %s", message.id, exc.message)
            return reply_error(message.id, exc)
        except (StoreError, sqlite3.Error) as exc:
            log.error("storage failed while handling %s: %s", message.type, exc)
            return reply_error(message.id, RequestError("storage", str(exc)))
        except Exception as exc:  # a bug must not stop the pad: refuse this request only
            log.exception("request %s (%s) failed", message.id, message.type)
            return reply_error(
                message.id, RequestError("internal", f"{type(exc).__name__}: {exc}"[:300])
            )

    def _handle(self, message: Message) -> dict[str, Any]:
        allowed = _FIELDS.get(message.type, set())
        unknown = sorted(set(message.body) - allowed) if message.type != "evaluation.start" else []
        if unknown:
            raise RequestError("unknown_field", f"{message.type} takes no field {unknown[0]!r}")
        handler = self._handlers[message.type]
        before = self.session.clerk
        extra = handler(self, message.body)
        self._report_clerk(before)
        return reply_ok(message.id, **(extra or {}))

    def _report_clerk(self, before: Clerk | None) -> None:
        """Tell the city, as a signed event, whenever the clerk signed in here changes (a
        ``clerk.sign_in`` or ``clerk.sign_out``, or an ``evaluation.start`` naming another
        clerk): the city holds a rating whose clerk was not signed in at its pad, and a clerk
        signed in at two pads at once (sync.hub.truth, issue 16)."""
        after = self.session.clerk
        if after == before:
            return
        if after is None and before is not None:
            self._city_event("clerk_sign_out", {"clerk": before.to_json()})
        elif after is not None:
            self._city_event("clerk_sign_in", {"clerk": after.to_json()})

    def _outbox_size(self) -> int | None:
        try:
            return self.store.outbox_size()
        except (StoreError, sqlite3.Error):
            return None

    def _start(self, body: dict[str, Any]) -> None:
        presentation = self.session.start(parse_request(body))
        self.tech.close("evaluation.start: the citizen first")
        # What status says of the outbox, faults and printer while this screen and the 谢谢
        # after its rating are up: a 好评 is stored at the press (its receipt queued then), a
        # 差评 only at its submit; a live figure (or a store error) would tell which (art. 4).
        self._held_status = self._status_figures()
        log.info("rating screen for cases %s", ",".join(presentation.request.serials))
        if self.receipts is not None:
            self.receipts.presented(presentation)

    def _receipt_print(self, body: dict[str, Any]) -> dict[str, Any]:
        """``receipt.print``: a receipt for the cases named (the body of ``evaluation.start``
        without the rating's fields); it never opens a rating screen."""
        if self.receipts is None:
            raise RequestError(
                "printing_off", 'this window prints no receipts ([receipt] print = "never")'
            )
        request = parse_request({**body, "stage": "deliver"})
        # Its QR never on screen while a rating is held: a 好评's 谢谢 has no open presentation
        # where a 差评's reasons have one, and the screen and the journal would say which.
        if not self.receipts.issue(request, screen=not self.session.held):
            raise RequestError(
                "device_key", "no receipt: the device key cannot be used to sign its QR"
            )
        return {"printer": self.receipts.printer_status()}

    def _cancel(self, body: dict[str, Any]) -> None:
        if not self.session.cancel():
            raise RequestError("not_presenting", "no rating screen is open")

    def _sign_in(self, body: dict[str, Any]) -> None:
        self.session.sign_in(parse_clerk(body.get("clerk")))

    def _sign_out(self, body: dict[str, Any]) -> None:
        self.session.sign_out()

    def _pause(self, body: dict[str, Any]) -> None:
        self.session.pause()

    def _resume(self, body: dict[str, Any]) -> None:
        self.session.resume()

    def _status(self, body: dict[str, Any]) -> dict[str, Any]:
        """What the clerk's side may know: never the level, and one ``rating`` state for a
        presentation until the 谢谢 after its rating has ended (art. 4), with the outbox,
        faults and printer of its opening meanwhile."""
        self.session.tick()
        figures = (self.session.held and self._held_status) or self._status_figures()
        return {
            "state": self.session.public_state,
            "outbox": figures["outbox"],
            "online": self.sync.status.connected,
            "faults": figures["faults"],
            "printer": figures["printer"],
        }

    def _status_figures(self) -> dict[str, Any]:
        """``status``'s outbox, faults and printer, as they are now."""
        status = self.sync.status
        return {
            "outbox": self._outbox_size(),
            "faults": (["storage"] if self._fault_told else [])
            + (["store_gap"] if self.store_gap else [])
            + (["device_key"] if self.devices.key is not None and self.devices.key.problem else [])
            # The scheduled full check found damage: the next start keeps the store aside.
            + (["store_check"] if status.store_check.startswith("damaged") else [])
            # The client certificate for the city expires within 30 days (or has expired).
            + (["cert_expiring"] if status.cert is not None and status.cert.expiring else [])
            # Records lost on the SD card: signed loss statements went to the city instead.
            + (["records_lost"] if getattr(status, "lost", ()) else []),
            "printer": self.receipts.printer_status() if self.receipts is not None else None,
        }

    _handlers: ClassVar[dict[str, Callable[[App, dict[str, Any]], dict[str, Any] | None]]] = {
        "evaluation.start": _start,
        "evaluation.cancel": _cancel,
        "clerk.sign_in": _sign_in,
        "clerk.sign_out": _sign_out,
        "window.pause": _pause,
        "window.resume": _resume,
        "status": _status,
        "receipt.print": _receipt_print,
    }

    def _ended(self, finished: Finished) -> None:
        """Called by the session as soon as an outcome is durable (at the press or submit for
        a rating): the receipt, and an outcome whose telling waits for the 谢谢 to end is kept
        with the window state, so a restart during 谢谢 still tells it.  Nothing reaches the
        counter or the journal here (art. 4: that moment differs for a 好评 and a 差评); the
        receipt is only noted, and prints when the counter is told (:meth:`_finished`)."""
        if self.session.untold:
            self._save_window()
        if self.receipts is not None:
            try:
                self.receipts.ended(finished)
            except Exception:  # a receipt must never break a rating's end
                log.exception("the receipt for cases %s failed", ",".join(finished.serials))

    def _finished(self, finished: Finished) -> None:
        """Called by the session when the counter may hear of an outcome (a rating: when its
        谢谢 ends, art. 4); tells the counter, lets its receipt print (the same moment for
        every level), then forgets it in the kept window state.

        Logs carry the outcome only, never the level: the journal is readable at the window.
        """
        log.info("cases %s: %s", ",".join(finished.serials), finished.outcome.value)
        if self.link is not None:
            rated = finished.outcome.value == "rated"
            head = self._ratings_head() if rated else None
            self.link.send(finished_event(finished.serials, finished.outcome.value, head))
        if self.receipts is not None:
            try:
                self.receipts.finished(finished)
            except Exception:  # a receipt must never break a rating's end
                log.exception("the receipt for cases %s failed", ",".join(finished.serials))
        if not self.session.untold and '"untold"' in self._window_saved:
            self._save_window()  # told: a restart must not tell it again

    def _ratings_head(self) -> dict[str, Any] | None:
        """The signed head of the ratings chain for a ``rated`` (art. 40: the counter's business
        system keeps it as a witness the city compares; it tells no level, see
        :mod:`evaluator.rules.witness`).  ``None`` on a pad without a key; a head that cannot be
        made now (the key still loading, the store faulty) is logged, and ``rated`` goes without."""
        if self.devices.key is None:
            return None
        try:
            signer = self.devices.key()
            store = self.ledger.store
            head = store.ratings_head()
            epoch = store.epoch
        except Exception as exc:
            log.warning("the chain head for the counter cannot be read: %s", exc)
            return None
        if signer is None or head is None:
            log.warning(
                "rated without a chain head: %s",
                "the device key is not loaded" if signer is None else "no rating stored",
            )
            return None
        return make_head(signer, device_id=self.config.device.id, epoch=epoch, seq=head[0],
                         hash_=head[1])  # fmt: skip

    # -- citizen input ----------------------------------------------------------------------------

    def act(self, action: UiAction) -> None:
        """Apply one tap, key or button press; storage failures show a notice and lose nothing
        already kept.  A press the press filter refuses (just after a screen change, a repeat
        of the same target) does nothing; typed text is not filtered."""
        s = self.session
        if not isinstance(action, TypeText | Backspace) and not self.press_filter.accept(
            action, self.clock.now().mono
        ):
            log.debug("press ignored by the press filter: %s", type(action).__name__)
            return
        if self.tech.is_open or isinstance(action, TechAction):
            if self.tech.is_open and not s.rating_open:  # nothing of it reaches the session
                self.tech.act(action)
            return
        try:
            if isinstance(action, PressLevel):
                if not self._hold_for_unseen():
                    s.press(action.level)
            elif isinstance(action, ToggleReason):
                s.toggle_reason(action.code)
            elif isinstance(action, ToggleAgency):
                s.toggle_agency(action.name)
            elif isinstance(action, TogglePhrase):
                # A 常用意见 chip: the session sees the edit as backspaces and typing, so its cap
                # and timeout rules hold; only a listed phrase, only while 其他 is chosen.
                choice = s.choice
                if (
                    s.state is State.CHOOSING_REASONS
                    and choice is not None
                    and choice.other
                    and action.text in self.phrases.phrases
                ):
                    old = choice.comment
                    new = toggle_phrase(old, action.text, COMMENT_MAX)
                    keep = next(
                        (i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                        min(len(old), len(new)),
                    )
                    for _ in range(len(old) - keep):
                        s.backspace()
                    if new[keep:]:
                        s.type_text(new[keep:])
            elif isinstance(action, ExpandTheme):
                s.expand_theme()
            elif isinstance(action, TypeText):
                s.type_text(action.text)
            elif isinstance(action, Backspace):
                s.backspace()
            elif isinstance(action, Back):
                s.back()
            elif isinstance(action, Submit):
                s.submit()
        except IdentityInComment:
            self.notice = Notice(texts.COMMENT_IDENTITY, self.clock.now().mono + NOTICE_SECONDS)
        except SubmitError:
            pass  # the 提交 button is disabled; a stray Enter does nothing
        except (StoreError, OSError, sqlite3.Error) as exc:  # nothing stored: the screen stays
            log.error("could not store the rating: %s", exc)
            self.notice = Notice(texts.STORAGE_FAILED, self.clock.now().mono + NOTICE_SECONDS)

    def _hold_for_unseen(self) -> bool:
        """A level press (tap, key or button) on a batch whose cases were not all shown yet
        (art. 24: the citizen rates only the cases they saw): the screen shows the first page
        not shown instead, the not-rated timeout starts again as for a page turn, and nothing
        is rated; the presentation counts as touched, as after any level press.  The log says
        so, without the level."""
        s = self.session
        s.tick()  # a press after the timeout ran out ends it, as Session.press would
        if s.state is not State.PRESENTING or self.screen is None:
            return False
        unseen = len(self.screen.cases_unseen)
        if not self.screen.show_unseen():
            return False
        log.info("a level press with %d case(s) of the batch not shown yet: their page is "
                 "shown, nothing rated", unseen)  # fmt: skip
        s.keep_alive()
        # Still a level press (art. 4): from now on only the citizen or the timeout ends the
        # presentation, never a cancel, pause or sign-out the clerk times after seeing it.
        if s.presentation is not None:
            s.presentation.touched = True
        # Another page of cases is another screen: a press in its first moments was aimed at
        # the page before (the second tap of a double tap rates nothing unseen).
        self.press_filter.screen(self._screen_key(), self.clock.now().mono)
        return True

    # -- what the screen shows ---------------------------------------------------------------------

    def view(self) -> ScreenView:
        """The screen for the session's state (pure: no drawing)."""
        s, cfg = self.session, self.config
        online = self.sync.status.connected
        now = self.clock.now().mono
        self._watch_idle(now)
        if self.notice is not None and now >= self.notice.until:
            self.notice = None
        p = s.presentation
        # While a rating screen is open it names the clerk of its request: the one the record
        # will name.
        clerk = p.request.clerk if p is not None and s.rating_open else s.clerk
        base: dict[str, Any] = {
            "window": cfg.device.window,
            "clerk_name": clerk.name if clerk else "",
            "clerk_id": clerk.id if clerk else "",
            # A self-service terminal's rating screen shows its number, never a clerk (art. 23).
            "terminal": (p.request.terminal or "") if p is not None and s.rating_open else "",
            "online": online,
        }
        if self.notice is not None and s.rating_open:
            base["message"] = self.notice.text
        elif self.ledger.fault:
            base["message"] = texts.STORAGE_FAULT
        if p is not None and s.rating_open:
            deadline = s.next_deadline()
            base["cases"] = tuple((c.matter_name, c.serial) for c in p.current_cases)
            base["theme"] = p.request.theme.name if p.request.theme else ""
            base["seconds_left"] = max(0, int(deadline - now + 0.999)) if deadline else None
            if s.state is State.PRESENTING or s.choice is None:
                themed = p.request.theme is not None and len(p.request.cases) >= 2
                return ScreenView(
                    "presenting",
                    can_expand=themed and not p.itemised,
                    item_index=p.index + 1 if p.itemised else 0,
                    item_count=len(p.request.cases) if p.itemised else 0,
                    **base,
                )
            choice = s.choice
            language = self.config.screen.language
            items = [
                ReasonItem(r.code, r.shown(language), r.target, r.code in choice.selected)
                for r in choice.offered
            ]
            items.append(ReasonItem(OTHER_CODE, texts.OTHER_REASON, "other", choice.other))
            agencies = (
                tuple((a, a in choice.agencies) for a in p.request.agencies)
                if "matter" in p.targets
                else ()
            )
            return ScreenView(
                "reasons",
                level=choice.level,
                reasons=tuple(items),
                agencies=agencies,
                comment=choice.comment,
                phrases=tuple(
                    PhraseItem(
                        text,
                        has_phrase(choice.comment, text),
                        fits(choice.comment, text, COMMENT_MAX),
                    )
                    for text in self.phrases.phrases
                )
                if choice.other
                else (),
                can_submit=choice.can_submit,
                **base,
            )
        screen = {
            State.SIGNED_OUT: "signed_out",
            State.IDLE: "idle",
            State.THANKS: "thanks",
            State.PAUSED: "paused",
        }.get(s.state, "idle")
        if self.receipts is not None and s.state is not State.THANKS:
            shown = self.receipts.showing(now)
            if shown is not None:  # its receipt could not be printed: the QR here instead
                slip, until = shown
                return ScreenView("receipt_qr", window=cfg.device.window, online=online,
                                  qr=slip.url, short_code=slip.short_code,
                                  seconds_left=max(0, int(until - now + 0.999)))  # fmt: skip
        saver = self._saver_due()
        if saver is not None and now >= saver:
            step = int((now - saver) // SAVER_STEP_SECONDS)
            return ScreenView("screensaver", window=cfg.device.window, online=online,
                              saver_step=step)  # fmt: skip
        if self.tech.is_open and not s.rating_open:
            return self.tech.view()
        if screen == "idle" and cfg.idle.static_qr:
            base["qr"] = cfg.idle.static_qr
        return ScreenView(screen, **base)


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of the ``WATCHDOG_USEC`` systemd sets with
    ``WatchdogSec=``; ``None`` when it is unset, not a positive number, or meant for another
    process (``WATCHDOG_PID``)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number of microseconds: no watchdog pings", usec)
        return None
    return value / 2e6 if value > 0 else None


def _thread_died(worker: Any) -> bool:
    """``worker`` is a thread that was started and has ended (anything else: ``False``)."""
    is_alive = getattr(worker, "is_alive", None)
    return callable(is_alive) and getattr(worker, "ident", None) is not None and not is_alive()
