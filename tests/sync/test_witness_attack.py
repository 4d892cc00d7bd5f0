"""The audit's attack on art. 40, end to end (issue 15): the city flags a pad whose newest 差评
was deleted on its SD card.

Real parts: the pad is ``evaluator run`` (a real X window on Xvfb, real key presses and clicks
by xdotool), its counter a socat pty pair, its broker unreachable while the citizens rate; the
counter keeps the ``head`` of every ``rated`` (what a business system collects for
``evaluator hub witness``).  The pad is stopped; the newest rating, a 非常不满意, is deleted from
its store with the SQLite triggers dropped (every row that names it, so nothing on the pad can
tell); then

* (a) one more rating is given, reusing the deleted seq (the chain verifies); or
* (b) nothing more is rated;

then the broker comes up, the pad reconnects and ``evaluator hub run`` stores everything with
no dead letter, as the audit found.  With the heads imported before or after the records
arrive, the city flags the device: (a) ``head_contradicted`` at the reused seq, (b)
``head_regressed`` from the head the pad reports in its status; ``hub figures`` says so.
Without the witness nothing is flagged (today's code: no ``head`` at all, no ``hub witness``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.levels import Level
from sync.hub.db import open_db
from sync.keys import DeviceKey
from tests.conftest import Broker, Display, PtyPair
from tests.evaluator.apps import START_BODY, demo_app
from tests.evaluator.test_app import Counter, press_key
from tests.support import REPO, start_pad, stop_pad, stop_process, wait_for

DEVICE = "witness-0001"
PREFIX = "hcp/v1"
#: Seconds the test waits for a consistent state (the machine is shared).
SETTLE = 90.0


def override(tmp: Path, name: str, *, counter: str, broker: Broker) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(
        f"""
[device]
id = "{DEVICE}"
key_file = "{tmp / "device.key"}"

[counter]
port = "{counter}"
reconnect = "200ms"

[mqtt]
host = "{broker.host}"
port = {broker.port}
resend_after = "2s"
status_every = "5s"

[storage]
path = "{tmp / "ratings.db"}"

[session]
press_guard = "0s"

[screen]
driver = "auto"
""",
        encoding="utf-8",
    )
    return path


class Pad:
    """``evaluator run`` as a child process, its log kept for failure messages."""

    def __init__(self, tmp: Path, config: Path, name: str, display: str | None) -> None:
        self.log = tmp / f"{name}.log"
        self._file = self.log.open("wb")
        self.display = display
        self.process = start_pad(config, self._file, display=display)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        code = stop_pad(self.process, 15)
        self._file.close()
        assert code == 0, self.output()


@pytest.fixture
def reasons_click() -> Iterator[Any]:
    """Where a citizen clicks on the 非常不满意 reason screen (its first reason, then 提交): the
    layout of the same demo configuration at the same size, laid out by a pad in this process."""
    import tempfile

    from kiosk.screen import Screen
    from kiosk.view import PressLevel, Submit, ToggleReason

    with tempfile.TemporaryDirectory() as tmp:
        app = demo_app(Path(tmp), DEVICE, extra='[session]\npress_guard = "0s"\n')
        app.screen = Screen(driver="dummy")
        try:
            assert app.handle(_message(1, "evaluation.start", START_BODY))["ok"]
            app._show()
            app.act(PressLevel(Level.VERY_DISSATISFIED))
            app._show()
            layout = app.screen.layout
            assert layout.screen == "reasons"
            reason = next(t for t in layout.targets if isinstance(t.action, ToggleReason))
            app.act(reason.action)
            app._show()
            submit = app.screen.layout.find(Submit())
            yield [reason.rect.center, submit.rect.center]
        finally:
            app.shutdown()


def _message(rid: int, rtype: str, body: dict[str, Any]) -> Any:
    from evaluator.rules.protocol import Message

    return Message(rid, rtype, dict(body))


def click(display: str, pad: Pad, at: tuple[int, int]) -> None:
    """A real mouse click (XTEST) at ``at`` in the pad's window."""
    env = {**os.environ, "DISPLAY": display}
    wid = subprocess.run(
        ["xdotool", "search", "--sync", "--pid", str(pad.process.pid)],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    ).stdout.split()[0]  # fmt: skip
    subprocess.run(["xdotool", "mousemove", "--window", wid, str(at[0]), str(at[1]), "click", "1"],
                   env=env, timeout=10, check=True)  # fmt: skip


def rate(counter: Counter, display: Display, pad: Pad, n: int, key: str, clicks: list) -> dict:
    """The clerk starts case ``n``, the citizen presses ``key`` (and for a 差评 clicks a reason
    and 提交); the ``evaluation.finished`` the counter reads."""
    case = dict(START_BODY["cases"][0], serial=f"4405002026120700{n:03d}")
    counter.send({"id": n, "type": "evaluation.start", **START_BODY, "cases": [case]})
    reply = counter.expect(lambda f: f.get("id") == n, timeout=30)
    assert reply["ok"] is True, reply
    press_key(display, pad, key)  # type: ignore[arg-type]
    for at in clicks:
        click(display.name, pad, at)
    finished = counter.expect(lambda f: f.get("event") == "evaluation.finished", timeout=60)
    assert finished["outcome"] == "rated" and "head" in finished, finished
    return finished


