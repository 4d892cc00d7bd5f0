"""Specification of evaluation requests from the clerk's business system (art. 9, 22, 24, 27–32)."""

from __future__ import annotations

import copy
import datetime as dt
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.rules.errors import EvaluatorError, RequestError
from evaluator.rules.levels import Level
from evaluator.rules.request import (
    CASES_MAX,
    SERIAL_MAX,
    Case,
    Clerk,
    EvaluationRequest,
    Theme,
    case_targets,
    parse_clerk,
    parse_request,
)
from kiosk.screen import Screen
from kiosk.view import ReasonItem, ScreenView
from tests.kiosk.screen_views import REASONS as SAMPLE_REASONS

CLERK = {"id": "A1023", "name": "陈晓明"}


def case(
    serial: str = "44050020240001",
    matter_code: str = "11440500007000000X4440511003000",
    matter_name: str = "食品经营许可证核发",
    kind: str = "instant",
) -> dict[str, str]:
    return {"serial": serial, "matter_code": matter_code, "matter_name": matter_name, "kind": kind}


def body(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"clerk": dict(CLERK), "stage": "deliver", "cases": [case()]}
    payload.update(overrides)
    return payload


def terminal_body(terminal: Any = "ZZ-0107", **overrides: Any) -> dict[str, Any]:
    """A self-service terminal's request: ``terminal`` instead of ``clerk`` (art. 18/23)."""
    payload = {k: v for k, v in body(**overrides).items() if k != "clerk"}
    payload["terminal"] = terminal
    return payload


def refused(payload: Any, code: str, *fragments: str) -> RequestError:
    with pytest.raises(RequestError) as info:
        parse_request(payload)
    err = info.value
    assert err.code == code, f"{err.code}: {err.message}"
    for fragment in fragments:
        assert fragment in err.message, err.message
        assert fragment in str(err)
    return err


# --- accepted requests ------------------------------------------------------------------------


def test_issue_example_is_accepted() -> None:
    payload = {
        "clerk": {"id": "A1023", "name": "陈晓明"},
        "stage": "deliver",
        "cases": [
            {
                "serial": "2024-0001",
                "matter_code": "440500-FW-001",
                "matter_name": "个体工商户设立登记",
                "kind": "instant",
            }
        ],
    }
    original = copy.deepcopy(payload)
    req = parse_request(payload)
    assert req == EvaluationRequest(
        cases=(Case("2024-0001", "440500-FW-001", "个体工商户设立登记", "instant"),),
        stage="deliver",
        clerk=Clerk("A1023", "陈晓明"),
        agencies=(),
        theme=None,
        assess_number=1,
    )
    assert req.serials == ("2024-0001",)
    assert req.targets() == ("clerk", "matter")
    assert not req.is_batch
    assert payload == original  # the caller's dict is not modified


def test_to_json_round_trips_the_parts() -> None:
    req = parse_request(body(theme={"code": "T1", "name": "开办餐饮店"}))
    assert req.cases[0].to_json() == case()
    assert req.clerk.to_json() == CLERK
    assert req.theme is not None
    assert req.theme.to_json() == {"code": "T1", "name": "开办餐饮店"}


def test_text_fields_are_stripped() -> None:
    req = parse_request(
        body(clerk={"id": " A1023 ", "name": " 陈晓明\n"}, cases=[case(serial=" S1 ")])
    )
    assert req.clerk == Clerk("A1023", "陈晓明")
    assert req.serials == ("S1",)


# --- targets ----------------------------------------------------------------------------------

TARGETS_TABLE = [
    ("instant", "deliver", ("clerk", "matter")),
    ("promise", "accept", ("clerk",)),
    ("promise", "deliver", ("clerk", "matter")),
    ("consult", "accept", ("clerk",)),
    ("consult", "deliver", ("clerk",)),
]


@pytest.mark.parametrize(("kind", "stage", "targets"), TARGETS_TABLE)
def test_targets_follow_kind_and_stage(kind: str, stage: str, targets: tuple[str, ...]) -> None:
    assert case_targets(kind, stage) == targets
    req = parse_request(body(stage=stage, cases=[case(kind=kind)]))
    assert req.targets() == targets


