"""A text as a QR code on a pygame surface, crisp enough for a phone camera.

The matrix comes from the ``qrcode`` library; it is drawn here, not through its image
factories, so every module is a whole number of pixels (no blurred edges from scaling), the
quiet zone is the 4 modules the standard asks for, and the code is dark on light whatever the
screen's palette.
"""

from __future__ import annotations

import pygame

#: Light modules around the code, in modules (ISO/IEC 18004 asks for 4).
QUIET_ZONE = 4
#: Dark modules and the light background (and quiet zone).
DARK: tuple[int, int, int] = (0, 0, 0)
LIGHT: tuple[int, int, int] = (255, 255, 255)


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR modules of ``text`` (True = dark), without the quiet zone; the smallest version
    that holds it at error correction level M.

    ``qrcode`` is imported here, when a code is first drawn: importing it imports Pillow,
    ~25 ms that the pad's start (issue 6) does not spend when no QR is configured."""
    import qrcode
    from qrcode.constants import ERROR_CORRECT_M

    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(text)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def qr_side(modules: int, module: int) -> int:
    """Pixels of a code of ``modules`` modules a side drawn at ``module`` pixels, quiet zone
    included."""
    return (modules + 2 * QUIET_ZONE) * module


def qr_surface(text: str, max_side: int) -> pygame.Surface | None:
    """``text`` as a square QR surface of at most ``max_side`` pixels, quiet zone included,
    with the largest whole number of pixels per module; None when not even one pixel per
    module fits."""
    matrix = qr_matrix(text)
    modules = len(matrix)
    module = max_side // (modules + 2 * QUIET_ZONE)
    if module < 1:
        return None
    side = qr_side(modules, module)
    surface = pygame.Surface((side, side))
    surface.fill(LIGHT)
    origin = QUIET_ZONE * module
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                rect = (origin + x * module, origin + y * module, module, module)
                surface.fill(DARK, rect)
    return surface
