"""``evaluator tls``: the certificates of the broker link (config/mosquitto/README.md).

- ``evaluator tls csr [--config F]`` — on the pad: its TLS key (made once, 0600, at
  ``[mqtt] tls_key``) and a certificate request with the device id as CN, written beside
  ``[mqtt] tls_cert`` as ``*.csr``.  The request goes to the city; the certificate it sends
  back goes to ``tls_cert``.  ``--key FILE --cn NAME --out FILE`` does the same without a pad
  config (the broker's own key, a receiver's).
- ``evaluator tls ca --out DIR`` — at the city, once: the CA (``ca.crt``, ``ca.key``).
- ``evaluator tls sign CSR --ca DIR --out CERT`` — at the city: the certificate for a request
  (``--receiver`` for a ``hub-…`` receiver, ``--server-name`` for the broker).
- ``evaluator tls sign-batch PROVISION_DIR --ca DIR`` — at the city: every pad's request in the
  output folder of ``evaluator provision`` signed at once; each certificate and ``ca.crt`` land
  in the pad's bundle where its ``evaluator.toml`` says (``tls_cert``, ``tls_ca``), never outside
  it (a ``tls_ca`` outside, e.g. a template's system path, is left to the pad, and said).  A re-run
  changes nothing (a certificate of this CA for the same key, name and not near its end is
  kept); a request whose CN is not the pad's device id (or folder) is refused, naming both.
- ``evaluator tls revoke CN-or-SERIAL --ca DIR`` — at the city: the pad's certificates listed in
  the CA's ``crl.pem``, which the broker reads (``crlfile``; config/mosquitto/README.md).

Exit codes as every command: 0 done, 2 bad input (the message says what to do).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.rules.errors import ConfigError

__all__ = ["add_tls_parser", "cmd_tls"]


def add_tls_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``tls`` command group, added to the ``evaluator`` parser's subcommands."""
    tls = sub.add_parser("tls", help="certificates for the TLS link to the city's broker")
    actions = tls.add_subparsers(dest="tls_command", required=True, metavar="ACTION")
    csr = actions.add_parser(
        "csr", help="make this pad's TLS key (once) and a certificate request for the city"
    )
    csr.add_argument(
        "--config", action="append", type=Path, default=[], metavar="FILE",
        help="config file (repeatable); the key goes to [mqtt] tls_key, the request beside "
        "[mqtt] tls_cert",
    )  # fmt: skip
    csr.add_argument("--key", type=Path, metavar="FILE", help="key file (instead of --config)")
    csr.add_argument("--cn", metavar="NAME", help="common name (with --key): who the key is")
    csr.add_argument("--out", type=Path, metavar="FILE", help="request file (with --key)")
    ca = actions.add_parser("ca", help="make the city's CA (once): ca.crt and ca.key")
    ca.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the CA")
    ca.add_argument("--name", default="evaluator city CA", help="the CA's common name")
    sign = actions.add_parser("sign", help="sign a certificate request with the city's CA")
    sign.add_argument("csr", type=Path, metavar="CSR", help="the request (PEM)")
    sign.add_argument("--ca", type=Path, required=True, metavar="DIR", help="the CA folder")
    sign.add_argument("--out", type=Path, required=True, metavar="CERT", help="certificate file")
    sign.add_argument(
        "--receiver", action="store_true", help="a city receiver (CN hub-…), not a pad"
    )
    sign.add_argument(
        "--server-name", action="append", default=[], metavar="HOST",
        help="the broker's certificate: a host name or IP the pads dial (repeatable)",
    )  # fmt: skip
    sign.add_argument("--days", type=int, default=None, metavar="N", help="validity in days")
    batch = actions.add_parser(
        "sign-batch",
        help="sign every pad's request in an `evaluator provision` folder into its bundle",
    )
    batch.add_argument("folder", type=Path, metavar="PROVISION_DIR",
                       help="the --out folder of `evaluator provision`")  # fmt: skip
    batch.add_argument("--ca", type=Path, required=True, metavar="DIR", help="the CA folder")
    batch.add_argument("--days", type=int, default=None, metavar="N", help="validity in days")
    revoke = actions.add_parser(
        "revoke", help="revoke a pad's certificates (by device id or serial): a new crl.pem"
    )
    revoke.add_argument(
        "which", metavar="CN-or-SERIAL",
        help="a device id (all its certificates) or a serial (hex; a short one the index does "
        "not know only as 0x…)",
    )
    revoke.add_argument("--ca", type=Path, required=True, metavar="DIR", help="the CA folder")


