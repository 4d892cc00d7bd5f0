"""``evaluator screenshots``: PNGs of the screens a real app reaches, at every panel size, checked
on their pixels; and every one of those screens, at every size and in every language, checked
for what a citizen must be able to read and tap: nothing clipped, shortened or overlapping,
every target at least 15 mm, every text at WCAG AA contrast."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pygame
import pytest
from PIL import Image

from evaluator import screenshots
from evaluator.app import App
from evaluator.cli import main
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import BUTTON_ORDER, Level
from evaluator.rules.protocol import Message
from evaluator.rules.shipped import shipped_file
from evaluator.techmenu import GESTURE_TAPS
from kiosk import texts
from kiosk.layout import Drawn
from kiosk.palette import (
    ACCENT,
    BUTTON_COLORS,
    HEADER,
    HEADER_PAUSED,
    INK,
    MIN_CONTRAST,
    SUBMIT_ENABLED,
    THANKS_GREEN,
    WHITE,
    contrast_ratio,
)
from kiosk.screen import Screen
from kiosk.sizes import SIZES, PanelSize, min_target_px
from kiosk.view import (
    Back,
    Backspace,
    PressLevel,
    ScreenView,
    Submit,
    TechBackspace,
    TechDigit,
    TechEnter,
    TechItem,
    ToggleAgency,
    TogglePhrase,
    ToggleReason,
    TypeText,
    UiAction,
)
from tests.kiosk.screen_views import assert_display_shows_frame, tap_event

Colour = tuple[int, int, int]
REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENS = REPO / "docs" / "screens"
#: The chips a citizen reads to choose: their texts are never shortened in the shots' states.
CHIPS = ToggleReason | ToggleAgency | TogglePhrase
#: Named boxes no target may cover.
PANELS = ("case", "clerk", "terminal", "extra", "comment", "hint", "qr", "qr_caption")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    out = tmp_path_factory.mktemp("shots")
    return {(path.parent.name, path.stem): path for path in screenshots.render(out)}


@pytest.fixture(scope="module")
def views_in(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, ScreenView]]:
    """The shots' views as a real app reached them, in every language."""
    return {
        language: screenshots.reach_views(tmp_path_factory.mktemp(f"reach-{language}"), language)
        for language in texts.LANGUAGES
    }


@pytest.fixture(scope="module")
def views(views_in: dict[str, dict[str, ScreenView]]) -> dict[str, ScreenView]:
    return views_in[texts.DEFAULT_LANGUAGE]


def open_screen(size: PanelSize) -> Screen:
    return Screen(driver="dummy", width=size.width, height=size.height, dpi=size.dpi)


@pytest.fixture
def screen() -> Iterator[Screen]:
    s = Screen(driver="dummy")
    yield s
    s.close()


def pixel(image: pygame.Surface, pos: tuple[int, int]) -> Colour:
    r, g, b, *_ = image.get_at(pos)
    return (r, g, b)


def colours_in(image: pygame.Surface, rect: pygame.Rect) -> set[Colour]:
    return {
        pixel(image, (x, y))
        for x in range(rect.left, rect.right)
        for y in range(rect.top, rect.bottom)
    }


def show(s: Screen, view: ScreenView) -> None:
    """Render ``view`` as a screen showing it first (the reasons at their default page)."""
    s.restart_pages()
    s.render(view)


def pages(s: Screen) -> Iterator[int]:
    """Every page of what ``s`` shows, from the first (one for most screens)."""
    while s.turn_page(-1):
        pass
    yield s.page
    while s.turn_page(1):
        yield s.page


# -- every screen at every size, in every language ---------------------------------------------


def dominant(image: Image.Image, rect: pygame.Rect) -> Colour:
    """The most frequent colour of ``image`` inside ``rect``: the background a text sits on."""
    box = (rect.left, rect.top, rect.right, rect.bottom)
    part = image.crop(box)
    counts = part.getcolors(maxcolors=part.width * part.height)
    assert counts, f"no pixels in {rect}"
    return max(counts)[1]


