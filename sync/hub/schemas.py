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
    ``None`` when that schema is not published (yet)."""
    body = schema(name)
    if body is None:
        return None
    import jsonschema

    cls = jsonschema.validators.validator_for(body)
    cls.check_schema(body)
    return cls(body)


def first_error(name: str, instance: Any) -> str | None:
    """The first way ``instance`` breaks schema ``name`` (path and message, ≤ 300 characters),
    ``None`` when it conforms or the schema is not published."""
    check = validator(name)
    if check is None:
        return None
    error = next(iter(check.iter_errors(instance)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(record)"
    return f"schema {name}: {where}: {error.message}"[:300]
