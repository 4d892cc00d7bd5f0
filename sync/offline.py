"""The sync's stand-in, shipped with the product: no broker, every rating stays in the outbox.

Chosen when ``[mqtt] enabled = false`` (a hall without a city link yet, a bench, the tests).
It has the :class:`sync.mqtt.SyncWorker` API the app uses, so the app never asks whether there
is a sync: ratings are stored and wait, exactly as they do while a real broker is unreachable.
"""

from __future__ import annotations

from sync.status import SyncStatus

#: What ``status.last_error`` says, so the technician sees why nothing is sent.
DISABLED = "MQTT is disabled ([mqtt] enabled = false): ratings stay in the outbox"


class OfflineSync:
    """A sync that never connects: ``status.connected`` is always ``False``."""

    name = "offline-sync"

    def __init__(self) -> None:
        self._status = SyncStatus(connected=False, pending=0, last_error=DISABLED)

    @property
    def status(self) -> SyncStatus:
        """Never connected; ``pending`` is not counted here (the store knows the outbox)."""
        return self._status

    def start(self) -> None:
        """Nothing to start."""

    def notify(self) -> None:
        """A rating was committed: it stays in the outbox."""

    def stop(self) -> None:
        """Nothing to stop."""

    def join(self, timeout: float | None = None) -> None:
        """Returns at once."""
