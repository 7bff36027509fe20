"""`kdjax reproduce --quick`: every file written, every CSV finite, and its numbers the solver's.

One ``run(tmp, quick=True)`` (module-scoped) feeds every test but the last; the values in the CSV
files are checked against direct ``kdjax.solve_teacher`` / ``kdjax.solve_student`` /
``kdjax.bayes_optimal_error`` calls at the parameters read from the files themselves.
"""

import csv
import dataclasses
import math
import os

import numpy as np
import pytest

import kdjax
from kdjax import paper
from kdjax.paper import _common, double_descent, report, temperature

FIGURES = ["fig1_inheritance.png", "fig2_limited_by_teacher.png", "fig3_double_descent.png",
           "fig4_temperature.png", "fig5_theory_vs_simulation.png", "fig6_self_distillation.png"]
CSVS = ["fig1_kd_student.csv", "fig1_hard_student.csv", "fig1_reference.csv",
        "fig1_label_noise.csv", "fig1_simulation.csv", "fig2_best_over_temperature.csv", "fig2_optimal_lam_t.csv",
        "fig3_double_descent.csv", "fig3_peaks.csv", "fig3_simulation.csv",
        "fig4_error_vs_temperature.csv", "fig4_optimal_map.csv", "fig5_theory_vs_simulation.csv",
        "fig6_error_vs_depth.csv", "fig6_optimal_schedule.csv", "fig6_gain_map.csv"]
TOL = 1e-8
# The quick plan with a smaller self-distillation study (figure 6): one label noise instead of two
# (each noise flag compiles the depth-3 chain's solve and its simulator once more) and the schedule
# search over generation 1 only (its gradient program compiles in a third of the depth-2 one's time).
# Figures 1-5 are the quick plan's.  The clean-label chains (eta = 0) are tested in
# test_self_distillation.py; optimize_kd through a depth-2 chain in test_optimize.py, and the gradient
# of a depth-2 same-input chain in test_chain.py.
PLAN = dataclasses.replace(paper.plan(quick=True), sd_label_noises=(0.2,), sd_opt_depth=1)


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    calls = []
    with pytest.MonkeyPatch.context() as mp:  # paper.run(quick=True) at the plan above
        mp.setattr(report, "plan", lambda quick=False: PLAN if quick else paper.plan(quick))
        paths = paper.run(str(out), quick=True, progress=lambda *a: calls.append(a))
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


def student(ref, lam_t, alpha=None, gamma=None, **kwargs):
    """Direct ``solve_student`` at the reference mixture (``alpha`` and ``gamma`` overridable)."""
    mixture = kdjax.Mixture(ref["alpha"] if alpha is None else float(alpha), ref["delta"], ref["rho"])
    s = kdjax.Student(gamma=ref["gamma"] if gamma is None else float(gamma), **kwargs)
    return kdjax.solve_student(mixture, kdjax.Teacher("logistic", float(lam_t)), s)