def check_screen(s: Screen, where: str) -> None:
    """What the citizen sees on ``s`` right now: texts inside the screen and their box, whole
    (the pad's own texts and the chips' always), apart, readable (WCAG AA on the real pixels);
    targets inside, apart, off the panels and at least 15 mm each way."""
    layout = s.layout
    whole = s.surface.get_rect()
    image = Image.frombytes("RGB", s.size, pygame.image.tobytes(s.surface, "RGB"))
    targets = layout.targets
    chip_rects = [t.rect for t in targets if isinstance(t.action, CHIPS)]
    drawn: list[Drawn] = [d for d in layout.texts if d.ink.width and d.ink.height]
    assert drawn, f"{where}: no text"
    for d in drawn:
        what = f"{where}: {d.text!r}"
        assert whole.contains(d.rect), f"{what} leaves the screen: {d.rect}"
        assert d.owner.contains(d.ink), f"{what} leaves its box {d.owner}: {d.ink}"
        if d.fixed or d.owner in chip_rects:
            assert not d.shortened, f"{what} shown as {d.shown!r}"
        for t in targets:
            if t.rect != d.owner:
                assert not d.ink.colliderect(t.rect), f"{what} lies on the target {t.action}"
        background = dominant(image, d.rect)
        ratio = contrast_ratio(d.color, background)
        assert ratio >= MIN_CONTRAST, f"{what}: {d.color} on {background} is {ratio:.2f}:1"
    for a, b in combinations(drawn, 2):
        assert not a.ink.colliderect(b.ink), f"{where}: {a.text!r} overlaps {b.text!r}"
    for t in targets:
        assert whole.contains(t.rect), f"{where}: {t.action} leaves the screen"
        assert min(t.rect.size) >= s.min_target, f"{where}: {t.action} {t.rect.size} < 15 mm"
        for name in PANELS:
            box = layout.boxes.get(name)
            assert box is None or not box.colliderect(t.rect), f"{where}: {t.action} on {name}"
    for a, b in combinations(targets, 2):
        assert not a.rect.colliderect(b.rect), f"{where}: {a.action} overlaps {b.action}"


def check_content(s: Screen, view: ScreenView, where: str) -> None:
    """What a rating screen must show whole (art. 17(1)): the matter and the serial of one case
    (a batch: its count, and each serial or the "等N件" that stands for it), the clerk's name and
    number or the terminal's number, the theme, the notice."""
    layout = s.layout
    shown = [d.shown for d in layout.texts]
    text = "".join(shown).replace(" ", "")

    def has(part: str) -> None:
        assert part.replace(" ", "") in text, f"{where}: {part!r} is not shown"

    if view.screen != "presenting":
        return
    if len(view.cases) == 1:
        has(view.cases[0][0])
        assert view.cases[0][1] in shown, f"{where}: the serial is not shown"
    else:
        has(texts.BATCH_COUNT_FMT.format(count=len(view.cases)))
        serials = sum(any(serial in line for line in shown) for _, serial in view.cases)
        if serials < len(view.cases):  # the first page of several: how many follow
            assert s.pages > 1, f"{where}: cases left out of a screen with one page"
            has(texts.BATCH_NEXT_FMT.format(count=len(view.cases) - serials))
    if view.terminal:
        has(view.terminal)
    else:
        has(view.clerk_name)
        has(texts.LABELLED_FMT.format(label=texts.LABEL_CLERK_ID, value=view.clerk_id))
    for part in (view.theme, view.message):
        if part:
            has(part)


@pytest.mark.parametrize("language", texts.LANGUAGES)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: s.name)
def test_every_screen_at_every_size_is_whole_readable_and_15_mm(
    views_in: dict[str, dict[str, ScreenView]], size: PanelSize, language: str
) -> None:
    with texts.using(language):
        s = open_screen(size)
        try:
            for name, view in views_in[language].items():
                show(s, view)
                check_content(s, view, f"{size.name} {language} {name}")
                for page in pages(s):
                    check_screen(s, f"{size.name} {language} {name} page {page + 1}")
        finally:
            s.close()


#: Panels mounted turned (``[screen] rotate``): each landscape size of :data:`SIZES` at 90, 180
#: and 270 degrees.  At 90 and 270 the screens are laid out in portrait at 480×800, 600×1024 and
#: 800×1280 (the 10.1" panel on its side, a size no unturned panel of SIZES has).
TURNED = [(size, rotate) for size in SIZES if not size.portrait for rotate in (90, 180, 270)]


