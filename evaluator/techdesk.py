"""(wiring) The technician's menu in the running pad: :class:`TechDesk` joins the menu's state
machine (:mod:`evaluator.techmenu`) to the app — taps, the level buttons, the counter, the store,
the printer — so that ``evaluator/app.py`` needs only a few hook lines.

What it keeps away from the session: while the menu is open no tap or button reaches a rating
(the session has no presentation then anyway, and a counter ``evaluation.start`` closes the
menu before the rating screen shows).  What it records: every opening, wrong PIN, lockout, item
and closing, as a log line (journald fields ``TECH_EVENT`` …) and durably in the store as a
signed ``tech_menu`` event, sent to the city like every event (docs/integrator.md §2.7).
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import struct
from datetime import datetime
from typing import TYPE_CHECKING, Any

from evaluator.rules.errors import StoreError
from evaluator.rules.levels import Level
from evaluator.techmenu import ITEMS, MAX_FAILURES, META_KEY, Phase, TechMenu, in_corner
from kiosk import texts
from kiosk.view import ScreenView, TechBackspace, TechDigit, TechEnter, TechItem, TechView

if TYPE_CHECKING:
    from evaluator.app import App

log = logging.getLogger(__name__)

#: Screens on which the gesture counts: no presentation is open on either.
GESTURE_SCREENS = ("idle", "signed_out")


class TechDesk:
    """The technician's menu of one :class:`~evaluator.app.App`."""

    def __init__(self, app: App) -> None:
        self.app = app
        cfg = app.config.tech
        self.menu = TechMenu(
            cfg.pin,
            cfg.lockout,
            read=lambda: app.ledger.read_meta(META_KEY),
            write=lambda text: app.ledger.write_meta(META_KEY, text),
            record=self._record,
            wall=lambda: app.clock.now().wall,
        )
        self.result = ""
        """The last item's result, shown on the menu."""
        self._restore()

    def _restore(self) -> None:
        if not self.app.ledger.fault:
            now = self.app.clock.now()
            self.menu.restore(now.mono, now.wall)

    # -- hooks the app calls ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.menu.is_open

    @property
    def phase(self) -> Phase:
        return self.menu.phase

    def tap(self, pos: tuple[int, int], shown: str, side: int) -> bool:
        """A tap at ``pos`` (pixels) on the screen ``shown``; ``side``: the corner's size (15 mm).
        ``True`` when it completed the gesture and the PIN pad opens."""
        if shown not in GESTURE_SCREENS or self.app.session_rating_open():
            self.menu.gesture.reset()
            return False
        self._restore()  # a store that could not be read at start may work now
        opened = self.menu.tap(self.app.clock.now().mono, in_corner(pos, side))
        if opened:
            self.result = ""
        return opened

    def act(self, action: object) -> None:
        """A tap on the PIN pad or the menu (anything else is ignored while it is open)."""
        now = self.app.clock.now().mono
        menu = self.menu
        if isinstance(action, TechDigit):
            menu.digit(action.digit, now)
        elif isinstance(action, TechBackspace):
            menu.backspace(now)
        elif isinstance(action, TechEnter):
            menu.enter(now)
        elif isinstance(action, TechItem):
            if menu.phase is Phase.PIN:
                if action.name == "close":
                    menu.close(now, "cancelled on the PIN pad")
                return
            self.result = ""
            item = menu.choose(action.name, now)
            if item:
                self.result = self._carry_out(item)
        else:
            menu.touch(now)

    def press(self, level: Level) -> bool:
        """A hardware level button while the menu is open: named on the button test, never a
        rating (``True``: the menu took it)."""
        if not self.menu.is_open:
            return False
        if not self.menu.button(texts.level_label(level), self.app.clock.now().mono):
            log.info("level button ignored: the technician menu is open")
        return True

    def tick(self) -> None:
        self.menu.tick(self.app.clock.now().mono)

    def close(self, why: str) -> None:
        """Close the menu (e.g. a counter ``evaluation.start``: the citizen first)."""
        if self.menu.is_open:
            self.menu.close(self.app.clock.now().mono, why)

    # -- what it shows -----------------------------------------------------------------------

    def view(self) -> ScreenView:
        """The PIN pad or the menu, as the app's view."""
        now = self.app.clock.now().mono
        menu = self.menu
        window = self.app.config.device.window
        online = self.app.sync.status.connected
        if menu.phase is Phase.PIN:
            message = ""
            locked = menu.locked_for(now)
            if locked:
                message = texts.TECH_LOCKED_FMT.format(minutes=max(1, int(locked / 60 + 0.999)))
            elif menu.message == "wrong":
                message = texts.TECH_PIN_WRONG_FMT.format(left=MAX_FAILURES - menu.failures)
            tech = TechView("pin", entered=len(menu.entered), message=message)
            return ScreenView("tech_pin", window=window, online=online, tech=tech)
        if menu.phase is Phase.BUTTON_TEST:
            tech = TechView("button_test", items=(("close", True),), pressed=menu.pressed)
            return ScreenView("tech_menu", window=window, online=online, tech=tech)
        items = tuple((name, self._available(name) == "") for name in ITEMS)
        tech = TechView("menu", info=self.info(), items=items, message=self.result)
        return ScreenView("tech_menu", window=window, online=online, tech=tech)

    def info(self) -> tuple[tuple[str, str], ...]:
        """The pad's state for the technician: never a rating, never a citizen."""
        app = self.app
        cfg = app.config
        status = app.sync.status
        state = texts.TECH_CONNECTED if status.connected else texts.TECH_DISCONNECTED
        broker = f"{_broker(cfg)} {state}" if cfg.mqtt.enabled else texts.TECH_NONE
        if app.receipts is not None:
            printer = app.receipts.printer_status()
            printer_text = f"{printer['state']} ({printer['pending']})"
        else:
            printer_text = texts.TECH_NONE
        link = app.link
        if link is None:
            counter = texts.TECH_NONE
        else:
            up = getattr(link, "connected", None)
            up = up.is_set() if hasattr(up, "is_set") else bool(up)
            counter = (
                f"{cfg.counter.port} {texts.TECH_CONNECTED if up else texts.TECH_DISCONNECTED}"
            )
        link_rows: tuple[tuple[str, str], ...] = ()
        if cfg.mqtt.enabled:
            link_rows = ((texts.TECH_LABEL_LINK, link_text(status.link)),)
            cert = status.cert
            if cert is not None:
                link_rows += ((texts.TECH_LABEL_CERT, cert_text(cert)),)
        return (
            (texts.TECH_LABEL_DEVICE, cfg.device.id),
            (texts.TECH_LABEL_IP, ", ".join(ip_addresses()) or texts.TECH_NONE),
            (texts.TECH_LABEL_BROKER, broker),
            *link_rows,
            (texts.TECH_LABEL_PRINTER, printer_text),
            (texts.TECH_LABEL_COUNTER, counter),
            (texts.TECH_LABEL_OUTBOX, self._outbox()),
            *lost_rows(status.lost),
            (texts.TECH_LABEL_ERROR, self.last_error() or texts.TECH_NONE),
        )

    def _outbox(self) -> str:
        try:
            store = self.app.store
            size = store.outbox_size()
            if not size:
                return "0"
            oldest = store.pending(1)
        except (StoreError, sqlite3.Error) as exc:
            return str(exc)
        age = ""
        if oldest:
            try:
                then = datetime.fromisoformat(str(oldest[0].get("rated_at"))).timestamp()
                age = _age(self.app.clock.now().wall - then)
            except (TypeError, ValueError):
                age = "?"
        return texts.TECH_OUTBOX_FMT.format(count=size, age=age or "?")

    def last_error(self) -> str:
        """The fault shown first: the store's, the link's, the sync's, else the last error
        logged (:func:`evaluator.journal.last_error`)."""
        from evaluator.journal import last_error

        app = self.app
        link_error = getattr(app.link, "last_error", "") if app.link is not None else ""
        return app.ledger.fault or app.sync.status.last_error or link_error or last_error()

    # -- the items ---------------------------------------------------------------------------

    def _available(self, item: str) -> str:
        """Why ``item`` cannot be used here ("" = it can)."""
        if item == "test_print" and self.app.printer is None:
            return '[receipt] print = "never"'
        if item == "reload_config" and not callable(getattr(self.app, "reload_config", None)):
            return "this version cannot reload its config"
        if item == "button_test" and self.app.buttons is None:
            return "no level button fitted"
        return ""

    def _carry_out(self, item: str) -> str:
        why = self._available(item)
        if why:
            return texts.TECH_NOT_AVAILABLE.format(why=why)
        if item == "test_print":
            return self._test_print()
        if item == "reload_config":
            try:
                lines = self.app.reload_config()  # type: ignore[attr-defined]
            except Exception as exc:  # a reload must never stop the pad
                log.exception("config reload from the technician menu failed")
                return f"{type(exc).__name__}: {exc}"
            return "; ".join(str(line) for line in lines or ()) or texts.TECH_RELOADED
        return ""

    def _test_print(self) -> str:
        """The selftest's TEST receipt (a test case, a throw-away key) through the pad's own
        spooler: it holds the printer, so a second one could not print."""
        from evaluator.selftest import make_test_receipt

        try:
            serial, receipt = make_test_receipt(self.app.config)
            assert self.app.printer is not None
            self.app.printer.submit(receipt)
        except Exception as exc:
            log.exception("the technician's test print failed")
            return f"{type(exc).__name__}: {exc}"
        self._record("test_print", {"serial": serial})
        return texts.TECH_PRINT_SENT

    # -- the record ------------------------------------------------------------------------

    def _record(self, event: str, fields: dict[str, object]) -> None:
        """A log line with journald fields and a durable record; never the PIN."""
        level = logging.WARNING if event in ("pin_wrong", "locked", "opened") else logging.INFO
        shown = " ".join(f"{k}={v}" for k, v in fields.items())
        extra = {f"TECH_{k.upper()}": v for k, v in fields.items()}
        log.log(level, "technician menu: %s%s", event, f" ({shown})" if shown else "",
                extra={"fields": {"TECH_EVENT": event, **extra}})  # fmt: skip
        now = self.app.clock.now()
        body = {"event": event, **fields, "at": now.iso, "clock_synced": now.synced}
        try:  # a durable event, signed and sent to the city like the others
            self.app.store.append_event("tech_menu", body)
            self.app.sync.notify()
        except (StoreError, sqlite3.Error, ValueError) as exc:
            log.error("technician menu %s could not be recorded in the store: %s", event, exc)


