"""TLS certificates for the broker link: the city's CA, a pad's TLS key and request, signing.

Why per-device client certificates: the broker (``config/mosquitto/``) takes the certificate's
common name (CN) as the user name *and* the client id, and its ACL lets user ``X`` write only
``{prefix}/X/…`` and read only ``{prefix}/X/acks`` and ``…/commands``.  So the CN must be the
device id, and only the city (who holds the CA key) decides which names exist.

Roles, all PEM:

- The **city** makes a CA once (:func:`make_ca`: ``ca.crt`` for everyone, ``ca.key`` 0600 for
  nobody else), signs each pad's request (:func:`sign_csr`), and signs the broker's own
  certificate (``server_names``: the host names the pads dial) and each receiver's (CN
  ``hub-…``, the names the ACL lists as receivers).
- The **pad** makes its TLS private key (:func:`load_or_create_tls_key`: ECDSA P-256, 0600,
  never overwritten, never printed, like the device's signing key in :mod:`sync.keys`) and a
  request whose CN is its device id (:func:`make_csr`).  The key never leaves the pad; only the
  request goes to the city.

Why ECDSA P-256 and not Ed25519 (the signing key's type): every TLS stack a city broker runs
(mosquitto with OpenSSL 1.1, EMQX, HiveMQ, cloud IoT brokers) accepts P-256 client certificates;
Ed25519 in X.509 is not universal yet.  The TLS key is a second key on purpose: the signing key
proves a record, the TLS key only opens the connection, and either can be replaced alone.

Validity starts a day before the moment of signing: a Pi has no battery clock, and one that
boots with yesterday's time (fake-hwclock) must not find a fresh certificate "not yet valid".

Revocation needs no OpenSSL CA database: a CA folder keeps ``index.json`` (every certificate it
signed: serial, CN, end of validity, and when it was revoked; the CRL's number) and ``crl.pem``
(the certificate revocation list, signed by the CA, empty from :func:`make_ca` on so a broker
configured with ``crlfile`` starts before any revocation).  :func:`sign_csr` records each
certificate, :func:`revoke` lists a CN's certificates (or one serial) and writes the next CRL.
The CRL is valid until the CA itself ends (:data:`CRL_DAYS`): the broker reads a local file,
and an expired CRL would make OpenSSL refuse every pad.  Signing and revoking lock the CA folder
(``flock``) while they read and rewrite the index, so two runs at once lose nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evaluator.rules.deviceid import DEVICE_ID_RE, RECEIVER_PREFIX, device_id_problem
from evaluator.rules.errors import EvaluatorError
from sync.secretfile import read_secret, write_file

__all__ = [
    "BACKDATE",
    "CA_CERT_NAME",
    "CA_INDEX_NAME",
    "CA_KEY_NAME",
    "CLIENT_DAYS",
    "CRL_NAME",
    "RECEIVER_PREFIX",
    "CertificateAuthority",
    "Issued",
    "TlsCertError",
    "cert_common_name",
    "certificate_problem",
    "create_tls_key",
    "csr_common_name",
    "issued",
    "load_ca",
    "load_certificate",
    "load_or_create_tls_key",
    "load_tls_key",
    "make_ca",
    "make_csr",
    "pair_problem",
    "revoke",
    "sign_csr",
    "write_crl",
    "write_public",
]

#: File names inside a CA folder (``evaluator tls ca --out DIR``).
CA_CERT_NAME = "ca.crt"
CA_KEY_NAME = "ca.key"
#: What revocation needs, in the CA folder: every signed certificate, and the list of revoked.
CA_INDEX_NAME = "index.json"
CRL_NAME = "crl.pem"
#: How long a CA, a client and a server certificate are valid (days).  825 days is the longest
#: server certificate common TLS clients accept; client certificates use the same.
CA_DAYS = 3650
CLIENT_DAYS = 825
#: Certificates are valid from this long before signing (a Pi that boots with an old clock).
BACKDATE = datetime.timedelta(days=1)
#: A PEM P-256 private key is about 240 bytes; anything much larger is not one.
KEY_FILE_MAX = 8192
#: A name the broker may take as a user name and put into topics through the ACL's ``%u``:
#: the device id's characters (no ``/``, ``+``, ``#``, which would reach other pads' topics).
_NAME = DEVICE_ID_RE
NAME_EXPECTED = "1 to 64 letters, digits, '.', '_' or '-' (the ACL puts it into topics)"


class TlsCertError(EvaluatorError):
    """A TLS key, request, certificate or CA cannot be made, read or used; the message says why
    and what to do."""


@dataclass(frozen=True)
class Issued:
    """One certificate a CA signed, as its index keeps it."""

    serial: int
    cn: str
    not_after: str
    revoked_at: str | None = None

    @property
    def serial_hex(self) -> str:
        return f"{self.serial:X}"


@dataclass(frozen=True)
class CertificateAuthority:
    """The city's CA: its certificate and private key, loaded from a CA folder."""

    folder: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_path(self) -> Path:
        return self.folder / CA_CERT_NAME

    def __repr__(self) -> str:  # never the key
        return f"CertificateAuthority({self.folder}, {self.cert.subject.rfc4514_string()})"


