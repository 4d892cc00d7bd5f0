"""The configuration reference, generated from the annotated ``config/default.toml``
(``evaluator config reference``).

``default.toml`` is the schema (:mod:`evaluator.config`): its keys are the only keys.  Each key
has comment lines above it: a description, then its annotation ::

    # Broker TCP port; ...                                  <- the description (may be absent
    # Type: integer from 1 to 65535.  Default: 1883.  Example: port = 1884     for a key of a group)
    port = 1883

(``Type:``, ``Default:`` and ``Example:`` may each start a new comment line).  The reference in
docs/technician.md is this text, between :data:`START` and :data:`END`, so it can never drift
from the file: a key without an annotation, an annotation without its key, a ``Default:`` that is
not the value the key is set to, or an ``Example:`` that is not a setting of that key is refused
with the file, line and ``section.key`` -- every one at once, like ``config check``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.config import default_config_path, parse_duration
from evaluator.rules.errors import EvaluatorError

__all__ = [
    "END",
    "REGENERATE",
    "START",
    "AnnotationError",
    "KeyDoc",
    "SectionDoc",
    "cmd_reference",
    "extract",
    "read_annotations",
    "reference",
    "splice",
    "write_reference",
]

#: The lines around the generated reference in a Markdown file (docs/technician.md).
START = "<!-- configref:start -->"
END = "<!-- configref:end -->"
#: The command that regenerates the reference in the technician's guide.
REGENERATE = "evaluator config reference --out docs/technician.md"

_SECTION = re.compile(r"^\[([A-Za-z0-9_-]+)\]\s*(?:#.*)?$")
_KEY = re.compile(r"^([A-Za-z0-9_-]+)\s*=")
_ANNOTATION = re.compile(
    r"^Type:\s*(?P<type>.*?)\s*Default:\s*(?P<default>.*?)\s*Example:\s*(?P<example>.*?)\s*$"
)
#: A TOML value at the start of a ``Default:``: a string, an array, or a bare word (number,
#: boolean, hex integer).
_LITERAL = re.compile(r'^("(?:[^"\\]|\\.)*"|\'[^\']*\'|\[[^\]]*\]|[-+]?[0-9A-Za-z_.:+]+)(.*)$')


class AnnotationError(EvaluatorError, ValueError):
    """``default.toml`` cannot make the reference; carries every problem, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class KeyDoc:
    """One key as ``default.toml`` documents it."""

    section: str
    name: str
    type: str
    """The ``Type:`` text, e.g. ``integer from 1 to 65535``."""
    default: str
    """The ``Default:`` value as written (``0x82``, ``"30s"``); it is the key's value."""
    default_note: str
    """What follows that value in ``Default:``, e.g. ``(7 days)``; ``""`` for none."""
    example: str
    """The ``Example:`` setting, e.g. ``port = 1884``."""
    description: str
    """The comment lines above the annotation, joined; ``""`` for a key of a group (the
    description of the key above it covers it, as for the five ``[buttons]`` pins)."""
    line: int
    """The key's line in the file (1-based)."""

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


@dataclass(frozen=True)
class SectionDoc:
    """One ``[section]``: its keys in the file's order and the comment that opens it, if any (a
    block after the header that a blank line separates from the first key)."""

    name: str
    intro: str
    keys: tuple[KeyDoc, ...]


@dataclass
class _Block:
    lines: list[tuple[int, str]]  # (line number, text without "#")

    @property
    def first(self) -> int:
        return self.lines[0][0]


def _comment(line: str) -> str | None:
    stripped = line.strip()
    if not stripped.startswith("#"):
        return None
    return stripped[1:].strip()


