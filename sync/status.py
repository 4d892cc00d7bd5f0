"""What the sync tells the rest of the pad, in a module of its own so that the offline stand-in
(and anything that only reads the status) does not import paho."""

from __future__ import annotations

from dataclasses import dataclass

from sync.linkerror import LinkFailure


@dataclass(frozen=True)
class CertState:
    """The pad's client certificate (``[mqtt] tls_cert``) as last checked (issue 14).

    ``expiring``: it expires within the warning window (30 days) or has expired: a fault.
    ``problem``: why it could not be read ("" when it was)."""

    path: str
    not_after: str
    """When it expires (local time with offset, ISO); "" when it could not be read."""
    days_left: int
    """Whole days until ``not_after``, negative once expired."""
    expiring: bool
    checked_at: str
    problem: str = ""

    def as_json(self) -> dict[str, object]:
        """The status message's ``tls_cert`` object."""
        return {"not_after": self.not_after, "days_left": self.days_left,
                "expiring": self.expiring}  # fmt: skip


@dataclass(frozen=True)
class SyncStatus:
    """A snapshot of the uploader for the UI and the watchdog."""

    connected: bool
    pending: int
    last_error: str
    store_check: str = ""
    """The last full store check: ``""`` (not run yet), ``"ok (… ms)"`` or
    ``"damaged: …"`` (see :meth:`sync.store.Store.integrity_check`)."""
    link: LinkFailure | None = None
    """The last failed connection to a broker (cause, words, since, count; ``until`` once the
    link works again), ``None`` while none failed."""
    cert: CertState | None = None
    """The client certificate's expiry as last checked; ``None`` without one (or not yet)."""
    lost: tuple[tuple[str, int], ...] = ()
    """``(stream, seq)`` of every record lost on the store (a signed loss statement went to the
    city in its place): the fault ``records_lost`` (issue 15)."""
