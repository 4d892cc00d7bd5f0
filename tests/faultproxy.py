"""A TCP proxy between MQTT clients and a broker that injects the faults of the city link.

The fault tests of issue 8 (``tests/sync/test_city_faults.py``) put this between the pads and a
real mosquitto, so a fault happens at a chosen point of the MQTT conversation, not at the
mercy of a timer:

* :meth:`FaultProxy.cut_all` — every connection closed now (both sides see the socket go);
* :meth:`FaultProxy.cut_after` — the client→broker stream is forwarded for ``n`` more bytes, then
  the connection is cut (``n`` inside a packet: the broker gets half a PUBLISH);
* :meth:`FaultProxy.cut_mid_publish` — the next client→broker PUBLISH to a topic matching a
  pattern is forwarded up to half its bytes, then the connection is cut;
* :meth:`FaultProxy.drop_publishes` — broker→client PUBLISH packets to matching topics are
  dropped (the city's acks lost) while everything else flows; for a QoS 1/2 drop the proxy
  answers the broker itself (PUBACK/PUBREC), as a client that received the message and crashed
  before using it would have, so the broker's in-flight window does not fill with messages it
  will never resend (MQTT resends only after a reconnect);
* :meth:`FaultProxy.pause` / :meth:`FaultProxy.resume` — new connections are accepted and closed
  at once (a broker that is down to these clients), the open ones go on;
* :attr:`FaultProxy.stats` — connections, bytes and packets each way, drops, cuts, the most
  connections open at once.

The proxy parses only MQTT fixed headers (type, flags, remaining length) to find packet
boundaries, plus a PUBLISH's topic and packet id; it works for MQTT 3.1.1 and 5 alike (the
topic comes first in both; topic aliases are not used by paho or mosquitto unless asked for).
One thread drives every socket through a selector; the control methods are thread-safe.
"""

from __future__ import annotations

import contextlib
import fnmatch
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

PUBLISH = 3
PUBACK = 4
PUBREC = 5


@dataclass
class ProxyStats:
    """What went through; read with :attr:`FaultProxy.stats` (a copy)."""

    accepted: int = 0
    refused: int = 0  # closed at once while paused
    open: int = 0
    peak_open: int = 0
    cuts: int = 0  # connections the proxy cut (cut_all, cut_after, cut_mid_publish)
    bytes_up: int = 0  # client → broker
    bytes_down: int = 0  # broker → client
    packets_up: int = 0
    packets_down: int = 0
    publishes_up: int = 0
    publishes_down: int = 0
    dropped: int = 0  # broker → client PUBLISH packets dropped
    dropped_topics: dict[str, int] = field(default_factory=dict)


def split_packet(buf: bytes | bytearray) -> int:
    """Length of the first whole MQTT packet at the start of ``buf``; 0 when incomplete.

    Raises ``ValueError`` for a remaining length longer than the 4 bytes MQTT allows.
    """
    if len(buf) < 2:
        return 0
    length, mult = 0, 1
    for i in range(1, 5):
        if i >= len(buf):
            return 0
        byte = buf[i]
        length += (byte & 0x7F) * mult
        if not byte & 0x80:
            total = 1 + i + length
            return total if len(buf) >= total else 0
        mult *= 128
    raise ValueError("malformed remaining length")


def _header_size(packet: bytes) -> int:
    i = 1
    while packet[i] & 0x80:
        i += 1
    return i + 1


def publish_topic(packet: bytes) -> tuple[str, int | None]:
    """The topic and packet id (``None`` at QoS 0) of a whole PUBLISH packet."""
    qos = (packet[0] >> 1) & 0x03
    at = _header_size(packet)
    size = int.from_bytes(packet[at : at + 2], "big")
    topic = packet[at + 2 : at + 2 + size].decode("utf-8", "replace")
    pid = None
    if qos:
        start = at + 2 + size
        pid = int.from_bytes(packet[start : start + 2], "big")
    return topic, pid


class _Pipe:
    """One proxied connection: the client's socket, the broker's, and a buffer each way."""

    def __init__(self, client: socket.socket, broker: socket.socket) -> None:
        self.client = client
        self.broker = broker
        self.up = bytearray()  # read from the client, not yet split into packets
        self.down = bytearray()  # read from the broker, not yet split
        self.to_broker = bytearray()  # whole packets to write to the broker
        self.to_client = bytearray()
        self.cut_in: int | None = None  # cut after this many more bytes upstream
        self.closed = False


