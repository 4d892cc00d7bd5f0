"""What a device can truthfully say: records it cannot are stored in its chain but held out.

A pad's key signs whatever the pad (or whoever holds its key) seals, on the pad's own topic: a
signature proves *who* sent a record, not that its clerk, case or time belong to that pad.  So
after a batch's records are decided (and before anything is acked) each stored record is
checked here, in chain order, against what the city knows; a record that fails stays in its
chain (acked, never edited: the pad's chain must not stall) but is held out of every figure,
list and export (:meth:`~sync.hub.db.HubDB.hold`), with the other side for a person to decide
(``evaluator hub conflicts``).  The kinds:

* ``clerk_not_on_roster`` — the city keeps a roster for this device (``evaluator hub roster``)
  and the rating's clerk is not on it for this device or its hall.
* ``clerk_not_signed_in`` — the device reports sign-ins (``clerk_sign_in`` / ``clerk_sign_out``
  events) and at ``rated_at`` another clerk, or nobody, was signed in there.  The pad's events
  chain is stored in order, so its sign-ins are known up to the ``at`` of its latest stored
  event: a rating dated later than that (its events not arrived yet) is judged when they do.
* ``clerk_two_places`` — the clerk was signed in at two devices at once: the later sign-in is
  contested (a stolen key can sign a sign-in too), its ratings held, both devices flagged
  ``clerk_two_places``.  A sign-in counts from its ``since`` (``hub_signin_from``): its own
  time when its clock was synchronised and it is in step (no more than :data:`MAX_SKEW`
  before its receipt, nor :data:`BACKWARD_SLACK` behind its events chain's high water); its
  receipt time otherwise (it cannot be trusted to be earlier than it arrived: a sign-in
  back-dated just before another window's genuine one must not make that one the later, and
  marking a sign-in unsynced must not dodge the check).
* ``clerk_signed_in_elsewhere`` — the device reports no sign-ins (an older pad) and at
  ``rated_at`` the clerk was signed in at another device that does: a stolen old pad naming
  another window's clerk.  Judged against the sign-ins stored when the rating arrives (what
  arrives later does not re-judge it).
* ``second_first_rating`` — a first rating (``assess_number`` 1) of a case slot (serial and
  :func:`~evaluator.rules.request.rating_slot`: the pad's own rule) that another device's first
  rating took already: the one stored first counts, the later one is held, never counted twice.
  A consult case is rated once in total, so a consult slot clashes with any slot of its serial.
  A serial's kind of case (instant, promise, consult) is fixed by its first counted first
  rating: another device's first rating calling it another kind is held too (a delivered
  即办件 re-rated as a 承诺件's acceptance visits would take new slots otherwise); a 承诺件 rated
  at one window's acceptance and another's visit 2 or delivery keeps its kind and counts.
* ``time_backwards`` — ``rated_at`` earlier than the device's high water (the latest judged
  ``rated_at`` of its earlier ratings, whatever their epoch: a new epoch is what a stolen key
  can always claim, and an honest pad's clock does not restart with its store) by more than
  :data:`BACKWARD_SLACK`: a month-old rating sealed after today's is out of step.  An offline
  pad's backlog arrives late but in chain order with rising dates: accepted.
* ``time_future`` — ``rated_at`` more than :data:`MAX_SKEW` after the receipt time.

Times are judged only when the pad says its clock was synchronised (``rated_clock_synced``):
a pad that never synced writes whatever its clock says (and such ratings do not raise the high
water either); every other check still applies to it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from evaluator.rules.request import rating_slot
from sync.hub.db import HubDB

log = logging.getLogger(__name__)

#: How far ``rated_at`` may lie in the future of the receipt time (clocks drift, NTP slews).
MAX_SKEW = dt.timedelta(minutes=5)
#: How far ``rated_at`` may go back against its chain's high water (an NTP step backwards):
#: as far as a clock may be ahead and still be accepted, since that raised the high water.
BACKWARD_SLACK = MAX_SKEW
#: A sign-in without a sign-out stops counting for ``clerk_two_places`` after this long (a pad
#: left signed in overnight is no clerk there the next morning).
SESSION_MAX = dt.timedelta(hours=12)

KINDS = ("clerk_not_on_roster", "clerk_not_signed_in", "clerk_signed_in_elsewhere",
         "clerk_two_places",
         "second_first_rating", "time_backwards", "time_future")  # fmt: skip
SIGN_IN, SIGN_OUT = "clerk_sign_in", "clerk_sign_out"


@dataclass
class Held:
    """One record held: what ``HubDB.hold`` takes."""

    record_id: str
    device_id: str
    kind: str
    detail: dict[str, Any]
    other: tuple[str, str] = ("", "")


@dataclass
class Verdicts:
    """What :func:`check` found in one batch: records held, and findings to flag."""

    held: list[Held] = field(default_factory=list)
    flags: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)


def utc(text: Any) -> str | None:
    """A record's own time as UTC ISO text (sorts as text), or None when it is no time."""
    try:
        at = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """What a person needs to see of one side of a conflict (no citizen identity is stored)."""
    clerk = record.get("clerk") or {}
    return {
        "device_id": record.get("device_id"), "id": record.get("id"), "seq": record.get("seq"),
        "epoch": record.get("epoch", ""), "kind": record.get("kind", "rating"),
        "rated_at": record.get("rated_at", record.get("at")), "level": record.get("level"),
        "assess_number": record.get("assess_number"),
        "clerk": {"id": clerk.get("id"), "name": clerk.get("name")} if clerk else None,
        "serials": [c.get("serial") for c in record.get("cases") or []],
    }  # fmt: skip


