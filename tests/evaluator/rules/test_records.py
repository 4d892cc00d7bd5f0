"""Specification of tamper-evident rating records (art. 35, 37, 40)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator.rules import records
from evaluator.rules.records import (
    CONTENT_FIELDS,
    GENESIS_HASH,
    RATING_FIELDS,
    STORE_FIELDS,
    ChainBreak,
    RatingContent,
    SignatureReport,
    canonical_json,
    new_record_id,
    record_hash,
    seal,
    signature_report,
    verify_chain,
)

UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HEX64_RE = re.compile(r"^[0-9a-f]{64}$")


def content(seq: int) -> dict[str, Any]:
    """A realistic rating (every published field except the chain fields)."""
    return {
        "id": f"0190f0a0-0000-7000-8000-{seq:012d}",
        "seq": seq,
        "device_id": "ST-HALL-01-W07",
        "presentation_id": f"0190f0a0-0000-7000-9000-{seq:012d}",
        "level": "dissatisfied",
        "score": 3,
        "satisfaction": 2,
        "gbt_code": 4,
        "channel": 4,
        "cases": [
            {
                "serial": f"2024-{seq:04d}",
                "matter_code": "440500-FW-001",
                "matter_name": "个体工商户设立登记",
                "kind": "instant",
            }
        ],
        "clerk": {"id": "A1023", "name": "陈晓明"},
        "terminal": None,
        "agencies": ["汕头市市场监督管理局"],
        "agencies_concerned": [],
        "targets": ["clerk", "matter"],
        "theme": None,
        "reasons": ["213"],
        "comment": "等了很久",
        "stage": "deliver",
        "visit": 1,
        "assess_number": 1,
        "follows": [],
        "area_code": "440500",
        "presented_at": "2024-05-06T09:30:00+08:00",
        "presented_clock_synced": True,
        "rated_at": "2024-05-06T09:30:12+08:00",
        "elapsed_ms": 12000,
        "rated_clock_synced": True,
    }


def chain(n: int = 5) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        rec = seal(content(seq), prev_hash=prev)
        out.append(rec)
        prev = rec["hash"]
    return out


def by_seq(recs: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    return next(r for r in recs if r["seq"] == seq)


# --- seal -------------------------------------------------------------------------------------


def test_content_fixture_carries_every_published_field() -> None:
    assert set(content(1)) | {"prev_hash", "hash"} == set(RATING_FIELDS)


def test_seal_adds_prev_hash_and_hash() -> None:
    original = content(1)
    rec = seal(original, prev_hash=GENESIS_HASH)
    assert rec["prev_hash"] == GENESIS_HASH
    assert HEX64_RE.match(rec["hash"])
    assert rec["hash"] == record_hash(rec)
    assert {k: v for k, v in rec.items() if k not in ("prev_hash", "hash")} == original
    assert "hash" not in original and "prev_hash" not in original  # input not modified


def test_seal_ignores_a_stale_hash_in_the_content() -> None:
    stale = {**content(1), "hash": "f" * 64}
    assert seal(stale, prev_hash=GENESIS_HASH) == seal(content(1), prev_hash=GENESIS_HASH)


def test_seal_is_deterministic_and_depends_on_prev_hash() -> None:
    a = seal(content(1), prev_hash=GENESIS_HASH)
    assert a == seal(content(1), prev_hash=GENESIS_HASH)
    assert a["hash"] != seal(content(1), prev_hash="1" * 64)["hash"]


def test_genesis_hash_is_64_zeros() -> None:
    assert GENESIS_HASH == "0" * 64


def test_record_hash_is_sha256_of_canonical_json_without_hash() -> None:
    import hashlib

    rec = seal(content(1), prev_hash=GENESIS_HASH)
    body = {k: v for k, v in rec.items() if k != "hash"}
    assert rec["hash"] == hashlib.sha256(canonical_json(body)).hexdigest()


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, "x"]
    if isinstance(value, dict):
        return {**value, "x": "x"}
    if value is None:
        return "x"
    raise AssertionError(type(value))


@pytest.mark.parametrize("field", [f for f in RATING_FIELDS if f != "hash"])
def test_hash_changes_when_any_field_changes(field: str) -> None:
    rec = seal(content(1), prev_hash=GENESIS_HASH)
    altered = {**rec, field: _changed(rec[field])}
    assert record_hash(altered) != rec["hash"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("cases", 0, "matter_name"), "个体工商户注销登记"),
        (("clerk", "id"), "A1024"),
        (("reasons", 0), "214"),
    ],
)
def test_hash_changes_when_a_nested_value_changes(path: tuple[Any, ...], value: Any) -> None:
    rec = seal(content(1), prev_hash=GENESIS_HASH)
    altered = json.loads(json.dumps(rec))
    node = altered
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert record_hash(altered) != rec["hash"]


def test_hash_changes_when_a_field_is_added_or_removed() -> None:
    rec = seal(content(1), prev_hash=GENESIS_HASH)
    assert record_hash({**rec, "extra": None}) != rec["hash"]
    assert record_hash({k: v for k, v in rec.items() if k != "comment"}) != rec["hash"]


# --- verify_chain -----------------------------------------------------------------------------


def test_valid_chain_verifies() -> None:
    assert verify_chain(chain(5)) is None


def test_empty_chain_verifies() -> None:
    assert verify_chain([]) is None


def test_chain_survives_a_json_round_trip() -> None:
    stored = [json.loads(canonical_json(r)) for r in chain(5)]
    assert verify_chain(stored) is None


def test_verify_chain_accepts_any_iterable() -> None:
    assert verify_chain(iter(chain(5))) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("level", "very_satisfied"),
        ("score", 10),
        ("comment", ""),
        ("rated_at", "2024-05-06T10:00:00+08:00"),
    ],
)
def test_altered_record_3_is_reported(field: str, value: Any) -> None:
    recs = chain(5)
    recs[2] = {**recs[2], field: value}
    brk = verify_chain(recs)
    assert isinstance(brk, ChainBreak)
    assert brk.seq == 3
    assert brk.id == recs[2]["id"]
    assert "altered" in brk.reason


def test_altered_and_resealed_record_3_breaks_at_record_4() -> None:
    recs = chain(5)
    recs[2] = seal({**recs[2], "level": "very_satisfied"}, prev_hash=recs[1]["hash"])
    brk = verify_chain(recs)
    assert brk is not None
    assert brk.seq == 4
    assert "prev_hash" in brk.reason


def test_removed_record_3_is_a_gap_at_seq_4() -> None:
    recs = chain(5)
    del recs[2]
    brk = verify_chain(recs)
    assert brk is not None
    assert brk.seq == 4
    assert brk.id == by_seq(recs, 4)["id"]
    assert "gap" in brk.reason
    assert "3" in brk.reason


def test_removed_last_record_is_not_detectable_by_the_chain_alone() -> None:
    # Documented limit: a truncated tail is still a valid chain (seq must be checked elsewhere).
    assert verify_chain(chain(5)[:4]) is None


def test_reordered_records_are_reported() -> None:
    recs = chain(5)
    recs[2], recs[3] = recs[3], recs[2]
    brk = verify_chain(recs)
    assert brk is not None
    assert brk.seq == 4


def test_renumbered_records_are_reported() -> None:
    # Swap the contents of 3 and 4 but keep seq in order: hashes no longer match.
    recs = chain(5)
    third, fourth = recs[2], recs[3]
    recs[2] = {**fourth, "seq": 3}
    recs[3] = {**third, "seq": 4}
    brk = verify_chain(recs)
    assert brk is not None
    assert brk.seq == 3


def test_first_record_with_wrong_prev_hash_is_reported() -> None:
    recs = chain(5)
    recs[0] = seal(content(1), prev_hash="1" * 64)
    brk = verify_chain(recs)
    assert brk is not None
    assert brk.seq == 1
    assert "prev_hash" in brk.reason


def test_missing_first_record_is_reported() -> None:
    brk = verify_chain(chain(5)[1:])
    assert brk is not None
    assert brk.seq == 2
    assert "prev_hash" in brk.reason


def test_record_without_hash_is_reported() -> None:
    recs = chain(3)
    recs[1] = {k: v for k, v in recs[1].items() if k != "hash"}
    brk = verify_chain(recs)
    assert brk is not None
    assert brk.seq == 2


def test_chain_break_str_names_seq_id_and_reason() -> None:
    brk = ChainBreak(3, "abc", "why")
    assert str(brk) == "record seq=3 id=abc: why"


# --- new_record_id ----------------------------------------------------------------------------


@pytest.fixture
def fresh_id_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the process-wide last millisecond for this test, and restore it afterwards."""
    monkeypatch.setattr(records, "_last_ms", 0)


