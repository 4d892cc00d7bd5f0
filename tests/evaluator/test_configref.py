"""The config reference in docs/technician.md is generated from the annotated
``config/default.toml`` (``evaluator config reference``): the guide holds exactly what the
generator makes, one row per key with its real default, and a key the annotations leave out (or
an annotation whose key is gone, a default or example that lies) is refused with its name."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from evaluator import configref
from evaluator.cli import main
from evaluator.config import default_config_path, documented_keys

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "technician.md"
#: A generated row: key, type, default (its value first), example, description.
ROW = re.compile(r"^\| `(\w+)\.(\w+)` \| (.*?) \| `([^`]*)`(.*?) \| `(.*?)` \| (.*) \|$", re.M)
HINT = (
    f"the config reference in docs/technician.md is not what config/default.toml says: run "
    f"`.venv/bin/{configref.REGENERATE}` (after editing a key's annotation in config/default.toml)"
)


def test_the_guide_holds_the_reference_generated_from_default_toml() -> None:
    held = configref.extract(GUIDE.read_text(encoding="utf-8"))
    assert held == configref.reference(), HINT


def test_every_key_has_one_row_in_the_guide_with_its_real_default() -> None:
    """Read back from the guide itself, not from the generator: the keys of the schema, each
    once and in its order, each default the value the key really has."""
    defaults = tomllib.loads(default_config_path().read_text(encoding="utf-8"))
    rows = ROW.findall(configref.extract(GUIDE.read_text(encoding="utf-8")))
    keys = [(section, key) for section, key, *_ in rows]
    expected = [(s, k) for s, names in documented_keys().items() for k in names]
    assert keys == expected, HINT
    for section, key, kind, default, _note, example, _description in rows:
        value = tomllib.loads(f"v = {default}")["v"]
        assert value == defaults[section][key], f"{section}.{key}: default {default}; {HINT}"
        assert type(value) is type(defaults[section][key]), f"{section}.{key}: {default}"
        assert kind and example.startswith(f"{key} = "), f"{section}.{key}"


def broken(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """A copy of the shipped default.toml with each ``(old, new)`` text replaced once."""
    text = default_config_path().read_text(encoding="utf-8")
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    copy = tmp_path / "default.toml"
    copy.write_text(text, encoding="utf-8")
    return copy


PORT_ANNOTATION = "# Type: integer from 1 to 65535.  Default: 1883.  Example: port = 1884\n"
BURST_KEY = "# Type: integer from 1 to 100000.  Default: 300.  Example: burst = 100\nburst = 300\n"


def problems(path: Path) -> list[str]:
    with pytest.raises(configref.AnnotationError) as caught:
        configref.reference(path)
    return list(caught.value.problems)


def test_the_shipped_default_makes_the_reference_and_a_copy_the_same(tmp_path: Path) -> None:
    assert configref.reference(broken(tmp_path)) == configref.reference()


def test_a_key_without_its_annotation_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = broken(tmp_path, (PORT_ANNOTATION, ""))
    [problem] = problems(copy)
    line = copy.read_text(encoding="utf-8").splitlines().index("port = 1883") + 1
    assert problem.startswith(f"{copy}:{line}: mqtt.port: no annotation"), problem
    assert main(["config", "reference", "--defaults", str(copy)]) == 2
    assert "mqtt.port: no annotation" in capsys.readouterr().err


def test_an_annotation_whose_key_is_gone_is_named(tmp_path: Path) -> None:
    keep = BURST_KEY.split("\n")[0] + "\n"
    [problem] = problems(broken(tmp_path, (BURST_KEY, keep)))
    assert "an annotation for mqtt.burst, which does not exist" in problem


def test_an_incomplete_or_lying_annotation_is_named_every_one_at_once(tmp_path: Path) -> None:
    copy = broken(
        tmp_path,
        (PORT_ANNOTATION, PORT_ANNOTATION.replace("Default: 1883", "Default: 1884")),
        ('Example: keepalive = "60s"', 'Example: keepalive = "sixty"'),
        ("Example: max_rate = 50.0", "Example: burst = 50"),
        ('Default: "hcp/v1".  Example:', 'Default: "hcp/v1".  For example:'),
        ("# Type: boolean.  Default: true.  Example: cut = false", "# Default: true."),
    )
    found = problems(copy)
    expected = [
        "mqtt.port: 'Default: 1884' but the key is set to 1883",
        "mqtt.topic_prefix: the annotation lacks Example:",
        "mqtt.keepalive: 'Example: keepalive = \"sixty\"' is not a duration",
        "mqtt.max_rate: 'Example: burst = 50' is not a setting of max_rate",
        "printer.cut: no annotation",
    ]
    assert len(found) == len(expected), found
    for part, problem in zip(expected, found, strict=True):
        assert part in problem, problem


def test_the_cli_writes_between_the_markers_and_keeps_the_prose_around(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text(
        f"# Guide\n\nBefore.\n\n{configref.START}\nold rows\n{configref.END}\n\nAfter.\n",
        encoding="utf-8",
    )
    assert main(["config", "reference", "--out", str(guide)]) == 0
    text = guide.read_text(encoding="utf-8")
    assert text.startswith("# Guide\n\nBefore.\n\n") and text.endswith("\n\nAfter.\n")
    assert "old rows" not in text and configref.extract(text) == configref.reference()
    assert capsys.readouterr().out == f"{guide}: written\n"
    assert main(["config", "reference", "--out", str(guide)]) == 0
    assert capsys.readouterr().out == f"{guide}: up to date\n"
    assert guide.read_text(encoding="utf-8") == text
    assert main(["config", "reference"]) == 0  # no --out: the reference itself, on stdout
    assert capsys.readouterr().out == configref.reference()
    whole = tmp_path / "reference.md"  # a file without markers: the reference alone
    assert main(["config", "reference", "--out", str(whole)]) == 0
    assert whole.read_text(encoding="utf-8") == configref.reference()


def test_descriptions_are_safe_in_a_table_and_a_group_points_to_its_first_key(
    tmp_path: Path,
) -> None:
    copy = broken(
        tmp_path,
        ("# Broker TCP port.", "# Broker TCP port | <dir>/x.wav, *not* `a|b`."),
    )
    rows = {f"{s}.{k}": row for s, k, *row in ROW.findall(configref.reference(copy))}
    assert rows["mqtt.port"][-1] == r"Broker TCP port \| \<dir>/x.wav, \*not\* `a\|b`."
    assert rows["buttons.satisfied"][-1] == "As `buttons.very_satisfied` above."
    with pytest.raises(ValueError, match="configref:start"):
        configref.splice("no markers here", "x")
