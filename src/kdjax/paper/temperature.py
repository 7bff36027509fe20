"""Figure 4, the temperature: error against ``T`` for several teachers, and the optimal
``(lam_t, T)`` over a grid of ``(alpha, gamma)``.

``compute`` (with ``optimal_recipe`` per cell), ``tables``, ``plot`` and ``section`` write
``fig4_error_vs_temperature.csv``, ``fig4_optimal_map.csv``, ``fig4_temperature.png`` and the
report's section.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._common import (
    ALPHA,
    EPS,
    GAMMA,
    LAM_T,
    T_,
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
    plain_log_labels,
    plain_log_ticks,
    save,
)
from ._plan import Plan, Progress, tick

__all__ = ["Recipe", "Temperature", "optimal_recipe", "compute", "tables", "plot", "section",
           "PNG", "FLAT"]

STAGE = "temperature"
PNG = "fig4_temperature.png"
FLAT = 1e-4  # error change between T*/2 and 2T* below which T* is called ill-determined


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The optimal ``(lam_t, T)`` of a KD student, its error and whether a gradient search found it."""

    lam_t: float
    temperature: float
    error: float
    gradient: float  # 1.0: found by optimize_kd, 0.0: the best grid point


@dataclasses.dataclass(frozen=True)
class Temperature:
    """The numbers of figure 4; the maps are indexed ``(alpha, gamma)``."""

    lam_t: np.ndarray  # the figure-1 grid
    temperature: np.ndarray
    student_error: np.ndarray  # (lam_t, temperature)
    map_alpha: np.ndarray
    map_gamma: np.ndarray
    opt_lam_t: np.ndarray
    opt_temperature: np.ndarray
    opt_error: np.ndarray
    opt_by_gradient: np.ndarray
    opt_temperature_sensitivity: np.ndarray  # error rise at T*/2 or 2T*
    teacher_error_at_opt: np.ndarray
    lam_t_teacher: np.ndarray  # per alpha: the teacher's own optimum
    teacher_best_error: np.ndarray
    teacher_by_gradient: np.ndarray
    gradient: float  # 1.0 when the student's optima come from gradient searches

    def reference_cell(self, p: Plan):
        """``(i, j)`` of the plan's reference ``(alpha, gamma)`` in the maps, or ``None``."""
        ia = np.flatnonzero(np.isclose(self.map_alpha, p.alpha))
        ig = np.flatnonzero(np.isclose(self.map_gamma, p.gamma))
        return (ia[0], ig[0]) if ia.size and ig.size else None


def optimal_recipe(p: Plan, solves: Solves, optima: Optima, alpha: float,
                   gamma: float, lam_t_teacher: float = math.nan) -> Recipe:
    """Optimal ``(lam_t, T)`` of an unregularised KD student (``a = 0``, ``lam_s = 0``).

    The best point of the grid ``(p.map_lam_t + (lam_t_teacher,)) x p.map_temperatures``
    starts ``optimize_kd(free=("lam_t", "temperature"))`` (when ``p.student_gradient``); the
    result is kept if it is no worse than the grid point.
    """
    start = (math.inf, math.nan, math.nan)
    extra = (float(lam_t_teacher),) if np.isfinite(lam_t_teacher) else ()
    for lt in tuple(p.map_lam_t) + extra:
        for T in p.map_temperatures:
            err = solves.student(lt, T, alpha=alpha, gamma=gamma)[0]
            if np.isfinite(err) and err < start[0]:
                start = (err, lt, T)
    err0, lt0, T0 = start
    if not (p.student_gradient and np.isfinite(err0)):
        return Recipe(lt0, T0, err0, 0.0)
    values, _ = optima.optimum(("lam_t", "temperature"), {"lam_t": lt0, "temperature": T0},
                               alpha=alpha, gamma=gamma)
    err = (solves.student(values["lam_t"], values["temperature"], alpha=alpha, gamma=gamma)[0]
           if values is not None else math.nan)
    values, err, found = keep_better({"lam_t": lt0, "temperature": T0}, err0, values, err)
    return Recipe(values["lam_t"], values["temperature"], err, float(found))


def _flatness(solves: Solves, rec: Recipe, alpha: float, gamma: float) -> float:
    """Largest error increase when ``T*`` is halved or doubled: how well ``T*`` is determined."""
    if not np.isfinite(rec.error):
        return math.nan
    near = [solves.student(rec.lam_t, rec.temperature * f, alpha=alpha, gamma=gamma)[0]
            for f in (0.5, 2.0)]
    return float(np.nanmax(np.asarray(near) - rec.error))


