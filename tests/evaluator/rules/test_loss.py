"""The rules of loss statements (evaluator/rules/loss.py, issue 15): the statement's shape,
seal and signature, the check of a record on its own and against the chain, the chain hash of a
lost record, and the published schema agreeing with what the builder makes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evaluator.rules.loss import (
    LOSS_FIELDS,
    MAX_DAMAGED,
    chain_problem,
    is_loss,
    lost_chain_hash,
    make_statement,
    self_problem,
    statement_problem,
)
from evaluator.rules.records import (
    GENESIS_HASH,
    new_record_id,
    record_hash,
    seal,
    signature_of,
)
from sync.keys import DeviceKey

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "loss.schema.json"
STAMP = "2026-05-29T04:26:47.400+08:00"


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return DeviceKey.create(tmp_path / "device.key")


def records(key: DeviceKey, n: int = 4) -> list[dict[str, Any]]:
    out, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        rec = seal({"id": f"r{seq}", "seq": seq, "device_id": "d1", "level": "satisfied"},
                   prev_hash=prev, signer=key)  # fmt: skip
        prev = rec["hash"]
        out.append(rec)
    return out


def statement(key: DeviceKey, **extra: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        id="r2", seq=2, device_id="d1", prev_hash="a" * 64, lost_hash="b" * 64,
        problem="content does not match its hash", stated_at=STAMP, clock_synced=False,
        damaged="x" * 5000, signer=key,
    )  # fmt: skip
    args.update(extra)
    return make_statement(**args)


def test_a_statement_is_sealed_signed_and_carries_the_damage_cut(key: DeviceKey) -> None:
    made = statement(key)
    assert is_loss(made) and set(made) == set(LOSS_FIELDS)
    assert made["hash"] == record_hash(made) and made["key_id"] == key.key_id
    assert key.public.check(made["hash"].encode(), signature_of(made) or b"")
    assert len(made["damaged"]) == MAX_DAMAGED and statement_problem(made) is None
    assert "epoch" not in made
    assert statement(key, epoch="e1")["epoch"] == "e1"
    again = statement(key)
    assert again == made  # the same inputs: the same bytes (Ed25519 is deterministic)


def test_the_published_schema_takes_the_statement_and_refuses_what_it_lacks(
    key: DeviceKey,
) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(statement(key), schema)
    jsonschema.validate(statement(key, epoch=new_record_id(), damaged=""), schema)
    with pytest.raises(jsonschema.ValidationError):  # an epoch is an id, never a pad's words
        jsonschema.validate(statement(key, epoch="e1", damaged=""), schema)
    assert set(schema["required"]) == set(LOSS_FIELDS)
    for name in LOSS_FIELDS:
        broken = {k: v for k, v in statement(key).items() if k != name}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_every_single_change_of_a_record_is_a_problem_of_its_own(key: DeviceKey) -> None:
    recs = records(key)
    check = key.public.check
    assert all(self_problem(r, key_id=key.key_id, check=check) is None for r in recs)
    target = recs[1]
    for name in target:
        changed = dict(target)
        value = changed[name]
        changed[name] = value + 1 if isinstance(value, int) else (
            ("A" if value[:1] != "A" else "B") + value[1:])  # fmt: skip
        assert self_problem(changed, key_id=key.key_id, check=check) is not None, name
    unsigned = {k: v for k, v in target.items() if k not in ("sig", "key_id")}
    unsigned["hash"] = record_hash(unsigned)
    assert self_problem(unsigned, key_id=key.key_id, check=check) is None  # the city decides
    other = dict(target, key_id="00000000")
    other["hash"] = record_hash(other)
    assert self_problem(other, key_id=key.key_id, check=check) is None  # well-formed only
    other["sig"] = "!" * 86
    assert "not well-formed" in (self_problem(other, key_id=key.key_id, check=check) or "")


def test_the_chain_hash_of_a_lost_record(key: DeviceKey) -> None:
    recs = records(key)
    assert chain_problem(recs[2], recs[1]["hash"]) is None
    assert chain_problem(recs[2], recs[0]["hash"]) is not None
    assert lost_chain_hash(recs[2], "c" * 64) == recs[1]["hash"]  # the next one says
    assert lost_chain_hash(None, "c" * 64) == "c" * 64  # none after: the row's hash column


def test_statement_problems_are_named(key: DeviceKey) -> None:
    good = statement(key)
    assert statement_problem(dict(good, kind="x")) == "not a loss statement"
    assert "lost_hash" in (statement_problem(dict(good, lost_hash="z")) or "")
    assert "hash" in (statement_problem(dict(good, problem="other")) or "")
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    assert "unsigned" in (statement_problem(unsigned) or "")
