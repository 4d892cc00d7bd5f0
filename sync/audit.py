"""What ``evaluator verify`` checks and what ``evaluator stats`` counts (art. 33, 40).

Every figure of ``stats`` comes from a table of the store; this module checks each of them
against what the device signed, in ONE walk, and computes the figures from what holds:

* ``ratings`` and ``events``: each record decodes, its columns mirror the sealed JSON, its
  content matches its hash, its signature checks with the registered key (when one is given),
  and the chain holds: seqs 1, 2, 3 … without a gap, each ``prev_hash`` the hash of the record
  before.  A record that fails is *left out*; the one before a record whose (genuine) content
  chains to another hash is left out too (it was replaced or re-sealed); a missing seq is a
  finding of its own (what it held is gone).
* ``rating_cases`` (``verify`` only: no figure reads it): exactly one row per distinct case of
  every rating that verifies, as :meth:`Store.append_rating` writes it.
* ``presentations`` and ``presentation_cases``: a row closed ``rated`` is backed by the verified
  ratings that carry its id (stage, visit, assess number, clerk, start time, rating ids and
  cases agree); a row closed ``not_rated``/``cancelled`` by its verified ``presentation_end``
  event (outcome, cause, times, clerk and cases agree); a re-presentation by its verified
  ``represented`` event.  Every such signed end and re-presentation has its row.  A rating
  whose presentation has no row is a note (:attr:`Audit.rated_without_row`), not a finding:
  the rating counts its own cases, and stores written through the API alone have none.

What is legitimately unsigned, and how it is treated (docs/technician.md, "verify"):

* an OPEN presentation (outcome not set: on screen now, or open at a power cut until the next
  start closes it): nothing signed yet; listed, not counted;
* the cases of an item-by-item 一件事 theme left unrated when the presentation ended (its
  ratings carry the theme, not the list of its items): counted, and listed as unsigned;
* presentations that ended unrated before the store had events (migration m004, no ``facts``,
  every row before the first one backed by an event): counted, listed as unsigned;
* what the ``presentation_end`` event does not carry (it is API v1, no new field without v2):
  the stage, visit, assess number and ``touched`` of a presentation that ended unrated.

Cost: one read of each table, the hash of every record and, with a key, one Ed25519 check per
record and event: linear in the store's age (figures in docs/reliability.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from evaluator.rules import figures as fig
from evaluator.rules.records import (
    BAD_SIGNATURE,
    GENESIS_HASH,
    UNSIGNED,
    SignatureCheck,
    record_hash,
    signature_verdict,
)
from evaluator.rules.request import case_targets, rating_slot
from sync.store import _MIRRORED, _PAGE, END_BY, DamagedRecord, Store, decode_record

#: Columns of ``events`` that copy a field of the sealed event.
_EVENT_MIRRORED = ("seq", "id", "kind", "at", "hash")


@dataclass(frozen=True)
class Finding:
    """One thing that does not verify: the table, the row (``seq`` and/or ``id``) and why."""

    table: str
    problem: str
    seq: int | None = None
    id: str | None = None

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                "" if self.seq is None else f"seq={self.seq}",
                "" if self.id is None else f"id={self.id}",
            )
            if part
        )
        return f"{self.table} {where}: {self.problem}" if where else f"{self.table}: {self.problem}"

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "seq": self.seq, "id": self.id, "problem": self.problem}


@dataclass
class Signatures:
    """The signatures of one chain, every decodable record's (not only the first problem)."""

    signed_by: dict[str, int] = field(default_factory=dict)
    """Good signatures per key id."""
    unsigned: list[int] = field(default_factory=list)
    """Seqs of unsigned records from ``unsigned_before`` on (findings)."""
    bad: list[int] = field(default_factory=list)
    """Seqs of records whose signature does not check with the given keys (findings)."""
    accepted: int = 0
    """Unsigned records below ``unsigned_before`` (stored before the device had a key)."""


