"""Serial fuzz: hostile counter frames never crash the pad, never rate, never stop the link.

    .venv/bin/python -m tests.campaigns.serial_fuzz --frames 100000 [--seed N] [--link-frames N]

Frames come from a seeded generator: random bytes; valid requests (those of docs/integrator.md:
``evaluation.start`` in its shapes, ``status``, ``clerk.sign_in`` …) mutated byte by byte or
value by value; and the classes of issue 5: deep nesting, lone surrogates (in ``id`` and in
fields), control characters, over-long lines, invalid UTF-8, ids that cannot be echoed.

Two paths, both with the real parts:

* **in process** — every frame through the real ``LineFramer`` → ``decode`` → ``App.handle``
  (a real ``App`` on a temporary SQLite store, MQTT disabled) → ``encode`` of the reply; every
  accepted ``evaluation.start`` is drawn by the real kiosk ``Screen`` (SDL dummy driver), then
  cancelled.  An exception escaping any step is a *crash* (counted by step and exception type).
* **link** — the same frames written by a counter into a socat pty, read by a real
  ``CounterLink`` whose messages a second ``App`` answers (as the app's main loop does).  Every
  line the pad writes must be UTF-8 JSON; an exception the link had to catch counts as a crash;
  at the end the link must still answer ``status``.

*Ratings made* counts the rows of both stores' ``ratings`` table: it must be 0 (a frame can open
a rating screen, only a citizen's press makes a rating).  Exit status 0 only when there was no
crash, no rating, no unreadable reply and the link is alive.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import logging
import os
import queue
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

REPO = Path(__file__).resolve().parents[2]

CLERK = {"id": "A1023", "name": "陈晓明"}
CASE = {
    "serial": "44050020261126000123",
    "matter_code": "11440500MB2C9300XR4442111009000",
    "matter_name": "居民身份证换领",
    "kind": "instant",
}
#: Valid requests (docs/integrator.md) that the mutations start from.
VALID: list[dict[str, Any]] = [
    {"type": "status"},
    {"type": "clerk.sign_in", "clerk": CLERK},
    {"type": "clerk.sign_out"},
    {"type": "window.pause"},
    {"type": "window.resume"},
    {"type": "evaluation.cancel"},
    {"type": "evaluation.start", "clerk": CLERK, "stage": "deliver", "cases": [CASE]},
    {
        "type": "evaluation.start",
        "clerk": CLERK,
        "stage": "accept",
        "cases": [dict(CASE, kind="promise", serial="4405002026112600002")],
    },
    {
        "type": "evaluation.start",
        "clerk": CLERK,
        "stage": "deliver",
        "cases": [dict(CASE, serial="S-1"), dict(CASE, serial="S-2")],
        "agencies": ["汕头市公安局", "汕头市自然资源局"],
    },
    {
        "type": "evaluation.start",
        "clerk": CLERK,
        "stage": "deliver",
        "theme": {"code": "T01", "name": "开餐馆"},
        "cases": [
            dict(CASE, serial="T-1", matter_code="M1", matter_name="食品经营许可证核发"),
            dict(CASE, serial="T-2", matter_code="M2", matter_name="公众聚集场所投入使用"),
        ],
    },
    {
        "type": "evaluation.start",
        "clerk": CLERK,
        "stage": "deliver",
        "cases": [CASE],
        "assess_number": 2,
    },
]

#: Values a hostile sender puts where a field goes.
HOSTILE_VALUES: list[Any] = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x1b[2J\x1b[31m红",
    "\x07\x08\x7f",
    "\t\r\n",
    "a\u202eb\u200b\ufeff",
    "\ud800",
    "a\udfffb",
    "\ud83d",
    "😀" * 60,
    "汉" * 300,
    "x" * 3000,
    "\u0301" * 50,
    10**30,
    -1,
    0,
    1.5,
    float("nan"),
    None,
    True,
    [],
    {},
    [[[[[]]]]],
    {"id": "\ud800"},
]


def nested(depth: int, rng: random.Random) -> bytes:
    kind = rng.choice(["list", "object", "mixed"])
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    out, close = b"", b""
    for _ in range(depth):
        if rng.random() < 0.5:
            out, close = out + b"[", b"]" + close
        else:
            out, close = out + b'{"k":', b"}" + close
    return out + b"0" + close


def dumps(obj: Any, rng: random.Random) -> bytes:
    """JSON the way different senders write it (lone surrogates travel as \\u escapes)."""
    text = json.dumps(obj, ensure_ascii=rng.random() < 0.5, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    obj[path[0]] = _set(obj[path[0]], path[1:], value)
    return obj


def _valid(rng: random.Random, n: int) -> dict[str, Any]:
    starts = [v for v in VALID if v["type"] == "evaluation.start"]
    pool = starts if rng.random() < 0.5 else VALID  # most of the surface is in start
    request = json.loads(json.dumps(rng.choice(pool)))
    request = {"id": rng.choice([n, f"r{n}", n * 7919 % 100003]), **request}
    if request["type"] == "evaluation.start":  # a new case each time: no already_rated
        for i, case in enumerate(request["cases"]):
            case["serial"] = f"F{n}-{i}"
    return request


def byte_mutation(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # flip bits
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:  # insert a structural or hostile byte
            buf[pos:pos] = bytes([rng.choice(b'[]{}",:\\\x00\x1b\xff\xc3\n\r')])
        elif op == 2 and buf:  # delete a run
            del buf[pos : pos + rng.randint(1, 8)]
        elif op == 3 and buf:  # duplicate a run
            end = min(len(buf), pos + rng.randint(1, 32))
            buf[pos:pos] = buf[pos:end]
        else:  # truncate
            del buf[pos:]
    return bytes(buf)


def frame(rng: random.Random, n: int) -> tuple[str, bytes]:
    """One generated frame (no trailing newline; it may contain newlines) and its class."""
    roll = rng.random()
    if roll < 0.07:
        return "random_bytes", rng.randbytes(rng.randint(0, 300))
    if roll < 0.17:
        return "valid", dumps(_valid(rng, n), rng)
    if roll < 0.30:
        return "byte_mutation", byte_mutation(dumps(_valid(rng, n), rng), rng)
    if roll < 0.52:
        request = _valid(rng, n)
        paths = [p for p in _paths(request) if p and p[0] not in ("id", "type")] or [("x",)]
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            with contextlib.suppress(KeyError, IndexError, TypeError):
                _set(request, path, copy.deepcopy(rng.choice(HOSTILE_VALUES)))
        return "value_swap", dumps(request, rng)
    if roll < 0.60:
        request = _valid(rng, n)
        key = rng.choice(["id", "type", "clerk", "cases", "x", "stage"])
        body = dumps({k: v for k, v in request.items() if k != key}, rng)[:-1]
        sep = b"," if body != b"{" else b""
        deep = nested(rng.choice([33, 40, 100, 999, 2000]), rng)
        return "deep_nesting", body + sep + json.dumps(key).encode() + b":" + deep + b"}"
    if roll < 0.64:
        head = rng.choice([b"", b'{"id":1,"type":"status","x":', b'{"ids":'])
        return "deep_nesting", head + rng.choice([b"[", b"{", b'{"a":']) * rng.choice([50, 800])
    if roll < 0.72:
        request = _valid(rng, n)
        request["id"] = rng.choice(
            ["\ud800", "a\udc00", "i" * 200, 10**20, -(10**19), 1.5, True, None, [], {}]
        )
        return "bad_id", dumps(request, rng)
    if roll < 0.80:
        raw = dumps(_valid(rng, n), rng)
        quote = raw.find(b':"')
        junk = rng.choice([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
        at = quote + 2 if quote >= 0 else rng.randrange(len(raw) + 1)
        return "invalid_utf8", raw[:at] + junk + raw[at:]
    if roll < 0.88:
        request = _valid(rng, n)
        paths = [
            p
            for p in _paths(request)
            if p and p[0] not in ("id", "type") and isinstance(_get(request, p), str)
        ] or [("type",)]
        text = "".join(chr(rng.choice([*range(0, 32), 127, *range(128, 160)])) for _ in range(6))
        _set(request, rng.choice(paths), "名" + text + "字")
        raw = dumps(request, rng)
        if rng.random() < 0.3:  # raw control bytes inside a string: invalid JSON
            raw = raw.replace(b"\\u0000", b"\x00").replace(b"\\u001b", b"\x1b")
        return "control_chars", raw
    if roll < 0.93:
        request = _valid(rng, n)
        request["pad"] = "x" * rng.choice([4000, 4100, 9000, 70000])
        return "over_long", dumps(request, rng)
    return "spliced", dumps(_valid(rng, n), rng)[: rng.randint(0, 80)] + byte_mutation(
        dumps(_valid(rng, n + 1), rng), rng
    )


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def frames(count: int, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    return [frame(rng, n) for n in range(count)]


# -- the real parts ----------------------------------------------------------------------------


def make_app(work: Path, name: str) -> Any:
    from evaluator.app import App
    from evaluator.config import load_config

    override = work / f"{name}.toml"
    override.write_text(
        f'[device]\nid = "fuzz-{name}"\nwindow = "3号窗口"\n[counter]\nport = ""\n'
        f'[mqtt]\nenabled = false\n[storage]\npath = "{work / name / "ratings.db"}"\n',
        encoding="utf-8",
    )
    return App(load_config([REPO / "config" / "demo.toml", override]))


def count_ratings(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM ratings").fetchone()[0])


@dataclass
class Figures:
    frames: int = 0
    link_frames: int = 0
    classes: Tally[str] = field(default_factory=Tally)
    decoded: int = 0  # requests (frames that became a Message)
    refused_frames: int = 0  # frames refused by the framer/decoder
    accepted: Tally[str] = field(default_factory=Tally)  # ok replies by type
    refused: Tally[str] = field(default_factory=Tally)  # error replies by code
    rendered: int = 0
    crashes: Tally[str] = field(default_factory=Tally)  # "step: ExceptionType"
    examples: dict[str, str] = field(default_factory=dict)
    level_leaks: int = 0
    ratings: int = 0
    link_replies: int = 0
    link_expected: int = 0  # one reply per frame/request, plus the cancels and final statuses
    link_bad_lines: int = 0
    link_caught: int = 0
    link_alive: bool = False
    seconds: float = 0.0

    @property
    def crashed(self) -> int:
        return sum(self.crashes.values())

    @property
    def ok(self) -> bool:
        return (
            self.crashed == 0
            and self.ratings == 0
            and self.level_leaks == 0
            and self.link_bad_lines == 0
            and self.link_replies == self.link_expected
            and self.link_alive
        )

    def crash(self, step: str, exc: BaseException, data: bytes) -> None:
        key = f"{step}: {type(exc).__name__}"
        self.crashes[key] += 1
        self.examples.setdefault(key, f"{exc!s:.120} <- {data[:120]!r}")

    def table(self) -> str:
        rows = [
            ("frames tried (in process)", self.frames),
            ("  requests decoded", self.decoded),
            ("  frames refused (malformed, too long)", self.refused_frames),
            ("  requests accepted", sum(self.accepted.values())),
            ("  requests refused", sum(self.refused.values())),
            ("  rating screens drawn", self.rendered),
            ("crashed (uncaught exception)", self.crashed),
            ("replies carrying a level", self.level_leaks),
            ("ratings made", self.ratings),
            ("frames through the pty link", self.link_frames),
            ("  replies read by the counter", self.link_replies),
            ("  replies expected (one per request)", self.link_expected),
            ("  reply lines not UTF-8 JSON", self.link_bad_lines),
            ("  exceptions the link caught", self.link_caught),
            ("link alive at the end", "yes" if self.link_alive else "NO"),
            ("seconds", f"{self.seconds:.1f}"),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [f"{label:<{width}}  {value}" for label, value in rows]
        lines.append(
            "frame classes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.classes.items()))
        )
        lines.append("accepted: " + ", ".join(f"{k} {v}" for k, v in sorted(self.accepted.items())))
        lines.append("refused: " + ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items())))
        for key, count in self.crashes.most_common():
            lines.append(f"CRASH {key} ×{count}: {self.examples[key]}")
        return "\n".join(lines)


def _tally_reply(figures: Figures, request_type: str, reply: dict[str, Any]) -> None:
    if reply.get("ok"):
        figures.accepted[request_type] += 1
    else:
        figures.refused[str(reply.get("error", {}).get("code"))] += 1
    text = json.dumps(reply, ensure_ascii=True)
    if '"level"' in text or "satisf" in text:
        figures.level_leaks += 1


def run_in_process(items: list[tuple[str, bytes]], work: Path, figures: Figures) -> None:
    from evaluator.rules.protocol import BadFrame, LineFramer, Message, decode, encode, reply_error
    from kiosk.screen import Screen

    app = make_app(work, "inproc")
    screen = Screen(driver="dummy")
    framer = LineFramer()
    cancel = Message("fuzz-cancel", "evaluation.cancel", {})
    try:
        for _, data in items:
            figures.frames += 1
            try:
                pieces = list(framer.feed(data + b"\n"))
            except Exception as exc:
                figures.crash("framer", exc, data)
                framer = LineFramer()
                continue
            for piece in pieces:
                try:
                    item = piece if isinstance(piece, BadFrame) else decode(piece)
                except Exception as exc:
                    figures.crash("decode", exc, data)
                    continue
                if isinstance(item, BadFrame):
                    figures.refused_frames += 1
                    reply = reply_error(item.id, item.error)
                    rtype = "-"
                else:
                    figures.decoded += 1
                    try:
                        reply = app.handle(item)
                    except Exception as exc:
                        figures.crash(f"App.handle {item.type}", exc, data)
                        continue
                    rtype = item.type
                _tally_reply(figures, rtype, reply)
                try:
                    json.loads(encode(reply).decode("utf-8"))
                except Exception as exc:
                    figures.crash("encode", exc, data)
                if rtype == "evaluation.start" and reply.get("ok"):
                    try:
                        screen.render(app.view())
                        figures.rendered += 1
                    except Exception as exc:
                        figures.crash("Screen.render", exc, data)
                    with contextlib.suppress(Exception):
                        app.handle(cancel)
        figures.ratings += count_ratings(app.store.path)
    finally:
        screen.close()
        app.shutdown()


class _Caught(logging.Handler):
    """Counts the exceptions the counter link had to catch (logged with a traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.count += 1


def run_through_link(items: list[tuple[str, bytes]], work: Path, figures: Figures) -> None:
    import serial

    from evaluator.rules.errors import RequestError
    from evaluator.rules.protocol import reply_error
    from kiosk.counter import CounterLink
    from tests.support import PtyPair

    app = make_app(work, "link")
    pty = PtyPair(work, 0)
    inbox: queue.Queue[Any] = queue.Queue()
    link = CounterLink(str(pty.device), reconnect=0.2, on_message=inbox.put)
    caught = _Caught()
    logging.getLogger("kiosk.counter").addHandler(caught)
    # A dead link stops reading: the pty fills up and a write would block for ever.
    counter = serial.Serial(str(pty.counter), timeout=0.05, write_timeout=3)
    lines: list[bytes] = []
    stop = threading.Event()
    sent = Tally[str]()  # replies the pad must write besides one per frame

    def read_replies() -> None:
        buf = b""
        while not stop.is_set():
            with contextlib.suppress(serial.SerialException, OSError):
                buf += counter.read(65536)
            *done, buf = buf.split(b"\n")
            lines.extend(done)

    def write_frames() -> None:
        for _, data in items:
            try:
                counter.write(data + b"\n")
            except serial.SerialTimeoutException:
                return  # the pad no longer reads: reported as a dead link below
            figures.link_frames += 1

    def answer_until(done: Callable[[], bool]) -> None:
        while not done():
            try:
                message = inbox.get(timeout=0.05)
            except queue.Empty:
                continue
            try:
                reply = app.handle(message)
            except Exception as exc:
                figures.crash(f"link App.handle {message.type}", exc, repr(message).encode())
                reply = reply_error(message.id, RequestError("storage", "fuzz: handler crashed"))
            link.send(reply)
            if message.type == "evaluation.start" and reply.get("ok"):
                sent["cancel"] += 1
                link.send(app.handle(type(message)("c", "evaluation.cancel", {})))

    reader = threading.Thread(target=read_replies, daemon=True)
    writer = threading.Thread(target=write_frames, daemon=True)
    try:
        link.start()
        if not link.connected.wait(10):
            raise RuntimeError(f"the link did not open {pty.device}: {link.last_error}")
        reader.start()
        writer.start()
        answer_until(lambda: not writer.is_alive() and inbox.empty())
        # Then: does the link still answer?  Ask until a status reply arrives (10 s at most).
        deadline = time.monotonic() + 10
        attempt = 0
        alive = False
        while time.monotonic() < deadline and not alive:
            attempt += 1
            rid = f"final-status-{attempt}"
            sent["status"] += 1
            with contextlib.suppress(serial.SerialTimeoutException):
                counter.write(json.dumps({"id": rid, "type": "status"}).encode() + b"\n")
            until = time.monotonic() + 0.5
            answer_until(lambda until=until: time.monotonic() > until)
            alive = any(f'"id":"{rid}"'.encode() in line for line in list(lines))
        figures.link_alive = alive and link.is_alive()
        # Late replies (an earlier status attempt): read until the line is quiet for 0.5 s.
        quiet_since, count = time.monotonic(), len(lines)
        while time.monotonic() - quiet_since < 0.5:
            answer_until(lambda: inbox.empty())
            time.sleep(0.05)
            if len(lines) != count:
                quiet_since, count = time.monotonic(), len(lines)
    finally:
        stop.set()
        link.stop()
        with contextlib.suppress(Exception):  # (join() raised while Thread._stop was shadowed)
            link.join(5)
        reader.join(5)
        logging.getLogger("kiosk.counter").removeHandler(caught)
        counter.close()
        pty.stop()
        figures.ratings += count_ratings(app.store.path)
        app.shutdown()
    figures.link_caught = caught.count
    figures.link_expected = sum(sent.values())
    for line in lines:
        try:
            json.loads(line.decode("utf-8"))
            figures.link_replies += 1
        except ValueError:
            figures.link_bad_lines += 1


def run_campaign(count: int, *, seed: int, work: Path, link_frames: int | None = None) -> Figures:
    started = time.monotonic()
    items = frames(count, seed)
    figures = Figures()
    figures.classes.update(name for name, _ in items)
    # One line per request otherwise; the levels are put back after, so a test run later in
    # the same process still sees the pad's log (tests assert on it).
    quiet = [logging.getLogger(name) for name in ("evaluator", "kiosk")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    try:
        (work / "inproc").mkdir(parents=True, exist_ok=True)
        (work / "link").mkdir(parents=True, exist_ok=True)
        run_in_process(items, work, figures)
        through_link = items[: link_frames if link_frames is not None else count]
        run_through_link(through_link, work, figures)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    if len(through_link) == count:  # same frames, same order: the same replies are due
        figures.link_expected += figures.decoded + figures.refused_frames
    else:
        figures.link_expected = figures.link_replies  # not comparable: not checked
    figures.seconds = time.monotonic() - started
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--link-frames", type=int, default=None, help="default: all frames")
    args = parser.parse_args(argv)
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as tmp:
        figures = run_campaign(
            args.frames, seed=args.seed, work=Path(tmp), link_frames=args.link_frames
        )
    print(f"serial fuzz, {dt.date.today().isoformat()}, seed {args.seed}")
    print(figures.table())
    print("OK" if figures.ok else "FAILED")
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
