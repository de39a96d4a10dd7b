"""Turn measurements into the printed tables and the JSON document. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from bench.stats import (
    Measurement,
    Target,
    format_met,
    format_ratio,
    format_value,
    markdown_table,
    ratio,
)

TARGET_SIZE = 1000
APPLY_TARGET = Target(1.5)  # seconds for 1,000 peers, until vswitchd applied them
SPEEDUP_TARGET = Target(30, at_most=False)  # x faster than the ovs-vsctl loop
NOOP_TARGET = Target(0.3)
STATUS_TARGET = Target(0.5)
HELP_TARGET = Target(0.3)
READ_RATIO_TARGET = Target(2.0)  # x the time of `ovs-vsctl --format=json list Interface`
READ_OPERATIONS = (
    ("status --json", "status"),
    ("peer sync, nothing to do", "noop-sync"),
    ("metrics scrape", "scrape"),
)
INSTALLS = (("dev", "make setup venv"), ("plain", "plain pip install ."))


@dataclass(frozen=True)
class Row:
    """One line of a table: an ovsnet figure, optionally beside a baseline and a target."""

    operation: str
    size: str
    value: Measurement | None
    baseline: Measurement | None = None
    target: Target | None = None
    ratio_target: Target | None = None
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        if self.higher_is_better:
            return ratio(self.value.summary, self.baseline.summary)
        return ratio(self.baseline.summary, self.value.summary)

    @property
    def cpu_ratio(self) -> float | None:
        """The same ratio in CPU seconds: steadier than wall time on a loaded machine."""
        if self.value is None or self.baseline is None:
            return None
        return ratio(self.baseline.cpu_summary, self.value.cpu_summary)

    def met(self) -> bool | None:
        verdicts = []
        if self.target is not None:
            summary = self.value.summary if self.value else None
            verdicts.append(self.target.met(summary.median if summary else None))
        if self.ratio_target is not None:
            verdicts.append(self.ratio_target.met(self.ratio))
        if not verdicts:
            return None
        return all(v is True for v in verdicts)  # an unknown verdict is not a met target

    def target_text(self) -> str:
        unit = f" {self.value.unit}" if self.value else ""
        parts = []
        if self.target is not None:
            parts.append(self.target.describe(unit))
        if self.ratio_target is not None:
            parts.append(self.ratio_target.describe("x"))
        return ", ".join(parts) or "-"

    def cells(self) -> list[str]:
        def show(m: Measurement | None) -> str:
            return "-" if m is None else format_value(m.summary, m.unit, len(m.failures))

        def cpu(m: Measurement | None) -> str:
            summary = m.cpu_summary if m else None
            return "-" if summary is None else format_value(summary, "s").split(" (")[0]

        return [
            self.operation,
            self.size,
            show(self.value),
            cpu(self.value),
            show(self.baseline),
            cpu(self.baseline),
            format_ratio(self.ratio)
            + ("" if self.cpu_ratio is None else f" (CPU {format_ratio(self.cpu_ratio)})"),
            self.target_text(),
            format_met(self.met()),
        ]

    def as_json(self) -> dict:
        return {
            "operation": self.operation,
            "size": self.size,
            "ovsnet": self.value.key if self.value else None,
            "baseline": self.baseline.key if self.baseline else None,
            "ratio": None if self.ratio is None else round(self.ratio, 2),
            "cpu_ratio": None if self.cpu_ratio is None else round(self.cpu_ratio, 2),
            "target": self.target_text(),
            "met": self.met(),
        }


CONTROL_HEADERS = [
    "operation",
    "peers",
    "ovsnet",
    "CPU",
    "ovs-vsctl loop",
    "CPU",
    "speed-up",
    "target",
    "met",
]


def control_rows(results: dict[str, Measurement], sizes: tuple[int, ...]) -> list[Row]:
    get = results.get
    rows = []
    for n in sizes:
        at_target = n == TARGET_SIZE
        for op, key in (("peer add (one call)", "add"), ("peer sync FILE (from none)", "sync")):
            rows.append(
                Row(
                    op,
                    str(n),
                    get(f"{key}/{n}/ovsnet"),
                    get(f"add/{n}/vsctl-loop"),
                    APPLY_TARGET if at_target else None,
                    SPEEDUP_TARGET if at_target else None,
                )
            )
    n = max(sizes)
    at_target = n == TARGET_SIZE
    rows += [
        Row("peer sync, nothing to do", str(n), get(f"noop-sync/{n}/ovsnet"),
            target=NOOP_TARGET if at_target else None),
        Row("peer sync, 10% replaced", str(n), get(f"churn-sync/{n}/ovsnet")),
        Row("peer sync of an empty file", str(n), get(f"remove-all-sync/{n}/ovsnet")),
        Row("status --json", str(n), get(f"status/{n}/ovsnet"),
            target=STATUS_TARGET if at_target else None),
        Row("peer list --json", str(n), get(f"list/{n}/ovsnet")),
        Row("ovsnet --help", "-", get("help"), target=HELP_TARGET),
        Row("(floor) python -c pass", "-", get("python-floor")),
        Row("(floor) ip netns exec true", "-", get("netns-exec-floor")),
    ]  # fmt: skip
    return [r for r in rows if r.value is not None or r.baseline is not None]


DATA_HEADERS = ["path", "MTU", "TCP throughput", "vs underlay", "ping RTT", "RTT vs underlay"]


@dataclass(frozen=True)
class DataRow:
    path: str
    mtu: str
    throughput: Measurement | None
    rtt: Measurement | None
    underlay_throughput: Measurement | None
    underlay_rtt: Measurement | None

    def throughput_ratio(self) -> float | None:
        if self.throughput is None or self.underlay_throughput is None:
            return None
        return ratio(self.throughput.summary, self.underlay_throughput.summary)

    def rtt_ratio(self) -> float | None:
        if self.rtt is None or self.underlay_rtt is None:
            return None
        return ratio(self.rtt.summary, self.underlay_rtt.summary)

    def cells(self) -> list[str]:
        def show(m):
            return "-" if m is None else format_value(m.summary, m.unit, len(m.failures))

        return [
            self.path,
            self.mtu,
            show(self.throughput),
            format_ratio(self.throughput_ratio()),
            show(self.rtt),
            format_ratio(self.rtt_ratio()),
        ]

    def as_json(self) -> dict:
        tr, rr = self.throughput_ratio(), self.rtt_ratio()
        return {
            "path": self.path,
            "mtu": self.mtu,
            "throughput": self.throughput.key if self.throughput else None,
            "rtt": self.rtt.key if self.rtt else None,
            "throughput_vs_underlay": None if tr is None else round(tr, 3),
            "rtt_vs_underlay": None if rr is None else round(rr, 3),
        }


def data_rows(results: dict[str, Measurement], overlay_mtu: int | None) -> list[DataRow]:
    get = results.get
    under_t, under_r = get("data/underlay/tcp"), get("data/underlay/rtt")
    rows = [
        DataRow("underlay (host to host)", "1500", under_t, under_r, under_t, under_r),
        DataRow("overlay, ovsnet's MTU", str(overlay_mtu or "?"), get("data/overlay/tcp"),
                get("data/overlay/rtt"), under_t, under_r),
        DataRow("overlay, containers at MTU 1500", "1500", get("data/wrong-mtu/tcp"),
                get("data/wrong-mtu/rtt"), under_t, under_r),
    ]  # fmt: skip
    return [r for r in rows if r.throughput is not None or r.rtt is not None]


READS_HEADERS = ["operation", "install", "peers", "ovsnet", "ovs-vsctl list Interface", "ratio",
                 "CPU ratio", "target", "met"]  # fmt: skip


@dataclass(frozen=True)
class ReadRow:
    """An ovsnet read beside `ovs-vsctl list Interface` from the same run: time ratio."""

    operation: str
    install: str
    size: int
    value: Measurement | None
    baseline: Measurement | None

    @property
    def ratio(self) -> float | None:
        summary = self.value.summary if self.value else None
        return ratio(summary, self.baseline.summary if self.baseline else None)

    @property
    def cpu_ratio(self) -> float | None:
        """CPU seconds (command or metrics server, plus OVS daemons): steadier under load."""
        summary = self.value.cpu_summary if self.value else None
        return ratio(summary, self.baseline.cpu_summary if self.baseline else None)

    def cells(self) -> list[str]:
        def show(m: Measurement | None) -> str:
            return "-" if m is None else format_value(m.summary, m.unit, len(m.failures))

        met = format_met(READ_RATIO_TARGET.met(self.ratio))
        return [self.operation, self.install, str(self.size), show(self.value),
                show(self.baseline), format_ratio(self.ratio), format_ratio(self.cpu_ratio),
                READ_RATIO_TARGET.describe("x"), met]  # fmt: skip

    def as_json(self) -> dict:
        return {
            "operation": self.operation,
            "install": self.install,
            "size": self.size,
            "ovsnet": self.value.key if self.value else None,
            "baseline": self.baseline.key if self.baseline else None,
            "ratio": None if self.ratio is None else round(self.ratio, 2),
            "cpu_ratio": None if self.cpu_ratio is None else round(self.cpu_ratio, 2),
            "met": READ_RATIO_TARGET.met(self.ratio),
        }


def read_rows(results: dict[str, Measurement]) -> list[ReadRow]:
    sizes = sorted({int(key.split("/")[1]) for key in results if key.startswith("reads/")
                    and key.split("/")[1].isdigit()})  # fmt: skip
    rows = []
    for n in sizes:
        baseline = results.get(f"reads/{n}/vsctl-list")
        for install, label in INSTALLS:
            for operation, key in READ_OPERATIONS:
                value = results.get(f"reads/{n}/{install}/{key}")
                if value is not None:
                    rows.append(ReadRow(operation, label, n, value, baseline))
    return rows


def render(results: dict[str, Measurement], sizes: tuple[int, ...], overlay_mtu: int | None) -> str:
    parts = [
        "Control plane: wall time until ovs-vswitchd applied every port, median (min-max, n);",
        "CPU = median CPU seconds of the command plus ovsdb-server and ovs-vswitchd meanwhile.",
    ]
    control = control_rows(results, sizes)
    if control:
        parts.append(markdown_table(CONTROL_HEADERS, [r.cells() for r in control]))
    reads = read_rows(results)
    if reads:
        parts += ["", "Reads beside OVS's own tool, same run: ovsnet time / ovs-vsctl "
                  "--format=json list Interface time (medians)"]  # fmt: skip
        parts.append(markdown_table(READS_HEADERS, [r.cells() for r in reads]))
    rows = data_rows(results, overlay_mtu)
    if rows:
        parts += ["", "Data plane (container to container on two lab hosts; median (min-max, n))"]
        parts.append(markdown_table(DATA_HEADERS, [r.cells() for r in rows]))
    return "\n".join(parts)


def document(
    meta: dict,
    results: dict[str, Measurement],
    sizes: tuple[int, ...],
    overlay_mtu: int | None,
) -> dict:
    return {
        "meta": meta,
        "control_plane": [r.as_json() for r in control_rows(results, sizes)],
        "reads": [r.as_json() for r in read_rows(results)],
        "data_plane": [r.as_json() for r in data_rows(results, overlay_mtu)],
        "measurements": {key: m.as_json() for key, m in sorted(results.items())},
        "table": render(results, sizes, overlay_mtu),
    }