def _ms(record_id: str) -> int:
    return int(record_id.replace("-", "")[:12], 16)


def test_thousand_ids_are_unique_and_uuid7() -> None:
    ids = [new_record_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    for rid in ids:
        assert UUID7_RE.match(rid), rid
        parsed = uuid.UUID(rid)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == rid


def test_ids_from_the_same_millisecond_are_unique(fresh_id_clock: None) -> None:
    ids = {new_record_id(now_ms=1_700_000_000_000) for _ in range(1000)}
    assert len(ids) == 1000
    assert {_ms(i) for i in ids} == {1_700_000_000_000}


def test_id_prefix_is_the_given_millisecond(fresh_id_clock: None) -> None:
    rid = new_record_id(now_ms=0x0190F0A0B1C2)
    assert rid.startswith("0190f0a0-b1c2-7")


def test_id_prefix_defaults_to_wall_clock(fresh_id_clock: None) -> None:
    before = int(time.time() * 1000)
    rid = new_record_id()
    after = int(time.time() * 1000)
    assert before <= _ms(rid) <= after


def test_millisecond_prefix_never_decreases_when_clock_steps_back(fresh_id_clock: None) -> None:
    clock = [1_700_000_001_000, 1_700_000_002_000, 1_700_000_001_500, 5, 1_700_000_002_500]
    prefixes = [_ms(new_record_id(now_ms=ms)) for ms in clock]
    assert prefixes == [
        1_700_000_001_000,
        1_700_000_002_000,
        1_700_000_002_000,
        1_700_000_002_000,
        1_700_000_002_500,
    ]


@given(st.lists(st.integers(0, (1 << 48) - 1), min_size=1, max_size=30))
def test_millisecond_prefix_is_monotonic_for_any_clock(clock: list[int]) -> None:
    saved = records._last_ms
    records._last_ms = 0
    try:
        prefixes = [_ms(new_record_id(now_ms=ms)) for ms in clock]
    finally:
        records._last_ms = saved
    assert prefixes == sorted(prefixes)
    assert prefixes[0] == clock[0]
    assert prefixes[-1] == max(clock)


def test_ids_are_unique_across_threads() -> None:
    out: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [new_record_id() for _ in range(250)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == len(set(out)) == 2000


# --- canonical_json ---------------------------------------------------------------------------


def test_canonical_json_is_compact_and_sorted() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": None, "c": True}]}) == (
        b'{"a":[1,{"c":true,"d":null}],"b":1}'
    )


def test_canonical_json_keeps_chinese_unescaped_as_utf8() -> None:
    data = canonical_json({"label": "非常满意", "name": "陈晓明"})
    assert "非常满意".encode() in data
    assert "陈晓明".encode() in data
    assert b"\\u" not in data
    assert data.decode("utf-8") == '{"label":"非常满意","name":"陈晓明"}'


json_leaf = st.none() | st.booleans() | st.integers() | st.text()
json_tree = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=15,
)


