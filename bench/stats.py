"""Pure statistics for the benchmark: medians, spread, ratios, targets. No I/O."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Summary:
    """Median and spread of one measurement's repetitions."""

    n: int
    median: float
    low: float
    high: float

    @property
    def spread_pct(self) -> float:
        """Half the min-max range as a share of the median (0 when there is one sample)."""
        if self.n < 2 or self.median == 0:
            return 0.0
        return 100.0 * (self.high - self.low) / 2 / self.median


def summarize(samples: list[float]) -> Summary | None:
    if not samples:
        return None
    return Summary(
        n=len(samples), median=statistics.median(samples), low=min(samples), high=max(samples)
    )


def ratio(numerator: Summary | None, denominator: Summary | None) -> float | None:
    """Ratio of medians (e.g. loop time / ovsnet time = speed-up)."""
    if numerator is None or denominator is None or denominator.median == 0:
        return None
    return numerator.median / denominator.median


@dataclass(frozen=True)
class Target:
    """A goal from the issue: `value <= limit` (at_most) or `value >= limit`."""

    limit: float
    at_most: bool = True

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value <= self.limit if self.at_most else value >= self.limit

    def describe(self, unit: str) -> str:
        sign = "<=" if self.at_most else ">="
        return f"{sign} {_number(self.limit)}{unit}"


@dataclass
class Measurement:
    """Repetitions of one operation; failures are kept, never counted as samples."""

    key: str
    samples: list[float] = field(default_factory=list)
    # CPU seconds per sample: the command and its children, and the OVS daemons meanwhile.
    # Less sensitive than wall time to other load on a shared machine.
    cpu_client: list[float] = field(default_factory=list)
    cpu_daemons: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    unit: str = "s"
    notes: list[str] = field(default_factory=list)

    @property
    def summary(self) -> Summary | None:
        return summarize(self.samples)

    @property
    def cpu_summary(self) -> Summary | None:
        """CPU seconds of the command plus the OVS daemons, per sample."""
        return summarize([c + d for c, d in zip(self.cpu_client, self.cpu_daemons, strict=True)])

    def as_json(self) -> dict:
        summary = self.summary
        return {
            "key": self.key,
            "unit": self.unit,
            "samples": [round(s, 6) for s in self.samples],
            "failures": self.failures,
            "notes": self.notes,
            "median": None if summary is None else round(summary.median, 6),
            "min": None if summary is None else round(summary.low, 6),
            "max": None if summary is None else round(summary.high, 6),
            "spread_pct": None if summary is None else round(summary.spread_pct, 1),
            "cpu_client": [round(c, 4) for c in self.cpu_client],
            "cpu_daemons": [round(d, 4) for d in self.cpu_daemons],
        }


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def format_value(summary: Summary | None, unit: str, failures: int = 0) -> str:
    """`1.23 s (1.10-1.40, n=5)`; a measurement with no good sample says why."""
    if summary is None:
        return f"FAILED x{failures}" if failures else "-"
    text = f"{_number(summary.median)} {unit}"
    if summary.n > 1:
        text += f" ({_number(summary.low)}-{_number(summary.high)}, n={summary.n})"
    else:
        text += " (n=1)"
    if failures:
        text += f" +{failures} failed"
    return text


def format_ratio(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def format_met(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table padded to line up in a terminal too."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])
