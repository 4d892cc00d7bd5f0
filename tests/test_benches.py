"""The default benches (``python -m bench.run``) in a tiny configuration, so a change of the
pad cannot break one silently: art. 4 made the next ``evaluation.start`` wait for the 谢谢 after
a rating, and the press benches, which sent it during the 谢谢, died on ``busy`` unseen.  The
parts that drive a real App from press to press run here with a few samples each; the figures
themselves are not checked (the machine is shared), only that every sample was taken."""

from __future__ import annotations

from pathlib import Path

from bench import frames, printing
from bench import run as bench_run
from kiosk.screen import Screen

REPO = Path(__file__).resolve().parents[1]


def test_run_press_after_press_on_a_fake_clock(tmp_path: Path) -> None:
    """bench/run.py step 2 and 3: start, cancel; then start, press, 谢谢, and again."""
    app = bench_run.make_app(tmp_path)
    screen = Screen(width=800, height=480, driver="dummy")
    try:
        got = bench_run.bench_screens(app, screen, n=3)
    finally:
        screen.close()
        app.shutdown()
    assert {name: len(times) for name, times in got.items()} == {
        "request → rating screen drawn": 3,
        "render presenting view alone": 3,
        "press → rating durable + 谢谢 drawn": 3,
    }
    assert frames.count_ratings(app.config.storage.path) == 3  # one rating per press


def test_frames_gpio_press_after_press_on_the_real_clock(tmp_path: Path) -> None:
    """bench/frames.py's press bench: each press waits for the 谢谢 before the next start."""
    app = frames.make_app(tmp_path, REPO)
    try:
        times, refs = frames.bench_press(app, tmp_path, n=2)
    finally:
        app.shutdown()
    assert len(times) == len(refs) == 2
    assert frames.count_ratings(app.config.storage.path) == 2 + 2  # two warm-up rounds


def test_printing_press_after_press_with_printing_on_and_off(tmp_path: Path) -> None:
    """bench/printing.py's press bench: every receipt printed, one per press."""
    t_on, t_off, printed = printing.bench_press(tmp_path, REPO, n=2, warm_up=1)
    assert len(t_on) == len(t_off) == 2
    assert printed == 3
