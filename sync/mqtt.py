"""Upload of stored ratings to the city over MQTT: one worker thread owns the paho client.

Wire contract (topics under ``{topic_prefix}/{device_id}/``):

* ``ratings`` (device → city, QoS 1): one sealed record per message, its canonical JSON in UTF-8,
  exactly as stored (``id``, ``seq``, ``hash``… see ``evaluator.rules.records.RATING_FIELDS``).
  The same record may arrive more than once: the city deduplicates by ``id``.
* ``acks`` (city → device, QoS 1): ``{"ids": ["<rating or event id>", ...]}`` once the city
  has stored them.  Only then does a rating (an event) leave its outbox: a publish the broker
  refuses (MQTT 5 PUBACK reason, e.g. "not authorized") is only logged and stays queued.  The
  city must ack a duplicate again.

* ``events`` (device → city, QoS 1): one sealed event per message (``presentation_end``,
  ``represented``, ``store_fault``, ``printer_fault``, ``tech_menu``, ``cert_expiring``;
  docs/schemas/event.schema.json), its own
  hash chain, acked on ``acks`` like ratings (one ack message may name both).
* ``status`` (device → city, QoS 1, retained): ``online``, firmware, outbox size and oldest
  age, clock, printer and counter-link state, the last store check, why the last connection
  failed (``link_error``) and the client certificate's expiry (``tls_cert``); the retained last will
  says ``online: false`` when the pad vanishes, and a clean stop says it too.
* ``commands`` (city → device, QoS 1) and ``commands/replies`` (device → city, QoS 1): one
  counter-link request per message, answered exactly as on the serial link.

MQTT 5 by default (``protocol="3.1.1"`` selectable), with a clean start and no session kept:
the outbox is the durable queue.  Several broker URLs (``mqtt://``, ``mqtts://``) are tried in
turn.

The SQLite outbox is the only queue that matters: the worker holds in memory only what it has
read and not yet published, and what it has published and the city has not acked yet; a rating
is republished from the store after every (re)connect, and while connected the *link*, not each
message, backs off (issue 16):

* **Probe.**  When the city has said nothing (no ack at all) for the quiet wait since the oldest
  unacked message was sent — ``resend_after``, or sooner once acks were measured: three times the
  ack delay, at least :data:`PROBE_MIN` — ONE message is resent: the lowest ``seq`` of each
  stream (the one a city that keeps the chain can store).  Each probe unanswered makes the quiet
  wait :data:`PROBE_BACKOFF` times longer (up to :data:`RESEND_BACKOFF` × ``resend_after``); any
  ack brings it back.  A city
  whose receivers are behind, or away, gets one duplicate per wait, never the whole window.
* **Window.**  A probe acked quickly (within :meth:`SyncWorker._quick`: the fastest ack delay
  seen, times four, at least :data:`QUICK_MIN`) says the city is back and the rest was lost (a
  receiver restarted, a shared subscription without members): every message sent before the
  probe and still unacked is resent together, at once (tokens allowing).  A probe's ack that
  comes late is ambiguous (the first copy's, from a queue draining): nothing more is resent,
  and the next quiet wait probes again.
* A copy resent without an ack is a probe again only after its own hold (the quiet wait,
  :data:`PROBE_BACKOFF` times longer per resend): a record the city refuses is not resent at
  every quiet moment, and once resent twice unanswered the next ``seq`` goes with it
  (:meth:`SyncWorker._candidates`), so it does not stop the others' resends.

Delays are measured on acks of messages sent once only (Karn's rule).

How it sends (issue 8; figures in docs/reliability.md):

* **Live lane.**  A rating committed while connected is published at once, never behind a
  backlog: :meth:`SyncWorker.notify` wakes the worker's ``select`` through a socket pair (no loop
  tick to wait out), and the worker reads the outbox after the newest seq it knows.
* **Backlog lane.**  What waited in the outbox when the connection came up is sent in ``seq``
  order, as a token bucket allows (``burst`` messages at once, then ``max_rate`` per second) and
  while fewer than ``max_unacked`` sent ratings wait for the city's ack: the drain is clocked by
  the acks, so a city whose receivers are slow slows its pads instead of piling messages up in
  the broker.  Resends take tokens too.  Live ratings borrow from the bucket (down to ``−burst``)
  rather than wait, so they slow the backlog down, never the other way round.
* **Reconnect spread.**  After losing a working connection the first attempt waits
  ``reconnect_min`` plus a random part of ``reconnect_spread``: the pads of a city, which all lose
  the broker at the same instant, do not all come back in the same second.
* **Event lane.**  Events are rare and go like live ratings (never behind a rating backlog):
  read from the event outbox at each wake-up, from its start at each connection.
* **Acks** that arrive together (one socket read) are applied in one transaction, committed
  without an fsync (:meth:`sync.store.Store.ack` ``durable=False``): an ack lost to a power cut
  costs a resend, never a rating.

The worker also runs the store's full integrity check (:meth:`sync.store.Store.integrity_check`)
on a schedule, when idle, and reports it in :attr:`SyncWorker.status` (``store_check``).

paho is not thread-safe, so the client is created, driven (``select`` on its socket, then
``loop_read``/``loop_write``/``loop_misc``, paho's documented external loop; never
``loop_start``), reconnected and disconnected only by :class:`SyncWorker`'s own thread; other
threads talk to it through :meth:`SyncWorker.notify`, :meth:`SyncWorker.stop` and
:attr:`SyncWorker.status`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import select
import socket
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from evaluator.rules.backoff import Backoff
from evaluator.rules.errors import RequestError, StoreError
from evaluator.rules.protocol import (
    MAX_DEPTH,
    MAX_FRAME,
    BadFrame,
    Message,
    decode,
    encode,
    nesting_depth,
    reply_error,
)
from sync.linkerror import (
    FailureLog,
    LinkError,
    classify,
    classify_connack,
    classify_drop,
    closed_before_connack,
    connack_timeout,
    tls_files,
)
from sync.mqttclient import Broker, paho_client, parse_broker_url, read_ready, tls_pending
from sync.status import SyncStatus
from sync.store import OutboxPage, Outgoing, Store, local_now, scheduled_check

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

#: Outbox rows read per query for the backlog lane (one range read, decoded once each).
BATCH = 200
#: Outbox rows read per query for the live lane.
LIVE_PAGE = 50
#: Messages paho keeps in flight to the broker (awaiting PUBACK); 0: no limit of paho's (the
#: worker's own window, ``max_unacked``, bounds them), which also spares paho a walk of every
#: message it holds at each PUBACK (``Client._update_inflight``).
MAX_INFLIGHT = 0
#: Most extra packet reads after one ``select`` said the socket is readable, so that the acks
#: that arrived together are applied together.
READS_PER_TURN = 64
#: Largest ack message read, in bytes (1,000 ids take about 40 kB); a larger one is ignored.
MAX_ACK_BYTES = 256 * 1024
#: Most ids applied from one ack message; the rest are not applied (those ratings are resent,
#: and the city acks them again).
MAX_ACK_IDS = 1000
#: The most a resend waits, in multiples of ``resend_after`` (30 s shipped: 5 minutes), when the
#: city does not ack in time (see :meth:`SyncWorker._pump`).
RESEND_BACKOFF = 10
#: Each probe unanswered makes the next quiet wait this many times longer (a probe is one
#: message: a gentle growth keeps a receiver's restart short for the pads, see _probe).
PROBE_BACKOFF = 1.5
#: The shortest quiet wait before a probe once acks were measured (seconds; or ``resend_after``
#: when shorter): three measured ack delays, never less than this.
PROBE_MIN = 2.0
#: A probe's ack within this many seconds (or four times the fastest ack delay seen, if longer)
#: is the probe's own: the city is back and the window is resent together.
QUICK_MIN = 0.5
#: Seconds after the worker's start before the first full store check, then the interval.
STORE_CHECK_AFTER = 60.0
STORE_CHECK_EVERY = 24 * 3600.0


#: Seconds between status messages (and the longest the outbox figures in them are old).
STATUS_EVERY = 60.0
#: Seconds the broker has to answer the CONNECT once the connection (TCP, TLS) is up: with the
#: 2 s connect timeout, a broker that never answers is told within 10 s of the attempt.
CONNACK_TIMEOUT = 8.0
#: Seconds between two lines about the same failing cause (the repeats are counted between).
FAILURE_LOG_EVERY = 60.0
#: The client certificate is a fault this many days before it expires (and once expired).
CERT_WARN_DAYS = 30
#: Seconds between checks of the client certificate's expiry (the first at the worker's start).
CERT_CHECK_EVERY = 24 * 3600.0
#: Seconds between looks at the TLS files and the wall clock between two checks: a certificate
#: renewed while running, or the clock set by NTP (a Pi without a battery clock boots in the
#: past), is checked again within this, not a day later.
CERT_PEEK_EVERY = 60.0
#: A wall clock that moved this many seconds against the monotonic one was set (NTP, by hand).
CLOCK_JUMP = 300.0
#: Events read per query for the event lane.
EVENT_PAGE = 50
#: Replies kept while they wait to be published (a command's reply is not queued for long:
#: the business system looks at replies, and commands are not queued while the pad is offline).
MAX_REPLIES = 100
#: Protocol versions accepted for ``protocol``.
PROTOCOLS: tuple[str, ...] = ("5", "3.1.1")
#: What the distribution is called, for the status's ``firmware``.
DISTRIBUTION = "window-evaluator"


def firmware_version() -> str:
    """The installed package's version (the status's ``firmware``), ``"unknown"`` if not
    installed as a distribution."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def offline_status(device_id: str, firmware: str, at: str | None) -> dict[str, Any]:
    """The ``status`` message that says the pad is offline: the last will (``at`` null: the
    broker publishes it when the pad vanishes, the pad cannot say when) and a clean stop's
    (``at`` set).  The other figures are null: the pad does not report them while away."""
    return {
        "device_id": device_id,
        "online": False,
        "at": at,
        "firmware": firmware,
        "outbox": None,
        "oldest_age_s": None,
        "clock_synced": None,
        "printer": None,
        "counter_link": None,
        "store_check": None,
        "link_error": None,
        "tls_cert": None,
    }


