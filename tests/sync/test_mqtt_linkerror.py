"""No silent failure on the city link (issue 14): every failed connection of the pad's worker is
a WARNING within 10 s naming its cause in words and the broker, the status holds the last one,
repeats are counted instead of flooding the journal, and the recovery is told once.

Each cause meets a real server on loopback: the shipped TLS mosquitto (tests/tlsbroker.py) with
certificates made for the case (expired, not yet valid, another name, another CA), a plain
mosquitto (the ``broker`` fixture) behind an ``mqtts://`` URL, a mosquitto that refuses the login,
a TCP server that accepts and never speaks, a free port nobody listens on, a name under
``.invalid`` (RFC 6761: never resolves).
"""

from __future__ import annotations

import datetime
import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from sync import tlscerts
from sync.linkerror import FailureLog, LinkError
from sync.mqtt import SyncWorker
from tests.conftest import require_binary
from tests.support import Broker, LogLines, free_port, log_lines
from tests.sync.test_mqtt import wait_until
from tests.sync.workers import worker_factory
from tests.tlsbroker import CityPki, Identity, TlsBroker

DEVICE = "pad-link"
#: What the issue asks: the line within 10 s of the failure.
TOLD_WITHIN = 10.0


@pytest.fixture
def lines() -> Iterator[LogLines]:
    # the level is the one under test, whatever an earlier test left on "sync" or here
    with log_lines("sync.mqtt") as handler:
        yield handler


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CityPki:
    return CityPki(tmp_path_factory.mktemp("link-pki"))


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., SyncWorker]]:
    """Workers of ``DEVICE`` that retry fast and give up on a silent peer after 1 s."""
    target = type("Nowhere", (), {"host": "127.0.0.1", "port": free_port()})()
    with worker_factory(target, tmp_path / "ratings.db", DEVICE, connect_timeout=1.0,
                        connack_timeout=1.0, reconnect_spread=0.0) as factory:  # fmt: skip
        yield factory


def tls_options(who: Identity | None, ca: Path) -> dict[str, str]:
    return {
        "tls_ca": str(ca),
        "tls_cert": str(who.cert) if who else "",
        "tls_key": str(who.key) if who else "",
    }


def assert_told(worker: SyncWorker, lines: LogLines, cause: str, *words: str) -> str:
    """The warning names the broker and ``words``; the status holds ``cause``."""
    url = str(worker.brokers[0])
    line = lines.wait_for("cannot connect to", url, *words, timeout=TOLD_WITHIN)
    link = worker.status.link
    assert link is not None and link.cause == cause, (link, line)
    assert link.broker == url and link.count >= 1 and link.since and not link.until
    assert worker.status.last_error.startswith(f"cannot connect to {url}")
    assert not worker.status.connected
    return line


# --- each cause --------------------------------------------------------------------------------


def test_refused_a_port_nobody_listens_on(make: Callable[..., SyncWorker], lines: LogLines) -> None:
    worker = make(brokers=[f"mqtt://127.0.0.1:{free_port()}"])
    assert_told(worker, lines, "refused", "connection refused")


def test_a_name_that_does_not_resolve(make: Callable[..., SyncWorker], lines: LogLines) -> None:
    worker = make(brokers=["mqtt://city-broker.invalid:1883"])
    assert_told(worker, lines, "dns", "does not resolve")