def delete_newest_rating(store: Path) -> int:
    """What someone with the SD card can do: drop the triggers, delete the newest rating and
    every row that names it.  Returns its seq."""
    conn = sqlite3.connect(store)
    try:
        with conn:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
                conn.execute(f'DROP TRIGGER "{name}"')
            seq, rid = conn.execute(
                "SELECT seq, id FROM ratings ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            tables = [
                t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                columns = [c[1] for c in conn.execute(f'PRAGMA table_info("{table}")')]
                if "rating_id" in columns:
                    conn.execute(f'DELETE FROM "{table}" WHERE rating_id = ?', (rid,))
            conn.execute("DELETE FROM ratings WHERE id = ?", (rid,))
    finally:
        conn.close()
    return int(seq)


def hub(*args: str, db: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evaluator", "hub", *args, "--db", db],
        cwd=REPO, input=stdin.decode() if stdin else None, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("witness_first", [True, False], ids=["witness-first", "records-first"])
@pytest.mark.parametrize("rated_again", [True, False], ids=["rated-again", "nothing-since"])
def test_the_newest_bad_rating_deleted_offline_is_flagged_by_the_city(
    tmp_path: Path,
    pty_pair: PtyPair,
    broker: Broker,
    xvfb: Display,
    reasons_click: list,
    rated_again: bool,
    witness_first: bool,
) -> None:
    broker.stop()  # the hall is offline while the citizens rate
    db_url = f"sqlite:///{tmp_path / 'hub.db'}"
    store = tmp_path / "ratings.db"
    first = override(tmp_path, "first", counter=pty_pair.device, broker=broker)

    pad = Pad(tmp_path, first, "first", xvfb.name)
    counter = Counter(pty_pair.counter)
    counter.wait_ready()
    told = [rate(counter, xvfb, pad, n, key, []) for n, key in ((1, "1"), (2, "2"), (3, "1"))]
    told.append(rate(counter, xvfb, pad, 4, "5", reasons_click))  # 非常不满意, the newest
    pad.stop()
    heads = [f["head"] for f in told]
    assert [h["seq"] for h in heads] == [1, 2, 3, 4]
    # what the counter learnt tells no level: the same fields for the 好评 and the 差评
    assert {tuple(sorted(f)) for f in told} == {("event", "head", "outcome", "serials")}
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as conn:
        levels = [r[0] for r in conn.execute("SELECT level FROM ratings ORDER BY seq")]
    assert levels[-1] == "very_dissatisfied"

    assert delete_newest_rating(store) == 4
    if rated_again:
        pad = Pad(tmp_path, first, "again", xvfb.name)
        counter.wait_ready()
        again = rate(counter, xvfb, pad, 5, "1", [])
        assert again["head"]["seq"] == 4 and again["head"]["hash"] != heads[-1]["hash"]
        pad.stop()
    expected = 4 if rated_again else 3

    # The city: the pad registered, its receiver running; the business system's file of heads
    # (the events as the counter read them, from before the deletion).
    key = DeviceKey.load(tmp_path / "device.key")
    assert hub("register", DEVICE, key.public.text, db=db_url).returncode == 0
    witness_file = tmp_path / "heads.jsonl"
    witness_file.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in told))
    if witness_first:
        done = hub("witness", str(witness_file), db=db_url)
        assert "4 head(s) kept" in done.stdout, done.stdout + done.stderr
    broker.start()
    log = (tmp_path / "hub.log").open("wb")
    receiver = subprocess.Popen(
        [sys.executable, "-m", "evaluator", "hub", "run", "--db", db_url,
         "--broker", f"mqtt://{broker.host}:{broker.port}"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    later = override(tmp_path, "later", counter="", broker=broker)
    pad = Pad(tmp_path, later, "online", None)
    city = open_db(db_url)
    try:
        wait_for(lambda: city.count("ratings") == expected, SETTLE, "the pad's ratings")
        assert city.dead() == []  # the attack: the city took everything
        assert [r["seq"] for r in city.records(DEVICE)] == list(range(1, expected + 1))
        wait_for(lambda: DEVICE in city.statuses(), SETTLE, "the pad's status")
        if not witness_first:
            done = hub("witness", "-", db=db_url, stdin=witness_file.read_bytes())
            assert "4 head(s) kept" in done.stdout, done.stdout + done.stderr
        kind = "head_contradicted" if rated_again else "head_regressed"
        wait_for(lambda: [f["kind"] for f in city.flags(DEVICE)] == [kind], SETTLE,
                 f"the device flagged {kind}")  # fmt: skip
        (found,) = city.flags(DEVICE)
        epoch = heads[-1]["epoch"]  # the store's epoch (issue 15 B), in every head it signs
        assert epoch and found["key"] == f"{epoch}:4"
        if rated_again:
            assert found["detail"]["witnessed"] == [heads[-1]["hash"]]
            # found in the stored record, or first in the head the pad's status reports
            detail = found["detail"]
            assert detail.get("stored_hash", detail.get("reported_hash")) == again["head"]["hash"]
        else:
            assert (found["detail"]["reported_seq"], found["detail"]["witnessed_seq"]) == (3, 4)
        listed = hub("flags", "--device", DEVICE, db=db_url)
        assert listed.returncode == 1 and kind in listed.stdout
        figures = hub("figures", db=db_url)
        assert "WARNING" in figures.stdout and DEVICE in figures.stdout, figures.stdout
        data = json.loads(hub("figures", "--json", db=db_url).stdout)
        assert data["audit"]["devices_with_findings"] == {DEVICE: [kind]}
    finally:
        city.close()
        pad.stop()
        stop_process(receiver)
        log.close()
