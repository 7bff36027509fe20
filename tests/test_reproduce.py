"""`kdjax reproduce`: every file is written, every CSV is finite, and its numbers are the solver's.

One ``run(tmp, quick=True)`` (module-scoped, ~1.5 min on 2 cores) feeds every test; the values
in the CSV files are checked against direct ``kdjax.solve_teacher`` / ``kdjax.solve_student``
calls at the same parameters, read from the files themselves.
"""

import csv
import math
import os

import numpy as np
import pytest

import kdjax
from kdjax import reproduce

FIGURES = ["fig1_inheritance.png", "fig2_limited_by_teacher.png", "fig3_double_descent.png",
           "fig4_temperature.png", "fig5_theory_vs_simulation.png"]
CSVS = ["fig1_kd_student.csv", "fig1_hard_student.csv", "fig1_reference.csv",
        "fig1_simulation.csv", "fig2_best_over_temperature.csv", "fig2_optimal_lam_t.csv",
        "fig3_double_descent.csv", "fig3_peaks.csv", "fig3_simulation.csv",
        "fig4_error_vs_temperature.csv", "fig4_optimal_map.csv", "fig5_theory_vs_simulation.csv"]
TOL = 1e-6


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    calls = []
    paths = reproduce.run(str(out), quick=True, progress=lambda *a: calls.append(a))
    return str(out), paths, calls