class Silent:
    """A TCP server that accepts connections and never says a byte."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.server.settimeout(0.1)
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def close(self) -> None:
        self.stopped = True
        self.thread.join(5)
        for conn in self.conns:
            conn.close()
        self.server.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def test_no_connack_is_a_timeout(
    make: Callable[..., SyncWorker], lines: LogLines, silent: Silent
) -> None:
    worker = make(brokers=[f"mqtt://127.0.0.1:{silent.port}"])
    assert_told(worker, lines, "timeout", "no CONNACK within 1 s")


def test_a_tls_handshake_that_never_ends_is_a_timeout(
    make: Callable[..., SyncWorker], lines: LogLines, silent: Silent, pki: CityPki
) -> None:
    worker = make(brokers=[f"mqtts://127.0.0.1:{silent.port}"],
                  **tls_options(pki.client(DEVICE), pki.ca.cert_path))  # fmt: skip
    assert_told(worker, lines, "timeout", "TLS handshake")


def test_a_tls_url_to_a_plain_mqtt_listener(
    make: Callable[..., SyncWorker], lines: LogLines, broker: Broker, pki: CityPki
) -> None:
    worker = make(brokers=[f"mqtts://127.0.0.1:{broker.port}"],
                  **tls_options(pki.client(DEVICE), pki.ca.cert_path))  # fmt: skip
    assert_told(worker, lines, "not_tls", "not a TLS server")


@pytest.fixture
def city(pki: CityPki) -> Iterator[TlsBroker]:
    require_binary("mosquitto")
    broker = TlsBroker(pki)
    broker.start()
    yield broker
    broker.remove()


def test_a_broker_certificate_of_another_ca(
    make: Callable[..., SyncWorker], lines: LogLines, city: TlsBroker, pki: CityPki, tmp_path: Path
) -> None:
    other = tlscerts.make_ca(tmp_path / "other-ca")
    worker = make(brokers=[f"mqtts://127.0.0.1:{city.port}"],
                  **tls_options(pki.client(DEVICE), other.cert_path))  # fmt: skip
    line = assert_told(worker, lines, "unknown_ca", "not signed by our CA")
    assert "self-signed certificate in certificate chain" in line  # OpenSSL's words follow


def test_our_certificate_refused_when_we_show_none(
    make: Callable[..., SyncWorker], lines: LogLines, city: TlsBroker, pki: CityPki
) -> None:
    worker = make(brokers=[f"mqtts://127.0.0.1:{city.port}"], **tls_options(None, pki.ca.cert_path))
    assert_told(worker, lines, "cert_refused", "refused our client certificate")


def test_our_certificate_refused_when_another_ca_signed_it(
    make: Callable[..., SyncWorker], lines: LogLines, city: TlsBroker, pki: CityPki, tmp_path: Path
) -> None:
    stranger = CityPki(tmp_path / "stranger").client(DEVICE)
    worker = make(brokers=[f"mqtts://127.0.0.1:{city.port}"],
                  **tls_options(stranger, pki.ca.cert_path))  # fmt: skip
    assert_told(worker, lines, "cert_refused", "refused our client certificate")


def broker_cert(
    pki: CityPki,
    folder: Path,
    *,
    names: tuple[str, ...] = ("127.0.0.1", "localhost"),
    days: tuple[int, int] = (-1, 30),
) -> Identity:
    """A broker certificate of the city's CA with chosen names and validity (days from now)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = tlscerts.create_tls_key(folder / "server.key")
    now = datetime.datetime.now(datetime.UTC)
    alt = [x509.IPAddress(__import__("ipaddress").ip_address(n)) if n[0].isdigit()
           else x509.DNSName(n) for n in names]  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "broker")]))
        .issuer_name(pki.ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(pki.ca.key, hashes.SHA256())
    )
    (folder / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity("broker", folder / "server.crt", folder / "server.key", pki.ca.cert_path)


@pytest.fixture
def city_with(pki: CityPki) -> Iterator[Callable[[Identity], TlsBroker]]:
    """The shipped TLS broker with another server certificate."""
    require_binary("mosquitto")
    started: list[TlsBroker] = []

    def start(server: Identity) -> TlsBroker:
        broker = TlsBroker(pki)
        shutil.copyfile(server.cert, broker.folder / "broker.crt")
        shutil.copyfile(server.key, broker.folder / "broker.key")
        started.append(broker)
        broker.start()
        return broker

    yield start
    for broker in started:
        broker.remove()


@pytest.mark.parametrize(
    ("cause", "words", "server"),
    [
        ("cert_expired", "has expired", {"days": (-60, -1)}),
        ("cert_not_yet_valid", "not valid yet", {"days": (2, 60)}),
        ("name_mismatch", "not made out to the host name", {"names": ("elsewhere.example",)}),
    ],
)
def test_a_broker_certificate_we_refuse(
    make: Callable[..., SyncWorker], lines: LogLines, city_with: Callable[[Identity], TlsBroker],
    pki: CityPki, tmp_path: Path, cause: str, words: str, server: dict[str, Any],
) -> None:  # fmt: skip
    city = city_with(broker_cert(pki, tmp_path / "server", **server))
    worker = make(brokers=[f"mqtts://127.0.0.1:{city.port}"],
                  **tls_options(pki.client(DEVICE), pki.ca.cert_path))  # fmt: skip
    assert_told(worker, lines, cause, words)


@pytest.fixture
def login_broker(tmp_path: Path) -> Iterator[Broker]:
    """A plain mosquitto that takes only user ``pad`` with password ``right``."""
    require_binary("mosquitto")
    passwords = tmp_path / "passwd"
    subprocess.run([require_binary("mosquitto_passwd"), "-b", "-c", str(passwords), "pad",
                    "right"], check=True, capture_output=True)  # fmt: skip
    broker = Broker(tmp_path)
    # ``user root``: run as root, mosquitto would drop to its user, who cannot read tmp_path
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {passwords}\npersistence false\nuser root\n"
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.parametrize(
    ("protocol", "words"),
    [("5", "CONNACK 0x87 Not authorized"), ("3.1.1", "CONNACK return code 5: not authorized")],
)
def test_a_connack_that_refuses_a_wrong_password(
    make: Callable[..., SyncWorker],
    lines: LogLines,
    login_broker: Broker,
    protocol: str,
    words: str,
) -> None:
    worker = make(brokers=[f"mqtt://127.0.0.1:{login_broker.port}"], protocol=protocol,
                  username="pad", password="wrong-secret")  # fmt: skip
    line = assert_told(worker, lines, "connack", words)
    assert "wrong-secret" not in line and "wrong-secret" not in worker.status.last_error


class Refusing:
    """A TCP server answering every CONNECT with one CONNACK refusal (``connack`` bytes), then
    closing: the reason codes mosquitto does not send for a login."""

    def __init__(self, connack: bytes) -> None:
        self.connack = connack
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.server.settimeout(0.1)
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)  # the CONNECT
                    conn.sendall(self.connack)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped = True
        self.thread.join(5)
        self.server.close()


