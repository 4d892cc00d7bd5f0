"""Config on an installed device: packaged defaults, ``evaluator.toml``, ``conf.d/*.toml`` in
name order, then ``--config`` files; ``schema_version``; ``config show`` / ``check`` without files.

Real files in a temporary folder standing in for ``/etc/evaluator`` (``EVALUATOR_CONFIG_DIR``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from evaluator import config as cfg
from evaluator.cli import main
from evaluator.config import (
    SCHEMA_VERSION,
    SchemaChange,
    check_config,
    config_files,
    load_config,
    show_config,
    system_config_files,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in for /etc/evaluator: the site file and three drop-ins written out of order."""
    root = tmp_path / "etc"
    write(root / "evaluator.toml", '[device]\nid = "pad-site"\nschema_version = 2\n'
          '[mqtt]\nhost = "site.broker"\nport = 1884\npassword = "hunter2"\n'
          '[storage]\npath = "var/ratings.db"\n')  # fmt: skip
    write(root / "conf.d/50-window.toml", '[device]\nid = "pad-w12"\n[mqtt]\nport = 1885\n')
    write(root / "conf.d/10-hall.toml", '[mqtt]\nport = 1999\nhost = "hall.broker"\n')
    write(root / "conf.d/.90-hidden.toml", "this is no TOML at all\n")
    write(root / "conf.d/README", "not a .toml file: never read\n")
    monkeypatch.setenv(cfg.CONFIG_DIR_ENV, str(root))
    return root


def test_installed_files_in_order_then_the_command_line(etc: Path, tmp_path: Path) -> None:
    assert system_config_files() == [
        etc / "evaluator.toml", etc / "conf.d/10-hall.toml", etc / "conf.d/50-window.toml"
    ]  # fmt: skip
    extra = write(tmp_path / "cli.toml", '[mqtt]\nkeepalive = "45s"\nport = 2000\n')
    c = load_config(config_files([extra]))
    assert c.device.id == "pad-w12"  # conf.d/50 over evaluator.toml
    assert c.mqtt.host == "hall.broker"  # conf.d/10 over evaluator.toml, 50 does not set it
    assert c.mqtt.port == 2000  # the command line last
    assert c.mqtt.keepalive == 45.0
    # a relative path resolves against the file that set it, not the working directory
    assert c.storage.path == etc / "var" / "ratings.db"
    assert c.sources[1:] == (etc / "evaluator.toml", etc / "conf.d/10-hall.toml",
                             etc / "conf.d/50-window.toml", extra)  # fmt: skip


def test_the_site_file_given_again_is_not_read_twice(etc: Path) -> None:
    """``--config /etc/evaluator/evaluator.toml`` (the old unit) must not undo the drop-ins."""
    files = config_files([etc / "evaluator.toml"])
    assert files == system_config_files()
    assert load_config(files).mqtt.port == 1885


def test_no_folder_no_site_file_and_an_empty_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cfg.CONFIG_DIR_ENV, str(tmp_path / "nothing-here"))
    assert system_config_files() == []
    only_dropin = write(tmp_path / "d" / "conf.d" / "a.toml", "[device]\nid = 'x'\n")
    assert system_config_files(tmp_path / "d") == [only_dropin]
    monkeypatch.setenv(cfg.CONFIG_DIR_ENV, "")
    write(tmp_path / "evaluator.toml", "")
    assert system_config_files() == []  # set but empty: no folder is read
    assert system_config_files(tmp_path) == [tmp_path / "evaluator.toml"]


def test_a_broken_dropin_is_named_by_the_check(etc: Path) -> None:
    write(etc / "conf.d/20-typo.toml", '[mqtt]\nhots = "x"\n')
    problems = [str(p) for p in check_config(config_files())]
    assert problems == [f"{etc}/conf.d/20-typo.toml:2: mqtt.hots = \"x\": unknown key in [mqtt]; "
                        "did you mean 'host'?"]  # fmt: skip


def test_run_without_any_configuration_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(cfg.CONFIG_DIR_ENV, str(tmp_path))
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert f"no configuration: no {tmp_path}/evaluator.toml or conf.d/*.toml, and no" in err


# --------------------------------------------------------------------------- config show / check


def test_config_show_names_the_file_and_line_of_every_value_and_masks_secrets(etc: Path) -> None:
    text, problems = show_config(config_files())
    assert problems == []
    lines = text.splitlines()
    assert f'id = "pad-w12"  # {etc}/conf.d/50-window.toml:2' in lines
    assert f'host = "hall.broker"  # {etc}/conf.d/10-hall.toml:3' in lines
    assert f'password = "***"  # {etc}/evaluator.toml:7' in lines
    assert "hunter2" not in text
    assert f'path = "{etc}/var/ratings.db"  # {etc}/evaluator.toml:9' in lines
    assert 'followup_window = "168h"  # default' in lines  # as a technician writes it
    assert 'press_guard = "300ms"  # default' in lines
    assert lines.index("[device]") < lines.index("[mqtt]") < lines.index("[printer]")


