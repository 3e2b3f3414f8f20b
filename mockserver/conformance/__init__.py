"""Differential conformance of a proxy: Tapedeck as its upstream, the scenarios sent through
it, and a report of every way its output departs from the protocol or from upstream.

    scenarios ──▶ client ──▶ proxy under test ──▶ upstream ──▶ compare ──▶ report
                                                                 ▲
                          (run: starts the upstream, sends, collects, judges)
"""

from mockserver.conformance.client import Downstream
from mockserver.conformance.report import Finding, Report
from mockserver.conformance.run import run_conformance, run_conformance_async
from mockserver.errors import ConformanceError

__all__ = [
    "ConformanceError",
    "Downstream",
    "Finding",
    "Report",
    "run_conformance",
    "run_conformance_async",
]
