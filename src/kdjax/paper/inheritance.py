"""Figure 1, inheriting the regularisation: the unregularised KD student against its teacher's ridge.

``compute`` solves the grid ``lam_t x T`` (student ``a = 0``, ``lam_s = 0``), the hard-label student
and the Bayes-optimal errors, and (right panel) the teacher and one KD student over ``lam_t`` with
label noise ``Plan.noise_eta``, whose Bayes-optimal baseline is ``kdjax.bayes_optimal_error`` of
that noisy mixture; ``tables``, ``plot`` and ``section`` turn them (with the teacher's optimum of
figure 2 and the simulations of figure 5) into CSV rows, ``fig1_inheritance.png`` and the report's
section.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

import kdjax

from ._common import (
    ALPHA,
    EPS,
    GAMMA,
    LAM_S,
    LAM_T,
    SIM_LABEL,
    Optima,
    Solves,
    Table,
    argmin,
    by,
    colors,
    figure,
    fmt,
    g,
    keep_better,
    mixture,
    save,
    student_bayes_error,
)
from ._plan import Plan, Progress, tick

__all__ = ["Inheritance", "compute", "hard_teacher_lam", "tables", "plot", "section", "PNG"]

STAGE = "inheritance"
PNG = "fig1_inheritance.png"


@dataclasses.dataclass(frozen=True)
class Inheritance:
    """The numbers of figure 1 (NaN: a solve that failed or has no finite minimiser)."""

    lam_t: np.ndarray  # teacher ridge grid
    temperature: np.ndarray  # temperature grid
    student_error: np.ndarray  # (lam_t, temperature)
    teacher_error: np.ndarray  # per lam_t
    lam_s: np.ndarray  # the hard-label student's ridge scan
    hard_error: np.ndarray  # per lam_s
    hard_teacher_lam_t: float
    hard_lam_s0: float  # the "unregularised" hard-label student's lam_s (0, or tiny if separable)
    hard_unreg_error: float
    hard_best_lam_s: float
    hard_best_error: float
    hard_best_by_gradient: float
    bayes_error: float  # of the full input
    student_bayes_error: float  # of the student's gamma N coordinates
    hard_separability_alpha: float
    # right panel: training labels flipped with probability noise_eta
    noise_eta: float
    noise_temperature: float
    noise_student_error: np.ndarray  # per lam_t, the KD student at noise_temperature
    noise_teacher_error: np.ndarray  # per lam_t
    noise_bayes_error: float  # bayes_optimal_error of the noisy mixture (full input)
    noise_student_bayes_error: float  # ... of the student's gamma N coordinates, same noise


def hard_teacher_lam(p: Plan) -> float:
    """The teacher ``lam_t`` passed along with a hard-label student (which ignores it)."""
    return float(p.dd_lam_t)


def compute(p: Plan, solves: Solves, optima: Optima,
            progress: Progress | None = None) -> Inheritance:
    """Figure 1: the unregularised KD student against the teacher's ridge ``lam_t``.

    The grid ``lam_t x T`` of student errors (``a = 0``, ``lam_s = 0``), the teacher's error per
    ``lam_t``, the hard-label student (``a = 1``: independent of the teacher) at ``lam_s = 0``
    and over a ``lam_s`` scan whose best point starts a gradient search, and the Bayes-optimal
    errors of the full input and of the student's ``gamma N`` coordinates.  Then the same teacher
    and the KD student at ``T = noise_temperature`` with label noise ``noise_eta``, and the
    Bayes-optimal errors of that noisy mixture (the label noise of the solves' mixture).
    """
    lam_t, temps, lam_s = np.asarray(p.lam_t), np.asarray(p.temperatures), np.asarray(p.lam_s_grid)
    total = lam_t.size * temps.size + 1 + lam_s.size + 1 + lam_t.size
    student = np.full((lam_t.size, temps.size), np.nan)
    teacher = np.full(lam_t.size, np.nan)
    done = 0
    for i, lt in enumerate(lam_t):
        for j, T in enumerate(temps):
            student[i, j], eps_t = solves.student(lt, T)
            if np.isfinite(eps_t):
                teacher[i] = eps_t
            done += 1
            tick(progress, STAGE, done, total)

    lt_hard = hard_teacher_lam(p)
    hard = lambda x: solves.student(lt_hard, 1.0, 1.0, x)[0]
    # Unregularised hard-label student: lam_s = 0 when its data are not separable, else tiny lam_s.
    star = p.gamma * float(kdjax.separability_threshold(p.delta / p.gamma, p.rho))
    hard_lam_s0 = 0.0 if p.alpha > star else p.dd_lam_s_small
    hard_unreg = hard(hard_lam_s0)
    hard_scan = np.array([hard(x) for x in lam_s])
    done += 1 + lam_s.size
    tick(progress, STAGE, done, total)
    best_lam_s, hard_best = argmin(lam_s, hard_scan)
    by_gradient = False
    if p.student_gradient and np.isfinite(hard_best):
        values, _ = optima.optimum(("lam_s",), {"lam_s": best_lam_s}, lam_t=lt_hard,
                                   temperature=1.0, hard_weight=1.0)
        err = hard(values["lam_s"]) if values is not None else math.nan
        values, hard_best, by_gradient = keep_better({"lam_s": best_lam_s}, hard_best,
                                                            values, err)
        best_lam_s = values["lam_s"]
    done += 1
    tick(progress, STAGE, done, total)

    noisy = mixture(p, label_noise=p.noise_eta)
    noise_student = np.full(lam_t.size, np.nan)
    noise_teacher = np.full(lam_t.size, np.nan)
    for i, lt in enumerate(lam_t):
        noise_student[i], noise_teacher[i] = solves.student(
            lt, p.noise_temperature, label_noise=noisy.label_noise)
        done += 1
        tick(progress, STAGE, done, total)  # the last one reaches total
    return Inheritance(
        lam_t=lam_t, temperature=temps, student_error=student, teacher_error=teacher,
        lam_s=lam_s, hard_error=hard_scan, hard_teacher_lam_t=np.float64(lt_hard),
        hard_lam_s0=np.float64(hard_lam_s0), hard_unreg_error=np.float64(hard_unreg),
        hard_best_lam_s=np.float64(best_lam_s), hard_best_error=np.float64(hard_best),
        hard_best_by_gradient=np.float64(by_gradient),
        bayes_error=np.float64(float(kdjax.bayes_optimal_error(mixture(p)))),
        student_bayes_error=np.float64(student_bayes_error(p, p.alpha)),
        hard_separability_alpha=np.float64(star),
        noise_eta=np.float64(noisy.label_noise), noise_temperature=np.float64(p.noise_temperature),
        noise_student_error=noise_student, noise_teacher_error=noise_teacher,
        noise_bayes_error=np.float64(float(kdjax.bayes_optimal_error(noisy))),
        noise_student_bayes_error=np.float64(student_bayes_error(p, p.alpha, noisy.label_noise)))


# --------------------------------------------------------------------------- CSV rows


def tables(res) -> list[Table]:
    """``fig1_kd_student.csv``, ``fig1_hard_student.csv``, ``fig1_reference.csv``,
    ``fig1_label_noise.csv`` (the right panel, with its Bayes-optimal errors on every row) and
    ``fig1_simulation.csv`` (the figure-1 points of the simulations)."""
    r, p, sim = res.inheritance, res.plan, res.simulation
    kd = [(lt, T, r.student_error[i, j], r.teacher_error[i])
          for i, lt in enumerate(r.lam_t) for j, T in enumerate(r.temperature)]
    hard = [(r.hard_lam_s0, r.hard_unreg_error)] + list(zip(r.lam_s, r.hard_error))
    hard.append((r.hard_best_lam_s, r.hard_best_error))
    hard = sorted(set((float(a), float(b)) for a, b in hard))
    reference = [(p.alpha, p.delta, p.rho, p.gamma, r.bayes_error, r.student_bayes_error,
                  r.hard_teacher_lam_t, r.hard_lam_s0, r.hard_unreg_error, r.hard_best_lam_s,
                  r.hard_best_error, r.hard_best_by_gradient)]
    noise = [(lt, r.noise_temperature, r.noise_eta, r.noise_student_error[i],
              r.noise_teacher_error[i], r.noise_bayes_error, r.noise_student_bayes_error,
              r.bayes_error) for i, lt in enumerate(r.lam_t)]
    s = sim.select(1.0)
    sim_rows = [(s.lam_t[k], s.temperature[k], sim.n_features, s.seeds[k], s.first_seed[k],
                 s.student_mean[k], s.student_sem[k], s.teacher_mean[k], s.teacher_sem[k],
                 s.student_theory[k], s.teacher_theory[k]) for k in range(s.lam_t.size)]
    return [
        Table("fig1_kd_student.csv", ["lam_t", "temperature", "student_error", "teacher_error"], kd),
        Table("fig1_hard_student.csv", ["lam_s", "hard_student_error"], hard),
        Table("fig1_reference.csv",
              ["alpha", "delta", "rho", "gamma", "bayes_error", "student_bayes_error",
               "hard_teacher_lam_t", "hard_lam_s0", "hard_unreg_error", "hard_best_lam_s",
               "hard_best_error", "hard_best_by_gradient"], reference),
        Table("fig1_label_noise.csv",
              ["lam_t", "temperature", "label_noise", "student_error", "teacher_error",
               "bayes_error", "student_bayes_error", "clean_bayes_error"], noise),
        Table("fig1_simulation.csv",
              ["lam_t", "temperature", "n_features", "seeds", "first_seed", "student_error_mean",
               "student_error_sem", "teacher_error_mean", "teacher_error_sem",
               "student_error_theory", "teacher_error_theory"], sim_rows),
    ]


# --------------------------------------------------------------------------- plot


def plot(res, path: str) -> str:
    """``fig1_inheritance.png``: error against ``lam_t``, one curve per ``T``, with references
    (left); the teacher and a KD student with label noise, with its Bayes-optimal error (right)."""
    r, p, f2 = res.inheritance, res.plan, res.limited
    s = res.simulation.select(1.0)
    fig, axes = figure(ncols=2, size=(7.6, 5.6))
    ax = axes[0, 0]
    temps = r.temperature
    palette = colors(temps.size)
    for j, (T, c) in enumerate(zip(temps, palette)):
        ax.plot(r.lam_t, r.student_error[:, j], "-", color=c, lw=1.8,
                label=f"KD student, $T={T:g}$")
    ax.plot(r.lam_t, r.teacher_error, "k--", lw=2.0, label="teacher")
    if np.isfinite(f2.lam_t_teacher):
        ax.plot([f2.lam_t_teacher], [f2.teacher_best_error], "*", color="k", ms=11,
                label=f"teacher's optimum, {LAM_T}={g(float(f2.lam_t_teacher))}")
    ax.axhline(r.hard_unreg_error, color="tab:red", ls=":", lw=2.0,
               label=f"hard labels ($a=1$), {LAM_S}$={g(float(r.hard_lam_s0))}$")
    ax.axhline(r.hard_best_error, color="tab:red", ls="-.", lw=1.8,
               label=f"hard labels, optimal {LAM_S}$={g(float(r.hard_best_lam_s))}$")
    ax.axhline(r.student_bayes_error, color="0.45", ls=(0, (5, 2, 1, 2)), lw=1.4,
               label=f"Bayes-optimal on the student's {GAMMA}N inputs")
    ax.axhline(r.bayes_error, color="0.45", ls="-", lw=1.4, label="Bayes-optimal")
    ok = np.isfinite(s.student_mean)
    if ok.any():
        k = int(np.argmin(np.abs(np.log(temps / p.sim_temperature))))
        ax.errorbar(s.lam_t[ok], s.student_mean[ok], yerr=s.student_sem[ok], fmt="o",
                    color=palette[k], mec="k", ms=6, capsize=3, zorder=5,
                    label=f"student $T={p.sim_temperature:g}$, " + SIM_LABEL.format(n=p.sim_n_features))
        ax.errorbar(s.lam_t[ok], s.teacher_mean[ok], yerr=s.teacher_sem[ok], fmt="s",
                    color="k", mfc="white", ms=6, capsize=3, zorder=5,
                    label="teacher, " + SIM_LABEL.format(n=p.sim_n_features))
    ax.set_xscale("log")
    ax.set_xlabel(f"teacher's regularisation {LAM_T}")
    ax.set_ylabel(f"test error {EPS}")
    ax.set_title(f"Inheriting the regularisation: KD student {GAMMA}={p.gamma:g}, "
                 f"$\\lambda_s=0$, $a=0$\n({ALPHA}={p.alpha:g}, $\\Delta$={p.delta:g}, "
                 f"$\\rho$={p.rho:g}, logistic teacher)", fontsize=11)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.grid(alpha=0.3, which="both")
    _plot_noise(axes[0, 1], r, p, palette[int(np.argmin(np.abs(np.log(temps / r.noise_temperature))))])
    return save(fig, path)


def _plot_noise(ax, r: Inheritance, p: Plan, color) -> None:
    """The right panel: teacher and KD student with label noise, against the noisy Bayes error."""
    eta, T = float(r.noise_eta), float(r.noise_temperature)
    ax.plot(r.lam_t, r.noise_student_error, "-", color=color, lw=1.8,
            label=f"KD student, $T={T:g}$")
    ax.plot(r.lam_t, r.noise_teacher_error, "k--", lw=2.0, label="teacher")
    ax.plot(r.lam_t, r.teacher_error, "--", color="0.6", lw=1.2, label="teacher, clean labels")
    ax.axhline(r.noise_student_bayes_error, color="0.45", ls=(0, (5, 2, 1, 2)), lw=1.4,
               label=f"Bayes-optimal on the student's {GAMMA}N inputs")
    ax.axhline(r.noise_bayes_error, color="0.45", ls="-", lw=1.4, label="Bayes-optimal")
    ax.axhline(r.bayes_error, color="0.6", ls=":", lw=1.2, label="Bayes-optimal, clean labels")
    ax.set_xscale("log")
    ax.set_xlabel(f"teacher's regularisation {LAM_T}")
    ax.set_ylabel(f"test error {EPS} (against the clean label)")
    ax.set_title(f"With label noise: training labels flipped with probability $\\eta$={eta:g}\n"
                 f"(KD student {GAMMA}={p.gamma:g}, $\\lambda_s=0$, $a=0$; same mixture)",
                 fontsize=11)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.grid(alpha=0.3, which="both")


# --------------------------------------------------------------------------- report section


def section(res) -> list[str]:
    """The report's figure-1 section: the claim, the numbers, the verdict."""
    f1, f2 = res.inheritance, res.limited
    kd = f1.student_error
    temps, lam_t = f1.temperature, f1.lam_t
    i_best, j_best = np.unravel_index(np.nanargmin(kd), kd.shape)
    kd_best = float(kd[i_best, j_best])
    hu, hb = float(f1.hard_unreg_error), float(f1.hard_best_error)
    t_err = f1.teacher_error
    it = int(np.nanargmin(t_err))
    L = ["## Figure 1 - inheriting the regularisation (`fig1_inheritance.png`)", ""]
    add = L.append
    add("**Paper's claim.** A student trained on the soft labels of a regularised teacher inherits "
        "the teacher's regularisation: with no regularisation of its own it generalises better "
        "than the same student trained on the hard labels without regularisation, the more so the "
        "better regularised the teacher.")
    add("")
    add("**kdjax finds** (KD student: a = 0, lam_s = 0; data `fig1_kd_student.csv`, "
        "`fig1_hard_student.csv`, `fig1_reference.csv`):")
    add("")
    add(f"- Hard-label student (a = 1): unregularised (lam_s = {g(float(f1.hard_lam_s0))}) "
        f"eps_g = {fmt(hu)}; optimally regularised (lam_s* = {g(float(f1.hard_best_lam_s))}, "
        f"{by(f1.hard_best_by_gradient)}) eps_g = {fmt(hb)}.")
    add("- The KD student's error falls as its teacher is regularised, at every temperature:")
    add("")
    add(f"  | T | eps_g, teacher lam_t = {lam_t[0]:.3g} | best eps_g over lam_t | at lam_t |")
    add("  | --- | --- | --- | --- |")
    for j, T in enumerate(temps):
        col = kd[:, j]
        if np.isfinite(col).any():
            k = int(np.nanargmin(col))
            add(f"  | {T:g} | {fmt(float(col[0]))} | {fmt(float(col[k]))} | {lam_t[k]:.3g} |")
    add("")
    gap = "beyond it" if kd_best < hb else f"{fmt(kd_best - hb)} short of it"
    share = (f", i.e. {100 * (hu - kd_best) / (hu - hb):.0f}% of the way from the unregularised to "
             f"the optimally regularised hard-label student ({gap})." if hu > hb else ".")
    add(f"- Best KD student of the grid: eps_g = {fmt(kd_best)} (teacher lam_t = "
        f"{lam_t[i_best]:.3g}, T = {temps[j_best]:g}), {fmt(hu - kd_best)} below the unregularised "
        f"hard-label student{share}")
    add(f"- Teacher: minimal error {fmt(float(t_err[it]))} on the grid at lam_t = "
        f"{lam_t[it]:.3g}; optimum lam_t = {g(float(f2.lam_t_teacher))} "
        f"({by(f2.teacher_by_gradient)}), eps_g = {fmt(float(f2.teacher_best_error))}. "
        f"Bayes-optimal error {fmt(float(f1.bayes_error))} on the full input, "
        f"{fmt(float(f1.student_bayes_error))} with the student's gamma N coordinates only "
        "(a lower bound for every student here).")
    ns, nt = f1.noise_student_error, f1.noise_teacher_error
    if np.isfinite(ns).any() and np.isfinite(nt).any():
        i_s, i_t = int(np.nanargmin(ns)), int(np.nanargmin(nt))
        add(f"- With label noise (right panel, `fig1_label_noise.csv`: training labels flipped with "
            f"probability eta = {float(f1.noise_eta):g}, errors against the clean label): "
            f"Bayes-optimal error {fmt(float(f1.noise_bayes_error))} on the full input "
            f"(clean labels: {fmt(float(f1.bayes_error))}), "
            f"{fmt(float(f1.noise_student_bayes_error))} with the student's gamma N coordinates; "
            f"the teacher's best error {fmt(float(nt[i_t]))} at lam_t = {lam_t[i_t]:.3g}, the KD "
            f"student's (T = {float(f1.noise_temperature):g}) {fmt(float(ns[i_s]))} at lam_t = "
            f"{lam_t[i_s]:.3g}.")
    last = kd[-1][np.isfinite(kd[-1])]
    if last.size and np.isfinite(t_err[-1]):
        add(f"- Inheritance works both ways: behind the most regularised teacher (lam_t = "
            f"{lam_t[-1]:.3g}, eps_t = {fmt(float(t_err[-1]))}) the student errs "
            f"{fmt(float(last.min()))}...{fmt(float(last.max()))}.")
    add(f"- Verdict: **reproduced**. The unregularised KD student inherits its teacher's "
        f"regularisation; here it does {'not ' if kd_best >= hb else ''}reach the optimally "
        "regularised hard-label student.")
    add("")
    return L
