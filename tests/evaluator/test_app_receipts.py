"""Receipts wired into the pad (issue 7): a real App on the shipped stand-ins (the ``dummy://``
counter link, python-escpos's ``Dummy`` printer behind the real spooler thread, a FakeClock) and,
for a printer that hangs or is not there, a real FIFO (``kind = "file"``).

What the printer got is read back as a printer would (``printer.decode``): the text holds the
case's serials and clerk, and the QR, read by a real decoder (zxing-cpp), is a link that
``ratelink.verify`` accepts with the device key's public key and that names the case.  "Never
delays a rating or a screen" is shown with events and states, not timings: the rating and the
screens go on while the spooler's worker is known to be blocked in a write nobody reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pygame
import pytest

from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules import ratelink
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from kiosk.screen import Screen
from kiosk.view import ExpandTheme, PressLevel
from printer import texts as paper
from printer.decode import Text, decode
from sync.keys import DeviceKey
from tests.kiosk.test_qr import decode as decode_screen
from tests.printer.fakes import PATIENCE, PipeReader, qr_texts

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = "https://hcp.example.org/r?{query}"
HALL = "汕头市政务服务中心"
WINDOW = "12号窗口"
CLERK = {"id": "A1023", "name": "陈晓明"}
MATTER = {"matter_code": "11440500MB2C9300XR4442111009000", "matter_name": "居民身份证换领"}


def case(serial: str, **changes: str) -> dict[str, str]:
    return {"serial": serial, "kind": "instant", **MATTER, **changes}


def start(*serials: str, **extra: Any) -> dict[str, Any]:
    return {"clerk": CLERK, "stage": "deliver", "cases": [case(s) for s in serials], **extra}


THEME = {
    "clerk": CLERK,
    "stage": "deliver",
    "theme": {"code": "YJS-0007", "name": "开办餐饮店"},
    "cases": [
        case("T-1", matter_code="M-FOOD", matter_name="食品经营许可证核发"),
        case("T-2", matter_code="M-LICENCE", matter_name="营业执照设立登记"),
    ],
}


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., App]]:
    """``make(policy, printer=TOML)``: an App printing per ``policy`` on ``[printer]`` TOML
    (default: the dummy), its spooler started as ``App.run`` starts it, a real dummy Screen."""
    made: list[App] = []

    def build(policy: str = "always", *, printer: str = "", extra: str = "") -> App:
        site = tmp_path / f"site{len(made)}.toml"
        site.write_text(
            f'[device]\nid = "440500-hall1-w12"\nwindow = "{WINDOW}"\n'
            '[counter]\nport = "dummy://"\n[mqtt]\nenabled = false\n'
            f"[storage]\npath = {json.dumps(str(tmp_path / f'r{len(made)}.db'))}\n"
            f'[receipt]\nprint = "{policy}"\nurl_template = "{TEMPLATE}"\nhall = "{HALL}"\n'
            f"[printer]\n{printer}\n{extra}",
            encoding="utf-8",
        )
        app = App(load_config([REPO / "config" / "demo.toml", site]), clock=FakeClock())
        app.screen = Screen(driver="dummy")
        pygame.event.clear()
        if app.printer is not None:
            app.printer.start()
        made.append(app)
        return app

    yield build
    for app in made:
        app.shutdown()


def turn(app: App) -> None:
    """One turn of ``App.run``'s loop without the wait and the drawing, and the next ones at
    once while receipts wait to be made (the loop's wait is then 0: it makes them after the
    frame of the end was drawn)."""
    app.step()
    while app.receipts is not None and app.receipts.due:
        app.step()


def request(app: App, rtype: str, **body: Any) -> dict[str, Any]:
    """A counter request, as the loop handles it (then its next turn)."""
    reply = app.handle(Message(len(app.link.sent) + 1000, rtype, body))
    if app.receipts is not None and app.receipts.due:
        turn(app)
    return reply


def press(app: App, level: Level = Level.SATISFIED) -> None:
    """A level pressed, and the loop's next turn (which makes the receipt of an end)."""
    app.clock.advance(1.0)  # past the press filter's guard
    app.act(PressLevel(level))
    turn(app)


def thanks_over(app: App) -> None:
    """The 谢谢 after a rating ends (the counter is told, the receipt is made: art. 4)."""
    app.clock.advance(app.config.session.thanks + 0.1)
    turn(app)


