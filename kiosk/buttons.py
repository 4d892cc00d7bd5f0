"""Hardware level buttons: five arcade buttons on GPIO pins, read with gpiozero.

Each button is a ``gpiozero.Button`` (pull-up by default: wired to ground, pressed = low) with a
``bounce_time``; its ``when_pressed`` callback runs on gpiozero's own thread and only hands the
level to ``on_press`` (which must just queue it and wake the loop: no work on that thread).

The pin factory is chosen by name, as ``GPIOZERO_PIN_FACTORY`` would: ``lgpio`` on a Pi 5
(gpiozero >= 2.0.1.post3), ``rpigpio``/``pigpio``/``native`` on older boards, ``""`` for gpiozero's
own choice, and ``mock`` for gpiozero's ``MockFactory`` — the stand-in that ships with the library
and lets a bench or a test drive the pins (``pin.drive_low()`` / ``drive_high()``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from evaluator.rules.levels import Level

log = logging.getLogger(__name__)


def pin_factory(name: str) -> Any:
    """The gpiozero pin factory called ``name`` (``None`` = gpiozero's default choice)."""
    if not name:
        return None
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory()
    if name == "native":
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    raise ValueError(f"unknown pin factory {name!r}")


class LevelButtons:
    """The fitted level buttons.  ``pins`` maps each level to its BCM pin.

    ``on_press`` (settable after construction) is called with the :class:`Level` of each press,
    on gpiozero's thread.  :meth:`close` releases the pins.
    """

    def __init__(
        self,
        pins: Mapping[Level, int],
        *,
        pull_up: bool = True,
        bounce_time: float | None = 0.05,
        factory: Any = None,
        on_press: Callable[[Level], None] | None = None,
    ) -> None:
        from gpiozero import Button

        taken = list(pins.values())
        if len(set(taken)) != len(taken):
            raise ValueError(f"two level buttons share a pin: {sorted(taken)}")
        self.on_press = on_press
        self.factory = factory
        self.buttons: dict[Level, Any] = {}
        try:
            for level, pin in pins.items():
                button = Button(pin, pull_up=pull_up, bounce_time=bounce_time, pin_factory=factory)
                button.when_pressed = self._handler(level)
                self.buttons[level] = button
        except Exception:
            self.close()
            raise

    def _handler(self, level: Level) -> Callable[[], None]:
        def pressed() -> None:
            callback = self.on_press
            if callback is not None:
                callback(level)

        return pressed

    def pin(self, level: Level) -> Any:
        """The gpiozero pin object of ``level``'s button (a mock pin on ``MockFactory``)."""
        return self.buttons[level].pin

    def close(self) -> None:
        """Release every pin (idempotent)."""
        for button in self.buttons.values():
            try:
                button.close()
            except Exception:  # closing must never stop a shutdown
                log.debug("closing a button failed", exc_info=True)
        self.buttons = {}
