"""Receipts and the pad (issue 7): the city's check of a receipt's QR, and press → 谢谢 with
printing on beside the same with printing off.

1. ``ratelink.verify`` of a signed receipt link (parse, key id, Ed25519 signature with
   ``cryptography``, times, nonce): what one core of the city checks a second; reference: the
   Ed25519 signature check alone.  Every sample is another link (its own serial and nonce).
2. GPIO press (gpiozero ``MockFactory`` pin) → rating durable and 谢谢 drawn, at 1280×800, by a
   real :class:`~evaluator.app.App` with ``[receipt] print = "always"`` on the shipped stand-in
   printer (python-escpos's ``Dummy`` behind the real spooler thread, which builds each receipt's
   ESC/POS bytes beside the pad while it runs), beside a second App in the same process with
   ``print = "never"``.  One sample of each in turn (the order swapped every round), so noise
   hits both alike; the two share one display.  The pad makes a receipt at the loop's turn after
   the 谢谢 has ended (when the counter is told, art. 4) and the spooler builds its bytes then;
   before each press (untimed) the 谢谢 has ended (``[session] thanks`` is
   :data:`bench.frames.THANKS`: the next start is refused ``busy`` until then) and the previous
   receipt is out, as it long is when the next citizen presses: samples come back to back here,
   and the worker's build would otherwise run inside the next press.  ``[session] press_guard``
   is 0 in both (the press filter is not measured; the level alternates, so no press is a
   repeat).

``python -m bench.printing`` prints this table alone; ``python -m bench.run`` includes it.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from bench.frames import (
    PINS,
    THANKS,
    count_ratings,
    drain,
    end_thanks,
    expect,
    start_request,
    timed_press,
)
from bench.stats import Row, median_p99, table
from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules import ratelink
from evaluator.rules.levels import Level

WIDTH, HEIGHT = 1280, 800
#: Samples (links verified; presses per App) and warm-up rounds, untimed.
N_VERIFY, N_PRESS, WARM_UP = 2000, 100, 3
#: The goal of issue 7: printing costs the citizen's press at most 10 %.
RATIO = 1.1
TEMPLATE = "https://hcp.example.org/r?{query}"
LEVELS = (Level.SATISFIED, Level.VERY_SATISFIED)


def bench_verify() -> tuple[list[float], list[float], int]:
    """Microseconds per ``ratelink.verify`` and per bare signature check, in turn; and the
    links' length."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sync.keys import DeviceKey

    key = DeviceKey(Path("(bench)"), Ed25519PrivateKey.generate())
    public = key.public
    now = 1_795_744_800
    links = []
    for n in range(N_VERIFY + WARM_UP):
        url, _link = ratelink.make_link(
            TEMPLATE, device_id="440500-hall1-w12", serials=[f"44050020261127{n:05d}0"],
            matter_code="11440500MB2C9300XR4442111009000", clerk="A1023", now=now,
            key_id=key.key_id, sign=key.sign,
        )  # fmt: skip
        parsed = ratelink.parse(url)
        assert parsed is not None
        links.append((url, parsed[1], parsed[2]))
    t_verify: list[float] = []
    t_sig: list[float] = []
    for n, (url, signed, signature) in enumerate(links):
        t0 = time.perf_counter()
        verdict = ratelink.verify(url, key_id=public.key_id, check=public.check, now=now)
        t1 = time.perf_counter()
        ok = public.check(signed, signature)
        t2 = time.perf_counter()
        if not (verdict.ok and ok):
            raise RuntimeError(f"a genuine link was refused: {verdict.message}")
        if n >= WARM_UP:
            t_verify.append((t1 - t0) * 1e6)
            t_sig.append((t2 - t1) * 1e6)
    return t_verify, t_sig, len(links[0][0])


