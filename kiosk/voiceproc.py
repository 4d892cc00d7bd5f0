"""The voice process: the only place SDL audio runs (``python -m kiosk.voiceproc``).

:class:`kiosk.voice.SdlVoice` starts it after the pad is ready.  ``pygame.mixer.init`` and every
other SDL audio call hold Python's GIL while they wait for the device; in the pad's process an
audio device that hangs on open (or on a write) would freeze the screen and the signal handlers
with it.  Here it can only silence the prompts.

Protocol — the pad writes one event name a line on this process's stdin (``presenting\\n``);
this process answers on stdout with one JSON object a line:

- ``{"opening": true}`` — started, about to open the audio device;
- ``{"silent": EVENT, "path": P, "error": E}`` — that prompt is missing (``E`` null) or cannot be
  loaded (``E`` why); its event stays silent;
- ``{"ready": [EVENT, …], "format": [HZ, SIZE, CHANNELS]}`` — the device is open, these prompts
  are loaded;
- ``{"failed": WHY}`` — no audio output; the process ends;
- ``{"played": EVENT}`` or ``{"skipped": EVENT}`` — one answer to every line read, in order;
- ``{"idle": true}`` — what was played has finished;
- ``{"error": WHY}`` — a prompt could not be played (the process goes on).

It ends when its stdin closes (the pad closed it or died), quitting the mixer first so the
device is released and flushed.  SIGTERM ends it only while it opens the device (where it may
hang in SDL); once open it ignores SIGTERM (systemd signals the whole service at stop, and the
pad closes the pipe itself).  On Linux it also asks the kernel for ``SIGKILL`` when the
thread that started it ends (``PR_SET_PDEATHSIG``), so it never outlives a pad that was killed
while the device hung.  Anything else that prints to stdout (a library) goes to stderr: the
answers have a file descriptor of their own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import sys
from pathlib import Path
from typing import Any

from kiosk.voice import BUFFER, CHANNELS, EVENTS, FREQUENCY, prompt_path

#: ``prctl`` option: the signal the kernel sends when the parent (thread) ends.
PR_SET_PDEATHSIG = 1
#: Seconds between checks of whether the prompt playing has finished (only while one plays).
IDLE_POLL = 0.02


class _Answers:
    """The answers to the pad: JSON lines on a file descriptor of their own."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, **message: Any) -> None:
        # ASCII escapes: a path or an SDL message holding a lone surrogate (a file name not in
        # UTF-8) would not encode, and the voice process would die of it.
        data = (json.dumps(message) + "\n").encode("ascii")
        while data:
            try:
                data = data[os.write(self.fd, data) :]
            except BrokenPipeError:  # the pad is gone: nobody to play for
                os._exit(0)


def die_with_parent(parent: int) -> None:
    """Be killed when the pad ends (Linux; elsewhere the closed stdin ends this process), and
    end now if the pad has already gone."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the closed stdin still ends us
            pass
    if parent and os.getppid() != parent:  # the pad died before the prctl took effect
        os._exit(0)


def _answer_fd() -> int:
    """A private copy of stdout for the answers; fd 1 becomes stderr (stray prints)."""
    fd = os.dup(1)
    os.dup2(2, 1)
    return fd


def _load(directory: Path, language: str, volume: float, answers: _Answers) -> dict[str, Any]:
    import pygame

    sounds: dict[str, Any] = {}
    for event in EVENTS:
        path = prompt_path(directory, language, event)
        if not path.is_file():
            answers.send(silent=event, path=str(path), error=None)
            continue
        try:
            sound = pygame.mixer.Sound(str(path))
        except Exception as exc:  # not a WAV, truncated, a format SDL cannot read
            answers.send(silent=event, path=str(path), error=str(exc) or type(exc).__name__)
            continue
        sound.set_volume(volume)
        sounds[event] = sound
    return sounds


def serve(directory: Path, language: str, volume: float, answers: _Answers, stdin: int = 0) -> int:
    """Open the device, load the prompts, play what arrives on ``stdin`` until it closes."""
    answers.send(opening=True)
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    # SDL's audio brings its event loop, which turns SIGTERM into an SDL_QUIT nobody reads here:
    # keep the default action, so the pad's terminate() ends a process stuck in the device.
    os.environ["SDL_NO_SIGNAL_HANDLERS"] = "1"
    try:
        import pygame

        pygame.mixer.init(
            frequency=FREQUENCY, size=-16, channels=CHANNELS, buffer=BUFFER, allowedchanges=0
        )
    except Exception as exc:  # pygame.error: no device, no driver, a busy device …
        answers.send(failed=str(exc) or type(exc).__name__)
        return 1
    try:
        pygame.mixer.set_reserved(1)  # one voice: a new prompt replaces the one playing
        sounds = _load(directory, language, volume, answers)
        # Open: the pad ends us through stdin (it kills us if it must).  A SIGTERM to the whole
        # service (systemd's stop) must not end us first: the pad would report a dead voice.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        answers.send(ready=sorted(sounds), format=list(pygame.mixer.get_init() or ()))
        channel = pygame.mixer.Channel(0)
        pending = b""
        busy = False
        while True:
            readable, _, _ = select.select([stdin], [], [], IDLE_POLL if busy else None)
            if readable:
                chunk = os.read(stdin, 4096)
                if not chunk:
                    return 0  # the pad closed the pipe (shutdown) or died
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    event = line.decode("utf-8", "replace").strip()
                    sound = sounds.get(event)
                    if sound is None:
                        answers.send(skipped=event)
                        continue
                    try:
                        channel.play(sound)
                    except Exception as exc:  # a prompt must never stop the voice
                        answers.send(error=f"{event}: {exc}")
                        answers.send(skipped=event)
                        continue
                    busy = True
                    answers.send(played=event)
            if busy and not channel.get_busy():
                busy = False
                answers.send(idle=True)
    finally:
        with contextlib.suppress(Exception):
            pygame.mixer.stop()
        pygame.mixer.quit()  # closes (and flushes) the device


def main(argv: list[str] | None = None) -> int:
    """``python -m kiosk.voiceproc --dir D --language zh --volume 1.0 --parent PID``."""
    parser = argparse.ArgumentParser(prog="python -m kiosk.voiceproc", description=__doc__)
    parser.add_argument("--dir", type=Path, required=True, help="the prompts' folder")
    parser.add_argument("--language", default="zh", help="its sub-folder (zh, en)")
    parser.add_argument("--volume", type=float, default=1.0, help="0.0 (mute) to 1.0")
    parser.add_argument("--parent", type=int, default=0, help="the pad's pid (end if it is gone)")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the pad's terminal: the pad stops us
    answers = _Answers(_answer_fd())
    return serve(args.dir, args.language, min(1.0, max(0.0, args.volume)), answers)


if __name__ == "__main__":
    sys.exit(main())