def test_config_show_and_check_without_files_read_what_run_reads(
    etc: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {etc}/evaluator.toml, ")
    write(etc / "conf.d/60-bad.toml", "[session]\ntimeout = 60\n")
    assert main(["config", "check"]) == 2
    assert "60-bad.toml:2: session.timeout = 60: durations need a unit" in capsys.readouterr().out
    assert main(["config", "show"]) == 2  # shown all the same, the problems on stderr
    out, err = capsys.readouterr()
    assert 'id = "pad-w12"' in out and "60-bad.toml:2: session.timeout" in err


# --------------------------------------------------------------------------- schema_version


def test_the_default_declares_the_current_version() -> None:
    assert SCHEMA_VERSION == 2
    assert load_config([Path("config/demo.toml")]).device.schema_version == 2


def test_a_file_without_a_version_is_version_1_read_as_2_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = write(tmp_path / "old.toml", '[device]\nid = "pad-1"\n')
    caplog.set_level(logging.INFO, "evaluator.config")
    c = load_config([old])
    load_config([old])  # read again (a reload): logged once
    assert c.device.schema_version == SCHEMA_VERSION
    assert (f"{old}: configuration version 1 (no [device] schema_version), read as version 2: "
            "nothing it sets changed meaning; add [device] schema_version = 2 to it"
            ) in caplog.messages  # fmt: skip
    assert len([m for m in caplog.messages if m.startswith(f"{old}: configuration")]) == 1
    caplog.clear()
    load_config([write(tmp_path / "new.toml", '[device]\nid = "p"\nschema_version = 2\n')])
    assert not [m for m in caplog.messages if "configuration version" in m]


def test_a_file_for_a_newer_evaluator_is_refused_whole(tmp_path: Path) -> None:
    new = write(tmp_path / "new.toml", '[device]\nid = "p"\nschema_version = 3\n'
                '[mqtt]\nbroker_pool = "a,b"\n')  # fmt: skip
    assert [str(p) for p in check_config([new])] == [
        f"{new}:3: device.schema_version = 3: this file is written for configuration version 3, "
        "but this evaluator knows versions 1 to 2; install a newer evaluator, or write the file "
        'for version 2 (docs/technician.md, "Config versions")'
    ]


@pytest.mark.parametrize("value", ["0", '"2"', "true"])
def test_a_bad_version_is_checked_like_any_key(tmp_path: Path, value: str) -> None:
    bad = write(tmp_path / "bad.toml", f'[device]\nid = "p"\nschema_version = {value}\n')
    [problem] = check_config([bad])
    assert problem.key == "device.schema_version" and problem.line == 3


def test_renamed_and_removed_keys_are_refused_with_the_change_to_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table of changes at work: a version 3 that renamed [mqtt] max_rate and removed
    [session] thanks (version 2 changed neither: the real table is empty)."""
    assert cfg.SCHEMA_CHANGES == ()
    monkeypatch.setattr(cfg, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(cfg, "SCHEMA_CHANGES", (
        SchemaChange(3, "mqtt", "max_rate", "drain_rate"),
        SchemaChange(3, "session", "thanks", "", "the thank-you screen always shows 3 s"),
    ))  # fmt: skip
    default = cfg.default_config_path().read_text(encoding="utf-8")
    for before, after in (("\nschema_version = 2\n", "\nschema_version = 3\n"),
                          ("\nmax_rate = 20.0\n", "\ndrain_rate = 20.0\n"),
                          ('\nthanks = "3s"\n', "\n")):  # fmt: skip
        assert default.count(before) == 1
        default = default.replace(before, after)
    v3 = write(tmp_path / "v3" / "default.toml", default)
    monkeypatch.setattr(cfg, "default_config_path", lambda: v3)
    old = write(tmp_path / "old.toml", '[device]\nid = "p"\n[mqtt]\nmax_rate = 50.0\n'
                '[session]\nthanks = "5s"\ntimeout = 7\n')  # fmt: skip
    assert [str(p) for p in check_config([old])] == [
        f"{old}:4: mqtt.max_rate = 50.0: renamed in schema_version 3 (this file is version 1); "
        "rename [mqtt] max_rate to drain_rate and set [device] schema_version = 3",
        f'{old}:6: session.thanks = "5s": removed in schema_version 3 (this file is version 1); '
        "delete [session] thanks (the thank-you screen always shows 3 s) and set [device] "
        "schema_version = 3",
        f"{old}:7: session.timeout = 7: durations need a unit; did you mean '7s'?",
    ]
    fixed = write(tmp_path / "fixed.toml", '[device]\nid = "p"\nschema_version = 3\n'
                  "[mqtt]\ndrain_rate = 50.0\n")  # fmt: skip
    assert check_config([fixed]) == []


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ('[screen]\nfont = "fonts/a\\u0000b.ttf"', "screen.font"),  # crashed the check
        ('[storage]\npath = "/var/lib/a\\u0000b.db"', "storage.path"),  # crashed at run
        ('[mqtt]\nclient_id = "pad\\u0000"', "mqtt.client_id"),  # no MQTT string holds U+0000
        ('[mqtt]\nhost = "broker\\nevil"', "mqtt.host"),
        ('[mqtt]\nurls = ["mqtt://a\\u0007b:1883"]', "mqtt.urls"),
        ('[device]\nwindow = "12\\u001b[2J号"', "device.window"),  # drawn on the screen
    ],
)
def test_a_drop_in_with_a_control_character_is_refused_by_key(
    etc: Path, line: str, key: str
) -> None:
    """A config value is one line of text: a control character (TOML lets a file spell one as
    an escape) is refused on its key, never a traceback from ``open()`` nor a NUL on the wire."""
    write(etc / "conf.d/95-bad.toml", line + "\n")
    problems = check_config(system_config_files())
    assert [p.key for p in problems] == [key], [str(p) for p in problems]
    assert "control character" in str(problems[0])
    with pytest.raises(ValueError, match="control character"):
        load_config(system_config_files())
