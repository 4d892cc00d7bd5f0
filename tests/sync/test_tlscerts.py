"""The city's CA, a pad's TLS key and request, and signing (sync/tlscerts.py).

Checked with the ``cryptography`` X.509 API and with OpenSSL itself through :mod:`ssl`: a
certificate signed here must complete a real TLS handshake against its CA, and one from another
CA must not.  (That the broker takes the CN as user name and client id is proven on a real
mosquitto in tests/test_broker_security.py.)
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from sync import tlscerts as t


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def issue(ca: t.CertificateAuthority, folder: Path, cn: str, **kwargs: object) -> Path:
    key = t.create_tls_key(folder / f"{cn}.key")
    cert = folder / f"{cn}.crt"
    cert.write_bytes(t.sign_csr(t.make_csr(key, cn), ca, **kwargs))  # type: ignore[arg-type]
    return cert


def test_the_key_is_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "tls" / "device.key"
    old = os.umask(0)  # whatever the umask, the key is 0600 and its folder 0700
    try:
        key, created = t.load_or_create_tls_key(path)
    finally:
        os.umask(old)
    assert created and mode(path) == 0o600 and mode(path.parent) == 0o700
    before = path.read_bytes()
    again, created = t.load_or_create_tls_key(path)
    assert not created and path.read_bytes() == before
    assert again.private_numbers() == key.private_numbers()
    with pytest.raises(t.TlsCertError, match="never overwritten"):
        t.create_tls_key(path)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["device.key"]  # no temporary left


def test_a_key_readable_by_others_or_not_a_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    t.create_tls_key(path)
    path.chmod(0o644)
    with pytest.raises(t.TlsCertError, match="chmod 600"):
        t.load_tls_key(path)
    with pytest.raises(t.TlsCertError, match="chmod 600"):
        t.load_or_create_tls_key(path)  # an existing bad key is never replaced
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"not a key")
    junk.chmod(0o600)
    with pytest.raises(t.TlsCertError, match="not a TLS key"):
        t.load_tls_key(junk)
    with pytest.raises(t.TlsCertError, match="tls csr"):
        t.load_tls_key(tmp_path / "missing.key")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(t.TlsCertError, match="not a regular file"):
        t.load_tls_key(tmp_path / "fifo")


def test_a_request_carries_the_device_id_and_is_signed_by_its_key(tmp_path: Path) -> None:
    key = t.create_tls_key(tmp_path / "k")
    csr_pem = t.make_csr(key, "440500-hall1-w12")
    assert csr_pem.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    assert t.csr_common_name(csr_pem) == "440500-hall1-w12"
    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


@pytest.mark.parametrize("name", ["", "pad/a", "pad+", "#", "a" * 65, "pad a", "中文"])
def test_names_that_would_reach_other_topics_are_refused(tmp_path: Path, name: str) -> None:
    key = t.create_tls_key(tmp_path / "k")
    with pytest.raises(t.TlsCertError, match="expected 1 to 64"):
        t.make_csr(key, name)


def test_the_ca_is_made_once(tmp_path: Path) -> None:
    ca = t.make_ca(tmp_path / "ca")
    assert mode(tmp_path / "ca" / t.CA_KEY_NAME) == 0o600
    assert mode(tmp_path / "ca" / t.CA_CERT_NAME) == 0o644
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key_before = (tmp_path / "ca" / t.CA_KEY_NAME).read_bytes()
    with pytest.raises(t.TlsCertError, match="never overwritten"):
        t.make_ca(tmp_path / "ca")
    assert (tmp_path / "ca" / t.CA_KEY_NAME).read_bytes() == key_before
    loaded = t.load_ca(tmp_path / "ca")
    assert loaded.cert == ca.cert
    assert "PRIVATE" not in repr(loaded) and str(tmp_path) in repr(loaded)


def test_a_ca_whose_key_and_certificate_differ_is_refused(tmp_path: Path) -> None:
    t.make_ca(tmp_path / "one")
    t.make_ca(tmp_path / "two")
    (tmp_path / "one" / t.CA_CERT_NAME).write_bytes(
        (tmp_path / "two" / t.CA_CERT_NAME).read_bytes()
    )
    with pytest.raises(t.TlsCertError, match="do not belong together"):
        t.load_ca(tmp_path / "one")
    with pytest.raises(t.TlsCertError, match="evaluator tls ca"):
        (tmp_path / "two" / t.CA_CERT_NAME).unlink()
        t.load_ca(tmp_path / "two")


def test_a_pad_certificate_is_a_client_certificate_for_its_device_id(tmp_path: Path) -> None:
    ca = t.make_ca(tmp_path / "ca")
    key = t.create_tls_key(tmp_path / "pad.key")
    before = datetime.datetime.now(datetime.UTC)
    pem = t.sign_csr(t.make_csr(key, "pad-a"), ca)
    cert = x509.load_pem_x509_certificate(pem)
    assert t.cert_common_name(pem) == "pad-a"
    assert cert.issuer == ca.cert.subject
    cert.verify_directly_issued_by(ca.cert)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # valid from a day back (a Pi booting with yesterday's clock), for CLIENT_DAYS
    assert cert.not_valid_before_utc <= before - t.BACKDATE + datetime.timedelta(seconds=5)
    days = (cert.not_valid_after_utc - before).days
    assert t.CLIENT_DAYS - 1 <= days <= t.CLIENT_DAYS


def test_receiver_names_are_only_signed_as_receivers(tmp_path: Path) -> None:
    ca = t.make_ca(tmp_path / "ca")
    key = t.create_tls_key(tmp_path / "k")
    with pytest.raises(t.TlsCertError, match="receiver's name"):
        t.sign_csr(t.make_csr(key, "hub-1"), ca)
    with pytest.raises(t.TlsCertError, match="starts with 'hub-'"):
        t.sign_csr(t.make_csr(key, "pad-a"), ca, receiver=True)
    assert t.cert_common_name(t.sign_csr(t.make_csr(key, "hub-1"), ca, receiver=True)) == "hub-1"


def test_a_damaged_request_is_refused(tmp_path: Path) -> None:
    ca = t.make_ca(tmp_path / "ca")
    with pytest.raises(t.TlsCertError, match="not a PEM certificate request"):
        t.sign_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END", ca)


def _handshake(ca_file: Path, server: tuple[Path, Path], client: tuple[Path, Path]) -> str:
    """One TLS handshake over a socket pair: ``"ok"``, or the error of the failing side."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*server)
    server_ctx.load_verify_locations(ca_file)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(ca_file)
    client_ctx.load_cert_chain(*client)
    a, b = socket.socketpair()
    result: dict[str, str] = {}

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                s.sendall(s.getpeercert()["subject"][0][0][1].encode())  # type: ignore[index]
        except (ssl.SSLError, OSError) as exc:
            result["server"] = str(exc)
            a.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname="localhost") as s:
            result["cn"] = s.recv(100).decode()
    except (ssl.SSLError, OSError) as exc:
        result["client"] = str(exc)
    thread.join(10)
    return result.get("server") or result.get("client") or result["cn"]


