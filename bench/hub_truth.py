"""What the truth checks cost the receiver (issue 16, :mod:`sync.hub.truth`): records stored per
second by :class:`sync.hub.ingest.Ingest` with every check (case slot, time, roster, sign-ins),
beside the same receiver with the checks skipped, measured in the same run in alternation, on
SQLite and on PostgreSQL.  Same fleet as :mod:`bench.hub` (``DEVICES`` pads, batches of
``BATCH``); a roster naming every pad is loaded so the roster check does its lookups.

``python -m bench.hub_truth``.  Figures are records/s (higher is better); ratio = with ÷ without.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.hub import PREFIX, REPEATS, Fleet, _ingest
from bench.stats import Row, table
from sync.hub import truth
from sync.hub.db import open_db
from sync.hub.ingest import Ingest, _Batch


class Unchecked(Ingest):
    """The reference: the receiver with :meth:`Ingest._truthful` skipped."""

    def _truthful(self, batch: _Batch) -> list[truth.Held]:
        return []


def bench(kind: str, url: str, ref_url: str, work: Path) -> Row:
    fleet, ref_fleet = Fleet(work, f"{kind}-t"), Fleet(work, f"{kind}-u")
    hub, ref = open_db(url), open_db(ref_url)
    fleet.register(hub)
    ref_fleet.register(ref)
    hub.set_roster([("H1", device, "A1023") for device in fleet.keys])
    checked, unchecked = Ingest(hub, PREFIX), Unchecked(ref, PREFIX)
    values, ref_values = [], []
    for r in range(REPEATS):
        for which in ("hub", "ref") if r % 2 == 0 else ("ref", "hub"):
            if which == "hub":
                values.append(_ingest(checked, fleet.next_round()))
            else:
                ref_values.append(_ingest(unchecked, ref_fleet.next_round()))
    assert hub.conflicts() == [], hub.conflicts()[:1]  # honest fleet: nothing held
    hub.close()
    ref.close()
    return Row(f"receiver ingest with truth checks, {kind}", "records/s", values,
               "the same receiver, checks skipped", ref_values)  # fmt: skip


def main() -> int:
    from tests.pg import PostgresServer

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-truth-") as tmp:
        work = Path(tmp)
        rows.append(bench("sqlite", f"sqlite:///{work / 'a.db'}", f"sqlite:///{work / 'b.db'}",
                          work))  # fmt: skip
        server = PostgresServer()
        try:
            rows.append(bench("postgresql", server.fresh_database("a"),
                              server.fresh_database("b"), work))  # fmt: skip
        finally:
            server.stop()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