@pytest.mark.parametrize(
    ("protocol", "connack", "words"),
    [
        ("5", b"\x20\x03\x00\x86\x00", "CONNACK 0x86 Bad user name or password"),
        ("5", b"\x20\x03\x00\x8a\x00", "CONNACK 0x8A Banned"),
        ("3.1.1", b"\x20\x02\x00\x04", "CONNACK return code 4: bad user name or password"),
        ("3.1.1", b"\x20\x02\x00\x03", "CONNACK return code 3: server unavailable"),
    ],
)
def test_a_connack_reason_is_named_with_its_number(
    make: Callable[..., SyncWorker], lines: LogLines, protocol: str, connack: bytes, words: str
) -> None:
    server = Refusing(connack)
    try:
        worker = make(brokers=[f"mqtt://127.0.0.1:{server.port}"], protocol=protocol)
        assert_told(worker, lines, "connack", words)
    finally:
        server.close()


# --- how often, and the recovery ---------------------------------------------------------------


def test_twenty_failures_in_a_row_are_one_line_and_a_count(
    make: Callable[..., SyncWorker], lines: LogLines
) -> None:
    worker = make(brokers=[f"mqtt://127.0.0.1:{free_port()}"], reconnect_min=0.05,
                  reconnect_max=0.05)  # fmt: skip
    wait_until(lambda: worker.status.link is not None and worker.status.link.count >= 20, 20,
               "20 failed attempts")  # fmt: skip
    told = [m for m in lines.messages() if "cannot connect" in m]
    assert len(told) <= 2, told
    assert worker.status.link is not None and worker.status.link.count >= 20


def test_the_recovery_is_told_once_with_the_failures(
    make: Callable[..., SyncWorker], lines: LogLines, tmp_path: Path
) -> None:
    require_binary("mosquitto")
    later = Broker(tmp_path)  # its port is free until it starts
    worker = make(brokers=[f"mqtt://127.0.0.1:{later.port}"])
    assert_told(worker, lines, "refused", "connection refused")
    later.start()
    try:
        wait_until(lambda: worker.status.connected, 10, "the worker to connect")
        line = lines.wait_for("connected to", f"127.0.0.1:{later.port}", "failed attempt")
        link = worker.status.link
        assert link is not None and link.cause == "refused" and link.until  # the last one kept
        assert sum("connected to" in m for m in lines.messages()) == 1, line
    finally:
        later.stop()


