"""Figure 2, the student is limited by its teacher: best student error against teacher error, and the
``lam_t`` best for the teacher itself against the one best for its student.

``compute`` works from the figure-1 grid; ``tables``, ``plot`` and ``section`` write
``fig2_best_over_temperature.csv``, ``fig2_optimal_lam_t.csv``, ``fig2_limited_by_teacher.png``
and the report's section (with the joint optimum of figure 4 at the reference cell).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._common import (
    ALPHA,
    GAMMA,
    LAM_S,
    LAM_T,
    T_,
    Optima,
    Solves,
    Table,
    argmin,
    by,
    figure,
    fmt,
    g,
    keep_better,
    plain_log_labels,
    plain_log_ticks,
    save,
)
from ._plan import Plan, Progress, tick

__all__ = ["LimitedByTeacher", "compute", "tables", "plot", "section", "PNG"]

STAGE = "limited by the teacher"
PNG = "fig2_limited_by_teacher.png"


@dataclasses.dataclass(frozen=True)
class LimitedByTeacher:
    """The numbers of figure 2."""

    lam_t: np.ndarray  # the figure-1 teacher grid
    teacher_error: np.ndarray
    best_temperature: np.ndarray  # per lam_t: the T of the grid best for the student
    student_best_error: np.ndarray
    lam_t_teacher: float  # the teacher's own optimum
    teacher_best_error: float
    teacher_by_gradient: float
    opt_temperature: np.ndarray  # the T at which the student's optimal lam_t is sought
    lam_t_student: np.ndarray
    student_error_at_lam_t_student: np.ndarray
    teacher_error_at_lam_t_student: np.ndarray
    student_by_gradient: np.ndarray
    student_error_at_lam_t_teacher: np.ndarray
    hard_best_error: float  # the optimally regularised hard-label student of figure 1


def _teacher_optimum(p: Plan, solves, optima, lt0: float, t_err0: float, T_ref: float):
    """The teacher's own optimal ``lam_t`` from the grid's ``lt0``; with the student's optimum at
    ``T_ref`` when ``best_teacher`` found both: ``(lam_t, error, by_gradient, lam_t_student)``."""
    ref_student = None
    if p.student_gradient and np.isfinite(lt0):
        lt_t, ref_student = optima.best_teacher(lt0, T_ref)
    elif p.teacher_gradient and np.isfinite(lt0):
        values, _ = optima.optimum(("lam_t",), {"lam_t": lt0}, objective="teacher")
        lt_t = None if values is None else values["lam_t"]
    else:
        lt_t = None
    if lt_t is None:
        return lt0, t_err0, False, ref_student
    e = solves.student(lt_t, T_ref)[1]
    (lt_teacher,), t_best, t_by_grad = keep_better((lt0,), t_err0, (lt_t,), e)
    return lt_teacher, t_best, t_by_grad, ref_student


def compute(p: Plan, solves: Solves, optima: Optima, grid,
            progress: Progress | None = None) -> LimitedByTeacher:
    """Figure 2 from the figure-1 ``grid`` (an ``Inheritance``).

    The student's best error over the ``T`` grid against its teacher's error, per ``lam_t``; and
    the ``lam_t`` that minimises the teacher's own error against the one that minimises its
    student's at each ``T`` of ``p.opt_temperatures`` (``best_teacher`` at the reference
    ``T = p.dd_temperature``, ``optimize_kd(free=("lam_t",))`` at the others), each search
    started from the best point of the figure-1 grid.
    """
    lam_t, temps = grid.lam_t, grid.temperature
    opt_temps = np.asarray(p.opt_temperatures, float)
    total = 1 + opt_temps.size
    done = 0
    err = grid.student_error
    best_T = np.full(lam_t.size, np.nan)
    best_err = np.full(lam_t.size, np.nan)
    for i in range(lam_t.size):
        best_T[i], best_err[i] = argmin(temps, err[i])

    # The teacher's own optimum (its error does not depend on the student's settings) and the
    # student's at the reference temperature: best_teacher, from the teacher's grid optimum.
    lt0, t_err0 = argmin(lam_t, grid.teacher_error)
    T_ref = float(p.dd_temperature)
    lt_teacher, t_best, t_by_grad, ref_student = _teacher_optimum(p, solves, optima, lt0, t_err0,
                                                                  T_ref)
    done += 1
    tick(progress, STAGE, done, total)

    n = opt_temps.size
    lam_t_student, student_best = np.full(n, np.nan), np.full(n, np.nan)
    teacher_at, by_grad = np.full(n, np.nan), np.zeros(n)
    for k, T in enumerate(opt_temps):
        # start from the best of the figure-1 grid and the teacher's own optimum, at this T
        j = int(np.argmin(np.abs(np.log(temps / T))))
        column = (err[:, j] if np.isclose(temps[j], T) else
                  np.array([solves.student(lt, T)[0] for lt in lam_t]))
        start_lt, start_err = argmin(np.append(lam_t, lt_teacher),
                                            np.append(column, solves.student(lt_teacher, T)[0]))
        lt_k = None
        if p.student_gradient and np.isfinite(start_lt):
            if ref_student is not None and np.isclose(T, T_ref):
                lt_k = ref_student
            else:
                values, _ = optima.optimum(("lam_t",), {"lam_t": start_lt}, temperature=T)
                lt_k = None if values is None else values["lam_t"]
        e = solves.student(lt_k, T)[0] if lt_k is not None else math.nan
        (lam_t_student[k],), student_best[k], by_grad[k] = keep_better(
            (start_lt,), start_err, None if lt_k is None else (lt_k,), e)
        teacher_at[k] = solves.student(lam_t_student[k], T)[1]
        done += 1
        tick(progress, STAGE, done, total)
    return LimitedByTeacher(
        lam_t=lam_t, teacher_error=grid.teacher_error, best_temperature=best_T,
        student_best_error=best_err,
        lam_t_teacher=np.float64(lt_teacher), teacher_best_error=np.float64(t_best),
        teacher_by_gradient=np.float64(t_by_grad),
        opt_temperature=opt_temps, lam_t_student=lam_t_student,
        student_error_at_lam_t_student=student_best, teacher_error_at_lam_t_student=teacher_at,
        student_by_gradient=by_grad,
        student_error_at_lam_t_teacher=np.array(
            [solves.student(lt_teacher, T)[0] for T in opt_temps]),
        hard_best_error=grid.hard_best_error)


# --------------------------------------------------------------------------- CSV rows


def tables(res) -> list[Table]:
    """``fig2_best_over_temperature.csv`` and ``fig2_optimal_lam_t.csv``."""
    r = res.limited
    n = r.opt_temperature.size
    return [
        Table("fig2_best_over_temperature.csv",
              ["lam_t", "teacher_error", "best_temperature", "student_best_error"],
              list(zip(r.lam_t, r.teacher_error, r.best_temperature, r.student_best_error))),
        Table("fig2_optimal_lam_t.csv",
              ["temperature", "lam_t_student", "student_error", "teacher_error_at_lam_t_student",
               "student_by_gradient", "lam_t_teacher", "teacher_best_error", "teacher_by_gradient",
               "student_error_at_lam_t_teacher"],
              list(zip(r.opt_temperature, r.lam_t_student, r.student_error_at_lam_t_student,
                       r.teacher_error_at_lam_t_student, r.student_by_gradient,
                       [r.lam_t_teacher] * n, [r.teacher_best_error] * n,
                       [r.teacher_by_gradient] * n, r.student_error_at_lam_t_teacher))),
    ]


# --------------------------------------------------------------------------- plot


def _plot_best_student(fig, ax, r):
    """Left panel: the student's best error against its teacher's, one point per ``lam_t``."""
    ok = np.isfinite(r.teacher_error) & np.isfinite(r.student_best_error)
    x, y, lt = r.teacher_error[ok], r.student_best_error[ok], r.lam_t[ok]
    ax.plot(x, y, "-", color="0.6", lw=1, zorder=1)
    sc = ax.scatter(x, y, c=np.log10(lt), cmap="viridis", s=45, edgecolors="k", zorder=2)
    cb = fig.colorbar(sc, ax=ax)
    cb.set_label(r"teacher's regularisation $\log_{10}\lambda_t$")
    if x.size:
        k = int(np.argmin(x))
        ax.scatter([x[k]], [y[k]], s=180, facecolors="none", edgecolors="tab:red", lw=2,
                   label=f"best teacher of the grid ({LAM_T}={lt[k]:.3g})", zorder=3)
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], ":", color="0.3",
                label=r"$\epsilon_g^{\rm student}=\epsilon_g^{\rm teacher}$")
    if np.isfinite(r.hard_best_error):
        ax.axhline(r.hard_best_error, color="tab:red", ls="-.", lw=1.5,
                   label=f"hard labels, optimal {LAM_S}")
    ax.set_xlabel(r"teacher's test error $\epsilon_g^{\rm teacher}$")
    ax.set_ylabel(r"student's best error over the $T$ grid, $\min_T\epsilon_g^{\rm student}$")
    ax.set_title("Student limited by its teacher\n(one point per teacher " + LAM_T +
                 r"; student $\lambda_s=0$, $a=0$)", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)


def _plot_optimal_lam_t(ax, r, f4, p: Plan):
    """Right panel: the ``lam_t`` best for the student at each ``T`` vs the teacher's own."""
    temps = r.opt_temperature
    ok = np.isfinite(r.lam_t_student)
    grad = ok & (r.student_by_gradient > 0)
    ax.plot(temps[ok], r.lam_t_student[ok], "-", color="tab:blue", lw=1.5)
    if grad.any():
        ax.plot(temps[grad], r.lam_t_student[grad], "o", color="tab:blue", ms=7,
                label=f"{LAM_T} best for the student at fixed {T_} (gradient)")
    grid_only = ok & ~grad
    if grid_only.any():
        ax.plot(temps[grid_only], r.lam_t_student[grid_only], "o", mfc="white",
                color="tab:blue", ms=7, label=f"{LAM_T} best for the student at fixed {T_} (grid)")
    how = "gradient" if float(r.teacher_by_gradient) else "grid"
    ax.axhline(r.lam_t_teacher, color="k", ls="--",
               label=f"{LAM_T} best for the teacher itself ({g(float(r.lam_t_teacher))}, {how})")
    vals = list(r.lam_t_student[ok]) + [float(r.lam_t_teacher)]
    cell = f4.reference_cell(p)
    if cell is not None and np.isfinite(f4.opt_lam_t[cell]):
        lj, Tj = float(f4.opt_lam_t[cell]), float(f4.opt_temperature[cell])
        how = "gradient" if f4.opt_by_gradient[cell] else "grid"
        ax.plot([Tj], [lj], "*", color="tab:orange", mec="k", ms=15, zorder=4,
                label=f"best ({LAM_T}, {T_}) for the student jointly ({how})")
        vals.append(lj)
        temps = np.append(temps, Tj)
    ax.set_xscale("log")
    ax.set_yscale("log")
    vals = np.asarray(vals, float)
    vals = vals[np.isfinite(vals)]
    if vals.size:
        ax.set_ylim(vals.min() / 1.6, vals.max() * 2.2)
    plain_log_labels(ax.yaxis)
    ax.set_xlim(temps.min() / 1.5, temps.max() * 1.5)
    plain_log_ticks(ax.xaxis, temps.min() / 1.5, temps.max() * 1.5)
    ax.set_xlabel(f"temperature {T_}")
    ax.set_ylabel(f"optimal teacher regularisation {LAM_T}")
    ax.set_title("Which teacher is best: for itself or for its student?\n"
                 f"({ALPHA}={p.alpha:g}, {GAMMA}={p.gamma:g})", fontsize=11)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, which="both")


