"""riverbed.reports: plots of run trees and self-contained HTML reports.

>>> from riverbed.reports import build_report                     # doctest: +SKIP
>>> build_report("runs/tiny", "tiny.html").html                   # doctest: +SKIP
"""

from riverbed.reports.build import Report, build_compare, build_report

__all__ = ["Report", "build_compare", "build_report"]