def printed(app: App, count: int) -> bytes:
    """What the dummy printer got once ``count`` receipts are out."""
    assert app.printer.wait_until(lambda s: s.printed >= count, PATIENCE), app.printer.status
    return bytes(app.printer.connection.output)


def verified(app: App, url: str) -> ratelink.RateLink:
    """The link as the city checks it, with the device key's public key."""
    key = DeviceKey.load(app.config.device.key_file)
    verdict = ratelink.verify(
        url, key_id=key.key_id, check=key.public.check, now=int(app.clock.now().wall)
    )
    assert verdict.ok, verdict.message
    assert verdict.link is not None
    return verdict.link


def receipts_in(data: bytes) -> list[tuple[str, list[str]]]:
    """``(text, QR links)`` of each receipt in the printer's bytes (split at the title)."""
    elements = decode(data)
    found: list[tuple[str, list[str]]] = []
    for element in elements:
        if isinstance(element, Text) and paper.TITLE in element.text:
            found.append(("", []))
        if found:
            text, urls = found[-1]
            found[-1] = (text + (element.text if isinstance(element, Text) else ""), urls)
            urls += qr_texts([element])
    return found


def show(app: App) -> str:
    """A turn of ``App.run``'s loop without the wait (and the next ones while receipts wait to
    be made); the screen drawn."""
    app.step()
    app._show()
    while app.receipts is not None and app.receipts.due:
        app.step()
        app._show()
    return app.screen.view.screen


# -- when: the four policies ------------------------------------------------------------------


def test_always_a_receipt_for_every_case_or_batch_whose_qr_verifies_and_names_it(make) -> None:
    app = make("always")
    assert request(app, "evaluation.start", **start("S-1"))["ok"]
    press(app)  # rated
    app.clock.advance(app.config.session.thanks + 0.1)  # the counter waits for the 谢谢 to end
    assert request(app, "evaluation.start", **start("B-1", "B-2"))["ok"]  # a batch
    app.clock.advance(app.config.session.timeout + 1)
    turn(app)  # timed out: not rated, printed all the same
    [(one, [url1]), (batch, [url2])] = receipts_in(printed(app, 2))
    for text, serials in ((one, ["S-1"]), (batch, ["B-1", "B-2"])):
        for wanted in (HALL, WINDOW, MATTER["matter_name"], CLERK["name"], CLERK["id"], *serials,
                       paper.PROMPT):  # fmt: skip
            assert wanted in text
    link1, link2 = verified(app, url1), verified(app, url2)
    assert link1.serials == ("S-1",) and link2.serials == ("B-1", "B-2")
    assert (link1.device_id, link1.matter_code, link1.clerk) == (
        "440500-hall1-w12", MATTER["matter_code"], "A1023"
    )  # fmt: skip
    assert link1.expires - link1.issued == 7 * 24 * 3600
    assert link1.short_code in one and link2.short_code in batch
    assert [s.url for s in app.receipts.issued] == [url1, url2]
    assert request(app, "status")["printer"] == {"state": "ok", "pending": 0}


def test_unrated_only_for_what_the_citizen_did_not_rate(make) -> None:
    app = make("unrated")
    assert request(app, "evaluation.start", **start("R-1"))["ok"]
    press(app)  # rated: no receipt
    app.clock.advance(5)
    assert request(app, "evaluation.start", **start("C-1"))["ok"]
    assert request(app, "evaluation.cancel")["ok"]  # cancelled: a receipt
    assert request(app, "evaluation.start", **THEME)["ok"]
    app.clock.advance(1)
    app.act(ExpandTheme())
    press(app)  # the first item rated, the second left to time out: a receipt for T-2
    app.clock.advance(app.config.session.timeout + 1)
    turn(app)
    got = receipts_in(printed(app, 2))
    assert [verified(app, urls[0]).serials for _, urls in got] == [("C-1",), ("T-2",)]
    assert "营业执照设立登记" in got[1][0]  # the item left: its own matter, not the theme
    assert len(app.receipts.issued) == 2


def test_a_theme_receipt_is_named_after_the_theme(make) -> None:
    app = make("always")
    assert request(app, "evaluation.start", **THEME)["ok"]
    press(app)  # the theme rated overall
    thanks_over(app)
    [(text, [url])] = receipts_in(printed(app, 1))
    link = verified(app, url)
    assert link.serials == ("T-1", "T-2") and link.matter_code == "YJS-0007"
    assert "事项名称：开办餐饮店" in text