def test_targets_of_a_theme_cover_any_case_that_rates_the_matter() -> None:
    req = parse_request(
        body(
            theme={"code": "T1", "name": "开办餐饮店"},
            cases=[
                case(serial="S1", matter_code="M1", kind="consult"),
                case(serial="S2", matter_code="M2", kind="promise"),
            ],
        )
    )
    assert req.targets() == ("clerk", "matter")
    assert req.targets((req.cases[0],)) == ("clerk",)
    assert req.targets((req.cases[1],)) == ("clerk", "matter")


# --- batches and themes (art. 24, 31) ---------------------------------------------------------


def test_cases_of_one_matter_are_a_batch() -> None:
    req = parse_request(body(cases=[case(serial="S1"), case(serial="S2"), case(serial="S3")]))
    assert req.is_batch
    assert req.serials == ("S1", "S2", "S3")


def test_single_case_is_not_a_batch() -> None:
    assert not parse_request(body()).is_batch


def test_different_matters_without_theme_are_refused() -> None:
    refused(
        body(cases=[case(serial="S1", matter_code="M1"), case(serial="S2", matter_code="M2")]),
        "mixed_matters",
        "theme",
    )


def test_different_matters_under_a_theme_are_accepted() -> None:
    req = parse_request(
        body(
            theme={"code": "YJS-001", "name": "我要开餐馆"},
            cases=[case(serial="S1", matter_code="M1"), case(serial="S2", matter_code="M2")],
        )
    )
    assert req.theme == Theme("YJS-001", "我要开餐馆")
    assert not req.is_batch
    assert {c.matter_code for c in req.cases} == {"M1", "M2"}


def test_theme_code_is_optional_but_name_is_required() -> None:
    assert parse_request(body(theme={"name": "我要开餐馆"})).theme == Theme("", "我要开餐馆")
    refused(body(theme={"code": "T1"}), "invalid_field", "theme.name")
    refused(body(theme="我要开餐馆"), "invalid_field", "theme")
    refused(body(theme={"name": "x", "owner": "y"}), "unknown_field", "'owner'")


# --- stage and kind ---------------------------------------------------------------------------


def test_instant_case_at_accept_is_invalid_stage() -> None:
    refused(
        body(stage="accept", cases=[case(kind="instant")]), "invalid_stage", "cases[0]", "deliver"
    )


@pytest.mark.parametrize("stage", ["complete", "", None, 1, "ACCEPT", ["deliver"]])
def test_bad_stage_is_refused(stage: Any) -> None:
    refused(body(stage=stage), "invalid_field", "stage", "accept", "deliver")


def test_missing_stage_is_refused() -> None:
    payload = body()
    del payload["stage"]
    refused(payload, "invalid_field", "stage")


@pytest.mark.parametrize("kind", ["theme", "", None, "Instant", 1])
def test_bad_kind_is_refused(kind: Any) -> None:
    refused(body(cases=[case(kind=kind)]), "invalid_field", "cases[0].kind", "instant", "consult")


# --- unknown fields: no citizen identity can slip in (art. 4) --------------------------------


@pytest.mark.parametrize("field", ["id_number", "phone", "citizen", "id", "type"])
def test_unknown_top_level_field_is_refused_by_name(field: str) -> None:
    refused(body(**{field: "440582199001011234"}), "unknown_field", repr(field))


@pytest.mark.parametrize("field", ["id_number", "applicant_phone", "applicant"])
def test_unknown_case_field_is_refused_by_name(field: str) -> None:
    refused(
        body(cases=[case(), {**case(serial="S2"), field: "x"}]),
        "unknown_field",
        "cases[1]",
        repr(field),
    )


def test_unknown_clerk_field_is_refused_by_name() -> None:
    refused(body(clerk={**CLERK, "id_number": "x"}), "unknown_field", "clerk.", "'id_number'")


