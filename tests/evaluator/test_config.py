"""Specification of the layered configuration (``evaluator.config``)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evaluator import config as cfg
from evaluator.config import (
    NO_VALUE,
    Config,
    Problem,
    check_config,
    default_config_path,
    documented_keys,
    load_config,
    parse_duration,
)
from evaluator.rules.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "demo.toml"
MINIMAL = '[device]\nid = "pad-1"\n'


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped files


def test_demo_config_is_clean_and_runs_without_hardware() -> None:
    assert check_config([DEMO]) == []
    c = load_config([DEMO])
    assert c.device.id == "demo-0001"
    assert c.device.window == "1号窗口"
    assert c.device.area_code == "440500"
    assert c.counter.port == "sim://demo"
    assert (c.mqtt.host, c.mqtt.port, c.mqtt.enabled) == ("127.0.0.1", 1883, True)
    assert c.mqtt.client_id == "evaluator-demo-0001"
    assert c.storage.path == REPO / "var" / "demo" / "ratings.db"
    assert c.screen.driver == "auto"
    assert c.sources == (default_config_path(), DEMO)


def test_default_alone_only_lacks_the_device_id() -> None:
    problems = check_config([default_config_path()])
    assert [p.key for p in problems] == ["device.id"]
    assert "no file sets it" in str(problems[0])


def test_defaults_match_the_documented_defaults(tmp_path: Path) -> None:
    c = load_config([write(tmp_path, "site.toml", MINIMAL)])
    assert c.device == cfg.DeviceConfig(
        id="pad-1",
        window="",
        area_code="440500",
        key_file=Path("/var/lib/evaluator/device.key"),  # next to the store
    )
    assert c.counter == cfg.CounterConfig(port="", baudrate=9600, reconnect=2.0)
    assert c.mqtt == cfg.MqttConfig(
        enabled=True, host="127.0.0.1", port=1883, topic_prefix="hcp/v1",
        client_id="evaluator-pad-1", username="", password="", keepalive=30.0,
        resend_after=30.0, max_rate=20.0, burst=300, max_unacked=200, reconnect_spread=10.0,
    )  # fmt: skip
    assert c.storage.path == Path("/var/lib/evaluator/ratings.db")
    assert (c.session.timeout, c.session.thanks) == (60.0, 3.0)
    assert c.session.reasons_file == REPO / "config" / "reasons.toml"  # the shipped list
    assert c.screen == cfg.ScreenConfig(
        width=800, height=480, dpi=133, rotate=0, fullscreen=False, font=None, font_bold=None,
        driver="auto", language="zh",
    )  # fmt: skip


# Every key's annotation (type, default, example) is checked, and the reference generated from
# it, by tests/evaluator/test_configref.py.


def test_schema_rules_and_dataclasses_agree_with_default_toml() -> None:
    keys = documented_keys()
    assert list(keys) == [
        "device", "counter", "mqtt", "storage", "session", "buttons", "screen", "idle", "voice",
        "receipt", "printer", "tech",
    ]  # fmt: skip
    for section, key in [*cfg.RULES, *cfg.REQUIRED, *cfg.PATH_KEYS]:
        assert key in keys[section], f"rule for {section}.{key}, which default.toml lacks"
    for field in dataclasses.fields(Config):
        if field.name != "sources":
            klass = getattr(cfg, type(getattr(load_config([DEMO]), field.name)).__name__)
            assert [f.name for f in dataclasses.fields(klass)] == keys[field.name]


# --------------------------------------------------------------------------- layering and paths


def test_later_files_override_earlier_ones_key_by_key(tmp_path: Path) -> None:
    site = write(tmp_path, "site.toml", MINIMAL + '[mqtt]\nhost = "broker.site"\nport = 8883\n')
    window = write(tmp_path, "w12.toml", '[mqtt]\nport = 1884\nclient_id = "pad-w12"\n')
    c = load_config([site, window])
    assert c.mqtt.host == "broker.site"  # from site.toml
    assert c.mqtt.port == 1884  # w12.toml wins
    assert c.mqtt.client_id == "pad-w12"  # an explicit client id is kept
    assert c.mqtt.topic_prefix == "hcp/v1"  # from default.toml
    assert c.sources == (default_config_path(), site, window)


def test_relative_paths_follow_the_file_that_set_them(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    site = write(
        tmp_path / "etc", "site.toml",
        MINIMAL + '[storage]\npath = "../data/r.db"\n[screen]\nfont = "fonts/cjk.ttc"\n',
    )  # fmt: skip
    (tmp_path / "w").mkdir()
    window = write(tmp_path / "w", "w.toml", '[session]\nreasons_file = "reasons.toml"\n')
    c = load_config([site, window])
    assert c.storage.path == tmp_path / "data" / "r.db"
    assert c.screen.font == tmp_path / "etc" / "fonts" / "cjk.ttc"
    assert c.session.reasons_file == tmp_path / "w" / "reasons.toml"


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    site = write(tmp_path, "s.toml", MINIMAL + '[storage]\npath = "/srv/r.db"\n')
    assert load_config([site]).storage.path == Path("/srv/r.db")


# --------------------------------------------------------------------------- rejected configs

# (file text, expected fragment of the one-line message); each file is layered over a valid one.
REJECTED = {
    "unknown-key": (
        '[mqtt]\nhots = "x"\n',
        "bad.toml:2: mqtt.hots = \"x\": unknown key in [mqtt]; did you mean 'host'?",
    ),
    "unknown-key-underscore": ("[counter]\nbaud_rate = 9600\n", "did you mean 'baudrate'?"),
    "key-in-wrong-section": ("[screen]\nbaudrate = 1\n", "did you mean 'baudrate' in [counter]?"),
    "unknown-section": ("[mqqt]\nport = 1\n", "[mqqt]: unknown section"),
    "key-outside-section": ("port = 1\n", "a key outside any [section]"),
    "string-for-int": (
        '[mqtt]\nport = "1883"\n',
        'mqtt.port = "1883": expected an integer (no quotes); did you mean 1883?',
    ),
    "int-for-string": (
        "[device]\narea_code = 440500\n",
        'expected a string (in quotes); did you mean "440500"?',
    ),
    "string-for-bool": (
        '[screen]\nfullscreen = "yes"\n',
        "expected true or false (no quotes); did you mean true?",
    ),
    "port-out-of-range": (
        "[mqtt]\nport = 70000\n",
        "bad.toml:2: mqtt.port = 70000: expected an integer from 1 to 65535",
    ),
    "bare-number-duration": (
        "[session]\ntimeout = 60\n",
        "session.timeout = 60: durations need a unit; did you mean '60s'?",
    ),
    "bare-number-string-duration": ('[session]\ntimeout = "60"\n', "did you mean '60s'?"),
    "bad-duration-unit": ('[session]\ntimeout = "60sec"\n', "unknown unit 'sec'"),
    "day-unit": ('[mqtt]\nkeepalive = "1d"\n', "unknown unit 'd'"),
    "zero-timeout": ('[session]\ntimeout = "0s"\n', "expected a duration of more than 0s"),
    "keepalive-too-long": ('[mqtt]\nkeepalive = "24h"\n', "from 1s to 65535s"),
    "topic-wildcard": ('[mqtt]\ntopic_prefix = "hcp/#"\n', "no '+' or '#'"),
    "topic-slashes": ('[mqtt]\ntopic_prefix = "/hcp/v1/"\n', "did you mean 'hcp/v1'?"),
    "max-rate-zero": ("[mqtt]\nmax_rate = 0\n", "expected a number more than 0"),
    "odd-baudrate": ("[counter]\nbaudrate = 9601\n", "did you mean 9600?"),
    "port-url-typo": ('[counter]\nport = "sokcet://10.0.0.5:7000"\n', "did you mean 'socket://'?"),
    "bad-driver": (
        '[screen]\ndriver = "X11"\n',
        "expected one of auto, x11, wayland, kmsdrm, dummy; did you mean 'x11'?",
    ),
    "unknown-language": (
        '[screen]\nlanguage = "EN"\n',
        "expected one of zh, en; did you mean 'en'?",
    ),
    "dpi-out-of-range": ("[screen]\ndpi = 13\n", "screen.dpi = 13: expected an integer from 50 to"),
    "panel-too-small-for-15mm": (
        "[screen]\ndpi = 260\n",
        "is 47 mm on its short side; 15 mm buttons need at least 58 mm; at most 210 dpi",
    ),
    "short-area-code": ('[device]\narea_code = "4405"\n', "expected 6 digits"),
    "empty-storage": ('[storage]\npath = ""\n', 'storage.path = "": expected a file path'),
}


@pytest.mark.parametrize(("text", "fragment"), REJECTED.values(), ids=REJECTED.keys())
def test_rejected_config(tmp_path: Path, text: str, fragment: str) -> None:
    site = write(tmp_path, "site.toml", MINIMAL)
    bad = write(tmp_path, "bad.toml", text)
    problems = check_config([site, bad])
    assert len(problems) == 1, problems
    assert fragment in str(problems[0])
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_config([site, bad])


@pytest.mark.parametrize(
    ("device", "fragment"),
    [
        pytest.param('id = "hall 1/w12"', "expected 1 to 64 letters, digits", id="space-slash"),
        pytest.param('id = "' + "x" * 65 + '"', "expected 1 to 64 letters", id="too-long"),
        pytest.param('id = "窗口"', "expected 1 to 64 letters", id="non-ascii"),
        pytest.param('id = ""', 'device.id = "": required, must not be empty', id="empty"),
        pytest.param('window = "1号窗口"', "device.id: required, but no file sets it", id="unset"),
    ],
)
def test_rejected_device_id(tmp_path: Path, device: str, fragment: str) -> None:
    bad = write(tmp_path, "bad.toml", f"[device]\n{device}\n")
    problems = [str(p) for p in check_config([bad])]
    assert any(fragment in p for p in problems), problems


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    bad = write(tmp_path, "broken.toml", '[device\nid = "x"\n')
    (problem,) = check_config([bad])  # only the syntax error: no "device.id required" guess
    assert str(problem).startswith(f"{bad}: TOML syntax error: ")
    assert "line 1, column" in str(problem)


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    problems = check_config([missing])
    assert str(problems[0]) == f"{missing}: file not found (looked for {missing})"


def test_every_error_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    one = write(tmp_path, "one.toml", '[device]\nid = "ok"\n[mqtt]\nport = 0\nhots = "h"\n')
    two = write(tmp_path, "two.toml", '[session]\ntimeout = 60\n[screen]\nwidth = "800"\n')
    three = write(tmp_path, "three.toml", "not toml at all\n")
    with pytest.raises(ConfigError) as caught:
        load_config([one, two, three, tmp_path / "gone.toml"])
    error = caught.value
    assert isinstance(error, ValueError)
    lines = str(error).splitlines()
    assert lines == [str(p) for p in error.problems]  # type: ignore[attr-defined]
    assert [(Path(p.file).name, p.key, p.line) for p in error.problems] == [  # type: ignore[attr-defined]
        ("one.toml", "mqtt.port", 4),
        ("one.toml", "mqtt.hots", 5),
        ("two.toml", "session.timeout", 2),
        ("two.toml", "screen.width", 4),
        ("three.toml", "", None),
        ("gone.toml", "", None),
    ]


def test_problem_line_format() -> None:
    port = Problem("a.toml", "mqtt.port", 70000, "expected an integer from 1 to 65535", line=7)
    assert str(port) == "a.toml:7: mqtt.port = 70000: expected an integer from 1 to 65535"
    hots = Problem("a.toml", "mqtt.hots", "x", "unknown key in [mqtt]", "did you mean 'host'?")
    assert str(hots) == "a.toml: mqtt.hots = \"x\": unknown key in [mqtt]; did you mean 'host'?"
    assert str(Problem("a.toml", "", NO_VALUE, "file not found")) == "a.toml: file not found"


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("60s", 60.0), ("1.5s", 1.5), ("5m", 300.0), ("1h", 3600.0),
     ("0s", 0.0), (" 2s ", 2.0), ("250 ms", 0.25), (".5s", 0.5)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("60", "durations need a unit, did you mean '60s'?"),
        ("30sec", "did you mean '30s'?"),
        ("2 minutes", "did you mean '2m'?"),
        ("1d", "unknown unit 'd', use ms, s, m or h"),
        ("-5s", "cannot be negative"),
        ("soon", "is not a duration"),
        ("", "is not a duration"),
    ],
)
def test_parse_duration_rejects(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h"]))
def test_parse_duration_scales_by_unit(number: int, unit: str) -> None:
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    assert parse_duration(f"{number}{unit}") == pytest.approx(number * factor)


# --------------------------------------------------------------------------- issue 5: the CLI tells
# the truth, never prints a secret, accepts Notepad's BOM

SECRET = "Zq7-wallaby-s3cret-91"
SECRET_NUMBER = 918273645501


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """Run the real ``evaluator`` CLI in-process; exit code and everything it printed."""
    from evaluator.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out + out.err


# Each layered over a valid site file; every one is an error whose line would show the value.
SECRET_LEAKS = {
    "wrong-type-password": f"[mqtt]\npassword = {SECRET_NUMBER}\n",
    "list-password": f'[mqtt]\npassword = ["{SECRET}"]\n',
    "passwd-did-you-mean": f'[mqtt]\npasswd = "{SECRET}"\n',
    "misspelt-pasword": f'[mqtt]\npasword = "{SECRET}"\n',
    "misspelt-passwrod": f'[mqtt]\npasswrod = "{SECRET}"\n',
    "password-in-wrong-section": f'[device]\npassword = "{SECRET}"\n',
    "password-outside-section": f'password = "{SECRET}"\n[device]\nid = "pad-1"\n',
    "secret": f'[mqtt]\nsecret = "{SECRET}"\n',
    "client-secret": f'[mqtt]\nclientSecret = "{SECRET}"\n',
    "token": f'[mqtt]\napi_token = "{SECRET}"\n',
    "tokn": f'[mqtt]\ntokn = "{SECRET}"\n',
    "pin": f"[device]\npin = {SECRET_NUMBER}\n",
    "pwd": f'[mqtt]\npwd = "{SECRET}"\n',
    "inline-table": f'[mqtt]\npassword = {{ value = "{SECRET}" }}\n',
    "unknown-section": f'[mqtt-auth]\npassword = "{SECRET}"\n',
    "unquoted-password": f"[mqtt]\npassword = {SECRET}\n",
    "unclosed-quote": f'[mqtt]\npassword = "{SECRET}\n',
}


@pytest.mark.parametrize("text", SECRET_LEAKS.values(), ids=SECRET_LEAKS.keys())
def test_config_errors_never_print_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    site = write(tmp_path, "site.toml", MINIMAL)
    bad = write(tmp_path, "bad.toml", text)
    for args in (["config", "check", site, bad], ["run", "--config", site, "--config", bad]):
        code, output = cli(capsys, *args)
        assert code == 2, output
        assert "bad.toml" in output
        for leak in (SECRET, str(SECRET_NUMBER), "wallaby", "273645"):
            assert leak not in output, output
    problems = check_config([site, bad])
    assert problems and all(p.value is NO_VALUE or p.value is cfg.MASKED for p in problems)


def test_secret_values_show_as_stars_and_the_key_is_still_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.toml", MINIMAL + f'[mqtt]\npasswd = "{SECRET}"\n')
    code, output = cli(capsys, "config", "check", bad)
    assert code == 2
    assert (
        "bad.toml:4: mqtt.passwd = ***: unknown key in [mqtt]; did you mean 'password'?" in output
    )


@pytest.mark.parametrize(
    "name",
    ["password", "passwd", "Password", "mqtt_password", "pasword", "passwrd", "secret", "token",
     "api_key", "apiKey", "pin", "pwd", "pass", "passphrase", "clientSecret", "tokne"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert cfg.is_secret_name(name)


def test_ordinary_names_are_not_secret() -> None:
    for section in documented_keys().values():
        for name in section:
            # tls_key holds a path, not the key: shown (issue 14), like key_file
            # [tech] pin is the technician menu's PIN: a secret
            assert cfg.is_secret_name(name) == (name in ("password", "pin")), name
    for name in ("hots", "prot", "keepalive", "topic", "baud_rate", "fullscren", "windw", "path"):
        assert not cfg.is_secret_name(name), name


def test_a_utf8_bom_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Notepad saves "UTF-8" with a byte-order mark."""
    site = tmp_path / "site.toml"
    site.write_bytes(b"\xef\xbb\xbf" + '[device]\nid = "pad-1"\nwindow = "1号窗口"\n'.encode())
    code, output = cli(capsys, "config", "check", site)
    assert code == 0, output
    assert output.startswith("OK")
    assert load_config([site]).device.window == "1号窗口"
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xef\xbb\xbf" + b'[device]\nid = "pad-1"\n[mqtt]\nport = 0\n')
    code, output = cli(capsys, "config", "check", bad)
    assert code == 2
    assert f"{bad}:4: mqtt.port = 0: expected an integer from 1 to 65535" in output


