"""Art. 33 figures from what the receiver stored, and the two lists the city acts on.

* **Item score** (服务事项得分): per matter, the mean score of the ratings that rate the matter
  (``targets`` holds ``matter`` and the case's kind and stage rate it, as on the pad:
  ``sync.audit.stats``); the hall's item score is the mean of the matters' means.
* **Per clerk**: ratings, mean score, 差评, cancelled presentations, participation.
* Every figure counts first ratings (``assess_number`` 1) only; follow-ups (追加评价) are
  reported beside them as ``follow_ups`` (count, mean, ``changed_level``: how many gave another
  level than the rating they follow), never averaged in (art. 22, issue 15).
* **Participation per case** (参评率): rated cases ÷ presented cases.  A case is its serial
  (业务流水号); presented = the serials of every first rating (``assess_number`` 1) and of every
  ``presentation_end`` event (``not_rated`` or ``cancelled``); rated = the serials of first
  ratings.  (Events carry no stage or visit, so a 承诺件 counts once, not once per slot.)
* **Held** (``held``): per registered device, how many of its stored records are held out of
  every figure and list (:mod:`sync.hub.truth`, ``evaluator hub conflicts``).
* **Hall coverage**: registered devices online ÷ registered devices; online = the device's
  latest retained status says ``online`` true, or it sent a status since ``since``.
* **差评 needing a work order** (art. 35): every rating at 不满意 or 非常不满意.
* **Unrated cases needing the SMS follow-up** (art. 25): each case of a ``presentation_end``
  event with outcome ``not_rated`` whose serial has no first rating (a later presentation may
  have been rated), due 24 hours after the presentation ended.

Periods (``since``/``until``, ISO dates or times) select records by their own time
(``rated_at`` / ``ended_at``), not by arrival: a pad offline for a day still counts its ratings
in the right day.  A bound with an offset is that instant; a date, or a time without an offset,
is the hall's wall-clock time as the pad wrote it (:func:`parse_bound`): ``--since 2026-05-01``
is May 1st in Shantou whatever the hub's own time zone (read as UTC, it left a hall's first
eight hours of each day in the day before).

Every mean and rate is an exact fraction rounded once by :mod:`evaluator.rules.figures`, the
rule ``evaluator stats`` on the pad uses: scores to 2 decimals, rates to 3 (a percentage with
one decimal), so the pad and the city print the same figure for the same ratings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from evaluator.rules import figures as fig
from evaluator.rules.request import case_targets
from sync.hub import truth
from sync.hub.db import HubDB, case_serials

BAD_LEVELS = ("dissatisfied", "very_dissatisfied")
#: Art. 25: the province texts the citizen when a case is not rated within 24 hours.
FOLLOW_UP_AFTER = dt.timedelta(hours=24)


@dataclass
class _Tally:
    name: str = ""
    scores: list[int] = field(default_factory=list)
    bad: int = 0
    cancelled: int = 0
    presented: set[str] = field(default_factory=set)
    rated: set[str] = field(default_factory=set)
    follow_scores: list[int] = field(default_factory=list)
    changed: int = 0

    def add(self, score: int, bad: bool) -> None:
        self.scores.append(score)
        self.bad += bad

    def follow(self, score: int, changed: bool) -> None:
        """A follow-up (追加评价): reported beside the first ratings, never averaged in."""
        self.follow_scores.append(score)
        self.changed += changed

    def follow_ups(self) -> dict[str, Any]:
        return {
            "count": len(self.follow_scores),
            "mean_score": fig.score_figure(fig.mean(self.follow_scores)),
            "changed_level": self.changed,
        }

    @property
    def mean(self) -> Fraction | None:
        """Exact: rounded once, by :mod:`evaluator.rules.figures`, when it leaves."""
        return fig.mean(self.scores)

    def figures(self) -> dict[str, Any]:
        presented = len(self.presented | self.rated)
        return {
            "ratings": len(self.scores),
            "mean_score": fig.score_figure(self.mean),
            "bad": self.bad,
            "presented_cases": presented,
            "rated_cases": len(self.rated),
            "participation": fig.rate_figure(fig.ratio(len(self.rated), presented)),
            "follow_ups": self.follow_ups(),
        }


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO date or time; a date is its midnight, a time without offset is UTC."""
    if not text:
        return None
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse_bound(text: str | None) -> dt.datetime | None:
    """A period's bound: an ISO date or time; without an offset it stays naive, meaning the
    wall-clock time at the pad (:func:`in_period`).  A clear ``ValueError`` for anything else."""
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: expected an ISO date or time, e.g. 2026-05-01, "
                         "2026-05-01T08:00 or 2026-05-01T08:00+08:00") from None  # fmt: skip


def in_period(text: Any, since: dt.datetime | None, until: dt.datetime | None) -> bool:
    """``text`` (a record's own time) is in ``[since, until)``.  A naive bound is compared
    with the record's wall-clock time (its own offset), an aware one with its instant."""
    if since is None and until is None:
        return True
    try:
        at = parse_time(str(text))
    except ValueError:
        return False
    if at is None:
        return False

    def seen(bound: dt.datetime) -> dt.datetime:
        return at.replace(tzinfo=None) if bound.tzinfo is None else at

    return (since is None or seen(since) >= since) and (until is None or seen(until) < until)


def _serials(record: Mapping[str, Any]) -> list[str]:
    return case_serials(record)