# --- clerk and cases --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clerk", "fragment"),
    [
        (None, "clerk"),
        ("A1023", "clerk"),
        ({"name": "陈晓明"}, "clerk.id"),
        ({"id": "A1023"}, "clerk.name"),
        ({"id": "  ", "name": "陈晓明"}, "clerk.id"),
        ({"id": 1023, "name": "陈晓明"}, "clerk.id"),
    ],
)
def test_bad_clerk_is_refused(clerk: Any, fragment: str) -> None:
    refused(body(clerk=clerk), "invalid_field", fragment)


@pytest.mark.parametrize("cases", [None, [], "S1", {"serial": "S1"}, [None], ["S1"]])
def test_bad_cases_container_is_refused(cases: Any) -> None:
    refused(body(cases=cases), "invalid_field", "cases")


def test_too_many_cases_are_refused() -> None:
    many = [case(serial=f"S{i}") for i in range(CASES_MAX + 1)]
    refused(body(cases=many), "invalid_field", str(CASES_MAX))
    assert parse_request(body(cases=many[:CASES_MAX])).is_batch


@pytest.mark.parametrize("field", ["matter_code", "matter_name", "serial"])
def test_missing_case_text_is_refused(field: str) -> None:
    c = case()
    del c[field]
    refused(body(cases=[c]), "invalid_field", f"cases[0].{field}")


def test_duplicate_serial_is_refused() -> None:
    refused(body(cases=[case(serial="S1"), case(serial="S1")]), "invalid_field", "same serial")


def test_serial_of_max_length_is_accepted() -> None:
    serial = "A" * SERIAL_MAX
    assert SERIAL_MAX == 50
    assert parse_request(body(cases=[case(serial=serial)])).serials == (serial,)


def test_serial_too_long_is_refused() -> None:
    refused(body(cases=[case(serial="A" * (SERIAL_MAX + 1))]), "invalid_field", "serial", "50")


@pytest.mark.parametrize("serial", ["A 1", "办件001", "A1;DROP", "A1\nB", "A1#", "Ａ1", "٣"])
def test_serial_with_bad_characters_is_refused(serial: str) -> None:
    refused(body(cases=[case(serial=serial)]), "invalid_field", "cases[0].serial")


@pytest.mark.parametrize("serial", ["0123456789", "ab.CD_-1", "440500:2024/0001"])
def test_serial_allowed_characters(serial: str) -> None:
    assert parse_request(body(cases=[case(serial=serial)])).serials == (serial,)


# --- agencies (art. 29) -----------------------------------------------------------------------


def test_agencies_are_stripped_and_deduplicated_in_order() -> None:
    req = parse_request(body(agencies=["市市场监管局", "市税务局", " 市市场监管局 ", "市税务局"]))
    assert req.agencies == ("市市场监管局", "市税务局")


@pytest.mark.parametrize("agencies", ["市税务局", ["市税务局", ""], ["  "], [1], {"a": "b"}])
def test_bad_agencies_are_refused(agencies: Any) -> None:
    refused(body(agencies=agencies), "invalid_field", "agencies")


# --- assess_number (1 first, 2 追加评价) ------------------------------------------------------


@pytest.mark.parametrize("number", [1, 2])
def test_assess_number_one_or_two_is_accepted(number: int) -> None:
    assert parse_request(body(assess_number=number)).assess_number == number


def test_assess_number_defaults_to_one() -> None:
    assert parse_request(body()).assess_number == 1


@pytest.mark.parametrize("number", [0, 3, -1, True, False, "1", "2", None, 1.5, [1]])
def test_other_assess_numbers_are_refused(number: Any) -> None:
    refused(body(assess_number=number), "invalid_field", "assess_number")


# --- errors -----------------------------------------------------------------------------------


def test_request_error_is_an_evaluator_value_error() -> None:
    err = RequestError("x", "y")
    assert isinstance(err, EvaluatorError) and isinstance(err, ValueError)
    assert (err.code, err.message, str(err)) == ("x", "y", "y")