def test_a_change_of_cause_is_told_at_once(
    make: Callable[..., SyncWorker], lines: LogLines, silent: Silent
) -> None:
    port = free_port()
    worker = make(brokers=[f"mqtt://127.0.0.1:{port}"], failure_log_every=3600.0)
    assert_told(worker, lines, "refused", "connection refused")
    moved = socket.create_server(("127.0.0.1", port))  # now it answers, and says nothing
    try:
        assert_told(worker, lines, "timeout", "no CONNACK")
    finally:
        moved.close()


# --- the failure log alone (its clock is the test's) ----------------------------------------------


def test_the_failure_log_counts_repeats_and_tells_them_once_a_minute() -> None:
    failures = FailureLog(every=60.0)
    refused = LinkError("refused", "connection refused")
    url = "mqtt://127.0.0.1:1883"
    first = failures.failed(refused, url, 0.0, 1000.0)
    assert first == f"cannot connect to {url}: connection refused"
    told = [failures.failed(refused, url, float(t), 1000.0 + t) for t in range(1, 60)]
    assert told == [None] * 59
    line = failures.failed(refused, url, 61.0, 1061.0)
    assert line is not None and "(59 more times since" in line
    assert failures.current is not None and failures.current.count == 61
    # another cause: at once, and the status follows it
    dns = LinkError("dns", "the host name does not resolve (DNS)")
    assert failures.failed(dns, url, 62.0, 1062.0) is not None
    assert failures.current.cause == "dns" and failures.current.count == 1
    # back to the first within its minute: counted, not told
    assert failures.failed(refused, url, 63.0, 1063.0) is None
    done = failures.connected(url, 70.0, 1070.0)
    assert done == f"connected to {url} after 63 failed attempts over 70 s"
    assert failures.current.until
    assert failures.connected(url, 80.0, 1080.0) is None  # nothing failed since


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (
            "failed to receive on socket: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert "
            "certificate required (_ssl.c:2580)",
            "cert_refused",
        ),
        ("failed to receive on socket: [SSL: SSLV3_ALERT_BAD_CERTIFICATE] bad", "cert_refused"),
        ("failed to receive on socket: [SSL: TLSV1_ALERT_UNKNOWN_CA] unknown ca", "cert_refused"),
        ("failed to receive on socket: EOF occurred in violation of protocol", "cert_refused"),
        ("failed to receive on socket: [Errno 104] Connection reset by peer", "cert_refused"),
    ],
)
def test_what_paho_logs_after_the_handshake_names_the_cause(text: str, cause: str) -> None:
    """paho returns only "connection lost" and logs the reason: the words are read from it."""
    from sync.linkerror import classify

    assert classify(text, tls=True, handshake_done=True).cause == cause
    if cause == "cert_refused" and "ALERT" not in text:
        assert classify(text, tls=False, handshake_done=True).cause == "closed"


# --- what the city's status says --------------------------------------------------------------


def test_the_retained_status_tells_the_city_why_the_link_had_failed(
    make: Callable[..., SyncWorker], lines: LogLines, tmp_path: Path
) -> None:
    from tests.sync.test_mqtt_events import Peer, assert_valid, schema

    require_binary("mosquitto")
    later = Broker(tmp_path)
    worker = make(brokers=[f"mqtt://127.0.0.1:{later.port}"], topic_prefix="hcp/v1")
    assert_told(worker, lines, "refused", "connection refused")
    later.start()
    peer = None
    try:
        wait_until(lambda: worker.status.connected, 10, "the worker to connect")
        peer = Peer(later.host, later.port, base=f"hcp/v1/{DEVICE}")
        wait_until(lambda: bool(peer.on("status")), 5, "the retained status")
        status = peer.on("status")[-1]
        assert_valid(schema("status"), status)
        told = status["link_error"]
        assert told["cause"] == "refused" and told["count"] >= 1
        assert told["broker"] == f"mqtt://127.0.0.1:{later.port}"
        assert told["since"] <= told["last"] <= told["until"] <= status["at"]
        assert status["tls_cert"] is None  # no client certificate
    finally:
        if peer is not None:
            peer.close()
        later.stop()


