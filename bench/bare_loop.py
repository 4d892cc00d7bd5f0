"""The reference process for the idle benchmarks: a bare pygame window of the pad's size that
blocks on events the way the pad does (``pygame.event.wait(1000)``), nothing else.

``python bench/bare_loop.py WIDTH HEIGHT`` prints ``ready`` once the window is open; SIGTERM stops
it.  It imports nothing of the project.
"""

from __future__ import annotations

import os
import signal
import sys

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame


def main() -> int:
    width, height = int(sys.argv[1]), int(sys.argv[2])
    running = True

    def stop(signum: int, frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    pygame.display.init()
    pygame.display.set_mode((width, height))
    print("ready", flush=True)
    while running:
        event = pygame.event.wait(1000)
        if event.type == pygame.QUIT:
            break
    pygame.display.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
