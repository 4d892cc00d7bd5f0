"""Upload of stored ratings to the city over MQTT: one worker thread owns the paho client.

Wire contract (topics under ``{topic_prefix}/{device_id}/``):

* ``ratings`` (device → city, QoS 1): one sealed record per message, its canonical JSON in UTF-8,
  exactly as stored (``id``, ``seq``, ``hash``… see ``evaluator.rules.records.RATING_FIELDS``).
  The same record may arrive more than once: the city deduplicates by ``id``.
* ``acks`` (city → device, QoS 1): ``{"ids": ["<rating id>", ...]}`` once the city has stored
  them.  Only then does a rating leave the outbox.  The city must ack a duplicate again.

The SQLite outbox is the only queue that matters: paho's in-memory queue may hold copies, but a
rating is republished from the store after every (re)connect and whenever ``resend_after``
seconds passed without an ack, in ``seq`` order, whatever its level, at most ``max_rate`` messages
per second.  paho is not thread-safe, so the client is created, looped (``client.loop``, never
``loop_start``), reconnected and disconnected only by :class:`SyncWorker`'s own thread; other
threads talk to it through :meth:`SyncWorker.notify`, :meth:`SyncWorker.stop` and
:attr:`SyncWorker.status`.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from evaluator.rules.backoff import Backoff
from evaluator.rules.errors import StoreError
from evaluator.rules.protocol import MAX_DEPTH, nesting_depth
from evaluator.rules.records import canonical_json
from sync.status import SyncStatus
from sync.store import Store

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

#: Seconds one ``client.loop`` call may block; bounds the reaction time to notify()/stop().
LOOP_TIMEOUT = 0.1
#: Records read from the outbox per query while looking for what to (re)publish.
SCAN_PAGE = 100
#: Seconds between checks for ratings committed without a notify() (and status refreshes).
POLL_INTERVAL = 1.0
#: Largest ack message read, in bytes (1,000 ids take about 40 kB); a larger one is ignored.
MAX_ACK_BYTES = 256 * 1024
#: Most ids applied from one ack message; the rest are not applied (those ratings are resent,
#: and the city acks them again).
MAX_ACK_IDS = 1000


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


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no rating id, and SQLite cannot bind it
        return False
    return True


class SyncWorker(threading.Thread):
    """The thread that uploads the outbox of the store at ``store_path`` and applies acks.

    Start it with ``start()``; call :meth:`notify` after each committed rating and :meth:`stop`
    then ``join()`` at shutdown.  The broker may be absent: the worker keeps retrying (delays
    from ``reconnect_min`` doubling to ``reconnect_max`` seconds, with jitter) while the outbox
    grows.  Times are in seconds; ``max_rate`` in messages per second.  ``on_ack`` is called in
    the worker thread with the ids of each valid ack message (keep it short, never block).
    ``connect_timeout`` bounds one TCP connect attempt, and so how long :meth:`stop` may take.
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
        max_rate: float = 5.0,
        on_ack: Callable[[list[str]], None] | None = None,
        reconnect_min: float = 1.0,
        reconnect_max: float = 30.0,
        connect_timeout: float = 2.0,
    ) -> None:
        if max_rate <= 0 or resend_after <= 0:
            raise ValueError("max_rate and resend_after must be more than 0")
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
        self.max_rate = max_rate
        self.on_ack = on_ack
        self.reconnect_min = reconnect_min
        self.reconnect_max = max(reconnect_max, reconnect_min)
        self.connect_timeout = connect_timeout
        self.rating_topic = f"{topic_prefix}/{device_id}/ratings"
        self.ack_topic = f"{topic_prefix}/{device_id}/acks"

        self._stop_event = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._status = SyncStatus(False, 0, "")

        # Everything below belongs to the worker thread only.
        self._store: Store | None = None
        self._client: mqtt.Client | None = None
        self._link = False  # a socket is open (CONNECT sent or session up)
        self._link_since = 0.0
        self._connected = False  # CONNACK accepted
        self._fresh = False  # connected, subscription and resend state not yet set up
        self._backoff = Backoff(self.reconnect_min, cap=self.reconnect_max)
        self._next_connect = 0.0
        self._sent_at: dict[str, float] = {}
        self._tokens = 1.0
        self._tokens_at = 0.0
        self._next_scan = 0.0
        self._cursor = 0  # seq where an interrupted scan resumes
        self._pass_due = math.inf  # earliest resend deadline seen so far in this pass
        self._pass_seen: set[str] = set()
        self._next_poll = 0.0
        self._seen_seq = 0  # newest rating seq known when the last scan started

    # -- the API for other threads --------------------------------------------------------

    def notify(self) -> None:
        """A rating was committed: publish it promptly (thread-safe, never blocks)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the worker to disconnect and end; ``join()`` afterwards (thread-safe)."""
        self._stop_event.set()
        self._wake.set()

    @property
    def status(self) -> SyncStatus:
        """Connected to the broker?  Ratings awaiting the city's ack?  The last problem seen."""
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
                        self.store_path, device_id=self.device_id, keep_damaged_aside=False
                    )
                except StoreError as exc:
                    log.error("sync cannot open the store: %s", exc)
                    self._set_status(last_error=str(exc))
                    self._stop_event.wait(5.0)
            if self._store is None:
                return
            self._refresh_pending()
            self._client = self._make_client()
            while not self._stop_event.is_set():
                try:
                    self._step()
                except Exception as exc:  # never let one bad turn end the uploads
                    log.exception("sync worker error")
                    self._set_status(last_error=f"{type(exc).__name__}: {exc}")
                    self._stop_event.wait(1.0)
        finally:
            self._shutdown()

    def _make_client(self) -> mqtt.Client:
        paho = _paho()
        client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,  # the outbox is the durable queue, not the broker session
            protocol=paho.MQTTv311,
        )
        if self.username:
            client.username_pw_set(self.username, self.password or None)
        client.connect_timeout = self.connect_timeout
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.connect_async(self.host, self.port, keepalive=self.keepalive)
        return client

    def _step(self) -> None:
        client = self._client
        assert client is not None
        now = time.monotonic()
        if not self._link:
            if now >= self._next_connect:
                self._try_connect(client, now)
            else:
                self._wake.wait(min(LOOP_TIMEOUT, self._next_connect - now))
            if self._stop_event.is_set():
                return
            if self._wake.is_set() or time.monotonic() >= self._next_poll:
                self._wake.clear()
                self._next_poll = time.monotonic() + POLL_INTERVAL
                self._refresh_pending()
            return

        timeout = LOOP_TIMEOUT
        if self._connected:
            timeout = min(timeout, max(0.0, self._next_scan - now))
        rc = client.loop(timeout)
        paho = _paho()
        if rc != paho.MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(f"connection lost ({paho.error_string(rc)})")
            return
        if not self._connected and time.monotonic() - self._link_since > max(
            10.0, 2 * self.connect_timeout
        ):
            self._lost("no CONNACK from the broker")
            return
        if self._fresh:
            self._fresh = False
            client.subscribe(self.ack_topic, qos=1)
            self._sent_at.clear()
            self._restart_pass()
            self._next_scan = 0.0
            self._backoff.reset()
        if self._wake.is_set():
            self._wake.clear()
            self._next_scan = 0.0
            self._refresh_pending()
        elif time.monotonic() >= self._next_poll:
            self._poll()
        if self._connected and time.monotonic() >= self._next_scan:
            self._publish_due(client)

    def _poll(self) -> None:
        """Catch ratings committed without notify() (another process, a missed call)."""
        assert self._store is not None
        self._next_poll = time.monotonic() + POLL_INTERVAL
        if self._store.last_seq() > self._seen_seq:
            self._next_scan = 0.0
        self._refresh_pending()

    def _try_connect(self, client: mqtt.Client, now: float) -> None:
        try:
            client.reconnect()
        except (OSError, ValueError) as exc:
            self._next_connect = now + self._backoff.next()
            self._set_status(
                connected=False, last_error=f"cannot reach {self.host}:{self.port}: {exc}"
            )
            log.info(
                "broker %s:%s unreachable (%s); retry in %.1fs",
                self.host,
                self.port,
                exc,
                self._next_connect - now,
            )
            return
        self._link = True
        self._link_since = now

    def _lost(self, why: str) -> None:
        """The socket is gone: back off, then reconnect."""
        was = self._connected
        self._link = self._connected = False
        self._next_connect = time.monotonic() + self._backoff.next()
        self._set_status(connected=False, last_error=why)
        if was:
            log.warning("MQTT %s", why)

    # paho callbacks: they run inside client.loop(), i.e. in this thread.

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self._set_status(last_error=f"broker refused the connection: {reason}")
            log.error("broker refused the connection: %s", reason)
            return
        log.info("connected to %s:%s", self.host, self.port)
        self._connected = True
        self._fresh = True
        self._set_status(connected=True)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._connected = False
        self._set_status(connected=False)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        if any(r.is_failure for r in reasons):
            why = f"the broker refused the ack subscription {self.ack_topic}: {reasons[0]}"
            log.error("%s; ratings will be resent until acked", why)
            self._set_status(last_error=why)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        # Nothing may escape: paho would handle the same packet again at every loop, for ever
        # (no uploads, no acks), and a retained one again at every start.
        try:
            self._apply_ack(message)
        except Exception as exc:
            log.exception("an ack message could not be applied")
            self._set_status(last_error=f"ack not applied: {type(exc).__name__}: {exc}"[:300])

    def _apply_ack(self, message: mqtt.MQTTMessage) -> None:
        if message.topic != self.ack_topic:
            return
        ids, problem = parse_ack(message.payload)
        if problem:
            log.warning("malformed ack (%s): %.200r", problem, message.payload[:200])
            self._set_status(last_error=f"malformed ack: {problem}")
        if not ids:
            return
        assert self._store is not None
        try:
            removed = self._store.ack(ids)
        except StoreError as exc:
            log.error("could not apply an ack: %s", exc)
            self._set_status(last_error=str(exc))
            return
        for rid in ids:
            self._sent_at.pop(rid, None)
        log.debug("ack for %d ids, %d were pending", len(ids), removed)
        self._refresh_pending()
        if self.on_ack is not None:
            try:
                self.on_ack(list(ids))
            except Exception:
                log.exception("on_ack callback failed")

    # -- publishing -----------------------------------------------------------------------

    def _restart_pass(self) -> None:
        self._cursor = 0
        self._pass_due = math.inf
        self._pass_seen = set()

    def _take_token(self, now: float) -> bool:
        """Token bucket of capacity 1: at most ``max_rate`` publishes per second, no bursts."""
        self._tokens = min(1.0, self._tokens + (now - self._tokens_at) * self.max_rate)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def _publish_due(self, client: mqtt.Client) -> None:
        """Walk the outbox in seq order, publishing what is due while the rate allows.

        A damaged record is skipped by ``Store.pending`` (the rest keeps flowing); it stays in
        the outbox, and each full pass reports it in ``status.last_error``.
        """
        assert self._store is not None
        if self._cursor == 0:
            self._seen_seq = self._store.last_seq()
            self._store.damage.clear()  # what this pass meets
        while True:
            page = self._store.pending(SCAN_PAGE, after_seq=self._cursor)
            now = time.monotonic()
            for record in page:
                rid = record["id"]
                sent = self._sent_at.get(rid)
                if sent is not None and now - sent < self.resend_after:
                    self._pass_seen.add(rid)
                    self._pass_due = min(self._pass_due, sent + self.resend_after)
                    self._cursor = record["seq"]
                    continue
                if not self._take_token(now):
                    # Resume here when the next token is there.
                    self._next_scan = now + (1.0 - self._tokens) / self.max_rate
                    return
                info = client.publish(self.rating_topic, canonical_json(record), qos=1)
                if info.rc != _paho().MQTTErrorCode.MQTT_ERR_SUCCESS:
                    # Queued by paho at best; the outbox will resend it anyway.
                    log.info("publish of %s returned %s", rid, _paho().error_string(info.rc))
                self._sent_at[rid] = now
                self._pass_seen.add(rid)
                self._pass_due = min(self._pass_due, now + self.resend_after)
                self._cursor = record["seq"]
            if len(page) < SCAN_PAGE:
                break
        # A full pass: forget ids no longer pending, sleep until the first resend is due.
        self._sent_at = {k: v for k, v in self._sent_at.items() if k in self._pass_seen}
        self._next_scan = self._pass_due
        self._restart_pass()
        self._refresh_pending()
        damaged = sorted(self._store.damage.values(), key=lambda d: d.seq)
        if damaged:
            self._set_status(
                last_error=f"{len(damaged)} damaged rating record(s) not sent, kept in the"
                " outbox: " + "; ".join(str(d) for d in damaged[:3])
            )

    # -- status and shutdown --------------------------------------------------------------

    def _refresh_pending(self) -> None:
        if self._store is None:
            return
        try:
            size = self._store.outbox_size()
        except Exception as exc:
            self._set_status(last_error=f"cannot read the outbox: {exc}")
            return
        self._set_status(pending=size)

    def _set_status(self, **changes: Any) -> None:
        with self._lock:
            current = self._status
            self._status = SyncStatus(
                connected=changes.get("connected", current.connected),
                pending=changes.get("pending", current.pending),
                last_error=changes.get("last_error", current.last_error),
            )

    def _shutdown(self) -> None:
        client = self._client
        if client is not None:
            try:
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