_UNSET: Any = object()


def _paho() -> ModuleType:
    """``paho.mqtt.client``, imported on first use, in the worker thread: importing paho takes
    ~45 ms, which the pad's start (issue 6) does not wait for."""
    import paho.mqtt.client

    return paho.mqtt.client


def parse_ack(payload: bytes) -> tuple[list[str], str]:
    """The rating ids to apply from one ack message, and what was wrong with it ("" if nothing).

    Never raises.  A payload that is too big, not UTF-8, nested deeper than
    :data:`~evaluator.rules.protocol.MAX_DEPTH` (checked before parsing: json.loads recurses), not
    JSON or not ``{"ids": [...]}`` gives no ids.  Of a list, only strings that are valid text are
    kept (others are ignored and reported), at most :data:`MAX_ACK_IDS` of them.
    """
    try:
        if len(payload) > MAX_ACK_BYTES:
            return [], f"{len(payload)} bytes, more than {MAX_ACK_BYTES}"
        text = payload.decode("utf-8")
        if nesting_depth(payload) > MAX_DEPTH:
            return [], f"nests arrays/objects deeper than {MAX_DEPTH}"
        obj = json.loads(text)
        if not isinstance(obj, dict) or "ids" not in obj:
            return [], 'not an object {"ids": [...]}'
        ids = obj["ids"]
        if not isinstance(ids, list):
            return [], "'ids' must be a list of strings"
        usable = [i for i in ids if isinstance(i, str) and _is_text(i)]
        problems = []
        if len(usable) < len(ids):
            problems.append(f"{len(ids) - len(usable)} id(s) not strings of valid text ignored")
        if len(usable) > MAX_ACK_IDS:
            problems.append(f"{len(usable)} ids, only the first {MAX_ACK_IDS} applied")
            usable = usable[:MAX_ACK_IDS]
        return usable, "; ".join(problems)
    except UnicodeDecodeError:
        return [], "not UTF-8"
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, an int of > 4300 digits
        return [], f"not JSON: {exc}"[:200]
    except Exception as exc:  # nothing in a message may stop the uploads
        return [], f"unreadable: {type(exc).__name__}: {exc}"[:200]


#: Most missing records one ack message may ask for (the rest are ignored; the city asks again).
MAX_MISSING = 100
#: A record the city names missing is published again at most once per this many seconds.
MISSING_AGAIN_AFTER = 5.0


def parse_missing(payload: bytes) -> list[dict[str, Any]]:
    """What an ack message names missing (``{"stream", "epoch", "seq"}``, issue 15): the city
    parks later records of that chain.  Never raises; whatever is not of that shape is
    ignored (the ids of the same message are :func:`parse_ack`'s)."""
    try:
        if len(payload) > MAX_ACK_BYTES or nesting_depth(payload) > MAX_DEPTH:
            return []
        obj = json.loads(payload.decode("utf-8"))
        asked = obj.get("missing") if isinstance(obj, dict) else None
        if not isinstance(asked, list):
            return []
        return [
            {"stream": a["stream"], "epoch": a["epoch"], "seq": a["seq"]}
            for a in asked[:MAX_MISSING]
            if isinstance(a, dict)
            and a.get("stream") in ("ratings", "events")
            and isinstance(a.get("epoch"), str)
            and _is_text(a["epoch"])
            and type(a.get("seq")) is int
            and 0 < a["seq"] < 2**63
        ]
    except Exception:  # nothing in a message may stop the uploads
        return []


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no rating id, and SQLite cannot bind it
        return False
    return True


