"""The printer's state, from its answers to ``DLE EOT n`` (real-time status).

=============  ==============================================================================
state          when
=============  ==============================================================================
``ok``         the printer answered and reports no fault (``detail`` says "paper near end")
``offline``    it cannot be reached, took no data within the timeout, did not answer although
               its profile says it does, or says it is offline or in error
``paper_out``  it says the roll is out (``DLE EOT 4`` bits 5–6, or ``DLE EOT 2`` bit 5)
``cover_open`` it says the cover is open (``DLE EOT 2`` bit 2)
``unknown``    nothing is known yet, or the printer has no back channel: a receipt went out and
               nobody can tell whether paper came out.  Never reported as ``paper_out``:
               python-escpos's ``paper_status()`` returns 0, "no paper", when it got no answer.
=============  ==============================================================================

A status byte is only believed when its fixed bits are right (bits 0 and 7 clear, 1 and 4 set):
a garbled or stray byte counts as no answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from printer.commands import STATUS_OFFLINE, STATUS_PAPER, STATUS_PRINTER

OK = "ok"
OFFLINE = "offline"
PAPER_OUT = "paper_out"
COVER_OPEN = "cover_open"
UNKNOWN = "unknown"
STATES: tuple[str, ...] = (OK, OFFLINE, PAPER_OUT, COVER_OPEN, UNKNOWN)
#: The requests asked, in order: printer, offline cause, roll paper sensor.
REQUESTS: tuple[int, ...] = (STATUS_PRINTER, STATUS_OFFLINE, STATUS_PAPER)
#: The answers of a healthy printer.
HEALTHY: dict[int, int] = {STATUS_PRINTER: 0x12, STATUS_OFFLINE: 0x12, STATUS_PAPER: 0x12}

NO_ANSWER = "the printer did not answer the status request (DLE EOT)"


@dataclass(frozen=True)
class Reading:
    """A state and why, for the technician."""

    state: str
    detail: str


def valid(byte: int | None) -> bool:
    """Whether ``byte`` is a status byte: bits 0 and 7 clear, bits 1 and 4 set."""
    return byte is not None and byte & 0x93 == 0x12


def reading(replies: Mapping[int, int | None]) -> Reading:
    """The state the answers to ``DLE EOT 1, 2, 4`` say (``None``: no answer)."""
    printer, cause, paper = (r if valid(r) else None for r in (replies.get(n) for n in REQUESTS))
    if cause is not None and cause & 0x04:
        return Reading(COVER_OPEN, "the printer says its cover is open")
    if (paper is not None and paper & 0x60) or (cause is not None and cause & 0x20):
        return Reading(PAPER_OUT, "the printer says it is out of paper")
    if cause is not None and cause & 0x40:
        return Reading(OFFLINE, "the printer reports an error (cutter jam, head too hot…)")
    if printer is not None and printer & 0x08:
        return Reading(OFFLINE, "the printer says it is offline")
    if printer is None and cause is None and paper is None:
        return Reading(UNKNOWN, NO_ANSWER)
    if paper is not None and paper & 0x0C:
        return Reading(OK, "paper near end")
    return Reading(OK, "")