class FaultProxy:
    """Listens on ``127.0.0.1:port`` (a free port unless given) and forwards each connection to
    ``target_host:target_port``.  Use as a context manager or call :meth:`close`."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(512)
        self._listener.setblocking(False)
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._lock = threading.Lock()
        self._stats = ProxyStats()
        self._pipes: list[_Pipe] = []
        self._orders: list[Callable[[], None]] = []
        self._paused = False
        self._drop: list[tuple[str, bool]] = []  # (topic pattern, answer for the client)
        self._mid_publish: str | None = None
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="faultproxy", daemon=True)
        self._thread.start()

    # -- control (any thread) -------------------------------------------------------------

    @property
    def stats(self) -> ProxyStats:
        with self._lock:
            copy = ProxyStats(**{k: v for k, v in vars(self._stats).items()})
            copy.dropped_topics = dict(self._stats.dropped_topics)
            return copy

    def cut_all(self) -> None:
        """Close every open connection now (the listener stays: clients may come back)."""
        self._order(self._cut_all)

    def cut_after(self, nbytes: int) -> None:
        """Forward ``nbytes`` more bytes client→broker on every open connection, then cut it."""
        self._order(lambda: self._set_cut(nbytes))

    def cut_mid_publish(self, pattern: str = "#") -> None:
        """Cut the connection that next sends a PUBLISH whose topic matches ``pattern`` (MQTT
        wildcards ``+``/``#``), after forwarding the first half of that packet."""
        with self._lock:
            self._mid_publish = pattern

    def drop_publishes(self, pattern: str, *, answer: bool = True) -> None:
        """Drop broker→client PUBLISH packets whose topic matches ``pattern`` until
        :meth:`stop_dropping`; ``answer``: acknowledge QoS 1/2 ones to the broker for the client."""
        with self._lock:
            self._drop.append((pattern, answer))

    def stop_dropping(self) -> None:
        with self._lock:
            self._drop.clear()

    def pause(self) -> None:
        """Close new connections at once (open ones go on)."""
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    def close(self) -> None:
        """Cut everything and stop the proxy's thread."""
        self._order(self._shutdown)
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _order(self, action: Callable[[], None]) -> None:
        """Have the proxy's thread run ``action`` and return once it has: a test that cuts and
        then publishes must not have its bytes forwarded before the cut is in place (they were,
        now and then, and the connection then waited for the next keepalive to be cut)."""
        done = threading.Event()

        def run() -> None:
            try:
                action()
            finally:
                done.set()

        with self._lock:
            self._orders.append(run)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        if threading.current_thread() is not self._thread and self._thread.is_alive():
            done.wait(5)

    # -- the proxy's thread -----------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while self._running:
                for key, mask in self._sel.select(1.0):
                    what = key.data
                    if what == "accept":
                        self._accept()
                    elif what == "wake":
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(4096)
                    else:
                        pipe, side = what
                        if not pipe.closed:
                            self._serve(pipe, side, mask)
                with self._lock:
                    orders, self._orders = self._orders, []
                for action in orders:
                    action()
        finally:
            for pipe in list(self._pipes):
                self._close_pipe(pipe, cut=False)
            self._sel.close()
            for s in (self._listener, self._wake_r, self._wake_w):
                s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors: try at the next event
                return
            with self._lock:
                paused = self._paused
                self._stats.refused += paused
            if paused:
                client.close()
                continue
            try:
                broker = socket.create_connection(self.target, timeout=5)
            except OSError:
                with self._lock:
                    self._stats.refused += 1
                client.close()
                continue
            for s in (client, broker):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(client, broker)
            self._pipes.append(pipe)
            self._sel.register(client, selectors.EVENT_READ, (pipe, "client"))
            self._sel.register(broker, selectors.EVENT_READ, (pipe, "broker"))
            with self._lock:
                self._stats.accepted += 1
                self._stats.open += 1
                self._stats.peak_open = max(self._stats.peak_open, self._stats.open)

    def _serve(self, pipe: _Pipe, side: str, mask: int) -> None:
        sock = pipe.client if side == "client" else pipe.broker
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                self._close_pipe(pipe, cut=False)
                return
            if data:
                try:
                    if side == "client":
                        self._from_client(pipe, data)
                    else:
                        self._from_broker(pipe, data)
                except ValueError:  # not MQTT: nothing sensible to forward
                    self._close_pipe(pipe, cut=False)
                    return
        if not pipe.closed:
            self._flush(pipe)

    def _from_client(self, pipe: _Pipe, data: bytes) -> None:
        pipe.up += data
        while True:
            size = split_packet(pipe.up)
            if not size:
                return
            packet = bytes(pipe.up[:size])
            del pipe.up[:size]
            with self._lock:
                self._stats.packets_up += 1
                self._stats.bytes_up += size
                is_pub = packet[0] >> 4 == PUBLISH
                self._stats.publishes_up += is_pub
                cut = self._mid_publish
                if is_pub and cut is not None and topic_matches(cut, publish_topic(packet)[0]):
                    self._mid_publish = None
                else:
                    cut = None
            if cut is not None:
                pipe.to_broker += packet[: max(1, size // 2)]
                pipe.cut_in = len(pipe.to_broker)
                return
            pipe.to_broker += packet

    def _from_broker(self, pipe: _Pipe, data: bytes) -> None:
        pipe.down += data
        while True:
            size = split_packet(pipe.down)
            if not size:
                return
            packet = bytes(pipe.down[:size])
            del pipe.down[:size]
            answer: bytes | None = None
            with self._lock:
                self._stats.packets_down += 1
                self._stats.bytes_down += size
                if packet[0] >> 4 == PUBLISH:
                    self._stats.publishes_down += 1
                    topic, pid = publish_topic(packet)
                    rule = next((r for r in self._drop if topic_matches(r[0], topic)), None)
                    if rule is not None:
                        self._stats.dropped += 1
                        counts = self._stats.dropped_topics
                        counts[topic] = counts.get(topic, 0) + 1
                        if rule[1] and pid is not None:
                            kind = PUBACK if (packet[0] >> 1) & 0x03 == 1 else PUBREC
                            answer = bytes([kind << 4, 2]) + pid.to_bytes(2, "big")
                        packet = b""
            if answer is not None:
                pipe.to_broker += answer  # between whole packets: up is split before queuing
            pipe.to_client += packet

    def _flush(self, pipe: _Pipe) -> None:
        for sock, buf, upstream in (
            (pipe.broker, pipe.to_broker, True),
            (pipe.client, pipe.to_client, False),
        ):
            limit = len(buf)
            if upstream and pipe.cut_in is not None:
                limit = min(limit, pipe.cut_in)
            while limit:
                try:
                    sent = sock.send(buf[:limit])
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    self._close_pipe(pipe, cut=False)
                    return
                del buf[:sent]
                limit -= sent
                if upstream and pipe.cut_in is not None:
                    pipe.cut_in -= sent
            if upstream and pipe.cut_in == 0:
                self._close_pipe(pipe, cut=True)
                return
        # Wait for writability only while something is left to write.
        for sock, buf, side in (
            (pipe.broker, pipe.to_broker, "broker"),
            (pipe.client, pipe.to_client, "client"),
        ):
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if buf else 0)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.modify(sock, events, (pipe, side))

    def _set_cut(self, nbytes: int) -> None:
        for pipe in list(self._pipes):
            pipe.cut_in = len(pipe.to_broker) + max(0, nbytes)
            self._flush(pipe)

    def _cut_all(self) -> None:
        for pipe in list(self._pipes):
            self._close_pipe(pipe, cut=True)

    def _close_pipe(self, pipe: _Pipe, *, cut: bool) -> None:
        if pipe.closed:
            return
        pipe.closed = True
        for sock in (pipe.client, pipe.broker):
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(sock)
            with contextlib.suppress(OSError):
                sock.close()
        self._pipes.remove(pipe)
        with self._lock:
            self._stats.open -= 1
            self._stats.cuts += cut

    def _shutdown(self) -> None:
        self._running = False


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest); a pattern without
    wildcards must be equal.  Shell wildcards (``*``) are accepted too, for convenience."""
    if "*" in pattern or "?" in pattern:
        return fnmatch.fnmatchcase(topic, pattern)
    pat, top = pattern.split("/"), topic.split("/")
    for i, part in enumerate(pat):
        if part == "#":
            return True
        if i >= len(top) or (part != "+" and part != top[i]):
            return False
    return len(pat) == len(top)
