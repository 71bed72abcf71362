"""Reports: the results table printed by ``bench run`` (:mod:`bench.report.console`) and the paper report of
``bench report`` / ``bench reproduce`` (data, matching, tables, plots, grids, HTML)."""

from bench.report.console import results_table

__all__ = ["results_table"]
