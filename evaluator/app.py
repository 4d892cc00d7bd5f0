"""The running pad: wires the session to the screen, the counter link, the store and the sync.

Threads: the main thread owns pygame and the session (neither is thread-safe); the counter
link and the MQTT sync each own their device and only queue work for the main thread.  The
main loop blocks on events until the next deadline, so an idle pad uses no CPU.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
from dataclasses import dataclass
from types import FrameType
from typing import Any

from evaluator.clock import Clock, Stamp, SystemClock
from evaluator.config import Config
from evaluator.errors import EvaluatorError, RequestError, StoreError, SubmitError
from evaluator.protocol import Message, finished_event, reply_error, reply_ok
from evaluator.reasons import OTHER_CODE, OTHER_TEXT, load_reasons
from evaluator.request import parse_clerk, parse_request
from evaluator.session import Finished, Outcome, Presentation, Session, State
from kiosk import texts
from kiosk.view import (
    Back,
    Backspace,
    PressLevel,
    ReasonItem,
    ScreenView,
    Submit,
    ToggleAgency,
    ToggleReason,
    TypeText,
    UiAction,
)
from sync.store import Store

log = logging.getLogger(__name__)

#: Fields each request type takes besides ``id`` and ``type`` (start is checked by the parser).
_FIELDS: dict[str, set[str]] = {"clerk.sign_in": {"clerk"}}

#: How long a storage-failure notice stays on screen, in seconds.
NOTICE_SECONDS = 5.0


class StoreLedger:
    """The session's ledger on top of the SQLite store; wakes the sync after each rating."""

    def __init__(self, store: Store, *, on_rating: Any = None) -> None:
        self.store = store
        self.on_rating = on_rating

    def already_rated(self, serials: tuple[str, ...], stage: str, assess_number: int) -> list[str]:
        return self.store.already_rated(serials, stage, assess_number)

    def open_presentation(self, presentation: Presentation) -> None:
        req = presentation.request
        self.store.open_presentation(
            id=presentation.id,
            serials=req.serials,
            stage=req.stage,
            assess_number=req.assess_number,
            clerk_id=req.clerk.id,
            matter_codes=[c.matter_code for c in req.cases],
            started_at=presentation.started.iso,
            clock_synced=presentation.started.synced,
        )

    def record_rating(self, content: dict[str, Any]) -> str:
        record = self.store.append_rating(content)
        if self.on_rating is not None:
            self.on_rating()
        return str(record["id"])

    def close_presentation(
        self, presentation: Presentation, outcome: Outcome, at: Stamp, rating_ids: tuple[str, ...]
    ) -> None:
        self.store.close_presentation(
            presentation.id, outcome=outcome.value, ended_at=at.iso, rating_ids=rating_ids
        )


@dataclass
class Notice:
    text: str
    until: float