def test_a_good_and_a_bad_press_print_when_the_counter_is_told_at_the_end_of_thanks(
    make,
) -> None:
    """Art. 4: a 好评 is durable at the press, a 差评 only at its reasons' submit; the printer at
    the counter must not tell the clerk which.  Each receipt prints when its 谢谢 ends, in the
    turn that tells the counter ``evaluation.finished``, and not a turn before; its content
    (the time on it: the durable end) is what it was."""
    from kiosk.view import Submit, ToggleReason

    app = make("always")
    thanks = app.config.session.thanks
    assert thanks > 0.2
    for n, level in enumerate((Level.SATISFIED, Level.DISSATISFIED)):
        serial = f"M-{n}"
        assert request(app, "evaluation.start", **start(serial))["ok"]
        press(app, level)
        if level.is_bad:
            app.clock.advance(2.0)
            app.act(ToggleReason("213"))
            app.clock.advance(1.0)
            app.act(Submit())
            turn(app)
        assert app.session.state.value == "thanks"
        durable = app.clock.now().wall  # the press (好评) or the submit (差评)
        out = len(app.printer.connection.output)
        app.clock.advance(thanks - 0.05)
        turn(app)
        assert not [f for f in app.link.sent if f.get("serials") == [serial]]
        assert len(app.receipts.issued) == n and app.printer.status.pending == 0
        assert len(app.printer.connection.output) == out  # not a byte before the end of 谢谢
        app.clock.advance(0.1)
        turn(app)
        assert [f["outcome"] for f in app.link.sent if f.get("serials") == [serial]] == ["rated"]
        got = receipts_in(printed(app, n + 1))
        assert len(got) == n + 1 and len(app.printer.connection.output) > out
        text, [url] = got[-1]
        link = verified(app, url)
        assert link.serials == (serial,) and serial in text
        assert link.issued == int(durable)  # the time of the durable end, as before


def test_a_cancel_prints_at_once(make) -> None:
    """Not rated: the counter is told at once, and the receipt is made at the next turn."""
    app = make("always")
    assert request(app, "evaluation.start", **start("C-9"))["ok"]
    assert request(app, "evaluation.cancel")["ok"]
    [(text, [url])] = receipts_in(printed(app, 1))
    assert verified(app, url).serials == ("C-9",) and "C-9" in text


def test_request_prints_only_on_receipt_print_and_never_opens_a_rating_screen(make) -> None:
    app = make("request")
    assert request(app, "evaluation.start", **start("S-1"))["ok"]
    press(app)
    app.clock.advance(5)
    turn(app)
    assert app.receipts.issued == type(app.receipts.issued)()  # rated, and no request: nothing
    app.link.feed({"id": 7, "type": "receipt.print", "clerk": CLERK, "cases": [case("P-1")]})
    app.link.feed({"id": 8, "type": "receipt.print", "terminal": "ZZ-0107", "cases": [case("P-2")]})
    turn(app)
    replies = {f["id"]: f for f in app.link.sent if "id" in f}
    assert replies[7]["ok"] and replies[7]["printer"]["state"] in ("ok", "unknown")
    assert replies[8]["ok"]
    assert "short_code" not in json.dumps(replies) and "http" not in json.dumps(replies)
    assert app.view().screen == "idle" and not app.session.rating_open
    (clerk_text, [url1]), (terminal_text, [url2]) = receipts_in(printed(app, 2))
    assert verified(app, url1).clerk == "A1023" and CLERK["name"] in clerk_text
    assert verified(app, url2).clerk == "T:ZZ-0107" and CLERK["name"] not in terminal_text
    assert "办理人员" not in terminal_text and "P-2" in terminal_text


def test_receipt_print_checks_its_body(make) -> None:
    app = make("request")
    bad = request(app, "receipt.print", cases=[case("P-1")], clerk=CLERK, stage="deliver")
    assert bad["error"]["code"] == "unknown_field"
    mixed = [case("P-1"), case("P-2", matter_code="M-OTHER")]
    assert request(app, "receipt.print", cases=mixed, clerk=CLERK)["error"]["code"] == (
        "mixed_matters"
    )
    phone = request(app, "receipt.print", cases=[case("P-1")], terminal="13800138000")
    assert phone["error"]["code"] == "invalid_field"
    assert app.receipts.issued == type(app.receipts.issued)()


