"""The reproduction of Saglietti & Zdeborova (MSML 2022): figures, CSV data and a report.

Needs the ``paper`` extra (matplotlib): ``pip install "kdjax[paper]"``.  ``import kdjax`` does not
import this package.
"""

from ._reproduce import compute, plan, run

__all__ = ["compute", "plan", "run"]