@pytest.mark.parametrize(("size", "rotate"), TURNED, ids=lambda p: str(getattr(p, "name", p)))
def test_every_screen_on_a_turned_panel_is_whole_readable_15_mm_and_tapped_where_shown(
    views: dict[str, ScreenView], size: PanelSize, rotate: int
) -> None:
    """Every screen the app reaches, every page, on a panel mounted turned: the same checks as
    unturned on the logical frame, the display showing that frame turned (byte for byte against
    PIL), and a finger on the middle of each target as the display shows it landing on the
    middle of that target."""
    s = Screen(driver="dummy", width=size.width, height=size.height, dpi=size.dpi, rotate=rotate)
    try:
        assert s.display_size == (size.width, size.height)
        for name, view in views.items():
            show(s, view)
            where = f"{size.name} turned {rotate} ({s.size[0]}x{s.size[1]}) {name}"
            check_content(s, view, where)
            for page in pages(s):
                check_screen(s, f"{where} page {page + 1}")
                assert_display_shows_frame(s)
                for t in s.layout.targets:
                    assert s.position(tap_event(s, t.rect)) == t.rect.center, f"{where} {t}"
    finally:
        s.close()


def test_the_checks_can_fail(views: dict[str, ScreenView]) -> None:
    """The same checks on a screen with a text over a button, a chip too small and a text
    off the screen: each is found."""
    s = open_screen(SIZES[0])
    try:
        show(s, views["presenting"])
        check_screen(s, "as drawn")
        check_content(s, views["presenting"], "as drawn")
        hidden = ScreenView(**{**views["presenting"].__dict__, "cases": (("换领", "S-0"),)})
        with pytest.raises(AssertionError, match="serial is not shown"):
            check_content(s, hidden, "a serial not drawn")
        level = s.layout.targets[0]
        s._painter.text("重叠", 30, WHITE, max_width=200, center=level.rect.center)
        with pytest.raises(AssertionError, match=r"overlaps|lies on the target|leaves its box"):
            check_screen(s, "a text over a button")
        show(s, views["presenting"])
        s._painter.text("出界", 30, INK, max_width=200, topleft=(790, 470))
        with pytest.raises(AssertionError, match="leaves"):
            check_screen(s, "a text off the screen")
        show(s, views["presenting"])
        s._painter.text("浅色", 30, (200, 200, 200), max_width=200, topleft=(300, 120))
        with pytest.raises(AssertionError, match=r"is \d\.\d\d:1"):
            check_screen(s, "a pale text")
        show(s, views["presenting"])
        small = pygame.Rect(level.rect.topleft, (60, 60))
        s.layout.targets[0] = type(level)(small, level.action)
        with pytest.raises(AssertionError, match="15 mm"):
            check_screen(s, "a small target")
    finally:
        s.close()


# -- the PNGs ---------------------------------------------------------------------------------


def test_one_png_per_shot_at_every_size(shots: dict[tuple[str, str], Path]) -> None:
    assert sorted(shots) == sorted(
        (size.name, name) for size in SIZES for name in screenshots.SHOTS
    )
    for size in SIZES:
        for name in screenshots.SHOTS:
            image = pygame.image.load(str(shots[(size.name, name)]))
            assert image.get_size() == (size.width, size.height)


def test_docs_screens_holds_every_shot_at_every_size_and_nothing_else() -> None:
    """The committed pictures (``evaluator screenshots --out docs/screens``) are complete."""
    assert sorted(p.name for p in DOCS_SCREENS.iterdir()) == sorted(s.name for s in SIZES)
    for size in SIZES:
        folder = DOCS_SCREENS / size.name
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f"{name}.png" for name in screenshots.SHOTS
        ), size.name
        for path in folder.iterdir():
            assert pygame.image.load(str(path)).get_size() == (size.width, size.height), path
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for link in [*readme.split("](")[1:]]:
        target = link.split(")")[0]
        if target.startswith("docs/screens"):
            assert (REPO / target).exists(), target


