"""The 差评 reason screen with real pixels on SDL's dummy driver."""

from __future__ import annotations

from collections.abc import Iterator

import pygame

from evaluator.rules.levels import Level
from kiosk import texts
from kiosk.layout import Target
from kiosk.palette import SUBMIT_DISABLED, SUBMIT_ENABLED
from kiosk.screen import Screen
from kiosk.view import (
    Back,
    ReasonItem,
    ScreenView,
    Submit,
    ToggleAgency,
    ToggleReason,
    TurnPage,
    reason_groups,
)
from tests.kiosk.screen_views import REASONS, key, presenting, reasons_view, tap_event


def _pages(screen: Screen) -> Iterator[int]:
    """Each page of the rendered reason screen in turn (the first one first)."""
    while screen.turn_page(-1):
        pass
    yield screen.page
    while screen.turn_page(1):
        yield screen.page


def test_reason_chips_toggle_by_code_on_every_page(screen: Screen) -> None:
    screen.render(reasons_view())
    layout = screen.layout
    codes = [a.code for a in layout.page_of if isinstance(a, ToggleReason)]
    assert codes == [r.code for r in REASONS]  # every reason on some page, in order
    assert [a for a in layout.page_of if isinstance(a, ToggleAgency)] == [ToggleAgency("市公安局")]
    assert layout.pages > 1  # 15 mm chips do not all fit 800×480
    seen = []
    for page in _pages(screen):
        layout = screen.layout
        for t in layout.targets:
            if isinstance(t.action, ToggleReason | ToggleAgency):
                assert layout.boxes["reasons"].contains(t.rect)
                assert layout.page_of[t.action] == page
                seen.append(t.action)
            assert layout.hit(t.rect.center) == (t.action if t.enabled else None)
    assert seen == list(screen.layout.page_of)  # each once, page by page


def test_reason_groups_follow_target_order() -> None:
    headings = [heading for heading, _ in reason_groups(REASONS)]
    assert headings == [texts.GROUP_CLERK, texts.GROUP_MATTER, texts.GROUP_OTHER]
    only_matter = tuple(r for r in REASONS if r.target == "matter")
    assert [h for h, _ in reason_groups(only_matter)] == [texts.GROUP_MATTER]


def test_submit_disabled_is_a_no_op(screen: Screen) -> None:
    screen.render(reasons_view(can_submit=False))
    target = screen.layout.find(Submit())
    assert target is not None and not target.enabled
    assert tuple(screen.surface.get_at(target.rect.midleft))[:3] != SUBMIT_ENABLED
    assert (
        tuple(screen.surface.get_at((target.rect.left + 6, target.rect.centery)))[:3]
        == SUBMIT_DISABLED
    )
    assert screen.hit_test(target.rect.center) is None
    assert screen.translate(key(pygame.K_RETURN)) is None


def test_submit_enabled(screen: Screen) -> None:
    screen.render(reasons_view(can_submit=True))
    target = screen.layout.find(Submit())
    assert target is not None and target.enabled
    assert (
        tuple(screen.surface.get_at((target.rect.left + 6, target.rect.centery)))[:3]
        == SUBMIT_ENABLED
    )
    assert screen.hit_test(target.rect.center) == Submit()
    assert screen.translate(key(pygame.K_RETURN)) == Submit()
    assert screen.translate(key(pygame.K_KP_ENTER)) == Submit()


def test_back_by_tap_and_escape(screen: Screen) -> None:
    screen.render(reasons_view())
    target = screen.layout.find(Back())
    assert target is not None
    assert screen.hit_test(target.rect.center) == Back()
    assert screen.translate(key(pygame.K_ESCAPE)) == Back()


def test_comment_field_shows_the_counter_and_keeps_long_text_inside(screen: Screen) -> None:
    screen.render(reasons_view(other=True, comment="", can_submit=False))
    box = screen.layout.boxes["comment"]
    empty = screen.surface.copy()
    screen.render(reasons_view(other=True, comment="字" * 150, can_submit=False))
    assert screen.layout.boxes["comment"] == box
    full = screen.surface.copy()
    for surface in (empty, full):
        surface.fill((0, 0, 0), box)
    assert pygame.image.tobytes(empty, "RGB") == pygame.image.tobytes(full, "RGB")
    assert texts.COMMENT_COUNTER_FMT.format(count=150, limit=150) == "150/150"


def test_many_reasons_are_paged_never_drawn_over_the_buttons(screen: Screen) -> None:
    many = tuple(
        ReasonItem(str(n), f"非常非常长的不满意原因第{n}条需要两行显示" * 2, "matter")
        for n in range(30)
    )
    view = ScreenView("reasons", level=Level.VERY_DISSATISFIED, reasons=many)
    screen.render(view)
    assert [a.code for a in screen.layout.page_of] == [str(n) for n in range(30)]
    shown = []
    for _ in _pages(screen):
        area = screen.layout.boxes["reasons"]
        for target in screen.layout.targets:
            if isinstance(target.action, ToggleReason):
                assert area.contains(target.rect)
                shown.append(target.action.code)
    assert shown == [str(n) for n in range(30)]


def _pager(screen: Screen, step: int) -> Target:
    target = screen.layout.find(TurnPage(step))
    assert target is not None
    return target


def test_the_pager_turns_pages_by_tap_and_by_key_and_stops_at_the_ends(screen: Screen) -> None:
    screen.render(reasons_view())
    pages = screen.pages
    assert screen.page == 0 and not _pager(screen, -1).enabled and _pager(screen, 1).enabled
    assert screen.translate(tap_event(screen, _pager(screen, -1).rect)) is None
    assert screen.page == 0  # ▲ on the first page: nothing
    for page in range(1, pages):
        assert screen.translate(tap_event(screen, _pager(screen, 1).rect, "mouse")) is None
        assert screen.page == page  # turned by the screen, nothing for the app
    assert not _pager(screen, 1).enabled
    assert screen.translate(key(pygame.K_PAGEUP)) is None and screen.page == pages - 2
    assert screen.translate(key(pygame.K_PAGEDOWN)) is None and screen.page == pages - 1
    # The page number is drawn between the buttons.
    label = f"{pages}/{pages}"
    assert [d.text for d in screen.layout.texts if d.text == label] == [label]


def test_the_page_stays_while_choosing_and_starts_again_on_a_new_reason_screen(
    screen: Screen,
) -> None:
    view = reasons_view()
    screen.render(view)
    screen.turn_page(1)
    chip = next(t for t in screen.layout.targets if isinstance(t.action, ToggleReason))
    chosen = tuple(
        ReasonItem(r.code, r.text, r.target, r.code == chip.action.code) for r in view.reasons
    )
    screen.render(ScreenView(**{**view.__dict__, "reasons": chosen}))  # a chip toggled
    assert screen.page == 1
    screen.render(ScreenView(**{**view.__dict__, "level": Level.VERY_DISSATISFIED}))
    assert screen.page == 0  # another reason screen
    screen.turn_page(1)
    screen.render(presenting())
    screen.render(view)
    assert screen.page == 0  # 返回, then the reasons again: from the start


def test_choosing_other_shows_the_page_of_its_field(screen: Screen) -> None:
    screen.render(reasons_view())
    assert "comment" not in screen.layout.boxes and screen.page == 0
    screen.render(reasons_view(other=True))
    assert "comment" in screen.layout.boxes and screen.page > 0
    other = screen.layout.find(ToggleReason("other"))
    assert other is not None and other.rect.top == screen.layout.boxes["reasons"].top