def _reverse_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _reverse_keys(obj[k]) for k in reversed(list(obj))}
    if isinstance(obj, list):
        return [_reverse_keys(v) for v in obj]
    return obj


@given(st.dictionaries(st.text(), json_tree, max_size=6).filter(lambda d: len(d) > 1))
def test_canonical_json_is_key_order_independent(obj: dict[str, Any]) -> None:
    try:
        canonical_json(obj)
    except UnicodeEncodeError:
        return  # lone surrogates: see test_request's xfail
    assert canonical_json(_reverse_keys(obj)) == canonical_json(obj)
    assert json.loads(canonical_json(obj)) == obj


def test_record_hash_is_key_order_independent() -> None:
    rec = seal(content(1), prev_hash=GENESIS_HASH)
    assert record_hash(_reverse_keys(rec)) == rec["hash"]


# --- the record's shape: one owner ------------------------------------------------------------


class _RecordingLedger:
    """Keeps what the session hands over; every case is new, so every start is accepted."""

    def __init__(self) -> None:
        self.ratings: list[dict[str, Any]] = []

    def already_rated(self, slots: Any, assess_number: int) -> list[str]:
        return []

    def case_kinds(self, serials: Any) -> dict[str, str]:
        return {}

    def first_ratings(self, slots: Any) -> dict[str, Any]:
        return {}

    def last_ratings(self, serials: Any) -> dict[str, Any]:
        return {}

    def left_unrated(self, slots: Any, assess_number: int) -> list[str]:
        return []

    def open_presentation(self, presentation: Any) -> None:
        pass

    def record_rating(self, content: dict[str, Any], *, closing: Any) -> str:
        self.ratings.append(dict(content))
        return str(content["id"])

    def close_presentation(self, closing: Any) -> None:
        pass