def test_text_that_cannot_be_encoded_is_refused() -> None:
    refused(body(clerk={"id": "A1023", "name": "陈\ud800"}), "invalid_field", "clerk.name")


# --- robustness: nothing but RequestError escapes ---------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=60)


def json_values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        json_scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=20,
    )


any_key = st.text(max_size=12)

valid_case = st.fixed_dictionaries(
    {
        "serial": st.sampled_from(["S1", "S2", "S3", "2024/0001"]),
        "matter_code": st.sampled_from(["M1", "M2"]),
        "matter_name": st.sampled_from(["食品经营许可证核发", "n"]),
        "kind": st.sampled_from(["instant", "promise", "consult"]),
    }
)
valid_request = st.fixed_dictionaries(
    {
        "stage": st.sampled_from(["accept", "deliver"]),
        "clerk": st.just(CLERK),
        "cases": st.lists(valid_case, min_size=1, max_size=3),
    },
    optional={
        "agencies": st.lists(
            st.sampled_from(["市税务局", " 市税务局", "市市场监管局"]), max_size=3
        ),
        "theme": st.fixed_dictionaries(
            {"name": st.just("我要开餐馆")}, optional={"code": st.just("T")}
        ),
        "assess_number": st.sampled_from([1, 2]),
    },
)


@st.composite
def mutated_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A plausible request with a few random edits anywhere in its tree."""
    payload = copy.deepcopy(draw(valid_request))
    for _ in range(draw(st.integers(0, 3))):
        # Walk down to a random container, then replace, delete or add one entry.
        node: Any = payload
        while True:
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
            containers = [k for k, v in children if isinstance(v, dict | list) and v]
            if not containers or draw(st.booleans()):
                break
            node = node[draw(st.sampled_from(containers))]
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "add" or not keys:
            if isinstance(node, dict):
                node[draw(any_key)] = draw(json_values(any_key))
            else:
                node.append(draw(json_values(any_key)))
        elif action == "delete":
            del node[draw(st.sampled_from(keys))]
        else:
            node[draw(st.sampled_from(keys))] = draw(json_values(any_key))
    return payload


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(any_key, json_values(any_key), max_size=6))
def test_arbitrary_json_objects_raise_only_request_error(payload: dict[str, Any]) -> None:
    try:
        parse_request(payload)
    except RequestError as err:
        assert err.code in {"invalid_field", "unknown_field", "invalid_stage", "mixed_matters"}


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_requests())
def test_nearly_valid_requests_raise_only_request_error(payload: dict[str, Any]) -> None:
    try:
        req = parse_request(payload)
    except RequestError as err:
        assert err.code in {"invalid_field", "unknown_field", "invalid_stage", "mixed_matters"}
        assert err.message
    else:
        assert req.stage in ("accept", "deliver")
        assert req.cases and len(set(req.serials)) == len(req.serials)
        assert req.assess_number in (1, 2)
        assert req.theme is not None or len({c.matter_code for c in req.cases}) == 1


# --- text the pad can show (issue 5) -----------------------------------------------------------

#: Every displayed text field: (name in the error, how to put ``text`` into a valid request).
TEXT_FIELDS: dict[str, Any] = {
    "clerk.id": lambda t: body(clerk={"id": t, "name": "陈晓明"}),
    "clerk.name": lambda t: body(clerk={"id": "A1023", "name": t}),
    "cases[0].matter_code": lambda t: body(cases=[case(matter_code=t)]),
    "cases[0].matter_name": lambda t: body(cases=[case(matter_name=t)]),
    "agencies[1]": lambda t: body(agencies=["市税务局", t]),
    "theme.code": lambda t: body(theme={"code": t, "name": "我要开餐馆"}),
    "theme.name": lambda t: body(theme={"code": "T1", "name": t}),
    "terminal": lambda t: terminal_body(t),
}
UNSHOWABLE = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
unshowable_chars = st.characters(categories=UNSHOWABLE) | st.integers(0xD800, 0xDFFF).map(chr)


@settings(max_examples=500)
@given(
    field=st.sampled_from(sorted(TEXT_FIELDS)),
    bad=unshowable_chars,
    before=st.text(st.sampled_from("食品许可AZ09 -"), max_size=5),
    after=st.text(st.sampled_from("食品许可AZ09 -"), max_size=5),
)
def test_a_character_the_pad_cannot_show_is_refused_in_every_text_field(
    field: str, bad: str, before: str, after: str
) -> None:
    assert unicodedata.category(bad) in UNSHOWABLE
    err = refused(TEXT_FIELDS[field]("许可" + before + bad + after + "证"), "invalid_field", field)
    assert f"U+{ord(bad):04X}" in err.message


@pytest.mark.parametrize(
    "text",
    ["陈\x00晓明", "陈\n晓明", "陈\t明", "\u200d陈", "陈\u2028晓", "陈\u2029明", "\ue000"],
)
def test_parse_clerk_refuses_unshowable_text(text: str) -> None:
    for clerk in ({"id": "A1", "name": text}, {"id": text, "name": "陈晓明"}):
        with pytest.raises(RequestError) as info:
            parse_clerk(clerk)
        assert info.value.code == "invalid_field"
        assert "clerk." in info.value.message


def test_nul_in_matter_name_no_longer_reaches_the_screen() -> None:
    """The issue's crash: ``ValueError: embedded null character`` from pygame."""
    refused(body(cases=[case(matter_name="食品\x00经营")]), "invalid_field", "matter_name")


