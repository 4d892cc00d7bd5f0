"""The counter-link wire format: no frame, however hostile, makes decode() or encode() raise."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluator.rules.errors import RequestError
from evaluator.rules.protocol import (
    ID_MAX,
    MAX_DEPTH,
    MAX_FRAME,
    BadFrame,
    LineFramer,
    Message,
    decode,
    encode,
    nesting_depth,
    reply_error,
    reply_ok,
)


def _malformed(item: Message | BadFrame) -> BadFrame:
    assert isinstance(item, BadFrame), item
    assert item.error.code == "malformed"
    assert item.id is None
    return item


# -- nesting depth: bounded before json.loads ever sees the frame ------------------------------


DEEP_FRAMES = [
    b"[" * 999,  # issue 5: killed the link thread (RecursionError)
    b"{" * 999,
    b'{"a":' * 999,
    b"[" * 4096,
    b'{"id":1,"type":"status","x":' + b"[" * 999 + b"]" * 999 + b"}",
    b'{"id":1,"type":"status","x":' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
    b'{"id":"\\\\","x":' + b"[" * 999,  # an escaped backslash ends no string
    b'["\\\\"' + b",[" * 999,
]


@pytest.mark.parametrize("line", DEEP_FRAMES, ids=range(len(DEEP_FRAMES)))
def test_deep_nesting_is_refused_as_malformed_not_parsed(line: bytes) -> None:
    bad = _malformed(decode(line))
    assert "nest" in bad.error.message and str(MAX_DEPTH) in bad.error.message


def test_nesting_up_to_the_limit_is_accepted() -> None:
    depth = MAX_DEPTH - 1  # the request object itself is one level
    line = b'{"id":1,"type":"status","x":' + b"[" * depth + b"]" * depth + b"}"
    assert nesting_depth(line) == MAX_DEPTH
    item = decode(line)
    assert isinstance(item, Message) and item.type == "status"


@pytest.mark.parametrize(
    "text",
    [
        "[" * 2000,
        "{" * 2000,
        '\\"' + "[" * 2000,  # an escaped quote does not end the string
        '\\\\\\"[[[[' * 200,
        "]]]]" * 500,
    ],
)
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    line = json.dumps({"id": 1, "type": "status", "note": text}).encode()
    assert nesting_depth(line) == 1
    item = decode(line)
    assert isinstance(item, Message) and item.body == {"note": text}


_leaves = st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab\n ')
_json_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=40,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(_json_values, st.booleans())
@settings(max_examples=300, deadline=None)
def test_nesting_depth_equals_the_real_depth_of_any_json(value: Any, ascii_only: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert nesting_depth(data) == _depth(value)


@given(st.binary(max_size=MAX_FRAME))
@settings(max_examples=500, deadline=None)
def test_decode_never_raises_on_any_bytes(line: bytes) -> None:
    assert isinstance(decode(line), Message | BadFrame)


_hostile_chars = st.sampled_from('[]{}":,\\ud800\udfff\x00\x1b1aé汉 ')


@given(st.text(_hostile_chars, max_size=300))
@settings(max_examples=500, deadline=None)
def test_decode_never_raises_on_bracket_and_escape_soup(text: str) -> None:
    line = text.encode("utf-8", "surrogatepass")
    item = decode(line)
    assert isinstance(item, Message | BadFrame)
    # and whatever it is, its reply can be written
    rid = item.id
    json.loads(encode(reply_ok(rid) if rid is not None else reply_error(None, _err())))


def _err() -> RequestError:
    return RequestError("malformed", "x")


# -- ids that cannot be echoed ----------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b'{"id":"\\ud800","type":"status"}',  # issue 5: lone surrogate crashed the reply
        b'{"id":"\\udfff","type":"evaluation.cancel"}',
        b'{"id":"a\\udc80b","type":"nope"}',
        b'{"id":"\\ud800"}',
        b'{"id":"' + b"7" * (ID_MAX + 1) + b'","type":"status"}',
        b'{"id":' + b"9" * 400 + b',"type":"status"}',
        b'{"id":-' + b"9" * 30 + b',"type":"status"}',
    ],
)
def test_an_id_that_cannot_be_echoed_is_malformed_with_a_null_id(line: bytes) -> None:
    bad = _malformed(decode(line))
    assert "id" in bad.error.message
    out = encode(reply_error(bad.id, bad.error))
    assert json.loads(out.decode("utf-8"))["id"] is None


def test_ordinary_ids_are_echoed() -> None:
    for rid in (0, 1, -5, 2**63 - 1, "a", "x" * ID_MAX, "请求-1"):
        item = decode(json.dumps({"id": rid, "type": "status"}, ensure_ascii=False).encode())
        assert isinstance(item, Message) and item.id == rid


# -- encode: a reply always goes out ----------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "\ud800", "ok": True},
        reply_error(None, RequestError("unknown_field", "takes no field '\udfff'")),
        {"id": 1, "ok": False, "error": {"code": "x", "message": "a\ud83db\x00c\u2028"}},
        {"event": "evaluation.finished", "serials": ["\udc00"], "outcome": "rated"},
        {"id": 1, "ok": True, "odd": object()},
    ],
)
def test_encode_never_raises_and_writes_one_valid_utf8_json_line(obj: dict[str, Any]) -> None:
    out = encode(obj)
    assert out.endswith(b"\n") and out.count(b"\n") == 1
    back = json.loads(out.decode("utf-8"))
    assert isinstance(back, dict)


def test_encode_keeps_ordinary_text_readable() -> None:
    assert encode(reply_ok("请求1")) == '{"id":"请求1","ok":true}\n'.encode()
    escaped = json.loads(encode({"id": "a\ud800"}))
    assert escaped["id"] == "a\ud800"  # the receiver gets back exactly what was sent


@given(st.dictionaries(st.text(max_size=5), st.text() | st.integers() | st.none()))
@settings(max_examples=300, deadline=None)
def test_encode_never_raises_on_any_text(obj: dict[str, Any]) -> None:
    out = encode(obj)
    assert json.loads(out.decode("utf-8")) == obj


# -- framing still works ------------------------------------------------------------------------


def test_framer_reports_an_over_long_line_once_and_goes_on() -> None:
    framer = LineFramer(max_frame=10)
    items = list(framer.feed(b"x" * 25 + b"\n" + b'{"a":1}\n'))
    assert [type(i) for i in items] == [BadFrame, bytes]
    assert isinstance(items[0], BadFrame) and items[0].error.code == "frame_too_long"
