"""Benchmarks of the rating pad: ``python -m bench.run`` (from the repo root, with the project's
Python, e.g. ``.venv/bin/python -m bench.run``).  One command, one table, in about two minutes.

Every figure is printed with its median and p99 beside a reference measured in the same run
(interleaved with it where they can be), and their ratio: the machines are shared and noisy.

Issue 6's figures, at 1280×800 (goals in the table):

1. trigger → rating screen drawn, real App in process (:mod:`bench.frames`); reference: a bare
   ``pygame.display.flip()``;
2. GPIO press (gpiozero ``MockFactory`` pin) → rating durable and 谢谢 drawn (:mod:`bench.frames`);
   reference: a raw sqlite3 insert (WAL, ``synchronous=FULL``) plus one flip;
3. ``python -m evaluator run`` start → ``READY=1`` (:mod:`bench.process`, the project
   byte-compiled first as a wheel install is); reference: ``python -c "import pygame"``; beside it,
   for information, the pad as fitted (counter on pyserial, buttons on gpiozero, MQTT on);
4. idle CPU and 5. RSS of the running pad (:mod:`bench.process`); reference: a bare pygame loop
   (``bench/bare_loop.py``) blocking on ``pygame.event.wait(1000)``.

The earlier benchmarks, at 800×480: committing one rating (``Store.append_rating``, WAL +
``synchronous=FULL``) beside ``synchronous=NORMAL`` (comparison only, interleaved in rounds);
a counter request → rating screen drawn (``App.handle`` + ``Screen.render``) beside a render of
the presenting view alone; a level press → rating durable and 谢谢 drawn (``App.act`` +
``Screen.render``, a FakeClock moved past the press filter before each press and past the
谢谢 after it, untimed: the next start waits for the 谢谢 to end, art. 4).

Issue 7's figures (:mod:`bench.receipt`, :mod:`bench.printing`): receipt bytes built per second
(image beside native QR); receipt links checked per second by the city (``ratelink.verify``)
beside the bare Ed25519 check; GPIO press → 谢谢 at 1280×800 with printing on (the stand-in
printer behind the real spooler) beside printing off, in the same run (goal: ratio ≤ 1.1).

Issue 8's figures (:mod:`bench.sync_link`; alone: ``python -m bench.run --sync``): a 10,000-rating
backlog drained end to end beside raw paho QoS 1; commit → at city and the worker's CPU per
rating at 100,000 past ratings beside an empty store; the store's open at 100k beside empty.
The city receiver's records/s on SQLite and PostgreSQL beside raw inserts (:mod:`bench.hub`;
alone: ``python -m bench.run --hub``).  An honest pad's ack latency while a stolen pad attacks
the receiver, beside no attack (:mod:`bench.hub_attack`; ``python -m bench.run --hub-attack``,
issue 16).  The fleet run, 1,000 pads against two receivers
(:mod:`bench.fleet`; ``python -m bench.run --fleet [its options]``, not part of the default run:
minutes).

Headless (SDL dummy driver); every file lives in a temporary directory.
"""

from __future__ import annotations

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"  # before pygame is imported (via kiosk.screen)
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import frames, printing, process, receipt, sync_link
from bench.stats import Row, median_p99, table
from evaluator.app import App
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import Message
from kiosk.screen import Screen
from kiosk.view import PressLevel
from sync.store import Store

STORE_ROUNDS = 20  # rounds of STORE_PER_ROUND appends per setting, alternating FULL / NORMAL
STORE_PER_ROUND = 10
N_SCREEN = 100

CLERK = {"id": "A1023", "name": "陈晓明"}


def rating_content(i: int) -> dict[str, Any]:
    return {
        "presentation_id": "p",
        "level": "satisfied",
        "score": 8,
        "satisfaction": 4,
        "gbt_code": 2,
        "channel": 4,
        "cases": [
            {
                "serial": f"S{i}",
                "matter_code": "M1",
                "matter_name": "居民身份证换领",
                "kind": "instant",
            }
        ],
        "clerk": dict(CLERK),
        "agencies": [],
        "agencies_concerned": [],
        "targets": ["clerk", "matter"],
        "theme": None,
        "reasons": [],
        "comment": "",
        "stage": "deliver",
        "visit": 1,
        "assess_number": 1,
        "follows": [],
        "area_code": "440500",
        "presented_at": "2026-11-26T10:00:00.000+08:00",
        "presented_clock_synced": True,
        "rated_at": "2026-11-26T10:00:03.000+08:00",
        "rated_clock_synced": True,
        "elapsed_ms": 3000,
    }


def start_body(i: int) -> dict[str, Any]:
    return {
        "clerk": dict(CLERK),
        "stage": "deliver",
        "cases": [
            {
                "serial": f"B{i}",
                "matter_code": "M1",
                "matter_name": "居民身份证换领",
                "kind": "instant",
            }
        ],
    }