def _when(iso: str) -> str:
    """``MM-DD HH:MM`` of an ISO time (the menu's width)."""
    return f"{iso[5:10]} {iso[11:16]}" if len(iso) >= 16 else iso


def link_text(link: Any) -> str:
    """The last failed connection (``sync.linkerror.LinkFailure``) in the pad's language: its
    cause, how many times since when, and when it recovered; "none" without one."""
    if link is None:
        return texts.TECH_NONE
    try:
        cause = texts.get(f"link_cause_{link.cause}")
    except KeyError:
        cause = link.words
    since = _when(link.since)
    if link.until:
        return texts.TECH_LINK_UNTIL_FMT.format(
            cause=cause, count=link.count, since=since, until=_when(link.until)
        )
    return texts.TECH_LINK_FMT.format(cause=cause, count=link.count, since=since)


def cert_text(cert: Any) -> str:
    """The client certificate's expiry (``sync.status.CertState``) in the pad's language."""
    if cert.problem:
        return str(cert.problem)
    date = cert.not_after[:10]
    if cert.days_left < 0:
        return texts.TECH_CERT_EXPIRED_FMT.format(date=date)
    template = texts.TECH_CERT_EXPIRING_FMT if cert.expiring else texts.TECH_CERT_OK_FMT
    return template.format(date=date, days=cert.days_left)


def _broker(config: Any) -> str:
    urls = getattr(config.mqtt, "urls", None)
    if urls:
        return ", ".join(str(u) for u in urls) if not isinstance(urls, str) else urls
    return f"mqtt://{config.mqtt.host}:{config.mqtt.port}"


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def ip_addresses() -> list[str]:
    """The IPv4 addresses of this machine's interfaces but loopback (SIOCGIFADDR per interface,
    standard library only)."""
    import fcntl

    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:  # no IPv4 address on this interface
                continue
            found.append(f"{socket.inet_ntoa(packed[20:24])} ({name})")
    return found


def lost_rows(lost: tuple[tuple[str, int], ...]) -> tuple[tuple[str, str], ...]:
    """The menu's row of the fault ``records_lost`` (none while no record is lost)."""
    if not lost:
        return ()
    seqs = ", ".join(f"{stream} {seq}" for stream, seq in lost[:6])
    seqs += " …" if len(lost) > 6 else ""
    return ((texts.TECH_LABEL_LOST, texts.TECH_LOST_FMT.format(count=len(lost), seqs=seqs)),)
