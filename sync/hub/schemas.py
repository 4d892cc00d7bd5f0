"""The published JSON Schemas (``docs/schemas/*.json``), loaded once per name.

In a checkout (or an editable install) they are read from ``docs/schemas``; an installed wheel
carries the same files as package data of ``sync.schemas`` (``pyproject.toml`` maps that package
to ``docs/schemas``), so the receiver validates against exactly what the integrator document
publishes, never a copy.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

#: The package that holds ``docs/schemas/*.json`` in an installed wheel.
DATA_PACKAGE = "sync.schemas"

_CHECKOUT = Path(__file__).resolve().parents[2]


def _text(name: str) -> str | None:
    in_checkout = _CHECKOUT / "docs" / "schemas" / name
    if (_CHECKOUT / "pyproject.toml").is_file() and in_checkout.is_file():
        return in_checkout.read_text(encoding="utf-8")
    import importlib.resources

    try:
        resource = importlib.resources.files(DATA_PACKAGE) / name
        return resource.read_text(encoding="utf-8") if resource.is_file() else None
    except (ModuleNotFoundError, FileNotFoundError):
        return None


@functools.cache
def schema(name: str) -> dict[str, Any] | None:
    """The schema ``docs/schemas/<name>.schema.json`` as a dict, ``None`` when not published."""
    text = _text(f"{name}.schema.json")
    return None if text is None else json.loads(text)


@functools.cache
def validator(name: str) -> Any:
    """A compiled ``jsonschema`` validator for ``name`` (draft 2020-12, formats not asserted),
    ``None`` when that schema is not published (yet).  Pure Python and slow (~1 ms a rating):
    it only explains a refusal (:func:`first_error`), the hot path is :func:`fast_validator`."""
    body = schema(name)
    if body is None:
        return None
    import jsonschema

    cls = jsonschema.validators.validator_for(body)
    cls.check_schema(body)
    return cls(body)


@functools.cache
def fast_validator(name: str) -> Any:
    """A ``jsonschema_rs`` validator (Rust, compiled once) for the same published schema
    ``name``, formats not asserted as in :func:`validator`, never fetching anything; ``None``
    when that schema is not published.  ~100× faster than the pure-Python validator: the
    receiver checks every message with it and asks :func:`validator` only why one failed."""
    body = schema(name)
    if body is None:
        return None
    import jsonschema_rs

    return jsonschema_rs.validator_for(body, validate_formats=False, offline=True)


def first_error(name: str, instance: Any) -> str | None:
    """The first way ``instance`` breaks schema ``name`` (path and message, ≤ 300 characters),
    ``None`` when it conforms or the schema is not published.

    A conforming instance costs one Rust check; a failing one is explained by the pure-Python
    validator (its messages are the ones the dead letters have always carried), or by the Rust
    one's own error when the two disagree (e.g. a pattern's ``$`` before a trailing newline,
    which Python's ``re`` accepts and ECMA 262, what JSON Schema specifies, does not).
    """
    fast = fast_validator(name)
    if fast is None:
        return None
    if fast.is_valid(instance):
        return None
    error = next(iter(validator(name).iter_errors(instance)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(record)"
        return f"schema {name}: {where}: {error.message}"[:300]
    rs_error = next(iter(fast.iter_errors(instance)), None)
    if rs_error is None:  # the Rust validator said no, then found nothing: trust the "no"
        return f"schema {name}: (record): does not conform"
    where = "/".join(str(p) for p in rs_error.instance_path) or "(record)"
    return f"schema {name}: {where}: {rs_error.message}"[:300]
