"""Screenshots of the screens the pad really reaches (``evaluator screenshots``).

No view here is made by hand: a real :class:`~evaluator.app.App` (the demo config, a store in a
temporary folder, no MQTT, no counter link) is driven the way the pad is, by counter requests
through ``App.handle`` and citizen taps through ``App.act``, on a :class:`FakeClock` so the
countdowns are the same on every run.  After each step the app's own ``App.view()`` is captured
and drawn by the real :class:`~kiosk.screen.Screen` on SDL's ``dummy`` driver, at every panel size
of :data:`kiosk.sizes.SIZES` (``<out>/<W>x<H>/<shot>.png``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from evaluator.rules.reasons import OTHER_CODE
from evaluator.rules.shipped import shipped_file
from evaluator.techmenu import GESTURE_TAPS
from kiosk import texts
from kiosk.sizes import SIZES, PanelSize, min_target_px
from kiosk.view import (
    ExpandTheme,
    PressLevel,
    ScreenView,
    Submit,
    TechDigit,
    TechEnter,
    TechItem,
    ToggleAgency,
    TogglePhrase,
    ToggleReason,
    TypeText,
    UiAction,
)

CLERK = {"id": "A1023", "name": "陈晓明"}
MATTER_CODE = "11440500MB2C9300XR4442111009000"
MATTER_NAME = "居民身份证换领"
AGENCIES = ["市公安局", "市政务服务数据管理局"]
THEME = {"code": "YJS-0007", "name": "开办餐饮店"}
THEME_MATTERS = [
    ("11440500007000000X4440511003000", "食品经营许可证核发"),
    ("11440500MB2C9300XR4442111017000", "营业执照设立登记"),
    ("11440500MB2C9300XR4442111023000", "公共场所卫生许可"),
]
#: The cases of the paged batch's screenshot (the issue-15 example was 12; 20 take pages at
#: every size of kiosk.sizes).
LONG_BATCH = 20
#: What the citizen types for 其他 on the reasons screenshot.
OTHER_TEXT = "等候时间太长，叫号屏看不清"
#: How many 常用意见 the citizen taps on the reasons-by-touch screenshot (the first ones).
PHRASES_TAPPED = 2
#: The 终端机编号 on the self-service terminal's screenshot.
TERMINAL = "ZZ-0107"
#: Seconds the citizen looks at a screen before the screenshot (the countdown shows the rest).
LOOK = 2.0
#: The window's static QR on the idle_qr screenshot (``[idle] static_qr``).
STATIC_QR = "https://hcp.example.org/w/440500-hall1-w12"
#: The receipt_qr screenshot: receipts printed on a printer that is not there, their links
#: signed with a fixed key and nonce so that the picture is the same on every run.
RECEIPTS = (
    '[receipt]\nprint = "always"\nurl_template = "https://hcp.example.org/r?{query}"\n'
    'hall = "汕头市政务服务中心"\n[printer]\nkind = "file"\n'
)
RECEIPT_NONCE = "K7QD3MXA"
#: Seconds the printer may take to be found missing (a hang, not a pass/fail time).
PRINTER_PATIENCE = 30.0
#: The technician's menu on the tech_pin / tech_menu screenshots: its PIN (``[tech] pin``), and
#: how many of its digits the PIN pad's screenshot shows typed (as dots).
TECH = '[tech]\npin = "482913"\n'
TECH_PIN = "482913"
TECH_TYPED = 2
#: The addresses the tech_menu screenshot shows (a documentation network, RFC 5737) instead of
#: those of the machine that draws it; its last error is none (not whatever this process logged).
TECH_ADDRESSES = ("192.0.2.12 (eth0)",)
#: Seconds between a technician's taps (slower than the press filter's guard).
TECH_PACE = 0.4

#: File name (without .png) → what it shows.  Every screen ``App.view`` produces is here.
SHOTS: dict[str, str] = {
    "signed_out": "no clerk signed in",
    "idle": "a clerk signed in, waiting",
    "idle_qr": "waiting, with the window's static QR (art. 17(3), [idle] static_qr)",
    "screensaver": "after [idle] screensaver_after without a trigger or touch (low burn)",
    "presenting": "the rating screen for one case",
    "presenting_batch": "the rating screen for a batch of cases of one matter (art. 24)",
    "presenting_batch_paged": f"a batch of {LONG_BATCH} cases too many for one page: the first "
    "page and its pager (a level press shows the next page until every case was shown)",
    "presenting_theme": "the rating screen for a 一件事 theme (art. 31), with 分项评价",
    "presenting_theme_item": "a theme rated item by item after 分项评价: the second item",
    "presenting_terminal": "a self-service terminal's rating screen: 终端机编号, the matter only",
    "reasons": "差评 reasons: a reason and an agency chosen (the first page when they are paged)",
    "reasons_other": "差评 reasons: 其他 chosen and typed (the page of its field)",
    "reasons_phrases": "差评 reasons by touch: 其他 chosen, two 常用意见 tapped",
    "thanks": "谢谢 after the rating was stored",
    "paused": "the window paused by the clerk",
    "storage_notice": "the rating screen after a press the store refused (nothing stored)",
    "storage_fault": "the idle screen while the store cannot be opened",
    "receipt_qr": "a receipt's QR on the screen after 谢谢: the printer is offline ([receipt])",
    "tech_pin": "the technician's PIN pad after five taps on the idle screen's top-left corner, "
    "two digits typed (dots only; [tech] pin)",
    "tech_menu": "the technician's menu after the PIN: device id, IP addresses, broker, printer, "
    "counter link, outbox, last error; test print, button test, reload config",
}


def _case(serial: str, code: str = MATTER_CODE, name: str = MATTER_NAME) -> dict[str, str]:
    return {"serial": serial, "matter_code": code, "matter_name": name, "kind": "instant"}


def _start(*cases: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"clerk": CLERK, "stage": "deliver", "cases": list(cases), **extra}


@contextmanager
def _app(work: Path, storage: Path, extra: str = "", language: str = "zh") -> Iterator[App]:
    """A real app on the demo config with its store at ``storage``, no MQTT, no counter link,
    its texts in ``language``; ``extra`` is more TOML for the override."""
    override = work / f"screenshots-{storage.parent.name}.toml"
    override.write_text(
        '[counter]\nport = ""\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(storage))}\n"
        f"[screen]\nlanguage = {json.dumps(language)}\n{extra}",
        encoding="utf-8",
    )
    app = App(load_config([shipped_file("demo.toml"), override]), clock=FakeClock())
    try:
        yield app
    finally:
        app.shutdown()


class _Driver:
    """Sends requests and taps to one app and keeps its views by shot name."""

    def __init__(self, app: App, shots: dict[str, ScreenView]) -> None:
        self.app = app
        self.shots = shots
        self._ids = 0

    def request(self, rtype: str, **body: Any) -> None:
        self._ids += 1
        reply = self.app.handle(Message(self._ids, rtype, body))
        if not reply.get("ok"):
            raise RuntimeError(f"the app refused {rtype}: {reply}")
        self.app.step()

    def wait(self, seconds: float) -> None:
        assert isinstance(self.app.clock, FakeClock)
        self.app.clock.advance(seconds)
        self.app.step()

    def gesture(self) -> None:
        """The technician's five taps on the top-left corner, where the pad's own loop hands
        them (``App._tech_tap``: the screen shown, the corner a 15 mm square)."""
        side = min_target_px(self.app.config.screen.dpi)
        for _ in range(GESTURE_TAPS):
            self.wait(TECH_PACE)
            self.app.tech.tap((side // 4, side // 4), self.app.view().screen, side)

    def tap(self, action: UiAction) -> None:
        """A technician's tap on a target, at a technician's pace."""
        self.wait(TECH_PACE)
        self.app.act(action)
        self.app.step()

    def shoot(self, name: str, screen: str) -> None:
        view = self.app.view()
        if view.screen != screen:
            raise RuntimeError(f"{name}: the app shows {view.screen!r}, expected {screen!r}")
        self.shots[name] = view


def reach_views(work: Path, language: str = "zh") -> dict[str, ScreenView]:
    """Drive real apps (stores under ``work``, texts in ``language``) through every screen; the
    views they showed.  Draw them in the same language (``kiosk.texts.using``): the texts the
    pad composes are in the views, the fixed ones are looked up when drawn.  The language shown
    before is shown again after."""
    with texts.using(texts.language()):  # each app selects its language: restored after
        return _reach_views(work, language)


def _reach_views(work: Path, language: str) -> dict[str, ScreenView]:
    shots: dict[str, ScreenView] = {}
    (work / "pad").mkdir()
    with _app(work, work / "pad" / "ratings.db", language=language) as app:
        pad = _Driver(app, shots)
        pad.shoot("signed_out", "signed_out")
        pad.request("clerk.sign_in", clerk=CLERK)
        pad.shoot("idle", "idle")
        pad.wait(app.config.idle.screensaver_after + 1)
        pad.shoot("screensaver", "screensaver")

        pad.request("evaluation.start", **_start(_case("44050020261126000123")))
        pad.wait(LOOK)
        pad.shoot("presenting", "presenting")
        pad.request("evaluation.cancel")

        batch = [_case(f"440500202611260001{n:02d}") for n in range(23, 28)]
        pad.request("evaluation.start", **_start(*batch))
        pad.wait(LOOK)
        pad.shoot("presenting_batch", "presenting")
        pad.request("evaluation.cancel")

        batch = [_case(f"440500202611260002{n:02d}") for n in range(LONG_BATCH)]
        pad.request("evaluation.start", **_start(*batch))
        pad.wait(LOOK)
        pad.shoot("presenting_batch_paged", "presenting")
        pad.request("evaluation.cancel")

        themed = [_case(f"4405002026112600020{n}", *m) for n, m in enumerate(THEME_MATTERS)]
        pad.request("evaluation.start", **_start(*themed, theme=THEME))
        pad.wait(LOOK)
        pad.shoot("presenting_theme", "presenting")
        app.act(ExpandTheme())
        pad.wait(LOOK)
        app.act(PressLevel(Level.VERY_SATISFIED))  # the first item rated
        pad.wait(LOOK)
        pad.shoot("presenting_theme_item", "presenting")
        app.act(PressLevel(Level.SATISFIED))  # the citizen has pressed: only they end it
        pad.wait(LOOK)
        app.act(PressLevel(Level.SATISFIED))
        pad.wait(app.config.session.thanks + 1)

        # A self-service terminal (自助终端, art. 18/23): its number where the clerk was.
        by_terminal = {**_start(_case("44050020261126000140")), "terminal": TERMINAL}
        del by_terminal["clerk"]
        pad.request("evaluation.start", **by_terminal)
        pad.wait(LOOK)
        pad.shoot("presenting_terminal", "presenting")
        pad.request("evaluation.cancel")

        pad.request("evaluation.start", **_start(_case("44050020261126000129")))
        pad.wait(LOOK)
        app.act(PressLevel(Level.VERY_DISSATISFIED))
        pad.wait(LOOK)
        app.act(ToggleReason(OTHER_CODE))
        for phrase in app.phrases.phrases[:PHRASES_TAPPED]:  # the pad's list, in its language
            pad.wait(LOOK)
            app.act(TogglePhrase(phrase))
        pad.shoot("reasons_phrases", "reasons")
        app.act(Submit())
        pad.wait(app.config.session.thanks + 1)

        pad.request("evaluation.start", **_start(_case("44050020261126000130"), agencies=AGENCIES))
        app.act(PressLevel(Level.DISSATISFIED))
        offered = app.view().reasons
        first = next(item for item in offered if item.target == "clerk")
        app.act(ToggleReason(first.code))
        app.act(ToggleAgency(AGENCIES[0]))
        pad.wait(LOOK)
        pad.shoot("reasons", "reasons")
        other = next(item for item in offered if item.target == "other")
        app.act(ToggleReason(other.code))
        app.act(TypeText(OTHER_TEXT))
        pad.wait(LOOK)
        pad.shoot("reasons_other", "reasons")
        app.act(Submit())
        pad.shoot("thanks", "thanks")

        pad.wait(app.config.session.thanks + 1)
        pad.request("window.pause")
        pad.shoot("paused", "paused")
        pad.request("window.resume")

        pad.request("evaluation.start", **_start(_case("44050020261126000131")))
        app.store.db.execute("PRAGMA query_only = 1")  # SQLite refuses writes (disk full, …)
        app.act(PressLevel(Level.SATISFIED))
        pad.wait(LOOK)
        pad.shoot("storage_notice", "presenting")
        app.store.db.execute("PRAGMA query_only = 0")

    # A store that cannot be opened: a file stands where its folder should be.
    (work / "blocked").write_text("not a folder", encoding="utf-8")
    with _app(work, work / "blocked" / "ratings.db", language=language) as app:
        pad = _Driver(app, shots)
        pad.request("clerk.sign_in", clerk=CLERK)
        pad.shoot("storage_fault", "idle")
    (work / "qr").mkdir()
    qr = f"[idle]\nstatic_qr = {json.dumps(STATIC_QR)}\n"
    with _app(work, work / "qr" / "ratings.db", qr, language=language) as app:
        pad = _Driver(app, shots)
        pad.request("clerk.sign_in", clerk=CLERK)
        pad.shoot("idle_qr", "idle")
    (work / "receipt").mkdir()
    _fixed_key(work / "receipt" / "device.key")
    no_printer = f"path = {json.dumps(str(work / 'receipt' / 'lp0'))}\n"  # nothing there
    with _app(work, work / "receipt" / "ratings.db", RECEIPTS + no_printer + TECH, language) as app:
        assert app.receipts is not None and app.printer is not None
        app.receipts.nonce = lambda: RECEIPT_NONCE
        app.printer.start()  # as App.run does
        pad = _Driver(app, shots)
        pad.request("clerk.sign_in", clerk=CLERK)
        pad.request("evaluation.start", **_start(_case("44050020261126000132")))
        pad.wait(LOOK)
        app.act(PressLevel(Level.SATISFIED))
        pad.wait(app.config.session.thanks + 0.1)  # 谢谢 ends: the counter told, receipt noted
        app.step()  # the loop's next turn makes the receipt (art. 4: when the counter is told)
        if not app.printer.wait_until(lambda s: s.state == "offline", PRINTER_PATIENCE):
            raise RuntimeError(f"the missing printer was not found offline: {app.printer.status}")
        app.step()  # the loop looks at the printer: its citizen is likely still there
        pad.shoot("receipt_qr", "receipt_qr")
        pad.wait(app.config.receipt.qr_on_screen + 1)  # the citizen has gone: idle again
        # The technician comes (the printer offline, a rating in the outbox to show).
        with _this_machine_hidden():
            pad.gesture()
            for digit in TECH_PIN[:TECH_TYPED]:
                pad.tap(TechDigit(digit))
            pad.shoot("tech_pin", "tech_pin")
            for digit in TECH_PIN[TECH_TYPED:]:
                pad.tap(TechDigit(digit))
            pad.tap(TechEnter())
            pad.shoot("tech_menu", "tech_menu")
            pad.tap(TechItem("close"))
    return {name: shots[name] for name in SHOTS}


@contextmanager
def _this_machine_hidden() -> Iterator[None]:
    """The technician's menu shows :data:`TECH_ADDRESSES` and no last error: the pictures must
    be the same on every machine and run, not show the drawing machine's addresses or an error
    something else in the same process logged (a test run)."""
    from evaluator import journal, techdesk

    saved = techdesk.ip_addresses, journal.last_error
    techdesk.ip_addresses = lambda: list(TECH_ADDRESSES)
    journal.last_error = lambda: ""
    try:
        yield
    finally:
        techdesk.ip_addresses, journal.last_error = saved


def _fixed_key(path: Path) -> None:
    """A device key that is the same on every run (Ed25519 signatures are deterministic): the
    screenshot's QR, which carries a signature, is then the same picture every time."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def render(
    out_dir: Path, *, font_path: Path | None = None, sizes: tuple[PanelSize, ...] = SIZES
) -> list[Path]:
    """Write ``<out_dir>/<W>x<H>/<name>.png`` for every entry of :data:`SHOTS` at every size;
    returns the paths."""
    from kiosk.screenshots import save_pngs

    with tempfile.TemporaryDirectory(prefix="evaluator-screenshots-") as tmp:
        views = reach_views(Path(tmp))
    paths: list[Path] = []
    for size in sizes:
        paths += save_pngs(views, Path(out_dir) / size.name, font_path=font_path,
                           width=size.width, height=size.height, dpi=size.dpi)  # fmt: skip
    return paths
