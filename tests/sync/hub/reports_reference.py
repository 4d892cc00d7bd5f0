"""The reports as they were before issue 16, kept as the reference the indexed reports are
compared with (tests/sync/hub/test_figures_reference.py): every stored record loaded through
``HubDB.all_records``, filtered in Python.  Copied verbatim from sync/hub/figures.py and
sync/hub/export.py at 7239bc7; only the names of the shared helpers are imported."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from evaluator.rules import figures as fig
from evaluator.rules.request import case_targets
from sync.hub import truth
from sync.hub.db import HubDB
from sync.hub.export import _rows_of
from sync.hub.figures import (
    BAD_LEVELS,
    FOLLOW_UP_AFTER,
    _Tally,
    audit,
    coverage,
    in_period,
    parse_bound,
    parse_time,
)


def _serials(record: Mapping[str, Any]) -> list[str]:
    return [str(c.get("serial")) for c in record.get("cases") or [] if isinstance(c, Mapping)]


def figures(db: HubDB, *, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The art. 33 figures (see the module docstring) as one JSON-ready dict."""
    lo, hi = parse_bound(since), parse_bound(until)
    hall, clerks, matters = _Tally(), {}, {}
    good = 0

    def clerk(c: Any) -> _Tally:
        cid = str(c.get("id")) if isinstance(c, Mapping) else ""
        tally = clerks.setdefault(cid, _Tally())
        if isinstance(c, Mapping) and c.get("name"):
            tally.name = str(c["name"])
        return tally

    ratings = list(db.all_records("ratings"))
    levels = {r.get("id"): r.get("level") for r in ratings if r.get("assess_number") == 1}
    for r in ratings:
        if not in_period(r.get("rated_at"), lo, hi):
            continue
        score, bad = int(r.get("score", 0)), r.get("level") in BAD_LEVELS
        tc = clerk(r.get("clerk")) if r.get("clerk") else None
        rates_matter = "matter" in (r.get("targets") or [])
        if r.get("assess_number") != 1:  # a follow-up: beside the figures, never averaged in
            changed = any(levels.get(f, r.get("level")) != r.get("level")
                          for f in r.get("follows") or [])  # fmt: skip
            codes = {str(c.get("matter_code", "")) for c in r.get("cases") or []
                     if rates_matter and (r.get("terminal") or "matter" in case_targets(
                         str(c.get("kind")), str(r.get("stage"))))}  # fmt: skip
            for t in (hall, tc, *(matters.setdefault(code, _Tally()) for code in codes)):
                if t is not None:
                    t.follow(score, changed)
            continue
        good += not bad
        hall.add(score, bad)
        if tc is not None:
            tc.add(score, bad)
        seen: set[str] = set()
        for case in r.get("cases") or []:
            code = str(case.get("matter_code", ""))
            if r.get("assess_number") == 1:
                for t in (hall, tc):
                    if t is not None:
                        t.rated.add(str(case.get("serial")))
            kind_rates = "matter" in case_targets(str(case.get("kind")), str(r.get("stage")))
            if rates_matter and (r.get("terminal") or kind_rates) and code not in seen:
                seen.add(code)
                tm = matters.setdefault(code, _Tally())
                tm.name = str(case.get("matter_name") or tm.name)
                tm.add(score, bad)

    counted = {str(r.get("device_id")) for r in ratings if in_period(r.get("rated_at"), lo, hi)}
    for e in db.all_records("events"):
        if e.get("kind") != "presentation_end" or not in_period(e.get("ended_at"), lo, hi):
            continue
        tc = clerk(e.get("clerk")) if e.get("clerk") else None
        if e.get("outcome") == "cancelled":
            hall.cancelled += 1
            if tc is not None:
                tc.cancelled += 1
        for serial in _serials(e):
            for t in (hall, tc):
                if t is not None:
                    t.presented.add(serial)

    return {
        "period": {"since": since, "until": until},
        "hall": {
            **hall.figures(),
            "good": good,
            "item_score": fig.score_figure(fig.mean_of(t.mean for t in matters.values())),
            "cancelled": hall.cancelled,
        },
        "matters": [
            {
                "matter_code": code,
                "matter_name": t.name,
                "ratings": len(t.scores),
                "mean_score": fig.score_figure(t.mean),
                "bad": t.bad,
                "follow_ups": t.follow_ups(),
            }
            for code, t in sorted(matters.items())
        ],
        "clerks": [
            {"clerk_id": cid, "clerk_name": t.name, **t.figures(), "cancelled": t.cancelled}
            for cid, t in sorted(clerks.items())
        ],
        "coverage": coverage(db, since=since),
        "audit": audit(db, counted),
        "held": truth.held_counts(db),  # the truth checks' count per pad (no period: as is)
    }



