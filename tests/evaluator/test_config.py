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
from evaluator.errors import ConfigError

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
    assert c.device == cfg.DeviceConfig(id="pad-1", window="", area_code="440500")
    assert c.counter == cfg.CounterConfig(port="", baudrate=9600, reconnect=2.0)
    assert c.mqtt == cfg.MqttConfig(
        enabled=True, host="127.0.0.1", port=1883, topic_prefix="hcp/v1",
        client_id="evaluator-pad-1", username="", password="", keepalive=30.0,
        resend_after=30.0, max_rate=5.0,
    )  # fmt: skip
    assert c.storage.path == Path("/var/lib/evaluator/ratings.db")
    assert c.session == cfg.SessionConfig(timeout=60.0, thanks=3.0, reasons_file=None)
    assert c.screen == cfg.ScreenConfig(
        width=800, height=480, fullscreen=False, font=None, driver="auto"
    )


def test_every_key_in_default_toml_is_annotated() -> None:
    """Each key has a comment block above it naming its default and an example."""
    lines = default_config_path().read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            block = []
            for above in reversed(lines[:number]):
                if not above.startswith("#"):
                    break
                block.append(above)
            text = " ".join(block)
            assert "Default:" in text and "Example:" in text, f"undocumented: {line}"


def test_schema_rules_and_dataclasses_agree_with_default_toml() -> None:
    keys = documented_keys()
    assert list(keys) == ["device", "counter", "mqtt", "storage", "session", "screen"]
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
    problem, unset_id = check_config([bad])
    assert unset_id.key == "device.id"  # nothing else of the broken file is used
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
