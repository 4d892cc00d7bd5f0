"""What the pad's worker (:mod:`sync.mqtt`) and the city's receiver (:mod:`sync.hub.receiver`)
share about a broker link: a broker URL (:class:`Broker`, :func:`parse_broker_url`) and the paho
client made for it (:func:`paho_client`: protocol, clean session, TLS, login, CONNACK timeout).

Why one place: both ends must speak to the same brokers the same way (an ``mqtts://`` URL, the
city's CA and a client certificate, MQTT 5 or 3.1.1 with no broker session kept), and a fix to
one (a TLS option, a URL form) must reach the other.  What differs stays with each: the pad's
last will and its in-flight window, the receiver's shared subscriptions.

paho is imported inside :func:`paho_client` only: the pad's start (issue 6) does not wait for it.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

__all__ = [
    "DEFAULT_PORTS",
    "Broker",
    "LinkSettings",
    "paho_client",
    "parse_broker_url",
    "read_ready",
    "tls_pending",
]

#: Default ports of the URL schemes.
DEFAULT_PORTS: dict[str, int] = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class Broker:
    """One broker to try: host, port and whether the link is TLS (``mqtts://``)."""

    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str) -> Broker:
    """``mqtt://host[:port]`` (1883) or ``mqtts://host[:port]`` (8883, TLS) as a :class:`Broker`;
    an IPv6 host in brackets.  ``ValueError`` names what is wrong (config validation shows it).
    """
    from urllib.parse import urlsplit

    if not isinstance(url, str) or "://" not in url:
        raise ValueError(f"broker URL {url!r} must look like mqtt://host:port or mqtts://host:port")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"broker URL {url!r}: the scheme must be mqtt or mqtts, not {scheme!r}")
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} names no host")
    if parts.username or parts.password:
        raise ValueError(f"broker URL {url!r}: put the user name and password in their own keys")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"broker URL {url!r}: no path, query or fragment after host:port")
    if port == 0:
        raise ValueError(f"broker URL {url!r}: port 0")
    return Broker(parts.hostname, port or DEFAULT_PORTS[scheme], scheme == "mqtts")


class LinkSettings(Protocol):
    """How a client meets the brokers: the pad's ``SyncWorker`` and the city's ``Receiver``
    both have these attributes (empty strings: not set)."""

    client_id: str
    #: ``"5"`` or ``"3.1.1"``.
    protocol: str
    username: str
    password: str
    #: The CA file (empty: the system's CAs); the client certificate and its key (empty: none).
    tls_ca: str
    tls_cert: str
    tls_key: str
    #: Seconds paho waits for the TCP and TLS connection.
    connect_timeout: float


def paho_client(broker: Broker, link: LinkSettings, *, max_inflight: int) -> mqtt.Client:
    """A paho client (callback API 2) for ``broker``, not yet connected: MQTT 5 or 3.1.1 with a
    clean session (the sender's store is the durable queue, not the broker's session; MQTT 5
    asks for a clean start when connecting), TLS for ``mqtts://``, the login when
    ``link.username`` is set, the connect timeout and paho's in-flight window (0: no limit)."""
    import paho.mqtt.client as paho

    v5 = link.protocol == "5"
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=link.client_id,
        clean_session=None if v5 else True,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
    )
    if link.username:
        client.username_pw_set(link.username, link.password or None)
    if broker.tls:
        client.tls_set(
            ca_certs=link.tls_ca or None,
            certfile=link.tls_cert or None,
            keyfile=link.tls_key or None,
        )
    client.connect_timeout = link.connect_timeout
    client.max_inflight_messages_set(max_inflight)
    return client


def tls_pending(sock: Any) -> bool:
    """A TLS socket holds decrypted bytes not read yet: ``select`` on the TCP socket cannot see
    them (a broker that puts several packets in one TLS record)."""
    pending = getattr(sock, "pending", None)
    if pending is None:
        return False
    try:
        return bool(pending() > 0)
    except (OSError, ValueError):
        return False


def read_ready(
    client: mqtt.Client,
    sock: Any,
    *,
    go_on: Callable[[], bool],
    most: int,
    pending: Callable[[Any], bool] | None = None,
) -> Any:
    """Read what ``sock`` (``client``'s socket, found readable) holds now: one ``loop_read``,
    then more while the socket (or TLS's decrypted buffer, :func:`tls_pending`, or what else
    ``pending(sock)`` says holds read bytes) still has bytes, ``go_on()`` says so and at most
    ``most`` more; paho's return code of the last read.

    Why here: acks (the pad) and records (the receiver) that arrived together are handled
    together, and both ends must look inside the TLS buffer the same way (the pad once did not:
    later acks waited there for the next socket event)."""
    import paho.mqtt.client as paho

    ok = paho.MQTTErrorCode.MQTT_ERR_SUCCESS
    rc = client.loop_read()
    for _ in range(most):
        if rc != ok or client.socket() is not sock or not go_on():
            break
        if not (pending or tls_pending)(sock):
            try:
                more, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):
                break
            if not more:
                break
        rc = client.loop_read()
    return rc
