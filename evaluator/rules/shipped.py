"""The files shipped with the evaluator: ``config/default.toml``, ``config/reasons.toml``, ….

They live in the top-level ``config/`` folder of the checkout.  A wheel installs the same folder as
package data of ``evaluator.shipped_config`` (``pyproject.toml`` maps that package name to
``config/``), so an installed pad finds them with :mod:`importlib.resources` wherever it runs.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

#: The package that holds ``config/*.toml`` in an installed wheel.
DATA_PACKAGE = "evaluator.shipped_config"

_CHECKOUT = Path(__file__).resolve().parents[2]


def shipped_file(name: str) -> Path:
    """The absolute path of the shipped file ``config/<name>``.

    In a checkout (source tree or editable install: ``pyproject.toml`` next to ``config/``) that is
    the checkout's file; otherwise the installed package data.  When neither exists the checkout
    path is returned, so the caller's "file not found" names where it looked.
    """
    in_checkout = _CHECKOUT / "config" / name
    if (_CHECKOUT / "pyproject.toml").is_file() and in_checkout.is_file():
        return in_checkout
    try:
        resource = importlib.resources.files(DATA_PACKAGE) / name
    except ModuleNotFoundError:
        return in_checkout
    path = Path(str(resource))
    return path if path.is_file() else in_checkout