REPO = Path(__file__).resolve().parents[1]
#: The goals of issue 6.
FRAME_P99_MS = 20.0
START_RATIO = 1.5
IDLE_CPU_RATIO = 1.2
RSS_MIB = 80.0


def ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def fs_type(path: Path) -> str:
    """The file system type ``path`` lives on (from /proc/mounts; "?" when unknown)."""
    best, kind = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    target = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, parts[2]
    return kind


def bench_store(tmp: Path) -> tuple[list[float], list[float]]:
    full = Store(tmp / "full.db", device_id="bench")
    normal = Store(tmp / "normal.db", device_id="bench")
    normal.db.execute("PRAGMA synchronous = NORMAL")
    # One warm-up append each (creates the WAL file), not timed.
    full.append_rating(rating_content(-1))
    normal.append_rating(rating_content(-1))
    t_full: list[float] = []
    t_normal: list[float] = []
    i = 0
    try:
        for r in range(STORE_ROUNDS):
            order = [(full, t_full), (normal, t_normal)]
            if r % 2:
                order.reverse()
            for store, times in order:
                for _ in range(STORE_PER_ROUND):
                    content = rating_content(i)
                    i += 1
                    t0 = time.perf_counter()
                    store.append_rating(content)
                    times.append(time.perf_counter() - t0)
    finally:
        full.close()
        normal.close()
    return t_full, t_normal


def make_app(tmp: Path) -> App:
    override = tmp / "override.toml"
    override.write_text(
        "[device]\n"
        'id = "bench-1"\n'
        "[counter]\n"
        'port = ""\n'
        "[mqtt]\n"
        "enabled = false\n"
        "[storage]\n"
        f"path = {json.dumps(str(tmp / 'r.db'))}\n",
        encoding="utf-8",
    )
    config = load_config([REPO / "config" / "demo.toml", override])
    return App(config, clock=FakeClock())


def expect(app: App, screen: str) -> None:
    got = app.view().screen
    if got != screen:
        raise RuntimeError(f"expected the {screen!r} screen, got {got!r}")


def bench_screens(app: App, screen: Screen, n: int = N_SCREEN) -> dict[str, list[float]]:
    """Request → rating screen drawn (and the render alone), and press → 谢谢 drawn, ``n``
    samples each (tests run a few)."""
    t_request: list[float] = []
    t_render: list[float] = []
    t_press: list[float] = []
    msg_id = 0

    def next_id() -> int:
        nonlocal msg_id
        msg_id += 1
        return msg_id

    # Warm-up (fonts, glyph caches), not timed.
    app.handle(Message(next_id(), "evaluation.start", start_body(-1)))
    screen.render(app.view())
    app.handle(Message(next_id(), "evaluation.cancel", {}))
    screen.render(app.view())

    # 2. request → rating screen drawn; render of the presenting view alone.
    for i in range(n):
        message = Message(next_id(), "evaluation.start", start_body(i))
        t0 = time.perf_counter()
        reply = app.handle(message)
        screen.render(app.view())
        t_request.append(time.perf_counter() - t0)
        if not reply.get("ok"):
            raise RuntimeError(f"evaluation.start refused: {reply}")
        expect(app, "presenting")
        view = app.view()
        t0 = time.perf_counter()
        screen.render(view)
        t_render.append(time.perf_counter() - t0)
        app.handle(Message(next_id(), "evaluation.cancel", {}))

    # 3. press → rating durable and 谢谢 drawn; then (untimed) the clock past the 谢谢 and a
    # turn of the loop: the next start is refused busy until the 谢谢 has ended (art. 4).
    for i in range(n):
        app.handle(Message(next_id(), "evaluation.start", start_body(n + i)))
        screen.render(app.view())
        expect(app, "presenting")
        app.clock.advance(1.0)  # past the press filter's guard and repeat time (untimed)
        app.press_filter.screen(("bench", i), app.clock.now().mono - 1.0)
        t0 = time.perf_counter()
        app.act(PressLevel(Level.SATISFIED))
        screen.render(app.view())
        t_press.append(time.perf_counter() - t0)
        expect(app, "thanks")
        app.clock.advance(app.config.session.thanks + 0.01)
        app.step()
        expect(app, "idle")

    return {
        "request → rating screen drawn": t_request,
        "render presenting view alone": t_render,
        "press → rating durable + 谢谢 drawn": t_press,
    }


