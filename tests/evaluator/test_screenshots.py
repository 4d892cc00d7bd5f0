"""``evaluator screenshots``: PNGs of the screens a real app reaches, checked on their pixels."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygame
import pytest

from evaluator import screenshots
from evaluator.app import App
from evaluator.cli import main
from evaluator.config import load_config
from evaluator.rules.clock import FakeClock
from evaluator.rules.levels import BUTTON_ORDER, Level
from evaluator.rules.protocol import Message
from evaluator.rules.shipped import shipped_file
from kiosk import texts
from kiosk.palette import (
    ACCENT,
    BUTTON_COLORS,
    HEADER,
    HEADER_PAUSED,
    INK,
    SUBMIT_ENABLED,
    THANKS_GREEN,
    WHITE,
)
from kiosk.screen import Screen
from kiosk.view import (
    Back,
    Backspace,
    PressLevel,
    ScreenView,
    Submit,
    ToggleAgency,
    ToggleReason,
    TypeText,
    UiAction,
)

Colour = tuple[int, int, int]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("shots")
    return {path.stem: path for path in screenshots.render(out)}


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ScreenView]:
    return screenshots.reach_views(tmp_path_factory.mktemp("reach"))


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


def test_one_png_per_shot_at_800x480(shots: dict[str, Path]) -> None:
    assert list(shots) == list(screenshots.SHOTS)
    for path in shots.values():
        assert path.suffix == ".png"
        assert pygame.image.load(str(path)).get_size() == (800, 480)


def test_each_png_shows_the_view_the_app_reached(
    shots: dict[str, Path], views: dict[str, ScreenView], screen: Screen
) -> None:
    """Each PNG is the real Screen's drawing of the app's view: the same pixels, and pixels of
    its screen where that screen's layout puts its buttons and text."""
    for name, view in views.items():
        image = pygame.image.load(str(shots[name]))
        screen.render(view)
        assert pygame.image.tobytes(image, "RGB") == pygame.image.tobytes(screen.surface, "RGB"), (
            name
        )
        layout = screen.layout
        if view.screen == "presenting":
            levels = [t for t in layout.targets if isinstance(t.action, PressLevel)]
            assert [t.action.level for t in levels] == list(BUTTON_ORDER), name
            for target in levels:
                assert pixel(image, target.rect.center) == BUTTON_COLORS[target.action.level], name
                assert WHITE in colours_in(image, target.rect), f"{name}: a label without ink"
            assert INK in colours_in(image, layout.boxes["case"]), f"{name}: no case text"
            side = "terminal" if view.terminal else "clerk"  # a self-service terminal: 终端机编号
            assert INK in colours_in(image, layout.boxes[side]), f"{name}: no {side} text"
        else:
            assert not any(isinstance(t.action, PressLevel) for t in layout.targets), name
    # the header band of each screen with its title in white
    for name, band in (
        ("signed_out", HEADER_PAUSED),
        ("paused", HEADER_PAUSED),
        ("idle", HEADER),
        ("storage_fault", HEADER),
        ("presenting", HEADER),
        ("reasons", HEADER),
    ):
        image = pygame.image.load(str(shots[name]))
        assert pixel(image, (2, 2)) == band, name
        assert WHITE in colours_in(image, pygame.Rect(0, 0, 800, 60)), f"{name}: no title"


def test_the_presenting_shots_show_one_case_a_batch_a_theme_and_the_notice(
    shots: dict[str, Path], views: dict[str, ScreenView], screen: Screen
) -> None:
    assert len(views["presenting"].cases) == 1 and not views["presenting"].theme
    assert views["presenting"].seconds_left == 60 - screenshots.LOOK
    batch = views["presenting_batch"]
    assert len(batch.cases) > 1 and len({m for m, _ in batch.cases}) == 1
    assert views["presenting_theme"].theme == screenshots.THEME["name"]
    assert views["storage_notice"].message == texts.STORAGE_FAILED
    for name in ("presenting_theme", "storage_notice"):
        screen.render(views[name])
        extra = screen.layout.boxes["extra"]
        assert ACCENT in colours_in(pygame.image.load(str(shots[name])), extra), name
    screen.render(views["presenting"])
    assert "extra" not in screen.layout.boxes


