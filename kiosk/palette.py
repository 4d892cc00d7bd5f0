"""The pad's colours: high contrast on a calm background; level buttons green to red.

Every text colour meets WCAG 2.x level AA (contrast ratio at least 4.5:1, :data:`MIN_CONTRAST`)
on the colour it is drawn on, white labels on the level buttons included; the tests measure it on
the rendered pixels of every screen at every size (:func:`contrast_ratio`).
"""

from __future__ import annotations

from evaluator.rules.levels import Level

Color = tuple[int, int, int]

BACKGROUND: Color = (244, 246, 249)
INK: Color = (24, 28, 36)
MUTED: Color = (88, 96, 108)
WHITE: Color = (255, 255, 255)
HEADER: Color = (0, 82, 155)
HEADER_PAUSED: Color = (84, 96, 112)
#: Orange for notices (a text on the background, and a header band under white text).
HEADER_NOTICE: Color = (168, 70, 0)
HEADER_COUNTDOWN: Color = (220, 230, 242)
ACCENT: Color = (0, 92, 180)
PANEL: Color = (255, 255, 255)
PANEL_EDGE: Color = (196, 204, 216)
CHIP_EDGE: Color = (140, 150, 166)
SUBMIT_ENABLED: Color = (0, 124, 62)
SUBMIT_DISABLED: Color = (204, 208, 214)
SUBMIT_DISABLED_INK: Color = (78, 84, 92)
THANKS_GREEN: Color = (0, 140, 70)
ONLINE_DOT: Color = (40, 170, 80)
OFFLINE_DOT: Color = (160, 164, 170)

#: Fill of each level button: good levels in greens, bad ones orange / red.
BUTTON_COLORS: dict[Level, Color] = {
    Level.VERY_SATISFIED: (0, 120, 60),
    Level.SATISFIED: (20, 128, 58),
    Level.BASICALLY_SATISFIED: (74, 120, 24),
    Level.DISSATISFIED: (180, 78, 0),
    Level.VERY_DISSATISFIED: (186, 32, 32),
}

#: WCAG 2.x level AA for text (1.4.3): at least 4.5:1 (used for every text, large or not).
MIN_CONTRAST = 4.5


def relative_luminance(color: Color) -> float:
    """WCAG 2.x relative luminance of an sRGB colour: 0.0 (black) to 1.0 (white)."""

    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in color[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: Color, b: Color) -> float:
    """WCAG 2.x contrast ratio of two colours, 1.0 (same) to 21.0 (black on white)."""
    light, dark = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)