def _session_ratings(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Ratings a session hands its ledger in a fixed scenario: good, bad with every extra, theme."""
    with monkeypatch.context() as patch:
        patch.setenv("TZ", "Asia/Shanghai")  # the recorded times carry the local offset
        time.tzset()
        try:
            return _scenario()
        finally:
            patch.undo()
            time.tzset()


def _scenario() -> list[dict[str, Any]]:
    from evaluator.rules.clock import FakeClock
    from evaluator.rules.levels import Level
    from evaluator.rules.reasons import OTHER_CODE, load_reasons
    from evaluator.rules.request import parse_request
    from evaluator.rules.session import Session

    clock = FakeClock()
    ledger = _RecordingLedger()
    session = Session(ledger=ledger, reasons=load_reasons(), clock=clock)  # type: ignore[arg-type]
    clerk = {"id": "A1023", "name": "陈晓明"}

    def case(serial: str, code: str = "M0", kind: str = "instant") -> dict[str, str]:
        return {
            "serial": serial,
            "matter_code": code,
            "matter_name": "居民身份证换领",
            "kind": kind,
        }

    session.start(
        parse_request(
            {"stage": "accept", "clerk": clerk, "visit": 2, "cases": [case("S1", kind="promise")]}
        )
    )
    clock.advance(4.2)
    session.press(Level.SATISFIED)
    clock.advance(5)
    session.tick()
    agencies = ["汕头市市场监督管理局", "汕头市公安局"]
    session.start(
        parse_request(
            {
                "stage": "deliver",
                "clerk": clerk,
                "agencies": agencies,
                "cases": [case("S2", kind="promise"), case("S3", kind="promise")],
            }
        )
    )
    clock.advance(1.5)
    session.press(Level.VERY_DISSATISFIED)
    session.toggle_reason("110")
    session.toggle_reason("115")
    session.toggle_agency(agencies[1])
    session.toggle_reason(OTHER_CODE)
    session.type_text("材料退回三次")
    clock.advance(2.25)
    session.submit()
    clock.advance(5)
    session.tick()
    theme = {"code": "T1", "name": "我要开饭店"}
    session.start(
        parse_request(
            {
                "stage": "deliver",
                "clerk": clerk,
                "theme": theme,
                "cases": [case("S4", "M1"), case("S5", "M2")],
            }
        )
    )
    session.expand_theme()
    session.press(Level.VERY_SATISFIED)
    clock.advance(0.75)
    session.press(Level.BASICALLY_SATISFIED)
    return ledger.ratings


def test_the_session_hands_over_the_same_bytes_for_the_same_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Pinned on the code before RatingContent owned the shape: the hash chain depends on it.
    # A window rating's record is those bytes plus the self-service field ``terminal``: null.
    ratings = _session_ratings(monkeypatch)
    assert len(ratings) == 4
    assert [r.pop("terminal") for r in ratings] == [None] * 4
    masked = b"\n".join(canonical_json({**r, "id": "-", "presentation_id": "-"}) for r in ratings)
    pinned = "3d5ca6ad9aec9e6004feff1f662963e15c06714d341fd46c016e85506b4cf5b1"
    assert hashlib.sha256(masked).hexdigest() == pinned, masked.decode()


def test_rating_fields_are_the_content_fields_between_the_store_fields() -> None:
    names = tuple(f.name for f in dataclasses.fields(RatingContent))
    assert names == CONTENT_FIELDS
    expected = ("id", "seq", "device_id", *names, "prev_hash", "hash")
    assert tuple(RATING_FIELDS) == expected
    assert set(STORE_FIELDS) == {"id", "seq", "device_id", "prev_hash", "hash"}
    assert len(set(RATING_FIELDS)) == len(RATING_FIELDS)


def _from_record(record: dict[str, Any]) -> RatingContent:
    """A record's content fields, as the session would hand them (sequences as tuples)."""

    def frozen(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    return RatingContent(**{name: frozen(record[name]) for name in CONTENT_FIELDS})


def test_to_json_gives_every_content_field_and_no_store_field() -> None:
    expected = {k: v for k, v in content(1).items() if k not in STORE_FIELDS}
    body = _from_record(content(1)).to_json()
    assert body == expected
    assert list(body) == list(CONTENT_FIELDS)
    assert isinstance(body["cases"], list) and isinstance(body["reasons"], list)
    assert canonical_json(body) == canonical_json(expected)


def test_to_json_turns_nested_tuples_into_lists_and_copies_everything() -> None:
    case = {"serial": "S1", "kind": "instant", "tags": ("a", "b")}
    rating = dataclasses.replace(_from_record(content(1)), cases=(case,))
    body = rating.to_json()
    assert body["cases"] == [{"serial": "S1", "kind": "instant", "tags": ["a", "b"]}]
    body["cases"][0]["serial"] = "changed"
    body["clerk"]["id"] = "changed"
    body["agencies"].append("changed")
    again = rating.to_json()
    assert again["cases"][0]["serial"] == "S1"
    assert again["clerk"] == content(1)["clerk"]
    assert again["agencies"] == content(1)["agencies"]


def test_rating_content_cannot_be_changed_after_it_is_built() -> None:
    rating = _from_record(content(1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        rating.level = "very_satisfied"  # type: ignore[misc]


def _documented_records() -> list[dict[str, Any]]:
    text = (Path(__file__).parents[3] / "docs" / "integrator.md").read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- validate: rating -->\s*```json\n(.*?)```", text, re.S)
    return [json.loads(block) for block in blocks]


def test_the_documented_records_are_rebuilt_byte_for_byte_from_rating_content() -> None:
    documented = _documented_records()
    assert len(documented) >= 2
    for record in documented:
        store = {name: record[name] for name in ("id", "seq", "device_id")}
        rebuilt = seal({**store, **_from_record(record).to_json()}, prev_hash=record["prev_hash"])
        assert rebuilt["hash"] == record["hash"]
        assert canonical_json(rebuilt) == canonical_json(record)


def test_the_session_hands_over_exactly_the_content_fields_and_an_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for rating in _session_ratings(monkeypatch):
        assert tuple(rating) == ("id", *CONTENT_FIELDS)


# --- self-service terminal records (自助终端, art. 18/23, art. 9) ----------------------------


def _rating_schema() -> Any:
    from jsonschema import Draft202012Validator

    root = Path(__file__).resolve().parents[3]
    schema = json.loads((root / "docs/schemas/rating.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _sealed(**changes: Any) -> dict[str, Any]:
    body = {
        **content(1),
        "reasons": [{"code": "209", "text": "未在承诺时间内办结", "target": "matter"}],
        "comment": "",
        "presented_at": "2024-05-06T09:30:00.000+08:00",
        "rated_at": "2024-05-06T09:30:12.000+08:00",
        **changes,
    }
    return seal(body, prev_hash=GENESIS_HASH)


def test_the_terminal_field_sits_after_the_clerk_in_every_record() -> None:
    assert CONTENT_FIELDS.index("terminal") == CONTENT_FIELDS.index("clerk") + 1
    assert "terminal" in RATING_FIELDS


def test_the_schema_takes_a_window_or_a_terminal_record_and_nothing_between() -> None:
    validator = _rating_schema()
    window = _sealed()
    terminal = _sealed(channel=5, clerk=None, terminal="ZZ-0107", targets=["matter"])
    for record in (window, terminal):
        errors = [e.message for e in validator.iter_errors(record)]
        assert not errors, errors
    for broken in (
        terminal | {"clerk": {"id": "A1023", "name": "陈晓明"}},  # a terminal has no clerk
        terminal | {"terminal": None},
        terminal | {"targets": ["clerk", "matter"]},  # art. 9: the matter only
        terminal | {"channel": 4},
        window | {"terminal": "ZZ-0107"},
        window | {"clerk": None},
        window | {"targets": ["matter"]},
        window | {"channel": 5},
        terminal | {"terminal": "终" * 33},
        {k: v for k, v in window.items() if k != "terminal"},
    ):
        assert not validator.is_valid(broken), broken


# --- signed records (issue 7): the device key behind every record ----------------------------


@pytest.fixture(scope="module")
def device_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from sync.keys import DeviceKey

    folder = tmp_path_factory.mktemp("keys")
    return DeviceKey.create(folder / "a.key"), DeviceKey.create(folder / "b.key")


def signed_chain(signer: Any, n: int = 4, *, start: list[dict[str, Any]] | None = None) -> Any:
    out = list(start or [])
    prev = out[-1]["hash"] if out else GENESIS_HASH
    for seq in range(len(out) + 1, len(out) + n + 1):
        rec = seal(content(seq), prev_hash=prev, signer=signer)
        out.append(rec)
        prev = rec["hash"]
    return out


def checker(key: Any) -> Any:
    return lambda key_id, data, sig: key_id == key.key_id and key.public.check(data, sig)


def test_a_signed_chain_verifies_with_the_device_key_only(device_keys: tuple[Any, Any]) -> None:
    mine, theirs = device_keys
    recs = signed_chain(mine)
    assert all(r["key_id"] == mine.key_id and len(r["sig"]) == 86 for r in recs)
    assert verify_chain(recs) is None
    report = signature_report(recs, checker(mine))
    assert report == SignatureReport({mine.key_id: 4}, (), ())
    assert report.findings() == ((), ())
    assert signature_report(recs, checker(theirs)).bad == (1, 2, 3, 4)


def test_a_resealed_record_fails_without_the_key(device_keys: tuple[Any, Any]) -> None:
    """The hole issue 7 names: an unsent record re-sealed with the same prev_hash passed verify."""
    mine, theirs = device_keys
    recs = signed_chain(mine)
    forged = dict(recs[-1], level="very_satisfied", score=10)
    # The forger recomputes the hash (the chain still holds) but has no key …
    forged = seal(forged, prev_hash=recs[-2]["hash"])
    assert verify_chain([*recs[:-1], forged]) is None  # the hash chain alone cannot tell
    assert signature_report([*recs[:-1], forged], checker(mine)).findings() == ((4,), ())

    # … or signs with a key of their own, claiming this device's key id.
    class Impostor:
        key_id = mine.key_id
        sign = staticmethod(theirs.sign)

    forged = seal(dict(recs[-1], score=10), prev_hash=recs[-2]["hash"], signer=Impostor())
    assert signature_report([*recs[:-1], forged], checker(mine)).findings() == ((), (4,))


def test_stripping_every_signature_is_a_finding_not_an_ok(device_keys: tuple[Any, Any]) -> None:
    """A review found it: strip sig and key_id from every record, alter one, re-chain: the
    chain holds and nothing signed remains. Unsigned records are findings unless the city
    says they predate the key (``unsigned_before``)."""
    mine, _ = device_keys
    recs = signed_chain(mine, 3)
    stripped: list[dict[str, Any]] = []
    prev = GENESIS_HASH
    for rec in recs:
        body = {k: v for k, v in rec.items() if k not in ("sig", "key_id", "hash", "prev_hash")}
        if rec["seq"] == 2:
            body.update(level="very_satisfied", score=10)
        stripped.append(seal(body, prev_hash=prev))
        prev = stripped[-1]["hash"]
    assert verify_chain(stripped) is None
    report = signature_report(stripped, checker(mine))
    assert report.signed == {} and report.findings() == ((1, 2, 3), ())


def test_records_from_before_the_key_are_accepted_only_below_a_given_seq(
    device_keys: tuple[Any, Any],
) -> None:
    mine, _ = device_keys
    recs = signed_chain(mine, 2, start=chain(3))
    report = signature_report(recs, checker(mine))
    assert report.unsigned == (1, 2, 3) and report.signed == {mine.key_id: 2}
    assert report.findings(unsigned_before=4) == ((), ())
    assert report.findings(unsigned_before=3) == ((3,), ())


def test_every_problem_is_reported_not_only_the_first(device_keys: tuple[Any, Any]) -> None:
    mine, _ = device_keys
    recs = signed_chain(mine, 5)
    recs[1] = {k: v for k, v in recs[1].items() if k not in ("sig", "key_id")}
    recs[3] = dict(recs[3], sig=recs[2]["sig"])
    assert signature_report(recs, checker(mine)).findings() == ((2,), (4,))


@pytest.mark.parametrize("mangle", ["", "***", "AAAA", None, "!", "extra"])
def test_a_mangled_signature_is_bad(device_keys: tuple[Any, Any], mangle: Any) -> None:
    mine, _ = device_keys
    recs = signed_chain(mine, 2)
    sig = recs[1]["sig"]
    recs[1] = dict(recs[1], sig=mangle if mangle != "extra" else sig + "!!!!")
    if mangle == "!":
        recs[1]["sig"] = sig[:40] + "!" + sig[40:]  # a lenient decoder would skip it
    assert signature_report(recs, checker(mine)).bad == (2,)


def test_the_signature_is_outside_the_hash_and_the_key_id_inside(device_keys: Any) -> None:
    mine, _ = device_keys
    [rec] = signed_chain(mine, 1)
    assert record_hash(dict(rec, sig="other")) == rec["hash"]
    assert record_hash(dict(rec, key_id="00000000")) != rec["hash"]


# -- the receiver's hash over the bytes received (issue 16 "Speed") ---------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


def _spellings(obj: Any) -> list[bytes]:
    """Canonical and several non-canonical spellings of ``obj`` that parse back to it."""
    return [
        canonical_json(obj),
        json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(),  # \\u escapes
        json.dumps(obj, sort_keys=True, ensure_ascii=False).encode(),  # spaces
        json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(),  # key order
        b" " + canonical_json(obj),
    ]


@given(_json_values)
def test_canonical_reader_certifies_only_canonical_bytes(obj: Any) -> None:
    """Whatever spelling: certified canonical ⇒ the bytes are canonical_json of what they parse
    to (the receiver's fast path is then exactly the definition); and the canonical spelling of
    a value without floats or backslashes is certified (the fast path is taken)."""
    reader = records.CanonicalReader()
    for data in _spellings(obj):
        parsed, canonical = reader.read(data.decode(), data)
        if canonical:
            assert canonical_json(parsed) == data


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',  # a duplicate key: json.loads keeps the last, SQLite the first
        '{"a":{"b":1,"b":2}}',  # a nested one
        '{"a":":","a":1}',  # one beside a string starting with ':' (another '":')
        '{"a":":"}',  # no duplicate, but a '":' that is no key's end: not certified either
        '{"b":1,"a":2}',  # key order
        '{"a":[1, 2]}',  # whitespace
        '{"a":-0}',  # an int spelled two ways
        '{"a":1.0}',  # a float
        '{"a":NaN}',
        '{"a":"\\u00e9"}',  # an escape json.dumps(ensure_ascii=False) does not write
        '{"a":{"d":1,"c":2}}',  # a nested object's order
    ],
)
def test_canonical_reader_refuses_each_other_spelling(text: str) -> None:
    _, canonical = records.CanonicalReader().read(text, text.encode())
    assert not canonical


def test_sealed_hash_is_the_record_hash_of_a_canonical_record() -> None:
    class Signer:  # any signer: the signature is over the hash, outside it
        key_id = "k1"

        def sign(self, data: bytes) -> bytes:
            return hashlib.sha512(data).digest()

    key = Signer()
    body = {"id": new_record_id(), "seq": 1, "device_id": "d-1", "comment": "好 x"}
    for signer in (None, key):
        record = records.seal(body, prev_hash=GENESIS_HASH, signer=signer)
        data = canonical_json(record)
        parsed, canonical = records.CanonicalReader().read(data.decode(), data)
        assert canonical and records.sealed_hash(data, parsed) == record["hash"]
    # the hash member also inside a nested object: not found exactly once, no fast answer
    data = canonical_json(record)
    double = data[:-1] + b',"z":{"a":0,"hash":"' + record["hash"].encode() + b'"}}'
    assert records.sealed_hash(double, json.loads(double)) is None



def _certified_before(data: bytes) -> bool:
    """The first pass's verdict, spelled out: no backslash, no float or constant, every
    object's keys unique and sorted (a pairs hook), then the bytes outside strings cut out and
    searched for whitespace or ``-0``."""
    plain = [b"\\" not in data]

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        plain[0] = plain[0] and len(set(keys)) == len(keys) and keys == sorted(keys)
        return dict(pairs)

    def not_plain(text: str) -> float:
        plain[0] = False
        return float(text)

    json.loads(data, object_pairs_hook=pairs_hook, parse_float=not_plain,
               parse_constant=not_plain)  # fmt: skip
    outside = b"".join(data.split(b'"')[::2])
    return plain[0] and re.search(rb"[ \t\n\r]|-0", outside) is None


_colon_texts = st.sampled_from([":", ":x", "a:", '":', "-0", " ", "x y"])


@given(_json_values | st.dictionaries(_colon_texts, _colon_texts | _json_values, max_size=3))
def test_the_one_pass_spacing_check_gives_the_first_pass_verdicts(obj: Any) -> None:
    """The reader's one C pass over the bytes (``_CANONICAL_SPACING``) certifies exactly what
    cutting out the strings and searching the rest certified, on every spelling of generated
    JSON (a trailing newline, a duplicate key, strings starting with ':' included), with the
    unique keys told by counting '":' instead of a pairs hook: never certified where the first
    pass was not; not certified where it was only for a string starting with ':' (hashed by the
    definition then, the same verdict)."""
    twice = canonical_json(obj)
    if twice.startswith(b"{") and len(twice) > 2:  # the first member again: a duplicate key
        twice = twice[:-1] + b"," + twice[1:]
    for data in [*_spellings(obj), canonical_json(obj) + b"\n", twice]:
        parsed, canonical = records.CanonicalReader().read(data.decode(), data)
        before = _certified_before(data)
        assert canonical <= before, data  # never certifies what the first pass did not
        # and takes the fast path wherever it did, but for a string starting with ':'
        assert canonical or not before or _colon_first(parsed), data


def _colon_first(value: Any) -> bool:
    """Some string of ``value`` (a key or a value, anywhere) starts with ':'."""
    if isinstance(value, str):
        return value.startswith(":")
    if isinstance(value, dict):
        return any(_colon_first(k) or _colon_first(v) for k, v in value.items())
    return isinstance(value, list) and any(_colon_first(v) for v in value)
