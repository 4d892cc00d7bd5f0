"""The counter link's stand-in that ships with the product (like python-escpos's ``Dummy``).

``[counter] port = "dummy://"`` selects it.  It keeps every frame the pad sends — the exact bytes
and the decoded objects — and lets a tool or a test play the business system with :meth:`feed`,
through the same ``on_message`` path a real link uses.  No thread, no port.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from evaluator.rules.protocol import Message, decode, encode, reply_error

#: The ``[counter] port`` value that selects this link.
URL = "dummy://"


class DummyLink:
    """A counter link that sends into a list: ``sent`` (objects) and ``output`` (bytes)."""

    def __init__(self, *, on_message: Callable[[Message], None] | None = None) -> None:
        self.on_message = on_message
        self.sent: list[dict[str, Any]] = []
        self.output = bytearray()
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.connected.set()

    def send(self, obj: dict[str, Any]) -> bool:
        """Keep one frame exactly as a real link would write it."""
        data = encode(obj)
        with self._lock:
            self.output.extend(data)
            self.sent.append(json.loads(data))
        return True

    def feed(self, request: dict[str, Any]) -> None:
        """Play the business system: hand ``request`` (with ``id`` and ``type``) to the pad as
        if it had arrived on the wire; a frame the protocol refuses is answered here."""
        item = decode(encode(request)[:-1])
        if isinstance(item, Message):
            if self.on_message is not None:
                self.on_message(item)
        else:
            self.send(reply_error(item.id, item.error))

    def start(self) -> None:
        """Nothing to open."""

    def stop(self) -> None:
        """Nothing to close."""