def test_never_prints_nothing_and_refuses_receipt_print(make) -> None:
    app = make("never")
    assert app.printer is None and app.receipts is None
    assert request(app, "evaluation.start", **start("S-1"))["ok"]
    press(app)
    refused = request(app, "receipt.print", clerk=CLERK, cases=[case("P-1")])
    assert refused["error"]["code"] == "printing_off"
    assert request(app, "status")["printer"] is None


def test_the_spooler_is_the_configured_one_spooling_next_to_the_store(make, tmp_path) -> None:
    app = make("always", printer='paper = "80mm"\nqr = "image"')
    assert app.printer.spool_dir == tmp_path / "receipts"
    assert app.printer.profile.paper == "80mm"
    # Kept while its citizen is likely at the window (谢谢, then the QR), never longer.
    assert app.printer.max_age == app.config.session.thanks + app.config.receipt.qr_on_screen


# -- a printer that cannot print: the QR on the screen -------------------------------------------


def test_a_printer_that_hangs_never_delays_a_rating_or_a_screen_and_the_qr_is_shown(
    make, tmp_path: Path
) -> None:
    """A FIFO whose reader never reads, and receipts too big for its buffer (raster text): the
    spooler's worker blocks inside the write.  Meanwhile the next citizen is shown the rating
    screen, rates, sees 谢谢, and the rating is stored; when the write times out the printer is
    offline and the last receipt's QR comes up on the screen after 谢谢."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    reader = PipeReader(str(fifo))  # opened, never started: nobody reads
    try:
        app = make("always", printer=f'kind = "file"\npath = "{fifo}"\ntext = "raster"\n'
                   'timeout = "8s"')  # fmt: skip  (far beyond the steps below)
        spooler = app.printer
        assert request(app, "evaluation.start", **start("H-1"))["ok"]
        press(app)
        app.clock.advance(app.config.session.thanks + 0.1)
        assert show(app) == "idle"  # H-1's receipt is made as its 谢谢 ends
        assert spooler.wait_until(lambda s: s.phase == "writing", PATIENCE)
        # The worker is stuck in the write: the pad goes on.
        assert request(app, "evaluation.start", **start("H-2"))["ok"]
        assert show(app) == "presenting"
        press(app)
        assert show(app) == "thanks"
        assert [r["cases"][0]["serial"] for r in app.store.records()] == ["H-1", "H-2"]
        status = spooler.status
        assert (status.phase, status.printed, status.pending) == ("writing", 0, 1)
        app.clock.advance(app.config.session.thanks + 0.1)
        assert show(app) == "idle"  # H-2's receipt queued behind H-1's as its 谢谢 ended
        assert spooler.status.pending == 2
        # The write gives up: offline, and the QR of H-2 (its citizen is there) on the screen.
        assert spooler.wait_until(lambda s: s.state == "offline", PATIENCE)
        assert show(app) == "receipt_qr"
        view = app.screen.view
        [url] = decode_screen(app.screen.surface, app.screen.layout.boxes["qr"])
        assert url == view.qr == app.receipts.issued[-1].url
        assert verified(app, url).serials == ("H-2",)
        assert view.short_code == verified(app, url).short_code
        assert request(app, "status")["printer"] == {"state": "offline", "pending": 2}
    finally:
        app.shutdown()
        reader.close()


def test_a_printer_known_down_shows_the_qr_and_a_touch_closes_it(make, tmp_path: Path) -> None:
    """A FIFO nobody opened: the first receipt finds the printer offline; from then on each
    receipt's QR shows after 谢谢 (or at once after a timeout), until a touch, its time, or the
    next rating screen."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    app = make("always", printer=f'kind = "file"\npath = "{fifo}"\n')
    assert request(app, "evaluation.start", **start("D-1"))["ok"]
    press(app)
    app.clock.advance(app.config.session.thanks + 0.1)
    show(app)  # the 谢谢 ends: the receipt is tried
    assert app.printer.wait_until(lambda s: s.state == "offline", PATIENCE)
    assert show(app) == "receipt_qr"
    # A touch anywhere closes it (and does nothing else).
    app.handle_events([pygame.event.Event(pygame.FINGERDOWN, x=0.5, y=0.5, dx=0, dy=0,
                                          touch_id=0, finger_id=0)])  # fmt: skip
    assert app.screen.view.screen == "idle"
    # Printer still down: a timeout's receipt shows at once, with no 谢谢 before it.
    assert request(app, "evaluation.start", **start("D-2"))["ok"]
    app.clock.advance(app.config.session.timeout + 1)
    assert show(app) == "receipt_qr"
    assert verified(app, app.screen.view.qr).serials == ("D-2",)
    seconds = app.screen.view.seconds_left
    assert seconds == app.config.receipt.qr_on_screen
    app.clock.advance(seconds - 1)
    assert show(app) == "receipt_qr" and app.screen.view.seconds_left == 1
    app.clock.advance(1)
    assert show(app) == "idle"  # its time is over
    # The next rating screen replaces a QR still showing: the next citizen is there.
    assert request(app, "evaluation.start", **start("D-3"))["ok"]
    app.clock.advance(app.config.session.timeout + 1)
    assert show(app) == "receipt_qr"
    assert request(app, "evaluation.start", **start("D-4"))["ok"]
    assert show(app) == "presenting"
    assert request(app, "evaluation.cancel")["ok"]
    assert show(app) == "receipt_qr"  # D-4's own receipt (cancelled: printed too)
    assert verified(app, app.screen.view.qr).serials == ("D-4",)