class Checker:
    """Checks one batch's stored records inside its transaction (see the module docstring).

    Call :meth:`prepare` with the batch's ratings, then :meth:`rating` / :meth:`event` for
    each stored record in chain order, then :meth:`flush`.  What later records of the batch
    must see (slots taken, the chains' high water, how far each pad's events reached) is kept
    in memory and written together (``executemany``): a few statements per batch, not per
    record, which matters on PostgreSQL where each is a round trip."""

    def __init__(self, db: HubDB, received: dt.datetime | None = None) -> None:
        self.db = db
        self.received = received or dt.datetime.now(dt.UTC)
        self.verdicts = Verdicts()
        self._roster: dict[str, set[str] | None] = {}
        self._serials: dict[str, dict[str, tuple[str, str]]] = {}  # serial → slot → taker
        self._kinds: dict[str, tuple[str, str, str]] = {}  # serial → (kind, device, record)
        self._kind_rows: list[tuple[str, str, str, str]] = []
        self._chains: dict[str, tuple[str, str] | None] = {}  # device → (record, high water)
        self._reach: dict[str, str | None] = {}
        self._signs: dict[str, bool] = {}
        self._rated_rows: list[tuple[Any, ...]] = []
        self._slot_rows: list[tuple[str, str, str, str]] = []
        self._moved: dict[tuple[str, str], tuple[str, str]] = {}
        self._rated: list[tuple[str, str]] = []  # (clerk, rated_at) of the batch's ratings
        self._elsewhere_rows: list[tuple[str, str, str, str, str]] | None = None
        self._ends: dict[tuple[str, str], str] = {}

    def prepare(self, records: list[tuple[str, dict[str, Any]]]) -> None:
        """Read what the batch's records are checked against in a few statements, whatever
        the number of pads in it: the slots its first ratings name, each pad's chain times,
        event clock and roster (the checks fall back to one read each when one is missing)."""
        ratings = [r for stream, r in records if stream == "ratings"]
        self._rated = [(str(r["clerk"].get("id")), utc(r.get("rated_at")) or "") for r in ratings
                       if isinstance(r.get("clerk"), dict)]  # fmt: skip
        wanted = sorted({s for r in ratings if r.get("assess_number") == 1
                         for s, _ in _case_slots(r)})  # fmt: skip
        for part in _parts(wanted):
            for serial, slot, rid, device in self.db.rows(
                "SELECT serial, slot, record_id, device_id FROM hub_slots WHERE"
                f" {self.db.any_of('serial', part)}",
                self.db.any_params(part),
            ):
                self._take((str(serial), str(slot)), (str(device), str(rid)))
            for serial, kind, rid, device in self.db.rows(
                "SELECT serial, kind, record_id, device_id FROM hub_case_kinds WHERE"
                f" {self.db.any_of('serial', part)}",
                self.db.any_params(part),
            ):
                self._kinds[str(serial)] = (str(kind), str(device), str(rid))
        devices = sorted({str(r["device_id"]) for _, r in records})
        for part in _parts(devices):
            self._prefetch(part)

    def _prefetch(self, devices: list[str]) -> None:
        db, among = self.db, self.db.any_of("device_id", devices)
        self._chains.update(dict.fromkeys(devices))
        for device, rid, mark in db.rows(
            f"SELECT device_id, record_id, high_water FROM hub_chain_time WHERE {among}",
            db.any_params(devices),
        ):
            _, known = self._chains[str(device)] or ("", "")
            if str(mark) >= known:  # the device's high water: the highest of its epochs
                self._chains[str(device)] = (str(rid), str(mark))
        self._reach.update(dict.fromkeys(devices))
        for device, latest in db.rows(
            f"SELECT device_id, latest FROM hub_event_clock WHERE {among}", db.any_params(devices)
        ):
            self._reach[str(device)] = str(latest)
        halls: dict[str, set[str]] = {}
        for hall, device in db.rows(
            f"SELECT hall, device_id FROM hub_roster WHERE {among}", db.any_params(devices)
        ):
            halls.setdefault(str(device), set()).add(str(hall))
        self._roster.update(dict.fromkeys(devices))
        if not halls:
            return
        every = sorted(set().union(*halls.values()))
        rows = db.rows(
            f"SELECT hall, device_id, clerk_id FROM hub_roster WHERE {among} OR (device_id = ''"
            f" AND {db.any_of('hall', every)})",
            (*db.any_params(devices), *db.any_params(every)),
        )
        for device, named in halls.items():
            self._roster[device] = {str(c) for h, d, c in rows if d == device or (
                d == "" and h in named)}  # fmt: skip

    def flush(self) -> None:
        """Write the ratings' times, the slots taken and the chains' high water so far."""
        self._bulk(
            "hub_rated (record_id, device_id, epoch, seq, clerk_id, rated_at, high_water)",
            "TTTBTTT",
            self._rated_rows,
            "ON CONFLICT DO NOTHING",
        )
        self._bulk(
            "hub_slots (serial, slot, record_id, device_id)",
            "TTTT",
            self._slot_rows,
            "ON CONFLICT DO NOTHING",
        )
        self._bulk(
            "hub_case_kinds (serial, kind, record_id, device_id)",
            "TTTT",
            self._kind_rows,
            "ON CONFLICT DO NOTHING",
        )
        self._bulk("hub_chain_time (device_id, epoch, record_id, high_water)", "TTTT",
                   [(*key, *value) for key, value in sorted(self._moved.items())],
                   "ON CONFLICT (device_id, epoch) DO UPDATE SET record_id ="
                   " excluded.record_id, high_water = excluded.high_water")  # fmt: skip
        self._rated_rows, self._slot_rows, self._moved = [], [], {}
        self._kind_rows = []

    def _bulk(self, into: str, types: str, rows: list[tuple[Any, ...]], tail: str) -> None:
        """``rows`` inserted in one statement: ``executemany`` on SQLite (in process, cheap),
        one ``unnest`` of arrays on PostgreSQL (``executemany`` there costs ~0.3 ms of Python
        per row); ``types``: T text, B bigint, per column."""
        if not rows:
            return
        if self.db.kind == "sqlite":
            marks = ", ".join("?" * len(types))
            self.db.executemany(f"INSERT INTO {into} VALUES ({marks}) {tail}", rows)
            return
        arrays = ", ".join("?::" + ("bigint[]" if t == "B" else "text[]") for t in types)
        columns = [list(column) for column in zip(*rows, strict=True)]
        self.db.execute(f"INSERT INTO {into} SELECT * FROM unnest({arrays}) {tail}", columns)

    # -- ratings ---------------------------------------------------------------------------

    def rating(self, record: dict[str, Any]) -> None:
        """Check one stored rating; remember its slot (when it counts), clerk and time."""
        if record.get("kind") == "loss":
            return
        device, rid = str(record["device_id"]), str(record["id"])
        held = [*self._time(record), *self._clerk(record)]
        first = record.get("assess_number") == 1
        if first:
            held += self._slots(record)
        for kind, detail, other in held:
            self._hold(record, kind, detail, other)
        if first and not held:
            for key in _case_slots(record):
                self._take(key, (device, rid))
                self._slot_rows.append((*key, rid, device))
            for serial, kind in _case_kinds(record):
                if serial not in self._kinds:
                    self._kinds[serial] = (kind, device, rid)
                    self._kind_rows.append((serial, kind, rid, device))
        clerk = record.get("clerk") or {}
        at = utc(record.get("rated_at")) or ""
        epoch = str(record.get("epoch", ""))
        previous = self._previous(record)
        mark = previous[1] if previous else ""
        ahead = any(kind == "time_future" for kind, _, _ in held)
        if record.get("rated_clock_synced") is True and at and not ahead:
            mark = max(mark, at)  # a time held as ahead of the city's raises nothing
        self._chains[device] = self._moved[(device, epoch)] = (rid, mark)
        self._rated_rows.append((rid, device, epoch, int(record["seq"]),
                                 str(clerk.get("id", "")), at, mark))  # fmt: skip

    def _slots(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any], tuple[str, str]]]:
        """``second_first_rating`` when a slot of one of its cases is another device's."""
        out = []
        for serial, slot in _case_slots(record):
            other = self._taken(serial, slot, str(record["device_id"]))
            if other is not None:
                out.append(("second_first_rating", {"serial": serial, "slot": slot,
                            "why": f"case {serial} ({slot}) was rated first at {other[0]}"},
                            other))  # fmt: skip
        return out or self._kind_changed(record)

    def _kind_changed(
        self, record: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any], tuple[str, str]]]:
        """``second_first_rating`` when another device's first counted rating gave one of its
        serials another kind of case: the kind is fixed by that rating."""
        for serial, kind in _case_kinds(record):
            fixed, device, rid = self._kinds.get(serial) or (kind, "", "")
            if fixed != kind and device != str(record["device_id"]):
                return [("second_first_rating", {"serial": serial, "kind": kind,
                         "fixed_kind": fixed, "why": f"case {serial} was rated first at"
                         f" {device} as {fixed}, not {kind}"}, (device, rid))]  # fmt: skip
        return []

    def _take(self, key: tuple[str, str], by: tuple[str, str]) -> None:
        """Remember that ``by`` (device, record id) took slot ``key`` first."""
        self._serials.setdefault(key[0], {}).setdefault(key[1], by)

    def _taken(self, serial: str, slot: str, device: str) -> tuple[str, str] | None:
        """Another device's first rating that ``slot`` of ``serial`` would rate again: the
        same slot, or, since a consult case is rated once in total whatever its stage
        (``rating_slot``), any slot when one of the two calls the case a consult (otherwise a
        forger re-rates another window's case by sending it as a consult, or the reverse)."""
        slots = self._serials.get(serial, {})
        clash = [slots.get(slot)]
        if slot == "consult":
            clash += [slots[s] for s in sorted(slots)]
        else:
            clash.append(slots.get("consult"))
        return next((o for o in clash if o is not None and o[0] != device), None)

    def _previous(self, record: dict[str, Any]) -> tuple[str, str] | None:
        """(record id, high water) of the device's stored rating that set its high water, in
        any epoch, or None (read once per device and batch; the batch's own ratings follow in
        memory)."""
        key = str(record["device_id"])
        if key not in self._chains:
            rows = self.db.rows(
                "SELECT record_id, high_water FROM hub_chain_time WHERE device_id = ? ORDER BY"
                " high_water DESC LIMIT 1",
                (key,),
            )
            self._chains[key] = (str(rows[0][0]), str(rows[0][1])) if rows else None
        return self._chains[key]

    def _time(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any], tuple[str, str]]]:
        """``time_future`` / ``time_backwards`` (synchronised clocks only)."""
        at = utc(record.get("rated_at"))
        if record.get("rated_clock_synced") is not True or at is None:
            return []
        when = dt.datetime.fromisoformat(at)
        if when > self.received + MAX_SKEW:
            return [("time_future", {"rated_at": record.get("rated_at"),
                     "received_at": self.received.isoformat(timespec="milliseconds"),
                     "max_skew_s": MAX_SKEW.total_seconds()}, ("", ""))]  # fmt: skip
        previous = self._previous(record)
        if previous and previous[1]:
            mark = dt.datetime.fromisoformat(previous[1])
            if when < mark - BACKWARD_SLACK:
                return [("time_backwards", {"rated_at": record.get("rated_at"),
                         "chain_high_water": previous[1],
                         "slack_s": BACKWARD_SLACK.total_seconds()},
                         (str(record["device_id"]), previous[0]))]  # fmt: skip
        return []

    def _clerk(self, record: dict[str, Any]) -> list[tuple[str, dict[str, Any], tuple[str, str]]]:
        """``clerk_not_on_roster``, ``clerk_not_signed_in``, ``clerk_two_places``."""
        clerk = record.get("clerk")
        if not isinstance(clerk, dict):
            return []  # a self-service terminal's rating names no clerk
        device, cid = str(record["device_id"]), str(clerk.get("id"))
        out = []
        allowed = self.roster(device)
        if allowed is not None and cid not in allowed:
            out.append(("clerk_not_on_roster", {"clerk_id": cid, "roster": self.serves(cid)},
                        ("", "")))  # fmt: skip
        at = utc(record.get("rated_at"))
        if at and not self._reports_sign_ins(device):
            out += self._elsewhere(cid, device, at)
        reached = self._reached(device)
        known = at is not None and reached is not None and at <= reached
        known = known and self._reports_sign_ins(device)
        session = self._session(device, at) if known and at else None
        if session is not None:
            event_id, who, action, contested = session
            if action != SIGN_IN or who != cid:
                out.append(("clerk_not_signed_in", {"clerk_id": cid, "signed_in": who
                            if action == SIGN_IN else None}, (device, event_id)))  # fmt: skip
            elif contested:
                out.append(("clerk_two_places", {"clerk_id": cid, "sign_in": event_id},
                            (device, event_id)))  # fmt: skip
        return out

    def _elsewhere(self, cid: str, device: str, at: str) -> list[
            tuple[str, dict[str, Any], tuple[str, str]]]:  # fmt: skip
        """``clerk_signed_in_elsewhere``: ``cid`` signed in at another device at ``at`` (its
        session not ended by then as far as that device's events say)."""
        for eid, other, who, signed_at, since in self._sign_ins_of_batch_clerks():
            if who != cid or other == device or not since <= at:
                continue
            if self._stop(other, signed_at, since) > at:
                return [("clerk_signed_in_elsewhere", {"clerk_id": cid, "signed_in_at": other,
                         "sign_in": eid, "since": since}, (other, eid))]  # fmt: skip
        return []

    def _sign_ins_of_batch_clerks(self) -> list[tuple[str, str, str, str, str]]:
        """The sign-ins that may cover the batch's ratings, by their clerks: read once per
        batch, and only when a pad reporting no sign-ins sent it.  A synchronised sign-in
        counts here from its own time (a pad's backlog is its clerk's presence), an
        unsynchronised one from its receipt."""
        if self._elsewhere_rows is None:
            self._elsewhere_rows = []
            times = sorted(t for _, t in self._rated if t)
            clerks = sorted({c for c, _ in self._rated})
            for part in _parts(clerks) if times else []:
                self._elsewhere_rows += [tuple(map(str, row)) for row in self.db.rows(
                    "SELECT s.event_id, s.device_id, s.clerk_id, s.at, CASE WHEN s.synced = 1"
                    " THEN s.at ELSE COALESCE(f.since, s.at) END FROM hub_signins s"
                    " LEFT JOIN hub_signin_from f ON f.event_id = s.event_id"
                    f" WHERE s.action = ? AND {self.db.any_of('s.clerk_id', part)} AND"
                    " COALESCE(f.since, s.at) > ? AND s.at <= ?",
                    (SIGN_IN, *self.db.any_params(part), _shift(times[0], -SESSION_MAX),
                     times[-1]))]  # fmt: skip
        return self._elsewhere_rows

    # -- the roster ------------------------------------------------------------------------

    def roster(self, device: str) -> set[str] | None:
        """The clerks the roster lets rate at ``device`` (its own rows, and its halls' rows
        without a device); None when the roster names no such device (no roster check).
        Read once per device and batch, by the table's key."""
        if device not in self._roster:
            halls = sorted({str(r[0]) for r in self.db.rows(
                "SELECT hall FROM hub_roster WHERE device_id = ?", (device,))})  # fmt: skip
            clerks = None
            if halls:
                clerks = {str(r[0]) for r in self.db.rows(
                    "SELECT clerk_id FROM hub_roster WHERE device_id = ? OR (device_id = ''"
                    f" AND {self.db.any_of('hall', halls)})",
                    (device, *self.db.any_params(halls)))}  # fmt: skip
            self._roster[device] = clerks
        return self._roster[device]

    def serves(self, clerk_id: str) -> list[dict[str, str]]:
        """The roster rows of ``clerk_id``: where the city says the clerk serves."""
        return [{"hall": str(h), "device_id": str(d)} for h, d in self.db.rows(
            "SELECT hall, device_id FROM hub_roster WHERE clerk_id = ? ORDER BY hall,"
            " device_id", (clerk_id,))]  # fmt: skip

    # -- sign-ins --------------------------------------------------------------------------

    def _session(self, device: str, at: str) -> tuple[str, str, str, bool] | None:
        """The device's last sign-in or sign-out at or before ``at``: (event id, clerk,
        action, contested), or None when it reported none before then."""
        rows = self.db.rows(
            "SELECT event_id, clerk_id, action, contested FROM hub_signins WHERE device_id = ?"
            " AND at <= ? ORDER BY at DESC, event_id DESC LIMIT 1",
            (device, at),
        )
        if not rows:
            return None
        eid, who, action, contested = rows[0]
        return str(eid), str(who), str(action), bool(contested)

    def event(self, record: dict[str, Any]) -> None:
        """A stored event: the time its device's events chain reached moves on, and the
        ratings of that device up to it are judged against its sign-ins; a ``clerk_sign_in``
        / ``clerk_sign_out`` is kept first (and a sign-in judged against the clerk's other
        devices)."""
        at = utc(record.get("at"))
        if at is None or record.get("kind") == "loss":
            return
        device = str(record["device_id"])
        clerk = record.get("clerk")
        if record.get("kind") in (SIGN_IN, SIGN_OUT) and isinstance(clerk, dict):
            cid = str(clerk.get("id", ""))
            self.db.execute(
                "INSERT INTO hub_signins (event_id, device_id, clerk_id, action, at, synced)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (str(record["id"]), device, cid, str(record["kind"]), at,
                 int(record.get("clock_synced") is True)),
            )  # fmt: skip
            self._signs[device] = True
            self._ends, self._elsewhere_rows = {}, None  # what was read before is stale
            if record["kind"] == SIGN_IN:
                since = self._since(record, at)
                start = at if record.get("clock_synced") is True else since
                self._two_places(str(record["id"]), device, cid, at, (start, since))
        before = self._reached(device)
        if before is None or at > before:
            self._reach[device] = at
            self.db.execute(
                "INSERT INTO hub_event_clock (device_id, latest) VALUES (?, ?) ON CONFLICT"
                " (device_id) DO UPDATE SET latest = excluded.latest", (device, at),
            )  # fmt: skip
            if self._reports_sign_ins(device):  # an old pad: nothing to judge against
                self._judge(device, before or "", at)

    def _reached(self, device: str) -> str | None:
        """The latest ``at`` of the device's stored events: its sign-ins are known up to it
        (events are stored in chain order), so a rating up to then can be judged."""
        if device not in self._reach:
            rows = self.db.rows("SELECT latest FROM hub_event_clock WHERE device_id = ?", (device,))
            self._reach[device] = str(rows[0][0]) if rows else None
        return self._reach[device]

    def _reports_sign_ins(self, device: str) -> bool:
        """Whether the device ever reported a sign-in or sign-out (read once per batch)."""
        if device not in self._signs:
            self._signs[device] = bool(self.db.rows(
                "SELECT 1 FROM hub_signins WHERE device_id = ? LIMIT 1", (device,)))  # fmt: skip
        return self._signs[device]

    def _end(self, device: str, at: str) -> str:
        """When the session of ``device`` begun at ``at`` ends: its next sign-in/out, or far
        (read once per batch and session: events change it, ratings do not)."""
        if (device, at) in self._ends:
            return self._ends[(device, at)]
        rows = self.db.rows(
            "SELECT min(at) FROM hub_signins WHERE device_id = ? AND at > ?", (device, at)
        )
        self._ends[(device, at)] = str(rows[0][0]) if rows and rows[0][0] else "9999"
        return self._ends[(device, at)]

    def _stop(self, device: str, at: str, start: str) -> str:
        """When a sign-in at ``at`` (counting from ``start``) stops counting for
        :meth:`_two_places`: the device's next sign-in or sign-out, or :data:`SESSION_MAX`
        after ``start`` (a pad left signed in overnight)."""
        return min(self._end(device, at), _shift(start, SESSION_MAX))

    def _since(self, record: dict[str, Any], at: str) -> str:
        """From when a sign-in counts for :meth:`_two_places`: its own time when its clock
        was synchronised and it is in step with its receipt and its events chain, else its
        receipt time (call before the chain's high water moves to this event)."""
        received = utc(self.received.isoformat()) or at
        floor = max(_shift(received, -MAX_SKEW), _shift(self._reached(
            str(record["device_id"])) or at, -BACKWARD_SLACK))  # fmt: skip
        if record.get("clock_synced") is True and at >= floor:
            return at
        return max(at, received)

    def _two_places(self, event_id: str, device: str, cid: str, at: str,
                    times: tuple[str, str]) -> None:  # fmt: skip
        """The clerk's sessions at other devices overlapping this one (each from its start:
        its own time when synchronised, else its receipt): the sign-in of the later ``since``
        contested, its ratings held, both devices flagged.  ``times``: (start, since)."""
        start, since = times
        self.db.execute(
            "INSERT INTO hub_signin_from (event_id, device_id, clerk_id, since) VALUES (?, ?, ?,"
            " ?) ON CONFLICT DO NOTHING", (event_id, device, cid, since),
        )  # fmt: skip
        stop = self._stop(device, at, start)
        if stop <= start:
            return  # over before it counts (an unsynchronised one signed out before receipt)
        first = "CASE WHEN s.synced = 1 THEN s.at ELSE COALESCE(f.since, s.at) END"
        for other_id, other_device, other_at, other_start, other_since in self.db.rows(
            f"SELECT s.event_id, s.device_id, s.at, {first}, COALESCE(f.since, s.at) FROM"
            " hub_signins s LEFT JOIN hub_signin_from f ON f.event_id = s.event_id WHERE"
            " s.clerk_id = ? AND s.action = ? AND s.device_id != ? AND (s.synced = 1 OR"
            f" f.since IS NOT NULL) AND {first} > ? AND {first} < ?",
            (cid, SIGN_IN, device, _shift(start, -SESSION_MAX), stop),
        ):
            other_id, other_device = str(other_id), str(other_device)
            other_at, other_since = str(other_at), str(other_since)
            if self._stop(other_device, other_at, str(other_start)) <= start:
                continue  # signed out (or another clerk signed in) before this sign-in
            later = max((since, event_id, device, at),
                        (other_since, other_id, other_device, other_at))  # fmt: skip
            self.db.execute("UPDATE hub_signins SET contested = 1 WHERE event_id = ?",
                            (later[1],))  # fmt: skip
            detail = {"clerk_id": cid, "sign_ins": sorted([
                {"device_id": device, "event_id": event_id, "at": at, "since": since},
                {"device_id": other_device, "event_id": other_id, "at": other_at,
                 "since": other_since}],
                key=lambda s: s["at"]), "contested": later[1]}  # fmt: skip
            for d in (device, other_device):
                self.verdicts.flags.append((d, "clerk_two_places", f"{cid}:{later[1]}", detail))
            log.warning(
                "clerk %s signed in at %s and %s at once: the later sign-in %s is contested,"
                " its ratings held; flagged clerk_two_places", cid, other_device, device,
                later[1],
            )  # fmt: skip
            reached = self._reached(later[2]) or ""
            self._judge(later[2], _before(later[3]), min(self._end(later[2], later[3]),
                        reached), ("clerk_two_places",))  # fmt: skip

    def _judge(self, device: str, after: str, upto: str, kinds: tuple[str, ...] = (
            "clerk_not_signed_in", "clerk_two_places")) -> None:  # fmt: skip
        """Ratings of ``device`` already stored with ``rated_at`` in (``after``, ``upto``],
        judged against its sign-ins now that its events chain reached ``upto``."""
        self.flush()
        for (text,) in self.db.rows(
            "SELECT r.record FROM hub_rated h JOIN hub_records r ON r.id = h.record_id"
            " WHERE h.device_id = ? AND h.rated_at > ? AND h.rated_at <= ?",
            (device, after, upto),
        ):
            record = json.loads(str(text))
            for kind, detail, other in self._clerk(record):
                if kind in kinds:
                    self._hold(record, kind, detail, other)

    # -- holding ---------------------------------------------------------------------------

    def _hold(self, record: dict[str, Any], kind: str, detail: dict[str, Any],
              other: tuple[str, str]) -> None:  # fmt: skip
        self.verdicts.held.append(Held(str(record["id"]), str(record["device_id"]), kind,
                                       {**detail, "record": summary(record)}, other))  # fmt: skip