def _teacher_optima(p: Plan, solves, optima, A, G, progress, total):
    """The teacher's optimal ``lam_t`` at each ``alpha`` (independent of ``gamma`` and ``T``):
    ``(lam_t, error, by_gradient)`` arrays."""
    lam_t_teacher = np.full(A.size, np.nan)
    teacher_best = np.full(A.size, np.nan)
    teacher_by_grad = np.zeros(A.size)
    g0, T0 = float(G[0]), float(p.map_temperatures[0])
    for i, alpha in enumerate(A):
        f = lambda lt, alpha=alpha: solves.student(lt, T0, alpha=alpha, gamma=g0)[1]
        lt0, e0 = argmin(p.map_lam_t, [f(lt) for lt in p.map_lam_t])
        values = None
        if p.teacher_gradient and np.isfinite(e0):
            values, _ = optima.optimum(("lam_t",), {"lam_t": lt0}, objective="teacher",
                                       alpha=alpha, gamma=g0)
        e = f(values["lam_t"]) if values is not None else math.nan
        values, teacher_best[i], teacher_by_grad[i] = keep_better({"lam_t": lt0}, e0,
                                                                         values, e)
        lam_t_teacher[i] = values["lam_t"]
        tick(progress, STAGE, i + 1, total)
    return lam_t_teacher, teacher_best, teacher_by_grad


def compute(p: Plan, solves: Solves, optima: Optima, grid,
            progress: Progress | None = None) -> Temperature:
    """Figure 4: error against ``T`` for several ``lam_t`` (from the figure-1 ``grid``), and the
    optimal ``(lam_t, T)`` with its error over ``p.map_alphas x p.map_gammas``, with the
    teacher's own optimal ``lam_t`` at each ``alpha`` (``optimize_kd(objective="teacher")``).
    """
    A, G = np.asarray(p.map_alphas, float), np.asarray(p.map_gammas, float)
    total = A.size * G.size + A.size
    fields = ("lam_t", "temperature", "error", "gradient")
    maps = {k: np.full((A.size, G.size), np.nan) for k in fields}
    teacher_at_opt = np.full((A.size, G.size), np.nan)
    flat = np.full((A.size, G.size), np.nan)
    lam_t_teacher, teacher_best, teacher_by_grad = _teacher_optima(p, solves, optima, A, G,
                                                                   progress, total)
    done = A.size
    for i, alpha in enumerate(A):
        for j, gamma in enumerate(G):
            rec = optimal_recipe(p, solves, optima, float(alpha), float(gamma), lam_t_teacher[i])
            for k in fields:
                maps[k][i, j] = getattr(rec, k)
            flat[i, j] = _flatness(solves, rec, float(alpha), float(gamma))
            if np.isfinite(rec.lam_t):
                teacher_at_opt[i, j] = solves.student(rec.lam_t, rec.temperature,
                                                      alpha=alpha, gamma=gamma)[1]
            done += 1
            tick(progress, STAGE, done, total)
    return Temperature(
        lam_t=grid.lam_t, temperature=grid.temperature, student_error=grid.student_error,
        map_alpha=A, map_gamma=G,
        opt_lam_t=maps["lam_t"], opt_temperature=maps["temperature"],
        opt_error=maps["error"], opt_by_gradient=maps["gradient"],
        opt_temperature_sensitivity=flat, teacher_error_at_opt=teacher_at_opt,
        lam_t_teacher=lam_t_teacher, teacher_best_error=teacher_best,
        teacher_by_gradient=teacher_by_grad,
        gradient=np.float64(1.0 if p.student_gradient else 0.0))


# --------------------------------------------------------------------------- CSV rows