@dataclass
class Audit:
    """The result of :func:`audit`: findings, what is legitimately unsigned, the figures."""

    findings: list[Finding] = field(default_factory=list)
    signatures_checked: bool = False
    ratings: int = 0
    """Ratings that verify."""
    events: int = 0
    """Events that verify."""
    presentations: int = 0
    """Closed presentations that cross-check."""
    signatures: dict[str, Signatures] = field(
        default_factory=lambda: {"ratings": Signatures(), "events": Signatures()}
    )
    """Per chain (``ratings``, ``events``): every decodable record's signature."""
    open_presentations: list[str] = field(default_factory=list)
    unsigned_counted: list[str] = field(default_factory=list)
    """Presentation ids whose rows count though no signed record backs all of them."""
    rated_without_row: list[str] = field(default_factory=list)
    """Presentation ids that verified ratings carry but that have no row: a store written
    without presentations (tools, tests), or a rated row deleted.  No figure reads such a row (a
    rating counts its own cases), so this is a note, not a finding."""
    figures: dict[str, Any] = field(default_factory=dict)

    def table_findings(self, table: str) -> list[Finding]:
        return [f for f in self.findings if f.table == table]


def audit(
    store: Store,
    check: SignatureCheck | None = None,
    *,
    unsigned_before: int = 1,
    unsigned_events_before: int = 1,
    rating_cases: bool = True,
) -> Audit:
    """Check every table a figure comes from (see the module) and compute the figures from
    what verifies.  ``check`` verifies signatures (``None``: not checked, said by
    ``signatures_checked``); unsigned ratings below ``unsigned_before`` (events below
    ``unsigned_events_before``) are accepted (stored before the device had a key).
    ``rating_cases=False`` skips the check of that table (``stats`` does not read it)."""
    result = Audit(signatures_checked=check is not None)
    tally = _Figures()
    # -- ratings
    by_presentation: dict[str, list[_Rated]] = {}
    expected_cases: dict[str, set[tuple[Any, ...]]] = {}
    left_ratings: set[str] = set()
    rows = _rating_rows(store, check, unsigned_before, result)
    for record in _chain(rows, "ratings", result.findings, left_ratings):
        result.ratings += 1
        tally.rating(record)
        try:
            slots = _slots(record)
        except (TypeError, ValueError, AttributeError):
            slots = []
        pid = record.get("presentation_id")
        if isinstance(pid, str) and pid:
            by_presentation.setdefault(pid, []).append(_Rated.of(record, slots))
        if rating_cases:
            expected_cases[str(record["id"])] = _case_rows(record, slots)
    # -- events
    ends: dict[str, dict[str, Any]] = {}
    represented: dict[str, dict[str, Any]] = {}
    rows = _event_rows(store, check, unsigned_events_before, result)
    for event in _chain(rows, "events", result.findings, set()):
        result.events += 1
        pid = event.get("presentation_id")
        if event.get("kind") == "presentation_end" and isinstance(pid, str):
            ends[pid] = event
            if event.get("outcome") == "cancelled":
                tally.cancelled(_clerk_id(event.get("clerk")))
        elif event.get("kind") == "represented" and isinstance(pid, str):
            represented[pid] = event
            tally.represented(_clerk_id(event.get("clerk")))
    # -- derived tables
    if rating_cases:
        _check_rating_cases(store, expected_cases, left_ratings, result.findings)
    _check_presentations(store, by_presentation, ends, represented, tally, result)
    result.figures = tally.result(store.device_id)
    return result


# -- the chains ---------------------------------------------------------------------------


@dataclass
class _Row:
    seq: int
    id: str
    stored_hash: Any
    record: dict[str, Any] | None
    problem: str | None = None


