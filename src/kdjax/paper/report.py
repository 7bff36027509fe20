"""The reproduction's assembly: compute the five figures and the self-distillation study, check
them, write every file.

``run(out_dir, quick, progress)`` is what ``kdjax reproduce`` calls: ``compute`` runs the figure
modules in order (each figure's numbers feed the later ones), ``checks`` tests the physics of the
result, and ``write_all`` writes each figure's CSV files and PNG and ``report.md``, which is the
run's header, the figures' sections, the sanity checks and the run's bookkeeping.

Optima come from ``kdjax.optimize_kd`` / ``kdjax.best_teacher`` (gradient descent on the exact
error, implicit differentiation through both fixed points), each started from the best point of
a grid; ``--quick`` keeps only the teacher's gradient search (cheap to compile) and takes the
student's optima from the grids.  Every error written to a CSV file is re-evaluated by
``kdjax.solve_student`` at the reported parameters; NaN marks a point whose solve failed or that
has no finite minimiser (the CSV writer drops those rows and the report says so).  Costs on 2 CPU
cores: a theory solve takes 0.05-0.5 s after a one-off compilation of ~20 s per data mode; each
kind of gradient search (free parameters, objective) compiles once, 13 s for the teacher's
objective and ~35 s for the student's.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from . import double_descent, inheritance, limited_by_teacher, self_distillation, simulations, temperature
from ._common import Optima, Solves, write_csv
from ._plan import Plan, Progress, plan

__all__ = ["Results", "compute", "checks", "report", "write_all", "run", "FIGURES"]

FIGURES = (inheritance, limited_by_teacher, double_descent, temperature, simulations, self_distillation)


@dataclasses.dataclass
class Results:
    """Everything a reproduction run computed, by figure, with its cost and sanity checks."""

    plan: Plan
    inheritance: inheritance.Inheritance
    limited: limited_by_teacher.LimitedByTeacher
    double_descent: double_descent.DoubleDescent
    temperature: temperature.Temperature
    simulation: simulations.Simulations
    self_distillation: self_distillation.SelfDistillation
    timings: dict  # stage -> seconds, and "total"
    solves: Solves  # count, seconds, refused
    optima: Optima  # calls, evaluations, seconds, failures
    checks: list = dataclasses.field(default_factory=list)  # (statement, holds, numbers)


def compute(quick: bool = False, progress: Progress | None = None) -> Results:
    """All five experiments and the self-distillation study, plus the plan, timings and checks."""
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
    fig1 = timed("inheritance", inheritance.compute, p, solves, optima, progress)
    fig2 = timed("limited by the teacher", limited_by_teacher.compute, p, solves, optima, fig1,
                 progress)
    fig3 = timed("double descent", double_descent.compute, p, solves, progress)
    fig4 = timed("temperature", temperature.compute, p, solves, optima, fig1, progress)
    fig5 = timed("simulation", simulations.compute, p, solves, progress)
    fig6 = timed("self-distillation", self_distillation.compute, p, progress)
    timings["total"] = time.perf_counter() - t0
    res = Results(plan=p, inheritance=fig1, limited=fig2, double_descent=fig3, temperature=fig4,
                  simulation=fig5, self_distillation=fig6, timings=timings, solves=solves, optima=optima)
    res.checks = checks(res)
    return res


# --------------------------------------------------------------------------- sanity checks


def _finite(*arrays):
    values = np.concatenate([np.ravel(np.asarray(a, float)) for a in arrays])
    return values[np.isfinite(values)]


def _simulation_check(f5: simulations.Simulations):
    ok = np.isfinite(f5.student_mean) & np.isfinite(f5.student_theory)
    if not ok.any():
        return []
    z = np.concatenate([((f5.student_mean - f5.student_theory) / f5.student_sem)[ok],
                        ((f5.teacher_mean - f5.teacher_theory) / f5.teacher_sem)[ok]])
    gap = np.abs(f5.student_mean - f5.student_theory)[ok]
    within = gap <= 3 * f5.student_sem[ok] + 1.0 / f5.n_features
    return [("every simulated student error is within 3 s.e.m. + 1/N of the theory",
             bool(np.all(within)),
             f"{int(ok.sum())} points, max |z| = {np.max(np.abs(z)):.2f}, "
             f"chi2 = {np.sum(z ** 2):.1f} for {z.size} values (student and teacher)")]


def _self_distillation_checks(sd: self_distillation.SelfDistillation):
    out = []
    errors = _finite(sd.theory, sd.opt_errors, sd.gain_teacher, sd.gain_student)
    if errors.size:
        out.append(("every self-distillation error lies in [0, 0.5]",
                    bool(np.all((errors >= 0) & (errors <= 0.5))), f"{errors.size} values"))
    if np.isfinite(sd.opt_errors).all() and np.isfinite(sd.opt_start_errors).all():
        out.append(("the optimal self-distillation schedule is no worse than the fixed one (last generation)",
                    bool(sd.opt_errors[-1] <= sd.opt_start_errors[-1] + 1e-12),
                    f"{sd.opt_errors[-1]:.5f} vs {sd.opt_start_errors[-1]:.5f}"))
    ok = np.isfinite(sd.sim_mean) & np.isfinite(sd.theory)
    if ok.any():
        gap = np.abs(sd.sim_mean - sd.theory)[ok]
        allow = 3 * sd.sim_sem[ok] + 1.0 / np.sqrt(float(sd.n_features))
        out.append(("every simulated self-distillation error is within 3 s.e.m. + 1/sqrt(N) of the theory",
                    bool(np.all(gap <= allow)), f"{int(ok.sum())} values, largest gap {gap.max():.4f}"))
    return out


def checks(res: Results) -> list[tuple[str, bool, str]]:
    """Physical consistency of the computed data: ``(statement, holds, numbers)`` per check."""
    p, f1, f2, f3, f4 = res.plan, res.inheritance, res.limited, res.double_descent, res.temperature
    out = []
    errors = _finite(f1.student_error, f1.teacher_error, f1.hard_error, f1.noise_student_error,
                     f1.noise_teacher_error,
                     [f1.hard_unreg_error, f1.hard_best_error], f3.student_error, f3.teacher_error,
                     f4.opt_error, f4.teacher_best_error, f2.student_error_at_lam_t_student,
                     [f2.teacher_best_error])
    out.append(("every test error lies in [0, 0.5]", bool(np.all((errors >= 0) & (errors <= 0.5))),
                f"{errors.size} values in [{errors.min():.4f}, {errors.max():.4f}]"))
    bayes = float(f1.bayes_error)
    ref = _finite(f1.student_error, f1.teacher_error, f1.hard_error)
    out.append(("the Bayes-optimal error is below every figure-1 error",
                bool(np.all(ref > bayes)), f"eps_BO = {bayes:.4f} < min {ref.min():.4f}"))
    noisy_bayes = float(f1.noise_bayes_error)
    noisy = _finite(f1.noise_student_error, f1.noise_teacher_error)
    out.append((f"with label noise eta = {float(f1.noise_eta):g} the Bayes-optimal error of the noisy "
                "mixture is above the clean-label one and below every error of that panel",
                bool(bayes < noisy_bayes and np.all(noisy > noisy_bayes)),
                f"eps_BO(eta) = {noisy_bayes:.4f}, clean {bayes:.4f}, panel min {noisy.min():.4f}"))
    same = np.stack([c.student_error for c in f3.curves if not c.curve.fresh])
    margin = same - f3.student_bayes_error[None, :]
    out.append(("every same-input student of figure 3 is above the Bayes-optimal error of its "
                "gamma N coordinates", bool(np.nanmin(margin) > 0),
                f"smallest margin {np.nanmin(margin):.4f}"))
    k = int(np.nanargmin(f1.teacher_error))
    out.append(("the teacher's error is minimal at an interior lam_t",
                0 < k < f1.lam_t.size - 1,
                f"grid minimum at lam_t = {f1.lam_t[k]:.3g}; gradient optimum lam_t = "
                f"{float(f2.lam_t_teacher):.3g}"))
    gain = f1.student_error[0] - np.nanmin(f1.student_error, axis=0)
    out.append(("at every T the unregularised KD student improves when its teacher is "
                "regularised", bool(np.all(gain > 0)),
                f"gain over the least regularised teacher {np.min(gain):.4f}...{np.max(gain):.4f}"))
    alphas = f3.alpha
    pk = float(f3.curves.kd_small.peak_alpha)
    i = int(np.argmin(np.abs(alphas - p.gamma)))
    near = alphas[max(i - 1, 0):i + 2]
    out.append(("the small-lam_s KD student peaks at alpha = gamma (within one grid step)",
                bool(np.isfinite(pk) and near.min() <= pk <= near.max()),
                f"peak at alpha = {pk:.3g}, gamma = {p.gamma:g}"))
    regs = [c for c in f3.curves if c.curve.lam_s == p.dd_lam_s_reg]
    out.append(("no curve with lam_s = %g has an interior maximum" % p.dd_lam_s_reg,
                not any(c.has_peak for c in regs), f"{len(regs)} curves"))
    return out + _simulation_check(res.simulation) + _self_distillation_checks(res.self_distillation)


# --------------------------------------------------------------------------- report.md


def _header(p: Plan) -> list[str]:
    run = ("`--quick` (coarse grids; the student optima come from grids, not gradients)"
           if p.quick else "default")
    return [
        "# kdjax reproduce: knowledge distillation on a Gaussian mixture",
        "",
        "Saglietti & Zdeborova, *Solvable model for inheriting the regularization through "
        "knowledge distillation* (MSML 2022), re-derived with the exact asymptotic theory of "
        "kdjax (conventions: MODEL.md). Every number below is read from the CSV files next to "
        "this report; eps_g is the test (generalisation) error, a probability.",
        "",
        f"Run: {run}; "
        f"mixture alpha = {p.alpha:g}, Delta = {p.delta:g}, rho = {p.rho:g}; logistic teacher; "
        f"student gamma = {p.gamma:g} (it sees {p.gamma:g} N of the N coordinates). rho = 0.3 "
        "(unbalanced clusters) is used because with rho = 0.5 the teacher's error decreases "
        "monotonically in lam_t towards the Bayes-optimal error (its best lam_t is infinite), "
        "which hides the question of figure 2. Optima marked *gradient* come from "
        "`kdjax.optimize.optimize_kd` / `best_teacher` started at the best grid point.",
        "",
    ]


def _bookkeeping(res: Results, dropped: dict) -> list[str]:
    L = ["## Dropped rows and run statistics", ""]
    add = L.append
    if sum(dropped.values()):
        add("Rows with a non-finite value (a solve that did not converge, or a setting without a "
            "finite minimiser) are left out of the CSV files:")
        add("")
        for name, n in dropped.items():
            if n:
                add(f"- `{name}`: {n} row(s) dropped")
    else:
        add("No CSV row had to be dropped: every solve converged.")
    refused = res.solves.refused
    if refused:
        add(f"- {len(refused)} setting(s) were refused for having no finite minimiser, e.g.: "
            f"{refused[0][1]}")
    opt = res.optima
    add("")
    add(f"- Theory solves: {res.solves.count} in {res.solves.seconds:.0f} s; gradient "
        f"searches: {opt.calls} ({opt.evaluations} evaluations) in {opt.seconds:.0f} s "
        "(compilation included).")
    for failure in opt.failures:
        add(f"- A gradient search failed and its grid point was kept: {failure}")
    add("- Wall time by stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in res.timings.items()) + ".")
    add("")
    return L


def report(res: Results, dropped: dict) -> str:
    """The text of ``report.md``: each figure's claim and what the computed data show."""
    lines = _header(res.plan)
    for module in FIGURES:
        lines += module.section(res)
    lines += ["## Sanity checks", ""]
    lines += [f"- [{'x' if holds else ' '}] {statement} ({detail})"
              for statement, holds, detail in res.checks]
    lines += [""] + _bookkeeping(res, dropped)
    return "\n".join(lines)


# --------------------------------------------------------------------------- files


def write_all(res: Results, out_dir: str, progress: Progress | None = None) -> list[str]:
    """Write every figure, its CSV files and ``report.md``; return the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    paths, dropped = [], {}
    steps = len(FIGURES) + 1
    for n, module in enumerate(FIGURES):
        for table in module.tables(res):
            path, dropped[table.name] = write_csv(os.path.join(out_dir, table.name),
                                                         table.header, table.rows)
            paths.append(path)
        paths.append(module.plot(res, os.path.join(out_dir, module.PNG)))
        if progress is not None:
            progress("figures", n + 1, steps)
    path = os.path.join(out_dir, "report.md")
    with open(path, "w") as fh:
        fh.write(report(res, dropped))
    paths.append(path)
    if progress is not None:
        progress("figures", steps, steps)
    return paths


def run(out_dir: str, quick: bool = False, progress: Progress | None = None) -> list[str]:
    """Compute everything and write figures, CSVs and ``report.md`` into ``out_dir``.

    Returns the paths written.  ``progress(stage, done, total)`` is called as work advances.
    """
    return write_all(compute(quick, progress), str(out_dir), progress)