def tables(res) -> list[Table]:
    """``fig4_error_vs_temperature.csv`` and ``fig4_optimal_map.csv``."""
    r = res.temperature
    curves = [(lt, T, r.student_error[i, j]) for i, lt in enumerate(r.lam_t)
              for j, T in enumerate(r.temperature)]
    cells = []
    for i, a in enumerate(r.map_alpha):
        for j, gm in enumerate(r.map_gamma):
            cells.append((a, gm, r.opt_lam_t[i, j], r.opt_temperature[i, j], r.opt_error[i, j],
                          r.opt_by_gradient[i, j], r.opt_temperature_sensitivity[i, j],
                          r.teacher_error_at_opt[i, j], r.lam_t_teacher[i],
                          r.teacher_best_error[i], r.teacher_by_gradient[i]))
    return [
        Table("fig4_error_vs_temperature.csv", ["lam_t", "temperature", "student_error"], curves),
        Table("fig4_optimal_map.csv",
              ["alpha", "gamma", "opt_lam_t", "opt_temperature", "opt_student_error", "by_gradient",
               "error_increase_at_half_or_double_T", "teacher_error_at_opt", "lam_t_teacher",
               "teacher_best_error", "teacher_by_gradient"], cells),
    ]


# --------------------------------------------------------------------------- plot


def _outline():
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2.5, foreground="k")]


def _heatmap(fig, ax, values, xs, ys, title, fmt_value, cmap, log=False, notes=None):
    from matplotlib.colors import LogNorm

    data = np.ma.masked_invalid(values)
    finite = values[np.isfinite(values)]
    norm = None
    if log and finite.size and finite.min() > 0 and finite.max() > finite.min() * 1.01:
        norm = LogNorm()
    im = ax.imshow(data, origin="lower", cmap=cmap, aspect="auto", norm=norm)
    cbar = fig.colorbar(im, ax=ax)
    if norm is not None:
        plain_log_labels(cbar.ax.yaxis, leads=tuple(float(k) for k in range(1, 10)))
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set_xlabel(f"student size {GAMMA} (fraction of the N inputs it sees)")
    ax.set_ylabel(f"samples per input dimension {ALPHA}")
    ax.set_title(title, fontsize=11)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            v = values[i, j]
            text = fmt_value(v) if np.isfinite(v) else "n/a"
            if notes is not None and notes[i][j]:
                text += f"\n{notes[i][j]}"
            ax.text(j, i, text, ha="center", va="center", fontsize=10, color="w",
                    fontweight="bold", path_effects=_outline())


def _plot_curves(ax, r: Temperature, p: Plan):
    """Top left: error against ``T``, one curve per teacher (up to six of the grid)."""
    n = r.lam_t.size
    pick = np.unique(np.linspace(0, n - 1, min(n, 6)).round().astype(int))
    for k, c in zip(pick, colors(pick.size, "plasma")):
        ok = np.isfinite(r.student_error[k])
        ax.plot(r.temperature[ok], r.student_error[k][ok], "o-", color=c, ms=4,
                label=f"{LAM_T}={r.lam_t[k]:.3g}")
    ax.set_xscale("log")
    plain_log_ticks(ax.xaxis, r.temperature.min(), r.temperature.max())
    ax.set_xlabel(f"temperature {T_}")
    ax.set_ylabel(f"student test error {EPS}")
    ax.set_title(f"Student error vs temperature, one curve per teacher\n({ALPHA}={p.alpha:g}, "
                 f"{GAMMA}={p.gamma:g}, " r"$\lambda_s=0$, $a=0$)", fontsize=11)
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.grid(alpha=0.3, which="major")


def plot(res, path: str) -> str:
    """``fig4_temperature.png``: the curves and the maps of ``T*``, ``lam_t*`` and the error."""
    r, p = res.temperature, res.plan
    fig, axes = figure(2, 2, size=(6.0, 4.8))
    _plot_curves(axes[0, 0], r, p)
    how = "gradient, optimize_kd" if float(r.gradient) else "best grid point, --quick"
    sens = r.opt_temperature_sensitivity
    notes = [["flat" if np.isfinite(v) and v < FLAT else "" for v in row] for row in sens]
    for i, row in enumerate(r.opt_by_gradient):
        for j, found in enumerate(row):
            if float(r.gradient) and not found:
                notes[i][j] = (notes[i][j] + ", grid").lstrip(", ")
    _heatmap(fig, axes[0, 1], r.opt_temperature, r.map_gamma, r.map_alpha,
             f"optimal temperature {T_}* ({how})\nflat: {EPS} changes by < {FLAT:g} "
             f"between {T_}*/2 and 2{T_}*", lambda v: f"{v:.2g}", "magma", log=True, notes=notes)
    _heatmap(fig, axes[1, 0], r.opt_lam_t, r.map_gamma, r.map_alpha,
             f"optimal teacher regularisation {LAM_T}* (jointly with {T_}*)", lambda v: f"{v:.2g}",
             "viridis", log=True)
    _heatmap(fig, axes[1, 1], r.opt_error, r.map_gamma, r.map_alpha,
             f"student's test error at the optimum {EPS}*", lambda v: f"{v:.3f}", "cividis")
    return save(fig, path)


