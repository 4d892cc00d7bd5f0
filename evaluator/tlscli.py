"""``evaluator tls``: the certificates of the broker link (config/mosquitto/README.md).

- ``evaluator tls csr [--config F]`` — on the pad: its TLS key (made once, 0600, at
  ``[mqtt] tls_key``) and a certificate request with the device id as CN, written beside
  ``[mqtt] tls_cert`` as ``*.csr``.  The request goes to the city; the certificate it sends
  back goes to ``tls_cert``.  ``--key FILE --cn NAME --out FILE`` does the same without a pad
  config (the broker's own key, a receiver's).
- ``evaluator tls ca --out DIR`` — at the city, once: the CA (``ca.crt``, ``ca.key``).
- ``evaluator tls sign CSR --ca DIR --out CERT`` — at the city: the certificate for a request
  (``--receiver`` for a ``hub-…`` receiver, ``--server-name`` for the broker).

Exit codes as every command: 0 done, 2 bad input (the message says what to do).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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


def cmd_tls(args: argparse.Namespace) -> int:
    """Run ``evaluator tls …``; one line on stderr and 2 on any error."""
    from sync.tlscerts import TlsCertError

    try:
        if args.tls_command == "csr":
            return _csr(args)
        if args.tls_command == "ca":
            return _ca(args.out, args.name)
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
    from sync.tlscerts import CA_KEY_NAME, make_ca

    ca = make_ca(out, common_name=name)
    print(f"CA certificate: {ca.cert_path} (give it to every pad, receiver and the broker)")
    print(f"CA key: {out / CA_KEY_NAME} (0600; whoever holds it can make any pad: keep it "
          "offline)")  # fmt: skip
    return 0


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
