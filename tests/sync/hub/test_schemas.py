"""The published schemas, checked fast (jsonschema-rs) and explained slowly (jsonschema): the same
files, the same verdicts on the pads' real records, the detailed reason for a refusal."""

from __future__ import annotations

import json
from pathlib import Path

from sync.hub import schemas
from tests.sync.hub.helpers import chain, end_event, make_key, seal_all, status

DEVICE = "440500-hall1-w12"


def test_both_validators_are_built_from_the_published_file() -> None:
    published = json.loads(
        (Path(__file__).resolve().parents[3] / "docs/schemas/rating.schema.json").read_text()
    )
    assert schemas.schema("rating") == published
    assert schemas.fast_validator("rating") is not None
    assert schemas.fast_validator("no-such-schema") is None
    assert schemas.first_error("no-such-schema", {}) is None


def test_real_records_conform_for_both(tmp_path: Path) -> None:
    key = make_key(tmp_path)
    cases = {
        "rating": chain(key, DEVICE, 3),
        "event": seal_all(key, DEVICE, [end_event("S1"), end_event("S2", outcome="cancelled")]),
        "status": [json.loads(status(DEVICE, True)), json.loads(status(DEVICE, False))],
    }
    for name, instances in cases.items():
        for instance in instances:
            assert schemas.fast_validator(name).is_valid(instance), name
            assert next(iter(schemas.validator(name).iter_errors(instance)), None) is None, name
            assert schemas.first_error(name, instance) is None, name


def test_a_refusal_carries_the_detailed_reason(tmp_path: Path) -> None:
    (record,) = chain(make_key(tmp_path), DEVICE, 1)
    reason = schemas.first_error("rating", dict(record, level="great"))
    assert reason is not None
    assert reason.startswith("schema rating: level: 'great' is not one of")
    missing = {k: v for k, v in record.items() if k != "clerk"}
    assert "'clerk' is a required property" in (schemas.first_error("rating", missing) or "")


def test_a_pattern_is_anchored_as_json_schema_says(tmp_path: Path) -> None:
    """ECMA 262 ``$`` is the end of the text; Python's ``re`` also matches before a final
    newline, so the slow validator alone would let ``"440500\\n"`` through: the fast one refuses
    it and its own message is the reason."""
    (record,) = chain(make_key(tmp_path), DEVICE, 1)
    sneaky = dict(record, area_code="440500\n")
    assert next(iter(schemas.validator("rating").iter_errors(sneaky)), None) is None
    reason = schemas.first_error("rating", sneaky)
    assert reason is not None and reason.startswith("schema rating: area_code: ")