def _no_delay(sock: Any) -> None:
    """TCP_NODELAY: a small packet (a PUBACK, a rating) goes at once, not after the broker's
    delayed ACK of the previous one (Nagle: up to 40 ms per rating on Linux)."""
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` per second (``math.inf``: no limit).

    :meth:`take` spends one when there is one; :meth:`borrow` spends one whatever the level, down
    to ``−burst`` (the live lane: a new rating never waits, it delays the backlog instead).
    Times are the caller's (``time.monotonic()``), so the bucket is tested without sleeping.
    """

    def __init__(self, rate: float, burst: int, now: float = 0.0) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError("rate must be more than 0 and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if math.isinf(self.rate):
            self.tokens = float(self.burst)
        elif now > self._at:
            self.tokens = min(float(self.burst), self.tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def take(self, now: float) -> bool:
        """Spend a token if one is there."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def borrow(self, now: float) -> bool:
        """Spend a token even below zero, down to ``−burst``; False only beyond that."""
        self._refill(now)
        if self.tokens - 1.0 >= -self.burst:
            self.tokens -= 1.0
            return True
        return False

    def ready_at(self, now: float) -> float:
        """When the next :meth:`take` will succeed (``now`` if it would now)."""
        self._refill(now)
        if self.tokens >= 1.0:
            return now
        return now + (1.0 - self.tokens) / self.rate


@dataclass
class _Sent:
    """A published rating or event awaiting the city's ack, and the topic it went to."""

    seq: int
    payload: bytes
    at: float
    topic: str
    tries: int = 1
    #: The worker's count of publishes when this copy went (orders the sends).
    number: int = 0


class SyncWorker(threading.Thread):
    """The thread that uploads the outbox of the store at ``store_path`` and applies acks.

    Start it with ``start()``; call :meth:`notify` after each committed rating and :meth:`stop`
    then ``join()`` at shutdown.  The broker may be absent: the worker keeps retrying (delays
    from ``reconnect_min`` doubling to ``reconnect_max`` seconds, with jitter; after a working
    connection was lost, plus a random part of ``reconnect_spread``) while the outbox grows.

    Times are in seconds.  The backlog goes at ``max_rate`` messages per second after a
    ``burst`` (``max_rate=math.inf``: no limit, for benchmarks), at most ``max_unacked`` of them
    awaiting the city's ack; see the module docstring.  ``on_ack`` is called in the worker
    thread with the ids of each valid ack message once applied (keep it short, never block).
    ``connect_timeout`` bounds one TCP connect attempt, and so how long :meth:`stop` may take.
    ``poll_interval``: how often the worker looks for ratings committed without a
    :meth:`notify` (another process, a missed call) and recounts the outbox.
    ``store_check_after``/``store_check_every``: when the full store check first runs, then
    its interval (it waits for an idle moment).  ``rand`` draws the reconnect spread (tests).

    ``brokers``: URLs (:func:`parse_broker_url`) tried in turn, each failed connect moving on
    to the next, the backoff applying after a full round; empty: ``host``/``port``.
    ``protocol``: ``"5"`` (MQTT 5, clean start, session expiry 0) or ``"3.1.1"``.
    ``tls_ca``/``tls_cert``/``tls_key``: files for the ``mqtts://`` URLs (the CA that signed the
    broker's certificate, this pad's client certificate and key; "" for none).
    ``on_command(message, reply)`` is called in the worker thread with each decoded command
    (keep it short: queue it); ``reply(dict)`` may be called from any thread, once.  The
    status goes out at connect, when its content changes and every ``status_every`` seconds;
    the outbox figures in it are taken only at connect and at that schedule, never at the
    moment a rating is stored.  :meth:`set_device_state` gives it what only the app knows.

    Every failed connection is a warning naming its cause (:mod:`sync.linkerror`; repeats of a
    cause once every ``failure_log_every`` seconds with their count) and is in
    :attr:`status` (``link``); ``connack_timeout``: how long the broker has to answer the
    CONNECT once the connection is up.  A working connection that ends is told the same way
    (its cause: the DISCONNECT's reason code, the keepalive).  The client certificate
    ``tls_cert`` is checked at the start, every ``cert_check_every`` seconds and within
    ``cert_peek_every`` of a new file or a wall clock set: fewer than ``cert_warn_days`` days
    left is a warning and ``status.cert.expiring`` (the app makes it a fault and an event).  TLS
    files changed on disk are loaded again at the next attempt.
    """

    def __init__(
        self,
        *,
        store_path: Path | str,
        device_id: str,
        host: str,
        port: int = 1883,
        topic_prefix: str = "hcp/v1",
        client_id: str = "",
        username: str = "",
        password: str = "",
        keepalive: float = 30.0,
        resend_after: float = 30.0,
        max_rate: float = 20.0,
        burst: int = 300,
        max_unacked: int = 200,
        on_ack: Callable[[list[str]], None] | None = None,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        reconnect_spread: float = 10.0,
        connect_timeout: float = 2.0,
        poll_interval: float = 1.0,
        store_check_after: float = STORE_CHECK_AFTER,
        store_check_every: float = STORE_CHECK_EVERY,
        rand: Callable[[], float] = random.random,
        brokers: Sequence[str] = (),
        protocol: str = "5",
        tls_ca: str = "",
        tls_cert: str = "",
        tls_key: str = "",
        on_command: Callable[[Message, Callable[[dict[str, Any]], None]], None] | None = None,
        status_every: float = STATUS_EVERY,
        connack_timeout: float = CONNACK_TIMEOUT,
        failure_log_every: float = FAILURE_LOG_EVERY,
        cert_warn_days: int = CERT_WARN_DAYS,
        cert_check_every: float = CERT_CHECK_EVERY,
        cert_peek_every: float = CERT_PEEK_EVERY,
        signer: Any = None,
    ) -> None:
        if not max_rate > 0 or not resend_after > 0:
            raise ValueError("max_rate and resend_after must be more than 0")
        if burst < 1 or max_unacked < 1:
            raise ValueError("burst and max_unacked must be at least 1")
        if reconnect_spread < 0 or not poll_interval > 0:
            raise ValueError("reconnect_spread must be 0 or more, poll_interval more than 0")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        if not status_every > 0:
            raise ValueError("status_every must be more than 0")
        self.brokers = [parse_broker_url(u) for u in brokers] or [Broker(host, port, False)]
        super().__init__(name="mqtt-sync", daemon=True)
        self.store_path = Path(store_path)
        self.device_id = device_id
        self.host = host
        self.port = port
        self.client_id = client_id or f"evaluator-{device_id}"
        self.username = username
        self.password = password
        self.keepalive = max(1, round(keepalive))
        self.resend_after = resend_after
        #: How long the link may stay quiet (no ack) before a probe: :meth:`_base_wait`,
        #: PROBE_BACKOFF times longer at each probe (up to RESEND_BACKOFF × resend_after),
        #: back at any ack.
        self._quiet_wait = resend_after
        #: Ack delays measured on messages sent once (Karn's rule): smoothed, and the fastest.
        self._ack_delay: float | None = None
        self._fastest = math.inf
        self._heard_at = 0.0  # the last ack message applied (monotonic)
        self._probe_at = -math.inf  # the last probe sent
        self._probes: set[str] = set()  # ids of the probes not acked yet
        self._resend_below = 0  # resend every unacked copy published before this number
        #: (when, number): a probe came back alone; the window goes then (see _took_acks)
        self._window_at: tuple[float, int] | None = None
        self._published = 0  # publishes so far (_Sent.number)
        self.max_rate = max_rate
        self.burst = burst
        self.max_unacked = max_unacked
        self.on_ack = on_ack
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self.reconnect_spread = reconnect_spread
        self.connect_timeout = connect_timeout
        self.poll_interval = poll_interval
        self.store_check_after = store_check_after
        self.store_check_every = store_check_every
        self._rand = rand
        self.protocol = protocol
        self.tls_ca = tls_ca
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.on_command = on_command
        self.status_every = status_every
        self.connack_timeout = connack_timeout
        self.cert_warn_days = cert_warn_days
        self.cert_check_every = cert_check_every
        self.cert_peek_every = cert_peek_every
        #: The device key (or a function giving it, ``sync.keyloader.KeyLoader``) that checks the
        #: records' signatures before they are published and signs loss statements; ``None``:
        #: signatures unchecked and a damaged record held back (nothing can sign its statement).
        self.signer = signer
        base = f"{topic_prefix}/{device_id}"
        self.rating_topic = f"{base}/ratings"
        self.ack_topic = f"{base}/acks"
        self.event_topic = f"{base}/events"
        self.status_topic = f"{base}/status"
        self.command_topic = f"{base}/commands"
        self.reply_topic = f"{base}/commands/replies"
        self.firmware = firmware_version()

        self._stop_event = threading.Event()
        self._notified = threading.Event()
        # notify() writes a byte here; the worker's select() reads the other end.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self._status = SyncStatus(False, 0, "")

        # Everything below belongs to the worker thread only.
        self._store: Store | None = None
        self._client: mqtt.Client | None = None
        self._link = False  # a socket is open (CONNECT sent or session up)
        self._link_since = 0.0
        self._connected = False  # CONNACK accepted
        self._session_up = False  # CONNACK accepted, and the loss not handled yet
        self._fresh = False  # connected, subscription and lanes not yet set up
        self._backoff = Backoff(self.reconnect_min, cap=self.reconnect_max)
        self._next_connect = 0.0
        self._bucket = TokenBucket(max_rate, burst, time.monotonic())
        self._inflight: OrderedDict[str, _Sent] = OrderedDict()  # by send time
        self._live: deque[Outgoing] = deque()
        self._live_cursor = 0  # newest seq the live lane has read
        self._live_more = False  # the last live read was a full page
        self._backlog: deque[Outgoing] = deque()
        self._cursor = 0  # newest seq the backlog lane has read
        self._backlog_end = 0  # newest seq of the backlog (what waited at connect)
        self._backlog_more = False  # rows up to _backlog_end not read yet
        self._acks_in: list[list[str]] = []  # ack messages read, not yet applied
        # What the city's acks name missing, not answered yet; when each was last answered.
        self._missing_in: list[dict[str, Any]] = []
        self._missing_sent: dict[tuple[str, str, int], float] = {}
        self._pending = 0
        self._recount = False
        self._counted_at = -math.inf
        self._next_poll = 0.0
        self._next_check = math.inf
        self._check_now = False
        self._damage_told = 0
        self._held = False  # a damaged record waits for the device key to sign its statement
        self._broker_index = 0  # the broker tried now
        self._client_broker: Broker | None = None  # the broker the client was made for
        self._client_files: tuple[object, ...] = ()  # the TLS files it loaded (_tls_stamp)
        self._subscriptions: dict[int, str] = {}  # SUBSCRIBE mid → topic
        self._events: deque[Outgoing] = deque()
        self._event_cursor = 0  # newest event seq the event lane has read
        self._events_more = False
        # Records carried over from a kept-aside store (issue 15 B): their own outbox, sent
        # verbatim on their own stream's topic at each session's start, until acked.
        self._carried: deque[Outgoing] = deque()
        self._carried_cursor = 0
        self._carried_more = False
        # The status: what the app says (under _lock), what was last published.
        self._device_state: dict[str, Any] = {
            "clock_synced": None,
            "printer": None,
            "counter_link": None,
        }
        self._state_changed = False
        self._replies: deque[dict[str, Any]] = deque()  # under _lock
        self._outbox_figures: tuple[int | None, float | None] = (None, None)
        self._status_sent: dict[str, Any] | None = None
        self._next_status = math.inf
        # Why connections fail (issue 14): told in words, repeats counted, not flooded.
        self._failures = FailureLog(failure_log_every)
        self._attempt_error: LinkError | None = None  # the CONNACK's refusal of this attempt
        self._drop_error: LinkError | None = None  # why a working connection ended
        self._read_errors: list[str] = []  # what paho logged of this attempt's socket
        self._next_cert_check = 0.0  # the next look (cert_peek_every)
        self._cert_due = 0.0  # the next check whatever the look finds (cert_check_every)
        self._cert_seen: tuple[object, object] = (None, None)  # tls_cert's stamp, the clock

    # -- the API for other threads --------------------------------------------------------

    def notify(self) -> None:
        """A rating was committed: publish it now (thread-safe, never blocks)."""
        self._notified.set()
        self._poke()

    def stop(self) -> None:
        """Ask the worker to disconnect and end; ``join()`` afterwards (thread-safe)."""
        self._stop_event.set()
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending already) or closed
            self._wake_w.send(b"\0")

    def set_device_state(
        self, *, printer: Any = _UNSET, counter_link: Any = _UNSET, clock_synced: Any = _UNSET
    ) -> None:
        """What the app knows for the city's status message (thread-safe, never blocks): the
        printer's state text, the counter link's (``"up"``/``"down"``), whether the clock is
        synchronised; ``None`` for none.  A change is published at once."""
        given = {"printer": printer, "counter_link": counter_link, "clock_synced": clock_synced}
        with self._lock:
            changed = False
            for name, value in given.items():
                if value is not _UNSET and self._device_state[name] != value:
                    self._device_state[name] = value
                    changed = True
            self._state_changed = self._state_changed or changed
        if changed:
            self._poke()

    def reply(self, answer: dict[str, Any]) -> None:
        """Publish ``answer`` on the replies topic (thread-safe; dropped, logged, when too
        many wait: the link is down)."""
        with self._lock:
            if len(self._replies) >= MAX_REPLIES:
                log.warning("reply to command %r dropped: %d replies wait", answer.get("id"),
                            len(self._replies))  # fmt: skip
                return
            self._replies.append(answer)
        self._poke()

    @property
    def status(self) -> SyncStatus:
        """Connected to the broker?  Ratings awaiting the city's ack?  The last problem seen,
        and the last full store check's result."""
        with self._lock:
            return self._status

    # -- the worker thread ----------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self._stop_event.is_set() and self._store is None:
                try:
                    # Keeping a damaged file aside is the UI thread's job (it opens first);
                    # this thread must not pull the file from under it.
                    self._store = Store(
                        self.store_path,
                        device_id=self.device_id,
                        keep_damaged_aside=False,
                        signer=self.signer,
                    )
                except StoreError as exc:
                    log.error("sync cannot open the store: %s", exc)
                    self._set_status(last_error=str(exc))
                    self._stop_event.wait(5.0)
            if self._store is None:
                return
            self._next_check = time.monotonic() + self.store_check_after
            self._count_pending(force=True)
            self._tell_losses()
            while not self._stop_event.is_set():
                try:
                    self._step()
                except Exception as exc:  # never let one bad turn end the uploads
                    log.exception("sync worker error")
                    self._set_status(last_error=f"{type(exc).__name__}: {exc}")
                    if isinstance(exc, sqlite3.DatabaseError):  # the file itself?  check it
                        self._check_now = True
                        with contextlib.suppress(Exception):
                            self._maybe_check(time.monotonic())
                    self._stop_event.wait(1.0)
        finally:
            self._shutdown()

    def _make_client(self, broker: Broker) -> mqtt.Client:
        """A paho client for ``broker``: the protocol, TLS for ``mqtts://``, the retained
        offline status as last will (set before connecting, as it must be)."""
        client = paho_client(broker, self, max_inflight=MAX_INFLIGHT)
        client.will_set(
            self.status_topic,
            _json_bytes(offline_status(self.device_id, self.firmware, None)),
            qos=1,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        if self.protocol == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 0
            client.connect_async(broker.host, broker.port, keepalive=self.keepalive,
                                 clean_start=True, properties=properties)  # fmt: skip
        else:
            client.connect_async(broker.host, broker.port, keepalive=self.keepalive)
        return client

    def _step(self) -> None:
        now = time.monotonic()
        if not self._link:
            if now >= self._next_connect:
                self._try_connect(now)
                if self._link:
                    return
            self._sleep(
                min(self._next_connect, self._next_poll, self._next_check, self._next_cert_check)
                - now
            )
            now = time.monotonic()
            if self._notified.is_set() or now >= self._next_poll:
                self._notified.clear()
                self._next_poll = now + self.poll_interval
                self._count_pending(force=True)
            self._maybe_check(now)
            self._maybe_check_cert(now)
            return

        client = self._client
        assert client is not None
        sock = client.socket()
        if sock is None:
            self._lost("connection lost (socket closed)")
            return
        wlist = [sock] if client.want_write() else []
        held = tls_pending(sock)  # decrypted already: select cannot see it
        try:
            readable, writable, _ = select.select(
                [sock, self._wake_r],
                wlist,
                [],
                0.0 if held else max(0.0, self._deadline(now) - now),
            )
        except (OSError, ValueError) as exc:
            self._lost(f"connection lost ({exc})")
            return
        if self._wake_r in readable:
            self._drain_wake()
        paho = _paho()
        rc = paho.MQTTErrorCode.MQTT_ERR_SUCCESS
        if sock in readable or held:
            rc = self._read(client, sock)
        if rc == paho.MQTTErrorCode.MQTT_ERR_SUCCESS and (writable or client.want_write()):
            rc = client.loop_write()
        if rc == paho.MQTTErrorCode.MQTT_ERR_SUCCESS:
            rc = client.loop_misc()
        self._apply_acks()
        if rc != paho.MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(f"connection lost ({paho.error_string(rc)})")
            return
        now = time.monotonic()
        if not self._connected:
            if now - self._link_since > self.connack_timeout:
                self._lost("no CONNACK from the broker", connack_timeout(self.connack_timeout))
            return
        if self._fresh:
            self._start_session(client)
        woken = self._notified.is_set()
        if woken or now >= self._next_poll:
            self._notified.clear()
            if not woken:
                self._next_poll = now + self.poll_interval
                self._count_pending(force=True)
            if self._held and self._signer_ready():
                self._held = False
                self._restart_passes()
            self._fetch_live()
            self._fetch_events()
        self._pump(client, now)
        if self._replies:
            self._flush_replies(client)
        if now >= self._next_status or self._state_changed:
            self._send_status(client, now)
        if self._recount:  # after publishing: the count never delays a new rating
            self._recount = False
            self._count_pending(force=True)
        self._maybe_check(now)
        self._maybe_check_cert(now)

    def _read(self, client: mqtt.Client, sock: Any) -> Any:
        """Read what the socket holds now (several packets), so acks that came together are
        applied together."""
        return read_ready(client, sock, go_on=lambda: True, most=READS_PER_TURN)

    def _sleep(self, seconds: float) -> None:
        """Wait up to ``seconds`` for a notify() or stop() (the link is down)."""
        try:
            readable, _, _ = select.select([self._wake_r], [], [], max(0.0, seconds))
        except (OSError, ValueError):
            self._stop_event.wait(min(max(0.0, seconds), 0.1))
            return
        if readable:
            self._drain_wake()

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _deadline(self, now: float) -> float:
        """When the connected worker must act without a socket event or a notify().

        Called after :meth:`_pump`, which published all it could: what is left waits for a
        token, for the window (an ack: a socket event) or for a resend deadline.
        """
        if not self._connected:
            # Only the CONNACK (a socket event) or its deadline: the poll, status and check
            # times move only once connected, so counting them here, past due, made the
            # worker spin through select(0) until a slow broker answered.
            return self._link_since + self.connack_timeout
        due = [self._next_poll, now + self.keepalive / 2, self._next_check, self._next_status,
               self._next_cert_check]  # fmt: skip
        if self._inflight:
            # A resend takes a token: due when both its wait and its token are (an empty
            # bucket made a past deadline, and the worker spun through select(0) until then).
            resend = self._probe_due(now)
            if self._window_at is not None:
                resend = min(resend, self._window_at[0])
            if self._window_due():
                resend = now
            due.append(max(resend, self._bucket.ready_at(now)))
        backlog = bool(self._backlog) or self._backlog_more
        if self._live or self._events or (backlog and len(self._inflight) < self.max_unacked):
            due.append(self._bucket.ready_at(now))
        return min(due)

    def _try_connect(self, now: float) -> None:
        """Connect to the broker whose turn it is; a failure moves on to the next one at once,
        and waits out the backoff only after a whole round failed."""
        broker = self.brokers[self._broker_index]
        self._attempt_error = self._drop_error = None
        self._read_errors.clear()
        files = self._tls_stamp() if broker.tls else ()
        if (
            self._client is not None
            and self._client_broker == broker
            and files != self._client_files
        ):
            # paho's TLS context loaded the files once: a renewed certificate (or CA, key) is
            # used from the next attempt on, not after a restart
            log.info("the TLS files changed: loading them again for %s", broker)
            self._next_cert_check = 0.0
            self._drop_client()
        if self._client is None or self._client_broker != broker:
            self._drop_client()
            try:  # paho's tls_set loads the CA, the certificate and the key here
                self._client = self._make_client(broker)
            except (OSError, ValueError) as exc:
                files = {"tls_ca": self.tls_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key}
                error = tls_files(exc, files) if broker.tls else classify(exc, tls=False)
                self._failed(broker, error)
                return
            self._client_broker = broker
            self._client_files = files
        try:
            # paho logs why a read failed (an alert, a reset) but returns only "connection
            # lost": listen to its log until the CONNACK (not after: it formats every line).
            self._client.on_log = self._on_log
            self._client.reconnect()  # TCP connect and the TLS handshake, blocking
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self._failed(broker, classify(exc, tls=broker.tls))
            return
        self._link = True
        self._link_since = now
        _no_delay(self._client.socket())

    def _failed(self, broker: Broker, error: LinkError) -> None:
        """An attempt on ``broker`` failed with ``error``: the next broker (or the backoff), the
        status, and a warning naming the cause (repeats counted, see :class:`FailureLog`)."""
        wait = self._next_broker()
        self._next_connect = time.monotonic() + wait
        line = self._failures.failed(error, str(broker), time.monotonic(), time.time())
        why = f"cannot connect to {broker}: {error.text}"[:300]
        self._set_status(connected=False, link=self._failures.current, last_error=why)
        if line is not None:
            log.warning("MQTT %s; next try in %.1fs", line, wait)

    def _on_log(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        """paho's log while connecting: keep its errors (the socket's, with OpenSSL's words)."""
        if level == _paho().MQTT_LOG_ERR and len(self._read_errors) < 10:
            self._read_errors.append(text)

    def _next_broker(self) -> float:
        """Move on to the next broker URL; the wait before trying it (the backoff after a
        whole round, none before)."""
        self._broker_index = (self._broker_index + 1) % len(self.brokers)
        return self._backoff.next() if self._broker_index == 0 else 0.0

    def _drop_client(self) -> None:
        """Let go of the current client (another broker's turn), closing its socket if any."""
        old, self._client, self._client_broker = self._client, None, None
        if old is not None:
            with contextlib.suppress(Exception):
                sock = old.socket()
                if sock is not None:
                    sock.close()

    def _lost(self, why: str, error: LinkError | None = None) -> None:
        """The socket is gone: back off (spread out after a working connection), reconnect.
        Before the CONNACK it was a failed attempt: its cause is told (``error``, else the
        CONNACK's refusal, else what paho logged, else the broker hung up)."""
        was, self._session_up = self._session_up, False
        broker = self._client_broker
        self._link = self._connected = False
        self._live.clear()  # the lanes start again from the outboxes on the next connection
        self._backlog.clear()
        self._events.clear()
        self._carried.clear()
        self._live_more = self._backlog_more = self._events_more = self._carried_more = False
        self._next_status = math.inf
        if not was and broker is not None:  # it never came up (no CONNACK, refused): next URL
            tls = broker.tls
            if error is None:
                error = self._attempt_error
            if error is None and self._read_errors:
                error = classify(self._read_errors[-1], tls=tls, handshake_done=True)
            self._failed(broker, error or closed_before_connack(tls=tls))
            return
        if was:  # the same broker first: it worked
            wait = self._backoff.next() + self._rand() * self.reconnect_spread
        else:
            wait = self._next_broker()
        self._next_connect = time.monotonic() + wait
        if broker is None:
            self._set_status(connected=False, last_error=why)
            log.warning("MQTT %s; reconnecting in %.1fs", why, wait)
            return
        # A working connection ended: its cause (the broker's DISCONNECT reason, our keepalive
        # unanswered, closed), told like a failed attempt: a flapping link is no flood.
        error = error or self._drop_error or classify_drop(from_broker=False)
        self._drop_error = None
        line = self._failures.dropped(error, str(broker), time.monotonic(), time.time())
        self._set_status(connected=False, link=self._failures.current,
                         last_error=f"connection to {broker} lost: {error.text}")  # fmt: skip
        if line is not None:
            log.warning("MQTT %s; reconnecting in %.1fs", line, wait)

    def _start_session(self, client: mqtt.Client) -> None:
        """A new connection: subscribe to the acks, and what waits in the outbox becomes the
        backlog, sent again from its start (nothing in paho's memory is trusted)."""
        assert self._store is not None
        self._fresh = False
        self._subscriptions = {
            client.subscribe(self.ack_topic, qos=1)[1] or 0: self.ack_topic,
            self._subscribe_commands(client): self.command_topic,
        }
        self._inflight.clear()
        self._probes.clear()
        self._resend_below = 0
        self._window_at = None
        self._probe_at = -math.inf
        self._quiet_wait = self._base_wait()
        self._live.clear()
        self._backlog.clear()
        self._cursor = 0
        self._backlog_end = self._live_cursor = self._store.last_outbox_seq()
        self._backlog_more = self._backlog_end > 0
        self._live_more = False
        self._store.damage.clear()  # what this connection's pass meets
        self._damage_told = 0
        self._events.clear()
        self._event_cursor = 0
        self._events_more = True  # every event waiting goes again, from the first
        self._carried.clear()
        self._carried_cursor = 0
        self._carried_more = True
        self._backoff.reset()
        self._send_status(client, time.monotonic(), sample=True)

    def _subscribe_commands(self, client: mqtt.Client) -> int:
        """Subscribe to the commands; the SUBSCRIBE's mid.

        A broker clears the retain flag of a message it forwards to a client subscribed
        already (MQTT 3.1.1 §3.3.1.3, MQTT 5 §3.3.1.3): a command published *retained* while
        the pad is connected would look like a live one, be run, and stay on the broker for
        the next connection.  MQTT 5's "Retain As Published" subscription option keeps the
        flag as the publisher set it, so :meth:`_command` refuses it whenever it comes.
        MQTT 3.1.1 has no such option: there a retained command is ignored only when it is
        delivered at a (re)subscription (docs/integrator.md §2.9).
        """
        if self.protocol != "5":
            return client.subscribe(self.command_topic, qos=1)[1] or 0
        from paho.mqtt.subscribeoptions import SubscribeOptions

        options = SubscribeOptions(qos=1, retainAsPublished=True)
        return client.subscribe(self.command_topic, options=options)[1] or 0

    # paho callbacks: they run inside loop_read()/loop_write(), i.e. in this thread.

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:  # told when the broker closes the socket (_lost)
            self._attempt_error = classify_connack(reason, v5=self.protocol == "5")
            return
        client.on_log = None
        line = self._failures.connected(str(self._client_broker), time.monotonic(), time.time())
        if line is None:
            log.info("connected to %s", self._client_broker)
        else:
            log.warning("MQTT %s", line)
        self._connected = self._session_up = True
        self._fresh = True
        self._set_status(connected=True, link=self._failures.current)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._connected = False
        if self._session_up and self._drop_error is None:
            rc = getattr(reason, "value", reason)
            keepalive = not flags.is_disconnect_packet_from_server and rc == 0x8D
            self._drop_error = classify_drop(
                reason, from_broker=flags.is_disconnect_packet_from_server, keepalive=keepalive
            )
        self._set_status(connected=False)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            topic = self._subscriptions.get(mid, "")
            why = f"the broker refused the subscription {topic}: {reasons[0]}"
            if topic == self.ack_topic:
                log.error("%s; ratings and events will be resent until acked", why)
            else:
                log.error("%s; no commands from the city", why)
            self._set_status(last_error=why)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        # MQTT 5 says in the PUBACK when the broker refused a publish (e.g. "Not authorized"
        # by its ACL).  Nothing counts as delivered here anyway: only the city's ack empties
        # the outbox, so a refused rating stays and is resent.
        if reason.is_failure:
            why = f"the broker refused a publish: {reason}"
            log.warning("%s (it stays in the outbox)", why)
            self._set_status(last_error=why)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Nothing may escape: paho would handle the same packet again at every loop, for ever
        # (no uploads, no acks), and a retained one again at every start.
        try:
            if message.topic == self.command_topic:
                self._command(message)
                return
            if message.topic != self.ack_topic:
                return
            ids, problem = parse_ack(message.payload)
            if problem:
                log.warning("malformed ack (%s): %.200r", problem, message.payload[:200])
                self._set_status(last_error=f"malformed ack: {problem}")
            if ids:
                self._acks_in.append(ids)
            self._missing_in.extend(parse_missing(message.payload))
        except Exception as exc:
            log.exception("an ack message could not be read")
            self._set_status(last_error=f"ack not applied: {type(exc).__name__}: {exc}"[:300])

    def _command(self, message: mqtt.MQTTMessage) -> None:
        """One command from the city: decoded as a counter-link frame (the same refusals),
        handed to ``on_command``; a frame that cannot be used is answered here."""
        if message.retain:  # left on the broker by someone: it would run again at every connect
            log.warning("a retained command on %s was ignored", message.topic)
            self._set_status(last_error="a retained command was ignored (publish commands "
                                        "without the retain flag)")  # fmt: skip
            return
        frame = bytes(message.payload)
        if frame.endswith(b"\n"):  # one line of the serial link, newline and all
            frame = frame[:-1].rstrip(b"\r")
        if len(frame) > MAX_FRAME:
            self.reply(reply_error(None, RequestError(
                "frame_too_long", f"frame longer than {MAX_FRAME} bytes")))  # fmt: skip
            return
        decoded = decode(frame)
        if isinstance(decoded, BadFrame):
            self.reply(reply_error(decoded.id, decoded.error))
            return
        if self.on_command is None:
            self.reply(reply_error(decoded.id, RequestError(
                "internal", "this pad takes no commands over MQTT")))  # fmt: skip
            return
        log.info("command %r (%s) from the city", decoded.id, decoded.type)
        try:
            self.on_command(decoded, self.reply)
        except Exception as exc:
            log.exception("on_command failed")
            self.reply(reply_error(decoded.id, RequestError(
                "internal", f"{type(exc).__name__}: {exc}"[:300])))  # fmt: skip

    def _flush_replies(self, client: mqtt.Client) -> None:
        """Publish the replies waiting (the app's, and the worker's own refusals)."""
        while True:
            with self._lock:
                if not self._replies:
                    return
                answer = self._replies.popleft()
            client.publish(self.reply_topic, encode(answer).rstrip(b"\n"), qos=1)

    def _apply_acks(self) -> None:
        """Every ack message read this turn, applied in one transaction."""
        if not self._acks_in:
            return
        messages, self._acks_in = self._acks_in, []
        assert self._store is not None
        every = [rid for ids in messages for rid in ids]
        try:
            removed = self._store.ack(every, durable=False)
        except StoreError as exc:  # the rows stay; the ratings are resent and acked again
            log.error("could not apply an ack: %s", exc)
            self._set_status(last_error=str(exc))
            return
        self._took_acks(every, time.monotonic())
        log.debug(
            "%d ack message(s) for %d ids, %d were pending", len(messages), len(every), removed
        )
        self._pending = max(0, self._pending - removed)
        self._count_pending(force=not self._inflight)
        if self.on_ack is not None:
            for ids in messages:
                try:
                    self.on_ack(list(ids))
                except Exception:
                    log.exception("on_ack callback failed")

    def _took_acks(self, ids: list[str], now: float) -> None:
        """The link's clock after acks: the delays measured (messages sent once only), the
        quiet wait back to its base, and a probe acked quickly opens the window again.

        A probe's ack is ambiguous: the probe's, or the first copy's coming late from a queue.
        Acks of messages sent once tell which: if any of them overtook a message still unacked,
        that one was lost (a city keeps the order of one pad's messages) and the window goes at
        once; if they come in order, the city is draining a queue and nothing more is resent;
        if the probe came alone, the window goes after a short grace unless such acks follow.
        """
        slowest, probe_back, newest_first = -1.0, 0, 0
        for rid in ids:
            sent = self._inflight.pop(rid, None)
            if sent is None:
                continue
            if sent.tries == 1:  # an ack of a resent one is ambiguous
                slowest = max(slowest, now - sent.at)
                self._fastest = min(self._fastest, now - sent.at)
                newest_first = max(newest_first, sent.number)
            if rid in self._probes:
                self._probes.discard(rid)
                if now - sent.at <= self._quick():  # back within the quick time
                    probe_back = max(probe_back, sent.number)
        if slowest >= 0:
            a = self._ack_delay
            self._ack_delay = slowest if a is None or slowest > a else 0.875 * a + 0.125 * slowest
        self._heard_at = now
        self._quiet_wait = self._base_wait()
        oldest = next(iter(self._inflight.values())).number if self._inflight else math.inf
        overtaken = newest_first > oldest
        if newest_first and not overtaken and self._window_at is not None:
            self._window_at = None  # first copies acked in order: a queue draining, no loss
        if probe_back:
            if overtaken:
                self._window(probe_back)
            elif not newest_first:
                self._window_at = (now + self._quick(), probe_back)

    def _window(self, below: int) -> None:
        """Every unacked copy published before publish number ``below`` is sent again now."""
        self._window_at = None
        self._resend_below = max(self._resend_below, below)
        log.info("the city acked a probe at once: the unacked window is sent again")

    def _base_wait(self) -> float:
        """The quiet wait before a probe: ``resend_after`` until acks were measured, then three
        measured ack delays (at least PROBE_MIN, or ``resend_after`` when that is shorter)."""
        cap = self.resend_after * RESEND_BACKOFF
        if self._ack_delay is None:
            return self.resend_after
        return min(cap, max(min(self.resend_after, PROBE_MIN), 3 * self._ack_delay))

    def _quick(self) -> float:
        """A probe's ack within this many seconds of the probe is the probe's own."""
        fastest = self._fastest if math.isfinite(self._fastest) else 0.0
        return max(QUICK_MIN, 4 * fastest)

    def _held_wait(self, sent: _Sent) -> float:
        """How long a copy resent already waits before it may be a probe again: the base quiet
        wait, PROBE_BACKOFF times longer per resend (0 for a message sent once).  A record the
        city refuses is then resent ever more rarely, not at every quiet moment."""
        if sent.tries < 2:
            return 0.0
        cap = self.resend_after * RESEND_BACKOFF
        return min(self._base_wait() * PROBE_BACKOFF ** (sent.tries - 2), cap)

    def _candidates(self, now: float) -> tuple[list[tuple[str, _Sent]], float]:
        """The probes that may go now (one per stream), and when the next one may (``math.inf``:
        none).  Per stream the lowest ``seq`` first: what a city that keeps the chain can store
        next (a later one it parks, and acks only after it).  A copy still in its hold is waited
        for, unless it was resent twice unanswered already (a record the city refuses?): then
        the next ``seq`` goes too (or instead, while it is held), so one refused record does not
        stop the others' resends.  At most two per stream.
        """
        streams: dict[str, list[tuple[str, _Sent]]] = {}
        for rid, sent in self._inflight.items():
            streams.setdefault(sent.topic, []).append((rid, sent))
        ready: list[tuple[str, _Sent]] = []
        later = math.inf
        for items in streams.values():
            items.sort(key=lambda item: item[1].seq)
            taken = 0
            for rid, sent in items:
                suspect = sent.tries >= 3  # resent twice already without an ack
                free_at = sent.at + self._held_wait(sent)
                if free_at <= now:
                    ready.append((rid, sent))
                    taken += 1
                    if not suspect or taken == 2:
                        break
                    continue
                later = min(later, free_at)
                if not suspect:
                    break
        return ready, later

    def _probe_due(self, now: float) -> float:
        """When the next probe is due (``math.inf``: nothing to probe)."""
        if not self._inflight:
            return math.inf
        oldest = next(iter(self._inflight.values())).at
        due = max(self._heard_at, oldest, self._probe_at) + self._quiet_wait
        if due > now:
            return due
        ready, later = self._candidates(now)
        return now if ready else max(due, later)

    def _window_due(self) -> bool:
        """Copies published before an acked probe wait to be sent again."""
        if not self._inflight:
            return False
        return next(iter(self._inflight.values())).number < self._resend_below

    def _probe(self, client: mqtt.Client, now: float) -> None:
        """The link was quiet for the wait: resend the lowest seq of each stream (see
        :meth:`_candidates`)."""
        lowest, _ = self._candidates(now)
        if not lowest:
            return
        for rid, sent in lowest:
            if not self._bucket.take(now):
                return  # the next turn, with a token
            self._probes.add(rid)
            self._publish(client, Outgoing(sent.seq, rid, sent.payload), now, sent.topic,
                          tries=sent.tries + 1)  # fmt: skip
        self._probe_at = now
        # No answer for the wait: the city is away or behind.  Another probe only after a
        # longer wait (PROBE_BACKOFF): one duplicate per wait, never the whole window (a city
        # slower than the wait is not piled with copies), until an ack says the link is back.
        self._quiet_wait = min(self._quiet_wait * PROBE_BACKOFF, self.resend_after * RESEND_BACKOFF)
        log.debug("no ack for %.1fs: probed with %d message(s)", now - self._heard_at,
                  len(lowest))  # fmt: skip

    # -- publishing -----------------------------------------------------------------------

    def _fetch_live(self) -> None:
        """Read what was committed after the newest seq known (notify(), or the poll)."""
        assert self._store is not None
        page = self._checked(self._store.outbox_page, LIVE_PAGE, after_seq=self._live_cursor)
        self._live.extend(page.items)
        self._live_cursor = page.last_seq
        self._live_more = page.more
        self._recount = self._recount or bool(page.items)
        self._tell_damage()

    def _fetch_events(self) -> None:
        """Read the events committed after the newest event seq known."""
        assert self._store is not None
        page = self._checked(
            self._store.event_outbox_page, EVENT_PAGE, after_seq=self._event_cursor
        )
        self._events.extend(page.items)
        self._event_cursor = page.last_seq
        self._events_more = page.more

    def _fetch_carried(self) -> None:
        """Read the next records carried over from a kept-aside store (issue 15 B)."""
        assert self._store is not None
        page = self._store.carried_page(EVENT_PAGE, after=self._carried_cursor)
        self._carried.extend(page.items)
        self._carried_cursor = page.last_seq
        self._carried_more = page.more

    def _fetch_backlog(self) -> None:
        assert self._store is not None
        page = self._checked(
            self._store.outbox_page, BATCH, after_seq=self._cursor, upto_seq=self._backlog_end
        )
        self._backlog.extend(page.items)
        self._cursor = page.last_seq
        self._backlog_more = page.more and self._cursor < self._backlog_end
        if not self._backlog_more:
            self._tell_damage()

    def _checked(self, read: Callable[..., OutboxPage], limit: int, **where: Any) -> OutboxPage:
        """One outbox page read through the store's check before publishing: a damaged record
        comes as its signed loss statement; a new one is a fault (status, menu, the city)."""
        assert self._store is not None
        with self._lock:
            self._store.clock_synced = bool(self._device_state["clock_synced"])
        page = read(limit, **where)
        if page.stated:
            self._tell_losses()
        if page.held:
            self._held = True
        return page

    def _tell_losses(self) -> None:
        """The records lost on the store (their loss statements), into the status: the fault
        ``records_lost``, logged as a warning naming the seqs when it grows."""
        assert self._store is not None
        try:
            found = self._store.losses()
        except (sqlite3.Error, StoreError) as exc:
            log.warning("the loss statements could not be read: %s", exc)
            return
        lost = tuple((stream, seq) for stream, seqs in sorted(found.items()) for seq in seqs)
        if lost == self.status.lost:
            return
        words = "; ".join(f"{stream} seq {_seq_list(seqs)}" for stream, seqs in found.items()
                          if seqs)  # fmt: skip
        log.warning(
            "device %s: records lost on the SD card (%s): signed loss statements replace them "
            "for the city; the fault records_lost stays until the store is replaced",
            self.device_id,
            words,
        )
        self._set_status(lost=lost, last_error=f"records lost on the SD card: {words}")

    def _answer_missing(self, client: mqtt.Client, now: float) -> None:
        """Publish the records the city names missing (its chain parks records after them),
        each read from its table and checked like the outbox pages (an intact record as
        stored, a damaged or absent one as its signed loss statement); each at most once per
        :data:`MISSING_AGAIN_AFTER` seconds."""
        assert self._store is not None
        asked, self._missing_in = self._missing_in, []
        self._missing_sent = {
            k: at for k, at in self._missing_sent.items() if now - at < MISSING_AGAIN_AFTER
        }
        wanted = []
        for ask in asked:
            key = (ask["stream"], ask["epoch"], ask["seq"])
            if key not in self._missing_sent:
                self._missing_sent[key] = now
                wanted.append(ask)
        if not wanted:
            return
        try:
            page = self._checked(lambda _limit: self._store.missing_page(wanted), len(wanted))
        except (sqlite3.Error, StoreError) as exc:
            log.warning("the records the city asks for could not be read: %s", exc)
            self._set_status(last_error=f"records the city asks for not read: {exc}"[:300])
            return
        for item in page.items:
            topic = self.event_topic if item.stream == "events" else self.rating_topic
            log.info("the city misses %s seq %d: sent again", item.stream or "ratings", item.seq)
            self._publish(client, item, now, topic)

    def _restart_passes(self) -> None:
        """Read every outbox again from its start (a damaged record held back can now be
        stated: the device key is there)."""
        assert self._store is not None
        self._backlog.clear()
        self._cursor = 0
        self._backlog_end = max(self._backlog_end, self._store.last_outbox_seq())
        self._backlog_more = self._backlog_end > 0
        self._events.clear()
        self._event_cursor = 0
        self._events_more = True

    def _pump(self, client: mqtt.Client, now: float) -> None:
        """Publish what is due: live ratings first, then due resends, then the backlog."""
        bucket = self._bucket
        while True:
            if not self._live and self._live_more:
                self._fetch_live()
            if not self._live or not bucket.borrow(now):
                break
            self._publish(client, self._live.popleft(), now)
        if self._missing_in:
            self._answer_missing(client, now)
        while True:  # events: rare, never behind the backlog
            if not self._events and self._events_more:
                self._fetch_events()
            if not self._events or not bucket.borrow(now):
                break
            self._publish(client, self._events.popleft(), now, self.event_topic)
        while len(self._inflight) < self.max_unacked:  # carried over: old epoch, old seq
            if not self._carried and self._carried_more:
                self._fetch_carried()
            if not self._carried or not bucket.take(now):
                break
            item = self._carried.popleft()
            topic = self.event_topic if item.stream == "events" else self.rating_topic
            self._publish(client, item, now, topic)
        if self._window_at is not None and self._window_at[0] <= now:
            self._window(self._window_at[1])
        while self._window_due():  # a probe acked at once: what went before it, again
            rid, head = next(iter(self._inflight.items()))
            # borrowed like the live lane: the city was sent these once already (their tokens
            # spent) and lost them; they go before any more of the backlog, not after a refill
            if not bucket.borrow(now):
                break
            self._publish(client, Outgoing(head.seq, rid, head.payload), now, head.topic,
                          tries=head.tries + 1)  # fmt: skip
        if self._inflight and self._probe_due(now) <= now:
            self._probe(client, now)
        while len(self._inflight) < self.max_unacked:
            if not self._backlog:
                if not self._backlog_more:
                    break
                self._fetch_backlog()
                continue
            if not bucket.take(now):
                break
            self._publish(client, self._backlog.popleft(), now)

    def _publish(
        self, client: mqtt.Client, item: Outgoing, now: float, topic: str = "", *, tries: int = 1
    ) -> None:
        topic = topic or self.rating_topic
        info = client.publish(topic, item.payload, qos=1)
        if info.rc != _paho().MQTTErrorCode.MQTT_ERR_SUCCESS:
            # Queued by paho at best; the outbox will resend it anyway.
            log.info("publish of %s returned %s", item.id, _paho().error_string(info.rc))
        self._inflight.pop(item.id, None)
        self._published += 1
        self._inflight[item.id] = _Sent(item.seq, item.payload, now, topic, tries, self._published)

    def _signer_ready(self) -> bool:
        signer = self.signer
        if signer is None:
            return False
        if callable(signer):  # a KeyLoader: never wait for it here
            return getattr(signer, "key", None) is not None
        return True

    def _tell_damage(self) -> None:
        """Damaged records met (skipped, kept in the outbox) go into ``status.last_error``."""
        assert self._store is not None
        damaged = sorted(self._store.damage.values(), key=lambda d: d.seq)
        if len(damaged) > self._damage_told:
            self._damage_told = len(damaged)
            self._set_status(
                last_error=f"{len(damaged)} damaged rating record(s) not sent, kept in the"
                " outbox: " + "; ".join(str(d) for d in damaged[:3])
            )

    # -- the store check, status and shutdown -----------------------------------------------

    def _busy(self) -> bool:
        return bool(
            self._live
            or self._live_more
            or self._backlog
            or self._backlog_more
            or self._events
            or self._events_more
            or self._carried
            or self._carried_more
        )

    def _maybe_check(self, now: float) -> None:
        """The full store check, when due and nothing waits to be sent (or at once after a
        turn failed on a damaged file)."""
        if self._store is None or not (
            self._check_now or (now >= self._next_check and not self._busy())
        ):
            return
        self._check_now = False
        result = scheduled_check(self._store)
        self._next_check = time.monotonic() + self.store_check_every
        if result.startswith("damaged"):
            self._set_status(store_check=result, last_error=f"the rating store is {result}")
        else:
            self._set_status(store_check=result)

    def _tls_stamp(self) -> tuple[object, ...]:
        """What tells a changed TLS file: each one's inode, size and mtime (None: missing)."""
        stamps: list[object] = []
        for path in (self.tls_ca, self.tls_cert, self.tls_key):
            try:
                st = os.stat(path) if path else None
            except OSError:
                st = None
            stamps.append((st.st_ino, st.st_size, st.st_mtime_ns) if st else None)
        return tuple(stamps)

    def _maybe_check_cert(self, now: float) -> None:
        """The client certificate's expiry, at the start and every ``cert_check_every``: within
        ``cert_warn_days`` of it (or past it) it is a fault (status, menu, the city's event).
        Every ``cert_peek_every`` a look: a ``tls_cert`` file replaced (renewed) or a wall clock
        set (NTP after a boot in 1970) is checked again at once."""
        if now < self._next_cert_check:
            return
        self._next_cert_check = now + min(self.cert_peek_every, self.cert_check_every)
        if not self.tls_cert or not any(b.tls for b in self.brokers):
            self._next_cert_check = math.inf
            return
        stamp, offset = self._tls_stamp()[1], time.time() - time.monotonic()
        seen_stamp, seen_offset = self._cert_seen
        jumped = isinstance(seen_offset, float) and abs(offset - seen_offset) > CLOCK_JUMP
        if now < self._cert_due and stamp == seen_stamp and not jumped:
            return
        self._cert_due = now + self.cert_check_every
        self._cert_seen = (stamp, offset)
        from sync.certexpiry import check_certificate  # cryptography: after READY, here

        state = check_certificate(
            self.tls_cert,
            warn_days=self.cert_warn_days,
            now=datetime.fromtimestamp(offset + time.monotonic(), UTC),
        )
        if state.problem:
            log.error("the client certificate %s cannot be checked: %s", self.tls_cert,
                      state.problem)  # fmt: skip
        elif state.expiring:
            log.warning(
                "the client certificate %s %s %s (%d days): ask the city for a new one "
                "(evaluator tls csr)", self.tls_cert,
                "expired on" if state.days_left < 0 else "expires on", state.not_after,
                state.days_left,
            )  # fmt: skip
        self._set_status(cert=state)

    def _send_status(self, client: mqtt.Client, now: float, *, sample: bool = False) -> None:
        """Publish the retained status when its schedule is due (with fresh outbox figures)
        or its content changed (with the figures of the last schedule: the moment a rating
        is stored never shows); unchanged content is not sent again before its time."""
        with self._lock:
            self._state_changed = False
            state = dict(self._device_state)
            store_check = self._status.store_check
            link, cert = self._status.link, self._status.cert
            lost = self._status.lost
        if sample or now >= self._next_status:
            sample = True
            self._sample_outbox()
        outbox, oldest = self._outbox_figures
        content = {
            "device_id": self.device_id,
            "online": True,
            "firmware": self.firmware,
            "outbox": outbox,
            "oldest_age_s": oldest,
            "clock_synced": state["clock_synced"],
            "printer": state["printer"],
            "counter_link": state["counter_link"],
            "store_check": store_check or None,
            "link_error": link.as_json() if link is not None else None,
            "tls_cert": cert.as_json() if cert is not None and cert.not_after else None,
            "records_lost": _lost_json(lost),
        }
        if not sample and content == self._status_sent:
            return
        if sample:
            self._next_status = now + self.status_every
        self._status_sent = content
        # Read at each publish, never a reason to publish (the moment a rating is stored must
        # not show): the city compares it with the heads witnessed at the counter (art. 40).
        message = {**content, "ratings_head": self._ratings_head(), "at": local_now()}
        client.publish(self.status_topic, _json_bytes(message), qos=1, retain=True)

    def _ratings_head(self) -> dict[str, Any] | None:
        """The store's ratings head for the status: ``{seq, hash, epoch}``, ``None`` when no
        rating is stored or it cannot be read (logged)."""
        try:
            assert self._store is not None
            head = self._store.ratings_head()
            epoch = self._store.epoch
        except Exception as exc:
            log.warning("the ratings head could not be read for the status: %s", exc)
            return None
        return None if head is None else {"seq": head[0], "hash": head[1], "epoch": epoch}

    def _sample_outbox(self) -> None:
        """The status's outbox figures: ratings and events waiting, the oldest one's age."""
        assert self._store is not None
        try:
            count, oldest = self._store.outbox_summary()
        except Exception as exc:
            log.warning("the outbox could not be counted for the status: %s", exc)
            self._outbox_figures = (None, None)
            return
        age = None
        if oldest is not None:
            with contextlib.suppress(ValueError):
                moment = datetime.fromisoformat(oldest)
                if moment.tzinfo is None:
                    moment = moment.astimezone()
                age = round(max(0.0, time.time() - moment.timestamp()), 1)
        self._outbox_figures = (count, age)

    def _count_pending(self, *, force: bool = False) -> None:
        """Recount the outbox for the status (at most every 0.2 s unless ``force``)."""
        now = time.monotonic()
        if self._store is None or (not force and now - self._counted_at < 0.2):
            self._set_status(pending=self._pending)
            return
        self._counted_at = now
        try:
            self._pending = self._store.outbox_size()
        except Exception as exc:
            self._set_status(last_error=f"cannot read the outbox: {exc}")
            return
        self._set_status(pending=self._pending)

    def _set_status(self, **changes: Any) -> None:
        with self._lock:
            current = self._status
            if (
                changes.get("store_check", current.store_check) != current.store_check
                or changes.get("cert", current.cert) != current.cert
                or changes.get("lost", current.lost) != current.lost
            ):
                self._state_changed = True  # the city's status tells it
            self._status = SyncStatus(
                connected=changes.get("connected", current.connected),
                pending=changes.get("pending", current.pending),
                last_error=changes.get("last_error", current.last_error),
                store_check=changes.get("store_check", current.store_check),
                link=changes.get("link", current.link),
                cert=changes.get("cert", current.cert),
                lost=changes.get("lost", current.lost),
            )

    def _shutdown(self) -> None:
        client = self._client
        if client is not None:
            try:
                if self._link and self._connected:  # a clean stop: say so, then DISCONNECT
                    info = client.publish(
                        self.status_topic,
                        _json_bytes(offline_status(self.device_id, self.firmware, local_now())),
                        qos=1,
                        retain=True,
                    )
                    deadline = time.monotonic() + 1.0
                    while not info.is_published() and time.monotonic() < deadline:
                        if client.loop(0.05) != _paho().MQTTErrorCode.MQTT_ERR_SUCCESS:
                            break
                if self._link:
                    client.disconnect()
                    deadline = time.monotonic() + 0.5
                    while time.monotonic() < deadline:
                        if client.loop(0.05) != _paho().MQTTErrorCode.MQTT_ERR_SUCCESS:
                            break
            except Exception:
                log.debug("error while disconnecting", exc_info=True)
        self._link = self._connected = False
        self._set_status(connected=False)
        if self._store is not None:
            self._store.close()
            self._store = None
        for end in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                end.close()


def _json_bytes(obj: Any) -> bytes:
    """Compact JSON in UTF-8 (the status messages)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _seq_list(seqs: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(str(q) for q in seqs[:limit])
    return shown + (f" … ({len(seqs)} in all)" if len(seqs) > limit else "")


def _lost_json(lost: Sequence[tuple[str, int]]) -> dict[str, list[int]] | None:
    """The status message's ``records_lost``: the lost seqs per stream, ``None`` when none."""
    if not lost:
        return None
    found: dict[str, list[int]] = {"ratings": [], "events": []}
    for stream, seq in lost:
        found.setdefault(stream, []).append(seq)
    return found
