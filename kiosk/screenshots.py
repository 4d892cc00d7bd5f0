"""Views to PNG files on SDL's ``dummy`` driver: no display needed, same bytes on every run.

Which views are worth a picture is the wiring's business (``evaluator/screenshots.py`` drives a
real app through its screens); this module only draws what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kiosk.screen import Screen
from kiosk.view import ReasonItem, ScreenView

#: 不满意 reasons of the national list (v2) with targets, a few selected, plus 其他.
#: Test data only: kept here for ``tests/evaluator/rules/test_request.py``, which imports it.
SAMPLE_REASONS: tuple[ReasonItem, ...] = (
    ReasonItem("213", "窗口人员业务不熟练", "clerk"),
    ReasonItem("214", "服务态度生硬", "clerk", selected=True),
    ReasonItem("207", "没有提供材料样本", "matter"),
    ReasonItem("208", "没有提供材料清单", "matter", selected=True),
    ReasonItem("209", "未在承诺时间内办结", "matter"),
    ReasonItem("210", "同样内容的证明材料被要求多次提交", "matter"),
    ReasonItem("211", "承诺网办但无法在线办理", "matter"),
    ReasonItem("212", "在线预约办理后到实体大厅重复取号排队", "matter"),
    ReasonItem("other", "其他", "other", selected=True),
)


def save_pngs(
    views: Mapping[str, ScreenView],
    out_dir: Path,
    *,
    font_path: Path | None = None,
    width: int = 800,
    height: int = 480,
) -> list[Path]:
    """Render each view to ``<out_dir>/<name>.png`` in one dummy-driver window; the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    screen = Screen(width=width, height=height, font_path=font_path, driver="dummy")
    paths = []
    try:
        for name, view in views.items():
            screen.render(view)
            paths.append(screen.save_png(out_dir / f"{name}.png"))
    finally:
        screen.close()
    return paths
