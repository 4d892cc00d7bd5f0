"""Voice prompts through real SDL audio: the ``disk`` driver writes what the mixer outputs to a
file (``SDL_DISKAUDIOFILE``), so a test reads the samples a speaker would have played.

The mixer runs at the prompts' own format (16 kHz mono 16-bit) and one prompt at full volume is
mixed unchanged, so a prompt's exact sample bytes must appear in the output.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import pygame
import pytest

from evaluator.config import default_voice_dir
from kiosk.voice import (
    CHANNELS,
    EVENTS,
    FREQUENCY,
    PRESENTING,
    THANKS,
    Prompt,
    SdlVoice,
    SilentVoice,
    prompt_path,
)

#: How long a test waits for a prompt to play out (the disk driver plays in real time).
PLAY_TIMEOUT = 20.0


def write_tone(path: Path, *, hz: float, seconds: float = 0.2, amplitude: int = 12000) -> bytes:
    """A 16 kHz mono 16-bit WAV of a sine tone; returns its sample bytes."""
    count = int(FREQUENCY * seconds)
    samples = [round(amplitude * math.sin(2 * math.pi * hz * i / FREQUENCY)) for i in range(count)]
    frames = struct.pack(f"<{count}h", *samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(2)
        w.setframerate(FREQUENCY)
        w.writeframes(frames)
    return frames


def wav_frames(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (FREQUENCY, 1, 2)
        return w.readframes(w.getnframes())


def prompts(tmp_path: Path, language: str = "zh") -> dict[str, bytes]:
    """Two short, different tones as the prompts of ``language`` in ``tmp_path``."""
    hz = {PRESENTING: 440.0, THANKS: 660.0}
    return {e: write_tone(prompt_path(tmp_path, language, e), hz=hz[e]) for e in EVENTS}


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SDL's disk audio driver, writing to the returned file (which it creates on open)."""
    out = tmp_path / "speaker.raw"
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(out))
    return out


@pytest.fixture
def voices() -> Iterator[list[SdlVoice]]:
    """Voices made by a test, closed afterwards even when it fails."""
    made: list[SdlVoice] = []
    yield made
    for voice in made:
        voice.close()


def voice_from(made: list[SdlVoice], directory: Path, **kwargs: object) -> SdlVoice:
    voice = SdlVoice(directory, **kwargs)  # type: ignore[arg-type]
    made.append(voice)
    return voice


def voice_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The voice's warnings.  The test must have called ``caplog.set_level(…, "kiosk.voice")``:
    an in-process campaign (tests/campaigns/serial_fuzz.py) leaves ``kiosk`` at CRITICAL."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "kiosk.voice" and r.levelno >= logging.WARNING
    ]


def test_a_prompt_comes_out_of_the_speaker_sample_for_sample(
    tmp_path: Path, disk: Path, voices: list[SdlVoice]
) -> None:
    tones = prompts(tmp_path / "voice")
    voice = voice_from(voices, tmp_path / "voice")
    voice.play(THANKS)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    out = disk.read_bytes()
    assert tones[THANKS] in out
    assert tones[PRESENTING] not in out  # only what was asked for
    assert voice.played == [Prompt(THANKS, tmp_path / "voice" / "zh" / "thanks.wav")]


def test_the_shipped_chinese_prompts_are_16khz_mono_and_play(
    disk: Path, voices: list[SdlVoice]
) -> None:
    shipped = default_voice_dir()
    for language in ("zh", "en"):
        for event in EVENTS:
            frames = wav_frames(prompt_path(shipped, language, event))
            seconds = len(frames) / 2 / FREQUENCY
            assert 0.5 < seconds < 5, (language, event, seconds)
            assert max(abs(s) for (s,) in struct.iter_unpack("<h", frames)) > 10000  # not silence
    voice = voice_from(voices, shipped)
    voice.play(THANKS)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    assert voice.silent_events == set()
    assert wav_frames(prompt_path(shipped, "zh", THANKS)) in disk.read_bytes()


