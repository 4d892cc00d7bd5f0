"""The documentation stays true: every config key, CLI command, request type and error code is
documented, and the JSON Schemas in docs/schemas/ accept what the code really sends (and refuse
what it must never send).

Messages are produced through the real code paths (App.handle, Session + StoreLedger + Store),
and every example marked ``<!-- validate: NAME -->`` in docs/integrator.md is checked against
``docs/schemas/NAME.schema.json``.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from evaluator.app import App, StoreLedger
from evaluator.cli import build_parser
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock, SystemClock
from evaluator.rules.levels import Level
from evaluator.rules.protocol import (
    REQUEST_TYPES,
    BadFrame,
    LineFramer,
    Message,
    decode,
    encode,
    finished_event,
    reply_error,
    reply_ok,
)
from evaluator.rules.reasons import load_reasons
from evaluator.rules.records import GENESIS_HASH
from evaluator.rules.request import parse_request
from evaluator.rules.session import Session
from kiosk.view import PressLevel, Submit, ToggleAgency, ToggleReason, TypeText
from sync.store import Store

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCHEMAS = DOCS / "schemas"
SCHEMA_NAMES = ("counter-request", "counter-reply", "counter-event", "rating", "ack", "event",
                "status", "command", "command-reply")  # fmt: skip

CLERK = {"id": "A1023", "name": "陈晓明"}
ID_CARD = {"serial": "4405002026112600001", "matter_code": "11440500MB2C9300XR4442111009000",
           "matter_name": "居民身份证换领", "kind": "instant"}  # fmt: skip
FOOD = {"serial": "4405002026112600002", "matter_code": "114405000072194508344011100400Y",
        "matter_name": "食品经营许可证核发", "kind": "promise"}  # fmt: skip
AGENCIES = ["汕头市市场监督管理局", "汕头市卫生健康局"]


def _text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft202012Validator]:
    from referencing import Registry, Resource

    result = {}
    schemas = {
        name: json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
        for name in SCHEMA_NAMES
    }
    # command and command-reply refer to the counter link's schemas by file name.
    registry: Registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values()
    )
    for name, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        result[name] = Draft202012Validator(schema, registry=registry)
    return result


def assert_valid(validator: Draft202012Validator, obj: Any) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
    assert not errors, f"{json.dumps(obj, ensure_ascii=False)}\n" + "\n".join(errors)


def assert_invalid(validator: Draft202012Validator, obj: Any) -> None:
    assert not validator.is_valid(obj), f"accepted: {json.dumps(obj, ensure_ascii=False)}"


# --------------------------------------------------------------------------- (a) config keys
# The reference is generated from config/default.toml and checked key by key, with each real
# default, by tests/evaluator/test_configref.py.


# --------------------------------------------------------------------------- (b) CLI


def _subcommands(parser: Any, prefix: str = "evaluator") -> list[str]:
    found = []
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(_subcommands(sub, f"{prefix} {name}"))
    return found


def test_every_cli_subcommand_is_documented() -> None:
    text = _text("technician.md")
    commands = _subcommands(build_parser())
    assert "evaluator config check" in commands
    for command in commands:
        assert command in text, f"{command} is not in docs/technician.md"


def _code(text: str) -> list[str]:
    """The code in a Markdown text: fenced blocks and inline spans."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return blocks + spans


def test_every_evaluator_command_the_technician_guide_shows_exists() -> None:
    """A command written in the guide (``evaluator keys show``, ``sudo evaluator config check``)
    is one the CLI has: an invented or renamed one fails here."""
    commands = set(_subcommands(build_parser()))
    used: set[tuple[str, str]] = set()
    for code in _code(_text("technician.md")):
        code = code.replace("-u evaluator ", "-u USER ")  # sudo -u evaluator evaluator …
        used |= set(re.findall(r"(?:^|(?<=[\s$;&|(]))evaluator ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?",
                               code, re.M))  # fmt: skip
    assert ("config", "check") in used and ("keys", "show") in used  # the pattern still works
    for first, second in sorted(used):
        assert f"evaluator {first}" in commands, f"`evaluator {first}` is no command"
        if second and any(c.startswith(f"evaluator {first} ") for c in commands):
            assert f"evaluator {first} {second}" in commands, (
                f"`evaluator {first} {second}` is no command"
            )


def _section(doc: str, heading: str) -> str:
    text = _text(doc)
    start = text.index(heading)
    end = text.find("\n#", start + len(heading))
    return text[start : end if end >= 0 else None]


