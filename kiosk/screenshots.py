"""Render every screen with realistic sample data to PNG files (headless, dummy SDL driver).

python -m kiosk.screenshots docs/screens [--font PATH] [--size 800x480]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluator.rules.levels import Level
from kiosk.screen import Screen
from kiosk.view import ReasonItem, ScreenView

WINDOW = "1号窗口"
CLERK_NAME = "陈晓明"
CLERK_ID = "A1023"
MATTER = "居民身份证换领"
SERIAL = "44050020261126000123"

#: 不满意 reasons of the national list (v2) with targets, a few selected, plus 其他.
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


def sample_views() -> dict[str, ScreenView]:
    """One sample view per file name (every screen, plus a batch presentation)."""
    clerk = {"window": WINDOW, "clerk_name": CLERK_NAME, "clerk_id": CLERK_ID}
    return {
        "signed_out": ScreenView("signed_out", window=WINDOW),
        "idle": ScreenView("idle", **clerk),
        "presenting": ScreenView("presenting", cases=((MATTER, SERIAL),), seconds_left=58, **clerk),
        "presenting_batch": ScreenView(
            "presenting",
            cases=tuple((MATTER, f"440500202611260001{n:02d}") for n in range(23, 28)),
            seconds_left=45,
            **clerk,
        ),
        "reasons": ScreenView(
            "reasons",
            level=Level.DISSATISFIED,
            reasons=SAMPLE_REASONS,
            agencies=(("市公安局", True), ("市政务服务数据管理局", False)),
            comment="等候时间太长，叫号屏看不清",
            can_submit=True,
            seconds_left=87,
            **clerk,
        ),
        "thanks": ScreenView("thanks", seconds_left=3, **clerk),
        "paused": ScreenView("paused", message="工作人员暂时离开，马上回来", **clerk),
        "notice": ScreenView(
            "notice",
            window=WINDOW,
            message="评价暂时无法保存，请告知窗口工作人员。您的评价没有被记录，请稍后重新评价。",
            online=False,
        ),
    }


def render_all(
    out_dir: Path, *, font_path: Path | None = None, width: int = 800, height: int = 480
) -> list[Path]:
    """Render every sample view to ``<out_dir>/<name>.png``; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    screen = Screen(width=width, height=height, font_path=font_path, driver="dummy")
    paths = []
    try:
        for name, view in sample_views().items():
            screen.render(view)
            paths.append(screen.save_png(out_dir / f"{name}.png"))
    finally:
        screen.close()
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render every pad screen to PNG files.")
    parser.add_argument("out_dir", type=Path, nargs="?", default=Path("docs/screens"))
    parser.add_argument("--font", type=Path, default=None, help="CJK font file")
    parser.add_argument("--size", default="800x480", help="WIDTHxHEIGHT (default 800x480)")
    args = parser.parse_args(argv)
    width, height = (int(part) for part in args.size.lower().split("x"))
    for path in render_all(args.out_dir, font_path=args.font, width=width, height=height):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