def test_the_language_picks_the_folder(tmp_path: Path, disk: Path, voices: list[SdlVoice]) -> None:
    zh = prompts(tmp_path)
    en = {PRESENTING: write_tone(prompt_path(tmp_path, "en", PRESENTING), hz=550.0)}
    voice = voice_from(voices, tmp_path, language="en")
    voice.play(PRESENTING)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    out = disk.read_bytes()
    assert en[PRESENTING] in out and zh[PRESENTING] not in out


def test_volume_scales_the_samples(tmp_path: Path, disk: Path, voices: list[SdlVoice]) -> None:
    tones = prompts(tmp_path)
    voice = voice_from(voices, tmp_path, volume=0.5)
    voice.play(PRESENTING)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    out = disk.read_bytes()
    assert tones[PRESENTING] not in out
    samples = [s for (s,) in struct.iter_unpack("<h", tones[PRESENTING])]
    halved = struct.pack(f"<{len(samples)}h", *(int(s / 2) for s in samples))
    assert halved in out


def test_a_missing_or_broken_prompt_silences_its_event_only_with_one_log_line(
    tmp_path: Path, disk: Path, voices: list[SdlVoice], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    tones = prompts(tmp_path / "missing")
    prompt_path(tmp_path / "missing", "zh", PRESENTING).unlink()
    voice = voice_from(voices, tmp_path / "missing")
    for _ in range(3):
        voice.play(PRESENTING)  # asked again and again: still one log line
    voice.play(THANKS)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    assert tones[THANKS] in disk.read_bytes()
    assert voice.silent_events == {PRESENTING}
    assert [p.event for p in voice.played] == [THANKS]
    [warning] = voice_warnings(caplog)
    assert "presenting" in warning and "missing" in warning

    caplog.clear()
    disk.unlink()
    broken = prompts(tmp_path / "broken")
    prompt_path(tmp_path / "broken", "zh", THANKS).write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    voice = voice_from(voices, tmp_path / "broken")
    voice.play(THANKS)
    voice.play(PRESENTING)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    assert broken[PRESENTING] in disk.read_bytes()
    assert voice.silent_events == {THANKS}
    [warning] = voice_warnings(caplog)
    assert "cannot load" in warning and "thanks.wav" in warning


def test_no_audio_device_is_silent_with_one_warning_and_never_raises(
    tmp_path: Path, disk: Path, voices: list[SdlVoice], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    prompts(tmp_path)
    monkeypatch.setenv("SDL_AUDIODRIVER", "no-such-audio-driver")
    voice = voice_from(voices, tmp_path)
    voice.start()
    for event in (PRESENTING, THANKS, PRESENTING):
        voice.play(event)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    assert voice.failure and voice.played == []
    [warning] = voice_warnings(caplog)
    assert "no audio output" in warning
    assert not disk.exists()
    assert pygame.mixer.get_init() is None


def test_nothing_is_started_before_start_and_the_audio_runs_in_the_voice_process_only(
    tmp_path: Path, disk: Path, voices: list[SdlVoice]
) -> None:
    prompts(tmp_path)
    voice = voice_from(voices, tmp_path)
    assert voice.state == "new" and voice.pid is None and not disk.exists()
    voice.start()
    voice.play(PRESENTING)
    assert voice.wait_done(PLAY_TIMEOUT)
    assert voice.state == "ready" and voice.pid not in (None, os.getpid())
    assert voice.format == (FREQUENCY, -16, CHANNELS)  # the mixer, opened in the voice process
    assert pygame.mixer.get_init() is None  # ... and never in the pad's
    voice.close()
    assert voice.returncode == 0  # its stdin closed: it quit the mixer and exited by itself
    assert voice.state == "ended" and voice.failure == ""
    voice.play(THANKS)  # after close: ignored, not raised
    assert voice.played == [Prompt(PRESENTING, prompt_path(tmp_path, "zh", PRESENTING))]


def test_a_voice_process_that_dies_is_one_warning_then_silence(
    tmp_path: Path, disk: Path, voices: list[SdlVoice], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    prompts(tmp_path)
    voice = voice_from(voices, tmp_path)
    voice.play(PRESENTING)
    assert voice.wait_done(PLAY_TIMEOUT) and voice.state == "ready"
    assert voice.pid is not None
    os.kill(voice.pid, signal.SIGKILL)
    assert voice.wait_state("ended", timeout=PLAY_TIMEOUT)
    assert voice.returncode == -signal.SIGKILL
    for event in (THANKS, PRESENTING):
        voice.play(event)  # nobody to play it: silently nothing
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    assert [p.event for p in voice.played] == [PRESENTING]
    [warning] = voice_warnings(caplog)
    assert "voice process ended" in warning and "silent" in warning
    assert voice.failure in warning


def test_a_stop_signal_to_the_whole_service_leaves_the_voice_to_the_pad(
    tmp_path: Path, disk: Path, voices: list[SdlVoice], caplog: pytest.LogCaptureFixture
) -> None:
    """systemd's stop sends SIGTERM to every process of the service: the voice process, once
    open, waits for the pad to close its stdin, so no dead voice is reported and the device is
    quit cleanly."""
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    tones = prompts(tmp_path)
    voice = voice_from(voices, tmp_path)
    voice.play(THANKS)
    assert voice.wait_done(PLAY_TIMEOUT) and voice.state == "ready"
    assert voice.pid is not None
    os.kill(voice.pid, signal.SIGTERM)
    voice.play(PRESENTING)  # still answered: it ignored the signal
    assert voice.wait_done(PLAY_TIMEOUT) and voice.state == "ready"
    voice.close()
    assert voice.returncode == 0 and voice_warnings(caplog) == []
    assert [p.event for p in voice.played] == [THANKS, PRESENTING]
    assert tones[PRESENTING] in disk.read_bytes()


def test_no_file_descriptor_left_for_the_voice_is_one_warning_never_an_exception(
    tmp_path: Path, voices: list[SdlVoice], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    voice = voice_from(voices, tmp_path)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new descriptor
    try:
        voice.play(THANKS)  # the pipe to the voice process cannot be made
        voice.play(PRESENTING)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert voice.state == "ended" and voice.pid is None and voice.wait_done(0)
    voice.close()
    [warning] = voice_warnings(caplog)
    assert "cannot start the voice process" in warning and voice.failure in warning


@pytest.fixture
def hung(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An audio device whose open never returns: SDL's disk driver writing to a FIFO that
    nobody reads (opening a FIFO for writing waits for a reader)."""
    fifo = tmp_path / "speaker.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(fifo))
    return fifo


def test_play_never_waits_for_a_voice_process_stuck_in_the_device(
    tmp_path: Path, hung: Path, voices: list[SdlVoice], caplog: pytest.LogCaptureFixture
) -> None:
    """The voice process hangs opening the device; the pad's writes never wait: once the pipe
    is full a prompt is dropped.  Closing stops the process (it never reads its stdin's end)."""
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    prompts(tmp_path)
    voice = voice_from(voices, tmp_path, answer_timeout=3600.0)
    voice.start()
    assert voice.wait_state("opening", timeout=PLAY_TIMEOUT)
    asked = 0

    def fill() -> None:  # a pipe holds 64 KiB: past that, a write that waits never returns
        nonlocal asked
        while voice.dropped == 0:
            voice.play(PRESENTING)
            asked += 1

    pad = threading.Thread(target=fill, daemon=True)
    pad.start()
    pad.join(PLAY_TIMEOUT)
    waited = pad.is_alive()
    if waited and voice.pid is not None:  # free the stuck write, so the failure is reported
        os.kill(voice.pid, signal.SIGKILL)
    assert not waited, "play() waited for the voice process"
    assert asked > 1000 and voice.dropped == 1
    assert voice.state == "opening" and voice.played == []  # stuck all along
    assert not voice.wait_done(0)  # what it was given is still owed
    voice.close()
    assert voice.returncode == -signal.SIGTERM  # stopped, not waited for
    assert voice.state == "ended"
    [warning] = voice_warnings(caplog)
    assert "hung while opening" in warning


def test_a_voice_process_that_stops_answering_is_stopped_with_one_warning(
    tmp_path: Path, hung: Path, voices: list[SdlVoice], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kiosk.voice")
    prompts(tmp_path)
    voice = voice_from(voices, tmp_path, answer_timeout=0.5)
    voice.play(THANKS)
    assert voice.wait_state("ended", timeout=PLAY_TIMEOUT)  # the watchdog stopped it
    assert voice.returncode == -signal.SIGTERM
    assert voice.wait_done(0)  # nothing will play: done
    voice.play(PRESENTING)
    voice.close()
    assert voice.played == []
    [warning] = voice_warnings(caplog)
    assert "did not answer within 0.5 s" in warning and "opening" in warning


KILLED_PAD = """
import os, sys
sys.path.insert(0, sys.argv[1])
from kiosk.voice import SdlVoice
voice = SdlVoice(sys.argv[2], answer_timeout=3600.0)
voice.play("presenting")
assert voice.wait_state("opening", timeout=60)
print(voice.pid, flush=True)
sys.stdin.read()  # until the test kills this pad
"""


def test_the_voice_process_never_outlives_a_killed_pad(tmp_path: Path, hung: Path) -> None:
    """A pad killed (SIGKILL) while its voice process is stuck in the device, where a closed
    stdin cannot reach it: the kernel ends it (PR_SET_PDEATHSIG)."""
    prompts(tmp_path)
    root = Path(__file__).resolve().parents[2]
    pad = subprocess.Popen(
        [sys.executable, "-c", KILLED_PAD, str(root), str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert pad.stdout is not None
        child = int(pad.stdout.readline())
        watch = os.pidfd_open(child)  # this very process, whoever reaps it
        try:
            assert select.select([watch], [], [], 0)[0] == []  # alive, stuck in the device
            pad.kill()
            pad.wait()
            assert select.select([watch], [], [], PLAY_TIMEOUT)[0] == [watch], "it outlived the pad"
        finally:
            with contextlib.suppress(ProcessLookupError):  # a failed test leaves no orphan
                signal.pidfd_send_signal(watch, signal.SIGKILL)
            os.close(watch)
    finally:
        pad.kill()
        pad.wait()


def test_a_new_prompt_cuts_the_one_still_playing(
    tmp_path: Path, disk: Path, voices: list[SdlVoice]
) -> None:
    long = write_tone(prompt_path(tmp_path, "zh", PRESENTING), hz=440.0, seconds=3.0)
    short = write_tone(prompt_path(tmp_path, "zh", THANKS), hz=660.0)
    voice = voice_from(voices, tmp_path)
    voice.play(PRESENTING)
    voice.play(THANKS)
    assert voice.wait_done(PLAY_TIMEOUT)
    voice.close()
    out = disk.read_bytes()
    assert short in out and long not in out


def test_the_silent_voice_keeps_what_it_would_have_played(tmp_path: Path) -> None:
    voice = SilentVoice(tmp_path, language="en")
    voice.start()
    voice.play(PRESENTING)
    voice.play(THANKS)
    assert voice.wait_done() and pygame.mixer.get_init() is None
    voice.close()
    assert voice.events == [PRESENTING, THANKS]
    assert voice.played[0] == Prompt(PRESENTING, tmp_path / "en" / "presenting.wav")


def test_an_answer_naming_a_file_that_is_not_utf8_is_still_sent() -> None:
    """A WAV path from a file name not in UTF-8 reaches Python as a lone surrogate; the answer
    naming it used to raise UnicodeEncodeError and kill the voice process."""
    import json as _json
    import os as _os

    from kiosk.voiceproc import _Answers

    read, write = _os.pipe()
    try:
        _Answers(write).send(event="missing", path="/p/\udcff/a.wav")
        line = _os.read(read, 4096).decode("ascii")
    finally:
        _os.close(read)
        _os.close(write)
    assert _json.loads(line) == {"event": "missing", "path": "/p/\udcff/a.wav"}