def _chain(
    rows: Iterator[_Row], table: str, findings: list[Finding], left: set[str]
) -> Iterator[dict[str, Any]]:
    """The records of ``rows`` (in seq order) that verify, one row behind the walk: a record
    is known good only once its successor's ``prev_hash`` has been compared with its hash."""
    held: _Row | None = None
    expected = 1

    def out(row: _Row) -> Iterator[dict[str, Any]]:
        if row.problem is None and row.record is not None:
            yield row.record
        else:
            left.add(row.id)
            findings.append(Finding(table, row.problem or "unreadable", row.seq, row.id))

    for row in rows:
        if row.seq > expected:
            span = f"{expected}" if row.seq - 1 == expected else f"{expected}-{row.seq - 1}"
            findings.append(
                Finding(
                    table,
                    f"missing seq {span}: deleted or lost (what it held is not counted)",
                    expected,
                )
            )
        if row.problem is None and row.record is not None:  # its prev_hash is genuine
            prev_hash = row.record.get("prev_hash")
            if held is not None and row.seq == held.seq + 1:
                held_hash = held.record.get("hash") if held.record else held.stored_hash
                if prev_hash != held_hash and held.problem is None:
                    held.problem = (
                        f"is not the record seq {row.seq} chains to (replaced or re-sealed)"
                    )
            elif held is None and row.seq == 1 and prev_hash != GENESIS_HASH:
                row.problem = "the first record does not chain to the genesis hash"
        if held is not None:
            yield from out(held)
        held = row
        expected = max(expected, row.seq + 1)
    if held is not None:
        yield from out(held)


def _signature_problem(
    seq: int,
    record: Mapping[str, Any],
    check: SignatureCheck | None,
    before: int,
    tally: Signatures,
) -> str | None:
    """The signature of the record in row ``seq`` (recorded in ``tally``), or ``None``."""
    if check is None:
        return None
    verdict = signature_verdict(record, check)
    if verdict == UNSIGNED:
        if seq < before:
            tally.accepted += 1
            return None
        tally.unsigned.append(seq)
        return "unsigned: nothing proves this device wrote it"
    if verdict == BAD_SIGNATURE:
        tally.bad.append(seq)
        return "bad signature: altered, or written by another key"
    tally.signed_by[verdict] = tally.signed_by.get(verdict, 0) + 1
    return None


def _content_problem(record: Mapping[str, Any]) -> str | None:
    if record_hash(record) != record.get("hash"):
        return "content does not match its hash (record was altered)"
    return None


def _rating_rows(
    store: Store, check: SignatureCheck | None, before: int, result: Audit
) -> Iterator[_Row]:
    names = ", ".join(_MIRRORED)
    after = 0
    while True:
        page = store.conn.execute(
            f"SELECT {names}, record FROM ratings WHERE seq > ? ORDER BY seq LIMIT ?",
            [after, _PAGE],
        ).fetchall()
        for values in page:
            columns = dict(zip(_MIRRORED, values[:-1], strict=True))
            seq, rid = int(columns["seq"]), str(columns["id"])
            after = seq
            decoded = decode_record(seq, rid, values[-1])
            if isinstance(decoded, DamagedRecord):
                yield _Row(seq, rid, columns["hash"], None, f"damaged: {decoded.problem}")
                continue
            differ = [k for k in _MIRRORED if decoded.get(k) != columns[k]]
            problem = (
                "stored columns disagree with the record: " + ", ".join(differ) if differ else None
            )
            signed = _signature_problem(seq, decoded, check, before, result.signatures["ratings"])
            problem = problem or _content_problem(decoded) or signed
            yield _Row(seq, rid, columns["hash"], decoded, problem)
        if len(page) < _PAGE:
            return


def _event_rows(
    store: Store, check: SignatureCheck | None, before: int, result: Audit
) -> Iterator[_Row]:
    names = ", ".join(_EVENT_MIRRORED)
    after = 0
    while True:
        page = store.conn.execute(
            f"SELECT {names}, record FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            [after, _PAGE],
        ).fetchall()
        for values in page:
            columns = dict(zip(_EVENT_MIRRORED, values[:-1], strict=True))
            seq, eid = int(columns["seq"]), str(columns["id"])
            after = seq
            try:
                event = json.loads(values[-1])
            except (TypeError, ValueError):
                event = None
            if not isinstance(event, dict) or not isinstance(event.get("hash"), str):
                yield _Row(seq, eid, columns["hash"], None, "damaged: not a sealed JSON object")
                continue
            differ = [k for k in _EVENT_MIRRORED if event.get(k) != columns[k]]
            problem = (
                "stored columns disagree with the event: " + ", ".join(differ) if differ else None
            )
            signed = _signature_problem(seq, event, check, before, result.signatures["events"])
            problem = problem or _content_problem(event) or signed
            yield _Row(seq, eid, columns["hash"], event, problem)
        if len(page) < _PAGE:
            return


