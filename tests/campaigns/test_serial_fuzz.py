"""The serial fuzz campaign, short: 2,000 hostile frames, no crash, no rating, the link alive.

The long run is ``python -m tests.campaigns.serial_fuzz --frames 100000`` (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

from tests.campaigns.serial_fuzz import Figures, frames, run_campaign

FAST_FRAMES = 2000
SEED = 20261127


def test_serial_fuzz_campaign_crashes_nothing_rates_nothing_and_the_link_lives(
    tmp_path: Path,
) -> None:
    import logging

    before = [logging.getLogger(name).level for name in ("evaluator", "kiosk")]
    figures = run_campaign(FAST_FRAMES, seed=SEED, work=tmp_path)
    # The campaign quiets the pad's log while it runs, and gives it back: later tests read it.
    assert [logging.getLogger(name).level for name in ("evaluator", "kiosk")] == before
    report = figures.table()
    assert figures.frames == FAST_FRAMES and figures.link_frames == FAST_FRAMES, report
    assert figures.crashed == 0, report
    assert figures.ratings == 0, report
    assert figures.level_leaks == 0, report
    assert figures.link_alive and figures.link_bad_lines == 0, report
    assert figures.link_replies == figures.link_expected, report  # exactly one reply each
    assert figures.link_caught == 0, report  # nothing the link had to swallow either
    # the campaign reached the deep paths: requests were handled and screens drawn
    assert figures.decoded > FAST_FRAMES // 5 and figures.rendered > 20, report
    assert figures.accepted["evaluation.start"] == figures.rendered, report
    assert figures.ok


def test_every_frame_class_is_generated_and_the_generator_is_reproducible() -> None:
    items = frames(FAST_FRAMES, SEED)
    classes = {name for name, _ in items}
    assert classes >= {
        "random_bytes",
        "valid",
        "byte_mutation",
        "value_swap",
        "deep_nesting",
        "bad_id",
        "invalid_utf8",
        "control_chars",
        "over_long",
        "spliced",
    }
    assert items == frames(FAST_FRAMES, SEED)
    assert any(b"\\ud800" in data for _, data in items)  # lone surrogates travel as escapes
    assert any(len(data) > 4096 for _, data in items)


def test_figures_fail_on_any_crash_rating_or_dead_link() -> None:
    good = Figures(link_alive=True)
    assert good.ok
    crashed = Figures(link_alive=True)
    crashed.crash("decode", RecursionError("deep"), b"[[[")
    assert not crashed.ok and "decode: RecursionError" in crashed.table()
    assert not Figures(link_alive=True, ratings=1).ok
    assert not Figures(link_alive=False).ok
    assert not Figures(link_alive=True, link_replies=9, link_expected=10).ok
