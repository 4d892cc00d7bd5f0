"""The print queue: receipts go out on a thread of their own, never in the citizen's path.

``submit(receipt)`` puts the receipt in memory and returns at once: it builds no bytes, opens no
device and touches no disk.  The worker thread builds the bytes, opens the connection, asks the
printer's state (``DLE EOT``, when the profile says it answers), sends, and keeps the receipt
until every byte was taken.  An unplugged printer, a refused connection, a socket or device file
that stops taking data (each write bounded by the connection's timeout), paper out or the cover
open: the receipt stays queued and is tried again after a wait that grows
(:class:`evaluator.rules.backoff.Backoff`), and :attr:`PrintSpooler.status` says why.  Receipts
print in the order submitted, each once.

Held receipts expire: a receipt is for the citizen at the window, and printed ``max_age`` seconds
later (the pad gives the time its citizen is likely still there) it would land in the next
citizen's hands with another person's case and QR. The pad shows the QR on screen anyway (the
wiring's part), so an expired receipt is dropped, counted and logged, not printed.

The optional spool directory keeps the queue across a restart: the worker writes each receipt
there (``<time>-<id>.json``, written whole then renamed, owner-only) before its first attempt and
deletes it once printed or expired.  On start the files are read back; one older than
``max_age`` by the wall clock, or dated in the future (a clock that jumped: its age is unknown),
is dropped; an unreadable one is renamed ``*.bad`` and kept for a look.  Without the directory a
restart loses what was queued, which ``max_age`` would soon drop anyway; with it, a
receipt submitted just before a crash still comes out.  A crash between the last byte sent and
the file's deletion prints that receipt again after the restart (at least once, not exactly
once, across a crash).

After a write that failed mid-way the printer may be left inside a command (a raster band),
so the next attempt begins with :data:`printer.render.RESYNC`; the torn receipt is then printed
again whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from evaluator.rules.backoff import Backoff
from printer import commands as cmd
from printer.connection import Connection
from printer.profile import PrinterProfile
from printer.receipt import Receipt
from printer.status import (
    COVER_OPEN,
    NO_ANSWER,
    OFFLINE,
    OK,
    PAPER_OUT,
    REQUESTS,
    UNKNOWN,
    Reading,
    reading,
)
from printer.sticker import Sticker

log = logging.getLogger(__name__)

#: Phases of the worker, in :attr:`PrinterStatus.phase`.
IDLE, BUILDING, CONNECTING, QUERYING, WRITING, WAITING = (
    "idle",
    "building",
    "connecting",
    "querying",
    "writing",
    "waiting",
)
#: States in which a receipt is held back rather than sent.
HOLD = frozenset({PAPER_OUT, COVER_OPEN, OFFLINE})
NO_BACK_CHANNEL = "printed; the printer has no status back channel, so nothing more is known"
DEFAULT_MAX_AGE = 300.0
DEFAULT_MAX_PENDING = 50
DEFAULT_POLL = 30.0


@dataclass(frozen=True)
class PrinterStatus:
    """What the wiring shows in ``status``.

    ``state`` is one of :data:`printer.status.STATES`; ``detail`` says why (never a receipt's
    content); ``pending`` receipts wait; ``printed`` and ``dropped`` count since start;
    ``phase`` is what the worker is doing (``idle``, ``building``, ``connecting``,
    ``querying``, ``writing``, ``waiting`` for a retry).
    """

    state: str = UNKNOWN
    detail: str = "nothing printed yet"
    pending: int = 0
    printed: int = 0
    dropped: int = 0
    phase: str = IDLE


@dataclass(eq=False)
class _Job:
    id: str
    receipt: Receipt | Sticker
    queued_mono: float
    queued_wall: float
    data: bytes | None = None
    spooled: Path | None = None
    tries: int = field(default=0)


class PrintSpooler:
    """Prints receipts on its own thread (see the module docstring).

    ``connection`` comes from :func:`printer.open_printer`; ``profile`` says how to build the
    bytes.  ``spool_dir`` (optional) keeps the queue across a restart; ``max_age`` seconds
    after ``submit`` an unprinted receipt is dropped; beyond ``max_pending`` queued receipts
    the oldest is dropped.  While idle in a state other than ``ok``, a printer that answers
    status is asked again every ``poll_interval`` seconds (0: never), so the state clears when
    paper is loaded.  ``on_change(status)`` is called on the worker thread after every change:
    hand it to the main loop, do no work there.
    """

    def __init__(
        self,
        connection: Connection,
        profile: PrinterProfile,
        *,
        spool_dir: Path | str | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        max_pending: int = DEFAULT_MAX_PENDING,
        poll_interval: float = DEFAULT_POLL,
        backoff: Backoff | None = None,
        on_change: Callable[[PrinterStatus], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not max_age > 0:
            raise ValueError(f"max_age must be more than 0 seconds, not {max_age!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending!r}")
        self.connection = connection
        self.profile = profile
        self.spool_dir = Path(spool_dir) if spool_dir is not None else None
        self.max_age = float(max_age)
        self.max_pending = max_pending
        self.poll_interval = float(poll_interval)
        self.backoff = backoff or Backoff(1.0, cap=30.0)
        self.on_change = on_change
        self._mono = monotonic
        self._wall = wall
        self._cond = threading.Condition()
        self._jobs: deque[_Job] = deque()
        self._status = PrinterStatus()
        self._next_try = 0.0
        self._next_poll = 0.0
        self._torn = False
        self._gone: list[_Job] = []  # dropped receipts whose spool files the worker deletes
        self._stopping = False
        self._current: _Job | None = None  # the receipt the worker is trying (never trimmed)
        self._thread: threading.Thread | None = None

    # -- the caller's side: never blocks on the printer ---------------------------------------

    def submit(self, receipt: Receipt | Sticker) -> str:
        """Queue ``receipt`` (or the window's static QR :class:`Sticker`) and return its id at
        once (it is printed on the worker thread)."""
        if not isinstance(receipt, Receipt | Sticker):
            raise TypeError(f"submit takes a Receipt or a Sticker, not {type(receipt).__name__}")
        job = _Job(uuid.uuid4().hex[:12], receipt, self._mono(), self._wall())
        with self._cond:
            if not self._jobs:
                self._next_try = 0.0  # a new receipt after an idle spell: try at once
            self._jobs.append(job)
            self._trim_locked()
            self._set_locked(pending=len(self._jobs))
        return job.id

    @property
    def status(self) -> PrinterStatus:
        """The state now (a snapshot)."""
        with self._cond:
            return self._status

    def wait_until(self, predicate: Callable[[PrinterStatus], bool], timeout: float) -> bool:
        """Block until ``predicate(status)`` holds (True) or ``timeout`` seconds pass (False).
        For the CLI and the tests; the pad's loop never calls it."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._status), timeout)

    def retry_now(self) -> None:
        """Try the queued receipts at once (a technician fixed the printer)."""
        with self._cond:
            self._next_try = 0.0
            self._next_poll = 0.0
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._thread is not None:
            raise RuntimeError("the spooler is already started")
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker: the attempt under way is cut short (the connection is aborted), the
        queue stays in the spool directory if there is one.  Waits at most ``timeout`` s."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self.connection.abort()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- the worker ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._restore()
            while True:
                job = self._next_job()
                if job is None:
                    break
                if job is _POLL:
                    self._poll()
                else:
                    with self._cond:
                        self._current = job
                    try:
                        self._attempt(job)
                    finally:
                        with self._cond:
                            self._current = None
        except Exception:  # never expected: log it, the pad goes on without receipts
            log.exception("the printer thread stopped on an error")
            with self._cond:
                self._set_locked(state=OFFLINE, detail="the printer thread stopped on an error")
            self._changed()
        finally:
            with contextlib.suppress(Exception):
                self.connection.close()

    def _next_job(self) -> _Job | None:
        """The receipt to try now, :data:`_POLL` for a status poll, ``None`` to stop; drops
        (and forgets, outside the lock) what expired or was pushed out meanwhile."""
        while True:
            with self._cond:
                if self._stopping:
                    return None
                self._expire_locked()
                gone, self._gone = self._gone, []
                if not gone:
                    now = self._mono()
                    if self._jobs:
                        wait: float | None = self._next_try - now
                        if wait is not None and wait <= 0:
                            return self._jobs[0]
                        self._set_locked(phase=WAITING)
                    else:
                        wait = None
                        self._set_locked(phase=IDLE)
                        if self._polls():
                            wait = self._next_poll - now
                            if wait <= 0:
                                return _POLL
                    self._cond.wait(wait)
                    continue
            for job in gone:
                self._unspool(job)
            self._changed()

    def _polls(self) -> bool:
        return (
            self.poll_interval > 0
            and self.profile.status
            and self.connection.answers
            and self._status.state != OK
        )

    def _attempt(self, job: _Job) -> None:
        if job.data is None:
            self._phase(BUILDING)
            try:
                from printer.render import document_bytes

                job.data = document_bytes(job.receipt, self.profile)
            except Exception as exc:  # it can never be built (no font, URL too long): drop it
                log.exception("receipt %s cannot be built", job.id)
                why = Reading(self._status.state, f"a receipt could not be built: {exc}")
                self._finish(job, printed=False, reading=why)
                return
        self._spool(job)
        job.tries += 1
        try:
            self._phase(CONNECTING)
            self.connection.open()
            if self.profile.status and self.connection.answers:
                self._phase(QUERYING)
                before = self._query()
                if before.state in HOLD:
                    self._failed(before)
                    return
            self._phase(WRITING)
            torn, self._torn = self._torn, True  # a failure from here may tear the receipt
            if torn:
                self.connection.write(self._resync())
            self.connection.write(job.data)
            self._torn = False
            after = Reading(UNKNOWN, NO_BACK_CHANNEL)
            if self.profile.status and self.connection.answers:
                self._phase(QUERYING)
                after = self._query()
                if after.state == UNKNOWN:
                    after = Reading(OFFLINE, f"printed, but {NO_ANSWER}")
            if self.connection.per_job:
                self.connection.close()
        except Exception as exc:  # any failure of the link: keep the receipt, try later
            with contextlib.suppress(Exception):
                self.connection.close()
            self._failed(Reading(OFFLINE, str(exc) or type(exc).__name__))
            return
        self._finish(job, printed=True, reading=after)

    def _resync(self) -> bytes:
        from printer.render import RESYNC

        return RESYNC

    def _query(self) -> Reading:
        replies = {n: self.connection.query(cmd.status_request(n)) for n in REQUESTS}
        return reading(replies)

    def _poll(self) -> None:
        self._phase(QUERYING)
        try:
            self.connection.open()
            now = self._query()
            if now.state == UNKNOWN:
                now = Reading(OFFLINE, NO_ANSWER)
            if self.connection.per_job:
                self.connection.close()
        except Exception as exc:
            with contextlib.suppress(Exception):
                self.connection.close()
            now = Reading(OFFLINE, str(exc) or type(exc).__name__)
        with self._cond:
            self._next_poll = self._mono() + self.poll_interval
            self._set_locked(state=now.state, detail=now.detail, phase=IDLE)
        self._changed()

    def _failed(self, why: Reading) -> None:
        if self.connection.per_job:
            with contextlib.suppress(Exception):
                self.connection.close()
        with self._cond:
            wait = self.backoff.next()
            self._next_try = self._mono() + wait
            changed = why.state != self._status.state
            self._set_locked(state=why.state, detail=why.detail, phase=WAITING)
        if changed:
            log.warning("printer %s: %s (next try in %.1f s)", why.state, why.detail, wait)
        self._changed()

    def _finish(self, job: _Job, *, printed: bool, reading: Reading) -> None:
        self._unspool(job)
        with self._cond:
            if self._jobs and self._jobs[0] is job:
                self._jobs.popleft()
            self.backoff.reset()
            self._next_try = 0.0
            self._next_poll = self._mono() + self.poll_interval
            st = self._status
            self._set_locked(
                state=reading.state,
                detail=reading.detail,
                pending=len(self._jobs),
                printed=st.printed + (1 if printed else 0),
                dropped=st.dropped + (0 if printed else 1),
                phase=IDLE,
            )
        if printed:
            log.info("receipt %s printed (%s)", job.id, reading.state)
        self._changed()

    # -- state ------------------------------------------------------------------------------

    def _set_locked(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]
        self._cond.notify_all()

    def _phase(self, phase: str) -> None:
        with self._cond:
            self._set_locked(phase=phase)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(self.status)
        except Exception:
            log.exception("the printer's on_change callback failed")

    def _expire_locked(self) -> None:
        now = self._mono()
        expired = [j for j in self._jobs if now - j.queued_mono > self.max_age]
        for job in expired:
            self._jobs.remove(job)
            log.warning("receipt %s dropped unprinted after %.0f s", job.id, self.max_age)
        self._drop_locked(expired)

    def _trim_locked(self) -> None:
        trimmed = []
        # The receipt the worker is writing neither counts nor goes: it ends printed or failed,
        # and dropping it too would count it twice (and put its QR on screen for nothing).
        waiting = [j for j in self._jobs if j is not self._current]
        while len(waiting) > self.max_pending:
            victim = waiting.pop(0)
            self._jobs.remove(victim)
            trimmed.append(victim)
            log.warning("receipt %s dropped: more than %d queued", victim.id, self.max_pending)
        self._drop_locked(trimmed)

    def _drop_locked(self, jobs: list[_Job]) -> None:
        """Count ``jobs`` as dropped; the worker deletes their spool files (not the caller)."""
        if jobs:
            self._gone += jobs
            st = self._status
            self._set_locked(pending=len(self._jobs), dropped=st.dropped + len(jobs))

    # -- the spool directory ------------------------------------------------------------------

    def _spool(self, job: _Job) -> None:
        if self.spool_dir is None or job.spooled is not None or isinstance(job.receipt, Sticker):
            return
        name = f"{int(job.queued_wall * 1000):015d}-{job.id}.json"
        path = self.spool_dir / name
        body = {"id": job.id, "queued_at": job.queued_wall, "receipt": job.receipt.to_json()}
        try:
            self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(body, ensure_ascii=False).encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:  # a full or read-only card: print anyway, just not kept
            log.warning("receipt %s not kept in %s: %s", job.id, self.spool_dir, exc)
            return
        job.spooled = path

    def _unspool(self, job: _Job) -> None:
        if job.spooled is not None:
            with contextlib.suppress(OSError):
                job.spooled.unlink()
            job.spooled = None

    def _restore(self) -> None:
        if self.spool_dir is None or not self.spool_dir.is_dir():
            return
        restored: list[_Job] = []
        dropped = 0
        now_wall, now_mono = self._wall(), self._mono()
        for path in sorted(self.spool_dir.glob("*.json")):
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
                receipt = Receipt.from_json(body["receipt"])
                queued, job_id = float(body["queued_at"]), str(body["id"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("spooled receipt %s unreadable, kept as .bad: %s", path.name, exc)
                with contextlib.suppress(OSError):
                    path.rename(path.with_suffix(".bad"))
                continue
            age = now_wall - queued
            if not 0 <= age <= self.max_age:
                log.warning("spooled receipt %s dropped: %.0f s old", job_id, age)
                with contextlib.suppress(OSError):
                    path.unlink()
                dropped += 1
                continue
            restored.append(_Job(job_id, receipt, now_mono - age, queued, spooled=path))
        for tmp in self.spool_dir.glob("*.tmp"):  # a write cut short: never renamed, never valid
            with contextlib.suppress(OSError):
                tmp.unlink()
        with self._cond:
            self._jobs.extendleft(reversed(restored))
            self._trim_locked()
            st = self._status
            self._set_locked(pending=len(self._jobs), dropped=st.dropped + dropped)
        if restored:
            log.info("%d spooled receipt(s) restored from %s", len(restored), self.spool_dir)
        self._changed()


_POLL: _Job = _Job("poll", None, 0.0, 0.0)  # type: ignore[arg-type]