def plot(res, path: str) -> str:
    """``fig2_limited_by_teacher.png``: the two panels side by side."""
    fig, axes = figure(2, size=(6.0, 4.9))
    _plot_best_student(fig, axes[0, 0], res.limited)
    _plot_optimal_lam_t(axes[0, 1], res.limited, res.temperature, res.plan)
    return save(fig, path)


# --------------------------------------------------------------------------- report section


def _spearman(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    rx = np.argsort(np.argsort(x[ok])).astype(float)
    ry = np.argsort(np.argsort(y[ok])).astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


def section(res) -> list[str]:
    """The report's figure-2 section: the claim, the numbers, the verdict."""
    p, f2, f4 = res.plan, res.limited, res.temperature
    L = ["## Figure 2 - the student is limited by its teacher (`fig2_limited_by_teacher.png`)", ""]
    add = L.append
    add("**Paper's claim.** The student's performance is closely linked to and limited by the "
        "optimality of its teacher: the better the teacher, the better the best student.")
    add("")
    te, sb = f2.teacher_error, f2.student_best_error
    rho_s = _spearman(te, sb)
    ok = np.isfinite(te) & np.isfinite(sb)
    k_t = int(np.nanargmin(np.where(ok, te, np.nan)))
    k_s = int(np.nanargmin(np.where(ok, sb, np.nan)))
    add("**kdjax finds** (`fig2_best_over_temperature.csv`, `fig2_optimal_lam_t.csv`):")
    add("")
    add(f"- Over {int(ok.sum())} teachers (lam_t = {f2.lam_t[0]:.3g}..{f2.lam_t[-1]:.3g}, "
        f"teacher errors {fmt(float(np.nanmin(te)))}..{fmt(float(np.nanmax(te)))}), the Spearman "
        f"rank correlation between the teacher's error and its student's best error over the T "
        f"grid is {g(rho_s, 3)}.")
    add(f"- The best teacher of the grid (lam_t = {f2.lam_t[k_t]:.3g}, eps_t = "
        f"{fmt(float(te[k_t]))}) gives a student eps_g = {fmt(float(sb[k_t]))}; the best student "
        f"of the grid (eps_g = {fmt(float(sb[k_s]))}) has the teacher lam_t = "
        f"{f2.lam_t[k_s]:.3g} (eps_t = {fmt(float(te[k_s]))}).")
    below = ok & (sb < te)
    add(f"- The best student beats its own teacher for {int(below.sum())} of {int(ok.sum())} "
        "teachers" + (f" (lam_t in {{{', '.join(f'{x:.3g}' for x in f2.lam_t[below])}}}: "
                      "over-regularised teachers only)." if below.any() else "."))
    add(f"- The teacher's own optimum is lam_t = {g(float(f2.lam_t_teacher))} "
        f"({by(f2.teacher_by_gradient)}, eps_t = {fmt(float(f2.teacher_best_error))}). "
        "The lam_t that minimises the student's error, at fixed T:")
    add("")
    add("  | T | lam_t best for the student | found by | student eps_g there | student eps_g at "
        "the teacher's optimum | teacher eps_g at the student's lam_t |")
    add("  | --- | --- | --- | --- | --- | --- |")
    for k, T in enumerate(f2.opt_temperature):
        add(f"  | {T:g} | {g(float(f2.lam_t_student[k]))} | "
            f"{by(f2.student_by_gradient[k])} | "
            f"{fmt(float(f2.student_error_at_lam_t_student[k]))} | "
            f"{fmt(float(f2.student_error_at_lam_t_teacher[k]))} | "
            f"{fmt(float(f2.teacher_error_at_lam_t_student[k]))} |")
    add("")
    ratios = f2.lam_t_student / float(f2.lam_t_teacher)
    cost = f2.student_error_at_lam_t_teacher - f2.student_error_at_lam_t_student
    if np.isfinite(ratios).any():
        add(f"- lam_t(student) / lam_t(teacher) = {g(np.nanmin(ratios))}...{g(np.nanmax(ratios))}: "
            f"the student asks for a {'more' if np.nanmin(ratios) > 1 else 'differently'} regularised "
            f"teacher than the one best on its own, but distilling from the teacher's own optimum "
            f"costs the student only {fmt(np.nanmin(cost), 5)}...{fmt(np.nanmax(cost), 5)} in "
            f"test error (the most at T = {f2.opt_temperature[int(np.nanargmax(cost))]:g}).")
    cell = f4.reference_cell(p)
    if cell is not None:
        add(f"- Jointly over (lam_t, T) ({by(f4.opt_by_gradient[cell])}): lam_t* = "
            f"{g(float(f4.opt_lam_t[cell]))}, T* = {g(float(f4.opt_temperature[cell]))}, "
            f"student eps_g = {fmt(float(f4.opt_error[cell]))}, its teacher's eps_t = "
            f"{fmt(float(f4.teacher_error_at_opt[cell]))}.")
    add(f"- Verdict: **reproduced**. The best student follows the quality of its teacher (rank "
        f"correlation {g(rho_s, 2)}) and is optimal behind a near-optimal teacher.")
    add("")
    return L