def read(out, name):
    """``{column: float array}`` of a CSV written by the run."""
    with open(os.path.join(out, name), newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    data = np.array([[float(v) for v in row] for row in body], dtype=float).reshape(-1, len(header))
    return {h: data[:, k] for k, h in enumerate(header)}


def reference(out):
    ref = read(out, "fig1_reference.csv")
    return {k: float(v[0]) for k, v in ref.items()}


def test_every_expected_file_is_written_and_returned(reproduction):
    out, paths, _ = reproduction
    expected = FIGURES + CSVS + ["report.md"]
    assert sorted(os.path.basename(p) for p in paths) == sorted(expected)
    for name in expected:
        path = os.path.join(out, name)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, name
    for name in FIGURES:
        with open(os.path.join(out, name), "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n", name


def test_every_csv_has_a_header_and_only_finite_numbers(reproduction):
    out, _, _ = reproduction
    for name in CSVS:
        with open(os.path.join(out, name), newline="") as fh:
            rows = list(csv.reader(fh))
        header = rows[0]
        assert all(h and not _is_number(h) for h in header), name
        assert len(rows) > 1 or name == "fig3_peaks.csv", f"{name} has no data row"
        for row in rows[1:]:
            assert len(row) == len(header), name
            values = [float(v) for v in row]  # raises on anything but a number
            assert all(math.isfinite(v) for v in values), f"{name}: {row}"


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_kd_student_and_teacher_errors_equal_direct_solves(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    mixture = kdjax.Mixture(ref["alpha"], ref["delta"], ref["rho"])
    kd = read(out, "fig1_kd_student.csv")
    for k in (0, len(kd["lam_t"]) // 2, len(kd["lam_t"]) - 1):
        lam_t, T = float(kd["lam_t"][k]), float(kd["temperature"][k])
        s = kdjax.solve_student(mixture, kdjax.Teacher("logistic", lam_t),
                                kdjax.Student(gamma=ref["gamma"], temperature=T))
        t = kdjax.solve_teacher(mixture, kdjax.Teacher("logistic", lam_t))
        assert abs(float(s.gen_error) - kd["student_error"][k]) < TOL
        assert abs(float(t.gen_error) - kd["teacher_error"][k]) < TOL


def test_hard_label_student_and_bayes_reference_equal_direct_computations(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    mixture = kdjax.Mixture(ref["alpha"], ref["delta"], ref["rho"])
    hard = lambda lam_s: float(kdjax.solve_student(
        mixture, kdjax.Teacher("logistic", 0.1),
        kdjax.Student(gamma=ref["gamma"], hard_weight=1.0, lam=lam_s)).gen_error)
    assert abs(hard(ref["hard_lam_s0"]) - ref["hard_unreg_error"]) < TOL
    assert abs(hard(ref["hard_best_lam_s"]) - ref["hard_best_error"]) < TOL
    assert ref["hard_best_error"] < ref["hard_unreg_error"]
    scan = read(out, "fig1_hard_student.csv")
    assert ref["hard_best_error"] <= scan["hard_student_error"].min() + 1e-12
    assert abs(float(kdjax.bayes_optimal_error(mixture)) - ref["bayes_error"]) < 1e-12


def test_double_descent_rows_equal_direct_solves_same_and_fresh(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    dd = read(out, "fig3_double_descent.csv")
    p = reproduce.plan(quick=True)
    picks = []
    for fresh, hard in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        rows = np.flatnonzero((dd["fresh"] == fresh) & (dd["hard_weight"] == hard))
        assert rows.size, (fresh, hard)
        picks.append(int(rows[rows.size // 2]))
    for k in picks:
        alpha = float(dd["alpha"][k])
        fresh = dd["fresh"][k] == 1.0
        student = kdjax.Student(gamma=ref["gamma"], temperature=p.dd_temperature,
                                hard_weight=float(dd["hard_weight"][k]), lam=float(dd["lam_s"][k]),
                                data="fresh" if fresh else "same", alpha=alpha if fresh else None)
        s = kdjax.solve_student(kdjax.Mixture(alpha, ref["delta"], ref["rho"]),
                                kdjax.Teacher("logistic", p.dd_lam_t), student)
        assert abs(float(s.gen_error) - dd["student_error"][k]) < TOL
        assert abs(float(s.teacher.gen_error) - dd["teacher_error"][k]) < TOL


def test_optimal_recipe_rows_are_the_solver_errors_at_the_reported_optimum(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    m = read(out, "fig4_optimal_map.csv")
    for k in range(len(m["alpha"])):
        s = kdjax.solve_student(
            kdjax.Mixture(float(m["alpha"][k]), ref["delta"], ref["rho"]),
            kdjax.Teacher("logistic", float(m["opt_lam_t"][k])),
            kdjax.Student(gamma=float(m["gamma"][k]), temperature=float(m["opt_temperature"][k])))
        assert abs(float(s.gen_error) - m["opt_student_error"][k]) < TOL
    # the optimum is no worse than any point of the figure-4 grid at the reference setting
    grid = read(out, "fig4_error_vs_temperature.csv")
    here = (m["alpha"] == ref["alpha"]) & (m["gamma"] == ref["gamma"])
    if here.any():
        assert m["opt_student_error"][here][0] <= grid["student_error"].min() + 1e-3


def test_simulations_agree_with_the_theory_within_error_bars(reproduction):
    out, _, _ = reproduction
    sim = read(out, "fig5_theory_vs_simulation.csv")
    assert len(sim["figure"]) >= 3
    gap = np.abs(sim["student_error_mean"] - sim["student_error_theory"])
    # a few seeds at N = 400: allow 4 s.e.m. plus a finite-size margin
    assert np.all(gap <= 4 * sim["student_error_sem"] + 0.01), gap


def test_report_states_each_claim_with_numbers_from_the_csv_files(reproduction):
    out, _, _ = reproduction
    with open(os.path.join(out, "report.md")) as fh:
        text = fh.read()
    for k in range(1, 6):
        assert f"## Figure {k}" in text
    ref = reference(out)
    assert f"{ref['hard_unreg_error']:.4f}" in text
    assert f"{ref['hard_best_error']:.4f}" in text
    assert "nan" not in text.lower().replace("n/a", "")


def test_progress_callback_covers_every_stage_in_order(reproduction):
    _, _, calls = reproduction
    stages = [c[0] for c in calls]
    for stage in ("inheritance", "limited by the teacher", "double descent", "temperature",
                  "simulation", "figures"):
        assert stage in stages
    assert all(0 <= done <= total for _, done, total in calls)
    assert calls[-1][0] == "figures" and calls[-1][1] == calls[-1][2]


@pytest.mark.slow
def test_gradient_recipe_matches_optimize_kd():
    """The map's L-BFGS-B search reaches optimize_kd's optimum (same objective and coordinates)."""
    from kdjax.optimize import optimize_kd

    p = reproduce.plan(quick=False)
    solves = reproduce.Solves(p)
    rec = reproduce.optimal_recipe(p, solves, p.alpha, p.gamma)
    opt = optimize_kd(kdjax.Mixture(p.alpha, p.delta, p.rho), kdjax.Teacher("logistic", rec["lam_t"]),
                      kdjax.Student(gamma=p.gamma, temperature=rec["temperature"]),
                      free=("lam_t", "temperature"), steps=20)
    assert rec["error"] <= opt.gen_error + 1e-6