def _parts(values: list[str], size: int = 500) -> list[list[str]]:
    """``values`` in slices of ``size`` (one statement's parameters each)."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def _shift(at: str, by: dt.timedelta) -> str:
    """The UTC text ``at`` moved by ``by``."""
    return (dt.datetime.fromisoformat(at) + by).isoformat(timespec="milliseconds")


def _before(at: str) -> str:
    """A text just below ``at`` (so that ``> _before(at)`` includes ``at`` itself)."""
    return at[:-1] + chr(ord(at[-1]) - 1) + "~"


def _case_slots(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``(serial, slot)`` of each case of a rating, by the pad's own rule (art. 22)."""
    stage, visit = str(record.get("stage")), int(record.get("visit") or 1)
    return sorted({(str(c.get("serial")), rating_slot(str(c.get("kind")), stage, visit))
                   for c in record.get("cases") or [] if isinstance(c, dict)})  # fmt: skip


def _case_kinds(record: dict[str, Any]) -> list[tuple[str, str]]:
    """``(serial, kind)`` of each case of a rating."""
    return sorted({(str(c.get("serial")), str(c.get("kind")))
                   for c in record.get("cases") or [] if isinstance(c, dict)})  # fmt: skip


def write(db: HubDB, verdicts: Verdicts) -> list[Held]:
    """Inside the batch's transaction: hold and flag what :class:`Checker` found; the holds
    that are new (for the log)."""
    fresh = [h for h in verdicts.held if db.hold(h.record_id, h.device_id, h.kind, h.detail,
                                                 h.other)]  # fmt: skip
    for device, kind, key, detail in verdicts.flags:
        db.flag(device, kind, key, detail)
    return fresh


def held_counts(db: HubDB) -> dict[str, int]:
    """How many stored records of each registered device are held out of the figures."""
    counts = {d: 0 for d in db.devices()}
    for device, n in db.rows(
        "SELECT device_id, count(DISTINCT record_id) FROM hub_conflicts GROUP BY device_id"
    ):
        counts[str(device)] = int(n)
    return counts


def listed(db: HubDB, device_id: str | None = None) -> list[dict[str, Any]]:
    """Every held record with both sides (``evaluator hub conflicts``): the conflict as
    :meth:`HubDB.conflicts` has it, ``record`` (this record) and ``other`` (the other device's
    record, when there is one; the roster rows are in ``detail``)."""
    out = []
    for c in db.conflicts(device_id):
        sides = {}
        for name, rid in (("record", c["record_id"]), ("other", c["other_record_id"])):
            rows = db.rows("SELECT record FROM hub_records WHERE id = ?", (rid,)) if rid else []
            sides[name] = summary(json.loads(str(rows[0][0]))) if rows else None
        out.append({**c, **sides})
    return out


__all__ = [
    "KINDS",
    "MAX_SKEW",
    "Checker",
    "Held",
    "held_counts",
    "listed",
    "summary",
    "utc",
    "write",
]
