"""``[voice]``: on/off, the prompts' folder and the volume, checked like every other key, and the
device they pick (:mod:`evaluator.devices`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.config import check_config, default_voice_dir, load_config
from evaluator.devices import from_config
from evaluator.rules.shipped import shipped_file
from kiosk.voice import EVENTS, LANGUAGES, SdlVoice, SilentVoice, prompt_path

REPO = Path(__file__).resolve().parents[2]


def site(tmp_path: Path, voice: str, *, screen: str = "") -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f'[device]\nid = "unit-1"\n[screen]\n{screen}\n[voice]\n{voice}\n', encoding="utf-8"
    )
    return path


def test_the_defaults_are_off_full_volume_and_the_shipped_prompts(tmp_path: Path) -> None:
    voice = load_config([site(tmp_path, "")]).voice
    assert (voice.enabled, voice.dir, voice.volume) == (False, default_voice_dir(), 1.0)
    assert default_voice_dir() == shipped_file("default.toml").parent / "voice"
    for language in LANGUAGES:  # the shipped set has every event in every language
        for event in EVENTS:
            assert prompt_path(default_voice_dir(), language, event).is_file()
    assert check_config([site(tmp_path, "enabled = true")]) == []


def test_a_relative_dir_follows_the_file_that_set_it(tmp_path: Path) -> None:
    (tmp_path / "prompts" / "zh").mkdir(parents=True)
    voice = load_config([site(tmp_path, 'enabled = true\ndir = "prompts"\nvolume = 0.6')]).voice
    assert (voice.dir, voice.volume) == (tmp_path / "prompts", 0.6)
    assert check_config([site(tmp_path, 'enabled = true\ndir = "prompts"')]) == []


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("volume = 1.5", "voice.volume = 1.5: expected a number from 0.0 (mute) to 1.0"),
        ("volume = 60", "voice.volume = 60: expected a number from 0.0 (mute) to 1.0 (as "
                        "recorded); did you mean 0.6?"),
        ("volume = -0.1", "voice.volume = -0.1: expected a number from 0.0"),
        ('volume = "0.5"', 'voice.volume = "0.5": expected a number (no quotes); did you '
                           "mean 0.5?"),
        ('enabled = "yes"', 'voice.enabled = "yes": expected true or false (no quotes); did you '
                            "mean true?"),
        ("enable = true", "unknown key in [voice]; did you mean 'enabled'?"),
    ],
)  # fmt: skip
def test_a_bad_value_is_refused_with_its_line(tmp_path: Path, line: str, says: str) -> None:
    [problem] = check_config([site(tmp_path, line)])
    assert problem.line == 6 and says in str(problem)


def test_config_check_says_when_the_folder_or_its_language_is_missing(tmp_path: Path) -> None:
    [gone] = check_config([site(tmp_path, 'dir = "gone"')])
    assert gone.key == "voice.dir" and gone.line == 6
    assert f"not a folder: {tmp_path / 'gone'}" in str(gone)
    (tmp_path / "prompts" / "zh").mkdir(parents=True)
    english = site(tmp_path, 'enabled = true\ndir = "prompts"', screen='language = "en"')
    [no_en] = check_config([english])
    assert "no en/ folder in" in str(no_en) and "[screen] language" in str(no_en)
    (tmp_path / "prompts" / "en").mkdir()
    assert check_config([english]) == []  # a missing WAV is no error: it silences its event


def test_the_section_picks_the_voice_device(tmp_path: Path) -> None:
    storage = f"[storage]\npath = {json.dumps(str(tmp_path / 'r.db'))}\n"
    off = site(tmp_path, "volume = 0.4")
    off.write_text(off.read_text(encoding="utf-8") + storage, encoding="utf-8")
    silent = from_config(load_config([REPO / "config" / "demo.toml", off])).voice
    assert isinstance(silent, SilentVoice) and silent.language == "zh"

    (tmp_path / "p" / "en").mkdir(parents=True)
    on = site(tmp_path, 'enabled = true\ndir = "p"\nvolume = 0.4', screen='language = "en"')
    on.write_text(on.read_text(encoding="utf-8") + storage, encoding="utf-8")
    voice = from_config(load_config([REPO / "config" / "demo.toml", on])).voice
    assert isinstance(voice, SdlVoice)
    assert (voice.directory, voice.language, voice.volume) == (tmp_path / "p", "en", 0.4)
    voice.close()  # never started: nothing to close, nothing raised
