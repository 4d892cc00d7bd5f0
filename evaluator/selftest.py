"""``evaluator selftest``: is every part of this pad working?  (issue 9, "Diagnose")

One check per part — config, font, screen, buttons, printer, counter, broker, storage, clock —
each a line ``PASS``/``FAIL``/``SKIP`` with what was seen and, for a failure, the fix.  Every
check is independent and never raises (a crash in one is its ``FAIL`` line); what is not
configured is ``SKIP`` with why.  Exit code: 0 all PASS/SKIP, 1 any FAIL, 2 bad config.

Nothing here touches the ratings: the storage check writes and fsyncs a probe file next to the
store and, when the pad is not running, takes the pad's lock on the store and commits a probe to
its ``meta`` (never a rating; beside a running pad it only reads the store), the broker check
publishes a probe under ``{prefix}/{device}/selftest`` with a throw-away client id (never a
rating), the printer check prints a receipt marked TEST whose QR is signed with a throw-away
key (never the device key).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from evaluator.rules.errors import ConfigError

if TYPE_CHECKING:
    from evaluator.config import Config

#: The checks, in the order they run and print.
CHECKS: tuple[str, ...] = (
    "config",
    "font",
    "screen",
    "buttons",
    "printer",
    "counter",
    "broker",
    "storage",
    "clock",
)
#: Seconds to wait for a button press by default.
BUTTON_TIMEOUT = 10.0
#: Seconds the broker check waits for each step (connect, subscribe, ack, read back).
BROKER_TIMEOUT = 5.0
#: Seconds the printer check waits for the test receipt to print (or the printer to fail).
PRINTER_TIMEOUT = 30.0
#: Seconds the counter check waits for a loopback plug to return its probe.
COUNTER_TIMEOUT = 1.0
#: The hanzi the screen check draws.
HANZI = "满意评价窗口"

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class Result:
    """One check's line."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" — fix: {self.fix}" if self.fix else ""
        return f"{self.status}  {self.name:<8} {self.detail}{fix}"