def test_an_expiring_client_certificate_is_in_the_status_and_logged(
    make: Callable[..., SyncWorker], lines: LogLines, city: TlsBroker, pki: CityPki, tmp_path: Path
) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from tests.sync.test_mqtt_events import assert_valid, schema

    key = tlscerts.create_tls_key(tmp_path / "short.key")
    (tmp_path / "short.crt").write_bytes(
        tlscerts.sign_csr(tlscerts.make_csr(key, DEVICE), pki.ca, days=10)
    )
    short = Identity(DEVICE, tmp_path / "short.crt", tmp_path / "short.key", pki.ca.cert_path)
    worker = make(brokers=[f"mqtts://127.0.0.1:{city.port}"], topic_prefix="hcp/v1",
                  **tls_options(short, pki.ca.cert_path))  # fmt: skip
    lines.wait_for("client certificate", str(short.cert), "expires on", "(9 days)")
    wait_until(lambda: worker.status.connected, 10, "the worker to connect")
    assert worker.status.cert is not None and worker.status.cert.expiring
    # The city's receiver (certificate hub-…) reads the retained status.
    hub = pki.client("hub-1")
    got: list[bytes] = []
    city_client = paho.Client(CallbackAPIVersion.VERSION2, client_id="hub-1")
    city_client.tls_set(ca_certs=str(pki.ca.cert_path), certfile=str(hub.cert),
                        keyfile=str(hub.key))  # fmt: skip
    city_client.on_connect = lambda c, *a: c.subscribe(f"hcp/v1/{DEVICE}/status", qos=1)
    city_client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    city_client.connect(city.host, city.port)
    city_client.loop_start()
    try:
        wait_until(lambda: bool(got), 10, "the retained status at the city")
        status = json.loads(got[-1])
        assert_valid(schema("status"), status)
        assert status["tls_cert"]["expiring"] is True and status["tls_cert"]["days_left"] == 9
        assert status["link_error"] is None  # it connected at once
    finally:
        city_client.disconnect()
        city_client.loop_stop()


def test_the_certificate_check_reads_expired_and_unreadable_files(
    pki: CityPki, tmp_path: Path
) -> None:
    from sync.certexpiry import check_certificate

    old = broker_cert(pki, tmp_path / "old", days=(-60, -3))
    state = check_certificate(old.cert, warn_days=30)
    assert state.expiring and state.days_left in (-3, -4) and not state.problem
    fine = broker_cert(pki, tmp_path / "fine", days=(-1, 100))
    assert not check_certificate(fine.cert, warn_days=30).expiring
    missing = check_certificate(tmp_path / "nowhere.crt", warn_days=30)
    assert missing.problem and str(tmp_path / "nowhere.crt") in missing.problem
    assert not missing.expiring


def test_our_own_tls_files_that_cannot_be_used(
    make: Callable[..., SyncWorker], lines: LogLines, pki: CityPki, tmp_path: Path
) -> None:
    missing = Identity(DEVICE, tmp_path / "nowhere.crt", tmp_path / "nowhere.key", pki.ca.cert_path)
    worker = make(brokers=[f"mqtts://127.0.0.1:{free_port()}"],
                  **tls_options(missing, pki.ca.cert_path))  # fmt: skip
    assert_told(
        worker,
        lines,
        "tls_files",
        "our TLS files cannot be used",
        f"tls_cert {tmp_path / 'nowhere.crt'}",
    )  # the path, never a key


# --- a connection that worked and ended (found by review) ----------------------------------------


def test_a_flapping_link_is_one_line_a_minute_not_one_per_connection() -> None:
    """Up 2 s, down, up again, for ten minutes: each failure and each recovery was told at once
    (the counts were cleared by every connection), 300 warnings an hour."""
    failures = FailureLog(every=60.0)
    url = "mqtt://127.0.0.1:1883"
    refused = LinkError("refused", "connection refused")
    kicked = LinkError(
        "closed", "the broker ended the connection: DISCONNECT 0x8E Session taken over"
    )
    told = []
    for turn in range(100):  # every 6 s: refused, connected, kicked 2 s later
        t = turn * 6.0
        told.append(failures.failed(refused, url, t, 1000.0 + t))
        told.append(failures.connected(url, t + 1, 1001.0 + t))
        told.append(failures.dropped(kicked, url, t + 3, 1003.0 + t))
    lines = [line for line in told if line is not None]
    assert len(lines) <= 3 * 11, lines  # each kind at most once a minute over 600 s
    assert any("(9 more times since" in line for line in lines), lines
    assert any("lost: the broker ended the connection: DISCONNECT 0x8E" in line for line in lines)
    # another reason of the broker's within the minute: news, told at once
    banned = LinkError("closed", "the broker ended the connection: DISCONNECT 0x87 Not authorized")
    assert failures.dropped(banned, url, 600.5, 1600.5) is not None
    assert failures.current is not None and "0x87" in failures.current.words
    # a connection that held a minute or more: the next failure is news, told at once
    failures.connected(url, 1000.0, 2000.0)
    assert (
        failures.failed(refused, url, 1061.0, 2061.0)
        == f"cannot connect to {url}: connection refused"
    )