def cmd_tls(args: argparse.Namespace) -> int:
    """Run ``evaluator tls …``; one line on stderr and 2 on any error."""
    from sync.tlscerts import TlsCertError

    try:
        if args.tls_command == "csr":
            return _csr(args)
        if args.tls_command == "ca":
            return _ca(args.out, args.name)
        if args.tls_command == "sign-batch":
            return _sign_batch(args)
        if args.tls_command == "revoke":
            return _revoke(args)
        return _sign(args)
    except (TlsCertError, ConfigError) as exc:
        print(f"evaluator tls {args.tls_command}: {exc}", file=sys.stderr)
        return 2


def _csr(args: argparse.Namespace) -> int:
    from evaluator.config import config_files, load_config
    from sync.tlscerts import TlsCertError, load_or_create_tls_key, make_csr, write_public

    if args.key is not None:
        if not args.cn or args.out is None:
            raise TlsCertError("--key needs --cn NAME and --out FILE (or use --config)")
        key_path, csr_path, name = args.key, args.out, args.cn
    else:
        if args.cn or args.out is not None:
            raise TlsCertError("--cn and --out go with --key; with --config the names come "
                               "from [device] id and [mqtt] tls_cert")  # fmt: skip
        config = load_config(config_files(args.config))
        key, cert = config.mqtt.tls_key, config.mqtt.tls_cert
        if key is None or cert is None:
            raise TlsCertError(
                "set [mqtt] tls_key and tls_cert first (where the key is kept and where the "
                'city\'s certificate will go), e.g. tls_key = "tls/device.key", '
                'tls_cert = "tls/device.crt"'
            )
        key_path, csr_path, name = key, cert.with_suffix(".csr"), config.device.id
    private, created = load_or_create_tls_key(key_path)
    write_public(csr_path, make_csr(private, name))
    print(f"TLS key: {key_path} ({'created' if created else 'kept: it is never replaced'})")
    print(f"request: {csr_path} (CN {name})")
    print("Send the request to the city (never the key); put the certificate it returns "
          "at [mqtt] tls_cert, then run `evaluator config check`.")  # fmt: skip
    return 0


def _ca(out: Path, name: str) -> int:
    from sync.tlscerts import CA_INDEX_NAME, CA_KEY_NAME, CRL_NAME, make_ca

    ca = make_ca(out, common_name=name)
    print(f"CA certificate: {ca.cert_path} (give it to every pad, receiver and the broker)")
    print(f"CA key: {out / CA_KEY_NAME} (0600; whoever holds it can make any pad: keep it "
          "offline)")  # fmt: skip
    print(f"revocation list: {out / CRL_NAME} (empty; the broker's crlfile) and the index of "
          f"signed certificates {out / CA_INDEX_NAME}")  # fmt: skip
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from sync.tlscerts import CRL_NAME, load_ca, revoke

    ca = load_ca(args.ca)
    done = revoke(ca, args.which)
    for entry in done:
        print(f"revoked: serial {entry.serial_hex} {entry.cn or '(not in the index)'}")
    if not done:
        print(f"{args.which}: already revoked; the revocation list is written again")
    print(f"revocation list: {ca.folder / CRL_NAME}")
    print(f"Copy it to the broker ({BROKER_CRL}) and run `{BROKER_RELOAD}`: mosquitto "
          "reads it when it starts or reloads; until then the pad still gets in.")  # fmt: skip
    return 0


