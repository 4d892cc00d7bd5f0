"""Evaluation requests from the clerk's business system: parsing, validation and targets.

Who is rated follows from the case kind and the stage (art. 9, 22, 27–32):

=========  ========  ========================================
kind       stage     rated targets
=========  ========  ========================================
instant    deliver   clerk and matter/agency (即办件: once, after completion)
promise    accept    clerk (承诺件: each window visit rates the clerk)
promise    deliver   clerk and matter/agency
consult    either    clerk only (查询咨询 in the hall, art. 32)
=========  ========  ========================================

Two or more cases of one matter are a batch rated once (art. 24); cases of different matters
belong together only under a theme (一件事, art. 31).  No citizen identity is accepted: unknown
fields are refused, so an ID number cannot slip into the record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluator.errors import RequestError

KINDS: tuple[str, ...] = ("instant", "promise", "consult")
STAGES: tuple[str, ...] = ("accept", "deliver")
#: Longest 办件编号 (national an..50) and 事项编码 (an..24 实施编码, some provinces longer).
SERIAL_MAX = 50
MATTER_CODE_MAX = 64
NAME_MAX = 200
CASES_MAX = 50

_SERIAL_RE = re.compile(r"^[0-9A-Za-z._:/-]+$")

_REQUEST_KEYS = {"cases", "stage", "clerk", "agencies", "theme", "assess_number"}
_CASE_KEYS = {"serial", "matter_code", "matter_name", "kind"}
_CLERK_KEYS = {"id", "name"}
_THEME_KEYS = {"code", "name"}


@dataclass(frozen=True)
class Case:
    """One 办件: serial 办件编号, matter code 事项编码, matter name 事项名称 and kind."""

    serial: str
    matter_code: str
    matter_name: str
    kind: str

    def to_json(self) -> dict[str, str]:
        return {
            "serial": self.serial,
            "matter_code": self.matter_code,
            "matter_name": self.matter_name,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Clerk:
    """The window clerk: 工号 ``id`` and name."""

    id: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class Theme:
    """A 一件事 theme grouping several matters (art. 31)."""

    code: str
    name: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name}


@dataclass(frozen=True)
class EvaluationRequest:
    """What the clerk's system asks the pad to present."""

    cases: tuple[Case, ...]
    stage: str
    clerk: Clerk
    agencies: tuple[str, ...] = ()
    theme: Theme | None = None
    assess_number: int = 1

    @property
    def serials(self) -> tuple[str, ...]:
        return tuple(c.serial for c in self.cases)

    @property
    def is_batch(self) -> bool:
        """Two or more cases of one matter, rated once for all (art. 24)."""
        return self.theme is None and len(self.cases) > 1

    def targets(self, cases: tuple[Case, ...] | None = None) -> tuple[str, ...]:
        """Who a rating of ``cases`` (default: all) rates: clerk, or clerk and matter."""
        chosen = self.cases if cases is None else cases
        rates_matter = any(case_targets(c.kind, self.stage) == ("clerk", "matter") for c in chosen)
        return ("clerk", "matter") if rates_matter else ("clerk",)


def case_targets(kind: str, stage: str) -> tuple[str, ...]:
    """Targets of one case of ``kind`` at ``stage`` (see the module table)."""
    if kind == "consult" or stage == "accept":
        return ("clerk",)
    return ("clerk", "matter")


def _text(
    obj: Mapping[str, Any], key: str, where: str, *, limit: int, required: bool = True
) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise RequestError("invalid_field", f"{where}{key} must be a non-empty string")
    value = value.strip()
    if not _encodable(value):
        raise RequestError("invalid_field", f"{where}{key} is not valid Unicode text")
    if len(value) > limit:
        raise RequestError("invalid_field", f"{where}{key} is longer than {limit} characters")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a JSON "\ud800" escape
        return False
    return True


def _no_unknown(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise RequestError(
            "unknown_field",
            f"{where}unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
        )


def parse_clerk(obj: object) -> Clerk:
    """Validate a ``clerk`` object: ``id`` (工号) and ``name``, each at most 32 characters."""
    if not isinstance(obj, Mapping):
        raise RequestError("invalid_field", "clerk must be an object with id and name")
    _no_unknown(obj, _CLERK_KEYS, "clerk.")
    return Clerk(_text(obj, "id", "clerk.", limit=32), _text(obj, "name", "clerk.", limit=32))


def parse_request(payload: Mapping[str, Any]) -> EvaluationRequest:
    """Validate a request body (the counter-link message without ``id``/``type``).

    Raises ``RequestError`` with a stable ``code`` and a message naming the offending field.
    """
    _no_unknown(payload, _REQUEST_KEYS, "")
    stage = payload.get("stage")
    if stage not in STAGES:
        raise RequestError("invalid_field", f"stage must be one of {', '.join(STAGES)}")
    clerk = parse_clerk(payload.get("clerk"))
    raw_cases = payload.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise RequestError("invalid_field", "cases must be a non-empty list")
    if len(raw_cases) > CASES_MAX:
        raise RequestError("invalid_field", f"at most {CASES_MAX} cases per request")
    cases: list[Case] = []
    for i, raw in enumerate(raw_cases):
        where = f"cases[{i}]."
        if not isinstance(raw, Mapping):
            raise RequestError("invalid_field", f"cases[{i}] must be an object")
        _no_unknown(raw, _CASE_KEYS, where)
        serial = _text(raw, "serial", where, limit=SERIAL_MAX)
        if not _SERIAL_RE.match(serial):
            raise RequestError(
                "invalid_field", f"{where}serial has characters outside [0-9A-Za-z._:/-]"
            )
        kind = raw.get("kind")
        if kind not in KINDS:
            raise RequestError("invalid_field", f"{where}kind must be one of {', '.join(KINDS)}")
        if kind == "instant" and stage == "accept":
            raise RequestError(
                "invalid_stage",
                f"{where}kind instant (即办件) is rated once after completion: use stage deliver",
            )
        cases.append(
            Case(
                serial,
                _text(raw, "matter_code", where, limit=MATTER_CODE_MAX),
                _text(raw, "matter_name", where, limit=NAME_MAX),
                str(kind),
            )
        )
    serials = [c.serial for c in cases]
    if len(set(serials)) != len(serials):
        raise RequestError("invalid_field", "cases contain the same serial twice")
    agencies_raw = payload.get("agencies", [])
    if not isinstance(agencies_raw, list) or not all(
        isinstance(a, str) and a.strip() and _encodable(a) for a in agencies_raw
    ):
        raise RequestError("invalid_field", "agencies must be a list of agency names")
    agencies = tuple(dict.fromkeys(a.strip() for a in agencies_raw))
    theme = None
    theme_obj = payload.get("theme")
    if theme_obj is not None:
        if not isinstance(theme_obj, Mapping):
            raise RequestError("invalid_field", "theme must be an object with code and name")
        _no_unknown(theme_obj, _THEME_KEYS, "theme.")
        theme = Theme(
            _text(theme_obj, "code", "theme.", limit=MATTER_CODE_MAX, required=False),
            _text(theme_obj, "name", "theme.", limit=NAME_MAX),
        )
    elif len({c.matter_code for c in cases}) > 1:
        raise RequestError(
            "mixed_matters",
            "cases of different matters are rated separately, or together under a theme (一件事)",
        )
    assess = payload.get("assess_number", 1)
    if type(assess) is not int or assess not in (1, 2):
        raise RequestError(
            "invalid_field", "assess_number must be 1 (first) or 2 (follow-up 追加评价)"
        )
    return EvaluationRequest(tuple(cases), str(stage), clerk, agencies, theme, int(assess))
