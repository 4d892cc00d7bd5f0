"""Specification of evaluation requests from the clerk's business system (art. 9, 22, 24, 27–32)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.errors import EvaluatorError, RequestError
from evaluator.request import (
    CASES_MAX,
    SERIAL_MAX,
    Case,
    Clerk,
    EvaluationRequest,
    Theme,
    case_targets,
    parse_request,
)

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
