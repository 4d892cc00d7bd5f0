"""The attacks of ``test_attack_losses.py`` on the real thing: real mosquitto, a REAL ``evaluator
hub run`` and the pads' real sync workers.  Each pad's card fails (or is written to) in another
place the loss statements introduced: the kept statement's signature, its row's lost_hash, a
row in ``losses`` nobody signed over an intact rating, an outbox row's id, a misdirected write
with a long id, an outbox row deleted (and its rating with it: the city names the seq missing
in its ack, and the pad sends it from its table or states it lost).  Then every outbox empties
by the city's acks, the city holds every seq, each intact record as the pad sealed it, and
nobody acts."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from evaluator.rules.loss import is_loss
from sync.hub.db import open_db
from sync.keys import DeviceKey
from sync.mqtt import SyncWorker
from sync.store import Store
from tests.support import Broker, SupportError, stop_threads, wait_for
from tests.sync.test_losses import RATINGS, _flip, _pad, hub  # noqa: F401 - the hub fixture

SEQ = 5
_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _kept(store: Store, key: DeviceKey) -> str:
    """Damage ratings SEQ and have its statement made and kept; the kept text."""
    store.conn.execute("DROP TRIGGER ratings_no_update")
    _flip(store, "ratings", SEQ, "text")
    store.signer = key
    assert store.outbox_page(100).stated == (SEQ,)
    store.conn.execute("DROP TRIGGER losses_no_update")
    (text,) = store.conn.execute("SELECT record FROM losses WHERE seq = ?", [SEQ]).fetchone()
    return str(text)


def _attack(kind: str, path: Path, device_id: str, key: DeviceKey) -> set[int]:
    """Do ``kind`` to the pad's store; the ratings seqs the city should hold as statements."""
    with Store(path, device_id=device_id) as store:
        if kind == "kept signature":
            text = _kept(store, key).encode()
            start = text.index(b'"sig":"') + 7
            at = next(i for i in range(start, start + 86) if text[i] ^ 1 in _B64)
            data = bytearray(text)
            data[at] ^= 1
            store.conn.execute("UPDATE losses SET record = ? WHERE seq = ?", [data.decode(), SEQ])
        elif kind == "kept lost_hash column":
            _kept(store, key)
            store.conn.execute("UPDATE losses SET lost_hash = ? WHERE seq = ?", ["e" * 64, SEQ])
        elif kind == "forged row":
            (rid,) = store.conn.execute("SELECT id FROM ratings WHERE seq = ?", [SEQ]).fetchone()
            store.conn.execute(
                "INSERT INTO losses (stream, seq, id, lost_hash, problem, stated_at, record)"
                " VALUES ('ratings', ?, ?, ?, 'p', 'now', 'junk')", [SEQ, rid, "2" * 64],
            )  # fmt: skip
        elif kind == "outbox id":
            store.conn.execute("PRAGMA foreign_keys = OFF")
            store.conn.execute("UPDATE outbox SET rating_id = rating_id || 'x' WHERE seq = ?",
                               [SEQ])  # fmt: skip
            store.conn.execute("UPDATE event_outbox SET event_id = event_id || 'x' WHERE seq = 2")
        elif kind == "long id":
            store.conn.execute("DROP TRIGGER ratings_no_update")
            (text,) = store.conn.execute(
                "SELECT record FROM ratings WHERE seq = ?", [SEQ]
            ).fetchone()
            other = {**json.loads(text), "id": "7" * 3000}
            store.conn.execute("UPDATE ratings SET record = ? WHERE seq = ?",
                               [json.dumps(other), SEQ])  # fmt: skip
        elif kind in ("outbox row deleted", "rating and outbox rows deleted"):
            store.conn.execute("PRAGMA foreign_keys = OFF")
            for table in ("outbox", "ratings")[: 1 if kind == "outbox row deleted" else 2]:
                store.conn.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
                store.conn.execute(f"DELETE FROM {table} WHERE seq = ?", [SEQ])
        store.conn.commit()
    stated = ("kept signature", "kept lost_hash column", "long id")
    return {SEQ} if kind in (*stated, "rating and outbox rows deleted") else set()


KINDS = ("kept signature", "kept lost_hash column", "forged row", "outbox id", "long id",
         "outbox row deleted", "rating and outbox rows deleted")  # fmt: skip


def test_damage_to_what_the_loss_statements_added_never_silences_a_real_pad(
    tmp_path: Path,
    broker: Broker,
    hub: str,  # noqa: F811 - the fixture
) -> None:
    pads = []
    with open_db(hub) as db:
        for kind in KINDS:
            device_id = f"pad-{kind.replace(' ', '-').replace('_', '-')}"
            key = DeviceKey.create(tmp_path / f"{device_id}.key")
            db.register(device_id, key.public.text)
            path, texts = _pad(tmp_path, device_id, key)
            lost = _attack(kind, path, device_id, key)
            pads.append((device_id, path, texts, lost, key))
    with ExitStack() as stack:
        workers: list[SyncWorker] = []
        stack.callback(stop_threads, workers, 10)
        for device_id, path, _texts, _lost, key in pads:
            worker = SyncWorker(
                store_path=path, device_id=device_id, host=broker.host, port=broker.port,
                max_rate=1000.0, resend_after=2.0, reconnect_min=0.2, reconnect_spread=0.0,
                signer=key,
            )  # fmt: skip
            workers.append(worker)
            worker.start()
        stores = [stack.enter_context(Store(p, device_id=d)) for d, p, _t, _l, _k in pads]

        def left() -> dict[str, int]:
            return {
                d: s.outbox_size() + s.event_outbox_size()
                for (d, *_), s in zip(pads, stores, strict=True)
                if s.outbox_size() + s.event_outbox_size()
            }

        try:
            wait_for(lambda: not left(), 60, "every outbox emptied by the city's acks")
        except SupportError as exc:
            raise AssertionError(f"{exc}: still unacked {left()}") from exc
    with open_db(hub) as db:
        for device_id, _path, texts, lost, _key in pads:
            held = {
                int(q): str(t)
                for q, t in db.rows(
                    "SELECT seq, record FROM hub_records WHERE device_id = ? AND"
                    " stream = 'ratings' ORDER BY seq",
                    (device_id,),
                )
            }
            assert sorted(held) == list(range(1, RATINGS + 1)), device_id
            stated = {q for q, t in held.items() if is_loss(json.loads(t))}
            assert stated == lost, device_id
            for seq in set(held) - lost:
                assert held[seq] == texts["ratings"][seq], (device_id, seq)
        assert db.parked() == 0
        assert [d["reason"] for d in db.dead()] == []
