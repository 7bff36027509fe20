"""Figure 5, theory vs simulation: finite-``N`` experiments at points of figures 1 and 3.

``compute`` runs ``kdjax.simulate_student`` at each point next to the exact theory; ``tables``,
``plot`` and ``section`` write ``fig5_theory_vs_simulation.csv``,
``fig5_theory_vs_simulation.png`` and the report's section.  Figures 1 and 3 overlay their own
points (``Simulations.select``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

import kdjax

from ._common import EPS, Solves, Table, figure, fmt, g, save
from ._plan import Plan, Progress, tick

__all__ = ["Points", "Simulations", "compute", "tables", "plot", "section", "PNG"]

STAGE = "simulation"
PNG = "fig5_theory_vs_simulation.png"
FIGURE_1, FIGURE_3 = 1.0, 3.0  # the ``figure`` a point belongs to


@dataclasses.dataclass(frozen=True)
class Points:
    """One entry per simulated point (arrays of equal length)."""

    figure: np.ndarray  # FIGURE_1 or FIGURE_3
    alpha: np.ndarray
    lam_t: np.ndarray
    temperature: np.ndarray
    hard_weight: np.ndarray
    lam_s: np.ndarray
    first_seed: np.ndarray
    student_mean: np.ndarray  # over the converged seeds
    student_sem: np.ndarray
    teacher_mean: np.ndarray
    teacher_sem: np.ndarray
    seeds: np.ndarray  # converged seeds
    student_theory: np.ndarray
    teacher_theory: np.ndarray


@dataclasses.dataclass(frozen=True)
class Simulations(Points):
    """The simulated points, their dimension ``N`` and seeds per point."""

    n_features: float = math.nan
    n_seeds: float = math.nan

    def select(self, figure: float) -> Points:
        """The points of one figure (``FIGURE_1`` or ``FIGURE_3``)."""
        sel = self.figure == figure
        return Points(**{f.name: getattr(self, f.name)[sel] for f in dataclasses.fields(Points)})


def _simulate(p: Plan, alpha, lam_t, temperature, hard_weight, lam_s, seeds) -> dict:
    """Mean and s.e.m. over converged seeds of the finite-N student and teacher errors."""
    sim = kdjax.simulate_student(
        kdjax.Mixture(float(alpha), p.delta, p.rho), kdjax.Teacher(p.loss, float(lam_t)),
        kdjax.Student(gamma=p.gamma, temperature=float(temperature),
                      hard_weight=float(hard_weight), lam=float(lam_s)),
        n_features=p.sim_n_features, seeds=seeds)
    ok = int(np.sum(np.asarray(sim.converged, bool)))
    nan = dict(student_mean=math.nan, student_sem=math.nan, teacher_mean=math.nan,
               teacher_sem=math.nan, seeds=ok)
    if ok < 2:
        return nan
    mean, sem = sim.mean(failed="drop"), sim.sem(failed="drop")
    return dict(student_mean=float(mean.gen_error), student_sem=float(sem.gen_error),
                teacher_mean=float(mean.teacher.gen_error), teacher_sem=float(sem.teacher.gen_error),
                seeds=ok)


def compute(p: Plan, solves: Solves, progress: Progress | None = None) -> Simulations:
    """Figure 5: finite-``N`` experiments at the points of figures 1 and 3, with the theory.

    Figure 1 points: ``lam_t`` in ``p.sim_lam_t`` at ``T = p.sim_temperature`` (``a = 0``,
    ``lam_s = 0``).  Figure 3 points: ``p.sim_dd_points`` (same inputs, the figure's teacher).
    Point ``k`` uses seeds ``k S .. (k + 1) S - 1`` (``S = p.sim_seeds``), so the points are
    statistically independent.  The error is the docs/model.md formula at each seed's overlaps,
    averaged over the converged seeds (``seeds`` counts them).
    """
    points = [(FIGURE_1, p.alpha, lt, p.sim_temperature, 0.0, 0.0) for lt in p.sim_lam_t]
    points += [(FIGURE_3, a, p.dd_lam_t, p.dd_temperature, hw, ls) for a, hw, ls in p.sim_dd_points]
    rows = {f.name: [] for f in dataclasses.fields(Points)}
    S = p.sim_seeds
    for n, (fig, alpha, lt, T, hw, ls) in enumerate(points):
        sim = _simulate(p, alpha, lt, T, hw, ls, list(range(n * S, (n + 1) * S)))
        eps_s, eps_t = solves.student(lt, T, hw, ls, alpha=alpha)
        for k, v in dict(figure=fig, alpha=alpha, lam_t=lt, temperature=T, hard_weight=hw,
                         lam_s=ls, first_seed=n * S, student_theory=eps_s, teacher_theory=eps_t,
                         **sim).items():
            rows[k].append(float(v))
        tick(progress, STAGE, n + 1, len(points))
    return Simulations(**{k: np.asarray(v) for k, v in rows.items()},
                       n_features=np.float64(p.sim_n_features), n_seeds=np.float64(p.sim_seeds))


def z_scores(mean, theory, sem):
    """``(mean - theory) / sem`` (NaN or inf where undefined, without warnings)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.asarray(mean) - np.asarray(theory)) / np.asarray(sem)


