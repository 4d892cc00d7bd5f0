"""Every device of the pad, chosen from the config in this one place (as gpiozero picks its pin
factory), each with a stand-in that ships in the product:

- **screen** — ``[screen] driver``: an SDL window or the KMSDRM console; stand-in ``"dummy"``
  (draws to memory).
- **counter link** — ``[counter] port``: a serial device or any pyserial URL; stand-ins
  ``"dummy://"`` (:class:`kiosk.dummylink.DummyLink`: keeps every frame, plays requests in),
  ``"sim://NAME"`` (the business-system simulator) and ``"loop://"``; ``""`` means no link.
- **rating store** — ``[storage] path``: one SQLite file (WAL, ``synchronous=FULL``).
- **sync** — ``[mqtt] enabled``: :class:`sync.mqtt.SyncWorker`; stand-in
  :class:`sync.offline.OfflineSync` (no broker; ratings wait in the outbox).
- **level buttons** — ``[buttons]`` pins: gpiozero ``Button`` on the configured pin factory
  (``lgpio`` on a Pi 5); stand-in ``pin_factory = "mock"`` (gpiozero's ``MockFactory``).
- **voice** — ``[voice] enabled``: :class:`kiosk.voice.SdlVoice` (``pygame.mixer`` in a child
  process, ``kiosk.voiceproc``, so a hung audio device never holds the pad; the WAVs of
  ``[voice] dir`` in the ``[screen] language`` folder); stand-in :class:`kiosk.voice.SilentVoice`
  (plays nothing, keeps what it would have played).
- **device key** — ``[device] key_file``: :class:`sync.keyloader.KeyLoader` loads (or creates)
  the Ed25519 key beside the pad, after READY; the store signs every record with it.
- **receipt printer** — ``[printer]`` (kind and its connection, the model's profile), used when
  ``[receipt] print`` is not ``never``: a :class:`printer.PrintSpooler` on
  :func:`printer.open_printer`, spooling to ``[printer] spool_dir``; stand-in ``kind = "dummy"``
  (python-escpos's ``Dummy``: keeps the bytes, answers as a healthy printer).  ``None`` when
  no receipt is printed (the ``printer`` package is then not even imported).
- **clock** — :class:`~evaluator.rules.clock.SystemClock`; stand-in
  :class:`~evaluator.rules.clock.FakeClock` (tests, screenshots).

The app receives a :class:`Devices` and builds none itself: tests and tools hand it theirs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evaluator.config import Config
from evaluator.rules.clock import Clock, SystemClock
from evaluator.rules.protocol import Message
from sync.keyloader import KeyLoader
from sync.store import Store

log = logging.getLogger(__name__)


@dataclass
class Devices:
    """What the app runs on.  ``open_store`` and ``open_screen`` are factories: the store is
    opened (and reopened after a fault) by the ledger, the screen in the main thread by ``run``."""

    clock: Clock
    open_store: Callable[[], Store]
    sync: Any
    """:class:`sync.mqtt.SyncWorker` or :class:`sync.offline.OfflineSync` (same API)."""
    link: Any
    """:class:`kiosk.counter.CounterLink`, or ``None`` (``[counter] port = ""``)."""
    open_screen: Callable[[], Any]
    buttons: Any = None
    """:class:`kiosk.buttons.LevelButtons`, or ``None`` when no button is fitted."""
    key: KeyLoader | None = None
    """The device key signing every record (``None``: records unsigned, as in some tests)."""
    voice: Any = None
    """:class:`kiosk.voice.SdlVoice` or :class:`kiosk.voice.SilentVoice` (same API), or
    ``None`` (no prompts at all)."""
    printer: Any = None
    """The receipt printer's :class:`printer.PrintSpooler` (not started), or ``None``
    (``[receipt] print = "never"``)."""


def _not_attached(message: Message) -> None:
    log.warning("counter request %s arrived before the app attached; ignored", message.id)


def from_config(config: Config, *, clock: Clock | None = None) -> Devices:
    """The devices ``config`` names (nothing is opened or started here)."""
    key = KeyLoader(config.device.key_file)
    return Devices(
        clock=clock or SystemClock(),
        open_store=lambda: Store(config.storage.path, device_id=config.device.id, signer=key),
        key=key,
        sync=_sync(config, key),
        link=_link(config),
        open_screen=lambda: open_screen(config),
        buttons=_buttons(config),
        voice=_voice(config),
        printer=make_spooler(config) if config.receipt.print != "never" else None,
    )


#: Seconds an unprinted receipt is kept at least (the spooler's ``max_age`` is the citizen's time
#: at the window, 谢谢 plus ``[receipt] qr_on_screen``, but never less than this).
RECEIPT_MIN_AGE = 10.0


def receipt_max_age(config: Config) -> float:
    """How long an unprinted receipt is kept and retried: while its citizen is likely still at
    the window (谢谢, then the QR on screen).  Printed later, it would land in the next citizen's
    hands with another person's case and a QR that rates it."""
    return max(RECEIPT_MIN_AGE, config.session.thanks + config.receipt.qr_on_screen)


