"""Latency benchmark of the rating pad: ``python -m bench.run`` (from the repo root).

Measures, in one run, the median and p90 (milliseconds, ``time.perf_counter``) of:

1. committing one rating durably (``Store.append_rating``, WAL + synchronous=FULL), side by side
   with synchronous=NORMAL for comparison only, interleaved in rounds so noise hits both;
2. a counter request → rating screen drawn (``App.handle`` + ``Screen.render``), and a render
   of the presenting view alone;
3. a level press → rating durable and 谢谢 drawn (``App.act`` + ``Screen.render``).

Headless (SDL dummy driver); every file lives in a temporary directory.
"""

from __future__ import annotations

import os

os.environ["SDL_VIDEODRIVER"] = "dummy"  # before pygame is imported (via kiosk.screen)
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import json
import platform
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

from evaluator.app import App
from evaluator.config import load_config
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


def cols(text: str) -> int:
    """Terminal columns of ``text`` (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def ms(seconds: list[float]) -> tuple[float, float]:
    """Median and p90 in milliseconds."""
    values = sorted(s * 1000 for s in seconds)
    if len(values) < 2:
        return values[0], values[0]
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1]
    return statistics.median(values), p90


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
    config = load_config([Path("config/demo.toml"), override])
    return App(config)


def expect(app: App, screen: str) -> None:
    got = app.view().screen
    if got != screen:
        raise RuntimeError(f"expected the {screen!r} screen, got {got!r}")


def bench_screens(app: App, screen: Screen) -> dict[str, list[float]]:
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
    for i in range(N_SCREEN):
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

    # 3. press → rating durable and 谢谢 drawn; the next start ends the thanks screen.
    for i in range(N_SCREEN):
        app.handle(Message(next_id(), "evaluation.start", start_body(N_SCREEN + i)))
        screen.render(app.view())
        expect(app, "presenting")
        t0 = time.perf_counter()
        app.act(PressLevel(Level.SATISFIED))
        screen.render(app.view())
        t_press.append(time.perf_counter() - t0)
        expect(app, "thanks")

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
    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmpdir:
        tmp = Path(tmpdir)
        print(f"store files in: {tmp}")

        t_full, t_normal = bench_store(tmp)
        full = ms(t_full)
        normal = ms(t_normal)
        rows.append(("append_rating, synchronous=FULL (used)", len(t_full), *full))
        rows.append(
            (
                "append_rating, synchronous=NORMAL"
                " (not used: can lose the last commit on power loss)",
                len(t_normal),
                *normal,
            )
        )

        app = make_app(tmp)
        screen = Screen(width=800, height=480, driver="dummy")
        try:
            for name, times in bench_screens(app, screen).items():
                rows.append((name, len(times), *ms(times)))
        finally:
            screen.close()
            app.shutdown()

    width = max(cols(r[0]) for r in rows)
    header = f"{'benchmark':<{width}}  {'n':>5}  {'median ms':>10}  {'p90 ms':>10}"
    print()
    print(header)
    print("-" * len(header))
    for name, n, median, p90 in rows:
        print(f"{name}{' ' * (width - cols(name))}  {n:>5}  {median:>10.3f}  {p90:>10.3f}")
    print()
    ratio_med = full[0] / normal[0] if normal[0] else float("inf")
    ratio_p90 = full[1] / normal[1] if normal[1] else float("inf")
    print(f"FULL / NORMAL ratio: median {ratio_med:.2f}x, p90 {ratio_p90:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