#: Where the shipped broker config reads the CRL, and how it takes a new one (measured with
#: mosquitto 2.0.11 in tests/test_broker_security.py).
BROKER_CRL = "/etc/mosquitto/evaluator/crl.pem"
BROKER_RELOAD = "sudo systemctl reload mosquitto"
#: A certificate this close to its end is signed anew by ``sign-batch`` (a re-run renews it).
RENEW_BEFORE = datetime.timedelta(days=60)


@dataclass
class Signed:
    """What ``sign-batch`` did for one pad's folder."""

    device: str
    status: str  # signed | renewed | unchanged | skipped | refused
    detail: str = ""


def _bundle_path(folder: Path, value: str) -> Path:
    """Where a path of the pad's config is in its bundle: relative to ``evaluator.toml`` (as
    on the pad), an absolute ``/etc/evaluator/…`` under the bundle; refused when it leads out
    of the bundle (``..``, a symlink)."""
    from evaluator.config import SYSTEM_CONFIG_DIR
    from sync.tlscerts import TlsCertError

    path = Path(value)
    if path.is_absolute() and not path.is_relative_to(SYSTEM_CONFIG_DIR):
        raise TlsCertError(f"{value} is outside {SYSTEM_CONFIG_DIR}: the bundle cannot put a "
                           "file there; use a path relative to evaluator.toml")  # fmt: skip
    inside = folder / (path.relative_to(SYSTEM_CONFIG_DIR) if path.is_absolute() else path)
    # `..` or a symlink on the way would have the city's batch write outside the bundle
    if not inside.resolve().is_relative_to(folder.resolve()):
        raise TlsCertError(f"{value} leads out of the pad's folder {folder} (a '..' or a symlink "
                           f"to {inside.resolve()}): the batch writes only inside the bundle; "
                           "use a path in it, relative to evaluator.toml")  # fmt: skip
    return inside


