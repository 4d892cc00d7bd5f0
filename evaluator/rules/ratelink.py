"""The dynamic QR of a receipt (art. 17(2)): a signed link to rate one case (or batch) later.

The link is a URL from the hall's template with one query string::

    https://hcp.example.org/r?v=1&d=DEV&s=SERIAL[,SERIAL…]&m=MATTER&c=CLERK&ch=3&t=ISSUED&e=EXPIRES&n=NONCE&k=KEYID&sig=SIG

- ``v`` format version (1); ``d`` device id; ``s`` the 业务流水号 (comma-separated for a batch);
  ``m`` 事项编码; ``c`` 工号 (or ``T:<终端机编号>`` for a self-service terminal); ``ch`` the
  evaluation channel (3 = QR, GB/T 39046); ``t`` / ``e`` issue time and expiry in Unix seconds;
  ``n`` a random nonce, 8 Crockford base-32 characters, which is also the **short code** printed
  under the QR for a citizen to type when a scan fails; ``k`` the first 8 hex digits of the device
  key's fingerprint; ``sig`` the Ed25519 signature of the bytes of the query before ``&sig=``,
  base64url without padding (86 characters).
- The signature covers the query exactly as sent (no re-encoding on either side), so the host
  part of the template may change without invalidating codes already printed.
- No citizen identity is carried: the case, the clerk's 工号 and the device only.

This module is pure (standard library): signing and checking a signature are given to it as
functions by the device's key (``sync.keys``), so the rules never import a crypto library.
"""

from __future__ import annotations

import base64
import re
import secrets
import urllib.parse
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

#: Format version of the query.
VERSION = "1"
#: GB/T 39046 evaluation channel of a receipt's QR.
QR_CHANNEL = 3
#: Default time a printed code stays valid (configurable): 7 days.
DEFAULT_EXPIRY_S = 7 * 24 * 3600
#: Crockford base 32 (no I, L, O, U: nothing to misread when typed).
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
NONCE_LEN = 8
#: Query keys in the order they are written; ``sig`` is always last.
FIELDS: tuple[str, ...] = ("v", "d", "s", "m", "c", "ch", "t", "e", "n", "k")
#: Why a link is refused.
REASONS: dict[str, str] = {
    "malformed": "not a rating link of this format",
    "wrong_key": "signed with another key than the one given",
    "tampered": "a field was changed after signing (the signature does not match)",
    "expired": "the code has expired",
    "not_yet_valid": "issued in the future",
    "replayed": "this code was already used",
}

#: The one spelling of a signature in a link (the decoder would skip stray characters).
_SIG_RE = re.compile(r"[A-Za-z0-9_-]{86}")

Signer = Callable[[bytes], bytes]
Checker = Callable[[bytes, bytes], bool]


@dataclass(frozen=True)
class RateLink:
    """What a receipt's QR says."""

    device_id: str
    serials: tuple[str, ...]
    matter_code: str
    clerk: str
    """工号, or ``T:<终端机编号>`` for a self-service terminal."""
    issued: int
    expires: int
    nonce: str
    key_id: str
    channel: int = QR_CHANNEL

    @property
    def short_code(self) -> str:
        """The nonce as printed under the QR: ``ABCD-EFGH``."""
        return f"{self.nonce[:4]}-{self.nonce[4:]}"


@dataclass(frozen=True)
class Verdict:
    """The answer for one link: ``ok``, else ``reason`` (a key of :data:`REASONS`)."""

    ok: bool
    reason: str = ""
    link: RateLink | None = None

    @property
    def message(self) -> str:
        return "valid" if self.ok else REASONS.get(self.reason, self.reason)


def new_nonce() -> str:
    """8 random Crockford base-32 characters (40 bits)."""
    return "".join(secrets.choice(CROCKFORD) for _ in range(NONCE_LEN))


def normalise_code(typed: str) -> str:
    """A short code as typed (any case, dashes, spaces, O for 0, I/L for 1) → the nonce."""
    table = str.maketrans({"O": "0", "I": "1", "L": "1"})
    return "".join(c for c in typed.upper() if c.isalnum()).translate(table)


def query_of(link: RateLink) -> str:
    """The query string that is signed (without ``sig``)."""
    values = {
        "v": VERSION,
        "d": link.device_id,
        "s": ",".join(urllib.parse.quote(serial, safe=":-") for serial in link.serials),
        "m": link.matter_code,
        "c": link.clerk,
        "ch": str(link.channel),
        "t": str(link.issued),
        "e": str(link.expires),
        "n": link.nonce,
        "k": link.key_id,
    }
    return "&".join(
        f"{key}={values[key] if key == 's' else urllib.parse.quote(values[key], safe=':-')}"
        for key in FIELDS
    )


def _name(piece: str) -> str:
    """A query parameter's name as a web framework reads it (percent- and plus-decoded)."""
    return urllib.parse.unquote_plus(piece.partition("=")[0])


