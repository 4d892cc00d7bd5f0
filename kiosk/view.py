"""What a screen shows and what the citizen did, as plain data (no pygame here).

The application builds a :class:`ScreenView` from its state and hands it to ``Screen.render``;
the screen turns taps and keys back into one of the :data:`UiAction` values.
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluator.rules.levels import Level
from kiosk import texts

#: Screen names a view may carry.
SCREENS: tuple[str, ...] = (
    "signed_out",
    "idle",
    "presenting",
    "reasons",
    "thanks",
    "paused",
    "screensaver",
    "receipt_qr",
    "tech_pin",
    "tech_menu",
)

#: Reason targets, in the order their groups are drawn.
TARGETS: tuple[str, ...] = ("clerk", "matter", "other")

#: Free text for 其他 is capped at 150 characters (national page, ``writingEvaluation``).
COMMENT_LIMIT = 150

#: The text key of each reason group's heading (looked up when drawn: the language may change).
_GROUP_HEADINGS: dict[str, str] = {
    "clerk": "group_clerk",
    "matter": "group_matter",
    "other": "group_other",
}


@dataclass(frozen=True)
class ReasonItem:
    """One selectable 差评 reason; ``target`` is "clerk", "matter" or "other" (其他, free text)."""

    code: str
    text: str
    target: str
    selected: bool = False


@dataclass(frozen=True)
class PhraseItem:
    """One 常用意见 chip under 其他: ``selected`` when it is in the text, ``enabled`` when a tap
    changes the text (it is in it, or it fits the 150-character cap whole)."""

    text: str
    selected: bool = False
    enabled: bool = True


@dataclass(frozen=True)
class TechView:
    """The technician's menu (``tech_pin``, ``tech_menu``), as plain data: never a rating."""

    phase: str
    """``pin`` (the PIN pad), ``menu`` or ``button_test``."""
    entered: int = 0
    """Digits typed on the PIN pad: drawn as dots, never as digits."""
    message: str = ""
    """A line for the technician: a wrong PIN, the lockout, an item's result."""
    info: tuple[tuple[str, str], ...] = ()
    """(label, value) lines: device id, IP addresses, broker, printer, counter link, outbox…"""
    items: tuple[tuple[str, bool], ...] = ()
    """The menu's items (``evaluator.techmenu.ITEMS``) and whether each can be used (one that
    cannot is greyed; a tap on it says why)."""
    pressed: str = ""
    """Button test: the label of the level button pressed last ("" none yet)."""


@dataclass(frozen=True)
class ScreenView:
    """Everything one screen shows.  Built by the app, drawn by ``kiosk.screen.Screen``."""

    screen: str
    window: str = ""
    clerk_name: str = ""
    clerk_id: str = ""
    terminal: str = ""
    """A self-service terminal's 终端机编号, shown instead of the clerk (art. 18/23); "" none."""
    cases: tuple[tuple[str, str], ...] = ()
    theme: str = ""
    level: Level | None = None
    reasons: tuple[ReasonItem, ...] = ()
    agencies: tuple[tuple[str, bool], ...] = ()
    comment: str = ""
    phrases: tuple[PhraseItem, ...] = ()
    """常用意见 shown under 其他 while 其他 is selected (art. 11/23 on a touch-only pad)."""
    can_submit: bool = False
    can_expand: bool = False
    """The rating screen of a theme (一件事) with ≥ 2 cases offers 分项评价 (art. 31)."""
    item_index: int = 0
    """While a theme is rated item by item: the current item, from 1 (0: not itemised)."""
    item_count: int = 0
    seconds_left: int | None = None
    message: str = ""
    online: bool = True
    qr: str = ""
    """The URL to show as a QR code: the idle screen's static QR (art. 17(3)), or on the
    ``receipt_qr`` screen the signed link of a receipt that could not be printed; ``""`` none."""
    short_code: str = ""
    """``receipt_qr``: the receipt's short code, typed when a scan fails."""
    saver_step: int = 0
    """The screensaver's position: a new place for the label at each step (against burn-in)."""
    tech: TechView | None = None
    """``tech_pin`` / ``tech_menu``: what the technician's menu shows."""

    def __post_init__(self) -> None:
        if self.screen not in SCREENS:
            raise ValueError(f"unknown screen {self.screen!r}; expected one of {SCREENS}")
        for item in self.reasons:
            if item.target not in TARGETS:
                raise ValueError(f"reason {item.code!r} has unknown target {item.target!r}")

    @property
    def other_selected(self) -> bool:
        """True when a 其他 item is selected, i.e. typed text is accepted."""
        return any(item.target == "other" and item.selected for item in self.reasons)


def reason_groups(
    reasons: tuple[ReasonItem, ...],
) -> tuple[tuple[str, tuple[ReasonItem, ...]], ...]:
    """Reasons grouped for drawing: (heading, items) for 窗口人员, 办理事项, 其他.

    Empty groups are left out.
    """
    groups = []
    for target in TARGETS:
        items = tuple(item for item in reasons if item.target == target)
        if items:
            groups.append((texts.get(_GROUP_HEADINGS[target]), items))
    return tuple(groups)


@dataclass(frozen=True)
class PressLevel:
    """One of the five level buttons (or keys 1–5) was pressed."""

    level: Level


@dataclass(frozen=True)
class ToggleReason:
    """A reason chip was tapped (select or unselect)."""

    code: str


@dataclass(frozen=True)
class ToggleAgency:
    """A 联办 agency chip was tapped."""

    name: str


@dataclass(frozen=True)
class TogglePhrase:
    """A 常用意见 chip was tapped: append it to the 其他 text, or take it out again."""

    text: str


@dataclass(frozen=True)
class TurnPage:
    """▲ (``step`` -1) or ▼ (+1) beside the reasons when they take more than one page.  The
    screen turns the page itself (which page shows is no business of the session); not a
    :data:`UiAction`."""

    step: int


@dataclass(frozen=True)
class ShownCase:
    """A case of the rating screen's list by its place (from 0): the key under which the
    layout's ``page_of`` says on which page of the case panel it is drawn.  Not an action."""

    index: int


@dataclass(frozen=True)
class ExpandTheme:
    """分项评价 on a theme's rating screen: rate each linked item instead of overall."""


@dataclass(frozen=True)
class Submit:
    """提交 on the reasons screen (only emitted while ``can_submit``)."""


@dataclass(frozen=True)
class Back:
    """返回 from the reasons screen to the level buttons."""


@dataclass(frozen=True)
class TypeText:
    """Text typed for 其他 (one TEXTINPUT event; may be several characters)."""

    text: str


@dataclass(frozen=True)
class Backspace:
    """Delete the last typed character of the 其他 text."""


@dataclass(frozen=True)
class TechDigit:
    """A digit on the technician's PIN pad."""

    digit: str


@dataclass(frozen=True)
class TechBackspace:
    """⌫ on the PIN pad."""


@dataclass(frozen=True)
class TechEnter:
    """确定 on the PIN pad."""


@dataclass(frozen=True)
class TechItem:
    """An item of the technician's menu (``evaluator.techmenu.ITEMS``; ``close`` also on the PIN
    pad)."""

    name: str


TechAction = TechDigit | TechBackspace | TechEnter | TechItem
"""What the technician's screens emit (the app routes them to the menu, never the session)."""

UiAction = (
    PressLevel
    | ToggleReason
    | ToggleAgency
    | TogglePhrase
    | ExpandTheme
    | Submit
    | Back
    | TypeText
    | Backspace
    | TechDigit
    | TechBackspace
    | TechEnter
    | TechItem
)
