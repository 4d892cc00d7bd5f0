"""Reloading the configuration of a running pad (SIGHUP, ``systemctl reload``, the technician's
menu): what can change at run time is applied, what cannot is named.

The pad re-reads the same search it started with (:func:`evaluator.config.config_files`: the
installed files, a drop-in added or removed since included, then its ``--config`` files).  A
configuration with any problem changes nothing: every problem is logged and the running
configuration stays.  Otherwise each changed key is either applied (:data:`LIVE`) or logged as
``needs a restart: [section] key`` — the running pad keeps its old value for it, so what it does
always matches what it says.  Values are never logged (a changed password is named, not shown).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluator.config import (
    Config,
    check_config,
    config_files,
    load_config,
    system_config_files,
)
from evaluator.rules.errors import ConfigError

if TYPE_CHECKING:
    from evaluator.app import App

log = logging.getLogger(__name__)

#: Keys a running pad takes over at once.  The texts' language and the idle screen are read
#: from the configuration at every drawing; the session's timings and lists apply from the next
#: presentation on (an open one keeps its deadline and its reasons).
LIVE: frozenset[tuple[str, str]] = frozenset(
    {
        ("screen", "language"),
        ("session", "timeout"),
        ("session", "thanks"),
        ("session", "followup_window"),
        ("session", "followup_gap"),
        ("session", "visit_gap"),
        ("session", "press_guard"),
        ("session", "reasons_file"),
        ("session", "phrases_file"),
        ("idle", "static_qr"),
        ("idle", "screensaver_after"),
    }
)

#: Sections of :class:`Config` (its other field, ``sources``, is no key).
SECTIONS = tuple(f.name for f in dataclasses.fields(Config) if f.name != "sources")


def changed_keys(old: Config, new: Config) -> list[tuple[str, str]]:
    """``(section, key)`` of every value that differs, in the order of the config."""
    changes = []
    for section in SECTIONS:
        before, after = getattr(old, section), getattr(new, section)
        for f in dataclasses.fields(before):
            if getattr(before, f.name) != getattr(after, f.name):
                changes.append((section, f.name))
    return changes


def command_line_files(config: Config) -> list[Path]:
    """The ``--config`` files a running pad was started with: its sources after the packaged
    default that are not installed files."""
    installed = {p.resolve() for p in system_config_files()}
    return [p for p in config.sources[1:] if p not in installed]


def reload(app: App) -> list[str]:
    """Re-read and apply (module docstring); the messages, also logged."""
    old = app.config
    files = config_files(command_line_files(old))
    try:
        problems: list[Any] = check_config(files)  # what ``run`` needs too: lists, font
        new = load_config(files) if not problems else None
    except ConfigError as exc:
        problems = getattr(exc, "problems", None) or str(exc).splitlines()
    if problems or new is None:
        messages = [f"config reload refused: {p}" for p in problems]
        messages.append("config reload: the running configuration stays")
        for message in messages:
            log.error("%s", message)
        return messages
    changes = changed_keys(old, new)
    live = [c for c in changes if c in LIVE]
    later = [c for c in changes if c not in LIVE]
    sections: dict[str, dict[str, Any]] = {}
    for section, key in live:
        sections.setdefault(section, {})[key] = getattr(getattr(new, section), key)
    app.config = dataclasses.replace(
        old,
        sources=new.sources,
        **{s: dataclasses.replace(getattr(old, s), **keys) for s, keys in sections.items()},
    )
    _apply(app, {c for c in live})
    messages = [f"reloaded: [{s}] {k}" for s, k in live]
    messages += [f"needs a restart: [{s}] {k}" for s, k in later]
    if not changes:
        messages.append("config reload: nothing changed")
    log.info("config reload from %s", ", ".join(map(str, files)))
    for message in messages:
        (log.warning if message.startswith("needs") else log.info)("%s", message)
    return messages


def _apply(app: App, keys: set[tuple[str, str]]) -> None:
    """Hand the new values to the parts that keep their own copy; the reason and phrase lists
    are read again even when their path is the same (their content is what changed)."""
    from evaluator.rules.phrases import shipped_phrases
    from evaluator.rules.reasons import load_reasons

    cfg = app.config
    session = app.session
    session.timeout = cfg.session.timeout
    session.thanks = cfg.session.thanks
    session.followup_window = cfg.session.followup_window
    session.followup_gap = cfg.session.followup_gap
    session.visit_gap = cfg.session.visit_gap
    app.press_filter.guard = cfg.session.press_guard
    reasons = load_reasons(cfg.session.reasons_file)
    if session.rating_open:  # an open rating screen keeps the reasons it offers; the next gets
        session.next_reasons = reasons  # the new list (it was lost when set nowhere)
    else:
        session.reasons, session.next_reasons = reasons, None
    app.phrases = shipped_phrases.__wrapped__(cfg.session.phrases_file)  # not the cached list
    app.redraw()
