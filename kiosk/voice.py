"""Voice prompts: one short WAV per event, played by a child process through SDL's audio.

Two devices with one API (``start``, ``play``, ``close``), picked by :mod:`evaluator.devices`
from ``[voice]`` the way gpiozero picks a pin factory:

- :class:`SdlVoice` — the speaker.  No audio call ever runs in the pad's process: SDL holds
  Python's GIL while it opens (or writes to) the audio device, so a device that hangs would
  freeze the screen and the signal handlers with it.  :meth:`SdlVoice.start` (after READY)
  starts ``python -m kiosk.voiceproc`` (:mod:`kiosk.voiceproc`), which opens ``pygame.mixer``,
  loads the prompts and plays the event names ``play`` writes on its stdin, one a line.  The
  write never waits: when the pipe is full the prompt is dropped.  The child inherits the
  environment (``SDL_AUDIODRIVER`` …).  No audio device, a child that dies or one that stops
  answering (``answer_timeout``, then it is stopped): one warning in the log, then silence; a
  missing or broken WAV: one log line, that event silent.  Nothing here ever raises into the
  app, and the child never outlives the pad (its stdin closes, ``close`` stops it, and on Linux
  the kernel kills it when the pad dies).
- :class:`SilentVoice` — the stand-in (``[voice] enabled = false``, and the tests): plays
  nothing, keeps what it would have played.

The prompts live in ``<dir>/<language>/<event>.wav`` (``zh/`` Simplified Chinese, ``en/``
English; the display language picks the folder).  The shipped set is ``config/voice/``, made by
``scripts/make-voice``: 16 kHz, mono, 16-bit, which is also the mixer's format (SDL converts to
what the device wants; a WAV in another format is converted when it is loaded).
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: The rating screen was shown (once per presentation).
PRESENTING = "presenting"
#: 谢谢 was shown (once per rating).
THANKS = "thanks"
#: Every event with a prompt, in the order a citizen hears them.
EVENTS: tuple[str, ...] = (PRESENTING, THANKS)
#: The prompt folders: Simplified Chinese (default) and English.
LANGUAGES: tuple[str, ...] = ("zh", "en")

#: The mixer's format: the shipped prompts' own (no conversion on load).
FREQUENCY = 16000
CHANNELS = 1
#: Mixer buffer in sample frames (64 ms at 16 kHz): latency is no concern for a prompt.
BUFFER = 1024
#: Seconds :meth:`SdlVoice.close` lets a working voice process quit the mixer before stopping it.
CLOSE_TIMEOUT = 3.0
#: Seconds the voice process may take to open the device and load the prompts, or to answer a
#: prompt, before it counts as hung and is stopped (silence from then on).
ANSWER_TIMEOUT = 10.0
#: Seconds between SIGTERM and SIGKILL when the voice process is stopped.
KILL_WAIT = 1.0
#: The voice process's module (``python -m``).
CHILD_MODULE = "kiosk.voiceproc"


def prompt_path(directory: Path, language: str, event: str) -> Path:
    """Where the prompt for ``event`` in ``language`` is: ``<directory>/<language>/<event>.wav``."""
    return Path(directory) / language / f"{event}.wav"


@dataclass(frozen=True)
class Prompt:
    """One prompt handed to the speaker (or, for :class:`SilentVoice`, that would have been)."""

    event: str
    path: Path


class SilentVoice:
    """The stand-in: plays nothing, keeps every prompt it would have played in :attr:`played`
    (as gpiozero's ``MockFactory`` keeps pin states)."""

    def __init__(self, directory: Path | str = Path(), *, language: str = "zh") -> None:
        self.directory = Path(directory)
        self.language = language
        self.played: list[Prompt] = []
        """Every :meth:`play`, in order."""

    @property
    def events(self) -> list[str]:
        """The events of :attr:`played`, in order."""
        return [p.event for p in self.played]

    def start(self) -> None:
        """Nothing to open."""

    def play(self, event: str) -> None:
        """Keep ``event`` (its prompt's path too) instead of playing it."""
        self.played.append(Prompt(event, prompt_path(self.directory, self.language, event)))

    def wait_done(self, timeout: float = 0.0) -> bool:
        """Nothing ever plays: always done."""
        return True

    def close(self) -> None:
        """Nothing to close."""


class SdlVoice:
    """The speaker: prompts from ``<directory>/<language>/``, played by the voice process.

    Nothing is started by the constructor.  :meth:`start` (the app calls it once the pad is
    ready) starts the voice process; :meth:`play` starts it too if needed.  ``volume`` is 0.0
    (mute) to 1.0 (the file as recorded).  One prompt plays at a time: a new one cuts the one
    still playing (谢谢 after a quick press).  ``answer_timeout`` (seconds): how long the voice
    process may take to open the device or to answer a prompt before it is stopped as hung.

    :attr:`state` says where the voice process is: ``"new"`` (not started), ``"starting"``
    (Python starting), ``"opening"`` (opening the audio device), ``"ready"`` (playing what it is
    given) or ``"ended"`` (gone: closed, failed, died or stopped as hung; silent from then on).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        language: str = "zh",
        volume: float = 1.0,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self.directory = Path(directory)
        self.language = language
        self.volume = min(1.0, max(0.0, float(volume)))
        self.answer_timeout = answer_timeout
        self.played: list[Prompt] = []
        """Prompts handed to the mixer, in order (none while there is no audio device)."""
        self.failure = ""
        """Why there is no sound ("" while the voice works or has not been started yet)."""
        self.silent_events: set[str] = set()
        """Events whose WAV is missing or cannot be loaded, or unknown (each logged once)."""
        self.dropped = 0
        """Prompts not handed over because the voice process was not taking them (pipe full)."""
        self.format: tuple[int, ...] | None = None
        """The mixer's format in the voice process, ``(Hz, size, channels)``, once it opened."""
        self.state = "new"
        self._lock = threading.Condition()
        self._pending = 0  # prompts written, not yet answered
        self._busy = False  # a prompt is playing
        self._owed_since = 0.0  # monotonic time the oldest unanswered request was made
        self._stdin: int | None = None  # write end of the voice process's stdin (non-blocking)
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._close_gave_up = False

    @property
    def pid(self) -> int | None:
        """The voice process's pid (None before it was started)."""
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """The voice process's exit status once it has ended and been reaped (negative: the
        signal that ended it), else None."""
        return self._process.returncode if self._process is not None else None

    # -- the app's side (main thread): never blocks -------------------------------------------

    def start(self) -> None:
        """Start the voice process (idempotent; the spawn itself runs on the voice thread)."""
        with self._lock:
            if self._thread is not None or self._closed or self.state == "ended":
                return
            read_end = -1
            try:
                read_end, self._stdin = os.pipe()
                os.set_blocking(self._stdin, False)
                self.state = "starting"
                self._owed_since = time.monotonic()
                self._thread = threading.Thread(
                    target=self._supervise, args=(read_end,), name="voice", daemon=True
                )
                self._thread.start()
                return
            except (OSError, RuntimeError) as exc:  # no file descriptor or thread left
                failure = f"cannot start the voice process: {exc}"
                self._thread = None
                self.state = "ended"
                self._close_stdin()
                if read_end >= 0:
                    os.close(read_end)
        self._warn(failure)

    def play(self, event: str) -> None:
        """Play the prompt for ``event`` soon; returns at once (a prompt the voice process is
        not taking is dropped), never raises."""
        if event not in EVENTS:
            if event not in self.silent_events:
                self.silent_events.add(event)
                log.warning("voice: no prompt for the unknown event %r", event)
            return
        self.start()
        with self._lock:
            if self._closed or self._stdin is None:
                return
            try:
                os.write(self._stdin, f"{event}\n".encode())
            except BlockingIOError:  # the voice process is not reading: never wait for it
                self.dropped += 1
                return
            except OSError:  # it has ended: the voice thread tells why
                return
            if self._pending == 0:
                self._owed_since = time.monotonic()
            self._pending += 1

    def wait_done(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until every prompt handed over was answered and has
        finished playing (or the voice process has ended: nothing will play); True when it did.
        For tests and tools, never the app."""
        with self._lock:
            return self._lock.wait_for(
                lambda: self.state == "ended" or (self._pending == 0 and not self._busy), timeout
            )

    def wait_state(self, *states: str, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until :attr:`state` is one of ``states``; True when
        it is.  For tests and tools, never the app."""
        with self._lock:
            return self._lock.wait_for(lambda: self.state in states, timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop playing and end the voice process: its stdin closes, so it quits the mixer and
        exits; one that does not within ``timeout`` seconds (at once if the device never
        opened) is terminated, then killed after :data:`KILL_WAIT`."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._close_stdin()
            if self._thread is None:
                self.state = "ended"
                return
            if not self._lock.wait_for(lambda: self._process is not None or self.state == "ended",
                                       timeout):  # fmt: skip
                self._close_gave_up = True  # the voice thread stops it once it exists
                return
            process, opened = self._process, self.state == "ready"
        if process is None:
            return
        if opened:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._warn(f"the voice process did not quit the audio device in {timeout:g} s")
        if process.poll() is None:
            self._warn(f"the voice process hung while {self.state} (the audio device?)")
            self._stop(process)
        if self._thread is not threading.current_thread():
            self._thread.join(KILL_WAIT)

    # -- the voice thread: starts the process, reads its answers, stops it if it hangs --------

    def _command(self) -> list[str]:
        return [
            sys.executable, "-m", CHILD_MODULE,
            "--dir", str(self.directory), "--language", self.language,
            "--volume", repr(self.volume), "--parent", str(os.getpid()),
        ]  # fmt: skip

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])  # where ``kiosk`` is importable from
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        return env

    def _supervise(self, stdin: int) -> None:
        try:
            process = subprocess.Popen(
                self._command(), stdin=stdin, stdout=subprocess.PIPE, env=self._environment()
            )
        except OSError as exc:
            self._ended(f"cannot start the voice process: {exc}")
            return
        finally:
            os.close(stdin)  # the child holds it now: its end makes our writes fail
        with self._lock:
            self._process = process
            self._lock.notify_all()
            orphaned = self._close_gave_up
        if orphaned:
            self._stop(process)
        assert process.stdout is not None
        self._read(process, process.stdout.fileno())
        try:
            process.wait(KILL_WAIT)
        except subprocess.TimeoutExpired:  # it closed its stdout yet lives on
            self._stop(process)
        with self._lock:
            expected = self._closed or bool(self.failure)
        status = process.returncode
        self._ended("" if expected else f"the voice process ended (exit status {status})")

    def _read(self, process: subprocess.Popen[bytes], fd: int) -> None:
        """Handle the answers until the voice process closes its stdout; stop it if it owes an
        answer for longer than :attr:`answer_timeout`."""
        pending = b""
        while True:
            with self._lock:
                owes = self.state in ("starting", "opening") or self._pending > 0
                deadline = self._owed_since + self.answer_timeout
            wait = max(0.0, deadline - time.monotonic()) if owes else self.answer_timeout
            readable, _, _ = select.select([fd], [], [], wait)
            if not readable:
                with self._lock:
                    hung = (self.state in ("starting", "opening") or self._pending > 0) and (
                        time.monotonic() >= self._owed_since + self.answer_timeout
                    )
                    state = self.state
                if not hung:
                    continue
                if process.poll() is None:
                    self._warn(
                        f"the voice process did not answer within {self.answer_timeout:g} s"
                        f" while {state} (the audio device hangs?)"
                    )
                    self._stop(process)
                return
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                self._answer(line)

    def _answer(self, line: bytes) -> None:
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            log.debug("voice: not an answer: %r", line[:200])
            return
        now = time.monotonic()
        with self._lock:
            self._owed_since = now
            if "opening" in message:
                self.state = "opening"
            elif "ready" in message:
                self.state = "ready"
                self.format = tuple(message.get("format") or ()) or None
            elif "played" in message or "skipped" in message:
                event = str(message.get("played", message.get("skipped")))
                if "played" in message:
                    path = prompt_path(self.directory, self.language, event)
                    self.played.append(Prompt(event, path))
                    self._busy = True
                self._pending = max(0, self._pending - 1)
            elif "idle" in message:
                self._busy = False
            self._lock.notify_all()
        if "silent" in message:
            event = str(message["silent"])
            self.silent_events.add(event)
            if message.get("error") is None:
                log.warning("voice: no prompt for %s (%s is missing); that event is silent",
                            event, message.get("path"))  # fmt: skip
            else:
                log.warning("voice: cannot load the prompt %s (%s); that event is silent",
                            message.get("path"), message["error"])  # fmt: skip
        elif "ready" in message:
            log.info("voice: prompts from %s (%s)", self.directory / self.language,
                     ", ".join(message["ready"]) or "none")  # fmt: skip
        elif "failed" in message:
            self._warn(f"no audio output ({message['failed']})")
        elif "error" in message:
            log.error("voice: could not play %s", message["error"])

    def _warn(self, failure: str) -> None:
        """Silence from now on, said once (the first reason is the one kept)."""
        with self._lock:
            if self.failure:
                return
            self.failure = failure
        log.warning("voice: %s; voice prompts are silent", failure)

    def _ended(self, failure: str) -> None:
        if failure:
            self._warn(failure)
        with self._lock:
            self.state = "ended"
            self._pending = 0
            self._busy = False
            self._close_stdin()
            self._lock.notify_all()

    def _close_stdin(self) -> None:
        if self._stdin is not None:
            os.close(self._stdin)
            self._stdin = None

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        """SIGTERM, then SIGKILL after :data:`KILL_WAIT`; reaped when it ends in time."""
        for signal_it in (process.terminate, process.kill):
            if process.poll() is not None:
                return
            try:
                signal_it()
                process.wait(KILL_WAIT)
                return
            except subprocess.TimeoutExpired:
                continue
            except OSError:
                return
        log.error("voice: the voice process %d does not end (SIGKILL ignored)", process.pid)