@pytest.mark.parametrize(
    "marks", ["\u034f", "\ufe0f\ufe0f", "\u0301", " \u0301 \u0302 ", "\U000e0100"]
)
@pytest.mark.parametrize("field", sorted(TEXT_FIELDS))
def test_text_of_combining_marks_only_is_refused(field: str, marks: str) -> None:
    """Marks alone show nothing (several have no width at all in WenQuanYi)."""
    refused(TEXT_FIELDS[field](marks), "invalid_field", field, "no letter")


def test_visible_unicode_is_still_accepted() -> None:
    for text in (
        "陈晓明",
        "Ｏ'Brien-李",
        "ǅ",
        "市\u3000税务局",
        "食品經營許可",
        "e\u0301",
        "Ⅻ",
        "№",
    ):
        for make in TEXT_FIELDS.values():
            parse_request(make(text))


def _screen_views(req: EvaluationRequest) -> list[ScreenView]:
    """What ``App.view`` shows for a request: presenting, then the reasons screen."""
    base: dict[str, Any] = {
        "window": "1号窗口",
        "clerk_name": req.clerk.name,
        "clerk_id": req.clerk.id,
        "cases": tuple((c.matter_name, c.serial) for c in req.cases),
        "theme": req.theme.name if req.theme else "",
        "seconds_left": 60,
    }
    items = tuple(ReasonItem(r.code, r.text, r.target) for r in SAMPLE_REASONS)
    return [
        ScreenView("presenting", **base),
        ScreenView(
            "reasons",
            level=Level.DISSATISFIED,
            reasons=items,
            agencies=tuple((a, i == 0) for i, a in enumerate(req.agencies)),
            **base,
        ),
    ]


#: Any character, with extra weight on those that draw nothing or are wide.
TRICKY = st.characters() | st.sampled_from(
    list("\u034f\ufe0f\u0301\u203e\u200d\x00\u3000 😀𠀀食W\n")
)


@pytest.fixture(scope="module")
def real_screen() -> Iterator[Screen]:
    s = Screen(driver="dummy")
    yield s
    s.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(TRICKY, min_size=1, max_size=60), min_size=7, max_size=7))
def test_every_accepted_request_renders_on_the_real_screen(
    real_screen: Screen, texts: list[str]
) -> None:
    payload = body(
        clerk={"id": texts[0][:32], "name": texts[1][:32]},
        cases=[case(matter_code=texts[2], matter_name=texts[3])],
        agencies=[texts[4], "市税务局"],
        theme={"code": texts[5], "name": texts[6]},
    )
    try:
        req = parse_request(payload)
    except RequestError as err:
        assert err.code == "invalid_field"
        return
    for view in _screen_views(req):
        real_screen.render(view)  # must not raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(TRICKY, min_size=1, max_size=32))
