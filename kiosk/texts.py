"""Every text the pad shows, from one data file (``config/texts.toml``), in the language chosen.

``texts.THANKS`` is the ``thanks`` text of that file in the current language (Simplified Chinese by
default; ``[screen] language = "en"`` selects English through :func:`select`, called once by the
wiring that picks the devices).  Templates use ``str.format`` fields.  Tests import these names
instead of repeating the text.

The file is read and checked when this module is imported: every text in every language, the
same ``{fields}`` in each, no unknown key.  A broken shipped file is a bug of the build, so it
raises :class:`~evaluator.rules.errors.DataFileError` at once, naming each problem.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evaluator.rules.errors import DataFileError
from evaluator.rules.levels import BUTTON_ORDER, Level
from evaluator.rules.shipped import shipped_file

#: The languages the pad speaks; the first is the default.
LANGUAGES: tuple[str, ...] = ("zh", "en")
DEFAULT_LANGUAGE = LANGUAGES[0]


def texts_path() -> Path:
    """The shipped text file, ``config/texts.toml`` (checkout or installed package data)."""
    return shipped_file("texts.toml")


def load_texts(path: Path) -> dict[str, dict[str, str]]:
    """``{language: {key: text}}`` from ``path``; :class:`DataFileError` lists every problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataFileError(f"{path}: cannot read the pad's texts: {exc}") from exc
    problems: list[str] = []
    table: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}
    for key, entry in data.items():
        if not isinstance(entry, dict):
            problems.append(f"{path}: [{key}] must be a table of languages")
            continue
        unknown = sorted(set(entry) - set(LANGUAGES))
        if unknown:
            problems.append(f"{path}: [{key}] has unknown languages {unknown}")
        fields: dict[str, set[str]] = {}
        for language in LANGUAGES:
            text = entry.get(language)
            if not isinstance(text, str) or not text:
                problems.append(f"{path}: [{key}] has no {language} text")
                continue
            try:
                fields[language] = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            except ValueError as exc:
                problems.append(f"{path}: [{key}] {language}: bad template: {exc}")
                continue
            table[language][key] = text
        if len({frozenset(f) for f in fields.values()}) > 1:
            shown = ", ".join(f"{lang} {sorted(f)}" for lang, f in fields.items())
            problems.append(f"{path}: [{key}] fields differ between languages: {shown}")
    missing = sorted(REQUIRED - set(data))
    if missing:
        problems.append(f"{path}: texts missing: {', '.join(missing)}")
    unknown_keys = sorted(set(data) - REQUIRED)
    if unknown_keys:
        problems.append(f"{path}: unknown texts (a typo?): {', '.join(unknown_keys)}")
    for level in BUTTON_ORDER:
        zh = table["zh"].get(_level_key(level))
        if zh is not None and zh != level.label:
            problems.append(
                f"{path}: [{_level_key(level)}] zh is {zh!r}; art. 10 names it {level.label!r}"
            )
    if problems:
        raise DataFileError("\n".join(problems))
    return table


def _level_key(level: Level) -> str:
    return f"level_{level.value}"


#: The technician's menu's texts (kiosk/draw_tech.py, evaluator/techmenu.py).
TECH_TEXTS: tuple[str, ...] = (
    "tech_title", "tech_pin_prompt", "tech_pin_wrong_fmt", "tech_locked_fmt", "tech_ok",
    "tech_cancel", "tech_item_test_print", "tech_item_button_test", "tech_item_reload_config",
    "tech_item_close", "tech_button_test_prompt", "tech_button_pressed_fmt", "tech_label_device",
    "tech_label_ip", "tech_label_broker", "tech_label_printer", "tech_label_counter",
    "tech_label_outbox", "tech_label_error", "tech_connected", "tech_disconnected", "tech_none",
    "tech_outbox_fmt", "tech_not_available", "tech_print_sent", "tech_reloaded", "tech_backspace",
    "tech_label_link", "tech_label_cert", "tech_link_fmt", "tech_link_until_fmt",
    "tech_cert_ok_fmt", "tech_cert_expiring_fmt", "tech_cert_expired_fmt", "tech_label_lost",
    "tech_lost_fmt",
)  # fmt: skip
#: The causes of a failed broker connection on the menu (``link_cause_<cause>``, one for each
#: of :data:`sync.linkerror.CAUSES`; tests/evaluator/test_techmenu.py checks they match).
LINK_CAUSES: tuple[str, ...] = (
    "refused", "dns", "unreachable", "timeout", "not_tls", "unknown_ca", "cert_expired",
    "cert_not_yet_valid", "name_mismatch", "cert_refused", "tls", "tls_files", "connack",
    "closed", "other",
)  # fmt: skip

