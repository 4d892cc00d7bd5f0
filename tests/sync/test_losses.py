"""One bad byte on the SD card must not silence a window (issue 15, loss statements).

On a real mosquitto, a REAL ``evaluator hub run`` process and the pads' real sync workers over
real stores of ~40 signed records (ratings and events): a byte of stored records is flipped
behind the store's back (the append-only triggers dropped, as an SD card would not ask) at
every record of each stream, at many positions (inside the JSON text, the hash, the signature,
prev_hash, the opening brace: unreadable JSON, a high bit: no longer UTF-8).  Then every intact
record arrives and is acked, each damaged seq is stored as a signed loss statement and listed
by ``evaluator hub flags``, every outbox empties and the pad shows the fault records_lost;
nobody acts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from evaluator.rules.loss import is_loss
from evaluator.rules.records import record_hash
from sync.hub.db import open_db
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store
from tests.support import Broker, log_lines, stop_process, stop_threads, wait_for
from tests.sync.hub.helpers import rating_content

EVALUATOR = [sys.executable, "-m", "evaluator"]
RATINGS, EVENTS = 28, 12  # 40 records a pad
#: And the store's seq-1 ``epoch`` event (issue 15 B), an event like the others here.
EPOCH = 1
PADS = 7  # pad i damages every record whose seq % PADS == i: every record of each stream

#: Where the byte is flipped, in the stored JSON text (or the row's text as a whole).
POSITIONS = ("text", "hash", "sig", "prev_hash", "brace", "high_bit", "seq")


def _offset(text: bytes, where: str, seq: int) -> tuple[int, int]:
    """``(byte offset, xor mask)`` of the flip ``where`` in a record's stored text."""
    if where == "brace":
        return 0, 0x01  # "{" → "z": not JSON at all
    if where == "high_bit":
        return len(text) // 2, 0x80  # no longer UTF-8 (read back as U+FFFD)
    if where == "text":
        return len(text) // 3, 0x01
    field = {"hash": b'"hash":"', "sig": b'"sig":"', "prev_hash": b'"prev_hash":"',
             "seq": b'"seq":'}[where]  # fmt: skip
    start = text.index(field) + len(field)
    return start + (seq * 7) % 5 if where != "seq" else start, 0x02


def _flip(store: Store, table: str, seq: int, where: str) -> None:
    """Change one byte of the stored record ``seq`` of ``table``, as a failing SD card does."""
    (text,) = store.conn.execute(f"SELECT record FROM {table} WHERE seq = ?", [seq]).fetchone()
    data = bytearray(text.encode("utf-8"))
    at, mask = _offset(bytes(data), where, seq)
    data[at] ^= mask
    store.conn.execute(
        f"UPDATE {table} SET record = CAST(? AS TEXT) WHERE seq = ?", [bytes(data), seq]
    )
    store.conn.commit()


def _pad(tmp: Path, device_id: str, key: DeviceKey) -> tuple[Path, dict[str, dict[int, str]]]:
    """A pad's store of RATINGS ratings and EVENTS events, signed by ``key``; the stored text
    of each record by stream and seq (before any damage)."""
    path = tmp / f"{device_id}.db"
    with Store(path, device_id=device_id, signer=key) as store:
        for i in range(RATINGS):
            store.append_rating(rating_content(f"{device_id}-{i:04d}"))
            if i % 2 and i // 2 < EVENTS:
                store.append_event("tech_menu", {"event": "opened"})
        texts = {
            table: {
                int(q): str(t) for q, t in store.conn.execute(f"SELECT seq, record FROM {table}")
            }
            for table in ("ratings", "events")
        }
    assert len(texts["ratings"]) + len(texts["events"]) == RATINGS + EVENTS + EPOCH
    return path, texts


def _damage(path: Path, device_id: str, plan: dict[str, dict[int, str]]) -> None:
    with Store(path, device_id=device_id) as store:
        for trigger in ("ratings_no_update", "events_no_update"):
            store.conn.execute(f"DROP TRIGGER {trigger}")
        for table, flips in plan.items():
            for seq, where in flips.items():
                _flip(store, table, seq, where)


