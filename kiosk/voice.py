"""Voice prompts: one short WAV per event, played through SDL's audio (``pygame.mixer``).

Two devices with one API (``start``, ``play``, ``close``), picked by :mod:`evaluator.devices`
from ``[voice]`` the way gpiozero picks a pin factory:

- :class:`SdlVoice` — the speaker.  ``play`` only queues the event; a worker thread opens the
  mixer (``pygame.mixer.init`` can fail, or take a while to find the audio device), loads the
  prompts and plays them, so the screen is never delayed.  No audio device: one warning in the
  log, then silence; a missing or broken WAV: one log line, that event silent.  Nothing here ever
  raises into the app.
- :class:`SilentVoice` — the stand-in (``[voice] enabled = false``, and the tests): plays
  nothing, keeps what it would have played.

The prompts live in ``<dir>/<language>/<event>.wav`` (``zh/`` Simplified Chinese, ``en/``
English; the display language picks the folder).  The shipped set is ``config/voice/``, made by
``scripts/make-voice``: 16 kHz, mono, 16-bit, which is also the mixer's format (SDL converts to
what the device wants; a WAV in another format is converted when it is loaded).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
#: Seconds :meth:`SdlVoice.close` waits for the worker to quit the mixer.
CLOSE_TIMEOUT = 3.0


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


_STOP = object()


class SdlVoice:
    """The speaker: prompts from ``<directory>/<language>/`` through ``pygame.mixer``.

    Nothing is opened by the constructor.  :meth:`start` (the app calls it once the pad is
    ready) starts the worker thread, which opens the mixer and loads the prompts; :meth:`play`
    starts it too if needed.  ``volume`` is 0.0 (mute) to 1.0 (the file as recorded).  One
    prompt plays at a time: a new one cuts the one still playing (谢谢 after a quick press).
    """

    def __init__(self, directory: Path | str, *, language: str = "zh", volume: float = 1.0) -> None:
        self.directory = Path(directory)
        self.language = language
        self.volume = min(1.0, max(0.0, float(volume)))
        self.played: list[Prompt] = []
        """Prompts handed to the mixer, in order (none while there is no audio device)."""
        self.failure = ""
        """Why there is no sound ("" while the mixer works or has not been opened yet)."""
        self.silent_events: set[str] = set()
        """Events whose WAV is missing or cannot be loaded (each logged once)."""
        self._queue: queue.Queue[object] = queue.Queue()
        self._lock = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._opened = False
        self._closed = False

    # -- the app's side (main thread): never blocks -------------------------------------------

    def start(self) -> None:
        """Start the worker (idempotent): it opens the mixer and loads the prompts."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="voice", daemon=True)
            self._thread.start()

    def play(self, event: str) -> None:
        """Play the prompt for ``event`` soon; returns at once, never raises."""
        with self._lock:
            if self._closed:
                return
            self._pending += 1
        self._queue.put(event)
        self.start()

    def wait_done(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds until every queued prompt was handed to the mixer
        and has finished playing; True when it did.  For tests and tools, never the app."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if not self._lock.wait_for(lambda: self._pending == 0, timeout):
                return False
        while self._opened:
            import pygame

            if not (pygame.mixer.get_init() and pygame.mixer.get_busy()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)  # the mixer has no "finished" wait that leaves the event queue alone
        return True

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Stop playing and quit the mixer (in the worker, which opened it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)
        if thread.is_alive():
            log.warning("voice: the audio device did not close within %.0f s", timeout)

    # -- the worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        sounds: dict[str, Any] = {}
        channel = None
        try:
            sounds, channel = self._open()
        except Exception as exc:  # pygame.error: no device, no driver, a busy device …
            self.failure = f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc)
            log.warning("voice: no audio output (%s); voice prompts are silent", self.failure)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    break
                try:
                    if channel is not None:
                        self._play(str(item), sounds, channel)
                except Exception:  # a prompt must never stop the voice, let alone the pad
                    log.exception("voice: could not play %s", item)
                finally:
                    with self._lock:
                        self._pending -= 1
                        self._lock.notify_all()
        finally:
            if self._opened:
                self._quit()

    def _open(self) -> tuple[dict[str, Any], Any]:
        import pygame

        pygame.mixer.init(
            frequency=FREQUENCY, size=-16, channels=CHANNELS, buffer=BUFFER, allowedchanges=0
        )
        self._opened = True
        pygame.mixer.set_reserved(1)  # one voice: a new prompt replaces the one playing
        sounds: dict[str, Any] = {}
        for event in EVENTS:
            path = prompt_path(self.directory, self.language, event)
            if not path.is_file():
                self.silent_events.add(event)
                log.warning("voice: no prompt for %s (%s is missing); that event is silent",
                            event, path)  # fmt: skip
                continue
            try:
                sound = pygame.mixer.Sound(str(path))
            except Exception as exc:  # not a WAV, truncated, a format SDL cannot read
                self.silent_events.add(event)
                log.warning("voice: cannot load the prompt %s (%s); that event is silent",
                            path, exc)  # fmt: skip
                continue
            sound.set_volume(self.volume)
            sounds[event] = sound
        log.info("voice: prompts from %s (%s)", self.directory / self.language,
                 ", ".join(sorted(sounds)) or "none")  # fmt: skip
        return sounds, pygame.mixer.Channel(0)

    def _play(self, event: str, sounds: dict[str, Any], channel: Any) -> None:
        sound = sounds.get(event)
        if sound is None:
            if event not in EVENTS and event not in self.silent_events:
                self.silent_events.add(event)
                log.warning("voice: no prompt for the unknown event %r", event)
            return
        channel.play(sound)
        self.played.append(Prompt(event, prompt_path(self.directory, self.language, event)))

    def _quit(self) -> None:
        import pygame

        try:
            pygame.mixer.stop()
            pygame.mixer.quit()
        except Exception:
            log.exception("voice: could not close the audio device")
        self._opened = False