def read_annotations(path: Path | None = None) -> list[SectionDoc]:
    """Every section and key of the annotated default ``path`` (the shipped
    ``config/default.toml`` when None), checked; :class:`AnnotationError` names every key
    whose annotation is missing, incomplete or wrong, and every annotation without its key."""
    path = default_config_path() if path is None else Path(path)
    text = path.read_text(encoding="utf-8")
    label = _label(path)
    try:
        values: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AnnotationError([f"{label}: not TOML: {exc}"]) from exc
    problems: list[str] = []
    sections: list[SectionDoc] = []
    current: str | None = None
    intro = ""
    keys: list[KeyDoc] = []
    block: _Block | None = None
    seen: set[str] = set()

    def orphan(done: _Block | None) -> None:
        """A comment block that no key follows: an annotation there has lost its key."""
        nonlocal intro
        if done is None:
            return
        joined = " ".join(t for _, t in done.lines)
        if "Type:" in joined or "Example:" in joined:
            example = re.search(r"Example:\s*([A-Za-z0-9_-]+)\s*=", joined)
            named = f"{current}.{example.group(1)}" if current and example else "a key"
            problems.append(
                f"{label}:{done.first}: an annotation for {named}, which does not "
                "exist (no key follows it): remove the annotation or add the key"
            )
        elif current is not None and not keys and not intro:
            intro = joined

    def close_section() -> None:
        if current is not None:
            sections.append(SectionDoc(current, intro, tuple(keys)))

    for number, line in enumerate(text.splitlines(), start=1):
        comment = _comment(line)
        if comment is not None:
            block = block or _Block([])
            block.lines.append((number, comment))
            continue
        if not line.strip():
            orphan(block)
            block = None
            continue
        header = _SECTION.match(line)
        if header:
            orphan(block)
            block = None
            close_section()
            current, intro, keys = header.group(1), "", []
            continue
        key = _KEY.match(line)
        if key and current is not None:
            doc = _key_doc(label, current, key.group(1), number, block, values, problems)
            if doc is not None:
                keys.append(doc)
            seen.add(f"{current}.{key.group(1)}")
        block = None  # a value's continuation line or a key ends the block above it
    orphan(block)
    close_section()
    if not sections:
        problems.append(f"{label}: no [section]: this is not the annotated default")
    for section, table in values.items():
        if not isinstance(table, dict):
            problems.append(f"{label}: {section}: a key outside any [section]")
            continue
        for name in table:
            if f"{section}.{name}" not in seen:
                problems.append(
                    f"{label}: {section}.{name}: not written as 'name = value' on a "
                    "line of its own under [" + section + "], so it has no annotation"
                )
    if problems:
        raise AnnotationError(problems)
    return sections


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _key_doc(
    label: str,
    section: str,
    name: str,
    line: int,
    block: _Block | None,
    values: dict[str, Any],
    problems: list[str],
) -> KeyDoc | None:
    where = f"{label}:{line}: {section}.{name}"
    lines = block.lines if block is not None else []
    start = next((i for i, (_, t) in enumerate(lines) if t.startswith("Type:")), None)
    if start is None:
        problems.append(
            f"{where}: no annotation: write the comment lines above it, a "
            "description then '# Type: …  Default: …  Example: …'"
        )
        return None
    description = " ".join(t for _, t in lines[:start] if t)
    annotation = " ".join(t for _, t in lines[start:] if t)
    match = _ANNOTATION.match(annotation)
    if match is None:
        missing = [part for part in ("Default:", "Example:") if part not in annotation]
        problems.append(
            f"{where}: the annotation lacks {' and '.join(missing) or 'its order'}: "
            "write '# Type: …  Default: …  Example: …'"
        )
        return None
    kind = match["type"].rstrip(".").strip()
    default_text = match["default"].rstrip(".").strip()
    example = match["example"].strip()
    value = values.get(section, {}).get(name)
    literal, note = _split_default(default_text)
    bad = len(problems)
    if literal is None:
        problems.append(f"{where}: 'Default: {default_text}' does not start with a TOML value")
    elif _parse_value(literal) != (value,) or type(_parse_value(literal)[0]) is not type(value):
        problems.append(
            f"{where}: 'Default: {literal}' but the key is set to {_toml(value)}: make them agree"
        )
    setting = _parse_setting(example)
    if setting is None or setting[0] != name:
        problems.append(
            f"{where}: 'Example: {example}' is not a setting of {name} "
            f"(write 'Example: {name} = …')"
        )
    elif not _same_kind(setting[1], value):
        problems.append(
            f"{where}: 'Example: {example}' is not a {kind.split(',')[0]} like the "
            f"default {_toml(value)}"
        )
    if len(problems) > bad:
        return None
    assert literal is not None
    return KeyDoc(section, name, kind, literal, note, example, description, line)


def _split_default(text: str) -> tuple[str | None, str]:
    match = _LITERAL.match(text)
    if match is None or _parse_value(match.group(1)) is None:
        return None, ""
    note = match.group(2).strip()
    return match.group(1), note