def test_a_session_taken_over_is_told_once_not_per_kick(
    make: Callable[..., SyncWorker], lines: LogLines, broker: Broker
) -> None:
    """Another client with the pad's id (a second pad provisioned with the same name) takes the
    session over, again and again: each kick was a WARNING 'connection lost (socket closed)',
    no cause and no rate limit.  mosquitto 2.0 closes the socket without a DISCONNECT."""
    import paho.mqtt.client as paho

    worker = make(brokers=[f"mqtt://127.0.0.1:{broker.port}"], reconnect_min=0.05,
                  reconnect_max=0.05)  # fmt: skip
    wait_until(lambda: worker.status.connected, 10, "the worker to connect")
    for _ in range(5):
        intruder = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=worker.client_id,
                               protocol=paho.MQTTv5)  # fmt: skip
        intruder.connect("127.0.0.1", broker.port)
        intruder.loop_start()
        try:
            wait_until(lambda c=intruder: c.is_connected(), 10, "the intruder's CONNACK")
            wait_until(lambda: not worker.status.connected, 10, "the pad kicked")
        finally:
            intruder.loop_stop()
            intruder.disconnect()
        wait_until(lambda: worker.status.connected, 10, "the pad back")
    kicks = [m for m in lines.messages() if "lost" in m]
    assert len(kicks) == 1, kicks
    url = f"mqtt://127.0.0.1:{broker.port}"
    link = worker.status.link  # the city sees the drops counted, and the last recovery
    assert link is not None and link.cause == "closed" and link.count == 5 and link.until
    assert f"connection to {url} lost: the broker or the network closed" in kicks[0]


def test_a_disconnect_from_the_broker_is_told_with_its_reason_code(
    make: Callable[..., SyncWorker], lines: LogLines
) -> None:
    """An MQTT 5 broker that ends the session with a DISCONNECT names why (0x8E Session taken
    over, 0x87 Not authorized, ...): the line and the status say it."""
    server = Refusing(b"\x20\x03\x00\x00\x00" + b"\xe0\x02\x8e\x00")  # CONNACK ok, DISCONNECT
    try:
        worker = make(brokers=[f"mqtt://127.0.0.1:{server.port}"])
        line = lines.wait_for("lost", "DISCONNECT 0x8E Session taken over")
        assert line.startswith(f"MQTT connection to mqtt://127.0.0.1:{server.port} lost: ")
        wait_until(lambda: "0x8E" in worker.status.last_error, 10, "the status' last error")
        link = worker.status.link  # the retained status's link_error and the menu
        assert (
            link is not None and link.cause == "closed" and "0x8E Session taken over" in link.words
        )
    finally:
        server.close()


def test_a_certificate_renewed_while_running_is_used_without_a_restart(
    make: Callable[..., SyncWorker], lines: LogLines, city: TlsBroker, pki: CityPki, tmp_path: Path
) -> None:
    """The broker refuses the pad's certificate (expired, revoked, another CA's); the
    technician puts the new one at tls_cert and tls_key.  paho's TLS context had loaded the
    files once, for the only broker URL: the pad kept showing the old certificate, refused for
    ever, until someone restarted it. (found by review)"""
    stranger = CityPki(tmp_path / "stranger").client(DEVICE)
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copyfile(stranger.cert, mine / "device.crt")
    shutil.copyfile(stranger.key, mine / "device.key")
    installed = Identity(DEVICE, mine / "device.crt", mine / "device.key", pki.ca.cert_path)
    worker = make(brokers=[f"mqtts://127.0.0.1:{city.port}"],
                  **tls_options(installed, pki.ca.cert_path))  # fmt: skip
    assert_told(worker, lines, "cert_refused", "refused our client certificate")
    renewed = pki.client(DEVICE)
    shutil.copyfile(renewed.key, mine / "device.key")
    shutil.copyfile(renewed.cert, mine / "device.crt")
    wait_until(lambda: worker.status.connected, 15, "the pad to connect with the new certificate")