class _Fail(Exception):
    """A check's failure: what was seen and the fix."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class _Skip(Exception):
    pass


@dataclass
class Options:
    """How the checks run (the command line, or a test)."""

    button_timeout: float = BUTTON_TIMEOUT
    buttons: bool = True
    """False: ``--no-buttons``."""
    interactive: bool = False
    """A technician is there to press buttons (stdin and stdout are a terminal)."""
    ask: TextIO | None = None
    """Where the button prompts go (default stdout)."""
    pin_factory: Any = None
    """The gpiozero pin factory of the buttons (default: ``[buttons] pin_factory``)."""
    clock_synced: Callable[[], bool] | None = None
    """Default :func:`evaluator.rules.clock.kernel_clock_synced`."""
    broker_timeout: float = BROKER_TIMEOUT
    printer_timeout: float = PRINTER_TIMEOUT


# --------------------------------------------------------------------------- the checks


def check_font(config: Config, options: Options) -> str:
    from evaluator.rules.errors import FontError
    from kiosk.fonts import find_cjk_font

    try:
        path = find_cjk_font(config.screen.font)
    except FontError as exc:
        raise _Fail(
            str(exc),
            "apt install fonts-wqy-microhei, or set [screen] font to a CJK "
            "font file that draws hanzi",
        ) from exc
    return f"{path} draws hanzi"


def check_screen(config: Config, options: Options) -> str:
    import pygame

    from evaluator.devices import open_screen
    from kiosk.fonts import check_hanzi

    sc = config.screen
    try:
        screen = open_screen(config, title=f"selftest {config.device.id}")
    except Exception as exc:
        raise _Fail(
            f"cannot open the display (driver {sc.driver!r}): {exc}",
            "check the panel's cable and [screen] driver (kmsdrm on the console, x11/"
            "wayland under a desktop); stop the pad first if it holds the display",
        ) from exc
    try:
        check_hanzi(screen.font_path)
        surface = screen.surface
        surface.fill((0, 0, 0))
        text = screen.font(48).render(HANZI, True, (255, 255, 255), (0, 0, 0))
        surface.blit(text, (10, 10))
        screen.present()  # turned onto the panel at [screen] rotate, then flipped
        drawn = pygame.image.tobytes(surface.subsurface(text.get_rect(topleft=(10, 10))), "RGB")
        if not any(drawn):
            raise _Fail("the hanzi drew no pixels", "check [screen] font and the panel")
        driver = os.environ.get("SDL_VIDEODRIVER") or pygame.display.get_driver()
        return f"{screen.size[0]}×{screen.size[1]} on SDL driver {driver!r}, drew {HANZI}"
    finally:
        screen.close()


def check_buttons(config: Config, options: Options) -> str:
    from evaluator.rules.levels import Level
    from kiosk.buttons import LevelButtons, pin_factory

    bc = config.buttons
    pins = bc.pins
    if not pins:
        raise _Skip("no level button fitted ([buttons] pins all -1)")
    if not options.buttons:
        raise _Skip("--no-buttons")
    if not options.interactive:
        raise _Skip("not interactive (no terminal): nobody to press the buttons")
    out = options.ask or sys.stdout
    pressed: list[Level] = []
    event = threading.Event()

    def on_press(level: Level) -> None:
        pressed.append(level)
        event.set()

    factory = (
        options.pin_factory if options.pin_factory is not None else (pin_factory(bc.pin_factory))
    )
    try:
        buttons = LevelButtons(
            {Level(n): p for n, p in pins.items()},
            pull_up=bc.pull_up,
            bounce_time=bc.bounce_time,
            factory=factory,
            on_press=on_press,
        )
    except Exception as exc:
        raise _Fail(
            f"cannot use the pins {pins} with pin factory {bc.pin_factory or 'default'!r}: {exc}",
            "stop the pad first (it holds the pins); check [buttons] pins and "
            "pin_factory (lgpio on a Pi 5) and that the user is in the gpio group",
        ) from exc
    done: list[str] = []
    try:
        for name, pin in pins.items():
            level = Level(name)
            pressed.clear()
            event.clear()
            out.write(f"press {level.label} (GPIO {pin}) within {options.button_timeout:g} s …\n")
            out.flush()
            deadline = time.monotonic() + options.button_timeout
            while level not in pressed:
                left = deadline - time.monotonic()
                if left <= 0 or not event.wait(left):
                    break
                event.clear()
            if level not in pressed:
                others = ", ".join(f"{p.label}" for p in pressed)
                seen = f" (pressed instead: {others})" if others else ""
                passed = ", ".join(done) or "none"
                raise _Fail(
                    f"{level.label} (GPIO {pin}) not pressed within "
                    f"{options.button_timeout:g} s{seen}; passed: {passed}",
                    f"check the wiring of GPIO {pin} to ground and the button; "
                    f"[buttons] {name} is its BCM number",
                )
            done.append(level.label)
    finally:
        buttons.close()
    return f"{len(done)} button(s) pressed: {', '.join(done)}"


def make_test_receipt(config: Config) -> tuple[str, Any]:
    """The TEST receipt: the pad's own receipt for a case marked as a test, its QR signed with a
    key made for it (the device key never signs a test: its code can never rate anything).
    Returns its serial and the :class:`printer.Receipt`; the technician's menu prints it too."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evaluator.receipts import build
    from evaluator.rules.request import parse_request
    from sync.keys import DeviceKey

    # The pad's own receipt, for a case marked as a test, signed with a key made for it (the
    # device key never signs a test: its code can never rate anything).
    throwaway = DeviceKey(Path("(throw-away)"), Ed25519PrivateKey.generate())
    serial = "SELFTEST-" + uuid.uuid4().hex[:8]
    request = parse_request(
        {
            "terminal": "TEST",
            "stage": "deliver",
            "cases": [
                {
                    "serial": serial,
                    "matter_code": "SELFTEST",
                    "matter_name": "【测试 TEST】自检回执, 不是办件回执, 请勿扫码",
                    "kind": "instant",
                }
            ],
        }
    )
    _slip, receipt = build(config, request, (serial,), key=throwaway, wall=time.time())
    return serial, receipt


