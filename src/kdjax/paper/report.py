"""The assembly of a reproduction: run every figure's computation, write its plot and CSV files,
check the results and put ``report.md`` together from the figures' sections."""

from __future__ import annotations

import os
import time

import numpy as np

from . import double_descent, inheritance, limited_by_teacher, simulations, temperature
from ._common import Optima, Progress, Solves, curve_index, plan

FIGURES = (inheritance, limited_by_teacher, double_descent, temperature, simulations)


def checks(res: dict) -> list[tuple[str, bool, str]]:
    """Physical consistency of the computed data: ``(statement, holds, numbers)`` per check."""
    p = res["plan"]
    f1, f2, f3, f4, f5 = (res[k] for k in ("inheritance", "limited", "double_descent",
                                           "temperature", "simulation"))
    out = []

    def finite(*arrays):
        return np.concatenate([np.ravel(np.asarray(a, float)) for a in arrays])

    errors = finite(f1["student_error"], f1["teacher_error"], f1["hard_error"],
                    [f1["hard_unreg_error"], f1["hard_best_error"]], f3["student_error"],
                    f3["teacher_error"], f4["opt_error"], f4["teacher_best_error"],
                    f2["student_error_at_lam_t_student"], [f2["teacher_best_error"]])
    errors = errors[np.isfinite(errors)]
    out.append(("every test error lies in [0, 0.5]", bool(np.all((errors >= 0) & (errors <= 0.5))),
                f"{errors.size} values in [{errors.min():.4f}, {errors.max():.4f}]"))
    bayes = float(f1["bayes_error"])
    ref = finite(f1["student_error"], f1["teacher_error"], f1["hard_error"])
    ref = ref[np.isfinite(ref)]
    out.append(("the Bayes-optimal error is below every figure-1 error",
                bool(np.all(ref > bayes)), f"eps_BO = {bayes:.4f} < min {ref.min():.4f}"))
    same = f3["fresh"] == 0.0
    margin = f3["student_error"][same] - f3["student_bayes_error"][None, :]
    out.append(("every same-input student of figure 3 is above the Bayes-optimal error of its "
                "gamma N coordinates", bool(np.nanmin(margin) > 0),
                f"smallest margin {np.nanmin(margin):.4f}"))
    k = int(np.nanargmin(f1["teacher_error"]))
    out.append(("the teacher's error is minimal at an interior lam_t",
                0 < k < f1["lam_t"].size - 1,
                f"grid minimum at lam_t = {f1['lam_t'][k]:.3g}; gradient optimum lam_t = "
                f"{float(f2['lam_t_teacher']):.3g}"))
    gain = f1["student_error"][0] - np.nanmin(f1["student_error"], axis=0)
    out.append(("at every T the unregularised KD student improves when its teacher is "
                "regularised", bool(np.all(gain > 0)),
                f"gain over the least regularised teacher {np.min(gain):.4f}...{np.max(gain):.4f}"))
    kd = curve_index(f3, "kd_small")
    alphas = f3["alpha"]
    pk = float(f3["peak_alpha"][kd])
    i = int(np.argmin(np.abs(alphas - p.gamma)))
    near = alphas[max(i - 1, 0):i + 2]
    out.append(("the small-lam_s KD student peaks at alpha = gamma (within one grid step)",
                bool(np.isfinite(pk) and near.min() <= pk <= near.max()),
                f"peak at alpha = {pk:.3g}, gamma = {p.gamma:g}"))
    regs = [c for c, curve in enumerate(f3["curves"]) if curve["lam_s"] == p.dd_lam_s_reg]
    out.append(("no curve with lam_s = %g has an interior maximum" % p.dd_lam_s_reg,
                bool(np.all(~np.isfinite(f3["peak_alpha"][regs]))),
                f"{len(regs)} curves"))
    sim_ok = np.isfinite(f5["student_mean"]) & np.isfinite(f5["student_theory"])
    if sim_ok.any():
        z = np.concatenate([
            ((f5["student_mean"] - f5["student_theory"]) / f5["student_sem"])[sim_ok],
            ((f5["teacher_mean"] - f5["teacher_theory"]) / f5["teacher_sem"])[sim_ok]])
        allowance = 1.0 / f5["n_features"]
        gap = np.abs(f5["student_mean"] - f5["student_theory"])[sim_ok]
        within = gap <= 3 * f5["student_sem"][sim_ok] + allowance
        out.append(("every simulated student error is within 3 s.e.m. + 1/N of the theory",
                    bool(np.all(within)),
                    f"{int(sim_ok.sum())} points, max |z| = {np.max(np.abs(z)):.2f}, "
                    f"chi2 = {np.sum(z ** 2):.1f} for {z.size} values (student and teacher)"))
    return out


