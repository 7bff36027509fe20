"""Reproduce the claims of Saglietti & Zdeborova (MSML 2022) with the exact theory.

``run(out_dir, quick)`` computes five experiments and hands them to :mod:`kdjax.figures`, which
writes the PNG figures, the CSV behind each of them and ``report.md``:

1. ``inheritance``: an unregularised KD student (``a = 0``, ``lam_s = 0``) against the teacher's
   ridge ``lam_t`` for several temperatures, with the teacher, the hard-label student
   (unregularised and optimally regularised) and the Bayes-optimal errors.
2. ``limited_by_teacher``: the student's best error over ``T`` against its teacher's error, and
   the ``lam_t`` best for the teacher against the one best for its student.
3. ``double_descent``: test error against ``alpha`` (KD / hard labels, small / finite ``lam_s``,
   same / fresh inputs) and where the interpolation peaks lie.
4. ``temperature``: error against ``T`` for several ``lam_t``, and the optimal ``(lam_t, T)`` over
   a grid of ``(alpha, gamma)`` by gradient descent on the exact error.
5. ``simulations``: finite-``N`` experiments (``kdjax.simulate``) at a handful of the points above.

Every function here is a computation returning dicts of numpy arrays (NaN marks a point whose
solve failed or that has no finite minimiser; the writer drops those rows and the report says
so).  Costs on 2 CPU cores: a theory solve takes 0.1-1 s after a one-off compilation of ~20-30 s
per kind of solve (same inputs, fresh inputs, simulation shape, gradient), so the plan reuses
the compiled ``kdjax.solve_student`` (concrete Python floats, one compilation per data mode) and
keeps the number of distinct simulation shapes small.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable

import numpy as np

from .params import Mixture, SolverConfig, Student, Teacher

Progress = Callable[[str, int, int], None]

__all__ = ["Plan", "plan", "run", "compute", "inheritance", "limited_by_teacher",
           "double_descent", "temperature_study", "simulations"]


# --------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class Plan:
    """Every setting and grid size of a reproduction run (``plan(quick)`` builds the two used)."""

    quick: bool
    # the reference mixture and student (figures 1, 2, 4a)
    alpha: float = 2.0
    delta: float = 1.0
    rho: float = 0.3
    gamma: float = 0.5
    loss: str = "logistic"
    lam_t: tuple = tuple(np.geomspace(1e-3, 3.0, 13))
    temperatures: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    lam_t_bounds: tuple = (1e-3, 3.0)  # the logistic teacher does not converge above lam_t ~ 5
    t_bounds: tuple = (0.25, 16.0)
    best_t_evals: int = 6  # Brent evaluations refining the best T at each lam_t
    best_lam_t_evals: int = 8  # ... the best lam_t at each T (student) and for the teacher
    optimal_lam_t_temperatures: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
    lam_s_grid: tuple = tuple(np.geomspace(1e-3, 2.0, 9))
    lam_s_evals: int = 8
    # figure 3
    dd_alphas: tuple = tuple(np.geomspace(0.15, 8.0, 16))
    dd_temperature: float = 2.0
    dd_lam_t: float = 0.1
    dd_lam_s_small: float = 1e-4
    dd_lam_s_reg: float = 0.1
    dd_refine: bool = True  # add alpha = (0.92, 1, 1.08) x each predicted threshold
    # figure 4b: optimal (lam_t, T) over (alpha, gamma)
    map_alphas: tuple = (1.5, 3.0, 6.0)
    map_gammas: tuple = (0.25, 0.5, 0.75)
    map_lam_t: tuple = (0.01, 0.1, 1.0)
    map_temperatures: tuple = (1.0, 4.0)
    map_gradient: bool = True
    map_steps: int = 12
    # figure 5: simulations
    sim_n_features: int = 1000
    sim_seeds: int = 4
    sim_temperature: float = 2.0
    sim_lam_t: tuple = (0.003, 0.03, 0.3, 3.0)
    # (alpha, hard_weight, lam_s) on the same-input curves of figure 3; each new alpha costs one
    # compilation of the simulator (~15 s), alpha = p.alpha shares figure 1's
    sim_dd_points: tuple = ((0.35, 0.0, 1e-4), (1.0, 0.0, 1e-4), (2.0, 0.0, 1e-4),
                            (2.0, 1.0, 1e-4), (2.0, 0.0, 0.1))


def plan(quick: bool = False) -> Plan:
    """The default plan (<= 10 min on 2 cores) or the ``--quick`` one (<= 2 min)."""
    if not quick:
        return Plan(quick=False)
    return Plan(
        quick=True,
        lam_t=tuple(np.geomspace(1e-3, 3.0, 7)),
        temperatures=(0.5, 2.0, 8.0),
        best_t_evals=1,
        best_lam_t_evals=3,
        optimal_lam_t_temperatures=(2.0,),
        lam_s_grid=tuple(np.geomspace(1e-2, 1.0, 4)),
        lam_s_evals=3,
        dd_alphas=(0.2, 0.35, 0.7, 1.0, 2.0, 4.0, 8.0),
        dd_refine=False,
        map_alphas=(2.0, 4.0),
        map_gammas=(0.25, 0.5),
        map_lam_t=(0.03, 0.3),
        map_temperatures=(1.0, 4.0),
        map_gradient=False,
        sim_n_features=400,
        sim_seeds=3,
        sim_lam_t=(0.003, 0.3, 3.0),
        sim_dd_points=((2.0, 0.0, 1e-4), (2.0, 1.0, 1e-4), (2.0, 0.0, 0.1)),
    )


# --------------------------------------------------------------------------- theory solves


class Solves:
    """Memoised exact solves through the compiled ``kdjax.solve_student`` (and its teacher).

    ``student(...)`` returns ``(eps_student, eps_teacher)``; an entry is NaN when that solve
    did not converge or its objective has no finite minimiser (``ValueError`` from the eager
    regime check).  The arguments are converted to Python floats so that every call hits the
    same compiled program.
    """

    def __init__(self, p: Plan):
        self.plan = p
        self.cache: dict = {}
        self.count = 0
        self.seconds = 0.0
        self.refused: list = []

    def student(self, lam_t, temperature=1.0, hard_weight=0.0, lam_s=0.0, *, alpha=None,
                gamma=None, data="same", delta=None, rho=None):
        from .student import solve_student

        p = self.plan
        key = tuple(float(x) for x in (
            lam_t, temperature, hard_weight, lam_s, p.alpha if alpha is None else alpha,
            p.gamma if gamma is None else gamma, p.delta if delta is None else delta,
            p.rho if rho is None else rho)) + (data,)
        if key in self.cache:
            return self.cache[key]
        lam_t, T, a, lam_s, alpha, gamma, delta, rho, _ = key
        mixture = Mixture(alpha, delta, rho)
        student = Student(gamma=gamma, temperature=T, hard_weight=a, lam=lam_s, data=data,
                          alpha=alpha if data == "fresh" else None)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # non-convergence: flags below
                res = solve_student(mixture, Teacher(p.loss, lam_t), student)
            eps_s = float(res.gen_error) if bool(res.converged) else math.nan
            eps_t = float(res.teacher.gen_error) if bool(res.teacher.converged) else math.nan
        except ValueError as err:  # no finite minimiser: refused by name
            self.refused.append((key, str(err)))
            eps_s = eps_t = math.nan
        self.seconds += time.perf_counter() - start
        self.count += 1
        self.cache[key] = (eps_s, eps_t)
        return eps_s, eps_t


def _nan_to_high(value):
    return 1.0 if not np.isfinite(value) else value


def _refine_log(f, xs, ys, evals, bounds=None):
    """Minimum of ``f`` (of a positive variable) near the best point of the grid ``(xs, ys)``.

    Bounded Brent (scipy) on ``log x`` between the grid neighbours of the grid's minimiser, at
    most ``evals`` evaluations; returns ``(x, f(x))`` of the better of the grid point and Brent's.
    """
    from scipy.optimize import minimize_scalar

    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if not np.isfinite(ys).any():
        return math.nan, math.nan
    i = int(np.nanargmin(ys))
    best = (float(xs[i]), float(ys[i]))
    if evals <= 0 or xs.size < 2:
        return best
    lo, hi = xs[max(i - 1, 0)], xs[min(i + 1, xs.size - 1)]
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    res = minimize_scalar(lambda u: _nan_to_high(f(math.exp(u))), bounds=(math.log(lo), math.log(hi)),
                          method="bounded", options={"maxiter": evals, "xatol": 1e-3})
    x = math.exp(float(res.x))
    value = f(x)
    if np.isfinite(value) and value < best[1]:
        return x, float(value)
    return best


def _tick(progress, stage, done, total):
    if progress is not None:
        progress(stage, done, total)


# --------------------------------------------------------------------------- 1. inheritance


def inheritance(p: Plan, solves: Solves, progress: Progress | None = None) -> dict:
    """Figure 1: the unregularised KD student against the teacher's ridge ``lam_t``.

    Returns the grid ``lam_t x T`` of student errors (``a = 0``, ``lam_s = 0``), the teacher's
    error per ``lam_t``, the hard-label student (``a = 1``: independent of the teacher) at
    ``lam_s = 0`` and over a ``lam_s`` scan refined by Brent, and the Bayes-optimal errors of
    the full input and of the student's ``gamma N`` coordinates.
    """
    from .bayes import bayes_optimal_error, separability_threshold

    lam_t, temps = np.asarray(p.lam_t), np.asarray(p.temperatures)
    total = lam_t.size * temps.size + 1 + len(p.lam_s_grid) + p.lam_s_evals
    stage = "inheritance"
    student = np.full((lam_t.size, temps.size), np.nan)
    teacher = np.full(lam_t.size, np.nan)
    done = 0
    for i, lt in enumerate(lam_t):
        for j, T in enumerate(temps):
            student[i, j], eps_t = solves.student(lt, T)
            if np.isfinite(eps_t):
                teacher[i] = eps_t
            done += 1
            _tick(progress, stage, done, total)

    hard = lambda lam_s: solves.student(p.lam_t[0], 1.0, 1.0, lam_s)[0]  # teacher plays no role
    # Unregularised hard-label student: lam_s = 0 when its data are not separable, else tiny lam_s.
    star = p.gamma * float(separability_threshold(p.delta / p.gamma, p.rho))
    hard_lam_s0 = 0.0 if p.alpha > star else 1e-4
    hard_unreg = hard(hard_lam_s0)
    lam_s = np.asarray(p.lam_s_grid)
    hard_scan = np.array([hard(x) for x in lam_s])
    done += 1 + lam_s.size
    _tick(progress, stage, done, total)
    best_lam_s, hard_best = _refine_log(hard, lam_s, hard_scan, p.lam_s_evals)
    _tick(progress, stage, total, total)
    mixture = Mixture(p.alpha, p.delta, p.rho)
    return {
        "lam_t": lam_t, "temperature": temps, "student_error": student, "teacher_error": teacher,
        "lam_s": lam_s, "hard_error": hard_scan,
        "hard_lam_s0": np.float64(hard_lam_s0), "hard_unreg_error": np.float64(hard_unreg),
        "hard_best_lam_s": np.float64(best_lam_s), "hard_best_error": np.float64(hard_best),
        "bayes_error": np.float64(float(bayes_optimal_error(mixture))),
        "student_bayes_error": np.float64(float(bayes_optimal_error(
            Mixture(p.alpha / p.gamma, p.delta / p.gamma, p.rho)))),
        "hard_separability_alpha": np.float64(star),
    }


# --------------------------------------------------------------------------- 2. limited by the teacher


def limited_by_teacher(p: Plan, solves: Solves, grid: dict, progress: Progress | None = None) -> dict:
    """Figure 2: the student's best error over ``T`` against its teacher's error, per ``lam_t``;
    and the ``lam_t`` that minimises the teacher's error against the one that minimises its
    student's (at each temperature of ``p.optimal_lam_t_temperatures``), as ``best_teacher``
    defines them, found by bounded Brent searches in ``log lam_t`` seeded by the grid.
    """
    stage = "limited by the teacher"
    lam_t, temps = grid["lam_t"], grid["temperature"]
    opt_temps = np.asarray(p.optimal_lam_t_temperatures)
    total = lam_t.size * (p.best_t_evals + 1) + (opt_temps.size + 1) * (p.best_lam_t_evals + 1)
    done = 0
    best_T = np.full(lam_t.size, np.nan)
    best_err = np.full(lam_t.size, np.nan)
    for i, lt in enumerate(lam_t):
        f = lambda T, lt=lt: solves.student(lt, T)[0]
        best_T[i], best_err[i] = _refine_log(f, temps, grid["student_error"][i], p.best_t_evals,
                                             bounds=p.t_bounds)
        done += p.best_t_evals + 1
        _tick(progress, stage, done, total)

    # The teacher's own optimum (its error does not depend on the student's settings).
    T_ref = float(temps[np.argmin(np.abs(np.log(temps / p.dd_temperature)))])
    teacher_f = lambda lt: solves.student(lt, T_ref)[1]
    lam_t_teacher, teacher_best = _refine_log(teacher_f, lam_t, grid["teacher_error"],
                                              p.best_lam_t_evals, bounds=p.lam_t_bounds)
    done += p.best_lam_t_evals + 1
    _tick(progress, stage, done, total)
    lam_t_student = np.full(opt_temps.size, np.nan)
    student_best = np.full(opt_temps.size, np.nan)
    teacher_at = np.full(opt_temps.size, np.nan)
    for k, T in enumerate(opt_temps):
        f = lambda lt, T=T: solves.student(lt, T)[0]
        ys = np.array([f(lt) for lt in lam_t])
        lam_t_student[k], student_best[k] = _refine_log(f, lam_t, ys, p.best_lam_t_evals,
                                                        bounds=p.lam_t_bounds)
        teacher_at[k] = solves.student(lam_t_student[k], T)[1]
        done += p.best_lam_t_evals + 1
        _tick(progress, stage, done, total)
    _tick(progress, stage, total, total)
    return {
        "lam_t": lam_t, "teacher_error": grid["teacher_error"], "best_temperature": best_T,
        "student_best_error": best_err,
        "lam_t_teacher": np.float64(lam_t_teacher), "teacher_best_error": np.float64(teacher_best),
        "opt_temperature": opt_temps, "lam_t_student": lam_t_student,
        "student_error_at_lam_t_student": student_best, "teacher_error_at_lam_t_student": teacher_at,
        "student_error_at_lam_t_teacher": np.array(
            [solves.student(lam_t_teacher, T)[0] for T in opt_temps]),
    }


# --------------------------------------------------------------------------- 3. double descent


def double_descent_curves(p: Plan) -> list[dict]:
    """The curves of figure 3: (label, hard_weight, lam_s, data)."""
    small, reg = p.dd_lam_s_small, p.dd_lam_s_reg
    return [
        dict(label="KD, same inputs", hard_weight=0.0, lam_s=small, data="same"),
        dict(label="KD, same inputs", hard_weight=0.0, lam_s=reg, data="same"),
        dict(label="KD, fresh inputs", hard_weight=0.0, lam_s=small, data="fresh"),
        dict(label="KD, fresh inputs", hard_weight=0.0, lam_s=reg, data="fresh"),
        dict(label="hard labels", hard_weight=1.0, lam_s=small, data="same"),
        dict(label="hard labels", hard_weight=1.0, lam_s=reg, data="same"),
    ]


def double_descent(p: Plan, solves: Solves, progress: Progress | None = None) -> dict:
    """Figure 3: student error against ``alpha`` (teacher ``lam_t = p.dd_lam_t``, ``T = p.dd_temperature``).

    Per curve: errors on ``p.dd_alphas`` (NaN where the solve failed or was refused), the
    ``alpha`` of the highest converged point (the interpolation peak) and the predicted
    threshold: ``alpha = gamma`` for soft labels (more samples than student weights), the
    student's separability threshold ``gamma alpha*(delta / gamma, rho)`` for hard labels.
    """
    from .bayes import separability_threshold

    stage = "double descent"
    hard_star = p.gamma * float(separability_threshold(p.delta / p.gamma, p.rho))
    teacher_star = float(separability_threshold(p.delta, p.rho))
    alphas = np.asarray(p.dd_alphas, float)
    if p.dd_refine:
        extra = [c * f for c in (p.gamma, hard_star) for f in (0.92, 1.0, 1.08)]
        alphas = np.unique(np.round(np.concatenate([alphas, extra]), 12))
    curves = double_descent_curves(p)
    total = alphas.size * len(curves)
    errors = np.full((len(curves), alphas.size), np.nan)
    teacher = np.full(alphas.size, np.nan)
    done = 0
    for c, curve in enumerate(curves):
        for i, alpha in enumerate(alphas):
            eps_s, eps_t = solves.student(p.dd_lam_t, p.dd_temperature, curve["hard_weight"],
                                          curve["lam_s"], alpha=alpha, data=curve["data"])
            errors[c, i] = eps_s
            if np.isfinite(eps_t):
                teacher[i] = eps_t
            done += 1
            _tick(progress, stage, done, total)
    peak_alpha = np.full(len(curves), np.nan)
    peak_error = np.full(len(curves), np.nan)
    predicted = np.array([hard_star if c["hard_weight"] >= 1 else p.gamma for c in curves])
    for c in range(len(curves)):
        row = errors[c]
        if np.isfinite(row).any():
            k = int(np.nanargmax(row))
            # a maximum at the grid's edge is no interpolation peak (monotone curve)
            if 0 < k < row.size - 1:
                peak_alpha[c], peak_error[c] = alphas[k], row[k]
    return {
        "alpha": alphas, "curves": curves, "student_error": errors, "teacher_error": teacher,
        "hard_weight": np.array([c["hard_weight"] for c in curves]),
        "lam_s": np.array([c["lam_s"] for c in curves]),
        "fresh": np.array([1.0 if c["data"] == "fresh" else 0.0 for c in curves]),
        "peak_alpha": peak_alpha, "peak_error": peak_error, "predicted_threshold": predicted,
        "hard_separability_alpha": np.float64(hard_star),
        "teacher_separability_alpha": np.float64(teacher_star),
    }


# --------------------------------------------------------------------------- 4. temperature


_VALUE_AND_GRAD = None


def _log_error(u, setting):
    """Exact KD student error as a function of ``u = (log lam_t, log T)`` (traceable)."""
    import jax.numpy as jnp

    from .sweep import solve

    mixture = Mixture(setting["alpha"], setting["delta"], setting["rho"])
    teacher = Teacher("logistic", jnp.exp(u[0]))
    student = Student(gamma=setting["gamma"], temperature=jnp.exp(u[1]),
                      hard_weight=setting["hard_weight"], lam=setting["lam_s"])
    res = solve(mixture, teacher, student, SolverConfig())
    return res.gen_error, res.converged


def _value_and_grad():
    """``jit(value_and_grad)`` of the student's error in ``(log lam_t, log T)``: compiled once
    for every cell of the map (the settings are arguments, not constants)."""
    global _VALUE_AND_GRAD
    if _VALUE_AND_GRAD is None:
        import jax

        _VALUE_AND_GRAD = jax.jit(jax.value_and_grad(_log_error, has_aux=True))
    return _VALUE_AND_GRAD


def optimal_recipe(p: Plan, solves: Solves, alpha: float, gamma: float) -> dict:
    """Optimal ``(lam_t, T)`` of an unregularised KD student (``a = 0``, ``lam_s = 0``).

    The best point of the coarse grid ``p.map_lam_t x p.map_temperatures`` starts L-BFGS-B
    (scipy) on ``(log lam_t, log T)`` within ``p.lam_t_bounds x p.t_bounds``, with the exact
    gradient (implicit differentiation through both fixed points, the coordinates and objective
    of ``optimize_kd(free=("lam_t", "temperature"))``).  Without ``p.map_gradient`` the grid
    point is returned.
    """
    from scipy.optimize import minimize

    best = (math.inf, math.nan, math.nan)
    for lt in p.map_lam_t:
        for T in p.map_temperatures:
            err = solves.student(lt, T, alpha=alpha, gamma=gamma)[0]
            if np.isfinite(err) and err < best[0]:
                best = (err, lt, T)
    err0, lt0, T0 = best
    out = {"lam_t": lt0, "temperature": T0, "error": err0, "evals": 0, "grad_norm": math.nan,
           "gradient": 0.0}
    if not (p.map_gradient and np.isfinite(err0)):
        return out
    setting = dict(alpha=float(alpha), delta=float(p.delta), rho=float(p.rho), gamma=float(gamma),
                   hard_weight=0.0, lam_s=0.0)
    vg = _value_and_grad()
    trace = {"evals": 0, "grad": math.nan}

    def fun(u):
        (value, converged), grad = vg(np.asarray(u, float), setting)
        trace["evals"] += 1
        if not bool(converged) or not np.isfinite(float(value)):
            return 1.0, np.zeros(2)
        trace["grad"] = float(np.max(np.abs(np.asarray(grad))))
        return float(value), np.asarray(grad, float)

    bounds = [tuple(np.log(p.lam_t_bounds)), tuple(np.log(p.t_bounds))]
    res = minimize(fun, np.log([lt0, T0]), jac=True, method="L-BFGS-B", bounds=bounds,
                   options={"maxiter": p.map_steps, "ftol": 1e-12, "gtol": 1e-7})
    lt, T = (float(x) for x in np.exp(res.x))
    err = solves.student(lt, T, alpha=alpha, gamma=gamma)[0]
    if np.isfinite(err) and err <= err0:
        out.update(lam_t=lt, temperature=T, error=err, gradient=1.0)
    out.update(evals=trace["evals"], grad_norm=trace["grad"])
    return out


def temperature_study(p: Plan, solves: Solves, grid: dict, progress: Progress | None = None) -> dict:
    """Figure 4: error against ``T`` for several ``lam_t`` (from the figure-1 grid), and the
    optimal ``(lam_t, T)`` with its error over ``p.map_alphas x p.map_gammas``, with the
    teacher's own optimal ``lam_t`` at each ``alpha`` for comparison.
    """
    stage = "temperature"
    A, G = np.asarray(p.map_alphas), np.asarray(p.map_gammas)
    total = A.size * G.size + A.size
    keys = ("lam_t", "temperature", "error", "evals", "grad_norm", "gradient")
    maps = {k: np.full((A.size, G.size), np.nan) for k in keys}
    teacher_at_opt = np.full((A.size, G.size), np.nan)
    done = 0
    for i, alpha in enumerate(A):
        for j, gamma in enumerate(G):
            rec = optimal_recipe(p, solves, float(alpha), float(gamma))
            for k in keys:
                maps[k][i, j] = rec[k]
            if np.isfinite(rec["lam_t"]):
                teacher_at_opt[i, j] = solves.student(rec["lam_t"], rec["temperature"],
                                                      alpha=alpha, gamma=gamma)[1]
            done += 1
            _tick(progress, stage, done, total)
    # the teacher's optimal lam_t at each alpha (independent of gamma and T)
    lam_t_teacher = np.full(A.size, np.nan)
    teacher_best = np.full(A.size, np.nan)
    for i, alpha in enumerate(A):
        g0 = float(G[0])
        f = lambda lt, alpha=alpha: solves.student(lt, 4.0, alpha=alpha, gamma=g0)[1]
        xs = np.asarray(p.map_lam_t)
        ys = np.array([f(lt) for lt in xs])
        lam_t_teacher[i], teacher_best[i] = _refine_log(f, xs, ys, p.best_lam_t_evals,
                                                        bounds=p.lam_t_bounds)
        done += 1
        _tick(progress, stage, done, total)
    return {
        "lam_t": grid["lam_t"], "temperature": grid["temperature"],
        "student_error": grid["student_error"],
        "map_alpha": A, "map_gamma": G,
        "opt_lam_t": maps["lam_t"], "opt_temperature": maps["temperature"],
        "opt_error": maps["error"], "opt_evals": maps["evals"], "opt_grad_norm": maps["grad_norm"],
        "opt_by_gradient": maps["gradient"], "teacher_error_at_opt": teacher_at_opt,
        "lam_t_teacher": lam_t_teacher, "teacher_best_error": teacher_best,
        "gradient": np.float64(1.0 if p.map_gradient else 0.0),
    }


# --------------------------------------------------------------------------- 5. simulations


def _simulate(p: Plan, alpha, lam_t, temperature, hard_weight, lam_s):
    """Mean and s.e.m. over converged seeds of the finite-N student and teacher errors."""
    from .simulate import simulate_student

    sim = simulate_student(
        Mixture(float(alpha), p.delta, p.rho), Teacher(p.loss, float(lam_t)),
        Student(gamma=p.gamma, temperature=float(temperature), hard_weight=float(hard_weight),
                lam=float(lam_s)),
        n_features=p.sim_n_features, seeds=p.sim_seeds)
    ok = int(np.sum(np.asarray(sim.converged, bool)))
    nan = dict(student_mean=math.nan, student_sem=math.nan, teacher_mean=math.nan,
               teacher_sem=math.nan, seeds=ok)
    if ok < 2:
        return nan
    mean, sem = sim.mean(failed="drop"), sim.sem(failed="drop")
    return dict(student_mean=float(mean.gen_error), student_sem=float(sem.gen_error),
                teacher_mean=float(mean.teacher.gen_error), teacher_sem=float(sem.teacher.gen_error),
                seeds=ok)


def simulations(p: Plan, solves: Solves, progress: Progress | None = None) -> dict:
    """Figure 5: finite-``N`` experiments at the points of figures 1 and 3, with the theory.

    Figure 1 points: ``lam_t`` in ``p.sim_lam_t`` at ``T = p.sim_temperature`` (``a = 0``,
    ``lam_s = 0``).  Figure 3 points: ``p.sim_dd_points`` (same inputs, the figure's teacher).
    The error is the MODEL.md formula at each seed's overlaps (``gen_error``), averaged over
    the converged seeds (``seeds`` counts them).
    """
    stage = "simulation"
    points = [("fig1", p.alpha, lt, p.sim_temperature, 0.0, 0.0) for lt in p.sim_lam_t]
    points += [("fig3", a, p.dd_lam_t, p.dd_temperature, hw, ls) for a, hw, ls in p.sim_dd_points]
    rows = {k: [] for k in ("figure", "alpha", "lam_t", "temperature", "hard_weight", "lam_s",
                            "student_mean", "student_sem", "teacher_mean", "teacher_sem", "seeds",
                            "student_theory", "teacher_theory")}
    for n, (fig, alpha, lt, T, hw, ls) in enumerate(points):
        sim = _simulate(p, alpha, lt, T, hw, ls)
        eps_s, eps_t = solves.student(lt, T, hw, ls, alpha=alpha)
        for k, v in dict(figure=1.0 if fig == "fig1" else 3.0, alpha=alpha, lam_t=lt, temperature=T,
                         hard_weight=hw, lam_s=ls, student_theory=eps_s, teacher_theory=eps_t,
                         **sim).items():
            rows[k].append(float(v))
        _tick(progress, stage, n + 1, len(points))
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["n_features"] = np.float64(p.sim_n_features)
    out["n_seeds"] = np.float64(p.sim_seeds)
    return out


# --------------------------------------------------------------------------- driver


def compute(quick: bool = False, progress: Progress | None = None) -> dict:
    """All five experiments (dicts of numpy arrays) plus the plan and timings."""
    p = plan(quick)
    solves = Solves(p)
    timings = {}
    t0 = time.perf_counter()
    fig1 = inheritance(p, solves, progress)
    timings["inheritance"] = time.perf_counter() - t0
    t = time.perf_counter()
    fig2 = limited_by_teacher(p, solves, fig1, progress)
    timings["limited by the teacher"] = time.perf_counter() - t
    t = time.perf_counter()
    fig3 = double_descent(p, solves, progress)
    timings["double descent"] = time.perf_counter() - t
    t = time.perf_counter()
    fig4 = temperature_study(p, solves, fig1, progress)
    timings["temperature"] = time.perf_counter() - t
    t = time.perf_counter()
    fig5 = simulations(p, solves, progress)
    timings["simulation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return {"plan": p, "inheritance": fig1, "limited": fig2, "double_descent": fig3,
            "temperature": fig4, "simulation": fig5, "timings": timings,
            "solves": {"count": solves.count, "seconds": solves.seconds,
                       "refused": list(solves.refused)}}


def run(out_dir: str, quick: bool = False, progress: Progress | None = None) -> list[str]:
    """Compute everything and write figures, CSVs and ``report.md`` into ``out_dir``.

    Returns the paths written.  ``progress(stage, done, total)`` is called as work advances.
    """
    from . import figures

    results = compute(quick, progress)
    return figures.write_all(results, str(out_dir), progress)