# --------------------------------------------------------------------------- CSV rows


def tables(res) -> list[Table]:
    """``fig5_theory_vs_simulation.csv``: every point, theory next to simulation."""
    s = res.simulation
    header = ["figure", "alpha", "lam_t", "temperature", "hard_weight", "lam_s", "n_features",
              "seeds", "first_seed", "student_error_theory", "student_error_mean",
              "student_error_sem", "teacher_error_theory", "teacher_error_mean", "teacher_error_sem"]
    rows = [(s.figure[k], s.alpha[k], s.lam_t[k], s.temperature[k], s.hard_weight[k],
             s.lam_s[k], s.n_features, s.seeds[k], s.first_seed[k],
             s.student_theory[k], s.student_mean[k], s.student_sem[k],
             s.teacher_theory[k], s.teacher_mean[k], s.teacher_sem[k])
            for k in range(s.figure.size)]
    return [Table("fig5_theory_vs_simulation.csv", header, rows)]


# --------------------------------------------------------------------------- plot


def plot(res, path: str) -> str:
    """``fig5_theory_vs_simulation.png``: simulation against theory, one marker per figure."""
    s, p = res.simulation, res.plan
    fig, axes = figure(size=(6.0, 5.4))
    ax = axes[0, 0]
    ok = np.isfinite(s.student_mean) & np.isfinite(s.student_theory)
    for fig_id, marker, label in ((FIGURE_1, "o", "student, points of figure 1"),
                                  (FIGURE_3, "D", "student, points of figure 3")):
        sel = ok & (s.figure == fig_id)
        if sel.any():
            ax.errorbar(s.student_theory[sel], s.student_mean[sel], yerr=s.student_sem[sel],
                        fmt=marker, ms=6, capsize=3, mec="k", label=label)
    sel = np.isfinite(s.teacher_mean) & np.isfinite(s.teacher_theory)
    if sel.any():
        ax.errorbar(s.teacher_theory[sel], s.teacher_mean[sel], yerr=s.teacher_sem[sel],
                    fmt="s", ms=6, capsize=3, mfc="white", color="k", label="teacher")
    vals = np.concatenate([s.student_theory[ok], s.teacher_theory[sel]])
    if vals.size:
        lo, hi = vals.min() - 0.01, vals.max() + 0.01
        ax.plot([lo, hi], [lo, hi], "k:", lw=1, label="theory = simulation")
    ax.set_xlabel(f"exact asymptotic theory {EPS} ($N\\to\\infty$)")
    ax.set_ylabel(f"simulation {EPS} (N={p.sim_n_features}, mean $\\pm$ s.e.m.)")
    ax.set_title(f"Theory vs simulation ({p.sim_seeds} independent seeds per point)", fontsize=11)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return save(fig, path)


# --------------------------------------------------------------------------- report section


def section(res) -> list[str]:
    """The report's figure-5 section: how far the simulations lie from the theory."""
    f5 = res.simulation
    L = ["## Figure 5 - theory vs simulation (`fig5_theory_vs_simulation.png`, also overlaid on "
         "figures 1 and 3)", ""]
    add = L.append
    ok = np.isfinite(f5.student_mean) & np.isfinite(f5.student_theory)
    z = z_scores(f5.student_mean, f5.student_theory, f5.student_sem)
    zt = z_scores(f5.teacher_mean, f5.teacher_theory, f5.teacher_sem)
    gap = np.nanmax(np.abs(f5.student_mean - f5.student_theory)[ok]) if ok.any() else math.nan
    add(f"Simulations of exactly the same objectives at N = {int(f5.n_features)}, "
        f"{int(f5.n_seeds)} seeds per point, different seeds at every point "
        "(`kdjax.simulate.simulate_student`; error = MODEL.md formula at each seed's overlaps, "
        "mean +- s.e.m. over seeds; `fig5_theory_vs_simulation.csv`).")
    add("")
    if ok.any():
        chi2 = float(np.nansum(z[ok] ** 2) + np.nansum(zt[ok] ** 2))
        add(f"- {int(ok.sum())} of {f5.figure.size} points simulated; student "
            f"|simulation - theory| <= {fmt(gap)}; max |z| = {g(float(np.nanmax(np.abs(z[ok]))), 3)} "
            f"(student), {g(float(np.nanmax(np.abs(zt[ok]))), 3)} (teacher); chi2 = {chi2:.1f} for "
            f"{2 * int(ok.sum())} values (student and teacher; note that with {int(f5.n_seeds)} "
            f"seeds the s.e.m. is itself uncertain by about "
            f"{100 / math.sqrt(2 * (f5.n_seeds - 1)):.0f}%).")
        k = int(np.nanargmax(np.where(ok, np.abs(z), np.nan)))
        add(f"- Largest student deviation: figure {int(f5.figure[k])}, alpha = "
            f"{f5.alpha[k]:g}, lam_t = {f5.lam_t[k]:g}, T = {f5.temperature[k]:g}, "
            f"a = {f5.hard_weight[k]:g}, lam_s = {f5.lam_s[k]:g}: simulation "
            f"{fmt(float(f5.student_mean[k]))} +- {fmt(float(f5.student_sem[k]))}, theory "
            f"{fmt(float(f5.student_theory[k]))}.")
    add("")
    return L