def bad_ratings(db: HubDB, *, since: str | None = None, until: str | None = None) -> list[dict]:
    """Every 差评 in the period, oldest first by the pad's time: what a work order needs."""
    lo, hi = parse_bound(since), parse_bound(until)
    out = []
    for r in db.all_records("ratings"):
        if r.get("level") not in BAD_LEVELS or not in_period(r.get("rated_at"), lo, hi):
            continue
        clerk = r.get("clerk") or {}
        out.append({
            "device_id": r.get("device_id"), "id": r.get("id"), "seq": r.get("seq"),
            "epoch": r.get("epoch", ""),
            "rated_at": r.get("rated_at"), "level": r.get("level"), "score": r.get("score"),
            "clerk_id": clerk.get("id"), "clerk_name": clerk.get("name"),
            "terminal": r.get("terminal"), "serials": _serials(r),
            "matters": [c.get("matter_name") for c in r.get("cases") or []],
            "reasons": [f"{x.get('code')} {x.get('text')}" for x in r.get("reasons") or []],
            "comment": r.get("comment", ""),
            "agencies_concerned": r.get("agencies_concerned") or [],
        })  # fmt: skip
    return sorted(out, key=lambda x: str(x["rated_at"]))


def follow_ups(
    db: HubDB, *, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Cases shown and not rated (outcome ``not_rated``) with no first rating since: the
    province's SMS follow-up (art. 25), one row per serial, oldest first."""
    lo, hi = parse_bound(since), parse_bound(until)
    rated = {s for r in _first_ratings(db.all_records("ratings")) for s in _serials(r)}
    out: dict[str, dict[str, Any]] = {}
    for e in db.all_records("events"):
        if e.get("kind") != "presentation_end" or e.get("outcome") != "not_rated":
            continue
        if not in_period(e.get("ended_at"), lo, hi):
            continue
        try:
            due = parse_time(str(e.get("ended_at")))
        except ValueError:
            due = None
        clerk = e.get("clerk") or {}
        for case in e.get("cases") or []:
            serial = str(case.get("serial"))
            if serial in rated or serial in out:
                continue
            out[serial] = {
                "serial": serial, "matter_code": case.get("matter_code"),
                "matter_name": case.get("matter_name"), "device_id": e.get("device_id"),
                "event_id": e.get("id"), "clerk_id": clerk.get("id"),
                "clerk_name": clerk.get("name"), "terminal": e.get("terminal"),
                "presented_at": e.get("presented_at"), "ended_at": e.get("ended_at"),
                "by": e.get("by"),
                "sms_due": (due + FOLLOW_UP_AFTER).isoformat(timespec="milliseconds")
                if due else None,
            }  # fmt: skip
    return sorted(out.values(), key=lambda x: str(x["ended_at"]))


def _first_ratings(records: Iterable[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    return (r for r in records if r.get("assess_number") == 1)


def export_rows(db: HubDB, *, since: str | None = None, until: str | None = None) -> Iterator[dict]:
    """One CSV row (a dict by :data:`FIELDS`) per case of each stored rating in the period."""
    lo, hi = parse_bound(since), parse_bound(until)
    for r in db.all_records("ratings"):
        if in_period(r.get("rated_at"), lo, hi):
            yield from _rows_of(r)