def test_the_reasons_shot_has_a_reason_an_agency_and_typed_other_text(
    shots: dict[str, Path], views: dict[str, ScreenView], screen: Screen
) -> None:
    view = views["reasons"]
    assert view.level is Level.DISSATISFIED and view.can_submit
    assert view.comment == screenshots.OTHER_TEXT and view.other_selected
    chosen = [item for item in view.reasons if item.selected]
    assert {item.target for item in chosen} == {"clerk", "other"}
    image = pygame.image.load(str(shots["reasons"]))
    screen.render(view)
    layout = screen.layout
    for item in chosen:
        target = layout.find(ToggleReason(item.code))
        assert target is not None
        assert pixel(image, (target.rect.right - 3, target.rect.centery)) == ACCENT, item.text
    agency = layout.find(ToggleAgency(screenshots.AGENCIES[0]))
    assert (
        agency is not None and pixel(image, (agency.rect.right - 3, agency.rect.centery)) == ACCENT
    )
    submit = layout.find(Submit())
    assert submit is not None and submit.enabled
    assert pixel(image, (submit.rect.left + 6, submit.rect.centery)) == SUBMIT_ENABLED
    assert INK in colours_in(image, layout.boxes["comment"]), "the typed text is not drawn"


def test_thanks_paused_and_the_storage_fault(
    shots: dict[str, Path], views: dict[str, ScreenView]
) -> None:
    thanks = pygame.image.load(str(shots["thanks"]))
    assert pixel(thanks, (400, int(480 * 0.34) + 40)) == THANKS_GREEN
    assert views["paused"].screen == "paused"
    assert views["storage_fault"].message == texts.STORAGE_FAULT
    assert views["idle"].message == "" and views["idle"].clerk_name == screenshots.CLERK["name"]


def test_two_runs_write_the_same_bytes(shots: dict[str, Path], tmp_path: Path) -> None:
    again = {path.stem: path for path in screenshots.render(tmp_path)}
    for name, path in shots.items():
        assert again[name].read_bytes() == path.read_bytes(), name


def test_the_cli_writes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["screenshots", "--out", str(tmp_path / "screens")]) == 0
    printed = capsys.readouterr().out.split()
    assert [Path(p).stem for p in printed] == list(screenshots.SHOTS)
    assert sorted(p.name for p in (tmp_path / "screens").iterdir()) == sorted(
        f"{name}.png" for name in screenshots.SHOTS
    )


# -- every screen the app can show is shot ------------------------------------------------------


def _explore(tmp: Path, storage: Path, seed: int, steps: int) -> set[str]:
    """Screens a real app shows under a seeded random walk of requests, taps and time."""
    override = tmp / f"walk-{seed}.toml"
    override.write_text(
        '[counter]\nport = ""\n[mqtt]\nenabled = false\n[idle]\nscreensaver_after = "3m"\n'
        f"[storage]\npath = {json.dumps(str(storage))}\n",
        encoding="utf-8",
    )
    app = App(load_config([shipped_file("demo.toml"), override]), clock=FakeClock())
    rng = random.Random(seed)
    clerk = {"id": "A1", "name": "李娜"}
    matter = {"matter_code": "11440500MB2C9300XR4442111009000", "matter_name": "居民身份证换领"}

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
    ]
    seen: set[str] = set()
    try:
        for i in range(steps):
            seen.add(app.view().screen)
            roll = rng.random()
            if roll < 0.35:
                rtype, body = rng.choice(requests)
                app.handle(Message(i, rtype, body()))
            elif roll < 0.85:
                view = app.view()
                actions: list[UiAction] = [PressLevel(rng.choice(BUTTON_ORDER)), Submit(), Back()]
                actions += [ToggleReason(item.code) for item in view.reasons]
                actions += [ToggleAgency(name) for name, _ in view.agencies]
                actions += [TypeText("排队太久"), Backspace()]
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
    reached |= _explore(tmp_path, tmp_path / "blocked" / "r.db", 9, 100)
    assert reached >= {"signed_out", "idle", "presenting", "reasons", "thanks", "paused"}, reached
    assert reached <= shot, f"screens the app shows without a screenshot: {reached - shot}"
    assert shot <= reached, f"screenshots of screens the app never shows: {shot - reached}"
