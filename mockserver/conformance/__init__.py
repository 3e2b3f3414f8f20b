"""Differential conformance of a proxy: Tapedeck as its upstream, the scenarios sent through
it, and a report of every way its output departs from the protocol or from upstream.

    scenarios ──▶ client ──▶ proxy under test ──▶ upstream ──▶ compare ──▶ report
                                                                 ▲
                          (run: starts the upstream, sends, collects, judges)

Under load (``load``): C streams at once, each with words derived from its nonce (``tally``),
straight to the upstream and through the proxy, compared in ``load_report`` (``plot``: PNG).
"""

from mockserver.conformance.client import Downstream
from mockserver.conformance.load import LoadPlan, run_load, run_load_async
from mockserver.conformance.load_report import LoadReport
from mockserver.conformance.report import Finding, Report
from mockserver.conformance.run import run_conformance, run_conformance_async
from mockserver.errors import ConformanceError

__all__ = [
    "ConformanceError",
    "Downstream",
    "Finding",
    "LoadPlan",
    "LoadReport",
    "Report",
    "run_conformance",
    "run_conformance_async",
    "run_load",
    "run_load_async",
]