def make_app(tmp: Path, repo: Path, name: str, *, printing: bool) -> App:
    """An App as a pad at 1280×800 runs it (buttons on mock pins, the dummy:// counter link),
    printing a receipt at every rating's end on the stand-in printer, or none."""
    pins = "\n".join(f"{level.value} = {pin}" for level, pin in PINS.items())
    receipt = (
        f'[receipt]\nprint = "always"\nurl_template = "{TEMPLATE}"\nhall = "汕头市政务服务中心"\n'
        '[printer]\nkind = "dummy"\n'
        if printing
        else '[receipt]\nprint = "never"\n'
    )
    site = tmp / f"{name}.toml"
    site.write_text(
        f'[device]\nid = "bench-{name}"\nwindow = "12号窗口"\n'
        '[counter]\nport = "dummy://"\n[mqtt]\nenabled = false\n'
        f"[storage]\npath = {json.dumps(str(tmp / name / 'ratings.db'))}\n"
        f'[buttons]\n{pins}\npin_factory = "mock"\n'
        f'[session]\npress_guard = "0s"\nthanks = "{THANKS * 1000:g}ms"\n'
        f'[screen]\nwidth = {WIDTH}\nheight = {HEIGHT}\ndriver = "dummy"\n{receipt}',
        encoding="utf-8",
    )
    return App(load_config([repo / "config" / "demo.toml", site]))


def press_once(app: App, msg_id: int, serial: str, level: Level) -> float:
    """Seconds from the GPIO press to 谢谢 drawn with the rating durable."""
    end_thanks(app)  # the previous case's 谢谢 has ended and its receipt is made
    app.link.feed(start_request(msg_id, serial))
    app.step()
    app._show()
    drain(app)
    expect(app, "presenting")
    if app.printer is not None and not app.printer.wait_until(lambda s: not s.pending, 10):
        raise RuntimeError(f"the previous receipt was not printed: {app.printer.status}")
    return timed_press(app, app.buttons.pin(level))


def bench_press(
    tmp: Path, repo: Path, n: int = N_PRESS, warm_up: int = WARM_UP
) -> tuple[list[float], list[float], int]:
    """Milliseconds press → 谢谢 with printing on and off, in turn (``n`` samples each after
    ``warm_up`` rounds: tests run a few); and the receipts printed."""
    on = make_app(tmp, repo, "printing-on", printing=True)
    off = make_app(tmp, repo, "printing-off", printing=False)
    try:
        on.screen = on.devices.open_screen()
        off.screen = on.screen  # one display: each App draws its whole screen
        on.printer.start()  # as App.run does after READY
        t_on: list[float] = []
        t_off: list[float] = []
        msg_id = 0
        for i in range(-warm_up, n):
            order = [(on, t_on), (off, t_off)] if i % 2 else [(off, t_off), (on, t_on)]
            for app, times in order:
                msg_id += 1
                took = press_once(app, msg_id, f"P{i}", LEVELS[i % 2])
                if i >= 0:
                    times.append(took * 1000)
        end_thanks(on)  # the last 谢谢 ends and its receipt is made
        for app in (on, off):
            if count_ratings(app.config.storage.path) != n + warm_up:
                raise RuntimeError("a rating is missing from the store after 谢谢")
        if not on.printer.wait_until(lambda s: s.printed + s.dropped >= n + warm_up, 60):
            raise RuntimeError(f"the receipts were not all printed: {on.printer.status}")
        printed = on.printer.status.printed
    finally:
        off.screen = None  # closed once, by the App that opened it
        off.shutdown()
        on.shutdown()
    return t_on, t_off, printed


def per_second(micros: list[float]) -> str:
    return f"{1e6 / median_p99(micros)[0]:,.0f}/s"


def rows(tmp: Path, repo: Path) -> list[Row]:
    t_verify, t_sig, length = bench_verify()
    verify = Row(
        f"ratelink.verify, {length}-char link ({per_second(t_verify)})",
        "µs",
        t_verify,
        f"Ed25519 signature check alone ({per_second(t_sig)})",
        t_sig,
    )
    t_on, t_off, printed = bench_press(tmp, repo)
    press = Row(
        f"GPIO press → 谢谢, printing on (dummy, {printed} printed), 1280×800",
        "ms",
        t_on,
        "same, printing off",
        t_off,
        f"median ≤ {RATIO:g}x ref",
    )
    press.met = press.ratios is not None and press.ratios[0] <= RATIO
    return [verify, press]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-printing-") as tmp:
        print(table(rows(Path(tmp), Path(__file__).resolve().parents[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