def test_each_png_shows_the_view_the_app_reached(
    shots: dict[tuple[str, str], Path], views: dict[str, ScreenView]
) -> None:
    """Each PNG is the real Screen's drawing of the app's view at its size: the same pixels,
    and pixels of its screen where that screen's layout puts its buttons and text."""
    for size in SIZES:
        s = open_screen(size)
        try:
            for name, view in views.items():
                where = f"{size.name} {name}"
                image = pygame.image.load(str(shots[(size.name, name)]))
                show(s, view)
                assert pygame.image.tobytes(image, "RGB") == pygame.image.tobytes(
                    s.surface, "RGB"
                ), where
                layout = s.layout
                if view.screen == "presenting":
                    levels = [t for t in layout.targets if isinstance(t.action, PressLevel)]
                    assert [t.action.level for t in levels] == list(BUTTON_ORDER), where
                    for target in levels:
                        colour = BUTTON_COLORS[target.action.level]
                        assert pixel(image, target.rect.move(0, -4).midbottom) == colour, where
                        assert WHITE in colours_in(image, target.rect), f"{where}: no label"
                    assert INK in colours_in(image, layout.boxes["case"]), f"{where}: no case"
                    side = "terminal" if view.terminal else "clerk"  # a terminal: 终端机编号
                    assert INK in colours_in(image, layout.boxes[side]), f"{where}: no {side}"
                else:
                    assert not any(isinstance(t.action, PressLevel) for t in layout.targets)
                if view.screen != "screensaver":  # the header band, its title in white
                    greyed = ("signed_out", "paused", "tech_pin", "tech_menu")  # not a citizen's
                    band = HEADER_PAUSED if view.screen in greyed else HEADER
                    if view.screen != "thanks":
                        assert pixel(image, (2, 2)) == band, where
                        header = layout.boxes["header"]
                        assert WHITE in colours_in(image, header), f"{where}: no title"
        finally:
            s.close()


def test_the_presenting_shots_show_one_case_a_batch_a_theme_and_the_notice(
    shots: dict[tuple[str, str], Path], views: dict[str, ScreenView], screen: Screen
) -> None:
    assert len(views["presenting"].cases) == 1 and not views["presenting"].theme
    assert views["presenting"].seconds_left == 60 - screenshots.LOOK
    batch = views["presenting_batch"]
    assert len(batch.cases) > 1 and len({m for m, _ in batch.cases}) == 1
    paged = views["presenting_batch_paged"]
    assert len(paged.cases) == screenshots.LONG_BATCH
    screen.render(paged)
    assert screen.pages > 1 and screen.layout.boxes.get("pager") is not None
    assert views["presenting_theme"].theme == screenshots.THEME["name"]
    assert views["storage_notice"].message == texts.STORAGE_FAILED
    for name in ("presenting_theme", "storage_notice"):
        screen.render(views[name])
        extra = screen.layout.boxes["extra"]
        shown = [d.text for d in screen.layout.texts if extra.contains(d.ink)]
        assert shown, name
    screen.render(views["storage_notice"])
    assert texts.STORAGE_FAILED in [d.text for d in screen.layout.texts]  # whole, never "…"
    screen.render(views["presenting"])
    assert "extra" not in screen.layout.boxes


