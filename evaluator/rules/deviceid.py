"""What a pad's device id may be: one rule for every step that takes one.

A device id travels far: the pad's ``[device] id`` (``evaluator config check``), the folder and
sheet row of ``evaluator provision``, the CN of the pad's TLS certificate (``evaluator tls
sign``), the key the city registers (``evaluator hub register``), and a level of every MQTT topic
the broker's ACL builds from the CN (``hcp/v1/%u/ratings``).  An id any of those steps would
refuse must be refused by all of them, at the first one, with the same words; so the rule lives
here, below both the pad and the city receiver.

Refused, and why:

- outside ``[A-Za-z0-9._-]{1,64}``: ``/`` ``+`` ``#`` would reach other topics, anything else
  (full-width letters, spaces, accents) no broker user name or certificate CN of ours carries;
- ``hub-…``: the receivers' certificate names, which the ACL lets read every pad (signing a pad
  with one would hand it the city's view; the CA refuses);
- ``_hub``: the receiver's own topic level (its dead letters);
- ``.`` and ``..``: a pad's folder in ``evaluator provision`` and ``evaluator tls sign-batch``.
"""

from __future__ import annotations

import re
import unicodedata

#: The characters and length of a device id (also an MQTT user name and a topic level).
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: The CN prefix of the city's receivers: the ACL lets ``hub-…`` users read every pad.
RECEIVER_PREFIX = "hub-"
#: Ids that match :data:`DEVICE_ID_RE` but name no pad: a topic level the receiver owns, and
#: the folder names ``.`` and ``..``.
RESERVED_DEVICE_IDS = frozenset({"_hub", ".", ".."})
#: What a device id must be, in words (every refusal says it).
DEVICE_ID_EXPECTED = (
    "expected 1 to 64 letters, digits, '.', '_' or '-' (it goes into MQTT topics), "
    f"not starting with {RECEIVER_PREFIX!r} (a receiver's name) and not "
    + ", ".join(repr(r) for r in sorted(RESERVED_DEVICE_IDS))
)


def device_id_problem(device_id: object) -> str | None:
    """Why ``device_id`` cannot be a pad's device id, in the words every step uses, or None."""
    text = str(device_id)
    if not DEVICE_ID_RE.fullmatch(text):
        return f"{text!r} is no pad's device id: {DEVICE_ID_EXPECTED}{_hint(text)}"
    if text in RESERVED_DEVICE_IDS:
        return f"{text!r} is reserved, no pad's device id: {DEVICE_ID_EXPECTED}"
    if text.startswith(RECEIVER_PREFIX):
        return f"{text!r} is a receiver's name, no pad's device id: {DEVICE_ID_EXPECTED}"
    return None


def _hint(text: str) -> str:
    if "/" in text or "+" in text or "#" in text:
        return " ('/', '+' and '#' would reach other pads' topics)"
    narrow = unicodedata.normalize("NFKC", text)
    if narrow != text and device_id_problem(narrow) is None:
        return f"; did you mean {narrow!r}? (full-width characters)"
    return ""
