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

A self-service terminal (自助终端, art. 18/23) has no clerk: its request names the terminal
(``terminal``, its 终端机编号) instead of ``clerk`` (exactly one of the two), and its rating rates
the matter only, whatever the kind and stage (art. 9).

Two or more cases of one matter are a batch rated once (art. 24); cases of different matters
belong together only under a theme (一件事, art. 31).

Every text field must be text the pad can show: a character of Unicode category Cc (controls,
NUL, tab, newline), Cf (format characters, zero-width joiner included), Cs (lone surrogates), Co
(private use), Cn (unassigned, noncharacters), Zl or Zp (line and paragraph separators) is
refused with ``invalid_field`` naming the field.

No citizen identity is accepted (art. 4): unknown fields are refused, and the free-text fields
(``matter_name``, ``matter_code``, ``agencies``, ``theme.name``, ``theme.code``, ``clerk.id``,
``clerk.name``, ``terminal``) are refused when they contain a resident ID number (GB 11643, valid
date and check digit) or a mainland mobile number; the error never repeats the number.  Case
serials are not scanned: a 业务流水号 often has the shape of an ID number (area + date + sequence),
so the business system must simply never put identity in a serial (docs/integrator.md).
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluator.rules.errors import RequestError

KINDS: tuple[str, ...] = ("instant", "promise", "consult")
STAGES: tuple[str, ...] = ("accept", "deliver")
#: Longest 办件编号 (national an..50) and 事项编码 (an..24 实施编码, some provinces longer).
SERIAL_MAX = 50
MATTER_CODE_MAX = 64
NAME_MAX = 200
CASES_MAX = 50

_SERIAL_RE = re.compile(r"^[0-9A-Za-z._:/-]+$")

_REQUEST_KEYS = {
    "cases",
    "stage",
    "clerk",
    "terminal",
    "agencies",
    "theme",
    "assess_number",
    "visit",
}
#: Longest 工号, clerk name and 终端机编号.
PERSON_MAX = 32
#: Highest window-visit number of a 承诺件 before completion (art. 22).
VISIT_MAX = 99
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
    """What the clerk's system (or a self-service terminal's software) asks the pad to present.

    Exactly one of ``clerk`` (a window) and ``terminal`` (a self-service terminal's 终端机编号)
    is set.
    """

    cases: tuple[Case, ...]
    stage: str
    clerk: Clerk | None
    agencies: tuple[str, ...] = ()
    theme: Theme | None = None
    assess_number: int = 1
    visit: int = 1
    terminal: str | None = None

    def __post_init__(self) -> None:
        if (self.clerk is None) == (self.terminal is None):
            raise ValueError("a request names exactly one of clerk and terminal")

    @property
    def self_service(self) -> bool:
        """From a self-service terminal (自助终端): no clerk, the matter alone is rated."""
        return self.terminal is not None

    @property
    def serials(self) -> tuple[str, ...]:
        return tuple(c.serial for c in self.cases)

    def slots(self, cases: tuple[Case, ...] | None = None) -> tuple[tuple[str, str], ...]:
        """``(serial, slot)`` of each case: what one rating of it may occupy once (art. 22)."""
        chosen = self.cases if cases is None else cases
        return tuple((c.serial, rating_slot(c.kind, self.stage, self.visit)) for c in chosen)

    @property
    def is_batch(self) -> bool:
        """Two or more cases of one matter, rated once for all (art. 24)."""
        return self.theme is None and len(self.cases) > 1

    def targets(self, cases: tuple[Case, ...] | None = None) -> tuple[str, ...]:
        """Who a rating of ``cases`` (default: all) rates: clerk, or clerk and matter; the
        matter alone for a self-service terminal (art. 9: no clerk to rate)."""
        if self.self_service:
            return ("matter",)
        chosen = self.cases if cases is None else cases
        rates_matter = any(case_targets(c.kind, self.stage) == ("clerk", "matter") for c in chosen)
        return ("clerk", "matter") if rates_matter else ("clerk",)


def rating_slot(kind: str, stage: str, visit: int = 1) -> str:
    """The slot a rating of one case occupies; each (case, slot, assess number) is rated once.

    A 承诺件 rates the clerk once per window visit before completion (``accept.1``, ``accept.2``…)
    and once at delivery (``deliver``); a 即办件 once at delivery; a consult (查询咨询) case once in
    total, whatever stage is sent (``consult``).
    """
    if kind == "consult":
        return "consult"
    if stage == "accept":
        return f"accept.{visit}"
    return stage


def case_targets(kind: str, stage: str) -> tuple[str, ...]:
    """Targets of one case of ``kind`` at ``stage`` (see the module table)."""
    if kind == "consult" or stage == "accept":
        return ("clerk",)
    return ("clerk", "matter")


def _text(
    obj: Mapping[str, Any],
    key: str,
    where: str,
    *,
    limit: int,
    required: bool = True,
    identity: bool = True,
) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise RequestError("invalid_field", f"{where}{key} must be a non-empty string")
    return _checked_text(value, f"{where}{key}", limit=limit, identity=identity)


