"""sd_notify without libsystemd: what the pad (``evaluator run``) and the city's receiver
(``evaluator hub``) tell systemd about their state (``Type=notify``: READY, RELOADING, STOPPING,
WATCHDOG).

Why here and not a library: the protocol is one datagram to the socket named in
``$NOTIFY_SOCKET``, and the pad's start imports nothing it does not need before READY=1.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def sd_notify(state: str) -> None:
    """Send ``state`` (``"READY=1"``, lines joined by ``\\n``) to systemd; a no-op outside
    systemd.  A failure is logged, never raised: systemd's bookkeeping must not stop the
    service it watches (a missed WATCHDOG=1 is systemd's to act on)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
