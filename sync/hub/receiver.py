"""The receiver thread: one paho client (MQTT 5 by default), batches in, acks and dead letters out.

Subscriptions (``P`` = ``topic_prefix``, ``G`` = ``group``):

* ``$share/G/P/+/ratings`` and ``$share/G/P/+/events`` — shared: the broker hands each message to
  one receiver of the group, so several receivers split the load (and, with it, one device's
  traffic: :mod:`sync.hub.ingest` keeps the chain in order under a per-device lock).
* with ``part=(I, N)``, ``N > 1`` (``--part I/N``), instead of the two shared filters:
  ``P/<device>/ratings`` and ``P/<device>/events`` of every registered device whose
  :func:`partition_of` is ``I``, read from the registry every ``registry_every`` seconds (a pad
  registered later is received within that): one device's chain always reaches one receiver,
  in order, so receivers never park each other's records (a shared subscription splits a
  chain between them: one stored 77–95 % while the other parked).  One receiver per part; a
  part whose receiver is gone is received by nothing until it (or a replacement with the same
  ``--part``, on any host) runs again, and its pads keep their ratings in their outboxes.
* ``P/+/status`` — NOT shared: statuses are retained, and a broker never delivers retained
  messages to a shared subscription (MQTT 5, 4.8.2), so a receiver that starts would never learn
  the status of a pad that said nothing since; every receiver upserting the same latest status is
  harmless (one row per device).

The loop (paho's external loop, as in ``sync/mqtt.py``; paho is driven only by this thread):
wait on the socket, read every packet the socket holds now (up to ``batch_max`` messages),
ingest them as one batch (one transaction per device and stream), then publish one
``{"ids": [...]}`` ack per device (QoS 1, ≤ 1000 ids a message, what the pad applies) and each
new dead letter on ``P/_hub/deadletter`` (QoS 1).  Under load a batch is whatever arrived while
the previous one was stored, so batches grow with the load and the commits per record fall.

Every turn of the loop calls ``alive`` (the service: ``WATCHDOG=1`` to systemd) at most every
``alive_every`` seconds, so a loop stuck in a hung database stops the pings; every
``progress_every`` seconds (60) an INFO line tells what the last interval and the whole run
stored, acked, parked and dead-lettered, and the records held in ``hub_conflicts``.

Dead letters (issue 16): what is published is a summary (:class:`DeadLetters`): the payload's
length and SHA-256, a cause without the sender's words, an excerpt of at most
:data:`EXCERPT_BYTES`, each text field capped, the whole never over :data:`DEAD_LETTER_MAX` bytes
nor the broker's Maximum Packet Size (a dead letter over it made the broker drop the receiver:
64 KiB of ``\x01`` became 393,406 bytes of JSON).  They are counted per device and cause, and
published at most :data:`DEAD_BURST` at once then one per :data:`DEAD_EVERY` seconds per device;
the rest are counted (``suppressed`` in the next one, ``dead_suppressed`` in the stats; all of
them are counted in the database by :mod:`sync.hub.ingest`, a bounded number filed whole).

A device that floods (more than :data:`FLOOD_BURST` messages at once, then :data:`FLOOD_RATE` a
second) has the rest dropped unread by :class:`Throttle`: not acked, counted, flagged
``flooding``, so one pad cannot take the receiver's time from the others.

A lost connection loses nothing that was stored: an ack or dead letter the broker had not
confirmed (PUBACK) when the connection ended is published again on the next one, and what the
broker had handed over without the receiver's PUBACK is resent by the pads (their outbox keeps
every rating until it is acked).

Brokers (``mqtt://host:port``, ``mqtts://host:port``) are tried in turn; after a loss the next
attempt waits a backoff.  Every failed connection is a WARNING naming its cause in words and the
broker, with the pads' words and rate limit (:mod:`sync.linkerror`: refused, DNS, timeout, not a
TLS server, unknown CA, ..., the CONNACK's reason code; repeats once a minute with a count), and
:attr:`Receiver.link` holds the last one.  Other threads use :meth:`stop`, :attr:`stats`,
:attr:`connected`, :meth:`wait_ready`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import select
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from evaluator.rules.backoff import Backoff
from sync.hub.db import FILL_CHUNK, STREAMS, open_db
from sync.hub.ingest import PARK_BYTES, PARK_RECORDS, Dead, Ingest, Result, cause_of
from sync.linkerror import (
    FailureLog,
    LinkError,
    LinkFailure,
    classify,
    classify_connack,
    classify_drop,
    closed_before_connack,
    connack_timeout,
    tls_files,
)
from sync.mqttclient import Broker, paho_client, parse_broker_url, read_ready, tls_pending

log = logging.getLogger(__name__)

#: Most ids in one ack message (the pad applies at most 1,000 of a message).
ACK_IDS = 1000
#: Most messages ingested as one batch.
BATCH_MAX = 500
#: The dead-letter topic under the prefix (``_hub`` is no device id: registration refuses it).
DEAD_LETTER = "_hub/deadletter"
#: The largest dead letter published, in bytes of JSON (far below the shipped broker's
#: ``max_packet_size`` of 256 KiB; the broker's own limit, told in its CONNACK, if smaller).
DEAD_LETTER_MAX = 8192
#: Bytes of the refused payload quoted in its dead letter (the rest: its length and SHA-256).
EXCERPT_BYTES = 256
#: Characters kept of the topic and of the reason in a dead letter.
TOPIC_CHARS = 256
REASON_CHARS = 300
#: Dead letters of one device published at once, then one per DEAD_EVERY seconds.
DEAD_BURST = 5
DEAD_EVERY = 10.0
#: (device, cause) pairs counted, and devices rate-limited, at most (the oldest forgotten).
DEAD_KEYS = 10_000
#: Messages one device may have processed: FLOOD_BURST at once, then FLOOD_RATE a second
#: (an honest pad sends at most its window of 200 unacked at once, and its backlog at the
#: pace of the acks); beyond it its messages are dropped unread (not acked: an honest pad
#: resends them) and counted, and the device is flagged ``flooding`` once.  Every message
#: stored or acked again gives its token back (:meth:`Throttle.refund`): the budget is spent
#: by what is refused or parked, so a backlog drains at the receiver's full speed.
FLOOD_BURST = 2000
FLOOD_RATE = 500.0
#: Seconds between two warnings about one flooding device.
FLOOD_WARN_EVERY = 60.0
#: Seconds after its last dropped message that a device's messages are still ingested after
#: the others' (their own batch, once the others' acks are out).
FLOOD_LANE = 10.0
#: Acks and dead letters kept for the next connection when one ends before the broker
#: confirmed them (ids of acks; dead letters count one each).
CARRY_MAX = 50_000
#: Seconds between two progress lines in the log (INFO).
PROGRESS_EVERY = 60.0
#: Seconds between two reads of the registry for the devices of a partition (``part``).
REGISTRY_EVERY = 5.0
#: Topic filters in one SUBSCRIBE of a partition's devices.
SUBSCRIBE_CHUNK = 100
#: Bytes asked of the socket in one ``recv`` (paho's packets are then cut from them).
READ_BYTES = 65536


def partition_of(device_id: str, parts: int) -> int:
    """The partition (``0 … parts-1``) that ``device_id`` belongs to: the first 8 bytes of its
    SHA-256, modulo ``parts`` (stable across hosts, versions and restarts, unlike ``hash()``)."""
    digest = hashlib.sha256(device_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % parts


def parse_part(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)`` with ``0 ≤ I < N``; :class:`ReceiverError` says what is wrong."""
    index, sep, total = text.partition("/")
    try:
        part = (int(index), int(total)) if sep else (-1, 0)
    except ValueError:
        part = (-1, 0)
    if not 0 <= part[0] < part[1]:
        raise ReceiverError(f"part {text!r}: expected I/N with 0 <= I < N, e.g. 0/2")
    return part