def test_a_receipt_that_cannot_be_made_shows_its_qr_at_once(make) -> None:
    """A batch whose link is too long to print (over 512 characters): no receipt, the QR on
    screen."""
    app = make("always")
    serials = [f"4405002026112600{n:02d}-SUPPLEMENT-OF-THE-ORIGINAL-CASE" for n in range(12)]
    assert request(app, "evaluation.start", **start(*serials))["ok"]
    press(app)
    app.clock.advance(app.config.session.thanks + 0.1)
    assert show(app) == "receipt_qr"
    [url] = decode_screen(app.screen.surface, app.screen.layout.boxes["qr"])
    assert len(url) > 512 and verified(app, url).serials == tuple(serials)
    assert app.printer.status.pending == 0 and app.printer.status.printed == 0


def test_a_printer_failing_after_its_citizen_left_brings_nothing_up(make, tmp_path) -> None:
    """The loop looks at the printer only after the citizen's time (thanks + qr_on_screen) is
    over: the failure it finds then shows nothing (the next citizen would get the code)."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    app = make("always", printer=f'kind = "file"\npath = "{fifo}"\n')
    assert request(app, "evaluation.start", **start("L-1"))["ok"]
    press(app)
    thanks_over(app)  # the receipt is queued while the printer's state is still unknown
    app.clock.advance(app.config.receipt.qr_on_screen + 1)
    assert app.printer.wait_until(lambda s: s.state == "offline" and s.pending == 1, PATIENCE)
    assert show(app) == "idle"
    # Within the time, the same failure brings the QR up (the test above is not vacuous).
    assert request(app, "evaluation.start", **start("L-2"))["ok"]
    app.clock.advance(app.config.session.timeout + 1)
    assert show(app) == "receipt_qr"


def test_no_device_key_no_receipt(make, tmp_path: Path) -> None:
    (tmp_path / "device.key").write_text("garbage")
    os.chmod(tmp_path / "device.key", 0o600)
    app = make("request")
    refused = request(app, "receipt.print", clerk=CLERK, cases=[case("P-1")])
    assert refused["error"]["code"] == "device_key"
    assert "device_key" in request(app, "status")["faults"]


def test_receipt_traffic_validates_against_the_published_schemas(make, tmp_path: Path) -> None:
    """Real requests and replies of a printing pad against docs/schemas (as tests/test_docs.py
    does for the rest of the traffic)."""
    from jsonschema import Draft202012Validator

    from evaluator.rules.protocol import encode

    def validator(name: str) -> Draft202012Validator:
        path = REPO / "docs" / "schemas" / f"{name}.schema.json"
        return Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))

    requests, replies = validator("counter-request"), validator("counter-reply")
    sent = [
        {"id": 1, "type": "receipt.print", "clerk": CLERK, "cases": [case("V-1")]},
        {"id": 2, "type": "receipt.print", "terminal": "ZZ-0107", "cases": [case("V-2")],
         "theme": None},
        {"id": 3, "type": "status"},
    ]  # fmt: skip
    for app in (make("request"), make("never")):
        for frame in sent:
            assert requests.is_valid(frame), frame
            body = {k: v for k, v in frame.items() if k not in ("id", "type")}
            reply = app.handle(Message(frame["id"], frame["type"], body))
            errors = [e.message for e in replies.iter_errors(json.loads(encode(reply)))]
            assert not errors, (reply, errors)
    (tmp_path / "device.key").unlink()
    (tmp_path / "device.key").write_text("garbage")
    os.chmod(tmp_path / "device.key", 0o600)
    broken = make("request")
    refused = broken.handle(Message(4, "receipt.print", {"clerk": CLERK, "cases": [case("V-3")]}))
    assert refused["error"]["code"] == "device_key" and replies.is_valid(refused)
    assert not requests.is_valid({"id": 5, "type": "receipt.print", "cases": [case("V-4")]})
    assert not requests.is_valid(sent[0] | {"stage": "deliver"})


def test_a_receipt_that_ends_as_the_next_case_starts_never_reaches_the_next_citizen(
    make, tmp_path: Path
) -> None:
    """A review found it: the clerk cancels A's case and starts B's in one turn of the loop; A's
    receipt is made at the next turn, after B's rating screen opened, and its QR came up for B
    after B rated.  A's receipt is still printed; its QR is never shown to B."""
    fifo = tmp_path / "lp0"
    os.mkfifo(fifo)
    app = make("unrated", printer=f'kind = "file"\npath = "{fifo}"\n')
    app.link.feed({"id": 1, "type": "evaluation.start", **start("X-0")})
    app.step()
    app.clock.advance(app.config.session.timeout + 1)
    show(app)
    assert app.printer.wait_until(lambda s: s.state == "offline", PATIENCE)  # known down
    app.receipts.dismiss()
    app.link.feed({"id": 2, "type": "evaluation.start", **start("A-1")})
    app.step()
    app._show()
    app.link.feed({"id": 3, "type": "evaluation.cancel"})
    app.link.feed({"id": 4, "type": "evaluation.start", **start("B-1")})
    show(app)
    assert app.screen.view.screen == "presenting"
    assert [s.serials for s in app.receipts.issued][-1] == ("A-1",)  # A's receipt was issued
    press(app)  # citizen B rates
    app.clock.advance(app.config.session.thanks + 0.1)
    assert show(app) != "receipt_qr"  # nothing of A's on B's screen
    # A receipt.print for another case while a rating screen is open stays off the screen too.
    app.link.feed({"id": 5, "type": "evaluation.start", **start("C-1")})
    show(app)
    app.link.feed({"id": 6, "type": "receipt.print", **start("D-1")})
    show(app)
    press(app)
    app.clock.advance(app.config.session.thanks + 0.1)
    assert show(app) != "receipt_qr"