def make_spooler(config: Config, *, spool: bool = True) -> Any:
    """The receipt printer ``[printer]`` names, behind a :class:`printer.PrintSpooler` (not
    started; nothing opened); ``spool`` keeps waiting receipts in ``[printer] spool_dir`` (the
    pad's; a command printing beside the pad keeps none, or both would print them)."""
    from printer import ConnectionSpec, PrinterProfile, PrintSpooler, open_printer

    pc = config.printer
    return PrintSpooler(
        open_printer(ConnectionSpec.from_config(pc.connection)),
        PrinterProfile.from_config(pc.profile),
        spool_dir=pc.spool_dir if spool else None,
        max_age=receipt_max_age(config),
    )


def _buttons(config: Config) -> Any:
    pins = config.buttons.pins
    if not pins:
        return None
    from evaluator.rules.errors import ConfigError
    from evaluator.rules.levels import Level
    from kiosk.buttons import LevelButtons, pin_factory

    bc = config.buttons
    try:
        return LevelButtons(
            {Level(name): pin for name, pin in pins.items()},
            pull_up=bc.pull_up,
            bounce_time=bc.bounce_time,
            factory=pin_factory(bc.pin_factory),
        )
    except Exception as exc:  # a pin in use, no GPIO on this machine, a missing factory library
        raise ConfigError(
            f"[buttons]: cannot use the level buttons on pins {pins} with pin factory "
            f"{bc.pin_factory or 'default'!r}: {exc}"
        ) from exc


def _voice(config: Config) -> Any:
    from kiosk.voice import SdlVoice, SilentVoice

    vc = config.voice
    language = getattr(config.screen, "language", "") or "zh"  # the display language
    if not vc.enabled:
        return SilentVoice(vc.dir, language=language)
    return SdlVoice(vc.dir, language=language, volume=vc.volume)


def _sync(config: Config, key: KeyLoader | None = None) -> Any:
    mq = config.mqtt
    if not mq.enabled:
        from sync.offline import OfflineSync

        return OfflineSync(config.storage.path, config.device.id)  # it runs the store check
    from sync.mqtt import SyncWorker

    return SyncWorker(
        store_path=config.storage.path,
        device_id=config.device.id,
        host=mq.host,
        port=mq.port,
        topic_prefix=mq.topic_prefix,
        client_id=mq.client_id,
        username=mq.username,
        password=mq.password,
        keepalive=mq.keepalive,
        resend_after=mq.resend_after,
        max_rate=mq.max_rate,
        burst=mq.burst,
        max_unacked=mq.max_unacked,
        reconnect_spread=mq.reconnect_spread,
        status_every=mq.status_every,
        brokers=mq.urls,
        protocol=mq.protocol,
        tls_ca=str(mq.tls_ca or ""),
        tls_cert=str(mq.tls_cert or ""),
        tls_key=str(mq.tls_key or ""),
        signer=key,  # checks the records before they are published, signs loss statements
    )


def _link(config: Config) -> Any:
    counter = config.counter
    if not counter.port:
        return None
    from kiosk.dummylink import URL, DummyLink

    if counter.port == URL:
        return DummyLink(on_message=_not_attached)
    from kiosk.counter import CounterLink

    return CounterLink(
        counter.port,
        baudrate=counter.baudrate,
        reconnect=counter.reconnect,
        on_message=_not_attached,  # the app attaches its queue before starting the link
    )


def open_screen(config: Config, *, title: str | None = None) -> Any:
    """The display ``[screen]`` names, opened (the pad's, and ``selftest``'s with its own
    ``title``)."""
    from kiosk import texts
    from kiosk.screen import Screen

    sc = config.screen
    return Screen(
        width=sc.width,
        height=sc.height,
        fullscreen=sc.fullscreen,
        font_path=sc.font,
        font_bold=sc.font_bold,
        dpi=sc.dpi,
        driver=sc.driver,
        title=title or f"{texts.WINDOW_TITLE} {config.device.id}",
        rotate=sc.rotate,
    )
