"""The 差评 reason screen with real pixels on SDL's dummy driver."""

from __future__ import annotations

import pygame

from evaluator.rules.levels import Level
from kiosk import texts
from kiosk.palette import SUBMIT_DISABLED, SUBMIT_ENABLED
from kiosk.screen import Screen
from kiosk.view import (
    Back,
    ReasonItem,
    ScreenView,
    Submit,
    ToggleAgency,
    ToggleReason,
    reason_groups,
)
from tests.kiosk.screen_views import REASONS, key, reasons_view


def test_reason_chips_toggle_by_code(screen: Screen) -> None:
    screen.render(reasons_view())
    codes = [t.action.code for t in screen.layout.targets if isinstance(t.action, ToggleReason)]
    assert codes == [r.code for r in REASONS]
    for t in screen.layout.targets:
        assert screen.layout.boxes["reasons"].contains(t.rect) or isinstance(
            t.action, Submit | Back
        )
        assert screen.hit_test(t.rect.center) == (t.action if t.enabled else None)
    agency = screen.layout.find(ToggleAgency("市公安局"))
    assert agency is not None


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


def test_many_reasons_never_overflow_into_the_buttons(screen: Screen) -> None:
    many = tuple(
        ReasonItem(str(n), f"非常非常长的不满意原因第{n}条需要缩短显示", "matter")
        for n in range(30)
    )
    view = ScreenView("reasons", level=Level.VERY_DISSATISFIED, reasons=many)
    screen.render(view)
    area = screen.layout.boxes["reasons"]
    for target in screen.layout.targets:
        if isinstance(target.action, ToggleReason):
            assert area.contains(target.rect)