def test_openssl_accepts_what_the_ca_signed_and_refuses_another_ca(tmp_path: Path) -> None:
    ca = t.make_ca(tmp_path / "ca")
    server_cert = issue(ca, tmp_path, "broker", server_names=("localhost", "127.0.0.1"))
    server = (server_cert, tmp_path / "broker.key")
    pad = (issue(ca, tmp_path, "pad-a"), tmp_path / "pad-a.key")
    assert _handshake(ca.cert_path, server, pad) == "pad-a"  # the CN the broker sees
    other = t.make_ca(tmp_path / "other")
    (tmp_path / "x").mkdir()
    intruder = (issue(other, tmp_path / "x", "pad-a"), tmp_path / "x" / "pad-a.key")
    assert "certificate" in _handshake(ca.cert_path, server, intruder).lower()
    san = x509.load_pem_x509_certificate(server_cert.read_bytes()).extensions
    names = san.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]


# --------------------------------------------------------------------------- revocation (issue 14)


def _openssl_verify(ca: t.CertificateAuthority, cert: Path) -> tuple[int, str]:
    """``openssl verify`` with the CA's CRL checked, as the broker's OpenSSL checks a pad."""
    import subprocess

    done = subprocess.run(
        ["openssl", "verify", "-crl_check", "-CAfile", str(ca.cert_path),
         "-CRLfile", str(ca.folder / t.CRL_NAME), str(cert)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_a_new_ca_has_an_empty_signed_crl_and_an_index(tmp_path: Path) -> None:
    ca = t.make_ca(tmp_path / "ca")
    crl = x509.load_pem_x509_crl((ca.folder / t.CRL_NAME).read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    assert len(crl) == 0
    assert crl.next_update_utc == ca.cert.not_valid_after_utc  # never expires before the CA
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    assert t.issued(ca.folder) == []
    cert = issue(ca, tmp_path, "pad-1")
    (entry,) = t.issued(ca.folder)
    serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    assert (entry.serial, entry.cn, entry.revoked_at) == (serial, "pad-1", None)
    assert _openssl_verify(ca, cert)[0] == 0  # an empty CRL lets every certificate through


def test_revoking_a_name_lists_every_certificate_of_it_and_openssl_refuses_them(
    tmp_path: Path,
) -> None:
    ca = t.make_ca(tmp_path / "ca")
    first = issue(ca, tmp_path / "a", "pad-1")
    renewed = issue(ca, tmp_path / "b", "pad-1")  # a renewal: both must go
    other = issue(ca, tmp_path, "pad-2")
    done = t.revoke(ca, "pad-1")
    assert [e.cn for e in done] == ["pad-1", "pad-1"]
    crl = x509.load_pem_x509_crl((ca.folder / t.CRL_NAME).read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    assert {r.serial_number for r in crl} == {e.serial for e in done}
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    for cert in (first, renewed):
        code, out = _openssl_verify(ca, cert)
        assert code != 0 and "certificate revoked" in out, out
    assert _openssl_verify(ca, other)[0] == 0
    assert t.revoke(ca, "pad-1") == []  # again: nothing new, the list written again
    crl = x509.load_pem_x509_crl((ca.folder / t.CRL_NAME).read_bytes())
    assert len(crl) == 2


def test_a_serial_is_revoked_even_when_the_index_does_not_know_it(tmp_path: Path) -> None:
    """A CA made before the index was kept: its certificates are revoked by serial."""
    ca = t.make_ca(tmp_path / "ca")
    cert = issue(ca, tmp_path, "pad-1")
    (ca.folder / t.CA_INDEX_NAME).unlink()
    (ca.folder / t.CRL_NAME).unlink()
    serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    (done,) = t.revoke(ca, f"{serial:x}")  # lower case, as some tools print it
    assert done.serial == serial and done.cn == ""
    assert "certificate revoked" in _openssl_verify(ca, cert)[1]


def test_revoking_a_name_the_ca_never_signed_says_what_it_signed(tmp_path: Path) -> None:
    ca = t.make_ca(tmp_path / "ca")
    issue(ca, tmp_path, "pad-1")
    with pytest.raises(t.TlsCertError, match=r"never signed a certificate for 'pad-x'.*pad-1"):
        t.revoke(ca, "pad-x")


def test_a_ca_made_before_crls_were_kept_gets_an_empty_one_at_its_next_signing(
    tmp_path: Path,
) -> None:
    ca = t.make_ca(tmp_path / "ca")
    (ca.folder / t.CA_INDEX_NAME).unlink()
    (ca.folder / t.CRL_NAME).unlink()  # as `tls ca` left a CA folder before issue 14
    cert = issue(ca, tmp_path, "pad-1")
    crl = x509.load_pem_x509_crl((ca.folder / t.CRL_NAME).read_bytes())
    assert len(crl) == 0 and [e.cn for e in t.issued(ca.folder)] == ["pad-1"]
    assert _openssl_verify(ca, cert)[0] == 0


def test_one_key_is_never_signed_for_two_names(tmp_path: Path) -> None:
    """A cloned SD card (or a bundle copied for the next pad) carries pad-1's TLS key: a
    certificate for pad-2 on it would let whoever holds pad-1 connect as pad-2 too."""
    ca = t.make_ca(tmp_path / "ca")
    key = t.create_tls_key(tmp_path / "pad-1.key")
    t.sign_csr(t.make_csr(key, "pad-1"), ca)
    with pytest.raises(t.TlsCertError, match=r"already has certificate [0-9A-F]+ for 'pad-1': "
                       r"not signed for 'pad-2' \(one key, one name"):  # fmt: skip
        t.sign_csr(t.make_csr(key, "pad-2"), ca)
    with pytest.raises(t.TlsCertError, match="one key, one name"):
        t.sign_csr(t.make_csr(key, "hub-1"), ca, receiver=True)
    assert [e.cn for e in t.issued(ca.folder)] == ["pad-1"]
    t.sign_csr(t.make_csr(key, "pad-1"), ca)  # its own name again: a renewal
    assert [e.cn for e in t.issued(ca.folder)] == ["pad-1", "pad-1"]
    # two brokers of a cluster may share a key (no client identity); no pad gets it then
    broker = t.create_tls_key(tmp_path / "broker.key")
    for name in ("mqtt1.city.example", "mqtt2.city.example"):
        t.sign_csr(t.make_csr(broker, name), ca, server_names=(name,))
    with pytest.raises(t.TlsCertError, match="one key, one name"):
        t.sign_csr(t.make_csr(broker, "pad-3"), ca)


_SIGNER = """
import sys
from pathlib import Path
from sync import tlscerts as t
ca = t.load_ca(sys.argv[1])
folder, name, n = Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
sys.stdin.readline()  # both start together
for i in range(n):
    key = t.create_tls_key(folder / f"{name}-{i}.key")
    t.sign_csr(t.make_csr(key, f"{name}-{i}"), ca)
    if i % 5 == 0:
        t.revoke(ca, f"{name}-{i}")
"""


def test_two_cities_signing_at_once_lose_no_certificate_of_the_index(tmp_path: Path) -> None:
    """Two `tls sign-batch` (or a sign-batch and a revoke) on one CA folder at the same time:
    each read, added to and rewrote index.json; one's certificates vanished from it, and a
    certificate missing from the index is not revoked by its name (a stolen pad stays in)."""
    import subprocess
    import sys

    ca = t.make_ca(tmp_path / "ca")
    n = 40
    procs = [subprocess.Popen([sys.executable, "-c", _SIGNER, str(ca.folder), str(tmp_path),
                               name, str(n)], stdin=subprocess.PIPE, text=True)
             for name in ("a", "b")]  # fmt: skip
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    entries = t.issued(ca.folder)
    assert sorted(e.cn for e in entries) == sorted(f"{x}-{i}" for x in "ab" for i in range(n))
    revoked = {e.serial for e in entries if e.revoked_at}
    assert len(revoked) == 2 * len(range(0, n, 5))
    crl = x509.load_pem_x509_crl((ca.folder / t.CRL_NAME).read_bytes())
    assert {r.serial_number for r in crl} == revoked


def _request(key: object, cn: str) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization

    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
            .sign(key, hashes.SHA256())  # type: ignore[arg-type]
            .public_bytes(serialization.Encoding.PEM))  # fmt: skip


def test_a_key_too_weak_for_openssl_is_not_signed(tmp_path: Path) -> None:
    """The city signed a request of a 1024-bit RSA key: the pad's own OpenSSL refused to load
    the certificate ("ee key too small") and the broker would refuse it too."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    ca = t.make_ca(tmp_path / "ca")
    with pytest.raises(t.TlsCertError, match=r"RSA of 1024 bits \(OpenSSL refuses RSA under "
                       r"2048\).*make an ECDSA P-256 key"):  # fmt: skip
        t.sign_csr(_request(rsa.generate_private_key(65537, 1024), "pad-w"), ca)
    with pytest.raises(t.TlsCertError, match=r"EC on secp192r1"):
        t.sign_csr(_request(t.ec.generate_private_key(t.ec.SECP192R1()), "pad-w"), ca)
    assert t.issued(ca.folder) == []
    # the smallest accepted key is one OpenSSL takes: a real client context loads it
    key = rsa.generate_private_key(65537, 2048)
    (tmp_path / "pad.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    (tmp_path / "pad.crt").write_bytes(t.sign_csr(_request(key, "pad-r"), ca))
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(tmp_path / "pad.crt",
                                                            tmp_path / "pad.key")  # fmt: skip


def test_a_mistyped_pad_that_reads_as_hex_is_not_revoked_as_a_serial(tmp_path: Path) -> None:
    """`tls revoke 440500 --ca …` (a pad named by digits, or the wrong CA folder): the index
    knows no such name, and the text read as hex became a 'serial not in the index', so a
    made-up serial went into the CRL, it printed 'revoked' and the pad stayed in."""
    ca = t.make_ca(tmp_path / "ca")
    issue(ca, tmp_path, "pad-1")
    crl_before = (ca.folder / t.CRL_NAME).read_bytes()
    for typed in ("440500", "deadbeef", "DE:AD:BE:EF"):
        why = rf"for '{typed}' and it is no serial this CA made .* it signed for: pad-1"
        with pytest.raises(t.TlsCertError, match=why):
            t.revoke(ca, typed)
    assert (ca.folder / t.CRL_NAME).read_bytes() == crl_before
    assert [e.cn for e in t.issued(ca.folder)] == ["pad-1"]
    (done,) = t.revoke(ca, "0x440500")  # written as a serial: taken as one
    assert done.serial == 0x440500


@pytest.mark.parametrize("damage", [
    lambda d: d["certificates"].append("pad-2"),
    lambda d: d["certificates"][0].update(serial=None),
    lambda d: d["certificates"][0].update(serial="zz"),
    lambda d: d["certificates"][0].pop("cn"),
    lambda d: d.update(crl_number="7"),
], ids=["not-an-entry", "no-serial", "bad-serial", "no-cn", "crl-number"])  # fmt: skip
def test_a_damaged_index_is_one_error_for_sign_revoke_and_the_crl(
    tmp_path: Path, damage: object
) -> None:
    """A hand-edited index.json: `tls sign`, `revoke` ended in an AttributeError or
    ValueError traceback instead of naming the file."""
    import json

    ca = t.make_ca(tmp_path / "ca")
    issue(ca, tmp_path, "pad-1")
    path = ca.folder / t.CA_INDEX_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    damage(data)  # type: ignore[operator]
    path.write_text(json.dumps(data), encoding="utf-8")
    key = t.create_tls_key(tmp_path / "pad-2.key")
    for attempt in (lambda: t.sign_csr(t.make_csr(key, "pad-2"), ca),
                    lambda: t.revoke(ca, "pad-1"), lambda: t.write_crl(ca)):  # fmt: skip
        with pytest.raises(t.TlsCertError, match=rf"{path}: .*(damaged|no number)"):
            attempt()
    assert json.loads(path.read_text(encoding="utf-8")) == data  # left as it was


def test_validity_is_at_least_a_day_and_never_past_the_cas_end(tmp_path: Path) -> None:
    """`tls sign --days -5` signed a certificate that had ended before it was made, and a CA
    near its end signed certificates "valid" for years after it (nothing verifies them then)."""
    ca = t.make_ca(tmp_path / "ca", days=30)
    key = t.create_tls_key(tmp_path / "pad.key")
    for days in (0, -5):
        with pytest.raises(t.TlsCertError, match=rf"--days {days}: a certificate is valid 1 day"):
            t.sign_csr(t.make_csr(key, "pad-1"), ca, days=days)
    assert t.issued(ca.folder) == []
    cert = x509.load_pem_x509_certificate(t.sign_csr(t.make_csr(key, "pad-1"), ca))  # 825 days
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc
