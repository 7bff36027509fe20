"""The asymptotic theory against finite-N simulation of the very same objectives (the panels of
the private ``kdjax._validate``, which ``kdjax validate`` runs).

A small panel runs in the default suite (N = 500); the full panels of ``kdjax validate`` are
marked slow.  Tolerance: ``validate.Z_MAX`` s.e.m. plus the finite-size allowance of
``kdjax validate`` (2% of (|theory| + 1) at N = 1000, scaling as 1/N).
"""

import pytest

from kdjax import _validate as validate


def _check(case, n_features, seeds):
    rows = validate.run_case(case, n_features, seeds)
    bad = [r for r in rows if not r.ok]
    assert not bad, validate.format_rows(rows)


@pytest.mark.parametrize("case", validate.teacher_panel(quick=True), ids=lambda c: c.name)
def test_teacher_theory_matches_simulation(case):
    _check(case, 400, 4)


@pytest.mark.parametrize("case", validate.kd_panel(quick=True), ids=lambda c: c.name)
def test_student_theory_matches_simulation(case):
    _check(case, 400, 4)


@pytest.mark.slow
@pytest.mark.parametrize("case", validate.teacher_panel() + validate.kd_panel(), ids=lambda c: c.name)
def test_full_panel_at_n_1000(case):
    _check(case, 1000, 8)
