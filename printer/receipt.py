"""The receipt (办件回执, art. 17(2)) as plain data: what is printed, and nothing about the citizen.

A :class:`Receipt` holds the hall and window, the 事项名称, every 业务流水号 of the case or batch
(art. 24), the clerk's name and 工号, the date and time, the QR URL (built and signed elsewhere:
this module only prints the string it is given) and the short code a citizen types when a scan
fails.  There is no field for a citizen's name, ID number or phone, and the text fields are
refused when they carry what looks like one (art. 4).

Every text is checked when the receipt is made, because a control character in a name would be
an ESC/POS command on the printer: the same rule as the counter link's requests
(:func:`evaluator.rules.request.unshowable`).
"""

from __future__ import annotations

import datetime
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evaluator.rules.request import (
    CASES_MAX,
    NAME_MAX,
    PERSON_MAX,
    SERIAL_MAX,
    identity_in,
    unshowable,
)
from printer.errors import ReceiptError

#: Longest hall name and window name.
HALL_MAX = 64
WINDOW_MAX = 32
#: Longest QR URL (a signed rating link of one case is about 256 characters; docs/technician.md).
URL_MAX = 512
#: The short code: 4 to 16 characters of A–Z, 0–9 and "-" (typed by hand: no lower case).
SHORT_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,14}[A-Z0-9]$")
_SERIAL_RE = re.compile(r"^[0-9A-Za-z._:/-]+$")
#: A URL is printable ASCII without spaces (an IRI must be percent-encoded by its builder).
_URL_RE = re.compile(r"^[!-~]+$")


def _text(value: object, field: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ReceiptError(f"{field} must be a string, not {type(value).__name__}")
    value = value.strip()
    if not value:
        if required:
            raise ReceiptError(f"{field} must not be empty")
        return value
    bad = unshowable(value)
    if bad is not None:
        raise ReceiptError(f"{field} contains a character that cannot be printed: {bad}")
    if not any(unicodedata.category(c)[0] in "LNPS" for c in value):
        raise ReceiptError(f"{field} has nothing printable (only marks or spaces)")
    if len(value) > limit:
        raise ReceiptError(f"{field} is longer than {limit} characters")
    found = identity_in(value)
    if found is not None:
        raise ReceiptError(f"{field} contains what looks like a {found}: never printed (art. 4)")
    return value


@dataclass(frozen=True)
class Receipt:
    """One receipt.  Made through the constructor, which checks every field
    (:class:`ReceiptError` names the first bad one).

    ``clerk_name`` and ``clerk_id`` may both be empty (a self-service terminal has no clerk):
    the clerk line is then left out.  ``issued_at`` is printed as given (local time of the
    hall), to the minute.
    """

    hall: str
    window: str
    matter_name: str
    serials: tuple[str, ...]
    clerk_name: str
    clerk_id: str
    issued_at: datetime.datetime
    qr_url: str
    short_code: str

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "hall", _text(self.hall, "hall", HALL_MAX))
        put(self, "window", _text(self.window, "window", WINDOW_MAX))
        put(self, "matter_name", _text(self.matter_name, "matter_name", NAME_MAX))
        put(self, "clerk_name", _text(self.clerk_name, "clerk_name", PERSON_MAX, required=False))
        put(self, "clerk_id", _text(self.clerk_id, "clerk_id", PERSON_MAX, required=False))
        if bool(self.clerk_name) != bool(self.clerk_id):
            raise ReceiptError("clerk_name and clerk_id are both given or both empty")
        serials = self.serials
        if isinstance(serials, str) or not isinstance(serials, tuple | list):
            raise ReceiptError("serials must be a list of 业务流水号")
        if not 1 <= len(serials) <= CASES_MAX:
            raise ReceiptError(f"serials must hold 1 to {CASES_MAX} 业务流水号")
        for serial in serials:
            if not isinstance(serial, str) or not _SERIAL_RE.match(serial):
                raise ReceiptError(
                    f"serial {serial!r} is not 1–{SERIAL_MAX} of A–Z a–z 0–9 . _ : / -"
                )
            if len(serial) > SERIAL_MAX:
                raise ReceiptError(f"serial {serial!r} is longer than {SERIAL_MAX} characters")
        put(self, "serials", tuple(serials))
        if not isinstance(self.issued_at, datetime.datetime):
            raise ReceiptError("issued_at must be a datetime")
        url = self.qr_url
        if not isinstance(url, str) or not _URL_RE.match(url) or len(url) > URL_MAX:
            raise ReceiptError(
                f"qr_url must be 1–{URL_MAX} printable ASCII characters without spaces"
            )
        code = self.short_code
        if not isinstance(code, str) or not SHORT_CODE_RE.match(code):
            raise ReceiptError("short_code must be 4–16 of A–Z 0–9 and inner '-'")

    def to_json(self) -> dict[str, Any]:
        """The receipt as JSON-ready data (the spool directory's file format)."""
        return {
            "hall": self.hall,
            "window": self.window,
            "matter_name": self.matter_name,
            "serials": list(self.serials),
            "clerk_name": self.clerk_name,
            "clerk_id": self.clerk_id,
            "issued_at": self.issued_at.isoformat(),
            "qr_url": self.qr_url,
            "short_code": self.short_code,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Receipt:
        """The receipt :meth:`to_json` gave; :class:`ReceiptError` when it is not one."""
        if not isinstance(data, Mapping):
            raise ReceiptError("a receipt is a JSON object")
        known = {
            "hall",
            "window",
            "matter_name",
            "serials",
            "clerk_name",
            "clerk_id",
            "issued_at",
            "qr_url",
            "short_code",
        }
        if set(data) != known:
            raise ReceiptError(f"a receipt has exactly the fields {', '.join(sorted(known))}")
        try:
            issued = datetime.datetime.fromisoformat(data["issued_at"])
        except (TypeError, ValueError) as exc:
            raise ReceiptError(f"issued_at is not an ISO date and time: {exc}") from exc
        fields = {k: data[k] for k in known if k not in ("issued_at", "serials")}
        serials = data["serials"]
        if not isinstance(serials, list):
            raise ReceiptError("serials must be a list of 业务流水号")
        return cls(issued_at=issued, serials=tuple(serials), **fields)
