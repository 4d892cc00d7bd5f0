"""The window's static QR sticker (art. 17(3)) as plain data: the hall, the window, and the URL
of the window's rating page, the same code the idle screen shows.  No case, no clerk, no time:
it stays on the counter for months.  Laid out by :func:`printer.layout.sticker_blocks`, made
into bytes by :func:`printer.render.sticker_bytes`; the spooler prints it like a receipt (it
is never kept in the spool directory: it is printed on a technician's command, who waits).
"""

from __future__ import annotations

from dataclasses import dataclass

from printer.errors import ReceiptError
from printer.receipt import _URL_RE, HALL_MAX, URL_MAX, WINDOW_MAX, _text


@dataclass(frozen=True)
class Sticker:
    """One sticker; the constructor checks every field (:class:`ReceiptError`).  ``hall`` and
    ``window`` may be empty (their lines are left out); ``url`` may not."""

    hall: str
    window: str
    url: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "hall", _text(self.hall, "hall", HALL_MAX, required=False))
        object.__setattr__(self, "window", _text(self.window, "window", WINDOW_MAX, required=False))
        url = self.url
        if not isinstance(url, str) or not _URL_RE.match(url) or len(url) > URL_MAX:
            raise ReceiptError(f"url must be 1–{URL_MAX} printable ASCII characters without spaces")