def _plans() -> list[dict[str, dict[int, str]]]:
    """What each pad damages: pad i every record whose seq % PADS == i, positions in turn; one
    pad more loses three records in a row, the newest rating among them."""
    plans: list[dict[str, dict[int, str]]] = []
    for i in range(PADS):
        plan: dict[str, dict[int, str]] = {}
        for table, count in (("ratings", RATINGS), ("events", EVENTS + EPOCH)):
            seqs = [q for q in range(1, count + 1) if q % PADS == i]
            plan[table] = {q: POSITIONS[(q + i) % len(POSITIONS)] for q in seqs}
        plans.append(plan)
    plans.append({"ratings": {RATINGS - 2: "hash", RATINGS - 1: "brace", RATINGS: "sig"},
                  "events": {1: "prev_hash", 2: "text"}})  # fmt: skip
    return plans


@pytest.fixture
def hub(tmp_path: Path, broker: Broker) -> Iterator[str]:
    """A real ``evaluator hub run`` on ``broker`` and a SQLite database: its URL, once it
    receives."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    out = (tmp_path / "hub.log").open("w+")
    process = subprocess.Popen(
        [*EVALUATOR, "hub", "run", "--db", url, "--broker", f"mqtt://{broker.host}:{broker.port}"],
        stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    try:
        wait_for(lambda: "receiving on" in (tmp_path / "hub.log").read_text(), 30, "the hub")
        yield url
    finally:
        stop_process(process, 10)
        out.close()


def test_every_damaged_record_is_stated_and_every_intact_one_delivered(
    tmp_path: Path, broker: Broker, hub: str
) -> None:
    plans = _plans()
    pads: list[tuple[str, Path, dict[str, dict[int, str]], dict[str, dict[int, str]]]] = []
    keys: dict[str, DeviceKey] = {}
    with open_db(hub) as db:
        for n, plan in enumerate(plans):
            device_id = f"pad-{n}"
            key = DeviceKey.create(tmp_path / f"{device_id}.key")
            db.register(device_id, key.public.text)
            path, texts = _pad(tmp_path, device_id, key)
            _damage(path, device_id, plan)
            pads.append((device_id, path, texts, plan))
            keys[device_id] = key
    workers: list[SyncWorker] = []
    with ExitStack() as stack:
        warnings = stack.enter_context(log_lines("sync"))
        stack.callback(stop_threads, workers, 10)
        for device_id, path, _texts, _plan in pads:
            worker = SyncWorker(
                store_path=path, device_id=device_id, host=broker.host, port=broker.port,
                max_rate=1000.0, resend_after=2.0, reconnect_min=0.2, reconnect_spread=0.0,
                signer=keys[device_id],
            )  # fmt: skip
            workers.append(worker)
            worker.start()
        stores = [stack.enter_context(Store(path, device_id=d)) for d, path, _t, _p in pads]

        def done() -> bool:
            return all(s.outbox_size() == 0 and s.event_outbox_size() == 0 for s in stores)

        wait_for(done, 90, "every outbox emptied by the city's acks")
        with open_db(hub) as db:
            flags = db.flags()
            for (device_id, _path, texts, plan), worker, store in zip(
                pads, workers, stores, strict=True
            ):
                for table in ("ratings", "events"):
                    held = {
                        int(q): str(t)
                        for q, t in db.rows(
                            "SELECT seq, record FROM hub_records WHERE device_id = ? AND"
                            " stream = ? ORDER BY seq",
                            (device_id, table),
                        )
                    }
                    assert sorted(held) == sorted(texts[table]), (device_id, table)
                    for seq, text in texts[table].items():
                        if seq not in plan[table]:  # intact: exactly the bytes the pad sealed
                            assert held[seq] == text, (device_id, table, seq)
                            continue
                        statement = json.loads(held[seq])
                        original = json.loads(text)
                        assert is_loss(statement) and statement["seq"] == seq
                        assert statement["id"] == original["id"]
                        assert statement["lost_hash"] == original["hash"]
                        assert statement["prev_hash"] == original["prev_hash"]
                        assert record_hash(statement) == statement["hash"]
                    mine = {
                        f["detail"]["seq"]
                        for f in flags
                        if f["device_id"] == device_id
                        and f["kind"] == "records_lost"
                        and f["detail"]["stream"] == table
                    }
                    assert mine == set(plan[table]), (device_id, table)
                expected = {(t, q) for t, flips in plan.items() for q in flips}
                assert set(worker.status.lost) == expected, device_id
                assert store.losses() == {t: sorted(plan[t]) for t in ("ratings", "events")}
                assert any(
                    device_id in line and "records lost" in line for line in warnings.messages()
                ), device_id
            assert db.parked() == 0
            assert [d for d in db.dead() if d["device_id"].startswith("pad-")] == []
    listed = subprocess.run(
        [*EVALUATOR, "hub", "flags", "--db", hub, "--json"], capture_output=True, text=True,
        timeout=60, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert listed.returncode == 1, listed.stderr
    keys_listed = {(f["device_id"], f["key"]) for f in json.loads(listed.stdout)}
    for device_id, path, _texts, plan in pads:
        with Store.open_read_only(path) as store:
            epoch = store.epoch  # every store made now has one (issue 15 B)
        for table, flips in plan.items():
            for seq in flips:
                assert (device_id, f"{table}:{epoch}:{seq}") in keys_listed



def test_a_real_pad_shows_the_fault_to_the_counter_the_menu_and_the_city(
    tmp_path: Path, broker: Broker, hub: str
) -> None:
    """The pad's App (its counter link, menu and sync worker as ``evaluator run`` makes them)
    over a store whose ratings seq 3 and event seq 2 were damaged while it was off."""
    from evaluator.app import App
    from evaluator.config import load_config
    from evaluator.rules.clock import FakeClock
    from kiosk import texts

    device_id = "pad-app"
    store_dir = tmp_path / "pad"
    store_dir.mkdir()
    key = DeviceKey.create(store_dir / "device.key")  # where the pad looks for it
    with open_db(hub) as db:
        db.register(device_id, key.public.text)
    path, texts_before = _pad(store_dir, device_id, key)
    plan = {"ratings": {3: "sig"}, "events": {2: "brace"}}
    _damage(path, device_id, plan)
    override = tmp_path / "pad.toml"
    override.write_text(
        f'[device]\nid = "{device_id}"\n[counter]\nport = "dummy://"\n'
        f'[mqtt]\nurls = ["mqtt://{broker.host}:{broker.port}"]\nstatus_every = "5s"\n'
        f"[storage]\npath = {json.dumps(str(path))}\n",
        encoding="utf-8",
    )
    repo = Path(__file__).resolve().parents[2]
    app = App(load_config([repo / "config" / "demo.toml", override]), clock=FakeClock())
    app.sync.start()
    try:
        with open_db(hub) as db:

            pad = Store.open_read_only(path)

            def city_knows() -> bool:
                status = db.statuses().get(device_id, (None, ""))[0] or {}
                return (
                    len(db.flags(device_id)) == 2
                    and bool(status.get("records_lost"))
                    and pad.outbox_size() + pad.event_outbox_size() == 0
                )

            try:
                wait_for(city_knows, 60, "the city's flags, the pad's status, acks applied")
            finally:
                pad.close()
            status = db.statuses()[device_id][0]
            assert status is not None
            assert status["records_lost"] == {"ratings": [3], "events": [2]}
            stored = db.rows(
                "SELECT count(*) FROM hub_records WHERE device_id = ?", (device_id,)
            )[0][0]
            assert stored == RATINGS + EVENTS + EPOCH
        before = len(app.link.sent)
        app.link.feed({"id": 1, "type": "status"})
        while len(app.link.sent) == before:
            app.step()
        assert "records_lost" in app.link.sent[before]["faults"]
        shown = dict(app.tech.info())[texts.get("tech_label_lost", "zh")]
        assert "ratings 3" in shown and "events 2" in shown
    finally:
        app.shutdown()
    told = subprocess.run(
        [*EVALUATOR, "status", "--db", str(path)], capture_output=True, text=True, timeout=60,
        cwd=repo,
    )  # fmt: skip
    assert told.returncode == 1, told.stderr
    assert "records_lost: ratings seq 3; events seq 2" in told.stdout
    assert "0 rating(s), 0 event(s) waiting" in told.stdout
    with Store(path, device_id=device_id) as store:  # the damaged rows are where they were
        rows = store.conn.execute("SELECT seq, record FROM ratings ORDER BY seq").fetchall()
        assert len(rows) == RATINGS and rows[2][1] != texts_before["ratings"][3]
        assert [r[1] for r in rows if r[0] != 3] == [
            t for q, t in sorted(texts_before["ratings"].items()) if q != 3
        ]
