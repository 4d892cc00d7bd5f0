"""The receipt printer (办件回执, art. 17(2)): a device adapter, beside the pad, never in its way.

What the wiring uses::

    from printer import ConnectionSpec, PrinterProfile, PrintSpooler, Receipt, open_printer

    spec = ConnectionSpec.from_config(table)     # kind: dummy, usb, serial, network, file
    profile = PrinterProfile.from_config(table)  # paper, text, qr, four_byte, cut, status…
    spooler = PrintSpooler(open_printer(spec), profile, spool_dir=…, on_change=…)
    spooler.start()
    spooler.submit(Receipt(...))                 # returns at once (or a Sticker: art. 17(3))
    spooler.status                               # PrinterStatus: state, detail, pending…
    spooler.stop()

and, with Pillow loaded only then, :func:`receipt_bytes` (the exact ESC/POS stream) and
:func:`preview` (that stream drawn as a PNG).  Imports only :mod:`evaluator.rules` and libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from printer.connection import ConnectionSpec, open_printer
from printer.errors import (
    DecodeError,
    PrinterConfigError,
    PrinterError,
    PrinterOffline,
    ReceiptError,
)
from printer.profile import PrinterProfile
from printer.receipt import Receipt
from printer.spooler import PrinterStatus, PrintSpooler
from printer.status import STATES
from printer.sticker import Sticker

if TYPE_CHECKING:
    from printer.preview import preview
    from printer.render import receipt_bytes

__all__ = [
    "STATES",
    "ConnectionSpec",
    "DecodeError",
    "PrintSpooler",
    "PrinterConfigError",
    "PrinterError",
    "PrinterOffline",
    "PrinterProfile",
    "PrinterStatus",
    "Receipt",
    "ReceiptError",
    "Sticker",
    "open_printer",
    "preview",
    "receipt_bytes",
]


def __getattr__(name: str) -> Any:
    # Pillow and qrcode are imported when a receipt is first built, not at the pad's start.
    if name == "receipt_bytes":
        from printer.render import receipt_bytes

        return receipt_bytes
    if name == "preview":
        from printer.preview import preview

        return preview
    raise AttributeError(f"module 'printer' has no attribute {name!r}")
