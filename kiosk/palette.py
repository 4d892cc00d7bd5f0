"""The pad's colours: high contrast on a calm background; level buttons green to red."""

from __future__ import annotations

from evaluator.rules.levels import Level

Color = tuple[int, int, int]

BACKGROUND: Color = (244, 246, 249)
INK: Color = (24, 28, 36)
MUTED: Color = (88, 96, 108)
WHITE: Color = (255, 255, 255)
HEADER: Color = (0, 82, 155)
HEADER_PAUSED: Color = (84, 96, 112)
HEADER_NOTICE: Color = (196, 96, 0)
HEADER_COUNTDOWN: Color = (220, 230, 242)
ACCENT: Color = (0, 92, 180)
PANEL: Color = (255, 255, 255)
PANEL_EDGE: Color = (196, 204, 216)
CHIP_EDGE: Color = (140, 150, 166)
SUBMIT_ENABLED: Color = (0, 124, 62)
SUBMIT_DISABLED: Color = (204, 208, 214)
SUBMIT_DISABLED_INK: Color = (120, 126, 134)
THANKS_GREEN: Color = (0, 140, 70)
ONLINE_DOT: Color = (40, 170, 80)
OFFLINE_DOT: Color = (160, 164, 170)

#: Fill of each level button: good levels in greens, bad ones orange / red.
BUTTON_COLORS: dict[Level, Color] = {
    Level.VERY_SATISFIED: (0, 120, 60),
    Level.SATISFIED: (30, 142, 66),
    Level.BASICALLY_SATISFIED: (84, 142, 40),
    Level.DISSATISFIED: (206, 100, 0),
    Level.VERY_DISSATISFIED: (186, 32, 32),
}
