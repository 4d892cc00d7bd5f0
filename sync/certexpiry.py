"""When the pad's client certificate expires (issue 14): a pad whose certificate expired cannot
reach the city at all, and the city signs a new one only when asked, so the pad says so 30 days
ahead: a fault in its status, on the technician's menu and an event to the city.

Imported by the sync worker's thread (after ``READY=1``): reading the certificate takes
``cryptography``, which the pad's start does not wait for.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

from sync.status import CertState
from sync.tlscerts import TlsCertError, load_certificate


def _local(moment: datetime.datetime) -> str:
    return moment.astimezone().isoformat(timespec="milliseconds")


def check_certificate(
    path: Path | str, *, warn_days: int, now: datetime.datetime | None = None
) -> CertState:
    """The expiry of the PEM certificate at ``path``: expiring when fewer than ``warn_days``
    days are left (or none).  A file that cannot be read is a :class:`CertState` with its
    ``problem`` (never an exception: the check runs in the sync worker)."""
    now = now or datetime.datetime.now(datetime.UTC)
    checked = _local(now)
    try:
        cert = load_certificate(path)
    except TlsCertError as exc:
        return CertState(str(path), "", 0, False, checked, str(exc))
    not_after = cert.not_valid_after_utc
    left = math.floor((not_after - now).total_seconds() / 86400)
    return CertState(str(path), _local(not_after), left, left < warn_days, checked)