class DeadLetters:
    """What the receiver publishes of refused messages: summaries, counted, rate-limited.

    ``clock`` is monotonic seconds (tests pass their own).  Use from one thread."""

    def __init__(
        self,
        *,
        burst: int = DEAD_BURST,
        every: float = DEAD_EVERY,
        limit: int = DEAD_LETTER_MAX,
        clock: Any = time.monotonic,
    ) -> None:
        self.burst, self.every, self.limit = burst, every, limit
        self._clock = clock
        #: dead letters per (device, cause) since the start
        self.counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._tokens: OrderedDict[str, tuple[float, float]] = OrderedDict()  # device → (n, at)
        self._suppressed: dict[str, int] = {}  # device → not published since its last one
        self.suppressed = 0

    def offer(self, dead: Dead, packet_max: int | None = None) -> bytes | None:
        """Count ``dead``; its summary to publish, or ``None`` when its device is over its
        rate (counted in the next one's ``suppressed``)."""
        cause = cause_of(dead.reason)
        key = (dead.device_id, cause)
        count = self.counts.pop(key, 0) + 1
        self.counts[key] = count
        while len(self.counts) > DEAD_KEYS:
            self.counts.popitem(last=False)
        now = self._clock()
        tokens, at = self._tokens.pop(dead.device_id, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) / self.every)
        if tokens < 1.0:
            self._tokens[dead.device_id] = (tokens, now)
            self._suppressed[dead.device_id] = self._suppressed.get(dead.device_id, 0) + 1
            self.suppressed += 1
            self._forget()
            return None
        self._tokens[dead.device_id] = (tokens - 1.0, now)
        self._forget()
        skipped = self._suppressed.pop(dead.device_id, 0)
        cap = min(self.limit, packet_max or self.limit)
        return summary(dead, cause=cause, count=count, suppressed=skipped, limit=cap)

    def _forget(self) -> None:
        while len(self._tokens) > DEAD_KEYS:
            device, _ = self._tokens.popitem(last=False)
            self._suppressed.pop(device, None)


def summary(
    dead: Dead, *, cause: str, count: int, suppressed: int, limit: int = DEAD_LETTER_MAX
) -> bytes:
    """The dead letter of ``dead`` as published: compact JSON of at most ``limit`` bytes."""
    data = dead.payload
    full, digest = dead.whole()
    for excerpt_bytes in (EXCERPT_BYTES, 64, 0):
        excerpt = Dead(dead.device_id, dead.topic, dead.reason, data[:excerpt_bytes], dead.key)
        text, encoding = excerpt.payload_text()
        body = {
            "device_id": dead.device_id[:TOPIC_CHARS],
            "topic": dead.topic[:TOPIC_CHARS],
            "reason": dead.reason[:REASON_CHARS],
            "cause": cause,
            "payload": text,
            "payload_encoding": encoding,
            "payload_bytes": full,
            "payload_sha256": digest,
            "truncated": excerpt_bytes < full,
            "count": count,
            "suppressed": suppressed,
            "at": dead.at,
        }
        encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        if len(encoded) <= limit:
            return encoded
    # the text fields alone are over the limit (a broker announcing a tiny packet size): the
    # figures, the cause and the hash only
    body.update(device_id=dead.device_id[:64], topic="", reason=cause, payload="")
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode()


