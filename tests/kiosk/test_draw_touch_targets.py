"""The targets of a touch-only pad (issue 6): 常用意见 under 其他 on the reason screen and
分项评价 on a theme's rating screen, at every panel size (kiosk.sizes.SIZES), on real pixels:
every target at least 15 mm each way at the panel's dpi, all of them reachable by paging; and
every case of a batch up to the protocol's most on some page of the rating screen (issue 15)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

import pygame
import pytest

from evaluator.rules.levels import Level
from evaluator.rules.phrases import PHRASE_MAX, PHRASES_MAX, shipped_phrases
from evaluator.rules.reasons import OTHER_CODE, OTHER_TEXT, load_reasons
from evaluator.rules.request import CASES_MAX
from kiosk import texts
from kiosk.palette import ACCENT
from kiosk.screen import Screen
from kiosk.sizes import ROTATIONS, SIZES, PanelSize
from kiosk.view import (
    Back,
    ExpandTheme,
    PhraseItem,
    PressLevel,
    ReasonItem,
    ScreenView,
    Submit,
    ToggleAgency,
    TogglePhrase,
    ToggleReason,
    TurnPage,
)
from tests.kiosk import test_draw_presenting_fit as fit
from tests.kiosk.screen_views import assert_display_shows_frame, rotated_screen, tap_event, turn_to

AGENCIES = ("市公安局", "市政务服务数据管理局")


@pytest.fixture(
    params=[(size, rotate) for size in SIZES for rotate in ROTATIONS],
    ids=lambda p: f"{p[0].name}-rotate{p[1]}",
)
def sized(request: pytest.FixtureRequest) -> Iterator[Screen]:
    """Laid out at each panel size, on that panel as it comes and turned 90, 180 and 270
    degrees (the display's sides swapped at 90 and 270); taps arrive on the turned display."""
    size: PanelSize
    size, rotate = request.param
    s = rotated_screen(rotate, size.width, size.height, dpi=size.dpi)
    pygame.event.clear()
    yield s
    assert_display_shows_frame(s)
    s.close()


def _reasons(level: Level, phrases: tuple[str, ...], comment: str) -> ScreenView:
    """Every reason the national list offers for ``level`` (both targets), two agencies, 其他
    chosen with its phrases open: the fullest reason screen the pad can show."""
    items = [ReasonItem(r.code, r.text, r.target, i == 0) for i, r in enumerate(
        load_reasons().for_level(level))]  # fmt: skip
    items.append(ReasonItem(OTHER_CODE, OTHER_TEXT, "other", True))
    return ScreenView(
        "reasons",
        window="1号窗口",
        level=level,
        reasons=tuple(items),
        agencies=tuple((a, False) for a in AGENCIES),
        comment=comment,
        phrases=tuple(
            PhraseItem(p, p in comment, i != len(phrases) - 1) for i, p in enumerate(phrases)
        ),
        can_submit=True,
        seconds_left=60,
    )


def _assert_apart_and_inside(s: Screen, rects: list[pygame.Rect]) -> None:
    bounds = s.surface.get_rect()
    for rect in rects:
        assert bounds.contains(rect), f"{rect} leaves the {bounds.size} screen"
    for a, b in combinations(rects, 2):
        assert not a.colliderect(b), f"{a} overlaps {b}"


def _assert_15_mm(s: Screen) -> None:
    """Every target of the screen is at least 15 mm each way at the panel's dpi."""
    side = s.min_target
    for t in s.layout.targets:
        assert min(t.rect.size) >= side, f"{t.action}: {t.rect.size} under {side} px"


CHIPS = ToggleReason | ToggleAgency | TogglePhrase


@pytest.mark.parametrize("level", [Level.DISSATISFIED, Level.VERY_DISSATISFIED])
@pytest.mark.parametrize(
    "phrases",
    [
        shipped_phrases().phrases,
        # The longest list the phrase file may hold, every phrase as long as allowed.
        tuple(f"{n:02d}" + "长" * (PHRASE_MAX - 2) for n in range(PHRASES_MAX)),
    ],
    ids=["shipped", "longest_allowed"],
)
def test_every_phrase_reason_and_agency_is_reachable_by_touch_and_15_mm(
    sized: Screen, level: Level, phrases: tuple[str, ...]
) -> None:
    """The fullest reason screen: paged with taps on the pager (real finger events), every
    reason, agency and phrase shows on some page, each page's targets apart, inside, at least
    15 mm, and answering a tap at their centre (a disabled phrase: nothing)."""
    comment = f"{phrases[0]}；人太多"
    view = _reasons(level, phrases, comment)
    sized.render(view)
    layout = sized.layout
    assert sized.page == layout.page_of[ToggleReason(OTHER_CODE)]  # 其他 chosen: its page
    assert [a.text for a in layout.page_of if isinstance(a, TogglePhrase)] == list(phrases)
    reasons = [a.code for a in layout.page_of if isinstance(a, ToggleReason)]
    assert sorted(reasons) == sorted(r.code for r in view.reasons)
    assert [a.name for a in layout.page_of if isinstance(a, ToggleAgency)] == list(AGENCIES)
    seen: list[object] = []
    for action in layout.page_of:  # each one, as a citizen would find it
        target = turn_to(sized, action, sized.translate)
        layout = sized.layout
        assert layout.find(Submit()) is not None and layout.find(Back()) is not None
        _assert_15_mm(sized)
        chips = [t.rect for t in layout.targets if isinstance(t.action, CHIPS)]
        area = layout.boxes["reasons"]
        assert all(area.contains(rect) for rect in chips)
        rects = [t.rect for t in layout.targets]
        if "comment" in layout.boxes:
            assert area.contains(layout.boxes["comment"])
            rects.append(layout.boxes["comment"])
        _assert_apart_and_inside(sized, rects)
        enabled = target.enabled
        assert sized.translate(tap_event(sized, target.rect)) == (action if enabled else None)
        seen.append(action)
    assert len(seen) == len(set(seen)) == len(sized.layout.page_of)


def test_phrases_show_only_while_other_is_chosen(screen: Screen) -> None:
    view = _reasons(Level.DISSATISFIED, shipped_phrases().phrases, "")
    not_other = tuple(
        ReasonItem(r.code, r.text, r.target, False) if r.target == "other" else r
        for r in view.reasons
    )
    screen.render(ScreenView(**{**view.__dict__, "reasons": not_other}))
    assert not any(isinstance(t.action, TogglePhrase) for t in screen.layout.targets)
    screen.render(view)
    assert any(isinstance(t.action, TogglePhrase) for t in screen.layout.targets)


def _theme(**changes: object) -> ScreenView:
    fields: dict[str, object] = {
        "window": "1号窗口",
        "clerk_name": "陈晓明",
        "clerk_id": "A1023",
        "cases": (
            ("食品经营许可证核发", "44050020261126000200"),
            ("营业执照设立登记", "44050020261126000201"),
        ),
        "theme": "开办餐饮店",
        "seconds_left": 60,
        "can_expand": True,
    }
    fields.update(changes)
    return ScreenView("presenting", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "theme", ["开办餐饮店", "开办一家提供堂食外卖和预包装食品销售的连锁餐饮门店并申请户外招牌"]
)
def test_the_itemise_button_sits_beside_the_theme_above_the_level_buttons(
    sized: Screen, theme: str
) -> None:
    sized.render(_theme(theme=theme, message=texts.STORAGE_FAILED))
    layout = sized.layout
    expand = layout.find(ExpandTheme())
    assert expand is not None and expand.enabled
    levels = [t.rect for t in layout.targets if isinstance(t.action, PressLevel)]
    assert len(levels) == 5  # the overall rating stays one press away
    boxes = [layout.boxes[name] for name in ("extra", "case", "clerk")]
    _assert_apart_and_inside(sized, [expand.rect, *levels, *boxes])
    assert sized.translate(tap_event(sized, expand.rect)) == ExpandTheme()
    _assert_15_mm(sized)  # the 分项评价 button and the five level buttons
    # Its label is drawn: accent ink inside the button, none in the strip right of it.
    inside = {
        tuple(sized.surface.get_at((x, expand.rect.centery)))[:3]
        for x in range(expand.rect.left + 8, expand.rect.right - 8)
    }
    assert ACCENT in inside


def test_no_itemise_button_unless_offered(screen: Screen) -> None:
    screen.render(_theme(can_expand=False))
    assert screen.layout.find(ExpandTheme()) is None
    assert screen.layout.boxes["extra"].width == screen.size[0] - 2 * 12  # the whole width


def test_an_itemised_theme_names_its_item(screen: Screen) -> None:
    """ "第2项/共3项：营业执照设立登记": the accent line is drawn, wider than the theme alone."""
    case = (("营业执照设立登记", "44050020261126000201"),)
    screen.render(_theme(can_expand=False, cases=case))
    plain = _accent_extent(screen)
    screen.render(_theme(can_expand=False, cases=case, item_index=2, item_count=3))
    itemised = _accent_extent(screen)
    expected = screen.font(22, True).size(
        texts.THEME_FMT.format(theme="开办餐饮店")
        + "　"
        + texts.THEME_ITEM_FMT.format(index=2, count=3, matter="营业执照设立登记")
    )[0]
    assert itemised - plain > expected // 3
    assert abs(itemised - expected) <= expected // 10


def _accent_extent(s: Screen) -> int:
    """Width of the accent-coloured text in the accent line."""
    box = s.layout.boxes["extra"]
    xs = [
        x
        for x in range(box.left, box.right)
        for y in range(box.top, box.bottom)
        if tuple(s.surface.get_at((x, y)))[:3] == ACCENT
    ]
    return max(xs) - min(xs) + 1 if xs else 0


# -- a batch's cases, paged (issue 15) -----------------------------------------------------------


@pytest.mark.parametrize("language", texts.LANGUAGES)
@pytest.mark.parametrize("count", [1, 3, 12, CASES_MAX])
def test_every_case_of_a_batch_is_shown_on_a_page_turned_by_touch(
    sized: Screen, count: int, language: str
) -> None:
    with texts.using(language):
        _every_case_shown(sized, count)


def _every_case_shown(sized: Screen, count: int) -> None:
    """A batch of the widest serials the protocol allows, the longest clerk and the notice:
    every case is whole on some page at no less than the smallest text size, the pages are
    turned by real finger taps on the pager (15 mm, apart from the level buttons and the
    panels), and the screen counts a case as shown only once its page was shown."""
    cases = tuple((fit.LONG_MATTERS[0], fit.serial(i)) for i in range(count))
    view = ScreenView(
        "presenting",
        window="1号窗口",
        clerk_name=fit.NAME,
        clerk_id=fit.CLERK_ID,
        cases=cases,
        seconds_left=58,
        message=texts.STORAGE_FAILED,
    )
    sized.render(view)
    pages = sized.pages
    assert pages == 1 or count > 1, "one case is never paged"
    assert set(sized.cases_unseen) == set(range(count)) - fit.on_page(sized)
    for page in range(pages):
        where = f"{count} cases, page {page + 1}/{pages}"
        assert sized.page == page
        fit.check_apart(sized, where)
        _assert_15_mm(sized)
        levels = [t for t in sized.layout.targets if isinstance(t.action, PressLevel)]
        assert len(levels) == 5 and all(t.enabled for t in levels), where
        assert sized.translate(tap_event(sized, levels[0].rect)) == levels[0].action
        if page < pages - 1:
            assert sized.cases_unseen, f"{where}: a page not shown yet counts as shown"
            down = sized.layout.find(TurnPage(1))
            assert down is not None and down.enabled, where
            assert sized.translate(tap_event(sized, down.rect)) is None  # the screen turns it
    assert sized.cases_unseen == () and not sized.show_unseen()
    fit.check_fields(sized, view, f"{count} cases")  # each case whole on its page
    if pages > 1:  # a new batch: none of its cases shown yet
        other = tuple((matter, fit.serial(99 - i)) for i, (matter, _) in enumerate(cases))
        sized.render(ScreenView(**{**view.__dict__, "cases": other}))
        assert sized.page == 0 and sized.cases_unseen


def test_show_unseen_turns_to_the_first_page_not_shown(sized: Screen) -> None:
    cases = tuple(("不动产登记", f"4405002026112600{i:04d}") for i in range(CASES_MAX))
    view = ScreenView("presenting", window="1号窗口", clerk_name="陈晓明", clerk_id="A1023",
                      cases=cases, seconds_left=58)  # fmt: skip
    sized.render(view)
    assert sized.pages > 2
    turned = [sized.page]
    while sized.show_unseen():
        turned.append(sized.page)
    assert turned == list(range(sized.pages)) and sized.cases_unseen == ()
    sized.render(ScreenView(**{**view.__dict__, "seconds_left": 57}))  # the countdown
    assert sized.page == sized.pages - 1, "the countdown turned the page back"
    assert sized.cases_unseen == ()
    sized.render(ScreenView("idle", window="1号窗口"))  # the rating ended: forgotten
    sized.render(view)
    assert sized.page == 0 and len(sized.cases_unseen) > 0