def compute(quick: bool = False, progress: Progress | None = None) -> dict:
    """All five experiments (dicts of numpy arrays) plus the plan, timings and checks."""
    p = plan(quick)
    solves = Solves(p)
    optima = Optima(p, solves)
    timings = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        timings[name] = time.perf_counter() - start
        return out

    t0 = time.perf_counter()
    fig1 = timed("inheritance", inheritance.inheritance, p, solves, optima, progress)
    fig2 = timed("limited by the teacher", limited_by_teacher.limited_by_teacher, p, solves, optima, fig1, progress)
    fig3 = timed("double descent", double_descent.double_descent, p, solves, progress)
    fig4 = timed("temperature", temperature.temperature_study, p, solves, optima, fig1, progress)
    fig5 = timed("simulation", simulations.simulations, p, solves, progress)
    timings["total"] = time.perf_counter() - t0
    res = {"plan": p, "inheritance": fig1, "limited": fig2, "double_descent": fig3,
           "temperature": fig4, "simulation": fig5, "timings": timings,
           "solves": {"count": solves.count, "seconds": solves.seconds,
                      "refused": list(solves.refused)},
           "optima": {"calls": optima.calls, "evaluations": optima.evaluations,
                      "seconds": optima.seconds, "failures": list(optima.failures)}}
    res["checks"] = checks(res)
    return res


def report(res, dropped: dict) -> str:
    """The text of ``report.md``: each figure's claim and what the computed data show."""
    p, t = res["plan"], res["timings"]
    f1, f2, f3, f4, f5 = (res[k] for k in ("inheritance", "limited", "double_descent",
                                           "temperature", "simulation"))
    L = []
    add = L.append
    add("# kdjax reproduce: knowledge distillation on a Gaussian mixture")
    add("")
    add("Saglietti & Zdeborova, *Solvable model for inheriting the regularization through "
        "knowledge distillation* (MSML 2022), re-derived with the exact asymptotic theory of "
        "kdjax (conventions: MODEL.md). Every number below is read from the CSV files next to "
        "this report; eps_g is the test (generalisation) error, a probability.")
    add("")
    run = ("`--quick` (coarse grids; the student optima come from grids, not gradients)"
           if p.quick else "default")
    add(f"Run: {run}; "
        f"mixture alpha = {p.alpha:g}, Delta = {p.delta:g}, rho = {p.rho:g}; logistic teacher; "
        f"student gamma = {p.gamma:g} (it sees {p.gamma:g} N of the N coordinates). rho = 0.3 "
        "(unbalanced clusters) is used because with rho = 0.5 the teacher's error decreases "
        "monotonically in lam_t towards the Bayes-optimal error (its best lam_t is infinite), "
        "which hides the question of figure 2. Optima marked *gradient* come from "
        "`kdjax.optimize_kd` / `best_teacher` started at the best grid point.")
    add("")

    for figure in FIGURES:
        L += figure.section(res)
    add("## Sanity checks")
    add("")
    for statement, holds, detail in res["checks"]:
        add(f"- [{'x' if holds else ' '}] {statement} ({detail})")
    add("")
    add("## Dropped rows and run statistics")
    add("")
    total_dropped = sum(dropped.values())
    if total_dropped:
        add("Rows with a non-finite value (a solve that did not converge, or a setting without a "
            "finite minimiser) are left out of the CSV files:")
        add("")
        for name, n in dropped.items():
            if n:
                add(f"- `{name}`: {n} row(s) dropped")
    else:
        add("No CSV row had to be dropped: every solve converged.")
    refused = res["solves"]["refused"]
    if refused:
        add(f"- {len(refused)} setting(s) were refused for having no finite minimiser, e.g.: "
            f"{refused[0][1]}")
    opt = res["optima"]
    add("")
    add(f"- Theory solves: {res['solves']['count']} in {res['solves']['seconds']:.0f} s; gradient "
        f"searches: {opt['calls']} ({opt['evaluations']} evaluations) in {opt['seconds']:.0f} s "
        "(compilation included).")
    for failure in opt["failures"]:
        add(f"- A gradient search failed and its grid point was kept: {failure}")
    add("- Wall time by stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + ".")
    add("")
    return "\n".join(L)


def write_all(res: dict, out_dir: str, progress=None) -> list[str]:
    """Write every figure, its CSV files and ``report.md``; return the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths, dropped = [], {}
    makers = tuple(figure.plot for figure in FIGURES)
    for n, make in enumerate(makers):
        ps, ds = make(res, out_dir)
        paths += ps
        dropped.update(ds)
        if progress is not None:
            progress("figures", n + 1, len(makers) + 1)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as fh:
        fh.write(report(res, dropped))
    paths.append(path)
    if progress is not None:
        progress("figures", len(makers) + 1, len(makers) + 1)
    return paths


def run(out_dir: str, quick: bool = False, progress: Progress | None = None) -> list[str]:
    """Compute everything and write figures, CSVs and ``report.md`` into ``out_dir``.

    Returns the paths written.  ``progress(stage, done, total)`` is called as work advances.
    """
    results = compute(quick, progress)
    return write_all(results, str(out_dir), progress)