# -- what a rating says about the derived tables ------------------------------------------


def _slots(record: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """``(serial, slot, kind, matter_code)`` of each distinct case slot of a rating, as
    :meth:`Store.append_rating` derives its ``rating_cases`` rows."""
    stage = str(record["stage"])
    visit = record.get("visit", 1)
    found: dict[tuple[str, str], tuple[str, str, str, str]] = {}
    for case in record["cases"]:
        serial, kind = str(case["serial"]), str(case.get("kind", ""))
        slot = rating_slot(kind, stage, visit)
        found.setdefault((serial, slot), (serial, slot, kind, str(case.get("matter_code", ""))))
    return list(found.values())


@dataclass(slots=True)
class _Rated:
    """What one verified rating tells of its presentation (kept for every rating: small)."""

    id: str
    seq: int
    stage: Any
    assess_number: Any
    visit: Any
    clerk_id: str | None
    presented_at: Any
    rated_at: Any
    theme: bool
    slots: list[tuple[str, str, str, str]]

    @classmethod
    def of(cls, record: Mapping[str, Any], slots: list[tuple[str, str, str, str]]) -> _Rated:
        return cls(
            str(record["id"]),
            int(record["seq"]),
            record.get("stage"),
            record.get("assess_number"),
            record.get("visit", 1),
            _clerk_id(record.get("clerk")),
            record.get("presented_at"),
            record.get("rated_at"),
            bool(record.get("theme")),
            slots,
        )


def _case_rows(record: Mapping[str, Any], slots: list[tuple[str, str, str, str]]) -> set[Any]:
    """The ``rating_cases`` rows :meth:`Store.append_rating` writes for ``record``."""
    # the kind of a serial is its last case's, as in append_rating
    kinds = {str(c.get("serial")): str(c.get("kind", "")) for c in record["cases"]}
    return {
        (serial, record["stage"], slot, record["assess_number"], kinds.get(serial, ""))
        for serial, slot, _, _ in slots
    }


def _check_rating_cases(
    store: Store,
    expected: dict[str, set[tuple[Any, ...]]],
    left: set[str],
    findings: list[Finding],
) -> None:
    table = "rating_cases"
    for rid, serial, stage, slot, assess, kind in store.conn.execute(
        "SELECT rating_id, serial, stage, slot, assess_number, kind FROM rating_cases"
    ):
        if rid in left:
            continue  # its rating is a finding already; nothing to compare with
        want = expected.get(rid)
        row = (serial, stage, slot, assess, kind)
        if want is None:
            findings.append(
                Finding(table, f"case {serial} ({slot}) of no verified rating (inserted?)", id=rid)
            )
        elif row in want:
            want.discard(row)
        else:
            findings.append(
                Finding(
                    table,
                    f"case {serial} ({stage}, {slot}, assess {assess}, kind {kind!r}) is not "
                    "what the rating says (rewritten?)",
                    id=rid,
                )
            )
    for rid, rest in expected.items():
        for serial, _, slot, _, _ in sorted(rest):
            findings.append(
                Finding(
                    table,
                    f"the rating's case {serial} ({slot}) has no row (deleted?): a duplicate "
                    "rating of it would not be refused",
                    id=rid,
                )
            )


# -- presentations ------------------------------------------------------------------------


def _check_presentations(
    store: Store,
    by_presentation: dict[str, list[_Rated]],
    ends: dict[str, dict[str, Any]],
    represented: dict[str, dict[str, Any]],
    tally: _Figures,
    result: Audit,
) -> None:
    table = "presentations"
    findings = result.findings
    cases: dict[str, list[tuple[str, str, int, str]]] = {}
    for pid, serial, slot, assess, code in store.conn.execute(
        "SELECT presentation_id, serial, slot, assess_number, matter_code FROM presentation_cases"
        " ORDER BY rowid"
    ):
        cases.setdefault(pid, []).append((serial, slot, assess, code))
    ids: set[str] = set()
    expected = 1
    legacy_below: int | None = None  # see below
    for pid, seq, kept_facts in store.conn.execute(
        "SELECT id, seq, facts IS NOT NULL FROM presentations ORDER BY seq"
    ):
        ids.add(pid)
        if seq > expected:  # presentations have their own seq, 1, 2, 3 … like the chains
            span = f"{expected}" if seq - 1 == expected else f"{expected}-{seq - 1}"
            findings.append(Finding(table, f"missing seq {span}: deleted?", expected))
        expected = max(expected, seq + 1)
        # Rows before the first one an event backs (or that kept its facts) are from before
        # the store had events (m004): unsigned, legitimately.
        if legacy_below is None and (kept_facts or pid in ends or pid in represented):
            legacy_below = seq
    for pid in sorted(set(cases) - ids):
        findings.append(
            Finding("presentation_cases", "rows of no presentation (inserted?)", id=pid)
        )
    rows = store.conn.execute(
        "SELECT id, seq, stage, assess_number, clerk_id, started_at, outcome, ended_at,"
        " rating_ids, visit, represents, end_cause, facts, serials, matter_codes"
        " FROM presentations ORDER BY seq"
    )
    for row in rows:
        pid, seq = row[0], row[1]
        legacy = row[12] is None and (legacy_below is None or seq < legacy_below)
        # popped: what is left at the end names a presentation without a row
        shown = cases.pop(pid, [])
        rated = by_presentation.pop(pid, [])
        end = ends.pop(pid, None)
        problems, unsigned = _presentation_problems(row, shown, rated, end, legacy)
        problems += _row_problems(row, shown, rated, end)
        if row[3] != 1:  # a follow-up is only shown for a case with a first rating
            problems += [
                f"follow-up of case {serial} ({slot}), which has no verified first rating"
                for serial, slot, _, _ in shown
                if (serial, slot) not in tally.device.rated
            ]
        rep = _json_list(row[10])
        event = represented.pop(pid, None)
        if event is not None and event.get("represents") != rep:
            problems.append(
                f"represents {rep}, its signed represented event seq {event.get('seq')} "
                f"says {event.get('represents')}"
            )
        elif event is None and rep and not legacy:
            problems.append("says it re-presents, but no signed represented event backs it")
        elif event is None and rep:
            unsigned = True
            tally.represented(row[4])
        if row[6] is None:
            if problems:
                findings.append(Finding(table, "open, but " + "; ".join(problems), seq, pid))
            else:
                result.open_presentations.append(pid)
            continue
        if problems:
            findings.append(
                Finding(table, "; ".join(problems) + " (its cases are not counted)", seq, pid)
            )
            continue
        result.presentations += 1
        if unsigned:
            result.unsigned_counted.append(pid)
            if row[6] == "cancelled" and legacy:
                tally.cancelled(row[4])
        for serial, slot, assess, code in shown:
            if assess == 1:
                tally.should(row[4], code, (serial, slot))
    for pid, event in ends.items():
        findings.append(
            Finding(
                table,
                f"its signed presentation_end event seq {event.get('seq')} has no row "
                "(deleted?): its cases are not counted",
                id=pid,
            )
        )
    for pid, event in represented.items():
        findings.append(
            Finding(
                table,
                f"its signed represented event seq {event.get('seq')} has no row (deleted?)",
                id=pid,
            )
        )
    for pid, rated in by_presentation.items():
        if not ids:  # a store written through the API alone, without presentations
            result.rated_without_row.append(pid)
            continue
        seqs = ", ".join(str(r.seq) for r in rated)
        findings.append(
            Finding(
                table,
                f"named by verified rating seq {seqs}, but has no row (deleted?)",
                id=pid,
            )
        )


def _presentation_problems(
    row: tuple[Any, ...],
    shown: list[tuple[str, str, int, str]],
    ratings: list[_Rated],
    end: dict[str, Any] | None,
    legacy: bool,
) -> tuple[list[str], bool]:
    """What disagrees between a presentation row (and its cases) and the signed records that
    back it; and whether part of what it counts is legitimately unsigned."""
    _, _, stage, assess, clerk_id, started_at, outcome, ended_at, rating_ids = row[:9]
    visit, cause = row[9], row[11]
    problems: list[str] = []
    unsigned = False
    if outcome is None:
        if end is not None:
            problems.append(f"its signed presentation_end event seq {end.get('seq')} ended it")
        return problems, False
    if outcome == "rated":
        if end is not None:
            problems.append(f"rated, but signed presentation_end event seq {end.get('seq')}")
        if not ratings:
            problems.append("closed as rated, but no verified rating carries its id")
            return problems, False
        ids = [r.id for r in ratings]
        if sorted(_json_list(rating_ids)) != sorted(ids):
            problems.append(f"rating_ids {_json_list(rating_ids)} are not the ratings {ids}")
        first = ratings[0]
        for name, value, signed in (
            ("stage", stage, first.stage),
            ("assess_number", assess, first.assess_number),
            ("visit", visit, first.visit),
            ("clerk_id", clerk_id, first.clerk_id),
            ("started_at", started_at, first.presented_at or started_at),
        ):
            if value != signed:
                problems.append(f"{name} {value!r}, its rating seq {first.seq} says {signed!r}")
        last = ratings[-1]
        itemised = any(r.theme for r in ratings)  # a theme rated item by item may end early
        if cause not in ("rated", "restart", None) and not (itemised and cause in END_BY):
            problems.append(f"rated, but its end cause is {cause!r}")
        elif cause == "rated" and ended_at != last.rated_at:
            problems.append(
                f"ended_at {ended_at!r}, its last rating seq {last.seq} was rated at "
                f"{last.rated_at!r}"
            )
        have = {(s, slot, a): code for s, slot, a, code in shown}
        covered: set[tuple[str, str, int]] = set()
        for rated in ratings:
            a = rated.assess_number
            for serial, slot, _, code in rated.slots:
                key = (serial, slot, a)
                covered.add(key)
                if have.get(key) != code:
                    problems.append(
                        f"case {serial} ({slot}) of rating seq {rated.seq} is "
                        + ("missing" if key not in have else f"shown with matter {have[key]!r}")
                    )
        extra = [k for k in have if k not in covered]
        if extra and itemised:
            unsigned = True  # a theme rated item by item, ended before its last item
        elif extra:
            problems.append(
                "shows case(s) " + ", ".join(k[0] for k in extra) + " its ratings do not"
            )
        return problems, unsigned
    if _json_list(rating_ids) or rating_ids not in ("[]", None):
        problems.append(f"{outcome}, but it names ratings {rating_ids}")
    if ratings:
        problems.append(
            f"{outcome}, but rating seq {', '.join(str(r.seq) for r in ratings)} carries its id"
        )
    if end is None:
        if legacy:
            return problems, True
        problems.append(f"{outcome}, but no signed presentation_end event backs it (deleted?)")
        return problems, False
    by = END_BY.get(cause, cause or "unknown")
    for name, value, signed in (
        ("outcome", outcome, end.get("outcome")),
        ("end cause", by, end.get("by")),
        ("started_at", started_at, end.get("presented_at")),
        ("ended_at", ended_at, end.get("ended_at")),
        ("clerk_id", clerk_id, _clerk_id(end.get("clerk"))),
    ):
        if value != signed:
            problems.append(
                f"{name} {value!r}, its signed end event seq {end['seq']} says {signed!r}"
            )
    signed_cases = {
        str(c.get("serial")): str(c.get("matter_code") or "")
        for c in end.get("cases") or []
        if isinstance(c, Mapping)
    }
    row_cases = {s: code for s, _, _, code in shown}
    if signed_cases != row_cases:
        problems.append(
            f"cases {sorted(row_cases.items())}, its signed end event seq {end['seq']} says "
            f"{sorted(signed_cases.items())}"
        )
    return problems, False


def _row_problems(
    row: tuple[Any, ...],
    shown: list[tuple[str, str, int, str]],
    ratings: list[_Rated],
    end: dict[str, Any] | None,
) -> list[str]:
    """What disagrees inside a presentation row and its cases: the assess number and slot of
    each case (the slot from the kind the signed records give, else the kind the row kept in
    its facts, at the row's stage and visit), the row's serials and matter codes."""
    _, _, stage, assess, *_ = row
    visit, serials, codes = row[9], row[13], row[14]
    kinds: dict[str, str] = {}
    for c in _json_object(row[12]).get("cases") or []:  # unsigned: what the row kept at open
        if isinstance(c, Mapping) and isinstance(c.get("kind"), str):
            kinds[str(c.get("serial"))] = c["kind"]
    for rated in ratings:  # signed: these win
        kinds.update((c[0], c[2]) for c in rated.slots)
    if end is not None:
        for c in end.get("cases") or []:
            if isinstance(c, Mapping) and isinstance(c.get("kind"), str):
                kinds[str(c.get("serial"))] = c["kind"]
    problems = []
    for serial, slot, case_assess, _ in shown:
        if case_assess != assess:
            problems.append(f"case {serial} has assess number {case_assess}, the row {assess}")
        if serial in kinds and slot != rating_slot(kinds[serial], stage, visit):
            problems.append(
                f"case {serial} is in slot {slot}, its kind {kinds[serial]!r} at {stage} "
                f"visit {visit} gives {rating_slot(kinds[serial], stage, visit)}"
            )
    if _json_list(serials) != [c[0] for c in shown]:
        problems.append(f"serials {_json_list(serials)} are not its cases {[c[0] for c in shown]}")
    if _json_list(codes) != list(dict.fromkeys(c[3] for c in shown)):
        problems.append(f"matter codes {_json_list(codes)} are not its cases'")
    return problems


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _clerk_id(clerk: Any) -> str | None:
    if isinstance(clerk, Mapping):
        cid = clerk.get("id")
        return cid if isinstance(cid, str) else None
    return None


def _json_list(text: Any) -> list[Any]:
    if text == "[]":
        return []
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return []
    return value if isinstance(value, list) else []


# -- figures ------------------------------------------------------------------------------


@dataclass
class _Tally:
    """Running figures of one stats row."""

    name: str = ""
    scores: list[float] = field(default_factory=list)
    cancelled: int = 0
    represented: int = 0
    should: set[tuple[str, str]] = field(default_factory=set)
    rated: set[tuple[str, str]] = field(default_factory=set)
    follow_scores: list[float] = field(default_factory=list)
    changed: int = 0

    def add(self, score: float) -> None:
        self.scores.append(score)

    def follow(self, score: float, changed: bool) -> None:
        self.follow_scores.append(score)
        self.changed += int(changed)

    @property
    def mean(self) -> Fraction | None:
        """Exact: rounded once, by ``evaluator.rules.figures``, when it leaves."""
        return fig.mean(self.scores)

    def figures(self, *, supervision: bool = True) -> dict[str, Any]:
        should, rated = len(self.should), len(self.rated & self.should)
        out: dict[str, Any] = {
            "ratings": len(self.scores),
            "mean_score": fig.score_figure(self.mean),
            "should_rate": should,
            "rated": rated,
            "participation": fig.rate_figure(fig.ratio(rated, should)),
            "follow_ups": {
                "count": len(self.follow_scores),
                "mean_score": fig.score_figure(fig.mean(self.follow_scores)),
                "changed_level": self.changed,
            },
        }
        if supervision:
            out.update(cancelled=self.cancelled, represented=self.represented)
        return out


class _Figures:
    """The art. 33 figures of :func:`stats`, fed only what verifies."""

    def __init__(self) -> None:
        self.device = _Tally()
        self.clerks: dict[str, _Tally] = {}
        self.matters: dict[str, _Tally] = {}
        self.levels: dict[str, Any] = {}  # first rating id → its level, for follow-ups

    def clerk(self, cid: str | None) -> _Tally:
        if cid is None:  # a self-service terminal: no clerk to count it for
            return _Tally()
        found = self.clerks.get(cid)
        if found is None:
            found = self.clerks[cid] = _Tally()
        return found

    def matter(self, code: str | None) -> _Tally:
        found = self.matters.get(code or "")
        if found is None:
            found = self.matters[code or ""] = _Tally()
        return found

    def rating(self, record: Mapping[str, Any]) -> None:
        score = record.get("score")
        c = record.get("clerk") or {}
        tc = self.clerk(c.get("id") if c else None)
        tc.name = c.get("name") or tc.name
        visit = record.get("visit") or 1
        stage = str(record.get("stage", ""))
        first = record.get("assess_number") == 1
        codes: dict[str, str] = {}
        for case in record.get("cases") or []:
            if not isinstance(case, Mapping):
                continue
            code = str(case.get("matter_code", ""))
            # A terminal rates the matter whatever the kind and stage (art. 9).
            if record.get("terminal") or "matter" in case_targets(str(case.get("kind")), stage):
                codes[code] = str(case.get("matter_name", ""))
            if first:
                slot = rating_slot(str(case.get("kind")), stage, visit)
                key = (str(case.get("serial")), slot)
                for t in (self.device, tc, self.matter(code)):
                    t.rated.add(key)
                    t.should.add(key)
        if first:
            self.levels[str(record.get("id"))] = record.get("level")
        changed = not first and any(
            self.levels.get(str(f), record.get("level")) != record.get("level")
            for f in record.get("follows") or []
        )
        if isinstance(score, int | float) and not isinstance(score, bool):
            touched = [self.device, tc]
            if "matter" in (record.get("targets") or []):
                for code, name in codes.items():  # only the cases that rate the matter
                    tm = self.matter(code)
                    tm.name = name or tm.name
                    touched.append(tm)
            for t in touched:  # a follow-up is reported beside, never averaged in
                if first:
                    t.add(score)
                else:
                    t.follow(score, changed)

    def should(self, clerk_id: str | None, code: str | None, key: tuple[str, str]) -> None:
        for t in (self.device, self.clerk(clerk_id), self.matter(code)):
            t.should.add(key)

    def cancelled(self, clerk_id: str | None) -> None:
        self.clerk(clerk_id).cancelled += 1
        self.device.cancelled += 1

    def represented(self, clerk_id: str | None) -> None:
        self.clerk(clerk_id).represented += 1
        self.device.represented += 1

    def result(self, device_id: str) -> dict[str, Any]:
        item_score = fig.mean_of(t.mean for t in self.matters.values())
        return {
            "device": {
                "device_id": device_id,
                **self.device.figures(),
                "item_score": fig.score_figure(item_score),
            },
            "clerks": [
                {"clerk_id": k, "clerk_name": t.name, **t.figures()}
                for k, t in sorted(self.clerks.items())
            ],
            "matters": [
                {"matter_code": k, "matter_name": t.name, **t.figures(supervision=False)}
                for k, t in sorted(self.matters.items())
            ],
        }


def stats(
    store: Store,
    check: SignatureCheck | None = None,
    *,
    unsigned_before: int = 1,
    unsigned_events_before: int = 1,
) -> dict[str, Any]:
    """Art. 33 figures for the device, per clerk and per matter (docs/technician.md), from what
    verifies (hash, chain, and the signature with ``check``), and beside them what was left out
    and why (``left_out``: the findings of :func:`audit`), whether signatures were checked, the
    open presentations (not counted) and the presentations counted though partly unsigned.

    * ``should_rate``: distinct cases (serial and slot) shown for a first rating;
      ``rated``: those of them with a first rating; ``participation`` = rated ÷ should_rate.
    * ``mean_score``: mean score of the ratings of that clerk (every rating rates the
      clerk) or of that matter (only ratings whose targets include the matter; a rating of
      several matters counts once for each): first ratings only (``assess_number`` 1).
    * ``follow_ups``: the 追加评价 beside them, never averaged in: ``count``,
      ``mean_score`` and ``changed_level`` (how many gave another level than the rating
      they follow).
    * the device's ``item_score``: the mean of the matters' mean scores (服务事项得分).
    * ``cancelled``: presentations a clerk ended by cancel, pause or sign-out;
      ``represented``: presentations that showed again cases left unrated before.
    """
    found = audit(
        store,
        check,
        unsigned_before=unsigned_before,
        unsigned_events_before=unsigned_events_before,
        rating_cases=False,
    )
    return {
        **found.figures,
        "signatures_checked": found.signatures_checked,
        "left_out": [f.to_json() for f in found.findings],
        "open_presentations": found.open_presentations,
        "unsigned_counted": found.unsigned_counted,
    }
