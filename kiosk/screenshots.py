"""Views to PNG files on SDL's ``dummy`` driver: no display needed, same bytes on every run.

Which views are worth a picture is the wiring's business (``evaluator/screenshots.py`` drives a
real app through its screens); this module only draws what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kiosk.screen import Screen
from kiosk.sizes import DEFAULT_DPI
from kiosk.view import ScreenView


def save_pngs(
    views: Mapping[str, ScreenView],
    out_dir: Path,
    *,
    font_path: Path | None = None,
    width: int = 800,
    height: int = 480,
    dpi: float = DEFAULT_DPI,
) -> list[Path]:
    """Render each view to ``<out_dir>/<name>.png`` in one dummy-driver window; the paths.
    Each view shows as on a screen that shows it first (the reasons at their default page)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    screen = Screen(width=width, height=height, dpi=dpi, font_path=font_path, driver="dummy")
    paths = []
    try:
        for name, view in views.items():
            screen.restart_pages()
            screen.render(view)
            paths.append(screen.save_png(out_dir / f"{name}.png"))
    finally:
        screen.close()
    return paths