def check_template(template: str) -> str | None:
    """``None`` when ``template`` is a usable link template, else what is wrong with it: every
    link made from it must read back (``{query}`` ends the URL, after ``?`` or ``&``, and no
    parameter of the template's own shares a name with the link's fields)."""
    if template.count("{query}") != 1:
        return "the template must hold {query} exactly once"
    try:
        parsed = urllib.parse.urlsplit(template.replace("{query}", "q"))
    except ValueError as exc:
        return f"the template is not a URL: {exc}"
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return "the template must be an http:// or https:// URL"
    if "#" in template or " " in template or not template.isascii():
        return "the template must be ASCII, with no spaces and no #fragment"
    head, tail = template.split("{query}")
    if not head.endswith(("?", "&")) or "?" not in head:
        return "the template's {query} must come right after ? or &"
    if tail:
        return "the template must end with {query} (the link's signature comes last)"
    own = [_name(piece) for piece in head.partition("?")[2].split("&") if piece]
    clash = sorted(set(own) & {*FIELDS, "sig"})
    if clash:
        return f"the template's own parameters {clash} clash with the link's fields"
    return None


def make_link(
    template: str,
    *,
    device_id: str,
    serials: Sequence[str],
    matter_code: str,
    clerk: str,
    now: int,
    key_id: str,
    sign: Signer,
    expiry_s: int = DEFAULT_EXPIRY_S,
    nonce: str | None = None,
) -> tuple[str, RateLink]:
    """The signed URL for one case or batch, and what it says."""
    problem = check_template(template)
    if problem:
        raise ValueError(problem)
    if int(expiry_s) <= 0:
        raise ValueError(f"expiry_s must be more than 0 seconds, not {expiry_s}")
    link = RateLink(
        device_id=device_id,
        serials=tuple(serials),
        matter_code=matter_code,
        clerk=clerk,
        issued=int(now),
        expires=int(now) + int(expiry_s),
        nonce=nonce or new_nonce(),
        key_id=key_id,
    )
    query = query_of(link)
    signature = base64.urlsafe_b64encode(sign(query.encode("ascii"))).rstrip(b"=").decode()
    return template.replace("{query}", f"{query}&sig={signature}"), link


def parse(url: str) -> tuple[RateLink, bytes, bytes] | None:
    """``(link, signed bytes, signature)`` from a URL, or ``None`` when it is not one.

    The link's own part is the end of the query: this format's fields in order, then ``sig``
    (a template may put parameters of its own before them).
    """
    try:
        pieces = urllib.parse.urlsplit(url.strip()).query.split("&")
    except ValueError:  # not a URL at all ("[" in the host, an NFKC-invalid host, …)
        return None
    ours = pieces[-(len(FIELDS) + 1) :]
    keys = [piece.partition("=")[0] for piece in ours]
    if keys != [*FIELDS, "sig"]:
        return None
    # A field of ours also before our part, however it is spelt (%73 is "s"), would read
    # differently to a parser taking the first occurrence (most web frameworks) than to this
    # one: such a link is refused.
    if any(_name(piece) in keys for piece in pieces[: -len(ours)]):
        return None
    if not _SIG_RE.fullmatch(ours[-1].partition("=")[2]):
        return None  # one spelling of a signature only: base64url, no padding, 86 characters
    raw = {key: piece.partition("=")[2] for key, piece in zip(keys, ours, strict=True)}
    values = {key: urllib.parse.unquote(text) for key, text in raw.items()}
    try:
        sig_text = values["sig"]
        signature = base64.urlsafe_b64decode(sig_text + "=" * (-len(sig_text) % 4))
        link = RateLink(
            device_id=values["d"],
            serials=tuple(urllib.parse.unquote(s) for s in raw["s"].split(",") if s),
            matter_code=values["m"],
            clerk=values["c"],
            issued=int(values["t"]),
            expires=int(values["e"]),
            nonce=values["n"],
            key_id=values["k"],
            channel=int(values["ch"]),
        )
    except (ValueError, KeyError):
        return None
    if values["v"] != VERSION or not link.serials or len(signature) != 64:
        return None
    return link, "&".join(ours[:-1]).encode("utf-8"), signature


def verify(
    url: str,
    *,
    key_id: str,
    check: Checker,
    now: int,
    used_nonces: Collection[str] = (),
) -> Verdict:
    """Accept a genuine, unexpired, unused link signed by the key with ``key_id``; else the
    first reason it fails: malformed, wrong_key, tampered, not_yet_valid, expired, replayed."""
    parsed = parse(url)
    if parsed is None:
        return Verdict(False, "malformed")
    link, signed, signature = parsed
    if link.key_id != key_id:
        return Verdict(False, "wrong_key", link)
    if not check(signed, signature):
        return Verdict(False, "tampered", link)
    if link.issued > now + 300:  # five minutes of clock skew between device and city
        return Verdict(False, "not_yet_valid", link)
    if now >= link.expires:
        return Verdict(False, "expired", link)
    if link.nonce in used_nonces:
        return Verdict(False, "replayed", link)
    return Verdict(True, "", link)