def test_a_renewed_certificate_ends_the_fault_within_a_look_not_a_day(
    make: Callable[..., SyncWorker], pki: CityPki, tmp_path: Path
) -> None:
    """The expiry was checked at the start and once a day: a certificate renewed on a running
    pad stayed 'expiring' (status fault, menu, the city) for up to 24 h. (found by review)"""
    key = tlscerts.create_tls_key(tmp_path / "device.key")
    cert = tmp_path / "device.crt"
    cert.write_bytes(tlscerts.sign_csr(tlscerts.make_csr(key, DEVICE), pki.ca, days=10))
    installed = Identity(DEVICE, cert, tmp_path / "device.key", pki.ca.cert_path)
    worker = make(brokers=[f"mqtts://127.0.0.1:{free_port()}"], cert_peek_every=0.1,
                  **tls_options(installed, pki.ca.cert_path))  # fmt: skip
    wait_until(lambda: worker.status.cert is not None and worker.status.cert.expiring, 10,
               "the expiring certificate")  # fmt: skip
    cert.write_bytes(tlscerts.sign_csr(tlscerts.make_csr(key, DEVICE), pki.ca, days=400))
    wait_until(lambda: not worker.status.cert.expiring, 10, "the renewal seen")
    assert worker.status.cert.days_left >= 398


def test_a_wall_clock_set_by_ntp_checks_the_certificate_again(
    pki: CityPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Pi without a battery clock boots in 1970: the check finds 20,000 days left, and the
    next was a day later, whatever NTP did meanwhile; a certificate 10 days from its end was
    no fault for that day. (found by review)"""
    import time

    key = tlscerts.create_tls_key(tmp_path / "device.key")
    cert = tmp_path / "device.crt"
    cert.write_bytes(tlscerts.sign_csr(tlscerts.make_csr(key, DEVICE), pki.ca, days=10))
    installed = Identity(DEVICE, cert, tmp_path / "device.key", pki.ca.cert_path)
    worker = SyncWorker(
        store_path=tmp_path / "r.db", device_id=DEVICE, host="127.0.0.1", port=1,
        brokers=[f"mqtts://127.0.0.1:{free_port()}"], cert_peek_every=60.0,
        **tls_options(installed, pki.ca.cert_path),
    )  # fmt: skip
    real = time.time
    with monkeypatch.context() as patch:  # the worker is not started: only this thread's clock
        patch.setattr(time, "time", lambda: real() - 56 * 365 * 86400.0)
        worker._maybe_check_cert(1000.0)
    assert worker.status.cert is not None and not worker.status.cert.expiring
    worker._maybe_check_cert(1030.0)  # within the look: nothing
    assert not worker.status.cert.expiring
    worker._maybe_check_cert(1061.0)  # the look after NTP set the clock: checked again
    assert worker.status.cert.expiring and worker.status.cert.days_left in (9, 10)


def test_each_broker_of_several_is_told_and_then_counted(
    make: Callable[..., SyncWorker], lines: LogLines, silent: Silent
) -> None:
    """[mqtt] urls tried in turn: the rate limit is per broker and cause, so a broker that
    fails like another is not hidden behind it, and neither floods."""
    refused = f"mqtt://127.0.0.1:{free_port()}"
    also_refused = f"mqtt://127.0.0.1:{free_port()}"
    mute = f"mqtt://127.0.0.1:{silent.port}"
    worker = make(brokers=[refused, also_refused, mute], reconnect_min=0.05, reconnect_max=0.05)
    lines.wait_for(f"cannot connect to {refused}: connection refused")
    lines.wait_for(f"cannot connect to {also_refused}: connection refused")
    lines.wait_for(f"cannot connect to {mute}: ", "no CONNACK")
    rounds = worker._failures._failures  # attempts since the last connection
    wait_until(lambda: worker._failures._failures >= rounds + 6, 20, "two more rounds")
    told = [m for m in lines.messages() if "cannot connect" in m]
    assert len(told) == 3, told