@pytest.mark.parametrize(
    "text",
    ['[device\nid = "pad-1"\n', '[device]\nid = "pad-1\n', "[mqtt]\nport = = 1\n", "not toml\n"],
)
def test_a_file_that_does_not_parse_reports_only_its_syntax_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    bad = write(tmp_path, "bad.toml", text)
    code, output = cli(capsys, "config", "check", bad)
    assert code == 2
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [lines[0], "1 problem(s) found"], output
    assert lines[0].startswith(f"{bad}: TOML syntax error: ")
    assert "device.id" not in output and "font" not in output and "reasons" not in output


def test_a_missing_file_reports_only_that(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = cli(capsys, "config", "check", tmp_path / "nope.toml")
    assert code == 2
    assert "file not found" in output and "device.id" not in output


WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def run_needs_cases(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """(site file text, fragment of the one problem ``config check`` must report)."""
    (tmp_path / "notes.txt").write_text("not a font\n", encoding="utf-8")
    (tmp_path / "fonts").mkdir()
    (tmp_path / "bad-reasons.toml").write_text("[[reason]]\ncode = 1\n", encoding="utf-8")
    (tmp_path / "broken-reasons.toml").write_text("[[reason\n", encoding="utf-8")
    (tmp_path / "id-phrases.toml").write_text(
        'version = "x"\n[[phrase]]\ntext = "请打13812345678"\n', encoding="utf-8"
    )
    return {
        "phrases-missing": ('phrases_file = "gone.toml"', 'session.phrases_file = "gone.toml"'),
        "phrases-invalid": ('phrases_file = "id-phrases.toml"', "cannot use this phrase list"),
        "reasons-missing": ('reasons_file = "gone.toml"', 'session.reasons_file = "gone.toml"'),
        "reasons-invalid": ('reasons_file = "bad-reasons.toml"', "cannot use this reason list"),
        "reasons-not-toml": ('reasons_file = "broken-reasons.toml"', "not valid TOML"),
        "reasons-directory": ('reasons_file = "fonts"', "cannot use this reason list"),
        "font-missing": ('font = "gone.ttc"', 'screen.font = "gone.ttc": file not found'),
        "font-not-a-font": ('font = "notes.txt"', "not a TrueType/OpenType font file"),
        "font-directory": ('font = "fonts"', "is a directory"),
        "bold-font-missing": ('font_bold = "gone.ttc"', 'screen.font_bold = "gone.ttc": file not'),
    }


@pytest.mark.parametrize(
    "case",
    ["reasons-missing", "reasons-invalid", "reasons-not-toml", "reasons-directory",
     "phrases-missing", "phrases-invalid",
     "font-missing", "font-not-a-font", "font-directory", "bold-font-missing"],
)  # fmt: skip
def test_config_check_fails_what_run_would_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    line, fragment = run_needs_cases(tmp_path)[case]
    section = "session" if line.startswith(("reasons", "phrases")) else "screen"
    site = write(tmp_path, "site.toml", MINIMAL + f"[{section}]\n{line}\n")
    code, output = cli(capsys, "config", "check", site)
    assert code == 2, output
    assert f"{site}:4: " in output and fragment in output, output
    assert "1 problem(s) found" in output


def test_config_check_passes_real_reasons_and_font_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reasons = (REPO / "config" / "reasons.toml").read_text(encoding="utf-8")
    write(tmp_path, "mine.toml", reasons)
    site = write(
        tmp_path, "site.toml",
        MINIMAL + f'[session]\nreasons_file = "mine.toml"\n[screen]\nfont = "{WQY}"\n',
    )  # fmt: skip
    code, output = cli(capsys, "config", "check", site)
    assert code == 0, output


def test_font_search_finds_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cfg, "FONT_SEARCH_PATHS", (tmp_path / "a.ttc", tmp_path / "b.otf"))
    site = write(tmp_path, "site.toml", MINIMAL)
    code, output = cli(capsys, "config", "check", site)
    assert code == 2
    assert "screen.font" in output and "no CJK font found" in output
    assert str(tmp_path / "a.ttc") in output and "fonts-wqy-microhei" in output
    write(tmp_path, "b.otf", "junk")
    code, output = cli(capsys, "config", "check", site)
    assert code == 2 and "not a TrueType/OpenType font file" in output


def test_the_default_reason_list_is_the_shipped_one(tmp_path: Path) -> None:
    c = load_config([write(tmp_path, "site.toml", MINIMAL)])
    assert c.session.reasons_file == cfg.default_reasons_path()
    assert c.session.reasons_file.is_file()


@pytest.mark.parametrize(
    ("name", "secret"),
    [("pin", True), ("admin_pin", True), ("pin_code", True), ("api_key", True),
     ("pin_factory", False), ("key_file", False), ("bounce_time", False)],
)  # fmt: skip
def test_a_short_secret_word_counts_only_where_it_names_the_value(name: str, secret: bool) -> None:
    assert cfg.is_secret_name(name) is secret
