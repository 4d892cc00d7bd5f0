"""The device key, loaded (or created on first start) beside the pad, not in its start-up path.

Importing the crypto library costs some 27 ms, a fifth of the pad's start; the key is needed
only when the first rating is sealed, which a citizen's hand cannot make in the first moments
after READY.  :class:`KeyLoader` loads it in a thread of its own once :meth:`start` is called
(after READY); the store calls it for the signer when it seals a record and waits for the load
if it has not finished (or loads it there and then if it was never started).

A key that cannot be loaded (unreadable, readable by others, not a key) never stops the pad: the
problem is logged as critical and reported in ``status``, and records are written unsigned until
the technician fixes it, which ``evaluator verify`` and the city then see.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sync.keys import DeviceKey

log = logging.getLogger(__name__)


class KeyLoader:
    """Callable giving the device key (``None`` when it cannot be had); loads it once."""

    def __init__(self, path: Path | str, *, wait_s: float = 10.0) -> None:
        self.path = Path(path)
        self.wait_s = wait_s
        self.key: DeviceKey | None = None
        self.created = False
        self.problem = ""
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._started = False
        self._late = False

    def start(self) -> None:
        """Load the key in a background thread (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._load, name="device-key", daemon=True).start()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for a started load to end (at shutdown: a daemon thread still inside the crypto
        library's native code when the interpreter exits aborts the process)."""
        with self._lock:
            started = self._started
        if started:
            self._done.wait(timeout)

    def __call__(self) -> DeviceKey | None:
        """The key, waiting up to ``wait_s`` for the load (loading here if never started)."""
        with self._lock:
            run_here = not self._started
            self._started = True
        if run_here:
            self._load()
        elif self._late:  # waited once already: never hold a rating up again
            return self.key if self._done.is_set() else None
        elif not self._done.wait(self.wait_s):
            self._late = True
            self.problem = (
                f"the device key {self.path} did not load within {self.wait_s:.0f} s "
                "(a hung file system?)"
            )
            log.critical("%s; ratings are stored UNSIGNED until it loads", self.problem)
            return None
        return self.key

    def _load(self) -> None:
        try:
            from sync.keys import DeviceKey, DeviceKeyError

            try:
                self.key, self.created = DeviceKey.load_or_create(self.path)
                self.problem = ""  # a late load clears the "did not load" fault
            except DeviceKeyError as exc:
                self.problem = str(exc)
                log.critical("device key: %s; ratings are stored UNSIGNED until fixed", exc)
                return
            if self.created:
                log.warning(
                    "created the device key %s (fingerprint %s): register its public key with the "
                    "city (`evaluator keys show --config …`)",
                    self.path,
                    self.key.public.fingerprint,
                )
            else:
                log.info("device key %s, fingerprint %s", self.path, self.key.public.fingerprint)
        except Exception as exc:  # the crypto library missing or broken: the pad still rates
            self.problem = f"the device key cannot be used: {exc}"
            log.critical("%s; ratings are stored UNSIGNED until fixed", self.problem)
        finally:
            self._done.set()