def _string_constants(*paths: str) -> set[str]:
    """Every string literal of these modules, adjacent literals joined as Python joins them."""
    found: set[str] = set()
    for path in paths:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        found |= {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                  and isinstance(n.value, str)}  # fmt: skip
    return found


def test_the_clock_section_says_what_the_pad_does() -> None:
    """The technician guide's NTP section (§6.1) quotes the pad's own figures and log line."""
    section = _section("technician.md", "### 6.1 ")
    every = re.search(r"at most every (\d+) s\b", section)
    assert every, "the guide no longer says how often the pad reads the kernel's flag"
    recheck = inspect.signature(SystemClock).parameters["recheck"].default
    assert float(every[1]) == recheck
    flat = re.sub(r"\s+", " ", section)
    quoted = re.search(r"\(`(receipts issued before the clock [^`]*)`\)", flat)
    assert quoted, "the receipt warning is no longer quoted"
    assert quoted[1] in _string_constants("evaluator/receipts.py")
    # The selftest's clock fix points at the service the section configures.
    assert "systemd-timesyncd" in section
    assert any("systemd-timesyncd" in s for s in _string_constants("evaluator/selftest.py"))


# --------------------------------------------------------------------------- (c) protocol


def error_codes_in_code() -> set[str]:
    codes: set[str] = set()
    for path in [*ROOT.glob("evaluator/*.py"), *ROOT.glob("evaluator/rules/*.py"),
                 *ROOT.glob("kiosk/*.py"), *ROOT.glob("kiosk/*/*.py")]:  # fmt: skip
        codes.update(re.findall(r'RequestError\(\s*"(\w+)"', path.read_text(encoding="utf-8")))
    return codes


def test_every_request_type_and_error_code_is_documented(
    validators: dict[str, Draft202012Validator],
) -> None:
    text = _text("integrator.md")
    for rtype in REQUEST_TYPES:
        assert f"`{rtype}`" in text, f"request type {rtype} is not in docs/integrator.md"
    codes = error_codes_in_code()
    assert {"malformed", "invalid_field", "busy", "storage"} <= codes  # the regex still works
    for code in codes:
        assert f"`{code}`" in text, f"error code {code} is not in docs/integrator.md"
    reply = validators["counter-reply"].schema["oneOf"][1]
    assert set(reply["properties"]["error"]["properties"]["code"]["enum"]) == codes
    request_types = validators["counter-request"].schema["properties"]["type"]["enum"]
    assert tuple(request_types) == REQUEST_TYPES


# --------------------------------------------------------------------------- (d) schemas


def examples(doc: str) -> list[tuple[str, Any]]:
    """(schema name, object) for each JSON block after ``<!-- validate: NAME -->``."""
    found = []
    pattern = r"<!-- validate: ([\w-]+) -->\s*```json\n(.*?)```"
    for name, block in re.findall(pattern, _text(doc), re.S):
        try:
            found.append((name, json.loads(block)))
        except json.JSONDecodeError:  # one object per line (counter-link frames)
            found.extend((name, json.loads(line)) for line in block.splitlines() if line.strip())
    return found


def test_documented_examples_validate(validators: dict[str, Draft202012Validator]) -> None:
    found = examples("integrator.md")
    assert {name for name, _ in found} == set(SCHEMA_NAMES)
    assert len(found) >= 20
    for name, obj in found:
        assert_valid(validators[name], obj)


def test_documented_rating_example_is_a_real_chain() -> None:
    ratings = [obj for name, obj in examples("integrator.md") if name == "rating"]
    assert ratings
    for record in ratings:
        assert independent_hash(record) == record["hash"]


