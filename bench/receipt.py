"""Receipt bytes built per second (issue 7): :func:`printer.render.receipt_bytes` from a
:class:`~printer.receipt.Receipt` to the whole ESC/POS stream, on the spooler's thread in the
pad (never in the citizen's path, but it sets how fast a queue drains and what a CPU it costs).

Each figure is beside a reference built in the same run, sample by sample in turn, so noise hits
both alike: at 58 mm and 80 mm, the image QR (``qrcode`` matrix drawn and sent as ``GS v 0``
raster) beside the native QR (``GS ( k``, the printer draws it), GB18030 text in both; and the
slowest mode, raster text with an image QR, beside the fastest, GB18030 text with a native QR.
Every sample builds a different receipt (its own serial, URL and short code), as the pad does;
font glyphs are cached, as they are after the pad's first receipt.

``python -m bench.receipt`` prints this table alone; ``python -m bench.run`` includes it.
"""

from __future__ import annotations

import datetime
import sys
import time

from bench.stats import Row, table
from printer.profile import PrinterProfile
from printer.receipt import Receipt
from printer.render import receipt_bytes

#: Samples of each figure and of its reference; built untimed first.
N, WARM_UP = 200, 10


def sample_link(n: int, serials: tuple[str, ...]) -> tuple[str, str]:
    """A real signed link for ``serials`` and its short code (the pad's format, a throw-away key
    fixed for the bench): 278 characters for a batch of two."""
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evaluator.rules.ratelink import CROCKFORD, make_link
    from sync.keys import DeviceKey

    key = DeviceKey(Path("(bench)"), Ed25519PrivateKey.from_private_bytes(bytes(32)))
    nonce = "".join(CROCKFORD[(n >> (5 * i)) % 32] for i in range(8))
    url, link = make_link(
        "https://hcp.example.org/r?{query}", device_id="440500-hall1-w12", serials=serials,
        matter_code="11440500MB2C9300XR4442111009000", clerk="A1023", now=1_795_744_800,
        key_id=key.key_id, sign=key.sign, nonce=nonce,
    )  # fmt: skip
    return url, link.short_code


def sample_receipt(n: int) -> Receipt:
    """Receipt ``n``: a batch of two cases and its signed link, as the pad makes them."""
    serials = (f"44050020261127{n:05d}0", f"44050020261127{n:05d}1")
    url, short_code = sample_link(n, serials)
    return Receipt(
        hall="汕头市政务服务中心",
        window="A12",
        matter_name="居民身份证换领",
        serials=serials,
        clerk_name="陈晓明",
        clerk_id="A1023",
        issued_at=datetime.datetime(2026, 11, 27, 10, 21),
        qr_url=url,
        short_code=short_code,
    )


def interleaved(a: PrinterProfile, b: PrinterProfile) -> tuple[list[float], list[float]]:
    """Milliseconds to build a receipt for ``a`` and for ``b``, one sample of each in turn."""
    for n in range(WARM_UP):
        receipt_bytes(sample_receipt(n), a)
        receipt_bytes(sample_receipt(n), b)
    times_a: list[float] = []
    times_b: list[float] = []
    for n in range(N):
        order = [(a, times_a), (b, times_b)]
        if n % 2:
            order.reverse()
        for profile, times in order:
            made = sample_receipt(WARM_UP + n)
            t0 = time.perf_counter()
            receipt_bytes(made, profile)
            times.append((time.perf_counter() - t0) * 1000)
    return times_a, times_b


def per_second(times_ms: list[float]) -> str:
    ordered = sorted(times_ms)
    return f"{1000 / ordered[len(ordered) // 2]:.0f}/s"


def rows() -> list[Row]:
    """The table rows (median and p99 in ms; the receipts a second in each name)."""
    out = []
    for paper in ("58mm", "80mm"):
        image = PrinterProfile(paper=paper, qr="image")
        native = PrinterProfile(paper=paper, qr="native")
        t_image, t_native = interleaved(image, native)
        size = f"{paper[:2]} mm, {len(receipt_bytes(sample_receipt(0), image)) // 1024} KB"
        out.append(
            Row(
                f"receipt bytes, image QR, {size} ({per_second(t_image)})",
                "ms",
                t_image,
                f"native QR, same receipt ({per_second(t_native)})",
                t_native,
            )
        )
    slow = PrinterProfile(paper="80mm", text="raster", qr="image")
    fast = PrinterProfile(paper="80mm")
    t_slow, t_fast = interleaved(slow, fast)
    size = len(receipt_bytes(sample_receipt(0), slow)) // 1024
    out.append(
        Row(
            f"receipt bytes, raster text + image QR, 80 mm, {size} KB ({per_second(t_slow)})",
            "ms",
            t_slow,
            f"GB18030 text + native QR ({per_second(t_fast)})",
            t_fast,
        )
    )
    return out


def main() -> int:
    print(table(rows()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
