"""The sync's stand-in, shipped with the product: no broker, every rating stays in the outbox.

Chosen when ``[mqtt] enabled = false`` (a hall without a city link yet, a bench, the tests).
It has the :class:`sync.mqtt.SyncWorker` API the app uses, so the app never asks whether there
is a sync: ratings are stored and wait, exactly as they do while a real broker is unreachable.

Given the store's path it also runs the worker's scheduled full store check
(:func:`sync.store.scheduled_check`) in a thread of its own: the check left the store's open
(issue 8), and a pad without a city link must still have its store checked.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluator.rules.errors import StoreError
from evaluator.rules.protocol import Message
from sync.status import SyncStatus
from sync.store import Store, scheduled_check

log = logging.getLogger(__name__)

#: What ``status.last_error`` says, so the technician sees why nothing is sent.
DISABLED = "MQTT is disabled ([mqtt] enabled = false): ratings stay in the outbox"

#: Seconds after start before the first full store check, then the interval (as the worker's).
STORE_CHECK_AFTER = 60.0
STORE_CHECK_EVERY = 24 * 3600.0


class OfflineSync:
    """A sync that never connects: ``status.connected`` is always ``False``.

    With ``store_path`` (the pad), :meth:`start` starts a thread that runs the full store check
    ``store_check_after`` seconds later, then every ``store_check_every`` seconds, and reports
    it in ``status.store_check``; without (tests, tools), nothing runs at all.
    """

    name = "offline-sync"

    def __init__(
        self,
        store_path: Path | str | None = None,
        device_id: str = "",
        *,
        store_check_after: float = STORE_CHECK_AFTER,
        store_check_every: float = STORE_CHECK_EVERY,
    ) -> None:
        if store_path is not None and not device_id:
            raise ValueError("the store's device_id is needed to open it")
        self.store_path = None if store_path is None else Path(store_path)
        self.device_id = device_id
        self.store_check_after = store_check_after
        self.store_check_every = store_check_every
        self._status = SyncStatus(connected=False, pending=0, last_error=DISABLED)
        #: As the worker's: never called here (no city sends commands without a link).
        self.on_command: Callable[[Message, Callable[[dict[str, Any]], None]], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> SyncStatus:
        """Never connected; ``pending`` is not counted here (the store knows the outbox)."""
        return self._status

    def start(self) -> None:
        """Start the store checks (when there is a store to check)."""
        if self.store_path is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """A rating was committed: it stays in the outbox."""

    def set_device_state(self, **state: Any) -> None:
        """The worker's status parts: nobody to tell here."""

    def reply(self, answer: dict[str, Any]) -> None:
        """The worker's command replies: no command ever arrives here."""

    def stop(self) -> None:
        """Stop the store checks (a check under way finishes first)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the check thread, if any."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        assert self.store_path is not None
        wait = self.store_check_after
        while not self._stop.wait(wait):
            wait = self.store_check_every
            try:
                # The UI thread keeps a damaged file aside at its open, never this thread.
                with Store(
                    self.store_path, device_id=self.device_id, keep_damaged_aside=False
                ) as s:
                    result = scheduled_check(s)
            except StoreError as exc:
                result = f"damaged: {exc}" if "damaged" in str(exc) else f"not checked: {exc}"
                log.error("the store check could not run: %s", exc)
            except Exception as exc:  # a check must never take the pad down
                log.exception("the store check failed")
                result = f"not checked: {type(exc).__name__}: {exc}"
            self._status = dataclasses.replace(self._status, store_check=result)
