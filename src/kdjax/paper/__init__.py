"""The reproduction of Saglietti & Zdeborova (MSML 2022): figures, CSV data and a report.

One module per figure, each holding that figure's computation, plot, CSV rows and report section:
:mod:`.inheritance` (figure 1), :mod:`.limited_by_teacher` (2), :mod:`.double_descent` (3),
:mod:`.temperature` (4) and :mod:`.simulations` (5); :mod:`.report` runs them and assembles
``report.md`` (``run`` is what ``kdjax reproduce`` calls).

The plots need the ``paper`` extra (matplotlib): ``pip install "kdjax[paper]"``.  Matplotlib is
imported only when a figure is drawn; ``import kdjax`` does not import this package.
"""

from ._plan import Plan, plan
from .report import Results, compute, run

__all__ = ["Plan", "Results", "compute", "plan", "run"]
