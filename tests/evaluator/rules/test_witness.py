"""The signed ratings head (evaluator.rules.witness): it checks, it cannot be mistaken for a
record's signature, and it tells nothing of the level (art. 4)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.rules.records import GENESIS_HASH, new_record_id, seal, signature_report
from evaluator.rules.witness import (
    HEAD_FIELDS,
    check_head,
    head_of_line,
    head_problem,
    head_text,
    make_head,
)
from sync.keys import DeviceKey, PublicKey
from tests.sync.hub.helpers import LEVELS, rating_content


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.create(tmp_path_factory.mktemp("k") / "device.key")


def checker(key: DeviceKey) -> Any:
    """The city's check with ``key`` registered (its public half only)."""
    public = PublicKey.parse(key.public.text)

    def check(key_id: str, data: bytes, signature: bytes) -> bool:
        return key_id == public.key_id and public.check(data, signature)

    return check


def head_after(key: DeviceKey, level: str, *, epoch: str = "", comment: str = "") -> dict:
    """The head the pad hands the counter after a rating at ``level``."""
    body = rating_content("4405002026112600001", level=level)
    body.update(id=new_record_id(), seq=7, device_id="pad-1", comment=comment)
    record = seal(body, prev_hash=GENESIS_HASH, signer=key)
    return make_head(key, device_id="pad-1", epoch=epoch, seq=7, hash_=record["hash"])


def test_a_head_checks_with_the_device_key_and_only_with_it(key: DeviceKey, tmp_path: Path) -> None:
    head = head_after(key, "very_dissatisfied")
    assert tuple(head) == HEAD_FIELDS and head_problem(head) is None
    assert check_head(head, checker(key)) is None
    other = DeviceKey.create(tmp_path / "other.key")
    assert "does not verify" in str(check_head(head, checker(other)))


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(["device_id", "epoch", "seq", "hash", "key_id"]), data=st.data())
def test_any_field_changed_breaks_the_signature(key: DeviceKey, field: str, data: Any) -> None:
    """The class of forgery: any signed field of a genuine head changed, the head is refused."""
    head = head_after(key, "satisfied", epoch="0192f0e1-aaaa")
    forged = dict(head)
    if field == "seq":
        forged["seq"] = data.draw(st.integers(1, 2**62).filter(lambda q: q != head["seq"]))
    elif field == "hash":
        pos = data.draw(st.integers(0, 63))
        digit = data.draw(st.sampled_from("0123456789abcdef").filter(
            lambda c: c != head["hash"][pos]))  # fmt: skip
        forged["hash"] = head["hash"][:pos] + digit + head["hash"][pos + 1 :]
    else:
        forged[field] = data.draw(
            st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True).filter(
                lambda t: t != head[field]
            )
        )
    assert check_head(forged, checker(key)) is not None


def test_a_record_signature_is_never_a_head_signature(key: DeviceKey) -> None:
    """Domain separation both ways: the signature of a record (over its hash) does not verify as
    a head's, nor a head's as the record's."""
    body = rating_content("S1", level="very_satisfied")
    body.update(id=new_record_id(), seq=1, device_id="pad-1")
    record = seal(body, prev_hash=GENESIS_HASH, signer=key)
    head = make_head(key, device_id="pad-1", epoch="", seq=1, hash_=record["hash"])
    assert head_text("pad-1", "", 1, record["hash"], key.key_id) != record["hash"].encode()
    assert check_head(dict(head, sig=record["sig"]), checker(key)) is not None
    report = signature_report([dict(record, sig=head["sig"])], checker(key))
    assert report.bad == (1,)


@pytest.mark.parametrize(
    "bad",
    [
        None, [], {}, {"event": "x"},
        {"seq": True}, {"seq": 0}, {"seq": "7"}, {"hash": "A" * 64}, {"hash": "0" * 63},
        {"sig": "x"}, {"device_id": ""}, {"device_id": "a/b"}, {"extra": 1},
    ],
)  # fmt: skip
def test_what_is_no_head_is_refused_with_a_reason(key: DeviceKey, bad: Any) -> None:
    if isinstance(bad, dict) and bad and "event" not in bad:
        bad = {**head_after(key, "satisfied"), **bad}
    assert head_problem(bad)
    assert check_head(bad, checker(key))


def test_a_finished_event_line_gives_its_head(key: DeviceKey) -> None:
    head = head_after(key, "satisfied")
    event = {"event": "evaluation.finished", "serials": ["S"], "outcome": "rated", "head": head}
    assert head_of_line(event) == head
    assert head_of_line(head) == head


def test_heads_of_a_ten_and_a_zero_are_alike_in_shape_and_size(key: DeviceKey) -> None:
    """Art. 4: whoever holds heads learns no level.  Over many ratings of each level (with and
    without a long comment), every head has the same fields, each of the same length and
    alphabet; the hash digits of the 10s and of the 0s are spread alike (no digit position
    tells one from the other beyond chance)."""
    by_level: dict[str, list[dict]] = {}
    for level in LEVELS:
        by_level[level] = [
            head_after(key, level, comment="服务态度差" * (i % 5)) for i in range(40)
        ]
    shapes = {
        tuple((k, len(json.dumps(v))) for k, v in h.items())
        for heads in by_level.values()
        for h in heads
    }
    assert len(shapes) == 1, shapes
    sizes = {len(json.dumps(h)) for heads in by_level.values() for h in heads}
    assert len(sizes) == 1
    # The hashes look alike: each hex digit's share is near 1/16 for both extremes.
    for level in ("very_satisfied", "very_dissatisfied"):
        digits = "".join(h["hash"] for h in by_level[level])
        for d in "0123456789abcdef":
            assert abs(digits.count(d) / len(digits) - 1 / 16) < 0.03
    # The same content sealed twice gives two unrelated hashes (a random id is inside).
    twice = {head_after(key, "very_dissatisfied")["hash"] for _ in range(5)}
    assert len(twice) == 5
