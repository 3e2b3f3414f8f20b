"""``check --load --plot FILE``: the load report's distributions as a PNG, straight to the
upstream against through the proxy: time to first event, and the gaps between events
next to the pace the upstream kept. matplotlib is an optional extra (``plot``): the
check itself never needs it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mockserver.conformance.load_report import LoadReport
from mockserver.errors import ConformanceError

MISSING = (
    "--plot needs matplotlib, which Tapedeck does not install by default. Way out: "
    "pip install 'llm-tapedeck[plot]' (or pip install matplotlib), or leave --plot out."
)


def require_matplotlib() -> None:
    """Raise before a run whose plot could not be drawn at its end."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ConformanceError(MISSING)


def write_plot(report: LoadReport, path: Path) -> None:
    """Two panels of cumulative distributions (share of streams or events at or below a
    value): the one to the right of the other is the slower."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display, no GUI toolkit
        from matplotlib import pyplot
    except ImportError:
        raise ConformanceError(MISSING) from None
    plan = report.plan
    figure, (first, gaps) = pyplot.subplots(1, 2, figsize=(11, 4.2))
    try:
        for tally, colour in ((report.direct, "tab:blue"), (report.proxy, "tab:red")):
            label = f"{tally.name} ({tally.finished} streams)"
            _cdf(first, [t * 1000 for t in tally.ttfe], label, colour)
            _cdf(gaps, [g * 1000 for g in tally.gaps], label, colour)
        first.set(title="Time to first event", xlabel="ms (log scale)", ylabel="share of streams")
        if len(report.direct.ttfe) or len(report.proxy.ttfe):
            first.set_xscale("log")
        gaps.axvline(plan.gap * 1000, color="grey", linestyle=":", label="upstream's pace")
        gaps.set(title="Gap between events", xlabel="ms", ylabel="share of events")
        for axes in (first, gaps):
            axes.set_ylim(0, 1.02)
            axes.grid(alpha=0.3)
            axes.legend(loc="lower right", fontsize="small")
        figure.suptitle(
            f"{plan.concurrency} streams in flight, {plan.events} events {plan.gap * 1000:g} ms "
            f"apart: {report.proxy_url} vs straight to Tapedeck",
            fontsize="medium",
        )
        figure.tight_layout()
        figure.savefig(path, dpi=110)
    finally:
        pyplot.close(figure)


def _cdf(axes: Any, values: Sequence[float], label: str, colour: str) -> None:
    if not values:
        return
    ordered = sorted(values)
    shares = [(i + 1) / len(ordered) for i in range(len(ordered))]
    axes.step(ordered, shares, where="post", label=label, color=colour)