# --------------------------------------------------------------------------- private key files


def _write(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
    """``data`` written whole to ``path`` (``mode`` whatever the umask; the folder made 0700 for
    a key, else as the umask says): never a cut file, and a key never overwritten
    (``replace=False``)."""
    try:
        path.parent.mkdir(mode=0o777 if replace else 0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise TlsCertError(f"cannot create the folder {path.parent}: {exc}") from exc
    try:
        write_file(path, data, mode, replace=replace)
    except FileExistsError as exc:
        raise TlsCertError(
            f"{path} already exists and is never overwritten; move it away first if it really "
            "must be replaced"
        ) from exc
    except OSError as exc:
        raise TlsCertError(f"cannot write {path}: {exc}") from exc


def write_public(path: Path | str, data: bytes) -> None:
    """A public file (request, certificate) written whole (mode 0644), replacing an older one:
    a request or a certificate may be made again, unlike a key."""
    _write(Path(path), data, 0o644, replace=True)


def _pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def create_tls_key(path: Path | str) -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key written to ``path`` (0600, folder 0700); never overwrites."""
    key = ec.generate_private_key(ec.SECP256R1())
    _write(Path(path), _pem_private(key), 0o600, replace=False)
    return key


def load_tls_key(path: Path | str) -> ec.EllipticCurvePrivateKey:
    """The TLS key at ``path``; refused when missing, not a regular file, readable by others
    than its owner (the broker trusts whoever holds it), or not an EC key."""
    path = Path(path)
    data = read_secret(
        path,
        what="TLS key",
        missing="create it with `evaluator tls csr --config …`",
        max_size=KEY_FILE_MAX,
        error=TlsCertError,
    )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsCertError(f"{path} is not a TLS key (PEM, unencrypted)") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsCertError(f"{path} is not an EC (ECDSA) key")
    return key


def load_or_create_tls_key(path: Path | str) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    """The TLS key at ``path``, created when there is none; ``(key, created)``."""
    try:
        return load_tls_key(path), False
    except TlsCertError:
        if Path(path).exists():
            raise
    return create_tls_key(path), True


# --------------------------------------------------------------------------- names


def check_name(name: str) -> str:
    """``name`` when the broker may use it as a user name and a topic level, else an error."""
    if not _NAME.fullmatch(name):
        raise TlsCertError(f"common name {name!r}: expected {NAME_EXPECTED}")
    return name


def _common_name(subject: x509.Name, what: str) -> str:
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise TlsCertError(f"the {what} has {len(names)} common names (CN); expected one")
    value = names[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def csr_common_name(csr_pem: bytes) -> str:
    """The CN a certificate request asks for."""
    return _common_name(_load_csr(csr_pem).subject, "request")


def cert_common_name(cert_pem: bytes) -> str:
    """The CN of a certificate (what the broker will take as user name and client id)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        raise TlsCertError(f"not a PEM certificate: {exc}") from exc
    return _common_name(cert.subject, "certificate")


def load_certificate(path: Path | str) -> x509.Certificate:
    """The PEM certificate at ``path`` (the first one of a chain file)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise TlsCertError(f"file not found: {path}") from exc
    except OSError as exc:
        raise TlsCertError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise TlsCertError(f"not a PEM certificate: {path}") from exc


def certificate_problem(
    cert: x509.Certificate, *, device_id: str, now: datetime.datetime | None = None
) -> str | None:
    """Why a pad cannot connect with ``cert``, or None: expired, not yet valid, or made out to
    another name than ``device_id`` (the broker would take that name for the pad's)."""
    now = now or datetime.datetime.now(datetime.UTC)
    if now > cert.not_valid_after_utc:
        expired = f"{cert.not_valid_after_utc:%Y-%m-%d}"
        return f"the certificate expired on {expired}: ask the city for a new one"
    if now < cert.not_valid_before_utc:
        return (
            f"the certificate is valid only from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: "
            "is the pad's clock right?"
        )
    cn = _common_name(cert.subject, "certificate")
    if device_id and cn != device_id:
        return (
            f"the certificate is made out to {cn!r}, not to this pad's [device] id "
            f"{device_id!r}: the broker would take it for {cn!r}"
        )
    return None


def pair_problem(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> str | None:
    """Why ``cert`` and ``key`` do not make a client identity (another key's certificate), or
    None."""
    if cert.public_key() != key.public_key():
        return "the certificate is not for tls_key (another key's certificate)"
    return None


# --------------------------------------------------------------------------- requests


def make_csr(key: ec.EllipticCurvePrivateKey, common_name: str) -> bytes:
    """A PEM certificate request for ``key`` with CN ``common_name`` (a pad: its device id)."""
    check_name(common_name)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


#: The smallest keys a certificate is signed for: what OpenSSL's default security level (2,
#: Debian's and the pads') accepts; a smaller one fails to load on the pad ("ee key too small").
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


def _weak_key(public: object) -> str | None:
    """Why a request's key would make a certificate no TLS stack of the link takes, or None."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519, rsa

    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        return f"RSA of {public.key_size} bits (OpenSSL refuses RSA under {MIN_RSA_BITS})"
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size < MIN_EC_BITS:
        return f"EC on {public.curve.name} (under {MIN_EC_BITS} bits)"
    if isinstance(public, dsa.DSAPublicKey):
        return "DSA (TLS 1.3 has no DSA; OpenSSL 3 deprecates it)"
    if not isinstance(public, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey,
                               ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):  # fmt: skip
        return f"a {type(public).__name__}"
    return None


def _load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise TlsCertError(f"not a PEM certificate request: {exc}") from exc
    if not csr.is_signature_valid:
        raise TlsCertError("the request's signature is not valid (damaged or forged)")
    return csr


# --------------------------------------------------------------------------- the CA


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


#: What a CA key may do: sign certificates and revocation lists (and nothing else).
_CA_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def make_ca(
    folder: Path | str, *, common_name: str = "evaluator city CA", days: int = CA_DAYS
) -> CertificateAuthority:
    """A new CA in ``folder``: ``ca.key`` (0600) and ``ca.crt``.  Never overwrites either:
    every pad trusts this CA, so replacing it means re-issuing every certificate."""
    folder = Path(folder)
    if (folder / CA_KEY_NAME).exists() or (folder / CA_CERT_NAME).exists():
        raise TlsCertError(
            f"{folder} already holds a CA; it is never overwritten (every certificate of the "
            "city hangs on it). Use another folder for a new one."
        )
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(folder / CA_KEY_NAME, _pem_private(key), 0o600, replace=False)
    write_public(folder / CA_CERT_NAME, cert.public_bytes(serialization.Encoding.PEM))
    ca = CertificateAuthority(folder, cert, key)
    write_crl(ca)  # empty: a broker with `crlfile` starts before the first revocation
    return ca


# --------------------------------------------------------------------------- index and CRL


_HELD: dict[Path, int] = {}  # CA folders this process holds the lock of, and how deep


@contextlib.contextmanager
def _ca_lock(folder: Path) -> Iterator[None]:
    """The CA folder locked (``flock`` on the folder itself) while its index and CRL are read,
    changed and written: two ``sign-batch``/``revoke`` at once take turns, so neither loses
    the other's certificates from ``index.json`` (a certificate missing there is not revoked
    by its name).  Re-entrant within one process (one thread)."""
    where = folder.resolve()
    if where in _HELD:
        _HELD[where] += 1
        try:
            yield
        finally:
            _HELD[where] -= 1
        return
    try:
        fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise TlsCertError(f"cannot open the CA folder {folder}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _HELD[where] = 1
        try:
            yield
        finally:
            del _HELD[where]
    finally:
        os.close(fd)  # the lock goes with it


def _read_index(folder: Path) -> dict[str, object]:
    path = folder / CA_INDEX_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"crl_number": 0, "certificates": []}
    except (OSError, ValueError) as exc:
        raise TlsCertError(f"cannot read the CA's index {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("certificates"), list):
        raise TlsCertError(f"{path} is not a CA index (`evaluator tls ca` writes it)")
    if not isinstance(data.get("crl_number", 0), int) or isinstance(data.get("crl_number"), bool):
        raise TlsCertError(f"{path}: crl_number {data.get('crl_number')!r} is no number (an "
                           "edited index? its last good copy is in the CA's backup)")  # fmt: skip
    for n, entry in enumerate(data["certificates"], start=1):
        if not (isinstance(entry, dict) and isinstance(entry.get("serial"), str)
                and _serial(entry["serial"]) is not None and isinstance(entry.get("cn"), str)
                and isinstance(entry.get("revoked_at"), (str, type(None)))):  # fmt: skip
            raise TlsCertError(f"{path}: certificate {n} is damaged ({str(entry)[:80]}): "
                               "an edited index? its last good copy is in the CA's backup")
    return data


def _write_index(folder: Path, data: dict[str, object]) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    write_public(folder / CA_INDEX_NAME, text.encode("utf-8"))


def issued(folder: Path | str) -> list[Issued]:
    """Every certificate the CA in ``folder`` recorded, oldest first (``[]`` for a CA made
    before the index was kept: revoke its certificates by serial)."""
    entries = _read_index(Path(folder))["certificates"]
    out = []
    for entry in entries:  # type: ignore[attr-defined]
        try:
            out.append(Issued(int(entry["serial"], 16), str(entry["cn"]), str(entry["not_after"]),
                              entry.get("revoked_at")))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise TlsCertError(f"{Path(folder) / CA_INDEX_NAME}: bad entry {entry!r}") from exc
    return out


def _key_id(public: object) -> str:
    """SHA-256 of a public key's SubjectPublicKeyInfo (hex): which key a certificate is for."""
    der = public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex()


def _revoked_key(data: dict[str, object], public: object) -> dict[str, object] | None:
    """The index entry (of ``data``, the index) of a revoked certificate for ``public``, or None."""
    key = _key_id(public)
    for entry in data["certificates"]:  # type: ignore[attr-defined]
        if entry.get("key") == key and entry.get("revoked_at"):
            return entry  # type: ignore[no-any-return]
    return None


def _key_of_another(data: dict[str, object], public: object, cn: str) -> dict[str, object] | None:
    """The index entry (of ``data``) of a certificate for ``public`` made out to another name
    than ``cn``, or None: one key is one identity (a cloned SD card carries its pad's key)."""
    key = _key_id(public)
    for entry in data["certificates"]:  # type: ignore[attr-defined]
        if entry.get("key") == key and entry.get("cn") != cn:
            return entry  # type: ignore[no-any-return]
    return None


def _record(ca: CertificateAuthority, cert: x509.Certificate, data: dict[str, object]) -> None:
    """``cert`` added to ``data`` (the index as read under the lock) and the index written."""
    data["certificates"].append({  # type: ignore[attr-defined]
        "serial": f"{cert.serial_number:X}",
        "cn": _common_name(cert.subject, "certificate"),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "key": _key_id(cert.public_key()),
        "revoked_at": None,
    })  # fmt: skip
    _write_index(ca.folder, data)
    if not (ca.folder / CRL_NAME).exists():  # a CA made before CRLs were kept: the broker's
        write_crl(ca)  # shipped conf needs the file (empty) before any revocation


def _crl_until(ca: CertificateAuthority) -> datetime.datetime:
    """How long a CRL is valid: as long as the CA (a broker never sees an expired one)."""
    return ca.cert.not_valid_after_utc


def write_crl(ca: CertificateAuthority, now: datetime.datetime | None = None) -> Path:
    """The CA's ``crl.pem`` anew (next CRL number), listing every revoked certificate of its
    index; returns its path."""
    with _ca_lock(ca.folder):
        return _write_crl(ca, now or datetime.datetime.now(datetime.UTC))


def _write_crl(ca: CertificateAuthority, now: datetime.datetime) -> Path:
    data = _read_index(ca.folder)
    number = int(data.get("crl_number", 0)) + 1  # type: ignore[call-overload]
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - BACKDATE)
        .next_update(_crl_until(ca))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    for entry in issued(ca.folder):
        if entry.revoked_at:
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(datetime.datetime.fromisoformat(entry.revoked_at))
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
    crl = builder.sign(ca.key, hashes.SHA256())
    path = ca.folder / CRL_NAME
    write_public(path, crl.public_bytes(serialization.Encoding.PEM))
    data["crl_number"] = number
    _write_index(ca.folder, data)
    return path


#: Serials are random 159-bit numbers (``x509.random_serial_number``); one the index does not
#: know that fits in this many bits is taken for a mistyped name, unless written ``0x…``.
SHORT_SERIAL_BITS = 64


def _serial(text: str) -> int | None:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16)
    except ValueError:
        return None


def revoke(ca: CertificateAuthority, which: str) -> list[Issued]:
    """Revoke every not yet revoked certificate of CN ``which`` (a pad may have renewed), or
    the one with serial ``which`` (hex, as ``tls sign`` prints it; also one the index does not
    know, signed before it was kept), and write the new CRL.  Returns what was revoked now
    (``[]``: all of it was already).  A name the CA never signed and no serial: an error."""
    with _ca_lock(ca.folder):
        return _revoke(ca, which)


def _revoke(ca: CertificateAuthority, which: str) -> list[Issued]:
    data = _read_index(ca.folder)
    entries: list[dict[str, object]] = data["certificates"]  # type: ignore[assignment]
    now = datetime.datetime.now(datetime.UTC)
    mine = [e for e in entries if e.get("cn") == which]
    serial = _serial(which) if not mine else None
    short = False
    if not mine and serial is not None:
        mine = [e for e in entries if _serial(str(e.get("serial"))) == serial]
        # a short hex "serial" the index does not know is rather a mistyped pad (440500…)
        short = serial.bit_length() <= SHORT_SERIAL_BITS and not which.strip().startswith("0x")
        if not mine and not short:  # signed before the index was kept: listed by its serial
            mine = [{"serial": f"{serial:X}", "cn": "", "not_after": "", "revoked_at": None}]
            entries.append(mine[0])
    if not mine:
        known = sorted({str(e.get("cn")) for e in entries})
        what = ("no serial this CA made (they are random, about 40 hex digits; write 0x… to "
                "revoke such a short one anyway)" if short else "no serial number")
        raise TlsCertError(
            f"the CA in {ca.folder} never signed a certificate for {which!r} and it is {what}; "
            f"it signed for: {', '.join(known) or 'nothing recorded'}"
        )
    done = []
    for entry in mine:
        if not entry.get("revoked_at"):
            entry["revoked_at"] = now.isoformat()
            done.append(Issued(int(str(entry["serial"]), 16), str(entry["cn"]),
                               str(entry["not_after"]), str(entry["revoked_at"])))  # fmt: skip
    _write_index(ca.folder, data)
    write_crl(ca, now)
    return done


def load_ca(folder: Path | str) -> CertificateAuthority:
    """The CA in ``folder`` (``ca.crt`` and ``ca.key``, as :func:`make_ca` wrote them)."""
    folder = Path(folder)
    key = load_tls_key(folder / CA_KEY_NAME)
    try:
        cert = x509.load_pem_x509_certificate((folder / CA_CERT_NAME).read_bytes())
    except FileNotFoundError as exc:
        raise TlsCertError(
            f"no {CA_CERT_NAME} in {folder}: make a CA with `evaluator tls ca`"
        ) from exc
    except (OSError, ValueError) as exc:
        raise TlsCertError(f"cannot read {folder / CA_CERT_NAME}: {exc}") from exc
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        raise TlsCertError(f"{CA_KEY_NAME} and {CA_CERT_NAME} in {folder} do not belong together")
    return CertificateAuthority(folder, cert, key)


def sign_csr(
    csr_pem: bytes,
    ca: CertificateAuthority,
    *,
    days: int = CLIENT_DAYS,
    server_names: tuple[str, ...] = (),
    receiver: bool = False,
) -> bytes:
    """The PEM certificate the city issues for a request.

    A pad's request (the default) must carry a device id as CN and must not take a receiver's
    name (``hub-…``: the ACL lets those read every pad); ``receiver=True`` requires one.
    ``server_names`` makes a broker certificate instead: the host names and IP addresses the
    pads dial, as subject alternative names (what TLS clients check), for server use only.
    Refused: a key whose certificate was revoked, a key the CA signed for another name (one
    key is one identity: a copied SD card must not make two pads of one key), and a key too
    weak for OpenSSL's default security level (RSA under 2048 bits, DSA, EC under 256 bits).
    """
    if days < 1:
        raise TlsCertError(f"--days {days}: a certificate is valid 1 day or more")
    csr = _load_csr(csr_pem)
    cn = _common_name(csr.subject, "request")
    alt: list[x509.GeneralName] = []
    if server_names:
        for name in server_names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        _check_client_name(cn, receiver)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    with _ca_lock(ca.folder):  # the checks and the index's new entry, as one
        return _sign(csr, ca, cn, days, server_names, alt, usage)


def _check_client_name(cn: str, receiver: bool) -> None:
    """A pad's CN is its device id (the pad's, provision's and registration's rule, same
    words); a receiver's starts with ``hub-``, which the ACL lets read every pad."""
    if receiver:
        check_name(cn)
        if not cn.startswith(RECEIVER_PREFIX):
            raise TlsCertError(f"a receiver's CN starts with {RECEIVER_PREFIX!r}, not {cn!r}")
    elif (why := device_id_problem(cn)) is not None:
        receiverish = cn.startswith(RECEIVER_PREFIX)
        tail = " (sign it with --receiver only if it is one)" if receiverish else ""
        raise TlsCertError(f"the request's CN: {why}{tail}")


def _sign(csr: x509.CertificateSigningRequest, ca: CertificateAuthority, cn: str, days: int,
          server_names: tuple[str, ...], alt: list[x509.GeneralName],
          usage: x509.ObjectIdentifier) -> bytes:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    public = csr.public_key()
    if (weak := _weak_key(public)) is not None:  # signed, the pad could not even load it
        raise TlsCertError(
            f"the request's key is {weak}: a certificate for it would be refused by the pad's "
            "and the broker's TLS; make an ECDSA P-256 key (`evaluator tls csr` does)"
        )
    index = _read_index(ca.folder)  # once: the checks and the new entry (under _ca_lock)
    if (revoked := _revoked_key(index, public)) is not None:  # a stolen pad's key stays out
        raise TlsCertError(
            f"this request's key had certificate {revoked.get('serial')} "
            f"({revoked.get('cn') or 'no name'}), revoked {revoked.get('revoked_at')}: never "
            "signed again; the pad needs a new TLS key (move its tls key away, then "
            "`evaluator tls csr` or `evaluator provision` makes one)"
        )
    other = None if server_names else _key_of_another(index, public, cn)  # a broker's names may
    if other is not None:  # share a key (a cluster); a client's: whoever holds it is both
        raise TlsCertError(
            f"this request's key already has certificate {other.get('serial')} for "
            f"{other.get('cn') or 'another name'!r}: not signed for {cn!r} (one key, one name: "
            "whoever holds the key could connect as either; a copied SD card or bundle?). Give "
            f"{cn!r} a key of its own (move its tls key away, then `evaluator tls csr` or "
            "`evaluator provision` makes one)"
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        # never past the CA's own end: nothing verifies after it (the detail shows the date)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    _record(ca, cert, index)  # what revocation needs (no OpenSSL CA database)
    return cert.public_bytes(serialization.Encoding.PEM)