def check_printer(config: Config, options: Options) -> str:
    if config.receipt.print == "never":
        raise _Skip('no printer used ([receipt] print = "never")')
    from evaluator.devices import make_spooler
    from evaluator.receipts import FAILING

    serial, receipt = make_test_receipt(config)
    spooler = make_spooler(config, spool=False)
    where = spooler.connection.spec.describe()
    spooler.start()
    try:
        spooler.submit(receipt)
        spooler.wait_until(
            lambda s: bool(s.printed or s.dropped) or (s.phase == "waiting" and s.state in FAILING),
            options.printer_timeout,
        )
        status = spooler.status
    finally:
        spooler.stop()
    if status.printed:
        return f"printed a TEST receipt ({serial}) on {where}; printer {status.state}"
    why = (
        status.detail
        if (status.dropped or status.state in FAILING)
        else (f"no answer within {options.printer_timeout:g} s ({status.phase})")
    )
    raise _Fail(
        f"test receipt NOT printed on {where}: printer {status.state}: {why}",
        "check the printer's power, paper, cover and cable, and [printer] kind and its "
        "connection (docs/technician.md §5); stop the pad first if it holds the printer",
    )


def check_counter(config: Config, options: Options) -> str:
    port = config.counter.port
    if not port:
        raise _Skip('no counter link ([counter] port = "")')
    from evaluator.rules.protocol import Message, encode, reply_ok
    from kiosk.dummylink import URL, DummyLink

    if port == URL:
        link = DummyLink()
        link.on_message = lambda m: link.send(reply_ok(m.id)) if isinstance(m, Message) else None
        link.feed({"id": "selftest", "type": "status"})
        if not link.sent or link.sent[-1].get("id") != "selftest":
            raise _Fail("the dummy:// link answered no status request", "report this")
        return "dummy:// stand-in: a status request went round the protocol"
    from kiosk.counter import _pyserial

    serial = _pyserial()
    try:
        handle = serial.serial_for_url(
            port, baudrate=config.counter.baudrate, timeout=0.1, exclusive=True, do_not_open=False
        )
    except Exception as exc:
        raise _Fail(
            f"cannot open {port}: {exc}",
            "check the cable/adapter and [counter] port (ls /dev/serial/by-id/), that "
            "the user is in the dialout group, and stop the pad first (it holds the port)",
        ) from exc
    try:
        if port.startswith("sim://"):
            return f"{port}: the business-system simulator opened (it answers nothing)"
        probe = encode({"event": "selftest.loopback", "nonce": uuid.uuid4().hex[:12]})
        handle.reset_input_buffer()
        handle.write(probe)
        handle.flush()
        got = b""
        deadline = time.monotonic() + COUNTER_TIMEOUT
        while probe not in got and time.monotonic() < deadline:
            got += handle.read(len(probe))
        if probe in got:
            return f"{port} at {config.counter.baudrate} bit/s: the loopback probe came back"
        return (
            f"{port} opened at {config.counter.baudrate} bit/s; no loopback plug (the probe "
            f"did not come back), so the wires were not tested"
        )
    finally:
        handle.close()


def check_broker(config: Config, options: Options) -> str:
    """Connect as the pad does (each ``[mqtt] urls`` in turn, the protocol, TLS with the pad's
    certificate), publish a probe to the pad's own ``selftest`` topic and read it back.

    With the city's broker configured as config/mosquitto shows, the certificate's name is the
    client id: a running pad is disconnected once by this check and reconnects by itself.
    """
    mq = config.mqtt
    if not mq.enabled:
        raise _Skip("MQTT off ([mqtt] enabled = false)")
    from sync.mqtt import parse_broker_url

    urls = list(mq.urls) or [f"mqtt://{mq.host}:{mq.port}"]
    failures: list[_Fail] = []
    for url in urls:
        try:
            return _probe_broker(config, options, url, parse_broker_url(url))
        except _Fail as exc:
            failures.append(exc)
    if len(failures) == 1:
        raise failures[0]
    raise _Fail("no broker answered: " + "; ".join(f.detail for f in failures), failures[-1].fix)


def _probe_broker(config: Config, options: Options, url: str, broker: Any) -> str:
    mq = config.mqtt
    import paho.mqtt.client as paho

    topic = f"{mq.topic_prefix}/{config.device.id}/selftest"
    nonce = uuid.uuid4().hex.encode()
    where = f"{broker.host}:{broker.port}" if len(mq.urls) == 0 else url
    fix = (
        f"start the broker or open the network to {where} ([mqtt] urls or host, port); check "
        f"[mqtt] username/password"
        + ("; tls_ca, tls_cert, tls_key (evaluator tls csr)" if broker.tls else "")
    )
    from sync.linkerror import classify, classify_connack, closed_before_connack, connack_timeout

    connected = threading.Event()  # a CONNACK came, or the connection ended before one
    subscribed = threading.Event()
    received = threading.Event()
    codes: list[Any] = []
    closed: list[bool] = []
    errors: list[str] = []  # what paho logged of its socket (an alert, a reset)

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        codes.append(reason)
        connected.set()

    def on_disconnect(client: Any, *args: Any) -> None:
        if not codes:
            closed.append(True)
            connected.set()

    def on_log(client: Any, userdata: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR and not codes:
            errors.append(text)

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        if message.payload == nonce:
            received.set()

    v5 = mq.protocol == "5"
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"selftest-{config.device.id}-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    client.connect_timeout = options.broker_timeout  # an unreachable host: not TCP's minutes
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_log = on_log
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    if mq.username:
        client.username_pw_set(mq.username, mq.password or None)
    if broker.tls:
        try:
            client.tls_set(
                ca_certs=str(mq.tls_ca) if mq.tls_ca else None,
                certfile=str(mq.tls_cert) if mq.tls_cert else None,
                keyfile=str(mq.tls_key) if mq.tls_key else None,
            )
        except (OSError, ValueError) as exc:
            raise _Fail(f"{url}: the TLS files cannot be used: {exc}", fix) from exc
    started = time.monotonic()
    try:
        client.connect(broker.host, broker.port, keepalive=max(5, int(options.broker_timeout) * 2))
    except Exception as exc:  # the cause in words (issue 14), as the pad's worker logs it
        why = classify(exc, tls=broker.tls).text
        raise _Fail(f"cannot connect to {where}: {why}", fix) from exc
    client.loop_start()
    try:
        if not connected.wait(options.broker_timeout) or not codes:
            if errors:
                why = classify(errors[0], tls=broker.tls, handshake_done=True).text
            elif closed:
                why = closed_before_connack(tls=broker.tls).text
            else:
                why = connack_timeout(options.broker_timeout).text
            raise _Fail(f"no CONNACK from {where}: {why}", fix)
        if getattr(codes[0], "is_failure", False):
            why = classify_connack(codes[0], v5=v5).words
            raise _Fail(f"{where}: {why}", fix)
        client.subscribe(topic, qos=1)
        if not subscribed.wait(options.broker_timeout):
            raise _Fail(
                f"no SUBACK for {topic} within {options.broker_timeout:g} s",
                "check the broker's ACL allows this device's topics",
            )
        info = client.publish(topic, nonce, qos=1)
        info.wait_for_publish(options.broker_timeout)
        if not info.is_published():
            raise _Fail(
                f"no PUBACK for {topic} within {options.broker_timeout:g} s",
                "check the broker's ACL allows this device's topics",
            )
        if not received.wait(options.broker_timeout):
            raise _Fail(
                f"the probe on {topic} did not come back within {options.broker_timeout:g} s",
                "check the broker's ACL (read and write under the device's prefix)",
            )
        ms = (time.monotonic() - started) * 1000
        return f"{where}: connected, published and read back {topic} (acked) in {ms:.0f} ms"
    finally:
        client.disconnect()
        client.loop_stop()


def check_storage(config: Config, options: Options) -> str:
    from evaluator.app import MIN_FREE_BYTES
    from sync.durable import fsync_dir

    folder = config.storage.path.parent
    fix = (
        f"make {folder} writable by the pad's user (chown it; a read-only or full SD card "
        f"must be replaced or remounted rw) — [storage] path"
    )
    probe = folder / f".selftest-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"selftest\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(folder)
        if probe.read_bytes() != b"selftest\n":
            raise _Fail(f"the probe file in {folder} read back wrong", fix)
    except OSError as exc:
        raise _Fail(f"cannot write and fsync a file in {folder}: {exc}", fix) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise _Fail(
            f"{folder}: {free} bytes free, below the pad's minimum {MIN_FREE_BYTES}",
            "free space on that file system (old logs, journald size), or a larger card",
        )
    store = _check_store(config)
    return (
        f"{store}; {folder}: wrote and fsynced a probe; {free / 2**20:.0f} MiB free "
        f"(minimum {MIN_FREE_BYTES / 2**20:g} MiB)"
    )


def _check_store(config: Config) -> str:
    """The store itself (issue 14).  Under the pad's lock (the pad is not running): opened for
    writing as the pad opens it, one probe committed to its ``meta`` (never a rating), so a store
    file the pad's user cannot write (left owned by root) fails here.  While the pad runs (it
    holds the lock) nothing is written: the store is read and checked read-only, beside it."""
    from evaluator.rules.errors import StoreError
    from sync.store import Store, StoreDamaged
    from sync.storelock import StoreLocked, lock_store

    path = config.storage.path
    damaged_fix = (
        "never delete or edit it: the pad keeps it aside and starts a new store at its next "
        "start; copy it (with -wal and -shm) to safe media for the city"
    )
    if not path.exists():
        return f"no store yet at {path} (the pad creates it at its first start)"
    try:
        lock = lock_store(path)
    except StoreLocked as exc:
        try:
            store = Store.open_read_only(path)
        except StoreDamaged as damaged:
            raise _Fail(str(damaged), damaged_fix) from damaged
        except StoreError as failed:
            raise _Fail(str(failed), f"make {path} readable by this user") from failed
        try:
            ratings, waiting = store.last_seq(), store.outbox_size()
        finally:
            store.close()
        pid = f"pid {exc.pid}" if exc.pid is not None else "pid unknown"
        return (
            f"the pad is running ({pid}): storage probe done read-only: {path} read back intact "
            f"({ratings} ratings, {waiting} awaiting the city)"
        )
    except OSError as exc:
        raise _Fail(
            f"cannot open the lock file of the store {path}: {exc}",
            f"make {path.parent} and the files in it belong to the pad's user (chown)",
        ) from exc
    owner_fix = f"make {path} and its -wal/-shm belong to the pad's user (chown)"
    with lock:
        try:
            store = Store(path, device_id=config.device.id, keep_damaged_aside=False)
        except StoreDamaged as exc:
            raise _Fail(str(exc), damaged_fix) from exc
        except StoreError as exc:
            raise _Fail(str(exc), owner_fix) from exc
        try:
            store.probe()
            ratings, waiting = store.last_seq(), store.outbox_size()
        except StoreError as exc:
            raise _Fail(str(exc), owner_fix) from exc
        finally:
            store.close()
    return (
        f"{path}: opened for writing (the pad is not running) and committed a probe "
        f"({ratings} ratings, {waiting} awaiting the city)"
    )


def check_clock(config: Config, options: Options) -> str:
    from evaluator.rules.clock import kernel_clock_synced

    synced = (options.clock_synced or kernel_clock_synced)()
    if not synced:
        raise _Fail(
            "the kernel says the clock is not synchronised (ratings are stamped unsynced)",
            "connect the network and check NTP: timedatectl status; "
            "systemctl status systemd-timesyncd",
        )
    return "synchronised (kernel NTP state)"


_RUN: dict[str, Callable[[Config, Options], str]] = {
    "font": check_font,
    "screen": check_screen,
    "buttons": check_buttons,
    "printer": check_printer,
    "counter": check_counter,
    "broker": check_broker,
    "storage": check_storage,
    "clock": check_clock,
}


def run_check(name: str, config: Config, options: Options) -> Result:
    """One check; never raises."""
    try:
        return Result(name, PASS, _RUN[name](config, options))
    except _Skip as exc:
        return Result(name, SKIP, str(exc))
    except _Fail as exc:
        return Result(name, FAIL, exc.detail, exc.fix)
    except Exception as exc:  # a crash in one check is its FAIL line
        return Result(
            name,
            FAIL,
            f"the check crashed: {type(exc).__name__}: {exc}",
            "report it with the output of `evaluator -v selftest`",
        )


def run(
    configs: Sequence[Path],
    *,
    only: Sequence[str] = (),
    options: Options | None = None,
    emit: Callable[[Result], None] | None = None,
) -> tuple[list[Result], int]:
    """Every check (or ``only`` those), each handed to ``emit`` as it ends; returns the
    results and the exit code (0 all PASS/SKIP, 1 any FAIL, 2 bad config)."""
    from evaluator.config import load_config

    options = options or Options()
    results: list[Result] = []

    def done(result: Result) -> None:
        results.append(result)
        if emit is not None:
            emit(result)

    try:
        if not configs:
            raise ConfigError("give --config FILE (the pad's config)")
        config = load_config(configs)
    except ConfigError as exc:
        done(
            Result(
                "config",
                FAIL,
                str(exc).replace("\n", "; "),
                "correct the file(s); `evaluator config check FILE…` lists every problem",
            )
        )
        return results, 2
    except Exception as exc:
        done(
            Result(
                "config",
                FAIL,
                f"{type(exc).__name__}: {exc}",
                "correct the file(s); `evaluator config check FILE…` lists every problem",
            )
        )
        return results, 2
    done(Result("config", PASS, ", ".join(str(p) for p in config.sources[1:]) or "defaults"))
    for name in CHECKS[1:]:
        if not only or name in only:
            done(run_check(name, config, options))
    return results, 1 if any(r.status == FAIL for r in results) else 0


def main(
    configs: Sequence[Path],
    *,
    only: Sequence[str] = (),
    as_json: bool = False,
    button_timeout: float = BUTTON_TIMEOUT,
    buttons: bool = True,
    out: TextIO | None = None,
) -> int:
    """``evaluator selftest``: print one line per check (or, with ``as_json``, one JSON
    document) and return the exit code."""
    out = out or sys.stdout
    ask = sys.stderr if as_json else out  # --json: stdout is the document alone
    options = Options(
        button_timeout=button_timeout,
        buttons=buttons,
        interactive=sys.stdin.isatty() and ask.isatty(),
        ask=ask,
    )

    def emit(result: Result) -> None:
        if not as_json:
            out.write(result.line() + "\n")
            out.flush()

    results, code = run(configs, only=only, options=options, emit=emit)
    if as_json:
        json.dump(
            {"exit": code, "checks": [asdict(r) for r in results]},
            out,
            ensure_ascii=False,
            indent=1,
        )
        out.write("\n")
    else:
        counts = {s: sum(r.status == s for r in results) for s in (PASS, FAIL, SKIP)}
        out.write(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped\n")
    return code