def test_the_reasons_shots_have_a_reason_an_agency_and_typed_other_text(
    shots: dict[tuple[str, str], Path], views: dict[str, ScreenView], screen: Screen
) -> None:
    view = views["reasons"]
    assert view.level is Level.DISSATISFIED and view.can_submit and not view.other_selected
    chosen = [item for item in view.reasons if item.selected]
    assert [item.target for item in chosen] == ["clerk"]
    assert dict(view.agencies)[screenshots.AGENCIES[0]]
    image = pygame.image.load(str(shots[("800x480", "reasons")]))
    screen.render(view)
    layout = screen.layout
    assert layout.page == 0  # the first page, as the citizen first sees it
    target = layout.find(ToggleReason(chosen[0].code))
    assert target is not None
    assert pixel(image, (target.rect.right - 3, target.rect.centery)) == ACCENT
    submit = layout.find(Submit())
    assert submit is not None and submit.enabled
    assert pixel(image, (submit.rect.left + 6, submit.rect.centery)) == SUBMIT_ENABLED
    assert screen.reveal(ToggleAgency(screenshots.AGENCIES[0]))  # on a later page: selected
    agency = screen.layout.find(ToggleAgency(screenshots.AGENCIES[0]))
    assert agency is not None
    assert pixel(screen.surface, (agency.rect.right - 3, agency.rect.centery)) == ACCENT

    other = views["reasons_other"]
    assert other.comment == screenshots.OTHER_TEXT and other.other_selected
    image = pygame.image.load(str(shots[("800x480", "reasons_other")]))
    screen.restart_pages()
    screen.render(other)
    assert INK in colours_in(image, screen.layout.boxes["comment"]), "the typed text is not drawn"
    phrases = views["reasons_phrases"]
    assert phrases.other_selected and sum(p.selected for p in phrases.phrases) == 2


def test_thanks_paused_and_the_storage_fault(
    shots: dict[tuple[str, str], Path], views: dict[str, ScreenView]
) -> None:
    thanks = pygame.image.load(str(shots[("800x480", "thanks")]))
    assert pixel(thanks, (400, int(480 * 0.34) + 40)) == THANKS_GREEN
    assert views["paused"].screen == "paused"
    assert views["storage_fault"].message == texts.STORAGE_FAULT
    assert views["idle"].message == "" and views["idle"].clerk_name == screenshots.CLERK["name"]


def test_the_technician_shots_show_dots_and_the_pads_state_never_the_pin(
    views: dict[str, ScreenView], screen: Screen
) -> None:
    pin = views["tech_pin"]
    assert pin.tech is not None and pin.tech.entered == screenshots.TECH_TYPED
    screen.render(pin)
    shown = [d.text for d in screen.layout.texts]
    assert "●" * screenshots.TECH_TYPED in shown
    assert not any(screenshots.TECH_PIN[: screenshots.TECH_TYPED] in text for text in shown)
    menu = views["tech_menu"]
    assert menu.tech is not None and menu.tech.phase == "menu"
    info = dict(menu.tech.info)
    assert info[texts.TECH_LABEL_IP] == ", ".join(screenshots.TECH_ADDRESSES)  # not this machine's
    assert info[texts.TECH_LABEL_OUTBOX].startswith("1")  # the receipt's rating waits
    assert info[texts.TECH_LABEL_PRINTER].startswith("offline")


