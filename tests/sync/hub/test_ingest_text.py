"""Issue 16: the receiver stored ``\\t \\r \\n`` in names and comments that the pad's own checks
refuse (evaluator.rules.request.unshowable).  Such a record, signed with the pad's real key, is
now a dead letter naming the field and the character, never stored, never acked; an honest
record with ordinary Chinese text (full-width punctuation, an ideographic space) still passes.
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.rules.records import CanonicalReader, canonical_json
from evaluator.rules.recordtext import shown_text_problem
from sync.hub.db import HubDB, open_db
from sync.hub.ingest import Ingest
from sync.keys import DeviceKey
from tests.sync.hub.helpers import end_event, make_key, payload, rating_content, seal_all, topic

DEVICE = "440500-hall1-w12"
OTHER = [{"code": "other", "text": "其他", "target": "other"}]


def _set(path: str, text: str) -> Callable[[dict[str, Any]], None]:
    """A change of the rating's content putting ``text`` at ``path``."""

    def change(body: dict[str, Any]) -> None:
        if path == "comment":
            body.update(level="very_dissatisfied", score=0, satisfaction=1, gbt_code=5,
                        reasons=OTHER, comment=text)  # fmt: skip
        elif path == "theme.name":
            body["theme"] = {"code": "T1", "name": text}
        elif path == "agencies[0]":
            body["agencies"] = [text]
        elif path == "clerk.name":
            body["clerk"]["name"] = text
        elif path == "clerk.id":
            body["clerk"]["id"] = text
        else:
            body["cases"][0][path.rpartition(".")[2]] = text

    return change


#: (field, text, the character the dead letter names)
BAD = [
    ("clerk.name", "陈\t晓明", "U+0009"),
    ("clerk.id", "A1023\r", "U+000D"),
    ("cases[0].matter_name", "不动产登记\n=HYPERLINK(\"x\")", "U+000A"),
    ("cases[0].matter_code", "M\x001", "U+0000"),
    ("comment", "等了\x1b[2J很久", "U+001B"),
    ("theme.name", "一件事\x85", "U+0085"),  # C1 next line
    ("agencies[0]", "自然资源局\u202e局源资", "U+202E"),  # a bidi override
    ("clerk.name", "陈\u2028晓明", "U+2028"),  # line separator
    ("clerk.name", "陈\u200b晓明", "U+200B"),  # zero-width space (format)
]


@pytest.fixture
def key(tmp_path: Path) -> DeviceKey:
    return make_key(tmp_path)


@pytest.fixture
def db(db_url: str, key: DeviceKey) -> HubDB:
    db = open_db(db_url)
    db.register(DEVICE, key.public.text)
    yield db
    db.close()


@pytest.mark.parametrize(("field", "text", "char"), BAD, ids=[f"{f}-{c}" for f, _t, c in BAD])
def test_a_text_the_pad_refuses_is_a_dead_letter_never_stored(
    db: HubDB, key: DeviceKey, field: str, text: str, char: str
) -> None:
    body = rating_content(f"{DEVICE}-000001")
    _set(field, text)(body)
    (record,) = seal_all(key, DEVICE, [body])
    result = Ingest(db).handle(topic(DEVICE), payload(record))
    assert (result.stored, result.acks, result.parked) == (0, {}, 0)
    assert [d.reason for d in result.dead] == [
        f"{field} holds {char}, a character the pad never shows (control, format, surrogate, "
        "private-use, unassigned or line/paragraph separator)"
    ]
    assert db.count() == 0 and db.records(DEVICE, "ratings") == []
    (dead,) = db.dead()
    assert dead["device_id"] == DEVICE and dead["reason"] == result.dead[0].reason


def test_an_event_naming_a_matter_with_a_return_is_refused_a_faults_message_is_not(
    db: HubDB, key: DeviceKey
) -> None:
    """A case in a presentation_end is text a person reads; a fault's message is the pad's
    own words (an error text may hold a newline): refusing it would stop the event chain."""
    at = "2026-05-29T04:30:00.000+08:00"
    fault = {"kind": "printer_fault", "at": at, "clock_synced": True, "fault": "offline",
             "active": True, "message": "write failed:\n[Errno 5] Input/output error"}  # fmt: skip
    bad = end_event(f"{DEVICE}-000009", matter=("M1", "不动产\r登记"))
    events = seal_all(key, DEVICE, [fault, bad])
    result = Ingest(db).handle_batch([(topic(DEVICE, "events"), payload(e)) for e in events])
    assert result.stored == 1 and db.records(DEVICE, "events") == events[:1]
    assert [d.reason.partition(",")[0] for d in result.dead] == [
        "cases[0].matter_name holds U+000D"
    ]


def test_an_honest_record_with_ordinary_chinese_text_passes(db: HubDB, key: DeviceKey) -> None:
    body = rating_content(f"{DEVICE}-000001", clerk=("A-1023", "欧阳·晓明"),
                          matter=("440500-M1", "不动产登记（首次登记）　抵押权"))  # fmt: skip
    _set("comment", "窗口人员态度生硬，等了 40 分钟！“请改进”…… ①②")(body)
    body["theme"] = {"code": "", "name": "开办餐饮店「一件事」"}
    body["agencies"] = body["agencies_concerned"] = ["汕头市自然资源局", "市场监管局"]
    (record,) = seal_all(key, DEVICE, [body])
    result = Ingest(db).handle(topic(DEVICE), payload(record))
    assert not result.dead and result.stored == 1
    assert db.records(DEVICE, "ratings") == [record]


_texts = st.text(st.characters(codec="utf-8"), max_size=6)


@settings(max_examples=300, deadline=None)
@given(name=_texts, matter=_texts, comment=_texts, agencies=st.lists(_texts, max_size=2))
def test_the_one_pass_text_check_agrees_with_the_field_walk(
    name: str, matter: str, comment: str, agencies: list[str]
) -> None:
    """The receiver skips the walk over a record's shown texts when the received text, with no
    backslash, is printable as a whole: its verdict is the walk's on generated texts (controls,
    format characters, separators, surrogate escapes included), whatever the bytes' spelling."""
    body = {"clerk": {"id": "A1", "name": name}, "comment": comment, "agencies": agencies,
            "cases": [{"serial": "S1", "matter_code": "M1", "matter_name": matter}]}  # fmt: skip
    for data in (canonical_json(body), json.dumps(body).encode("utf-8", "surrogatepass")):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        obj, canonical = CanonicalReader().read(text, data)
        skipped = canonical and text.isprintable()  # what _check tests before the walk
        assert (None if skipped else shown_text_problem(obj)) == shown_text_problem(obj)