def main() -> int:
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f" ({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %z')}")
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmpdir:
        tmp = Path(tmpdir)
        print(f"store files in: {tmp} ({fs_type(tmp)})")

        # Issue 6's figures.
        got = frames.run(tmp, REPO)
        trigger, flip = got["trigger"]
        rows.append(
            Row(
                "trigger → rating frame, 1280×800",
                "ms",
                ms(trigger),
                "bare display.flip() 1280×800",
                ms(flip),
                f"p99 ≤ {FRAME_P99_MS:g} ms",
                median_p99(ms(trigger))[1] <= FRAME_P99_MS,
            )
        )
        press, insert = got["press"]
        rows.append(
            Row(
                "GPIO press → 谢谢 frame + durable, 1280×800",
                "ms",
                ms(press),
                "raw sqlite3 insert (WAL, FULL) + flip",
                ms(insert),
                f"p99 ≤ {FRAME_P99_MS:g} ms",
                median_p99(ms(press))[1] <= FRAME_P99_MS,
            )
        )
        got = process.run(tmp, REPO)
        start = Row("start → READY=1 (evaluator run)", "ms", ms(got["start"][0]))
        start.ref_name, start.ref_values = 'python -c "import pygame"', ms(got["start"][1])
        start.goal = f"median ≤ {START_RATIO:g}x ref"
        start.met = start.ratios is not None and start.ratios[0] <= START_RATIO
        rows.append(start)
        fitted = Row("start → READY=1, as fitted (info)", "ms", ms(got["start_fitted"][0]))
        fitted.ref_name, fitted.ref_values = start.ref_name, start.ref_values
        rows.append(fitted)
        cpu_pad, cpu_bare = got["cpu"]
        cpu = Row(
            f"idle CPU, {process.IDLE_WINDOW:g} s windows", "% core", cpu_pad, "bare pygame loop"
        )
        cpu.ref_values = cpu_bare
        cpu.goal = f"median ≤ {IDLE_CPU_RATIO:g}x ref"
        cpu.met = cpu.ratios is not None and cpu.ratios[0] <= IDLE_CPU_RATIO
        rows.append(cpu)
        rss_pad, rss_bare = got["rss"]
        rss = Row("RSS of the idle pad (VmRSS)", "MiB", rss_pad, "bare pygame loop", rss_bare)
        rss.goal = f"max ≤ {RSS_MIB:g} MiB"
        rss.met = max(rss_pad) <= RSS_MIB
        rows.append(rss)

        # The earlier benchmarks (800×480).
        t_full, t_normal = bench_store(tmp)
        rows.append(
            Row(
                "append_rating, synchronous=FULL (used)",
                "ms",
                ms(t_full),
                "synchronous=NORMAL (not used: can lose the last commit)",
                ms(t_normal),
            )
        )
        app = make_app(tmp)
        screen = Screen(width=800, height=480, driver="dummy")
        try:
            got_screens = bench_screens(app, screen)
        finally:
            screen.close()
            app.shutdown()
        rows.append(
            Row(
                "request → rating screen drawn, 800×480",
                "ms",
                ms(got_screens["request → rating screen drawn"]),
                "render of the presenting view alone",
                ms(got_screens["render presenting view alone"]),
            )
        )
        rows.append(
            Row(
                "press → rating durable + 谢谢 drawn, 800×480",
                "ms",
                ms(got_screens["press → rating durable + 谢谢 drawn"]),
            )
        )
        rows += receipt.rows()  # issue 7: receipt bytes built, image beside native QR
        rows += printing.rows(tmp, REPO)  # issue 7: codes checked, press → 谢谢 printing on/off
        rows += sync_link.rows()  # issue 8: drain vs raw paho, commit → at city at 0 and 100k

    print()
    print(table(rows))
    print()
    total_pad, total_bare = sum(cpu_pad), sum(cpu_bare)
    print(
        f"idle CPU over all {len(cpu_pad)} windows: pad {total_pad / len(cpu_pad):.3f} %,"
        f" bare loop {total_bare / len(cpu_bare):.3f} %"
        f" ({total_pad / total_bare if total_bare else float('inf'):.2f}x);"
        f" CPU time has {1000 / process.TICKS:g} ms ticks"
    )
    print(f"RSS max: pad {max(rss_pad):.1f} MiB, bare loop {max(rss_bare):.1f} MiB")
    missed = [r.name for r in rows if r.met is False]
    print(f"goals missed: {', '.join(missed) if missed else 'none'}")
    print(f"total time: {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    if "--hub" in sys.argv[1:]:  # the city receiver's inserts/s (bench/hub.py)
        from bench import hub

        sys.exit(hub.main())
    if "--hub-attack" in sys.argv[1:]:  # an honest pad's latency under attack (issue 16)
        from bench import hub_attack

        sys.exit(hub_attack.main())
    if "--fleet" in sys.argv[1:]:  # 1,000 pads against two receivers (bench/fleet.py)
        from bench import fleet

        sys.exit(fleet.main([a for a in sys.argv[1:] if a != "--fleet"]))
    sys.exit(sync_link.main() if "--sync" in sys.argv[1:] else main())