def _checked_text(value: str, field: str, *, limit: int, identity: bool = True) -> str:
    """``value`` stripped, or ``RequestError`` naming ``field`` when what is left cannot be shown,
    is too long, or (with ``identity``) carries a citizen ID number or mobile number.  Surrounding
    whitespace (a trailing newline too) is stripped first: it is never shown."""
    value = value.strip()
    bad = unshowable(value)
    if bad is not None:
        raise RequestError(
            "invalid_field",
            f"{field} contains a character that cannot be shown: {bad} "
            "(control, format, surrogate, private-use, unassigned or line/paragraph separator)",
        )
    if not any(unicodedata.category(char)[0] in "LNPS" for char in value):
        raise RequestError(
            "invalid_field",
            f"{field} has no letter, digit, punctuation or symbol to show (only marks or spaces)",
        )
    if len(value) > limit:
        raise RequestError("invalid_field", f"{field} is longer than {limit} characters")
    if identity:
        found = identity_in(value)
        if found is not None:
            raise RequestError(
                "invalid_field",
                f"{field} contains what looks like a {found}; citizen identity is never "
                "accepted (art. 4): send only the matter, agency and clerk",
            )
    return value


#: Unicode categories a displayed text may not contain: controls, format characters (ZWJ too:
#: nothing on the pad needs emoji sequences), surrogates, private use, unassigned, and line /
#: paragraph separators (they change the layout).
UNSHOWABLE_CATEGORIES: frozenset[str] = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def unshowable(value: str) -> str | None:
    """``"U+XXXX"`` of the first character the pad cannot show, or ``None`` if all can be."""
    for char in value:
        if unicodedata.category(char) in UNSHOWABLE_CATEGORIES:
            return f"U+{ord(char):04X}"
    return None


# Digits are compared after NFKC (full-width ０-９ and Ｘ become ASCII); any other decimal
# digit (e.g. Arabic-Indic) is mapped to its ASCII value, so no script hides a number.
_ID_RE = re.compile(r"(?<![0-9])([1-9][0-9]{5})([0-9]{8})[0-9]{3}([0-9X])(?![0-9])")
_PHONE_RE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[ -]*)?1[ -]?[3-9](?:[ -]?[0-9]){9}(?![0-9])")
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The GB 11643 check character (ISO 7064 MOD 11-2) of 17 ASCII digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def _ascii_digits(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).upper()
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)


def _valid_birth_date(digits: str) -> bool:
    try:
        born = datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return born.year >= 1900


def identity_in(value: str) -> str | None:
    """What kind of citizen identity ``value`` carries (never the number itself), or ``None``.

    A resident ID number: 18 characters not inside a longer digit run, a 6-digit area, a real
    birth date from 1900 on, a 3-digit sequence and the right MOD 11-2 check character.  A
    mainland mobile number: 11 digits ``1[3-9]…``, optionally after ``+86``/``0086``/``86``,
    with single spaces or hyphens allowed between digits.
    """
    text = _ascii_digits(value)
    for match in _ID_RE.finditer(text):
        number = match.group(0)
        if _valid_birth_date(match.group(2)) and id_check_digit(number[:17]) == number[17]:
            return "resident ID number (居民身份证号)"
    if _PHONE_RE.search(text):
        return "mobile phone number (手机号)"
    return None


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
    return Clerk(
        _text(obj, "id", "clerk.", limit=PERSON_MAX), _text(obj, "name", "clerk.", limit=PERSON_MAX)
    )


def parse_request(payload: Mapping[str, Any]) -> EvaluationRequest:
    """Validate a request body (the counter-link message without ``id``/``type``).

    Raises ``RequestError`` with a stable ``code`` and a message naming the offending field.
    """
    _no_unknown(payload, _REQUEST_KEYS, "")
    stage = payload.get("stage")
    if stage not in STAGES:
        raise RequestError("invalid_field", f"stage must be one of {', '.join(STAGES)}")
    # Exactly one of the two, by presence (a null counts as sent, as in the JSON Schema).
    if ("clerk" in payload) == ("terminal" in payload):
        raise RequestError(
            "invalid_field",
            "send exactly one of clerk (a window) and terminal (a self-service terminal's "
            "终端机编号)",
        )
    clerk: Clerk | None = None
    terminal: str | None = None
    if "clerk" in payload:
        clerk = parse_clerk(payload.get("clerk"))
    else:
        terminal = _text(payload, "terminal", "", limit=PERSON_MAX)
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
        # Serials are not scanned for identity: see the module docstring.
        serial = _text(raw, "serial", where, limit=SERIAL_MAX, identity=False)
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
        isinstance(a, str) and a.strip() for a in agencies_raw
    ):
        raise RequestError("invalid_field", "agencies must be a list of agency names")
    agencies = tuple(
        dict.fromkeys(
            _checked_text(a, f"agencies[{i}]", limit=NAME_MAX) for i, a in enumerate(agencies_raw)
        )
    )
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
    visit = payload.get("visit", 1)
    if type(visit) is not int or not 1 <= visit <= VISIT_MAX:
        raise RequestError(
            "invalid_field", f"visit must be a window-visit number from 1 to {VISIT_MAX}"
        )
    if visit != 1 and (stage != "accept" or any(c.kind != "promise" for c in cases)):
        raise RequestError(
            "invalid_field",
            "visit numbers other than 1 apply only to 承诺件 (kind promise) at stage accept",
        )
    return EvaluationRequest(
        tuple(cases), str(stage), clerk, agencies, theme, int(assess), int(visit), terminal
    )