# --------------------------------------------------------------------------- report section


def section(res) -> list[str]:
    """The report's figure-4 section: how the error depends on ``T``, and the optimal recipe."""
    f2, f4 = res.limited, res.temperature
    L = ["## Figure 4 - the temperature (`fig4_temperature.png`)", ""]
    add = L.append
    add("**Question.** How does the student's error depend on T, and which (lam_t, T) is optimal "
        "as the sample ratio alpha and the student size gamma change?")
    add("")
    add("**kdjax finds** (`fig4_error_vs_temperature.csv`, `fig4_optimal_map.csv`):")
    add("")
    add("- Best T of the grid at each teacher: "
        + ", ".join(f"lam_t = {lt:.3g}: T = {g(float(T))}" for lt, T in
                    zip(f2.lam_t, f2.best_temperature) if np.isfinite(T)) + ".")
    spread = np.nanmax(f4.student_error, axis=1) - np.nanmin(f4.student_error, axis=1)
    add(f"- The error changes by {fmt(np.nanmin(spread), 4)}...{fmt(np.nanmax(spread), 4)} "
        "across the T grid at fixed lam_t: high temperatures help behind under-regularised "
        "teachers, low ones behind over-regularised teachers (their soft labels are then close "
        "to the hard labels).")
    how = ("by gradient (`optimize_kd(free=(\"lam_t\", \"temperature\"))`), started from the best "
           "point of a small grid" if float(f4.gradient) else
           "as the best point of a small grid (`--quick` skips the student's gradient searches)")
    add(f"- Optimal recipe over (alpha, gamma), found {how}:")
    add("")
    add("  | alpha | gamma | lam_t* | T* | student eps_g | found by | eps_g rise at T*/2 or 2T* "
        "| teacher eps_t at lam_t* | teacher's own best lam_t |")
    add("  | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    sens = f4.opt_temperature_sensitivity
    for i, a in enumerate(f4.map_alpha):
        for j, gm in enumerate(f4.map_gamma):
            add(f"  | {a:g} | {gm:g} | {g(float(f4.opt_lam_t[i, j]))} | "
                f"{g(float(f4.opt_temperature[i, j]))} | {fmt(float(f4.opt_error[i, j]))} | "
                f"{by(f4.opt_by_gradient[i, j])} | {g(float(sens[i, j]), 2)} | "
                f"{fmt(float(f4.teacher_error_at_opt[i, j]))} | {g(float(f4.lam_t_teacher[i]))} |")
    add("")
    ratio = f4.opt_lam_t / f4.lam_t_teacher[:, None]
    if np.isfinite(ratio).any():
        add(f"- T* ranges over {g(np.nanmin(f4.opt_temperature))}..."
            f"{g(np.nanmax(f4.opt_temperature))}; lam_t* is {g(np.nanmin(ratio))}..."
            f"{g(np.nanmax(ratio))} times the teacher's own optimal lam_t, and the teacher the "
            f"student calls for errs at most "
            f"{fmt(np.nanmax(f4.teacher_error_at_opt - f4.teacher_best_error[:, None]), 4)} "
            "more than the best teacher.")
    flat = np.isfinite(sens) & (sens < FLAT)
    if flat.any():
        cells = ", ".join(f"({f4.map_alpha[i]:g}, {f4.map_gamma[j]:g})"
                          for i, j in zip(*np.nonzero(flat)))
        add(f"- At (alpha, gamma) = {cells} the error changes by less than {FLAT:g} between T*/2 "
            "and 2T* (marked 'flat' in the figure): there T* is ill-determined, any T in that "
            "range is as good.")
    err = f4.opt_error
    if np.isfinite(err).all() and err.shape[1] > 1 and err.shape[0] > 1:
        by_gamma = bool(np.all(np.diff(err, axis=1) < 0))
        by_alpha = bool(np.all(np.diff(err, axis=0) < 0))
        word = lambda ok: "decreases" if ok else "does not always decrease"
        add(f"- The optimal student's error {word(by_gamma)} with its size gamma at every alpha, "
            f"and {word(by_alpha)} with alpha at every gamma.")
    add("")
    return L