#: Every key the pad uses (the names below, lower-case, and one per level button).
REQUIRED: frozenset[str] = frozenset(
    {
        "window_title",
        "present_title",
        "label_matter",
        "label_serial",
        "label_clerk",
        "label_clerk_id",
        "separator",
        "labelled_fmt",
        "batch_count_fmt",
        "batch_more_fmt",
        "batch_next_fmt",
        "batch_line_fmt",
        "theme_fmt",
        "button_expand_theme",
        "theme_item_fmt",
        "countdown_fmt",
        "label_terminal",
        "reasons_title_fmt",
        "group_clerk",
        "group_matter",
        "group_other",
        "other_reason",
        "group_agencies",
        "group_phrases",
        "comment_placeholder",
        "comment_counter_fmt",
        "submit_hint",
        "button_back",
        "button_submit",
        "thanks",
        "idle_welcome",
        "signed_out_title",
        "signed_out_subtitle",
        "paused_title",
        "idle_qr_caption",
        "screensaver_hint",
        "receipt_qr_title",
        "receipt_qr_note",
        "receipt_qr_code_fmt",
        "receipt_qr_hint",
        "storage_failed",
        "comment_identity",
        "storage_fault",
        *TECH_TEXTS,
        *(f"link_cause_{cause}" for cause in LINK_CAUSES),
        *(_level_key(level) for level in BUTTON_ORDER),
    }
)

_TABLE: dict[str, dict[str, str]] = load_texts(texts_path())
_current: str = DEFAULT_LANGUAGE


def select(language: str) -> str:
    """Show texts in ``language`` from now on; returns the language shown before.

    :class:`ValueError` for a language the file does not have (the config check names the
    choices before this is reached).
    """
    global _current
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    before, _current = _current, language
    return before


def language() -> str:
    """The language texts are shown in."""
    return _current


@contextmanager
def using(language: str) -> Iterator[None]:
    """Texts in ``language`` inside the block, the previous language after it."""
    before = select(language)
    try:
        yield
    finally:
        select(before)


def get(key: str, language: str | None = None) -> str:
    """The text ``key`` (lower-case file key) in ``language`` (default: the current one)."""
    return _TABLE[language or _current][key]


def level_label(level: Level) -> str:
    """The label of ``level``'s button in the current language (art. 10 names them in Chinese)."""
    return _TABLE[_current][_level_key(level)]


def __getattr__(name: str) -> str:
    """``texts.THANKS`` → the ``thanks`` text in the current language."""
    key = name.lower()
    if name.isupper() and key in _TABLE[_current]:
        return _TABLE[_current][key]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- operator-facing messages (logs and the config check; English, not shown to citizens) ---
FONT_CONFIGURED_MISSING_FMT = (
    "configured CJK font {path} does not exist or is not a file; fix the font path in the "
    "configuration or install fonts-wqy-microhei"
)
FONT_UNREADABLE_FMT = "CJK font {path} cannot be loaded: {error}"
FONT_NOT_FOUND_FMT = (
    "no CJK font found (searched: {paths}); install fonts-wqy-microhei "
    "(sudo apt install fonts-wqy-microhei) or configure a font path"
)
FONT_NO_HANZI_FMT = (
    "font {path} has no Chinese glyphs (hanzi would show as boxes); use a CJK font such as "
    "fonts-wqy-microhei or Noto Sans CJK SC"
)