def test_every_accepted_clerk_renders_on_the_real_screen(real_screen: Screen, name: str) -> None:
    try:
        clerk = parse_clerk({"id": name, "name": name})
    except RequestError:
        return
    real_screen.render(ScreenView("idle", clerk_name=clerk.name, clerk_id=clerk.id))
    real_screen.render(ScreenView("presenting", clerk_name=clerk.name, clerk_id=clerk.id,
                                  cases=(("食品经营许可", "S1"),)))  # fmt: skip


# --- no citizen identity (art. 4, issue 5) -----------------------------------------------------


def with_check_digit(first17: str) -> str:
    """An independent GB 11643 check character: ISO 7064 MOD 11-2 written out."""
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(first17))
    return first17 + "10X98765432"[total % 11]


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    area = draw(st.integers(110000, 829999))
    born = draw(st.dates(dt.date(1900, 1, 1), dt.date(2026, 12, 31)))
    sequence = draw(st.integers(0, 999))
    return with_check_digit(f"{area}{born:%Y%m%d}{sequence:03d}")


IDENTITY_FIELDS = sorted(set(TEXT_FIELDS))
framing = st.sampled_from(["", "食品", "A-", "申请人 ", "第", "x"])


@settings(max_examples=400)
@given(field=st.sampled_from(IDENTITY_FIELDS), number=id_numbers(), head=framing, tail=framing,
       lower=st.booleans())  # fmt: skip
def test_a_valid_resident_id_number_anywhere_in_a_text_field_is_refused(
    field: str, number: str, head: str, tail: str, lower: bool
) -> None:
    shown = number.lower() if lower else number
    err = refused(TEXT_FIELDS[field](head + shown + tail), "invalid_field", field, "ID number")
    assert number not in err.message and number[6:14] not in err.message
    assert shown not in str(err)


def test_full_width_digits_do_not_hide_an_id_number() -> None:
    number = with_check_digit("44050719850214123")
    wide = "".join(chr(ord(c) + 0xFEE0) for c in number)
    refused(body(cases=[case(matter_name=f"申请人{wide}")]), "invalid_field", "matter_name")


@pytest.mark.parametrize(
    "text",
    [
        "44050719850214123"
        + "0123456789X".replace(with_check_digit("44050719850214123")[-1], "")[0],
        "440507" + "19850230" + "123" + "0",  # 30 February
        "440507" + "18991231" + "123" + "0",  # before 1900
        "440507" + "19851301" + "123" + "0",  # month 13
        "1" + with_check_digit("44050719850214123"),  # inside a longer digit run
        with_check_digit("44050719850214123") + "7",
        "011440500007000000X4440511003000",
    ],
)
def test_eighteen_characters_that_are_not_an_id_number_are_accepted(text: str) -> None:
    for field in ("cases[0].matter_name", "cases[0].matter_code", "theme.name"):
        parse_request(TEXT_FIELDS[field](text))


def test_impossible_dates_fail_even_with_a_right_check_digit() -> None:
    for date in ("19850230", "18991231", "19851301", "19850000"):
        text = with_check_digit(f"440507{date}123")
        parse_request(body(cases=[case(matter_name=f"材料{text}")]))


PHONES = [
    "13812345678",
    "19912345678",
    "138 1234 5678",
    "138-1234-5678",
    "+86 138 1234 5678",
    "+8613812345678",
    "86 13812345678",
    "8613812345678",
    "0086-138-1234-5678",
    "１３８１２３４５６７８",
    "138－1234－5678",
]


@pytest.mark.parametrize("phone", PHONES)
@pytest.mark.parametrize("field", IDENTITY_FIELDS)
def test_a_mobile_number_in_any_spelling_is_refused(field: str, phone: str) -> None:
    text = f"联系{phone}"[:32]
    err = refused(TEXT_FIELDS[field](text), "invalid_field", field, "phone")
    digits = "".join(c for c in phone if c.isdigit())
    assert phone not in err.message and digits[-11:] not in err.message
    assert "12345678" not in err.message and "1234" not in err.message


