"""How long to wait before the next attempt to reach a device that went away.

One rule for every link that retries (the MQTT sync, the counter serial link): the first wait is
short so that a replug or a broker restart comes back fast; each failed attempt multiplies the
wait by ``factor`` up to ``cap`` so that a device that keeps failing is not hammered; each wait is
shortened by a random part of up to ``jitter`` of itself so that many pads that lost the same
broker at the same moment do not all come back at the same moment.  ``reset()`` after the link
has proved healthy starts again from the first wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Waits ``first``, ``first × factor``, … up to ``cap`` seconds, each minus random jitter.

    ``next()`` returns the wait before the next attempt and counts the attempt; the wait without
    jitter is ``min(first × factor ** n, cap)`` for the n-th call since construction or the last
    ``reset()`` (n from 0), and the returned wait lies in ``[1 − jitter, 1] ×`` that value.
    ``rand`` returns numbers in ``[0, 1)``, like :func:`random.random` (the default); pass your
    own to make the waits predictable.  A ``cap`` below ``first`` is raised to ``first``.
    Not thread-safe: one owner each.
    """

    def __init__(
        self,
        first: float,
        *,
        factor: float = 2.0,
        cap: float,
        jitter: float = 0.25,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not first > 0:
            raise ValueError(f"first must be more than 0, not {first!r}")
        if not factor >= 1:
            raise ValueError(f"factor must be at least 1, not {factor!r}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {jitter!r}")
        self.first = float(first)
        self.factor = float(factor)
        self.cap = max(float(cap), self.first)
        self.jitter = float(jitter)
        self._rand = rand
        self._base = 0.0  # the last wait without jitter; 0 before the first attempt

    @property
    def current(self) -> float:
        """The last wait ``next()`` chose, without jitter (0 before the first call)."""
        return self._base

    def next(self) -> float:
        """The wait before the next attempt, in seconds; each call lengthens the following one."""
        self._base = self.first if self._base == 0 else min(self._base * self.factor, self.cap)
        r = min(max(float(self._rand()), 0.0), 1.0)
        return self._base * (1.0 - self.jitter * r)

    def reset(self) -> None:
        """The link works again: the next wait is ``first`` once more."""
        self._base = 0.0