def figures(db: HubDB, *, since: str | None = None, until: str | None = None) -> dict[str, Any]:
    """The art. 33 figures (see the module docstring) as one JSON-ready dict.

    Only the period's records are read (:meth:`HubDB.reported`: an index on their own time,
    streamed in the order of :meth:`HubDB.all_records`, so names seen last win as before); the
    first ratings that follow-ups name are looked up by id afterwards."""
    lo, hi = parse_bound(since), parse_bound(until)
    hall, clerks, matters = _Tally(), {}, {}
    good = 0
    counted: set[str] = set()
    follows: list[tuple[list[_Tally], int, Any, list[Any]]] = []

    def clerk(c: Any) -> _Tally:
        cid = str(c.get("id")) if isinstance(c, Mapping) else ""
        tally = clerks.get(cid) or clerks.setdefault(cid, _Tally())
        if isinstance(c, Mapping) and c.get("name"):
            tally.name = str(c["name"])
        return tally

    for r in db.reported("ratings", lo, hi):  # in_period, as the index reads rated_at
        counted.add(str(r.get("device_id")))
        score, bad = int(r.get("score", 0)), r.get("level") in BAD_LEVELS
        tc = clerk(r.get("clerk")) if r.get("clerk") else None
        rates_matter = "matter" in (r.get("targets") or [])
        if r.get("assess_number") != 1:  # a follow-up: beside the figures, never averaged in
            codes = {str(c.get("matter_code", "")) for c in r.get("cases") or []
                     if rates_matter and (r.get("terminal") or "matter" in case_targets(
                         str(c.get("kind")), str(r.get("stage"))))}  # fmt: skip
            tallies = [t for t in (hall, tc, *(matters.setdefault(code, _Tally())
                                               for code in codes)) if t is not None]  # fmt: skip
            follows.append((tallies, score, r.get("level"), r.get("follows") or []))
            continue
        good += not bad
        hall.add(score, bad)
        if tc is not None:
            tc.add(score, bad)
        seen: set[str] = set()
        for case in r.get("cases") or []:
            code = str(case.get("matter_code", ""))
            for t in (hall, tc):
                if t is not None:
                    t.rated.add(str(case.get("serial")))
            kind_rates = "matter" in case_targets(str(case.get("kind")), str(r.get("stage")))
            if rates_matter and (r.get("terminal") or kind_rates) and code not in seen:
                seen.add(code)
                tm = matters.get(code) or matters.setdefault(code, _Tally())
                tm.name = str(case.get("matter_name") or tm.name)
                tm.add(score, bad)
    _tally_follow_ups(db, follows)

    for e in db.reported("events", lo, hi):  # presentation_end, ended_at in the period
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
        "held": truth.held_counts(db),
    }


def _tally_follow_ups(db: HubDB, follows: list[tuple[list[_Tally], int, Any, list[Any]]]) -> None:
    """Each follow-up of the period into its tallies; ``changed_level`` when a first rating it
    follows (looked up by id, in any period) gave another level."""
    ids = [f for *_, named in follows for f in named if isinstance(f, str)]
    levels = {r.get("id"): r.get("level") for r in db.counted_by_id("ratings", ids)
              if r.get("assess_number") == 1}  # fmt: skip
    for tallies, score, level, named in follows:
        changed = any(levels.get(f, level) != level for f in named)
        for t in tallies:
            t.follow(score, changed)


def audit(db: HubDB, devices: Iterable[str]) -> dict[str, Any]:
    """The devices in the figures that have findings for audit (``evaluator hub flags``: records
    lost, a chain restarted, a witnessed head contradicted or regressed): device → the kinds.
    Their figures may lack ratings the city never got, so the figures say so loudly."""
    wanted = set(devices)
    found: dict[str, set[str]] = {}
    for f in db.flags():
        if f["device_id"] in wanted:
            found.setdefault(str(f["device_id"]), set()).add(str(f["kind"]))
    return {"devices_with_findings": {d: sorted(k) for d, k in sorted(found.items())}}


def coverage(db: HubDB, *, since: str | None = None) -> dict[str, Any]:
    """Hall coverage (覆盖率): registered devices online ÷ registered devices."""
    lo = parse_bound(since)
    statuses = db.statuses()
    devices = []
    for device_id in sorted(db.devices()):
        body, at = statuses.get(device_id, (None, ""))
        online_now = bool(body and body.get("online") is True)
        recent = lo is not None and bool(at) and in_period(at, lo, None)
        devices.append(
            {"device_id": device_id, "online": online_now or recent, "last_status_at": at or None}
        )
    online = sum(d["online"] for d in devices)
    return {
        "registered": len(devices),
        "online": online,
        "coverage": fig.rate_figure(fig.ratio(online, len(devices))),
        "devices": devices,
    }


def bad_ratings(db: HubDB, *, since: str | None = None, until: str | None = None) -> list[dict]:
    """Every 差评 in the period, oldest first by the pad's time: what a work order needs."""
    lo, hi = parse_bound(since), parse_bound(until)
    out = []
    for r in db.reported("ratings", lo, hi):
        if r.get("level") not in BAD_LEVELS:
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
    shown = [e for e in db.reported("events", lo, hi) if e.get("outcome") == "not_rated"]
    rated = db.rated_serials([str(c.get("serial")) for e in shown for c in e.get("cases") or []])
    out: dict[str, dict[str, Any]] = {}
    for e in shown:
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
