"""Summaries and the result table shared by the benchmarks: median and p99 of each figure beside
its reference measured in the same run, and their ratio (the machines are shared and noisy, so a
ratio to a reference taken in the same minutes says more than an absolute figure)."""

from __future__ import annotations

import statistics
import unicodedata
from dataclasses import dataclass


def median_p99(values: list[float]) -> tuple[float, float]:
    """Median and 99th percentile (inclusive interpolation) of ``values``."""
    ordered = sorted(values)
    if len(ordered) < 2:
        return ordered[0], ordered[0]
    return statistics.median(ordered), statistics.quantiles(ordered, n=100, method="inclusive")[-1]


@dataclass
class Row:
    """One line of the table: a figure, its reference, the goal and whether it is met."""

    name: str
    unit: str
    values: list[float]
    ref_name: str = ""
    ref_values: list[float] | None = None
    goal: str = ""
    met: bool | None = None

    @property
    def summary(self) -> tuple[float, float]:
        return median_p99(self.values)

    @property
    def ref_summary(self) -> tuple[float, float] | None:
        return median_p99(self.ref_values) if self.ref_values else None

    @property
    def ratios(self) -> tuple[float, float] | None:
        """Figure ÷ reference, of the medians and of the p99s."""
        ref = self.ref_summary
        if ref is None:
            return None
        med, p99 = self.summary
        return (med / ref[0] if ref[0] else float("inf"), p99 / ref[1] if ref[1] else float("inf"))


def cols(text: str) -> int:
    """Terminal columns of ``text`` (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - cols(text))


def table(rows: list[Row]) -> str:
    """The rows as an aligned text table."""
    header = (
        "figure",
        "unit",
        "n",
        "median",
        "p99",
        "reference (same run)",
        "n",
        "median",
        "p99",
        "ratio med",
        "ratio p99",
        "goal",
        "met",
    )
    lines: list[tuple[str, ...]] = [header]
    for r in rows:
        med, p99 = r.summary
        ref = r.ref_summary
        ratios = r.ratios
        lines.append(
            (
                r.name,
                r.unit,
                str(len(r.values)),
                f"{med:.3f}",
                f"{p99:.3f}",
                r.ref_name or "-",
                str(len(r.ref_values)) if r.ref_values else "-",
                f"{ref[0]:.3f}" if ref else "-",
                f"{ref[1]:.3f}" if ref else "-",
                f"{ratios[0]:.2f}x" if ratios else "-",
                f"{ratios[1]:.2f}x" if ratios else "-",
                r.goal or "-",
                "-" if r.met is None else ("yes" if r.met else "NO"),
            )
        )
    widths = [max(cols(line[i]) for line in lines) for i in range(len(header))]
    left = {0, 1, 5, 11, 12}
    out = []
    for n, line in enumerate(lines):
        cells = [
            pad(c, w) if i in left else " " * (w - cols(c)) + c
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)
