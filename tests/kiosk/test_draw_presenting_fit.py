"""The rating screen never drops or needlessly cuts who and what is rated.

Worst-case data the requests allow (evaluator/rules/request.py: the longest serial of the widest
characters it may hold, a clerk name, 工号 and 终端机编号 of the longest, a theme of long matter
names, a batch and a theme of ten, the "not saved" notice) at every panel size of kiosk.sizes and
in both languages, on real pixels: the 业务流水号 of every case shown, the clerk's name and 工号
(or the 终端机编号) are drawn whole, the matter on up to three lines ("…" only beyond), every
case of a list on some page (a long list is paged, never "……等N件"), at no less than the
smallest text size, and no two texts overlap on any page.  What may give is named: the theme's
line (shortened with "…"), and on a panel denser than any of the sizes the labels (recorded as
not shown).  Beyond any layout, nothing vanishes from the painter's record.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations
from pathlib import Path
from string import ascii_letters, digits

import pygame
import pytest

from evaluator.rules.request import NAME_MAX, PERSON_MAX, SERIAL_MAX
from kiosk import texts
from kiosk.draw_presenting import MATTER_LINES, SMALLEST
from kiosk.layout import Drawn, fits, wrap_words
from kiosk.painter import Painter
from kiosk.palette import INK
from kiosk.screen import Screen
from kiosk.sizes import SIZES, PanelSize
from kiosk.view import ScreenView, ShownCase

WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
#: The characters a serial may hold (request.py: [0-9A-Za-z._:/-]).
SERIAL_CHARS = digits + ascii_letters + "._:/-"
#: Boxes no target may cover.
PANELS = ("case", "clerk", "terminal", "extra")
#: Real matter names of one 一件事 theme, long ones.
LONG_MATTERS = (
    "建设工程规划类许可证核发（建筑类）含附属设施及地下空间开发利用审批",
    "城镇污水排入排水管网许可证核发（含排水户分类管理及延续变更注销）",
    "建筑工程施工许可证核发（含限额以下小型工程及装饰装修工程）",
)
REALISTIC_THEME = (
    ("建设工程规划类许可证核发（建筑类）", "44050020261126000200"),
    ("建筑工程施工许可证核发", "44050020261126000201"),
    ("城镇污水排入排水管网许可证核发", "44050020261126000202"),
)


def widest(chars: str, count: int) -> str:
    """``count`` characters of the widest of ``chars`` in the pad's font, cycling the widest
    few so each text is still told apart (every serial different)."""
    pygame.font.init()
    font = pygame.font.Font(str(WQY), 40)
    ranked = sorted(chars, key=lambda c: -font.size(c)[0])[:3]
    return "".join(ranked[i % len(ranked)] for i in range(count))


SERIAL = widest(SERIAL_CHARS, SERIAL_MAX)
NAME = "鬱" * PERSON_MAX
CLERK_ID = "龘" * PERSON_MAX
TERMINAL = "齉" * PERSON_MAX
THEME = ("企业开办及变更登记、银行开户、社保登记、公积金缴存登记" * 8)[:NAME_MAX]
HUGE_MATTER = ("建设工程规划许可证核发（建筑类）含附属设施及地下空间开发利用的联合审批" * 6)[
    :NAME_MAX
]


def serial(i: int) -> str:
    return SERIAL[:-2] + f"{i:02d}"


def worst_views(language: str) -> Iterator[tuple[str, ScreenView]]:
    """Every kind of rating screen with the worst data, the notice shown."""
    notice = texts.get("storage_failed", language)
    clerk = {"clerk_name": NAME, "clerk_id": CLERK_ID}
    for who, person in (("clerk", clerk), ("terminal", {"terminal": TERMINAL})):
        base = {"window": "1号窗口", "seconds_left": 58, "message": notice, **person}
        for label, matter in (("long", LONG_MATTERS[0]), ("huge", HUGE_MATTER)):
            one = ((matter, serial(0)),)
            yield f"{who} one {label}", ScreenView("presenting", cases=one, **base)
            batch = tuple((matter, serial(i)) for i in range(10))
            yield f"{who} batch {label}", ScreenView("presenting", cases=batch, **base)
            yield (
                f"{who} item {label}",
                ScreenView(
                    "presenting", cases=one, theme=THEME, item_index=2, item_count=10, **base
                ),
            )
        themed = tuple((LONG_MATTERS[i % 3] + str(i), serial(i)) for i in range(10))
        yield (
            f"{who} theme",
            ScreenView("presenting", cases=themed, theme=THEME, can_expand=True, **base),
        )
        huge = tuple((HUGE_MATTER[: NAME_MAX - i], serial(i)) for i in range(10))
        yield (
            f"{who} theme huge",
            ScreenView("presenting", cases=huge, theme=THEME, can_expand=True, **base),
        )


def open_screen(size: PanelSize, dpi: int | None = None) -> Screen:
    return Screen(
        driver="dummy", width=size.width, height=size.height, dpi=dpi or size.dpi, font_path=WQY
    )


@pytest.fixture(params=SIZES, ids=lambda s: s.name)
def size(request: pytest.FixtureRequest) -> PanelSize:
    return request.param


# -- reading the painter's record -------------------------------------------------------------


def in_box(s: Screen, name: str) -> list[Drawn]:
    box = s.layout.boxes[name]
    return [d for d in s.layout.texts if d.owner == box]


def whole(records: Sequence[Drawn], text: str) -> list[Drawn] | None:
    """The records that show ``text`` whole: one line holding it, or consecutive lines that
    together are it (wrapping drops the spaces it breaks at); none of them shortened."""
    target = text.replace(" ", "")
    for start in range(len(records)):
        joined = ""
        for end in range(start, min(len(records), start + 12)):
            d = records[end]
            if d.shortened:
                break
            joined += d.shown.replace(" ", "")
            if target in joined:  # the shortest run that holds it
                while target in "".join(r.shown for r in records[start + 1 : end + 1]).replace(
                    " ", ""
                ):
                    start += 1
                return list(records[start : end + 1])
            if len(joined) > len(target) + 80:
                break
    return None


def matter_shown(records: Sequence[Drawn], matter: str) -> bool:
    """The matter whole, or on exactly :data:`MATTER_LINES` full lines, "…" ending the last."""
    if whole(records, matter) is not None:
        return True
    for start in range(len(records) - MATTER_LINES + 1):
        run = records[start : start + MATTER_LINES]
        shown = "".join(d.shown for d in run)
        if (
            all(not d.shortened for d in run[:-1])
            and run[-1].shortened
            and shown.endswith("…")
            and matter.startswith(shown[:-1])
            and len(shown) > MATTER_LINES * 4
        ):
            return True
    return False


def pages_of(s: Screen) -> Iterator[int]:
    """Each page of the screen shown in turn from the first, then the first again."""
    while s.page > 0:
        s.turn_page(-1)
    for page in range(s.pages):
        if page:
            assert s.turn_page(1), f"no page {page + 1} of {s.pages}"
        assert s.page == page
        yield page
    while s.page > 0:
        s.turn_page(-1)


def on_page(s: Screen) -> set[int]:
    """The places of the cases the layout says are on the page shown."""
    layout = s.layout
    return {
        key.index
        for key, page in layout.page_of.items()
        if isinstance(key, ShownCase) and page == layout.page
    }


def check_cases(s: Screen, view: ScreenView, where: str) -> None:
    """Every case of a list whole on the page the layout puts it on, and drawn on no other;
    each page with the count and the batch's matter, each but the last saying how many
    follow; every text of the case panel at no less than the smallest size."""
    cases = view.cases
    themed = len({m for m, _ in cases}) > 1
    smallest = s._painter.px(SMALLEST)
    seen: set[int] = set()
    for page in pages_of(s):
        here = f"{where} page {page + 1}/{s.pages}"
        case = in_box(s, "case")
        shown = on_page(s)
        assert shown, f"{here}: no case on the page"
        for i, (matter, number) in enumerate(cases):
            if i in shown:
                assert whole(case, number), f"{here}: {number!r} is not shown whole"
                if themed:
                    assert matter_shown(case, matter), f"{here}: {matter!r} is cut"
            else:
                assert not any(number in d.text for d in s.layout.texts), f"{here}: {number!r}"
        seen |= shown
        if not themed:
            assert matter_shown(case, cases[0][0]), f"{here}: the batch's matter is cut"
        count = texts.BATCH_COUNT_FMT.format(count=len(cases))
        assert whole(case, count), f"{here}: {count!r} is not shown"
        if page < s.pages - 1:
            after = len(cases) - max(shown) - 1
            follow = texts.BATCH_NEXT_FMT.format(count=after)
            assert whole(case, follow), f"{here}: {follow!r} is not shown"
        more = texts.BATCH_MORE_FMT.format(count=len(cases))[:3]
        assert not any(d.text.startswith(more) for d in case), f"{here}: cases only counted"
        assert all(d.size >= smallest for d in case if d.shown), f"{here}: a text too small"
    missing = set(range(len(cases))) - seen
    assert not missing, f"{where}: cases on no page: {sorted(missing)}"


def check_fields(s: Screen, view: ScreenView, where: str) -> None:
    """Who and what is rated, whole (see the module)."""
    case = in_box(s, "case")
    cases = view.cases
    if len(cases) == 1:
        assert whole(case, cases[0][1]), f"{where}: the serial is not shown whole"
        assert matter_shown(case, cases[0][0]), f"{where}: the matter is cut"
    else:
        check_cases(s, view, where)
    if view.terminal:
        side = in_box(s, "terminal")
        number = texts.LABELLED_FMT.format(label=texts.LABEL_TERMINAL, value=view.terminal)
        assert whole(side, number), f"{where}: the terminal is not shown whole"
    else:
        side = in_box(s, "clerk")
        number = texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=view.clerk_id)
        assert whole(side, view.clerk_name), f"{where}: the clerk's name is not shown whole"
        assert whole(side, number), f"{where}: the 工号 is not shown whole"
    if view.message:
        assert whole(s.layout.texts, view.message), f"{where}: the notice is not shown whole"


def check_apart(s: Screen, where: str, *, targets_too: bool = True) -> None:
    """Every text inside the screen and its box, no two overlapping; every target 15 mm,
    inside, apart and off the panels, no text on one but its own (``targets_too``)."""
    screen_rect = s.surface.get_rect()
    drawn = [d for d in s.layout.texts if d.ink.width and d.ink.height]
    targets = s.layout.targets
    for d in drawn:
        assert screen_rect.contains(d.rect), f"{where}: {d.text!r} leaves the screen"
        assert d.owner.contains(d.ink), f"{where}: {d.text!r} leaves its box"
        for t in targets:
            if t.rect != d.owner:
                assert not d.ink.colliderect(t.rect), f"{where}: {d.text!r} on {t.action}"
    for a, b in combinations(drawn, 2):
        assert not a.ink.colliderect(b.ink), f"{where}: {a.text!r} overlaps {b.text!r}"
    boxes = [s.layout.boxes[name] for name in PANELS if name in s.layout.boxes]
    if not targets_too:
        return
    for t in targets:
        assert screen_rect.contains(t.rect) and min(t.rect.size) >= s.min_target, where
        assert not any(box.colliderect(t.rect) for box in boxes), f"{where}: {t.action} on a panel"
    for a, b in combinations(targets, 2):
        assert not a.rect.colliderect(b.rect), f"{where}: {a.action} overlaps {b.action}"
    for a, b in combinations(boxes, 2):
        assert not a.colliderect(b), f"{where}: two panels overlap"


def gave(s: Screen, view: ScreenView) -> set[str]:
    """What gave on the screen: "theme" (its line shortened), "matter" (beyond three lines),
    the labels left out by name, anything else by its text."""
    given: set[str] = set()
    matters = {matter for matter, _ in view.cases}
    labels = {texts.LABEL_MATTER, texts.LABEL_SERIAL, texts.LABEL_CLERK}
    for d in s.layout.texts:
        if not d.shortened:
            continue
        if d.owner == s.layout.boxes.get("extra") and not d.fixed:
            given.add("theme")
        elif d.text in labels and d.shown == "":
            given.add(d.text)
        elif any(matter.endswith(d.text) for matter in matters) and d.shown.endswith("…"):
            given.add("matter")
        else:
            given.add(d.text)
    return given


# -- the worst case at every size ---------------------------------------------------------------


@pytest.mark.parametrize("language", texts.LANGUAGES)
def test_the_worst_data_is_shown_whole_at_every_size(size: PanelSize, language: str) -> None:
    with texts.using(language):
        s = open_screen(size)
        try:
            for name, view in worst_views(language):
                where = f"{size.name} {language} {name}"
                s.render(view)
                check_fields(s, view, where)
                for page in pages_of(s):
                    check_apart(s, f"{where} page {page + 1}")
                # Only the decoration gave: the theme's line, a matter past three lines.
                assert gave(s, view) <= {"theme", "matter"}, f"{where}: {gave(s, view)}"
                for label in (texts.LABEL_MATTER, texts.LABEL_CLERK):
                    if label == texts.LABEL_CLERK and view.terminal:
                        continue
                    assert whole(s.layout.texts, label), f"{where}: the label {label} gave"
        finally:
            s.close()


def test_the_checks_find_a_cut_serial_a_lost_name_and_an_overlap() -> None:
    s = open_screen(SIZES[0])
    try:
        view = next(v for name, v in worst_views("zh") if name == "clerk one long")
        s.render(view)
        check_fields(s, view, "as drawn")
        check_apart(s, "as drawn")
        cut = ScreenView(**{**view.__dict__, "cases": ((view.cases[0][0], serial(0) + "9"),)})
        with pytest.raises(AssertionError, match="serial"):
            check_fields(s, cut, "a serial longer than drawn")
        other = ScreenView(**{**view.__dict__, "clerk_name": NAME[:-1] + "鑫"})
        with pytest.raises(AssertionError, match="name"):
            check_fields(s, other, "another name")
        number = next(d for d in s.layout.texts if d.text.startswith(texts.LABEL_CLERK_ID))
        s._painter.draw_line("重叠", "重叠", 30, INK, topleft=number.rect.topleft)
        with pytest.raises(AssertionError, match="overlaps"):
            check_apart(s, "a text over the 工号")
    finally:
        s.close()


# -- the reviewer's cases ------------------------------------------------------------------------


@pytest.mark.parametrize("language", texts.LANGUAGES)
def test_an_itemised_theme_with_the_notice_keeps_the_clerk_id_and_the_serial(
    size: PanelSize, language: str
) -> None:
    """English at 800×480 and 1024×600 lost the 工号 line; portrait drew 业务流水号 with no
    value."""
    with texts.using(language):
        s = open_screen(size)
        try:
            view = ScreenView(
                "presenting",
                window="1号窗口",
                clerk_name="陈晓明",
                clerk_id="A1023",
                seconds_left=58,
                cases=((REALISTIC_THEME[0]),),
                item_index=2,
                item_count=3,
                theme="企业开办及变更登记、银行开户、社保登记、公积金缴存登记一件事",
                message=texts.get("storage_failed", language),
            )
            s.render(view)
            check_fields(s, view, f"{size.name} {language}")
            assert not any(d.shown == "" for d in s.layout.texts), "a line vanished"
            assert gave(s, view) <= {"theme"}
        finally:
            s.close()


def test_a_theme_of_real_matter_names_keeps_every_serial_whole(size: PanelSize) -> None:
    s = open_screen(size)
    try:
        view = ScreenView(
            "presenting",
            window="1号窗口",
            clerk_name="陈晓明",
            clerk_id="A1023",
            cases=REALISTIC_THEME,
            theme="工程建设项目开工一件事",
            can_expand=True,
            seconds_left=58,
        )
        s.render(view)
        check_fields(s, view, size.name)
        assert not any(d.shortened for d in s.layout.texts)
        case = in_box(s, "case")
        assert all(whole(case, number) for _, number in REALISTIC_THEME), "a case is hidden"
    finally:
        s.close()


@pytest.mark.parametrize("language", texts.LANGUAGES)
@pytest.mark.parametrize(
    ("name", "clerk_id"),
    [
        ("阿卜杜热合曼·艾合买提", "A1023"),
        ("欧阳晓明", "440500-ZW-2023-01023"),
        ("Alexandra Featherstone", "A1023"),
        ("Maria Guadalupe Fernández-Ochoa", "440500-ZW-2023-0102345678"),
    ],
)
def test_real_long_names_and_ids_are_never_cut(
    size: PanelSize, language: str, name: str, clerk_id: str
) -> None:
    with texts.using(language):
        s = open_screen(size)
        try:
            view = ScreenView(
                "presenting",
                window="1号窗口",
                clerk_name=name,
                clerk_id=clerk_id,
                cases=(("居民身份证换领", "44050020261126000123"),),
                seconds_left=58,
            )
            s.render(view)
            check_fields(s, view, f"{size.name} {language}")
            assert not any(d.shortened for d in s.layout.texts)
            side = in_box(s, "clerk")
            # Broken only where the name breaks: at a space or after its "·".
            lines = whole(side, name)
            assert lines is not None
            for d in lines:
                assert name.startswith(d.shown) or f" {d.shown}" in name or f"·{d.shown}" in name
        finally:
            s.close()


# -- what gives, and nothing silently ----------------------------------------------------------


def test_on_a_denser_panel_the_labels_give_and_nothing_else() -> None:
    """800×480 at 240 dpi (15 mm = 142 px: the level buttons take more of the height than on
    any panel of kiosk.sizes): the labels 事项名称 / 业务流水号 / 窗口人员 are left out, recorded
    as not shown; every field is still whole."""
    view = next(v for name, v in worst_views("zh") if name == "clerk item long")
    s = open_screen(SIZES[0], dpi=240)
    assert s.min_target == 142
    try:
        s.render(view)
        check_fields(s, view, "240 dpi")
        check_apart(s, "240 dpi")
        assert gave(s, view) == {"theme", texts.LABEL_MATTER, texts.LABEL_SERIAL, texts.LABEL_CLERK}
        left_out = [d for d in s.layout.texts if d.shown == ""]
        assert {d.text for d in left_out} == {
            texts.LABEL_MATTER,
            texts.LABEL_SERIAL,
            texts.LABEL_CLERK,
        }
        assert all(not d.ink.width for d in left_out)
    finally:
        s.close()


def test_beyond_any_layout_nothing_vanishes_from_the_record() -> None:
    """800×480 at 400 dpi (15 mm = 237 px: not even the five buttons fit across): no layout
    holds the worst case.  Whatever is not shown whole is in the record as asked, and marked
    shortened or not shown; the texts shown still do not overlap."""
    s = open_screen(SIZES[0], dpi=400)
    try:
        for name, view in worst_views("en"):
            with texts.using("en"):
                s.render(view)
            asked = "".join(d.text for d in s.layout.texts)
            fields = [view.clerk_name, view.clerk_id, view.terminal]
            if len(view.cases) == 1:
                fields.append(view.cases[0][1])
            elif view.cases[0][1] not in asked:  # a list's cases not shown are counted
                with texts.using("en"):
                    fields.append(texts.BATCH_MORE_FMT.format(count=len(view.cases)))
            for field in filter(None, fields):
                assert field in asked, f"{name}: {field!r} vanished from the record"
            cut = [d for d in s.layout.texts if d.shortened]
            assert cut, f"{name}: something must give at 400 dpi"
            for d in cut:
                assert d.shown == "" or d.shown.endswith("…") or d.text.startswith(d.shown), d
            check_apart(s, f"400 dpi {name}", targets_too=False)
    finally:
        s.close()


# -- the pieces ----------------------------------------------------------------------------------


@pytest.fixture
def painter() -> Iterator[Painter]:
    pygame.font.init()
    p = Painter(pygame.Surface((400, 200)), WQY)
    yield p
    p.forget_fonts()


def test_a_column_records_a_line_it_has_no_room_for(painter: Painter) -> None:
    col = painter.column(pygame.Rect(10, 10, 300, 40))
    assert col.line("第一行", 20, INK)
    assert not col.line("第二行没有地方", 20, INK)
    first, lost = painter.layout.texts
    assert (first.text, first.shown) == ("第一行", "第一行")
    assert (lost.text, lost.shown, lost.shortened) == ("第二行没有地方", "", True)
    assert lost.ink.width == 0


def test_a_column_cuts_a_wrapped_text_visibly(painter: Painter) -> None:
    col = painter.column(pygame.Rect(10, 10, 300, 60))
    line_h = painter.font(20).get_linesize()
    assert 60 // line_h == 2
    lines = ["甲乙丙丁", "戊己庚辛", "壬癸"]
    assert not col.lines("".join(lines), lines, 20, INK)
    drawn = painter.layout.texts
    assert [d.shown for d in drawn[:1]] == ["甲乙丙丁"] and drawn[1].shown.endswith("…")
    assert drawn[1].text == "戊己庚辛壬癸" and drawn[1].shortened
    assert col.lines("不画", [], 20, INK) is True  # nothing asked: nothing recorded
    assert len(painter.layout.texts) == 2


def test_wrap_words_breaks_only_between_words_and_after_a_name_dot(painter: Painter) -> None:
    font = painter.font(20)
    width = font.size("阿卜杜热合曼·")[0]
    assert wrap_words(font, "阿卜杜热合曼·艾合买提", width) == ["阿卜杜热合曼·", "艾合买提"]
    narrow = font.size("Alexandra")[0]
    assert wrap_words(font, "Alexandra Featherstone", font.size("Featherstone")[0]) == [
        "Alexandra",
        "Featherstone",
    ]
    assert wrap_words(font, "Alexandra Featherstone", narrow - 1) is None
    assert wrap_words(font, "陈晓明", 1000) == ["陈晓明"]


def test_fits_agrees_with_measuring_the_whole_text(painter: Painter) -> None:
    font = painter.font(20)
    for text in ("", "i", "建设工程" * 50, "mW" * 25, "a b c " * 30):
        for width in (0, 1, 50, 199, 200, 201, 400, 5000):
            assert fits(font, text, width) == (font.size(text)[0] <= width), (text, width)