class App:
    """The evaluator as configured: ``App(config).run()`` until SIGTERM/SIGINT or window close."""

    def __init__(self, config: Config, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.store = Store(config.storage.path, device_id=config.device.id)
        self._close_interrupted_presentations()
        self.sync = self._make_sync()
        self.ledger = StoreLedger(self.store, on_rating=self.sync.notify if self.sync else None)
        self.session = Session(
            ledger=self.ledger,
            reasons=load_reasons(config.session.reasons_file),
            clock=self.clock,
            timeout=config.session.timeout,
            thanks=config.session.thanks,
            on_finished=self._finished,
        )
        self.link = self._make_link()
        self.notice: Notice | None = None
        self._running = True
        self.screen: Any = None

    # -- wiring ---------------------------------------------------------------------------------

    def _make_sync(self) -> Any:
        mq = self.config.mqtt
        if not mq.enabled:
            return None
        from sync.mqtt import SyncWorker

        return SyncWorker(
            store_path=self.config.storage.path,
            device_id=self.config.device.id,
            host=mq.host,
            port=mq.port,
            topic_prefix=mq.topic_prefix,
            client_id=mq.client_id,
            username=mq.username,
            password=mq.password,
            keepalive=mq.keepalive,
            resend_after=mq.resend_after,
            max_rate=mq.max_rate,
        )

    def _make_link(self) -> Any:
        counter = self.config.counter
        if not counter.port:
            return None
        from kiosk.counter import CounterLink

        return CounterLink(
            counter.port,
            baudrate=counter.baudrate,
            reconnect=counter.reconnect,
            on_message=self._queue_message,
        )

    def _close_interrupted_presentations(self) -> None:
        """A presentation open when the power went: it was not rated (art. 25)."""
        now = self.clock.now()
        for row in self.store.unclosed_presentations():
            self.store.close_presentation(row["id"], outcome="not_rated", ended_at=now.iso)

    def _queue_message(self, message: Message) -> None:
        self.inbox.put(message)
        self._wake()

    def _wake(self) -> None:
        if self.screen is not None:
            self.screen.post_wake()

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        from kiosk.screen import Screen, is_quit

        sc = self.config.screen
        try:
            self.screen = Screen(
                width=sc.width,
                height=sc.height,
                fullscreen=sc.fullscreen,
                font_path=sc.font,
                driver=sc.driver,
                title=f"窗口评价器 {self.config.device.id}",
            )
        except EvaluatorError:
            self.store.close()
            raise
        except Exception as exc:  # pygame.error: no display, wrong driver, missing permissions
            self.store.close()
            raise EvaluatorError(
                f"cannot open the screen (driver {sc.driver!r}): {exc}; "
                "see docs/technician.md, troubleshooting"
            ) from exc
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        if self.sync is not None:
            self.sync.start()
        if self.link is not None:
            self.link.start()
        log.info("evaluator %s running (storage %s)", self.config.device.id, self.store.path)
        _sd_notify("READY=1")
        shown: ScreenView | None = None
        try:
            while self._running:
                self._drain_inbox()
                self.session.tick()
                view = self.view()
                if view != shown:
                    self.screen.render(view)
                    shown = view
                for event in self.screen.wait(self._sleep_for()):
                    if is_quit(event):
                        self._running = False
                    action = self.screen.translate(event)
                    if action is not None:
                        self.act(action)
        finally:
            self.shutdown()
        return 0

    def _sleep_for(self) -> float:
        now = self.clock.now().mono
        wakeups = [1.0]  # the countdown shows whole seconds
        deadline = self.session.next_deadline()
        if deadline is not None:
            wakeups.append(max(0.0, deadline - now) + 0.01)
        if self.notice is not None:
            wakeups.append(max(0.0, self.notice.until - now))
        return min(wakeups)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        self._running = False
        self._wake()

    def shutdown(self) -> None:
        if self.link is not None:
            self.link.stop()
        if self.sync is not None:
            self.sync.stop()
            self.sync.join(5)
        if self.screen is not None:
            self.screen.close()
        self.store.close()

    # -- counter requests -------------------------------------------------------------------------

    def _drain_inbox(self) -> None:
        while True:
            try:
                message = self.inbox.get_nowait()
            except queue.Empty:
                return
            reply = self.handle(message)
            if self.link is not None:
                self.link.send(reply)

    def handle(self, message: Message) -> dict[str, Any]:
        """Apply one counter request; the reply never mentions a level."""
        try:
            return self._handle(message)
        except RequestError as exc:
            log.info("request %s refused: %s", message.id, exc.message)
            return reply_error(message.id, exc)
        except StoreError as exc:
            log.error("storage failed while handling %s: %s", message.type, exc)
            return reply_error(message.id, RequestError("storage", str(exc)))

    def _handle(self, message: Message) -> dict[str, Any]:
        s, body = self.session, message.body
        allowed = _FIELDS.get(message.type, set())
        unknown = sorted(set(body) - allowed) if message.type != "evaluation.start" else []
        if unknown:
            raise RequestError("unknown_field", f"{message.type} takes no field {unknown[0]!r}")
        if message.type == "evaluation.start":
            presentation = s.start(parse_request(body))
            log.info("rating screen for cases %s", ",".join(presentation.request.serials))
        elif message.type == "evaluation.cancel":
            if not s.cancel():
                raise RequestError("not_presenting", "no rating screen is open")
        elif message.type == "clerk.sign_in":
            s.sign_in(parse_clerk(body.get("clerk")))
        elif message.type == "clerk.sign_out":
            s.sign_out()
        elif message.type == "window.pause":
            s.pause()
        elif message.type == "window.resume":
            s.resume()
        elif message.type == "status":
            status = self.sync.status if self.sync is not None else None
            return reply_ok(
                message.id,
                state=s.state.value,
                outbox=self.store.outbox_size(),
                online=bool(status and status.connected),
            )
        return reply_ok(message.id)

    def _finished(self, finished: Finished) -> None:
        """Called by the session after the outcome is durable; tells the counter.

        Logs carry the outcome only, never the level: the journal is readable at the window.
        """
        log.info("cases %s: %s", ",".join(finished.serials), finished.outcome.value)
        if self.link is not None:
            self.link.send(finished_event(finished.serials, finished.outcome.value))

    # -- citizen input ----------------------------------------------------------------------------

    def act(self, action: UiAction) -> None:
        """Apply one tap or key; storage failures show a notice and lose nothing already kept."""
        s = self.session
        try:
            if isinstance(action, PressLevel):
                s.press(action.level)
            elif isinstance(action, ToggleReason):
                s.toggle_reason(action.code)
            elif isinstance(action, ToggleAgency):
                s.toggle_agency(action.name)
            elif isinstance(action, TypeText):
                s.type_text(action.text)
            elif isinstance(action, Backspace):
                s.backspace()
            elif isinstance(action, Back):
                s.back()
            elif isinstance(action, Submit):
                s.submit()
        except SubmitError:
            pass  # the 提交 button is disabled; a stray Enter does nothing
        except (StoreError, OSError) as exc:
            log.error("could not store the rating: %s", exc)
            self.notice = Notice(texts.STORAGE_FAILED, self.clock.now().mono + NOTICE_SECONDS)

    # -- what the screen shows ---------------------------------------------------------------------

    def view(self) -> ScreenView:
        """The screen for the session's state (pure: no drawing)."""
        s, cfg = self.session, self.config
        online = bool(self.sync is not None and self.sync.status.connected)
        now = self.clock.now().mono
        if self.notice is not None and now >= self.notice.until:
            self.notice = None
        clerk = s.clerk
        base: dict[str, Any] = {
            "window": cfg.device.window,
            "clerk_name": clerk.name if clerk else "",
            "clerk_id": clerk.id if clerk else "",
            "online": online,
        }
        if self.notice is not None and s.state in (State.PRESENTING, State.CHOOSING_REASONS):
            base["message"] = self.notice.text
        p = s.presentation
        if p is not None and s.state in (State.PRESENTING, State.CHOOSING_REASONS):
            deadline = s.next_deadline()
            base["cases"] = tuple((c.matter_name, c.serial) for c in p.current_cases)
            base["theme"] = p.request.theme.name if p.request.theme else ""
            base["seconds_left"] = max(0, int(deadline - now + 0.999)) if deadline else None
            if s.state is State.PRESENTING or s.choice is None:
                return ScreenView("presenting", **base)
            choice = s.choice
            items = [
                ReasonItem(r.code, r.text, r.target, r.code in choice.selected)
                for r in choice.offered
            ]
            items.append(ReasonItem(OTHER_CODE, OTHER_TEXT, "other", choice.other))
            agencies = (
                tuple((a, a in choice.agencies) for a in p.request.agencies)
                if "matter" in p.targets
                else ()
            )
            return ScreenView(
                "reasons",
                level=choice.level,
                reasons=tuple(items),
                agencies=agencies,
                comment=choice.comment,
                can_submit=choice.can_submit,
                **base,
            )
        screen = {
            State.SIGNED_OUT: "signed_out",
            State.IDLE: "idle",
            State.THANKS: "thanks",
            State.PAUSED: "paused",
        }.get(s.state, "idle")
        return ScreenView(screen, **base)


def _sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
