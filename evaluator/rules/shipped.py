"""The files shipped with the evaluator: ``config/default.toml``, ``config/reasons.toml``, ….

They live in the top-level ``config/`` folder of the checkout.  A wheel installs the same folder as
package data of ``evaluator.shipped_config`` (``pyproject.toml`` maps that package name to
``config/``), so an installed pad finds them with :mod:`importlib.resources` wherever it runs.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from evaluator.rules.errors import DataFileError

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
    import importlib.resources  # only outside a checkout (some ms of start-up otherwise)

    try:
        resource = importlib.resources.files(DATA_PACKAGE) / name
    except ModuleNotFoundError:
        return in_checkout
    path = Path(str(resource))
    return path if path.is_file() else in_checkout


def read_data_file(path: Path, what: str, table: str) -> tuple[dict[str, Any], list[Any]]:
    """The TOML data file ``path`` (a reason or phrase list) and its ``[[table]]`` entries.

    A UTF-8 BOM (Notepad) is accepted.  :class:`DataFileError` names the file and ``what`` it is
    when it cannot be read, is not UTF-8 or TOML, or has no ``[[table]]`` entries.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text (save it as UTF-8): {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(f"{path}: not valid TOML: {exc}") from exc
    entries = data.get(table)
    if not isinstance(entries, list) or not entries:
        raise DataFileError(f"{path}: no [[{table}]] entries")
    return data, entries


#: Where the screen searches for a CJK font when ``[screen] font = ""``, in order (Debian /
#: Raspberry Pi OS package locations).  One list for ``kiosk.fonts`` and ``config check``.
FONT_SEARCH_PATHS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc"),
    Path("/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc"),
    Path("/usr/share/fonts/truetype/noto/NotoSansCJKsc-Regular.otf"),
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
)