@pytest.mark.parametrize("printer", ["", "fifo"], ids=["printer_ok", "printer_down"])
def test_receipt_print_during_a_rating_reads_the_same_for_a_good_and_a_bad_press(
    make, tmp_path: Path, caplog: pytest.LogCaptureFixture, printer: str
) -> None:
    """Art. 4: a clerk's ``receipt.print`` while a 好评's 谢谢 is up and while a 差评 is on its
    reasons (the clerk's side cannot tell these apart) leaves the same journal lines and the
    same screen: its QR never goes on the citizen's screen while a rating is held."""
    import logging

    seen = []
    for n, level in enumerate((Level.SATISFIED, Level.VERY_DISSATISFIED)):
        toml = ""
        if printer:
            fifo = tmp_path / f"lp{n}"
            os.mkfifo(fifo)  # nobody reads it: the printer is offline
            toml = f'kind = "file"\npath = "{fifo}"\n'
        app = make("request", printer=toml)
        if printer:  # known down before the rating: a receipt tried, its QR dismissed
            assert request(app, "receipt.print", clerk=CLERK, cases=[case("P-0")])["ok"]
            assert app.printer.wait_until(lambda s: s.state == "offline", PATIENCE)
            app.receipts.dismiss()
        assert request(app, "evaluation.start", **start(f"S-{n}"))["ok"]
        press(app, level)
        screen = app.view().screen
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            reply = request(app, "receipt.print", clerk=CLERK, cases=[case("P-1")])
        assert reply["ok"]
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("evaluator")]
        seen.append((lines, app.view().screen == screen))
    assert seen[0] == seen[1], seen