def _keep(cert_path: Path, csr: Any, ca: Any, device: str, revoked: set[int]) -> bool:
    """Whether the certificate already at ``cert_path`` is the one to issue: this CA's, for
    the request's key and the device's name, not revoked, not near its end."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca.cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    now = datetime.datetime.now(datetime.UTC)
    return (cert.public_key() == csr.public_key() and [n.value for n in names] == [device]
            and cert.serial_number not in revoked
            and cert.not_valid_after_utc - now > RENEW_BEFORE)  # fmt: skip


def sign_batch(folder: Path, ca: Any, days: int) -> list[Signed]:
    """Every pad folder of ``folder`` (a ``<device id>/evaluator.toml``) whose config names a
    ``tls_cert``: its request (beside ``tls_cert`` as ``*.csr``) signed, the certificate at
    ``tls_cert`` and the CA's certificate at ``tls_ca`` (not when ``tls_ca`` is outside the
    bundle, e.g. a template's system path: said in the detail).  One :class:`Signed` per
    folder; nothing is ever written outside a pad's folder."""
    from cryptography import x509

    from sync.tlscerts import TlsCertError, issued, sign_csr, write_public

    pads = sorted(p.parent for p in folder.glob("*/evaluator.toml"))
    if not pads:
        raise TlsCertError(f"{folder}: no <device id>/evaluator.toml in it: expected the --out "
                           "folder of `evaluator provision`")  # fmt: skip
    revoked = {e.serial for e in issued(ca.folder) if e.revoked_at}
    ca_pem = ca.cert_path.read_bytes()
    out = []
    for pad in pads:
        try:
            data = tomllib.loads((pad / "evaluator.toml").read_text(encoding="utf-8-sig"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            out.append(Signed(pad.name, "refused", f"cannot read evaluator.toml: {exc}"))
            continue
        device = str(data.get("device", {}).get("id", ""))
        mqtt = data.get("mqtt", {})
        if not mqtt.get("tls_cert"):
            out.append(Signed(device or pad.name, "skipped", "no tls_cert: no mqtts:// broker"))
            continue
        try:
            cert_path = _bundle_path(pad, str(mqtt["tls_cert"]))
            ca_path, ca_note = None, ""
            if mqtt.get("tls_ca"):
                try:
                    ca_path = _bundle_path(pad, str(mqtt["tls_ca"]))
                except TlsCertError:  # the pad has it from elsewhere (its image, a template)
                    ca_note = (f"; tls_ca {mqtt['tls_ca']} is outside the bundle: ca.crt not "
                               "put there, the pad must have this CA's ca.crt at that path")
            csr_path = cert_path.with_suffix(".csr")
            try:
                pem = csr_path.read_bytes()
            except OSError as exc:
                why = f"no request {csr_path}: {exc.strerror or exc}"
                raise TlsCertError(f"{why} (`evaluator provision` makes it)") from exc
            csr = x509.load_pem_x509_csr(pem)
            names = [str(n.value) for n in
                     csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]  # fmt: skip
            if names != [device] or device != pad.name:
                raise TlsCertError(
                    f"the request {csr_path} is for CN {', '.join(names) or '(none)'}, but the "
                    f"folder is {pad.name!r} and its [device] id {device!r}: not signed (a "
                    "certificate names the pad the broker lets in)"
                )
            existed = cert_path.exists()
            if _keep(cert_path, csr, ca, device, revoked):
                status = "unchanged"
            else:
                write_public(cert_path, sign_csr(pem, ca, days=days))
                status = "renewed" if existed else "signed"
            if ca_path is not None and (not ca_path.exists() or ca_path.read_bytes() != ca_pem):
                write_public(ca_path, ca_pem)
                status = "signed" if status == "unchanged" else status
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            detail = (f"{cert_path.relative_to(folder)} serial {cert.serial_number:X}, until "
                      f"{cert.not_valid_after_utc:%Y-%m-%d}{ca_note}")  # fmt: skip
            out.append(Signed(device, status, detail))
        except (TlsCertError, ValueError) as exc:
            out.append(Signed(device or pad.name, "refused", str(exc)))
    return out


def _sign_batch(args: argparse.Namespace) -> int:
    from sync.tlscerts import CLIENT_DAYS, load_ca

    results = sign_batch(args.folder, load_ca(args.ca), args.days or CLIENT_DAYS)
    for r in results:
        line = f"{r.device}: {r.status}" + (f" ({r.detail})" if r.detail else "")
        print(line, file=sys.stderr if r.status == "refused" else sys.stdout)
    counts = {s: sum(r.status == s for r in results)
              for s in ("signed", "renewed", "unchanged", "skipped", "refused")}  # fmt: skip
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if counts["refused"] else 0


def _sign(args: argparse.Namespace) -> int:
    from cryptography import x509

    from sync.tlscerts import CLIENT_DAYS, TlsCertError, load_ca, sign_csr, write_public

    try:
        request = args.csr.read_bytes()
    except OSError as exc:
        raise TlsCertError(f"cannot read {args.csr}: {exc.strerror or exc}") from exc
    pem = sign_csr(
        request,
        load_ca(args.ca),
        days=args.days or CLIENT_DAYS,
        server_names=tuple(args.server_name),
        receiver=args.receiver,
    )
    write_public(args.out, pem)
    cert = x509.load_pem_x509_certificate(pem)
    cn = cert.subject.rfc4514_string()
    kind = "broker" if args.server_name else "receiver" if args.receiver else "pad"
    print(f"certificate ({kind}, {cn}): {args.out}, valid until "
          f"{cert.not_valid_after_utc:%Y-%m-%d}")  # fmt: skip
    return 0
