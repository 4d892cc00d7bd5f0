"""pygame as the pad needs it, on every pygame it runs on: Debian Bookworm's ``python3-pygame``
2.1.2 on the Pi (built against Debian's SDL2, which has the KMSDRM driver the pad draws on
tty1 with: systemd/README.md) and PyPI's 2.5+ (SDL bundled, no KMSDRM) in a development venv.

One gap between them matters here, filled by a feature check rather than a version number:
``pygame.image.tobytes`` is 2.1.3's name for ``pygame.image.tostring`` (same function, same
arguments; the old name stays in later versions).  Importing this module gives every pygame
the new name, so the pad and its tests use one spelling.  ``kiosk.fonts`` and
``kiosk.painter`` import it, so every screen, test and self-test that draws has it.
"""

from __future__ import annotations

import pygame

if not hasattr(pygame.image, "tobytes"):  # pygame < 2.1.3 (Debian Bookworm: 2.1.2)
    pygame.image.tobytes = pygame.image.tostring

__all__ = ["pygame"]