def independent_hash(record: dict[str, Any]) -> str:
    """The recipe of docs/integrator.md, written without the project's code."""
    body = {k: v for k, v in record.items() if k not in ("hash", "sig")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def independent_signature_check(record: dict[str, Any], registered: str) -> None:
    """The recipe of docs/integrator.md §2.5, written without the project's code."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(registered.removeprefix("ed25519:")))
    sig = record["sig"]
    key.verify(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)), record["hash"].encode())


def request(rid: int, rtype: str, **body: Any) -> dict[str, Any]:
    return {"id": rid, "type": rtype, **body}


def start(rid: int, *cases: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return request(rid, "evaluation.start", stage="deliver", clerk=CLERK, cases=list(cases),
                   **extra)  # fmt: skip


@pytest.fixture
def app(tmp_path: Path) -> Any:
    config = tmp_path / "pad.toml"
    config.write_text(
        '[device]\nid = "440500-hall1-w12"\n[mqtt]\nenabled = false\n'
        '[counter]\nport = "dummy://"\n'
        f"[storage]\npath = {json.dumps(str(tmp_path / 'ratings.db'))}\n",
        encoding="utf-8",
    )
    pad = App(load_config([config]), clock=FakeClock())  # the shipped DummyLink keeps frames
    yield pad
    pad.store.close()


def test_real_counter_traffic_and_ratings_validate(
    app: Any, validators: dict[str, Draft202012Validator]
) -> None:
    replies: dict[int, dict[str, Any]] = {}

    def send(obj: dict[str, Any], *, valid: bool = True) -> dict[str, Any]:
        (assert_valid if valid else assert_invalid)(validators["counter-request"], obj)
        message = decode(encode(obj).rstrip(b"\n"))
        assert isinstance(message, Message)
        reply = app.handle(message)
        assert_valid(validators["counter-reply"], json.loads(encode(reply)))
        replies[obj["id"]] = reply
        return reply

    assert send(request(1, "status"))["state"] == "signed_out"
    assert send(request(2, "clerk.sign_in", clerk=CLERK))["ok"]
    assert send(start(3, ID_CARD))["ok"]
    app.act(PressLevel(Level.VERY_SATISFIED))
    thanks_ends = lambda: (app.clock.advance(app.config.session.thanks + 0.1), app.step())  # noqa: E731
    thanks_ends()  # told, and the window free again, when the 谢谢 ends (art. 4)
    assert send(start(4, FOOD, agencies=AGENCIES))["ok"]
    app.act(PressLevel(Level.VERY_DISSATISFIED))
    for action in (ToggleReason("110"), ToggleReason("115"), ToggleAgency(AGENCIES[0]),
                   ToggleReason("other"), TypeText("材料退回三次"), Submit()):  # fmt: skip
        app.act(action)
    thanks_ends()
    assert send(start(5, ID_CARD))["error"]["code"] == "already_rated"
    assert send(request(6, "evaluation.cancel"))["error"]["code"] == "not_presenting"
    no_identity = start(7, dict(FOOD, serial="X-1"), id_number="440500199001011234")
    assert send(no_identity, valid=False)["error"]["code"] == "unknown_field"
    assert send(request(8, "window.pause"))["ok"]
    assert send(start(9, dict(FOOD, serial="X-2")))["error"]["code"] == "paused"
    assert send(request(10, "window.resume"))["ok"]
    assert send(start(11, dict(FOOD, serial="X-3")))["ok"]
    assert send(start(12, dict(FOOD, serial="X-4")))["error"]["code"] == "busy"
    assert send(request(13, "evaluation.cancel"))["ok"]
    theme = {"code": "T01", "name": "开餐馆"}
    themed = start(14, ID_CARD | {"serial": "X-5"}, FOOD | {"serial": "X-6"}, theme=theme)
    assert send(themed)["ok"]
    app.act(PressLevel(Level.BASICALLY_SATISFIED))
    thanks_ends()
    status = send(request(15, "status"))
    assert status["outbox"] == 3 and status["online"] is False
    assert send(request(16, "clerk.sign_out"))["ok"]

    events = app.link.sent
    assert [e["outcome"] for e in events] == ["rated", "rated", "cancelled", "rated"]
    for event in events:
        assert_valid(validators["counter-event"], event)
    for message in events + list(replies.values()):
        assert "level" not in json.dumps(message), "the counter must never learn the level"

    records = list(app.store.records())
    assert [r["level"] for r in records] == ["very_satisfied", "very_dissatisfied",
                                             "basically_satisfied"]  # fmt: skip
    prev = GENESIS_HASH
    for record in records:
        assert_valid(validators["rating"], record)
        assert record["prev_hash"] == prev
        assert independent_hash(record) == record["hash"]
        independent_signature_check(record, app.devices.key().public.text)
        prev = record["hash"]
    assert records[1]["reasons"][-1] == {"code": "other", "text": "其他", "target": "other"}
    assert records[2]["theme"] == theme
    assert_valid(validators["ack"], {"ids": [r["id"] for r in records]})


def test_session_rating_and_bad_rating_validate(
    tmp_path: Path, validators: dict[str, Draft202012Validator]
) -> None:
    store = Store(tmp_path / "ratings.db", device_id="pad-1")
    clock = FakeClock()
    session = Session(ledger=StoreLedger(lambda: store), reasons=load_reasons(), clock=clock)
    session.start(parse_request({"stage": "accept", "clerk": CLERK, "cases": [FOOD]}))
    clock.advance(4.2)
    session.press(Level.SATISFIED)
    clock.advance(5)
    session.tick()
    session.start(parse_request({"stage": "deliver", "clerk": CLERK, "cases": [FOOD]}))
    session.press(Level.DISSATISFIED)
    session.toggle_reason("209")
    session.submit()
    good, bad = list(store.records())
    store.close()
    for record in (good, bad):
        assert_valid(validators["rating"], record)
    assert good["targets"] == ["clerk"] and good["elapsed_ms"] == 4200
    assert bad["reasons"] == [{"code": "209", "text": "未在承诺时间内办结", "target": "matter"}]

    rating = validators["rating"]
    for broken in (
        {k: v for k, v in bad.items() if k != "hash"},
        bad | {"reasons": []},
        bad | {"score": 8},
        bad | {"satisfaction": 4},
        good | {"comment": "好"},
        good | {"id_number": "440500199001011234"},
        bad | {"reasons": bad["reasons"] + [{"code": "other", "text": "其他", "target": "other"}]},
    ):
        assert_invalid(rating, broken)


def test_protocol_helpers_and_the_simulator_validate(
    validators: dict[str, Draft202012Validator],
) -> None:
    from evaluator.rules.errors import RequestError
    from kiosk.urlhandler.protocol_sim import Serial

    sim = Serial("sim://demo?first=0")
    try:
        assert_valid(validators["counter-request"], json.loads(sim._next_request()))
    finally:
        sim.close()
    issue_example = start(42, ID_CARD)
    assert_valid(validators["counter-request"], issue_example)
    assert_valid(validators["counter-reply"], reply_ok(42))
    assert_valid(validators["counter-reply"], reply_error(42, RequestError("busy", "x")))
    for line in (b"not json", b"[1]", b'{"type": "status"}', b'{"id": 1, "type": "x"}'):
        bad = decode(line)
        assert isinstance(bad, BadFrame)
        assert_valid(validators["counter-reply"], reply_error(bad.id, bad.error))
    too_long = next(iter(LineFramer().feed(b"x" * 5000 + b"\n")))
    assert isinstance(too_long, BadFrame)
    assert_valid(validators["counter-reply"], reply_error(too_long.id, too_long.error))
    for outcome in ("rated", "not_rated", "cancelled"):
        assert_valid(validators["counter-event"], finished_event(("A", "B"), outcome))


def test_schemas_refuse_what_must_never_be_sent(
    validators: dict[str, Draft202012Validator],
) -> None:
    good = start(1, ID_CARD)
    assert_valid(validators["counter-request"], good)
    for bad in (
        good | {"id_number": "440500199001011234"},
        good | {"phone": "13800000000"},
        good | {"cases": [ID_CARD | {"id_number": "440500199001011234"}]},
        good | {"stage": "accept"},  # 即办件 are rated after completion
        good | {"assess_number": 3},
        good | {"id": True},
        {k: v for k, v in good.items() if k != "clerk"},
        request(2, "clerk.sign_in"),
        request(3, "refresh"),
    ):
        assert_invalid(validators["counter-request"], bad)
    event = finished_event(("A",), "rated")
    assert_invalid(validators["counter-event"], event | {"level": "satisfied"})
    assert_invalid(validators["counter-event"], event | {"score": 10})
    assert_invalid(validators["counter-event"], event | {"outcome": "timeout"})
    assert_invalid(validators["counter-reply"], reply_ok(1) | {"level": "satisfied"})
    assert_invalid(validators["counter-reply"], reply_error(1, _err("nope")))
    assert_invalid(validators["ack"], {"ids": "01a218ba-8127-7b24-9c1f-be803d583727"})
    assert_invalid(validators["ack"], {})


def _err(code: str) -> Any:
    from evaluator.rules.errors import RequestError

    return RequestError(code, "x")


def test_rating_schema_requires_every_promised_field(
    validators: dict[str, Draft202012Validator],
) -> None:
    from evaluator.rules.records import RATING_FIELDS

    required = set(validators["rating"].schema["required"])
    assert set(RATING_FIELDS) <= required
    record = next(obj for n, obj in examples("integrator.md") if n == "rating")
    for field in RATING_FIELDS:
        assert_invalid(validators["rating"], {k: v for k, v in record.items() if k != field})
