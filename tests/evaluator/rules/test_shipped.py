"""Where the shipped ``config/*.toml`` files are found (``evaluator.rules.shipped``).

The installed-wheel case is proved end to end by ``tests/test_install.py``."""

from __future__ import annotations

import tomllib
from pathlib import Path

from evaluator.rules.shipped import shipped_file

REPO = Path(__file__).resolve().parents[3]


def test_in_the_checkout_the_files_are_the_config_folder() -> None:
    for name in ("default.toml", "reasons.toml", "demo.toml"):
        assert shipped_file(name) == REPO / "config" / name
        tomllib.loads(shipped_file(name).read_text(encoding="utf-8"))


def test_a_missing_file_is_named_where_it_was_looked_for() -> None:
    missing = shipped_file("no-such-file.toml")
    assert missing == REPO / "config" / "no-such-file.toml"
    assert not missing.exists()


def test_every_shipped_toml_is_package_data() -> None:
    """pyproject.toml ships config/*.toml, the example fleet sheet config/*.csv (``evaluator
    provision``) and the voice prompts config/voice/<language>/*.wav: nothing else may be
    needed from that folder (config/mosquitto/ is the city broker's, never installed on a pad)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = project["tool"]["setuptools"]
    assert setuptools["package-dir"]["evaluator.shipped_config"] == "config"
    assert "evaluator.shipped_config" in setuptools["packages"]
    assert setuptools["package-data"]["evaluator.shipped_config"] == [
        "*.toml",
        "*.csv",
        "voice/*/*.wav",
    ]
    assert {p.suffix for p in (REPO / "config").iterdir() if p.is_file()} == {".toml", ".csv"}
    voice = [p.relative_to(REPO / "config") for p in (REPO / "config" / "voice").rglob("*.*")]
    assert voice and all(p.match("voice/*/*.wav") for p in voice)
