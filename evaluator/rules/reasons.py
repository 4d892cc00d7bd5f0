"""差评 reasons (art. 11, 23, 27–29): loaded from a data file, validated at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluator.rules.errors import DataFileError
from evaluator.rules.levels import Level
from evaluator.rules.shipped import read_data_file, shipped_file

#: Who a reason is about: the clerk (窗口人员) or the matter / agency (办理事项).
TARGETS: tuple[str, ...] = ("clerk", "matter")

#: 其他: no national code; its free text travels as the rating's ``comment``.
OTHER_CODE = "other"
OTHER_TEXT = "其他"
#: Longest 其他 text accepted (national page limit), in characters.
COMMENT_MAX = 150


@dataclass(frozen=True)
class Reason:
    """One national reason: code, exact text, the bad level it belongs to, its target."""

    code: str
    text: str
    level: Level
    target: str
    text_en: str = ""
    """An English rendering for a pad set to English (``""``: none; the national text is shown).
    Display only: a rating carries the code, and the national ``text``."""

    def shown(self, language: str) -> str:
        """The text to show in ``language`` ("zh" or "en"): English only when it is given."""
        return self.text_en if language == "en" and self.text_en else self.text


@dataclass(frozen=True)
class ReasonCatalog:
    """The reason list in force, in file order."""

    version: str
    reasons: tuple[Reason, ...]

    def for_level(self, level: Level, targets: tuple[str, ...] = TARGETS) -> tuple[Reason, ...]:
        """Reasons offered for ``level`` limited to the rated ``targets``, in file order."""
        return tuple(r for r in self.reasons if r.level is level and r.target in targets)

    def get(self, code: str) -> Reason | None:
        """The reason with this code, or ``None``."""
        return next((r for r in self.reasons if r.code == code), None)


def default_reasons_path() -> Path:
    """The shipped national list, ``config/reasons.toml`` (checkout or installed package data)."""
    return shipped_file("reasons.toml")


def load_reasons(path: Path | None = None) -> ReasonCatalog:
    """Load and validate a reason file; ``DataFileError`` listing every problem otherwise.

    Every bad level must have at least one reason, codes are unique, levels are bad levels,
    targets are ``clerk`` or ``matter`` and texts are non-empty.
    """
    path = path or default_reasons_path()
    data, entries = read_data_file(path, "reason list", "reason")
    problems: list[str] = []
    reasons: list[Reason] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, start=1):
        where = f"{path}: reason #{i}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a table")
            continue
        unknown = set(entry) - {"code", "text", "text_en", "level", "target"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        code, text = str(entry.get("code", "")).strip(), str(entry.get("text", "")).strip()
        if not code or code == OTHER_CODE:
            problems.append(f"{where}: code {code!r} is empty or reserved")
        elif code in seen:
            problems.append(f"{where}: duplicate code {code!r}")
        seen.add(code)
        if not text:
            problems.append(f"{where}: empty text")
        try:
            level = Level.from_value(str(entry.get("level", "")))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if not level.is_bad:
            problems.append(f"{where}: level {level.value} is a 好评 level; only 差评 take reasons")
        target = entry.get("target")
        if target not in TARGETS:
            problems.append(f"{where}: target {target!r}; expected one of {', '.join(TARGETS)}")
            continue
        raw_en = entry.get("text_en", "")
        if not isinstance(raw_en, str):
            problems.append(f"{where}: text_en must be a string")
            raw_en = ""
        reasons.append(Reason(code, text, level, str(target), raw_en.strip()))
    for level in (Level.DISSATISFIED, Level.VERY_DISSATISFIED):
        if not any(r.level is level for r in reasons):
            problems.append(f"{path}: no reason for level {level.value} ({level.label})")
    if problems:
        raise DataFileError("\n".join(problems))
    return ReasonCatalog(str(data.get("version", "")), tuple(reasons))
