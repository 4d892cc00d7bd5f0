"""What the guest's screen shows, compared with what the pad draws.

The expected pictures are the pad's own (``evaluator screenshots``: the real App and Screen on
SDL's dummy driver, 800 × 480, the same window label, clerk and case as the harness sends). The
guest draws with other fonts (Noto Sans CJK besides WenQuanYi) and a running countdown, so the
comparison is coarse: the mean colour of each 40 × 40 block.  A black screen (the KMSDRM output
never presented), another screen or a desktop console all fail it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from kiosk.sizes import SIZES

GRID = (20, 12)  # 40 × 40 px blocks at 800 × 480
TOLERANCE = 24  # per channel, on a block's mean colour
PASS_SHARE = 0.90  # blocks within tolerance for "this screen"


@dataclass(frozen=True)
class Match:
    share: float  # blocks within tolerance, 0..1
    mean_level: float  # the dump's mean brightness (0 black .. 255 white)

    def __str__(self) -> str:
        return f"{self.share:.0%} of blocks match, mean level {self.mean_level:.0f}"


def render_expected(out: Path) -> Path:
    """The pad's own 800 × 480 screenshots in ``out/800x480/`` (made once)."""
    from evaluator.screenshots import render

    folder = out / "800x480"
    if not (folder / "idle.png").exists():
        size = next(s for s in SIZES if (s.width, s.height) == (800, 480))
        render(out, sizes=(size,))
    return folder


def _blocks(path: Path) -> list[tuple[int, ...]]:
    with Image.open(path) as image:
        data = image.convert("RGB").resize(GRID, Image.Resampling.BOX).tobytes()
    return [tuple(data[i:i + 3]) for i in range(0, len(data), 3)]  # type: ignore[misc]


def compare(dump: Path, expected: Path) -> Match:
    with Image.open(dump) as image:
        if image.size != (800, 480):
            return Match(0.0, 0.0)
        gray = image.convert("L")
        hist = gray.histogram()
        mean = sum(i * n for i, n in enumerate(hist)) / max(1, sum(hist))
    got, want = _blocks(dump), _blocks(expected)
    close = sum(1 for a, b in zip(got, want, strict=True)
                if all(abs(x - y) <= TOLERANCE for x, y in zip(a, b, strict=True)))
    return Match(close / len(want), mean)
