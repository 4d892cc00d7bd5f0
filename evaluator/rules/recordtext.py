"""Which text of a sealed record a person reads, and whether the pad could have shown it.

The pad takes a record's texts from the business system (clerk, matter, agencies, theme,
terminal) and from its own screens (reasons, the typed 其他 comment), and refuses any that holds
a character it cannot show (:func:`evaluator.rules.request.unshowable`: controls such as
``\\t \\r \\n``, format characters such as bidi overrides, surrogates, private use, unassigned,
line and paragraph separators).  So a record carrying one was not made by an honest pad: the
city's receiver refuses it with :func:`shown_text_problem` (issue 16: it stored them, and a
name with a newline broke every list and sheet it reached).

Only the texts a person reads are checked.  An event's operator texts (a fault's ``message``,
the epoch's ``problem`` and ``kept_aside``, the technician's menu ``why``) come from the pad's
own code and may hold a newline from an error message; refusing them would stop that chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from evaluator.rules.request import unshowable

#: The top-level text fields (a string, or a list of strings) a person reads.
_TEXTS = ("terminal", "agencies", "agencies_concerned", "comment")
#: Objects (or lists of objects) and the text fields of each a person reads.
_NESTED: dict[str, tuple[str, ...]] = {
    "clerk": ("id", "name"),
    "theme": ("code", "name"),
    "cases": ("serial", "matter_code", "matter_name"),
    "reasons": ("code", "text"),
}


def shown_text_problem(record: Mapping[str, Any]) -> str | None:
    """Why a text of ``record`` could not come from a pad (naming the field and the character,
    never the text), or None.  Fields that are absent or not text are the schema's business."""
    for where, value in _shown_texts(record):
        # isprintable() (C, fast) is false for every character unshowable() refuses, and for
        # spaces other than U+0020: only then ask which character it is
        if not value.isprintable() and (bad := unshowable(value)) is not None:
            return (
                f"{where} holds {bad}, a character the pad never shows (control, format, "
                "surrogate, private-use, unassigned or line/paragraph separator)"
            )
    return None


def _shown_texts(record: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for name in _TEXTS:
        yield from _strings(name, record.get(name))
    for name, fields in _NESTED.items():
        value = record.get(name)
        items = value if isinstance(value, list) else [value]
        for n, item in enumerate(items):
            if isinstance(item, Mapping):
                where = f"{name}[{n}]" if isinstance(value, list) else name
                for field in fields:
                    yield from _strings(f"{where}.{field}", item.get(field))


def _strings(where: str, value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, list):
        yield from ((f"{where}[{n}]", v) for n, v in enumerate(value) if isinstance(v, str))
