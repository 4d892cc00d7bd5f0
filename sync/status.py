"""What the sync tells the rest of the pad, in a module of its own so that the offline stand-in
(and anything that only reads the status) does not import paho."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SyncStatus:
    """A snapshot of the uploader for the UI and the watchdog."""

    connected: bool
    pending: int
    last_error: str
    store_check: str = ""
    """The last full store check: ``""`` (not run yet), ``"ok (… ms)"`` or
    ``"damaged: …"`` (see :meth:`sync.store.Store.integrity_check`)."""