def test_two_runs_write_the_same_bytes(shots: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    again = {(p.parent.name, p.stem): p for p in screenshots.render(tmp_path)}
    for key, path in shots.items():
        assert again[key].read_bytes() == path.read_bytes(), key


def test_the_cli_writes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "screens"
    assert main(["screenshots", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    expected = [f"{size.name}/{name}" for size in SIZES for name in screenshots.SHOTS]
    assert [f"{Path(p).parent.name}/{Path(p).stem}" for p in printed] == expected
    assert sorted(p.name for p in out.iterdir()) == sorted(size.name for size in SIZES)


# -- every screen the app can show is shot ------------------------------------------------------


def _technician(app: App, rng: random.Random) -> None:
    """The technician's gesture as the pad's loop hands it to the menu (five taps on the
    top-left corner of the screen shown, a technician's pace), then, most times, the PIN from
    the config and 确定."""
    side = min_target_px(app.config.screen.dpi)
    assert isinstance(app.clock, FakeClock)
    for _ in range(GESTURE_TAPS):
        app.clock.advance(screenshots.TECH_PACE)
        app.tech.tap((rng.randrange(side), rng.randrange(side)), app.view().screen, side)
    if rng.random() < 0.7:
        for action in [*map(TechDigit, app.config.tech.pin), TechEnter()]:
            app.clock.advance(screenshots.TECH_PACE)
            app.act(action)


def _explore(tmp: Path, storage: Path, seed: int, steps: int, receipts: bool = True) -> set[str]:
    """Screens a real app shows under a seeded random walk of requests, taps, the technician's
    gesture and PIN, and time; with ``receipts``, it prints a receipt at every presentation's
    end on a printer that is not there."""
    printing = f"{screenshots.RECEIPTS}path = {json.dumps(str(tmp / f'lp-{seed}'))}\n"
    override = tmp / f"walk-{seed}.toml"
    override.write_text(
        '[counter]\nport = ""\n[mqtt]\nenabled = false\n[idle]\nscreensaver_after = "3m"\n'
        f"[storage]\npath = {json.dumps(str(storage))}\n{printing if receipts else ''}"
        f'{screenshots.TECH}lockout = "10s"\n',
        encoding="utf-8",
    )
    app = App(load_config([shipped_file("demo.toml"), override]), clock=FakeClock())
    rng = random.Random(seed)
    clerk = {"id": "A1", "name": "李娜"}
    matter = {"matter_code": "11440500MB2C9300XR4442111009000", "matter_name": "居民身份证换领"}
    if receipts:  # the printer is found missing first: every receipt's QR goes on the screen
        assert app.printer is not None
        app.printer.start()
        case = {"serial": "S-0", "kind": "instant", **matter}
        assert app.handle(Message(-1, "receipt.print", {"clerk": clerk, "cases": [case]}))["ok"]
        assert app.printer.wait_until(lambda s: s.state == "offline", 30)

    def start() -> dict[str, Any]:
        n = rng.randrange(1, 4)
        cases = [
            {"serial": f"S{rng.randrange(10**9)}", "kind": "instant", **matter} for _ in range(n)
        ]
        return {"clerk": clerk, "stage": "deliver", "cases": cases, "agencies": ["市公安局"]}

    requests: list[tuple[str, Any]] = [
        ("clerk.sign_in", lambda: {"clerk": clerk}),
        ("clerk.sign_out", dict),
        ("evaluation.start", start),
        ("evaluation.start", start),
        ("evaluation.cancel", dict),
        ("window.pause", dict),
        ("window.resume", dict),
        ("status", dict),
        ("receipt.print", lambda: {"clerk": clerk, "cases": start()["cases"][:1]}),
    ]
    seen: set[str] = set()
    try:
        for i in range(steps):
            seen.add(app.view().screen)
            roll = rng.random()
            if roll < 0.35:
                rtype, body = rng.choice(requests)
                app.handle(Message(i, rtype, body()))
            elif roll < 0.42:
                _technician(app, rng)
            elif roll < 0.85:
                view = app.view()
                actions: list[UiAction] = [PressLevel(rng.choice(BUTTON_ORDER)), Submit(), Back()]
                actions += [ToggleReason(item.code) for item in view.reasons]
                actions += [ToggleAgency(name) for name, _ in view.agencies]
                actions += [TypeText("排队太久"), Backspace()]
                if view.tech is not None:  # the PIN pad, the menu: its keys and items
                    actions += [TechDigit(str(rng.randrange(10))), TechBackspace(), TechEnter()]
                    actions += [TechItem(name) for name, _ in view.tech.items or (("close", 1),)]
                app.act(rng.choice(actions))
            else:
                assert isinstance(app.clock, FakeClock)
                app.clock.advance(rng.choice((0.5, 3.0, 30.0, 200.0)))
            app.step()
        seen.add(app.view().screen)
    finally:
        app.shutdown()
    return seen


def test_every_screen_the_app_can_show_is_shot(
    views: dict[str, ScreenView], tmp_path: Path
) -> None:
    shot = {view.screen for view in views.values()}
    reached: set[str] = set()
    for seed in range(3):
        reached |= _explore(tmp_path, tmp_path / f"r{seed}.db", seed, 400)
    (tmp_path / "blocked").write_text("a file where the store's folder should be", encoding="utf-8")
    # A store that cannot be opened (nor a device key be made beside it: no receipts).
    reached |= _explore(tmp_path, tmp_path / "blocked" / "r.db", 9, 100, receipts=False)
    assert reached >= {"signed_out", "idle", "presenting", "reasons", "thanks", "paused",
                       "tech_pin", "tech_menu"}, reached  # fmt: skip
    assert reached <= shot, f"screens the app shows without a screenshot: {reached - shot}"
    assert shot <= reached, f"screenshots of screens the app never shows: {shot - reached}"