@pytest.mark.parametrize(
    "text",
    ["12812345678", "11012345678", "1381234567", "138123456789", "913812345678", "窗口12号"],
)
def test_numbers_that_are_not_mobile_numbers_are_accepted(text: str) -> None:
    for field in ("cases[0].matter_name", "cases[0].matter_code", "agencies[1]"):
        parse_request(TEXT_FIELDS[field](text))


@settings(max_examples=300)
@given(number=id_numbers())
def test_serials_shaped_like_id_numbers_are_accepted(number: str) -> None:
    """A 业务流水号 is often area + date + sequence; about one in eleven passes the check digit."""
    req = parse_request(body(cases=[case(serial=number)]))
    assert req.serials == (number,)


def test_a_serial_shaped_like_a_phone_number_is_accepted() -> None:
    assert parse_request(body(cases=[case(serial="13812345678")])).serials == ("13812345678",)


@pytest.mark.parametrize(
    "text", ["1 3812345678", "1-38-1234-5678", "+86 1 38 1234 5678", "1 3 8 1 2 3 4 5 6 7 8"]
)
def test_a_separator_anywhere_between_the_digits_does_not_hide_a_mobile_number(
    text: str,
) -> None:
    from evaluator.rules.request import identity_in

    assert identity_in(f"联系{text}") is not None


# --- self-service terminal (自助终端, art. 18/23, art. 9) ------------------------------------


def test_a_terminal_request_names_the_terminal_and_no_clerk() -> None:
    req = parse_request(terminal_body(" ZZ-0107 "))
    assert (req.terminal, req.clerk, req.self_service) == ("ZZ-0107", None, True)
    window = parse_request(body())
    assert (window.terminal, window.self_service) == (None, False)
    assert window.clerk == Clerk("A1023", "陈晓明")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(terminal_body() | {"clerk": dict(CLERK)}, id="both"),
        pytest.param(terminal_body() | {"clerk": None}, id="both-clerk-null"),
        pytest.param({k: v for k, v in body().items() if k != "clerk"}, id="neither"),
    ],
)
def test_exactly_one_of_clerk_and_terminal(payload: dict[str, Any]) -> None:
    refused(payload, "invalid_field", "exactly one of clerk", "terminal")


@pytest.mark.parametrize("terminal", [None, "", "   ", 7, ["ZZ-1"], {"id": "ZZ-1"}])
def test_a_terminal_that_is_not_a_non_empty_string_is_refused(terminal: Any) -> None:
    refused(terminal_body(terminal), "invalid_field", "terminal")


def test_a_terminal_number_is_at_most_32_characters() -> None:
    assert parse_request(terminal_body("终" * 32)).terminal == "终" * 32
    refused(terminal_body("终" * 33), "invalid_field", "terminal", "32")


def test_a_request_is_built_with_exactly_one_of_clerk_and_terminal() -> None:
    cases = (Case("S1", "M1", "户籍", "instant"),)
    with pytest.raises(ValueError, match="exactly one"):
        EvaluationRequest(cases, "deliver", None)
    with pytest.raises(ValueError, match="exactly one"):
        EvaluationRequest(cases, "deliver", Clerk("A1", "李娜"), terminal="ZZ-1")


@pytest.mark.parametrize("kind", ["instant", "promise", "consult"])
@pytest.mark.parametrize("stage", ["accept", "deliver"])
def test_a_terminal_rates_the_matter_only_whatever_the_kind_and_stage(
    kind: str, stage: str
) -> None:
    """Art. 9: at a self-service terminal no clerk serves, so only the matter is rated."""
    if kind == "instant" and stage == "accept":
        refused(terminal_body(stage=stage, cases=[case(kind=kind)]), "invalid_stage")
        return
    req = parse_request(terminal_body(stage=stage, cases=[case(kind=kind)]))
    assert req.targets() == ("matter",)
    assert req.targets(req.cases) == ("matter",)