class Throttle:
    """A token bucket per device (:data:`FLOOD_BURST`, :data:`FLOOD_RATE`): what a device
    sends beyond it is dropped before any check, so one pad flooding its own topic cannot
    take the receiver's time from the others.  At most :data:`DEAD_KEYS` devices are
    remembered (the least recent forgotten).  Use from one thread."""

    def __init__(self, burst: int = FLOOD_BURST, rate: float = FLOOD_RATE,
                 clock: Any = time.monotonic) -> None:  # fmt: skip
        self.burst, self.rate, self._clock = float(burst), rate, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        #: per device dropped since the start, and devices newly over their budget
        self.dropped: dict[str, int] = {}
        self.fresh: list[str] = []
        self.recent: set[str] = set()  # dropped from since the receiver last looked
        self._last_drop: OrderedDict[str, float] = OrderedDict()
        self._warned: dict[str, float] = {}

    def allow(self, device_id: str) -> bool:
        """Take one token of ``device_id``; False (counted) when it has none."""
        now = self._clock()
        tokens, at = self._buckets.pop(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._buckets[device_id] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > DEAD_KEYS:
            self._buckets.popitem(last=False)
        if not ok:
            if device_id not in self.dropped:
                self.fresh.append(device_id)
            self.dropped[device_id] = self.dropped.get(device_id, 0) + 1
            self.recent.add(device_id)
            self._last_drop.pop(device_id, None)
            self._last_drop[device_id] = now
            if len(self.dropped) > DEAD_KEYS:
                self.dropped.pop(next(iter(self.dropped)))
        return ok

    def refund(self, device_id: str, count: int) -> None:
        """Give ``device_id`` back ``count`` tokens (up to the burst): what it sent was stored
        or acked again, so an honest pad draining its backlog as fast as the acks come is never
        throttled; only what is refused or parked spends its budget."""
        found = self._buckets.get(device_id)
        if found is not None:
            self._buckets[device_id] = (min(self.burst, found[0] + count), found[1])

    def flooding(self) -> set[str]:
        """The devices that had a message dropped in the last :data:`FLOOD_LANE` seconds."""
        now = self._clock()
        while self._last_drop and now - next(iter(self._last_drop.values())) >= FLOOD_LANE:
            self._last_drop.popitem(last=False)
        return set(self._last_drop)

    def warn_due(self, device_id: str) -> bool:
        """Whether a warning about ``device_id`` is due (once per FLOOD_WARN_EVERY)."""
        now = self._clock()
        if now - self._warned.get(device_id, -FLOOD_WARN_EVERY) < FLOOD_WARN_EVERY:
            return False
        self._warned[device_id] = now
        if len(self._warned) > DEAD_KEYS:
            self._warned.pop(next(iter(self._warned)))
        return True


class ReadBuffer:
    """paho's reads served from one ``recv`` of up to :data:`READ_BYTES` (issue 16 "Speed").

    paho reads a packet in three or four ``recv`` calls (its type, each byte of its length,
    its body) and the receiver asked ``select`` before each packet: ~5 system calls a message.
    Installed as the client's ``_sock_recv`` (:meth:`install`), this hands paho the same bytes
    in the same order from a buffer filled by one call; :attr:`pending` tells the loop that
    packets are waiting here, where ``select`` on the socket cannot see them (as a TLS
    socket's decrypted buffer, :func:`sync.mqttclient.tls_pending`)."""

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        self._recv = recv
        self._data = b""
        self._at = 0

    @classmethod
    def install(cls, client: Any) -> ReadBuffer | None:
        """Put a buffer in front of ``client``'s socket reads; ``None`` when this paho has no
        ``_sock_recv`` to put it in front of (then it reads as it always did)."""
        recv = getattr(client, "_sock_recv", None)
        if recv is None:
            return None
        buffer = cls(recv)
        client._sock_recv = buffer.recv
        return buffer

    @property
    def pending(self) -> bool:
        return self._at < len(self._data)

    def recv(self, size: int) -> bytes:
        """At most ``size`` bytes: from the buffer, else from one read of the socket (which
        raises ``BlockingIOError`` when it has none, and gives ``b""`` at its end, as paho
        expects of ``recv``)."""
        if self._at >= len(self._data):
            data = self._recv(READ_BYTES)
            if len(data) <= size:
                return data
            self._data, self._at = data, 0
        start, self._at = self._at, min(self._at + size, len(self._data))
        return self._data[start : self._at]


#: MQTT's PUBACK packet type (fixed header byte; remaining length 2: the packet id only, which
#: MQTT 5 reads as reason "success").
PUBACK = 0x40


def pubacks(mids: Sequence[int]) -> bytes:
    """The PUBACK packets of ``mids``, one after another (one write for a whole burst)."""
    return b"".join(bytes((PUBACK, 2)) + mid.to_bytes(2, "big") for mid in mids)


def cork(sock: Any, on: bool) -> None:
    """Hold (``on``) or release the socket's small writes (Linux ``TCP_CORK``): the PUBACKs
    paho writes one ``send`` each while a burst of messages is read go out together when it
    ends, instead of one TCP segment each (and one wake-up of the broker each)."""
    option = getattr(socket, "TCP_CORK", None)
    if option is not None:
        with contextlib.suppress(OSError, AttributeError, ValueError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1 if on else 0)


class ReceiverError(ValueError):
    """A receiver option is wrong (a broker URL, the protocol)."""


#: URL schemes the receiver also accepts, as paho names them.
_SCHEMES = {"tcp": "mqtt", "ssl": "mqtts"}


def parse_broker(url: str) -> Broker:
    """One broker: ``mqtt://host[:1883]`` or ``mqtts://host[:8883]`` (TLS), as the pads'
    (:func:`sync.mqttclient.parse_broker_url`); also a host alone (``mqtt://``) and paho's
    ``tcp://`` and ``ssl://``.  :class:`ReceiverError` says what is wrong."""
    scheme, sep, rest = url.partition("://")
    text = f"{_SCHEMES.get(scheme.lower(), scheme)}://{rest}" if sep else f"mqtt://{url}"
    try:
        return parse_broker_url(text)
    except ValueError as exc:
        raise ReceiverError(str(exc)) from None


class Receiver(threading.Thread):
    """The city receiver: stores what the pads publish into ``db_url`` and acks it.

    ``brokers``: URLs tried in turn.  ``group``: the shared-subscription group (receivers of
    one group split the load).  ``protocol``: ``"5"`` (default) or ``"3.1.1"``.  TLS: ``tls_ca``
    (the CA file; empty: the system's CAs), ``tls_cert``/``tls_key`` (a client certificate).
    Start with :meth:`start`, end with :meth:`stop` then :meth:`join`.
    """

    def __init__(
        self,
        db_url: str,
        brokers: Sequence[str] = ("mqtt://127.0.0.1:1883",),
        topic_prefix: str = "hcp/v1",
        group: str = "hub",
        client_id: str = "",
        protocol: str = "5",
        tls_ca: str = "",
        tls_cert: str = "",
        tls_key: str = "",
        username: str = "",
        password: str = "",
        *,
        keepalive: int = 30,
        batch_max: int = BATCH_MAX,
        reconnect_min: float = 0.5,
        reconnect_max: float = 30.0,
        connect_timeout: float = 5.0,
        connack_timeout: float = 8.0,
        failure_log_every: float = 60.0,
        part: tuple[int, int] = (0, 1),
        progress_every: float = PROGRESS_EVERY,
        registry_every: float = REGISTRY_EVERY,
        alive: Callable[[], None] | None = None,
        alive_every: float = 10.0,
        flood_burst: int = FLOOD_BURST,
        flood_rate: float = FLOOD_RATE,
        park_records: int = PARK_RECORDS,
        park_bytes: int = PARK_BYTES,
    ) -> None:
        if protocol not in ("5", "3.1.1", "311"):
            raise ReceiverError(f"protocol {protocol!r}: expected 5 or 3.1.1")
        if not brokers:
            raise ReceiverError("at least one broker URL is needed")
        if not group or any(c in group for c in "/+#"):
            raise ReceiverError(f"group {group!r}: a non-empty name without / + #")
        if not 0 <= part[0] < part[1]:
            raise ReceiverError(f"part {part[0]}/{part[1]}: expected 0 <= I < N")
        super().__init__(name="hub-receiver", daemon=True)
        self.db_url = db_url
        self.brokers = [parse_broker(b) for b in brokers]
        self.prefix = topic_prefix.rstrip("/")
        self.group = group
        self.client_id = client_id
        self.protocol = "5" if protocol == "5" else "3.1.1"
        self.tls_ca, self.tls_cert, self.tls_key = tls_ca, tls_cert, tls_key
        self.username, self.password = username, password
        self.keepalive = keepalive
        self.batch_max = batch_max
        self.connect_timeout = connect_timeout
        self.connack_timeout = connack_timeout
        self.part = part
        if part[1] == 1:
            self.subscriptions = [
                (f"$share/{group}/{self.prefix}/+/ratings", 1),
                (f"$share/{group}/{self.prefix}/+/events", 1),
                (f"{self.prefix}/+/status", 1),
            ]
        else:  # the partition's devices are added from the registry (_subscribe_devices)
            self.subscriptions = [(f"{self.prefix}/+/status", 1)]
        self.progress_every = progress_every
        self.registry_every = registry_every
        self._alive, self.alive_every = alive, alive_every
        self.dead_topic = f"{self.prefix}/{DEAD_LETTER}"
        self._backoff = Backoff(reconnect_min, cap=max(reconnect_min, reconnect_max))
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._stats = dict.fromkeys(
            ("received", "stored", "duplicates", "parked", "dead", "dead_repeats",
             "dead_published", "dead_suppressed", "statuses", "failed", "acks_sent", "acked_ids",
             "batches", "connects", "carried", "devices", "held", "throttled"),
            0,
        )  # fmt: skip
        self._connected = False
        self.last_error = ""
        # the thread's own
        self._inbox: list[tuple[str, bytes]] = []
        self._buffer: ReadBuffer | None = None  # the current connection's reads
        #: QoS 1 packet ids read and not PUBACKed yet (sent together at the end of a burst),
        #: or None when this paho cannot queue them so (it PUBACKs each itself)
        self._pubacks: list[int] | None = None
        self._broker_index = 0
        self._broker: Broker | None = None  # of the current connection
        # Why connections fail, in the pads' words (issue 14): told once, repeats counted.
        self._failures = FailureLog(failure_log_every)
        self._session_up = False  # the current connection had its CONNACK
        self._attempt_error: LinkError | None = None  # the CONNACK's refusal
        self._drop_error: LinkError | None = None  # why a working connection ended
        self._read_errors: list[str] = []  # what paho logged before the CONNACK
        self.dead_letters = DeadLetters()
        self.throttle = Throttle(flood_burst, flood_rate)
        self.park_records, self.park_bytes = park_records, park_bytes
        self._topic_head = self.prefix + "/"
        self._packet_max: int | None = None  # the broker's Maximum Packet Size (CONNACK)
        #: published, not confirmed by the broker yet: mid → (topic, payload, ids it acks)
        self._unconfirmed: dict[int, tuple[str, bytes, int]] = {}
        #: what a lost connection had not got out: published again on the next one
        self._carry: list[tuple[str, bytes, int]] = []
        self._ingest_: Ingest | None = None
        #: SUBSCRIBEs not granted yet (mid → their filters); devices subscribed (a partition)
        self._granting: dict[int, list[str]] = {}
        self._devices: set[str] = set()
        self._registry_at = 0.0
        #: the loop's clocks: the last WATCHDOG ping, the last progress line and its counts
        self._alive_at = 0.0
        self._progress: tuple[float, dict[str, int], int] | None = None

    # -- the API for other threads ---------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counters since start: messages received, records stored, duplicates (acked again),
        parked, dead letters (and repeats not filed again), statuses, messages whose
        transaction failed, ack messages sent and ids acked, batches, connections made."""
        with self._lock:
            return dict(self._stats)

    @property
    def connected(self) -> bool:
        """Connected to a broker and subscribed."""
        return self._connected and self._ready.is_set()

    @property
    def link(self) -> LinkFailure | None:
        """The last failed connection (cause, words, broker, since, count; ``until`` once a
        connection worked again), ``None`` while none failed."""
        with self._lock:
            return self._failures.current

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the subscriptions are granted (for tests and the service's READY)."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Ask the thread to disconnect and end; ``join()`` afterwards."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # -- the thread --------------------------------------------------------------------------

    def run(self) -> None:
        ingest = None
        try:
            ingest = self._ingest_ = Ingest(
                open_db(self.db_url), self.prefix, park_records=self.park_records,
                park_bytes=self.park_bytes,
            )
            if not ingest.db.reports_filled():
                threading.Thread(target=self._fill_reports, name="hub-fill", daemon=True).start()
            while not self._stopping.is_set():
                client = self._connect()
                if client is None:
                    continue
                try:
                    self._serve(client, ingest)
                finally:
                    self._drop(client, ingest)
        except Exception as exc:
            log.exception("the receiver stopped")
            self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            if ingest is not None:
                ingest.db.close()
            for end in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    end.close()

    def _fill_reports(self) -> None:
        """On its own connection, beside the ingest: the one-time fill of the report tables of
        a database made before them (issue 16), a chunk per short transaction, so the receiver
        is READY at once and its batches wait at most a chunk; resumed where it ended after a
        restart."""
        log.warning("filling the report tables of an older database in the background;"
                    " reports wait for it until it is done")  # fmt: skip
        try:
            with open_db(self.db_url) as db:
                chunks = 0
                while not self._stopping.is_set() and not db.fill_reports(chunks=1):
                    chunks += 1
                    if chunks % 100 == 0:
                        log.info("report tables: %d records indexed so far", chunks * FILL_CHUNK)
                    self._stopping.wait(0.01)
                if db.reports_filled():
                    log.info("report tables filled")
        except Exception as exc:
            log.warning("the report tables could not be filled (reports fill them when run):"
                        " %s", exc)  # fmt: skip

    def _make_client(self, broker: Broker) -> Any:
        client = paho_client(broker, self, max_inflight=0)  # acks are small; never hold one back
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._buffer = ReadBuffer.install(client)
        self._pubacks = None
        if callable(getattr(client, "_packet_queue", None)):  # else paho PUBACKs each itself
            client.manual_ack_set(True)
            self._pubacks = []
        return client

    def _connect(self) -> Any:
        """One attempt on the next broker; ``None`` (after the backoff wait) on failure."""
        broker = self.brokers[self._broker_index % len(self.brokers)]
        self._broker_index += 1
        self._broker = broker
        self._session_up = False
        self._attempt_error = self._drop_error = None
        self._read_errors.clear()
        try:  # paho's tls_set loads the CA, the certificate and the key here
            client = self._make_client(broker)
        except (OSError, ValueError) as exc:
            files = {"tls_ca": self.tls_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key}
            self._failed(broker, tls_files(exc, files) if broker.tls else classify(exc, tls=False))
            return None
        try:
            # paho logs why a read failed (an alert, a reset): listened to until the CONNACK
            client.on_log = self._on_log
            if self.protocol == "5":
                client.connect(broker.host, broker.port, keepalive=self.keepalive,
                               clean_start=True)  # fmt: skip
            else:
                client.connect(broker.host, broker.port, keepalive=self.keepalive)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._failed(broker, classify(exc, tls=broker.tls))
            return None
        with contextlib.suppress(AttributeError, OSError):
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("connecting to %s", broker)
        return client

    def _failed(self, broker: Broker, error: LinkError) -> None:
        """An attempt on ``broker`` failed: a warning naming the cause (repeats counted), the
        backoff, the next broker."""
        with self._lock:
            line = self._failures.failed(error, str(broker), time.monotonic(), time.time())
        self.last_error = f"cannot connect to {broker}: {error.text}"[:300]
        wait = self._backoff.next()
        if line is not None:
            log.warning("%s; next broker in %.1fs", line, wait)
        self._sleep(wait)

    def _on_log(self, client: Any, userdata: Any, level: int, text: str) -> None:
        """paho's log while connecting: keep its errors (the socket's, with OpenSSL's words)."""
        import paho.mqtt.client as mqtt

        if level == mqtt.MQTT_LOG_ERR and len(self._read_errors) < 10:
            self._read_errors.append(text)

    def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (a backoff) or until :meth:`stop`, still telling systemd the loop
        is alive and logging progress."""
        end = time.monotonic() + max(0.0, seconds)
        while not self._stopping.is_set():
            self._tick()
            left = end - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(OSError, ValueError):
                readable, _, _ = select.select([self._wake_r], [], [], min(left, 1.0))
                if readable:
                    self._drain_wake()

    def _tick(self) -> None:
        """Once per turn of the loop: the watchdog ping (``alive``, at most once per
        ``alive_every`` s: a loop stuck in a hung database stops them, and systemd restarts the
        service) and, every ``progress_every`` s, the progress line."""
        now = time.monotonic()
        if self._alive is not None and now - self._alive_at >= self.alive_every:
            self._alive_at = now
            self._alive()
        if self._progress is None:
            self._progress = (now, self.stats, self._conflicts())
        elif now - self._progress[0] >= self.progress_every:
            self._log_progress(now)

    def _conflicts(self) -> int:
        """Records held in ``hub_conflicts`` (-1 when the database cannot say)."""
        ingest = self._ingest_
        if ingest is None:
            return -1
        try:
            return int(ingest.db.rows("SELECT COUNT(*) FROM hub_conflicts")[0][0])
        except Exception as exc:
            log.warning("counting the held conflicts failed: %s", exc)
            return -1

    def _log_progress(self, now: float) -> None:
        """``progress: last 60s stored …; total stored …`` (INFO): what the receiver did since
        the last line and since it started; ``conflicts``: records held in hub_conflicts."""
        assert self._progress is not None
        then, before, held_before = self._progress
        stats, held = self.stats, self._conflicts()
        names = (("stored", "stored"), ("acked", "acked_ids"), ("parked", "parked"),
                 ("dead", "dead"))  # fmt: skip
        recent = ", ".join(f"{n} {stats[k] - before[k]}" for n, k in names)
        total = ", ".join(f"{n} {stats[k]}" for n, k in names)
        change = held - held_before if held >= 0 and held_before >= 0 else "?"
        log.info(
            "progress: last %.0fs %s, conflicts %s; total %s, conflicts held %s; %s",
            now - then, recent, change, total, held if held >= 0 else "?",
            "connected" if self.connected else "NOT connected",
        )  # fmt: skip
        self._progress = (now, stats, held)

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _serve(self, client: Any, ingest: Ingest) -> None:
        """Drive one connection until it is lost or the receiver stops."""
        import paho.mqtt.client as mqtt

        ok = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        since = time.monotonic()
        while not self._stopping.is_set():
            self._tick()
            if self.part[1] > 1 and self._session_up:
                self._subscribe_devices(client)
            sock = client.socket()
            if sock is None:
                return self._lost("socket closed")
            wlist = [sock] if client.want_write() else []
            waiting = self._waiting(sock)
            timeout = 0.0 if waiting else min(1.0, self.alive_every)
            try:
                readable, writable, _ = select.select([sock, self._wake_r], wlist, [], timeout)
            except (OSError, ValueError) as exc:
                return self._lost(str(exc))
            if self._wake_r in readable:
                self._drain_wake()
            rc = ok
            if sock in readable or waiting:
                rc = self._read(client, sock)
            if self.throttle.recent:
                self._flag_floods(ingest)
            if self._inbox:
                try:
                    self._ingest(client, ingest)
                except Exception:  # the database went away: nothing acked, the pads resend
                    log.exception("a batch could not be ingested; reopening the database")
                    with self._lock:
                        self._stats["failed"] += 1
                    self._reopen(ingest)
                else:  # Ingest logs and counts a failed transaction, it does not raise
                    if ingest.db.broken:
                        log.error("the database connection is lost; reopening it")
                        self._reopen(ingest)
            if rc == ok and (writable or client.want_write()):
                rc = client.loop_write()
            if rc == ok:
                rc = client.loop_misc()
            if rc != ok:
                return self._lost(mqtt.error_string(rc))
            if not self._session_up and time.monotonic() - since > self.connack_timeout:
                return self._lost("no CONNACK", connack_timeout(self.connack_timeout))
        with contextlib.suppress(Exception):
            client.disconnect()
            client.loop_write()
        return None

    def _waiting(self, sock: Any) -> bool:
        """Bytes read but not handed to paho yet: in the read buffer, or TLS's."""
        return (self._buffer is not None and self._buffer.pending) or tls_pending(sock)

    def _read(self, client: Any, sock: Any) -> Any:
        """Read every packet the socket holds now, up to ``batch_max`` messages, the PUBACKs
        paho writes meanwhile corked (:func:`cork`) and sent together at the end."""
        cork(sock, True)
        try:
            return read_ready(
                client, sock, most=self.batch_max, pending=self._waiting,
                go_on=lambda: len(self._inbox) < self.batch_max,
            )  # fmt: skip
        finally:
            self._send_pubacks(client)
            cork(sock, False)

    def _send_pubacks(self, client: Any) -> None:
        """The burst's PUBACKs as ONE queued packet (paho writes each of its own with a
        ``send`` and a pass of its write path, ~5 µs a message): the broker gets them when the
        burst is read, as before, only in one piece."""
        mids, self._pubacks = self._pubacks, [] if self._pubacks is not None else None
        if mids:
            client._packet_queue(PUBACK, pubacks(mids), 0, 0)

    def _ingest(self, client: Any, ingest: Ingest) -> None:
        """Ingest what was read and publish its acks and dead letters; the messages of pads
        throttled in the last :data:`FLOOD_LANE` seconds go in a batch of their own after the
        others' acks are out, so a flooding pad's checks never delay another pad's ack."""
        batch, self._inbox = self._inbox, []
        flooding = self.throttle.flooding()
        if not flooding:
            return self._ingest_part(client, ingest, batch)
        head = self._topic_head
        slow = [m for m in batch if m[0][len(head) :].split("/", 1)[0] in flooding]
        if len(slow) < len(batch):
            fast = [m for m in batch if m[0][len(head) :].split("/", 1)[0] not in flooding]
            self._ingest_part(client, ingest, fast)
        if slow:
            self._ingest_part(client, ingest, slow)
        return None

    def _ingest_part(self, client: Any, ingest: Ingest, batch: list[tuple[str, bytes]]) -> None:
        result = ingest.handle_batch(batch)
        for device_id, ids in result.acks.items():
            self.throttle.refund(device_id, len(ids))
        acks_sent = acked = 0
        for device_id in dict.fromkeys([*result.acks, *result.missing]):
            ids, missing = result.acks.get(device_id, []), result.missing.get(device_id)
            for start in range(0, max(len(ids), 1), ACK_IDS):
                chunk = ids[start : start + ACK_IDS]
                message: dict[str, Any] = {"ids": chunk}
                if missing and start == 0:  # what the city needs to unpark a chain (issue 15)
                    message["missing"] = missing
                body = json.dumps(message, separators=(",", ":")).encode()
                self._publish(client, f"{self.prefix}/{device_id}/acks", body, len(chunk))
                acks_sent += 1
                acked += len(chunk)
        published = 0
        for dead in result.dead:
            letter = self.dead_letters.offer(dead, self._packet_max)
            if letter is not None:
                self._publish(client, self.dead_topic, letter, 0)
                published += 1
        self._count(result, len(batch), acks_sent, acked)
        with self._lock:
            self._stats["dead_published"] += published
            self._stats["dead_suppressed"] = self.dead_letters.suppressed

    def _flag_floods(self, ingest: Ingest) -> None:
        """Flag each device newly over its budget ``flooding`` (once), warn about each
        flooding device at most once a minute, and count what was dropped."""
        throttle = self.throttle
        fresh, throttle.fresh = throttle.fresh, []
        for device_id in fresh:
            detail = {"burst": int(throttle.burst), "per_second": throttle.rate}
            try:
                ingest.db.flag(device_id, "flooding", "", detail)
            except Exception:
                log.exception("flagging device %s flooding failed", device_id)
        recent, throttle.recent = throttle.recent, set()
        for device_id in sorted(recent):
            if throttle.warn_due(device_id):
                log.warning(
                    "device %s sends more than %d messages a second: %d dropped unread so far"
                    " (not acked); flagged flooding",
                    device_id, throttle.rate, throttle.dropped.get(device_id, 0),
                )  # fmt: skip
        with self._lock:
            self._stats["throttled"] = sum(throttle.dropped.values())

    def _publish(self, client: Any, topic: str, body: bytes, ids: int) -> None:
        """QoS 1, remembered until the broker confirms it (kept for the next connection if
        this one ends first)."""
        info = client.publish(topic, body, qos=1)
        self._unconfirmed[info.mid] = (topic, body, ids)

    def _carry_over(self) -> None:
        """The connection ended: what the broker did not confirm goes on the next one (the
        oldest dropped beyond CARRY_MAX: those pads resend, and are acked as duplicates)."""
        self._carry.extend(self._unconfirmed.values())
        self._unconfirmed.clear()
        total = 0
        for i in range(len(self._carry) - 1, -1, -1):
            total += max(1, self._carry[i][2])
            if total > CARRY_MAX:
                log.warning("%d ack/dead-letter message(s) not carried over (too many)", i + 1)
                del self._carry[: i + 1]
                break

    def _send_carried(self, client: Any) -> None:
        carried, self._carry = self._carry, []
        for topic, body, ids in carried:
            self._publish(client, topic, body, ids)
        if carried:
            log.info("%d ack/dead-letter message(s) of the last connection published", len(carried))
            with self._lock:
                self._stats["carried"] += len(carried)

    def _reopen(self, ingest: Ingest) -> None:
        """A new connection to the database for ``ingest`` (PostgreSQL restarted, …)."""
        self._sleep(self._backoff.next())
        try:
            fresh = open_db(self.db_url)
        except Exception as exc:
            self.last_error = str(exc)
            log.error("cannot reopen the database: %s", exc)
            return
        ingest.db.close()
        ingest.db = fresh

    def _count(self, result: Result, received: int, acks_sent: int, acked: int) -> None:
        with self._lock:
            s = self._stats
            s["received"] += received
            s["stored"] += result.stored
            s["duplicates"] += result.duplicates
            s["parked"] += result.parked
            s["held"] += result.held
            s["dead"] += len(result.dead)
            s["dead_repeats"] += result.repeats
            s["statuses"] += result.statuses
            s["failed"] += result.failed
            s["acks_sent"] += acks_sent
            s["acked_ids"] += acked
            s["batches"] += 1

    def _lost(self, why: str, error: LinkError | None = None) -> None:
        """The connection is gone.  Before its CONNACK it was a failed attempt (``error``, else
        the CONNACK's refusal, else what paho logged, else the broker hung up); after it, a
        drop told with its cause (the DISCONNECT's reason code, the keepalive); both rate
        limited."""
        self._connected = False
        self._ready.clear()
        broker = self._broker
        tls = broker.tls if broker is not None else False
        if broker is not None and not self._session_up:
            error = error or self._attempt_error
            if error is None and self._read_errors:
                error = classify(self._read_errors[-1], tls=tls, handshake_done=True)
            return self._failed(broker, error or closed_before_connack(tls=tls))
        error = error or self._drop_error or classify_drop(from_broker=False)
        self._session_up = False
        wait = self._backoff.next()
        with self._lock:
            line = self._failures.dropped(error, str(broker), time.monotonic(), time.time())
        self.last_error = f"connection to {broker} lost: {error.text} ({why})"[:300]
        if line is not None:
            log.warning("%s; reconnecting in %.1fs", line, wait)
        self._sleep(wait)
        return None

    def _drop(self, client: Any, ingest: Ingest | None = None) -> None:
        self._connected = False
        self._ready.clear()
        if self._inbox and ingest is not None:  # read, not ingested yet: stored all the same
            with contextlib.suppress(Exception):
                self._ingest(client, ingest)
        self._inbox.clear()  # (not stored: the pads send them again, they are not acked)
        self._carry_over()
        with contextlib.suppress(Exception):
            sock = client.socket()
            if sock is not None:
                sock.close()

    # paho callbacks: inside loop_read/loop_write, in this thread.

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:  # told when the broker closes the socket (_lost)
            self._attempt_error = classify_connack(reason, v5=self.protocol == "5")
            return
        client.on_log = None
        with self._lock:
            line = self._failures.connected(str(self._broker), time.monotonic(), time.time())
        if line is None:
            log.info("connected to %s", self._broker)
        else:
            log.warning("%s", line)
        self._session_up = self._connected = True
        self._backoff.reset()
        size = getattr(props, "MaximumPacketSize", None) if props is not None else None
        room = 64 + len(self.dead_topic.encode())  # the PUBLISH's header and topic
        self._packet_max = int(size) - room if isinstance(size, int) and size > room else None
        with self._lock:
            self._stats["connects"] += 1
        self._granting.clear()
        self._devices.clear()
        with self._lock:
            self._stats["devices"] = 0
        self._registry_at = 0.0
        self._subscribe(client, [t for t, _ in self.subscriptions])
        if self.part[1] > 1:
            self._subscribe_devices(client)

    def _subscribe(self, client: Any, filters: list[str]) -> None:
        for start in range(0, len(filters), SUBSCRIBE_CHUNK):
            chunk = filters[start : start + SUBSCRIBE_CHUNK]
            _rc, mid = client.subscribe([(f, 1) for f in chunk])
            self._granting[mid] = chunk

    def _subscribe_devices(self, client: Any) -> None:
        """A partition: subscribe to the ratings and events of every registered device of this
        part not subscribed yet (read from the registry every ``registry_every`` s, so a pad
        registered now is received within that)."""
        now = time.monotonic()
        if self._ingest_ is None or now - self._registry_at < self.registry_every:
            return
        self._registry_at = now
        try:
            devices = self._ingest_.db.devices()
        except Exception as exc:
            log.warning("reading the registry for partition %d/%d failed: %s", *self.part, exc)
            return
        index, total = self.part
        new = sorted(
            d for d in devices
            if d not in self._devices and not any(c in d for c in "/+#")
            and partition_of(d, total) == index
        )  # fmt: skip
        if not new:
            return
        self._devices.update(new)
        self._subscribe(client, [f"{self.prefix}/{d}/{s}" for d in new for s in STREAMS])

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected = False
        self._ready.clear()
        if self._session_up and self._drop_error is None:
            from_broker = flags.is_disconnect_packet_from_server
            keepalive = not from_broker and getattr(reason, "value", reason) == 0x8D
            self._drop_error = classify_drop(reason, from_broker=from_broker, keepalive=keepalive)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        filters = self._granting.pop(mid, [])
        refused = [t for t, r in zip(filters, reasons, strict=False) if r.is_failure]
        if refused:
            self.last_error = f"the broker refused the subscriptions {refused}"
            log.error("%s", self.last_error)
            if self.subscriptions and filters[0] == self.subscriptions[0][0]:
                return  # the receiver's own filters: never ready
        if filters and filters[0] != self.subscriptions[0][0]:  # a partition's devices
            granted = len(filters) // len(STREAMS)
            with self._lock:
                self._stats["devices"] += granted
                count = self._stats["devices"]
            log.info("partition %d/%d: receiving %d more device(s), %d in all",
                     *self.part, granted, count)  # fmt: skip
        if not self._ready.is_set() and not self._granting:
            self._send_carried(client)
            self._ready.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._unconfirmed.pop(mid, None)
        if getattr(reason, "is_failure", False):
            log.warning("the broker refused a publish of the receiver: %s", reason)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic = str(message.topic)
        if self._pubacks is not None and message.qos:  # PUBACKed even when dropped below:
            if message.qos == 1:  # the broker's window for the receiver must never fill
                self._pubacks.append(message.mid)
            else:  # the subscriptions ask QoS 1; a QoS 2 delivery is acked the paho way
                client.ack(message.mid, message.qos)
        if topic.startswith(self._topic_head):
            device_id = topic[len(self._topic_head) :].split("/", 1)[0]
            if not self.throttle.allow(device_id):
                return  # over its budget: dropped unread, not acked (flagged in _ingest)
        self._inbox.append((topic, bytes(message.payload)))
