"""The reproduction of Saglietti & Zdeborova (MSML 2022): figures, CSV data and a report.

One module per figure (``inheritance``, ``limited_by_teacher``, ``double_descent``,
``temperature``, ``simulations``), each with its computation, plot, CSV rows and report section;
``report`` assembles them.  Plotting needs the ``paper`` extra (matplotlib:
``pip install "kdjax[paper]"``), imported only when a figure is drawn; ``import kdjax`` does not
import this package.
"""

from ._common import Optima, Plan, Solves, plan
from .report import checks, compute, run

__all__ = ["Plan", "plan", "Solves", "Optima", "compute", "checks", "run"]