def _parse_value(literal: str) -> tuple[Any] | None:
    try:
        return (tomllib.loads(f"v = {literal}")["v"],)
    except tomllib.TOMLDecodeError:
        return None


def _parse_setting(example: str) -> tuple[str, Any] | None:
    try:
        table = tomllib.loads(example)
    except tomllib.TOMLDecodeError:
        return None
    if len(table) != 1:
        return None
    ((name, value),) = table.items()
    return name, value


def _same_kind(example: Any, default: Any) -> bool:
    """The example is a value of the key's type (a duration for a duration, a whole number for
    an integer, a number for a number)."""
    if isinstance(default, bool) or isinstance(example, bool):
        return type(example) is type(default)
    if isinstance(default, float):
        return isinstance(example, int | float)
    if isinstance(default, str) and isinstance(example, str):
        return _is_duration(default) <= _is_duration(example)
    if isinstance(default, list) and isinstance(example, list):
        return all(isinstance(item, str) for item in example)
    return type(example) is type(default)


def _is_duration(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


# --------------------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    """``text`` safe in a Markdown table cell: ``|`` escaped everywhere, and outside code spans
    ``<`` (an HTML tag to a renderer: ``<dir>`` would vanish) and ``*`` (emphasis), escaped
    with a backslash so that the raw file reads as well."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            part = part.replace("<", r"\<").replace("*", r"\*")
        out.append(part.replace("|", r"\|"))
    return "".join(out)


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", r"\|")


def reference(path: Path | None = None, *, number: str = "2") -> str:
    """The reference as Markdown (what goes between :data:`START` and :data:`END`): per
    section a heading ``### {number}.N `[section]``` and a table of its keys with type,
    default, example and description.  Raises :class:`AnnotationError`."""
    sections = read_annotations(path)
    out = [
        f"<!-- generated from config/default.toml: edit that file, then run `{REGENERATE}` -->",
    ]
    for index, section in enumerate(sections, start=1):
        out += ["", f"### {number}.{index} `[{section.name}]`", ""]
        if section.intro:
            out += [_md(section.intro), ""]
        out += ["| Key | Type | Default | Example | Description |", "|---|---|---|---|---|"]
        group = ""
        for key in section.keys:
            if key.description:
                group = key.dotted
                description = _md(key.description)
            else:
                description = f"As `{group}` above." if group else ""
            default = _code(key.default) + (f" {_md(key.default_note)}" if key.default_note else "")
            out.append(
                f"| `{key.dotted}` | {_md(key.type)} | {default} | {_code(key.example)} "
                f"| {description} |"
            )
    return "\n".join(out) + "\n"


def splice(document: str, generated: str) -> str:
    """``document`` with the text between its :data:`START` and :data:`END` lines replaced by
    ``generated``; ``ValueError`` unless each marker is there once, in that order."""
    if document.count(START) != 1 or document.count(END) != 1:
        raise ValueError(f"needs one {START} line and one {END} line after it")
    head, rest = document.split(START, 1)
    if END not in rest:
        raise ValueError(f"{END} comes before {START}")
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{generated}{END}{tail}"


def extract(document: str) -> str:
    """The text between the markers of ``document`` (what :func:`splice` put there)."""
    if document.count(START) != 1 or document.count(END) != 1:
        raise ValueError(f"needs one {START} line and one {END} line after it")
    inner = document.split(START, 1)[1].split(END, 1)[0]
    return inner.removeprefix("\n")


def write_reference(out: Path, source: Path | None = None) -> bool:
    """Write the reference to ``out``: between its markers when it is a file that has them
    (docs/technician.md), else the whole file.  ``True`` when the file changed."""
    generated = reference(source)
    out = Path(out)
    before = out.read_text(encoding="utf-8") if out.is_file() else None
    after = splice(before, generated) if before and START in before else generated
    if after == before:
        return False
    out.write_text(after, encoding="utf-8")
    return True


def cmd_reference(out: Path | None, source: Path | None = None) -> int:
    """``evaluator config reference [--out FILE] [--defaults FILE]``: print the reference, or
    write it to ``out`` (between its markers when it has them); exit 0.  An annotation
    problem raises :class:`AnnotationError` (the CLI prints every line, exit 2)."""
    if out is None:
        print(reference(source), end="")
        return 0
    changed = write_reference(out, source)
    print(f"{out}: {'written' if changed else 'up to date'}")
    return 0