def spread(rows):
    """First, middle and last index of ``rows`` (an index array or a length)."""
    rows = np.arange(rows) if np.ndim(rows) == 0 else np.asarray(rows)
    return sorted({int(rows[0]), int(rows[rows.size // 2]), int(rows[-1])})


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
        assert os.path.getsize(os.path.join(out, name)) < 400_000, name


def test_every_csv_has_a_header_and_only_finite_numbers(reproduction):
    out, _, _ = reproduction
    for name in CSVS:
        with open(os.path.join(out, name), newline="") as fh:
            rows = list(csv.reader(fh))
        header = rows[0]
        assert all(h and not _is_number(h) for h in header), name
        assert len(rows) > 1, f"{name} has no data row"
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


def test_every_error_column_is_a_probability_of_error_below_one_half(reproduction):
    out, _, _ = reproduction
    for name in CSVS:
        data = read(out, name)
        for column, values in data.items():
            if "error" in column:
                assert np.all((values >= 0) & (values <= 0.5)), (name, column)


def test_kd_student_and_teacher_errors_equal_direct_solves(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    kd = read(out, "fig1_kd_student.csv")
    mixture = kdjax.Mixture(ref["alpha"], ref["delta"], ref["rho"])
    for k in spread(len(kd["lam_t"])):
        s = student(ref, kd["lam_t"][k], temperature=float(kd["temperature"][k]))
        t = kdjax.solve_teacher(mixture, kdjax.Teacher("logistic", float(kd["lam_t"][k])))
        assert abs(float(s.gen_error) - kd["student_error"][k]) < TOL
        assert abs(float(t.gen_error) - kd["teacher_error"][k]) < TOL
    # figure 4a is the same grid, and figure 2a its minimum over T
    f4 = read(out, "fig4_error_vs_temperature.csv")
    np.testing.assert_array_equal(f4["student_error"], kd["student_error"])
    f2 = read(out, "fig2_best_over_temperature.csv")
    for k, lam_t in enumerate(f2["lam_t"]):
        here = kd["lam_t"] == lam_t
        assert f2["student_best_error"][k] == kd["student_error"][here].min()


def test_hard_label_student_and_bayes_references_equal_direct_computations(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    hard = lambda lam_s: float(student(ref, ref["hard_teacher_lam_t"], hard_weight=1.0,
                                       lam=float(lam_s)).gen_error)
    assert abs(hard(ref["hard_lam_s0"]) - ref["hard_unreg_error"]) < TOL
    assert abs(hard(ref["hard_best_lam_s"]) - ref["hard_best_error"]) < TOL
    scan = read(out, "fig1_hard_student.csv")
    for k in spread(len(scan["lam_s"])):
        assert abs(hard(scan["lam_s"][k]) - scan["hard_student_error"][k]) < TOL
    assert ref["hard_best_error"] <= scan["hard_student_error"].min() + 1e-12
    assert ref["hard_best_error"] < ref["hard_unreg_error"]
    mixture = kdjax.Mixture(ref["alpha"], ref["delta"], ref["rho"])
    assert abs(float(kdjax.bayes_optimal_error(mixture)) - ref["bayes_error"]) < 1e-12
    g = ref["gamma"]
    seen = kdjax.Mixture(ref["alpha"] / g, ref["delta"] / g, ref["rho"])
    assert abs(float(kdjax.bayes_optimal_error(seen)) - ref["student_bayes_error"]) < 1e-12
    # the Bayes-optimal errors bound every error of figure 1 from below
    kd = read(out, "fig1_kd_student.csv")
    assert ref["bayes_error"] < kd["teacher_error"].min()
    assert ref["student_bayes_error"] < kd["student_error"].min()


def test_label_noise_panel_carries_the_bayes_error_of_its_noisy_mixture(reproduction):
    """Figure 1's right panel (labels flipped with probability eta): its Bayes-optimal values are
    ``kdjax.bayes_optimal_error`` of the noisy mixture, not of the clean one, and bound its errors."""
    out, _, _ = reproduction
    ref = reference(out)
    noise = read(out, "fig1_label_noise.csv")
    np.testing.assert_array_equal(noise["lam_t"], np.asarray(PLAN.lam_t))
    assert np.all(noise["label_noise"] == PLAN.noise_eta) and PLAN.noise_eta > 0
    assert np.all(noise["temperature"] == PLAN.noise_temperature)
    eta, g = float(noise["label_noise"][0]), ref["gamma"]
    noisy = kdjax.Mixture(ref["alpha"], ref["delta"], ref["rho"], eta)
    clean = kdjax.Mixture(ref["alpha"], ref["delta"], ref["rho"])
    bayes, bayes_clean = float(kdjax.bayes_optimal_error(noisy)), float(kdjax.bayes_optimal_error(clean))
    seen = kdjax.Mixture(ref["alpha"] / g, ref["delta"] / g, ref["rho"], eta)
    assert np.all(np.abs(noise["bayes_error"] - bayes) < 1e-12)
    assert np.all(np.abs(noise["student_bayes_error"] - float(kdjax.bayes_optimal_error(seen))) < 1e-12)
    assert np.all(noise["clean_bayes_error"] == ref["bayes_error"])
    assert abs(bayes_clean - ref["bayes_error"]) < 1e-12 and bayes > bayes_clean + 1e-3
    # the panel's errors are noisy solves, bounded below by the noisy baselines
    k = len(noise["lam_t"]) // 2
    s = kdjax.solve_student(noisy, kdjax.Teacher("logistic", float(noise["lam_t"][k])),
                            kdjax.Student(gamma=g, temperature=PLAN.noise_temperature))
    assert abs(float(s.gen_error) - noise["student_error"][k]) < TOL
    assert abs(float(s.teacher.gen_error) - noise["teacher_error"][k]) < TOL
    assert bayes < noise["teacher_error"].min()
    assert noise["student_bayes_error"][0] < noise["student_error"].min()
    with open(os.path.join(out, "report.md")) as fh:
        text = fh.read()
    assert f"Bayes-optimal error {bayes:.4f} on the full input (clean labels: {bayes_clean:.4f})" in text


def test_double_descent_rows_equal_direct_solves_same_and_fresh(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    dd = read(out, "fig3_double_descent.csv")
    curves = {(c.lam_t, c.hard_weight, c.lam_s, 1.0 if c.data == "fresh" else 0.0)
              for c in double_descent.curves(PLAN)}
    seen = set(zip(dd["lam_t"], dd["hard_weight"], dd["lam_s"], dd["fresh"]))
    assert seen == curves
    for lam_t, hard, lam_s, fresh in sorted(curves):
        rows = np.flatnonzero((dd["lam_t"] == lam_t) & (dd["hard_weight"] == hard)
                              & (dd["lam_s"] == lam_s) & (dd["fresh"] == fresh))
        k = int(rows[rows.size // 2])
        alpha = float(dd["alpha"][k])
        s = kdjax.solve_student(
            kdjax.Mixture(alpha, ref["delta"], ref["rho"]), kdjax.Teacher("logistic", lam_t),
            kdjax.Student(gamma=ref["gamma"], temperature=PLAN.dd_temperature, hard_weight=hard,
                          lam=lam_s, data="fresh" if fresh else "same",
                          alpha=alpha if fresh else None))
        assert abs(float(s.gen_error) - dd["student_error"][k]) < TOL
        assert abs(float(s.teacher.gen_error) - dd["teacher_error"][k]) < TOL


def test_double_descent_peaks_sit_at_the_predicted_thresholds(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    peaks = read(out, "fig3_peaks.csv")
    soft_small = (peaks["hard_weight"] == 0) & (peaks["lam_s"] == PLAN.dd_lam_s_small)
    assert np.all(peaks["has_interior_peak"][soft_small] == 1)
    np.testing.assert_allclose(peaks["max_alpha"][soft_small], ref["gamma"])
    np.testing.assert_allclose(peaks["predicted_threshold"][soft_small], ref["gamma"])
    sep = ref["gamma"] * float(kdjax.separability_threshold(ref["delta"] / ref["gamma"], ref["rho"]))
    np.testing.assert_allclose(peaks["predicted_threshold"][peaks["hard_weight"] == 1], sep)
    # a regularised student has no peak, and a regularised teacher damps the KD one
    assert np.all(peaks["has_interior_peak"][peaks["lam_s"] == PLAN.dd_lam_s_reg] == 0)
    same = soft_small & (peaks["fresh"] == 0)
    weak = peaks["error_at_predicted"][same & (peaks["lam_t"] == PLAN.dd_lam_t)]
    strong = peaks["error_at_predicted"][same & (peaks["lam_t"] == PLAN.dd_lam_t_strong)]
    assert strong[0] < weak[0]


def test_optimal_teacher_and_student_rows_are_solver_errors_at_the_reported_optimum(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    opt = read(out, "fig2_optimal_lam_t.csv")
    mixture = kdjax.Mixture(ref["alpha"], ref["delta"], ref["rho"])
    lam_t_teacher = float(opt["lam_t_teacher"][0])
    t = kdjax.solve_teacher(mixture, kdjax.Teacher("logistic", lam_t_teacher))
    assert abs(float(t.gen_error) - opt["teacher_best_error"][0]) < TOL
    kd = read(out, "fig1_kd_student.csv")
    assert opt["teacher_best_error"][0] <= kd["teacher_error"].min() + 1e-12
    for k in range(len(opt["temperature"])):
        T = float(opt["temperature"][k])
        s = student(ref, opt["lam_t_student"][k], temperature=T)
        assert abs(float(s.gen_error) - opt["student_error"][k]) < TOL
        assert abs(float(s.teacher.gen_error) - opt["teacher_error_at_lam_t_student"][k]) < TOL
        at_teacher = student(ref, lam_t_teacher, temperature=T)
        assert abs(float(at_teacher.gen_error) - opt["student_error_at_lam_t_teacher"][k]) < TOL
        # the student's optimum is no worse than its teacher's optimum or the grid at this T
        assert opt["student_error"][k] <= opt["student_error_at_lam_t_teacher"][k] + 1e-12
        assert opt["student_error"][k] <= kd["student_error"][kd["temperature"] == T].min() + 1e-12
    m = read(out, "fig4_optimal_map.csv")
    for k in range(len(m["alpha"])):
        s = student(ref, m["opt_lam_t"][k], alpha=m["alpha"][k], gamma=m["gamma"][k],
                    temperature=float(m["opt_temperature"][k]))
        assert abs(float(s.gen_error) - m["opt_student_error"][k]) < TOL
        assert abs(float(s.teacher.gen_error) - m["teacher_error_at_opt"][k]) < TOL
        t = kdjax.solve_teacher(kdjax.Mixture(float(m["alpha"][k]), ref["delta"], ref["rho"]),
                                kdjax.Teacher("logistic", float(m["lam_t_teacher"][k])))
        assert abs(float(t.gen_error) - m["teacher_best_error"][k]) < TOL
    assert np.all(m["teacher_best_error"] <= m["teacher_error_at_opt"] + 1e-12)


def test_simulations_agree_with_the_theory_within_error_bars(reproduction):
    out, _, _ = reproduction
    ref = reference(out)
    sim = read(out, "fig5_theory_vs_simulation.csv")
    assert len(sim["figure"]) == len(PLAN.sim_lam_t) + len(PLAN.sim_dd_points)
    assert set(sim["figure"]) == {1.0, 3.0}
    assert np.all(sim["n_features"] == PLAN.sim_n_features)
    assert len(set(sim["first_seed"])) == len(sim["first_seed"])  # independent seeds per point
    k = 0
    s = student(ref, sim["lam_t"][k], alpha=sim["alpha"][k], temperature=float(sim["temperature"][k]),
                hard_weight=float(sim["hard_weight"][k]), lam=float(sim["lam_s"][k]))
    assert abs(float(s.gen_error) - sim["student_error_theory"][k]) < TOL
    gap = np.abs(sim["student_error_mean"] - sim["student_error_theory"])
    # a few seeds at small N: 4 s.e.m. plus a finite-size margin
    assert np.all(gap <= 4 * sim["student_error_sem"] + 0.01), gap
    gap = np.abs(sim["teacher_error_mean"] - sim["teacher_error_theory"])
    assert np.all(gap <= 4 * sim["teacher_error_sem"] + 0.01), gap


def test_report_states_each_claim_with_numbers_from_the_csv_files(reproduction):
    out, _, _ = reproduction
    with open(os.path.join(out, "report.md")) as fh:
        text = fh.read()
    for k in range(1, 6):
        assert f"## Figure {k}" in text
    assert text.count("**Paper's claim.**") == 3 and text.count("Verdict") == 3
    ref = reference(out)
    for key in ("hard_unreg_error", "hard_best_error", "bayes_error", "student_bayes_error"):
        assert f"{ref[key]:.4f}" in text, key
    opt = read(out, "fig2_optimal_lam_t.csv")
    assert f"lam_t = {opt['lam_t_teacher'][0]:.3g}" in text
    peaks = read(out, "fig3_peaks.csv")
    assert f"{peaks['error_at_predicted'][0]:.4f}" in text
    assert "nan" not in text.lower().replace("n/a", "")
    assert "## Sanity checks" in text and "- [ ]" not in text  # every check holds


def test_progress_callback_covers_every_stage_in_order(reproduction):
    _, _, calls = reproduction
    stages = [c[0] for c in calls]
    order = ["inheritance", "limited by the teacher", "double descent", "temperature",
             "simulation", "self-distillation", "figures"]
    assert [s for k, s in enumerate(stages) if k == 0 or stages[k - 1] != s] == order
    assert all(0 <= done <= total for _, done, total in calls)
    for stage in order:  # each stage reaches its total exactly once, at its end
        ends = [k for k, c in enumerate(calls) if c[0] == stage and c[1] == c[2]]
        assert len(ends) == 1 and ends[0] == max(k for k, c in enumerate(calls) if c[0] == stage)


@pytest.mark.slow
def test_gradient_recipe_is_no_worse_than_the_grid_and_equals_a_direct_solve():
    """The default plan's (lam_t, T) search at the reference cell (quick runs use grids only)."""
    p = paper.plan(quick=False)
    solves = _common.Solves(p)
    optima = _common.Optima(p, solves)
    grid = temperature.optimal_recipe(dataclasses.replace(p, student_gradient=False), solves, optima,
                                    p.alpha, p.gamma)
    rec = temperature.optimal_recipe(p, solves, optima, p.alpha, p.gamma)
    assert rec.gradient == 1.0 and not optima.failures
    assert rec.error < grid.error
    s = kdjax.solve_student(kdjax.Mixture(p.alpha, p.delta, p.rho), kdjax.Teacher(p.loss, rec.lam_t),
                            kdjax.Student(gamma=p.gamma, temperature=rec.temperature))
    assert abs(float(s.gen_error) - rec.error) < TOL
