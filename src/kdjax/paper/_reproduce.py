"""Reproduce the claims of Saglietti & Zdeborova (MSML 2022) with the exact theory.

``run(out_dir, quick)`` computes five experiments and hands them to :mod:`kdjax.figures`, which
writes the PNG figures, the CSV behind each of them and ``report.md``:

1. ``inheritance``: an unregularised KD student (``a = 0``, ``lam_s = 0``) against the teacher's
   ridge ``lam_t`` for several temperatures, with the teacher, the hard-label student
   (unregularised and optimally regularised) and the Bayes-optimal errors.
2. ``limited_by_teacher``: the student's best error over ``T`` against its teacher's error, and
   the ``lam_t`` best for the teacher against the one best for its student.
3. ``double_descent``: test error against ``alpha`` (KD / hard labels, small / finite ``lam_s``,
   same / fresh inputs, a weakly and a strongly regularised teacher) and where the peaks lie.
4. ``temperature``: error against ``T`` for several ``lam_t``, and the optimal ``(lam_t, T)`` over
   a grid of ``(alpha, gamma)``.
5. ``simulations``: finite-``N`` experiments (``kdjax.simulate``) at points of figures 1 and 3.

Optima come from ``kdjax.optimize_kd`` / ``best_teacher`` (gradient descent on the exact
error, implicit differentiation through both fixed points), each started from the best point of
a grid; ``--quick`` keeps only the teacher's gradient search (cheap to compile) and takes the
student's optima from the grids.  Every error written to a CSV file is re-evaluated by
``kdjax.solve_student`` at the reported parameters.

Every function here is a computation returning dicts of numpy arrays (NaN marks a point whose
solve failed or that has no finite minimiser; the writer drops those rows and the report says
so).  Costs on 2 CPU cores: a theory solve takes 0.05-0.5 s after a one-off compilation of
~20 s per data mode; each kind of gradient search (free parameters, objective) compiles once,
13 s for the teacher's objective and ~35 s for the student's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

import kdjax
from kdjax import Mixture, Student, Teacher

Progress = Callable[[str, int, int], None]

__all__ = ["Plan", "plan", "run", "compute", "checks", "inheritance", "limited_by_teacher",
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
    lam_s_grid: tuple = tuple(np.geomspace(1e-3, 3.0, 13))  # hard-label student's ridge
    # gradient searches (optimize_kd): the teacher's own optimum / every student optimum
    teacher_gradient: bool = True
    student_gradient: bool = True
    opt_steps: int = 40
    opt_tol: float = 1e-9
    opt_temperatures: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # figure 2b, subset of above
    # figure 3
    dd_alphas: tuple = tuple(np.geomspace(0.15, 8.0, 16))
    dd_refine: tuple = (0.92, 1.0, 1.08)  # extra alpha = factor x each predicted threshold
    dd_temperature: float = 2.0
    dd_lam_t: float = 0.1
    dd_lam_t_strong: float = 1.0
    dd_lam_s_small: float = 1e-4
    dd_lam_s_reg: float = 0.1
    # figure 4b: optimal (lam_t, T) over (alpha, gamma), each search started from a small grid
    map_alphas: tuple = (1.0, 2.0, 4.0)
    map_gammas: tuple = (0.25, 0.5, 0.75)
    map_lam_t: tuple = (0.03, 0.3, 3.0)
    map_temperatures: tuple = (0.5, 2.0, 8.0)
    # figure 5: simulations (distinct seeds at every point, so the points are independent)
    sim_n_features: int = 1000
    sim_seeds: int = 6
    sim_temperature: float = 2.0
    sim_lam_t: tuple = (0.003, 0.03, 0.3, 3.0)
    # (alpha, hard_weight, lam_s) on the same-input curves of figure 3 (teacher lam_t = dd_lam_t);
    # each new alpha costs one compilation of the simulator
    sim_dd_points: tuple = ((0.35, 0.0, 1e-4), (1.0, 0.0, 1e-4), (1.0, 1.0, 1e-4),
                            (2.0, 0.0, 1e-4), (2.0, 1.0, 1e-4), (2.0, 0.0, 0.1))


def plan(quick: bool = False) -> Plan:
    """The default plan (<= 10 min on 2 cores) or the ``--quick`` one (<= 2 min)."""
    if not quick:
        return Plan(quick=False)
    return Plan(
        quick=True,
        lam_t=tuple(np.geomspace(1e-3, 3.0, 7)),
        temperatures=(0.5, 2.0, 8.0),
        lam_s_grid=tuple(np.geomspace(1e-3, 3.0, 7)),
        student_gradient=False,
        opt_temperatures=(0.5, 2.0, 8.0),
        dd_alphas=(0.2, 0.35, 0.7, 1.0, 2.0, 4.0, 8.0),
        dd_refine=(1.0,),
        map_alphas=(2.0, 4.0),
        map_gammas=(0.25, 0.5),
        map_lam_t=(0.03, 0.3),
        map_temperatures=(1.0, 4.0),
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
                gamma=None, data="same"):
        p = self.plan
        key = tuple(float(x) for x in (
            lam_t, temperature, hard_weight, lam_s, p.alpha if alpha is None else alpha,
            p.gamma if gamma is None else gamma)) + (data,)
        if key in self.cache:
            return self.cache[key]
        lam_t, T, a, lam_s, alpha, gamma, _ = key
        mixture = Mixture(alpha, p.delta, p.rho)
        student = Student(gamma=gamma, temperature=T, hard_weight=a, lam=lam_s, data=data,
                          alpha=alpha if data == "fresh" else None)
        start = time.perf_counter()
        res = kdjax.solve_student(mixture, Teacher(p.loss, lam_t), student, throw=False)
        eps_s = float(res.gen_error) if bool(res.converged) else math.nan
        eps_t = float(res.teacher.gen_error) if bool(res.teacher.converged) else math.nan
        for who, r in (("teacher", res.teacher), ("student", res)):
            if r.result == kdjax.RESULTS.no_finite_minimiser:  # refused by name in the report
                self.refused.append((key, f"the {who} has no finite minimiser at {key}"))
                break
        self.seconds += time.perf_counter() - start
        self.count += 1
        self.cache[key] = (eps_s, eps_t)
        return eps_s, eps_t


class Optima:
    """Gradient searches through ``kdjax.optimize_kd`` / ``best_teacher``, with their cost.

    Each search starts from the best point of a grid; its result is re-evaluated with
    ``Solves`` (so that every number written is a ``solve_student`` value) and kept only when
    it converged and is no worse than the starting point (``by_gradient`` says which).
    """

    def __init__(self, p: Plan, solves: Solves):
        self.plan, self.solves = p, solves
        self.calls = 0
        self.evaluations = 0
        self.seconds = 0.0
        self.failures: list = []

    def _setting(self, lam_t, T, hard_weight=0.0, lam_s=0.0, alpha=None, gamma=None):
        p = self.plan
        mixture = Mixture(float(p.alpha if alpha is None else alpha), p.delta, p.rho)
        student = Student(gamma=float(p.gamma if gamma is None else gamma), temperature=float(T),
                          hard_weight=float(hard_weight), lam=float(lam_s))
        return mixture, Teacher(p.loss, float(lam_t)), student

    def _call(self, fn, *args, **kwargs):
        p = self.plan
        start = time.perf_counter()
        try:
            out = fn(*args, steps=p.opt_steps, tol=p.opt_tol, **kwargs)
        except (ValueError, RuntimeError) as err:  # a failed search: the grid point is kept
            self.failures.append(f"{getattr(fn, '__name__', fn)}({_describe(args, kwargs)}): "
                                 f"{_summary(err)}")
            out = None
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out

    def optimum(self, free, start: dict, objective="student", **setting):
        """Minimise over ``free`` from ``start`` (name -> value, with the fixed ``setting``).

        Returns ``(values, converged)``: the optimiser's free values (``None`` on failure).
        """
        values = dict(setting, **start)
        mixture, teacher, student = self._setting(
            values["lam_t"], values.get("temperature", 1.0), values.get("hard_weight", 0.0),
            values.get("lam_s", 0.0), values.get("alpha"), values.get("gamma"))
        opt = self._call(kdjax.optimize_kd, mixture, teacher, student, tuple(free), objective=objective)
        if opt is None:
            return None, False
        self.evaluations += int(opt.solves)
        return dict(opt.params), bool(opt.converged)

    def best_teacher(self, lam_t, T):
        """``best_teacher`` at the reference setting: ``(lam_t_teacher, lam_t_student)``."""
        out = self._call(kdjax.best_teacher, *self._setting(lam_t, T))
        if out is None:
            return None, None
        self.evaluations += int(out.solves)
        return float(out.lam_t_teacher), float(out.lam_t_student)


def _describe(args, kwargs) -> str:
    """The setting of a failed search, in the report's notation."""
    mixture, teacher, student = args[:3]
    text = (f"alpha={float(mixture.alpha):g}, gamma={float(student.gamma):g}, "
            f"lam_t={float(teacher.lam):.3g}, T={float(student.temperature):.3g}, "
            f"a={float(student.hard_weight):g}, lam_s={float(student.lam):.3g}")
    if len(args) > 3:
        text += f", free={args[3]}"
    return text + "".join(f", {k}={v}" for k, v in kwargs.items())


def _summary(err: BaseException) -> str:
    """One line of an exception (JAX runtime errors carry whole tracebacks)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    pick = next((line for line in lines if "Error:" in line and not line.startswith("File")),
                lines[0] if lines else type(err).__name__)
    return pick.split(". ")[0][:240]


def _keep_better(start_values, start_error, values, error):
    """The optimiser's point if it is finite and no worse than the grid's (then ``True``)."""
    if values is not None and np.isfinite(error) and error <= start_error + 1e-12:
        return values, error, True
    return start_values, start_error, False


def _argmin(xs, ys):
    ys = np.asarray(ys, float)
    if not np.isfinite(ys).any():
        return math.nan, math.nan
    k = int(np.nanargmin(ys))
    return float(np.asarray(xs)[k]), float(ys[k])


def _tick(progress, stage, done, total):
    if progress is not None:
        progress(stage, min(done, total), total)


# --------------------------------------------------------------------------- 1. inheritance


def hard_teacher_lam(p: Plan) -> float:
    """The teacher ``lam_t`` passed along with a hard-label student (which ignores it)."""
    return float(p.dd_lam_t)


def inheritance(p: Plan, solves: Solves, optima: Optima, progress: Progress | None = None) -> dict:
    """Figure 1: the unregularised KD student against the teacher's ridge ``lam_t``.

    Returns the grid ``lam_t x T`` of student errors (``a = 0``, ``lam_s = 0``), the teacher's
    error per ``lam_t``, the hard-label student (``a = 1``: independent of the teacher) at
    ``lam_s = 0`` and over a ``lam_s`` scan whose best point starts a gradient search, and the
    Bayes-optimal errors of the full input and of the student's ``gamma N`` coordinates.
    """
    from kdjax import bayes_optimal_error, separability_threshold

    lam_t, temps, lam_s = np.asarray(p.lam_t), np.asarray(p.temperatures), np.asarray(p.lam_s_grid)
    total = lam_t.size * temps.size + 1 + lam_s.size + 1
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

    lt_hard = hard_teacher_lam(p)
    hard = lambda x: solves.student(lt_hard, 1.0, 1.0, x)[0]
    # Unregularised hard-label student: lam_s = 0 when its data are not separable, else tiny lam_s.
    star = p.gamma * float(separability_threshold(p.delta / p.gamma, p.rho))
    hard_lam_s0 = 0.0 if p.alpha > star else p.dd_lam_s_small
    hard_unreg = hard(hard_lam_s0)
    hard_scan = np.array([hard(x) for x in lam_s])
    done += 1 + lam_s.size
    _tick(progress, stage, done, total)
    best_lam_s, hard_best = _argmin(lam_s, hard_scan)
    by_gradient = False
    if p.student_gradient and np.isfinite(hard_best):
        values, _ = optima.optimum(("lam_s",), {"lam_s": best_lam_s}, lam_t=lt_hard,
                                   temperature=1.0, hard_weight=1.0)
        err = hard(values["lam_s"]) if values is not None else math.nan
        values, hard_best, by_gradient = _keep_better({"lam_s": best_lam_s}, hard_best, values, err)
        best_lam_s = values["lam_s"]
    _tick(progress, stage, total, total)
    mixture = Mixture(p.alpha, p.delta, p.rho)
    return {
        "lam_t": lam_t, "temperature": temps, "student_error": student, "teacher_error": teacher,
        "lam_s": lam_s, "hard_error": hard_scan, "hard_teacher_lam_t": np.float64(lt_hard),
        "hard_lam_s0": np.float64(hard_lam_s0), "hard_unreg_error": np.float64(hard_unreg),
        "hard_best_lam_s": np.float64(best_lam_s), "hard_best_error": np.float64(hard_best),
        "hard_best_by_gradient": np.float64(by_gradient),
        "bayes_error": np.float64(float(bayes_optimal_error(mixture))),
        "student_bayes_error": np.float64(student_bayes_error(p, p.alpha)),
        "hard_separability_alpha": np.float64(star),
    }


def student_bayes_error(p: Plan, alpha: float) -> float:
    """Bayes-optimal error of a classifier of the student's ``gamma N`` coordinates trained on
    ``alpha N`` labelled samples: the mixture with ``N -> gamma N``, ``delta -> delta / gamma``.

    A lower bound for every same-input student (the other coordinates carry no information on
    the student's part of the cluster direction).
    """
    from kdjax import bayes_optimal_error

    return float(bayes_optimal_error(Mixture(alpha / p.gamma, p.delta / p.gamma, p.rho)))


# --------------------------------------------------------------------------- 2. limited by the teacher


def limited_by_teacher(p: Plan, solves: Solves, optima: Optima, grid: dict,
                       progress: Progress | None = None) -> dict:
    """Figure 2: the student's best error over the ``T`` grid against its teacher's error, per
    ``lam_t``; and the ``lam_t`` that minimises the teacher's own error against the one that
    minimises its student's at each ``T`` of ``p.opt_temperatures`` (``best_teacher`` at the
    reference ``T = p.dd_temperature``, ``optimize_kd(free=("lam_t",))`` at the others), each
    search started from the best point of the figure-1 grid.
    """
    stage = "limited by the teacher"
    lam_t, temps = grid["lam_t"], grid["temperature"]
    opt_temps = np.asarray(p.opt_temperatures, float)
    total = 1 + opt_temps.size
    done = 0
    err = grid["student_error"]
    best_T = np.full(lam_t.size, np.nan)
    best_err = np.full(lam_t.size, np.nan)
    for i in range(lam_t.size):
        best_T[i], best_err[i] = _argmin(temps, err[i])

    # The teacher's own optimum (its error does not depend on the student's settings) and the
    # student's at the reference temperature: best_teacher, from the teacher's grid optimum.
    lt0, t_err0 = _argmin(lam_t, grid["teacher_error"])
    T_ref = float(p.dd_temperature)
    lt_teacher, t_best, t_by_grad = lt0, t_err0, False
    ref_student = None
    if p.student_gradient and np.isfinite(lt0):
        lt_t, lt_s = optima.best_teacher(lt0, T_ref)
        ref_student = lt_s
    elif p.teacher_gradient and np.isfinite(lt0):
        values, _ = optima.optimum(("lam_t",), {"lam_t": lt0}, objective="teacher")
        lt_t = None if values is None else values["lam_t"]
    else:
        lt_t = None
    if lt_t is not None:
        e = solves.student(lt_t, T_ref)[1]
        (lt_teacher,), t_best, t_by_grad = _keep_better((lt0,), t_err0, (lt_t,), e)
    done += 1
    _tick(progress, stage, done, total)

    n = opt_temps.size
    lam_t_student, student_best = np.full(n, np.nan), np.full(n, np.nan)
    teacher_at, by_grad = np.full(n, np.nan), np.zeros(n)
    for k, T in enumerate(opt_temps):
        # start from the best of the figure-1 grid and the teacher's own optimum, at this T
        j = int(np.argmin(np.abs(np.log(temps / T))))
        column = (err[:, j] if np.isclose(temps[j], T) else
                  np.array([solves.student(lt, T)[0] for lt in lam_t]))
        start_lt, start_err = _argmin(np.append(lam_t, lt_teacher),
                                      np.append(column, solves.student(lt_teacher, T)[0]))
        lt_k = None
        if p.student_gradient and np.isfinite(start_lt):
            if ref_student is not None and np.isclose(T, T_ref):
                lt_k = ref_student
            else:
                values, _ = optima.optimum(("lam_t",), {"lam_t": start_lt}, temperature=T)
                lt_k = None if values is None else values["lam_t"]
        e = solves.student(lt_k, T)[0] if lt_k is not None else math.nan
        (lam_t_student[k],), student_best[k], by_grad[k] = _keep_better(
            (start_lt,), start_err, None if lt_k is None else (lt_k,), e)
        teacher_at[k] = solves.student(lam_t_student[k], T)[1]
        done += 1
        _tick(progress, stage, done, total)
    return {
        "lam_t": lam_t, "teacher_error": grid["teacher_error"], "best_temperature": best_T,
        "student_best_error": best_err,
        "lam_t_teacher": np.float64(lt_teacher), "teacher_best_error": np.float64(t_best),
        "teacher_by_gradient": np.float64(t_by_grad),
        "opt_temperature": opt_temps, "lam_t_student": lam_t_student,
        "student_error_at_lam_t_student": student_best, "teacher_error_at_lam_t_student": teacher_at,
        "student_by_gradient": by_grad,
        "student_error_at_lam_t_teacher": np.array(
            [solves.student(lt_teacher, T)[0] for T in opt_temps]),
        "hard_best_error": grid["hard_best_error"],
    }


# --------------------------------------------------------------------------- 3. double descent


def double_descent_curves(p: Plan) -> list[dict]:
    """The curves of figure 3: label, teacher lam_t, hard_weight, lam_s, data."""
    small, reg, lt = p.dd_lam_s_small, p.dd_lam_s_reg, p.dd_lam_t
    return [
        dict(label="KD, same inputs", lam_t=lt, hard_weight=0.0, lam_s=small, data="same"),
        dict(label="KD, same inputs", lam_t=lt, hard_weight=0.0, lam_s=reg, data="same"),
        dict(label="KD, same inputs", lam_t=p.dd_lam_t_strong, hard_weight=0.0, lam_s=small,
             data="same"),
        dict(label="KD, fresh inputs", lam_t=lt, hard_weight=0.0, lam_s=small, data="fresh"),
        dict(label="KD, fresh inputs", lam_t=lt, hard_weight=0.0, lam_s=reg, data="fresh"),
        dict(label="hard labels", lam_t=lt, hard_weight=1.0, lam_s=small, data="same"),
        dict(label="hard labels", lam_t=lt, hard_weight=1.0, lam_s=reg, data="same"),
    ]


def double_descent(p: Plan, solves: Solves, progress: Progress | None = None) -> dict:
    """Figure 3: student error against ``alpha`` (``T = p.dd_temperature``).

    Per curve: errors on ``p.dd_alphas`` plus ``p.dd_refine`` x each predicted threshold (NaN
    where the solve failed or was refused), the ``alpha`` of the highest point (the peak; NaN
    when the maximum sits at an end of the grid) and the predicted threshold: ``alpha = gamma``
    for soft labels (more samples than student weights), the student's separability threshold
    ``gamma alpha*(delta / gamma, rho)`` for hard labels.
    """
    from kdjax import separability_threshold

    stage = "double descent"
    hard_star = p.gamma * float(separability_threshold(p.delta / p.gamma, p.rho))
    teacher_star = float(separability_threshold(p.delta, p.rho))
    alphas = np.asarray(p.dd_alphas, float)
    extra = [c * f for c in (p.gamma, hard_star) for f in p.dd_refine]
    alphas = np.unique(np.round(np.concatenate([alphas, extra]), 12))
    curves = double_descent_curves(p)
    total = alphas.size * len(curves)
    errors = np.full((len(curves), alphas.size), np.nan)
    teacher = np.full((len(curves), alphas.size), np.nan)
    done = 0
    for c, curve in enumerate(curves):
        for i, alpha in enumerate(alphas):
            errors[c, i], teacher[c, i] = solves.student(
                curve["lam_t"], p.dd_temperature, curve["hard_weight"], curve["lam_s"],
                alpha=alpha, data=curve["data"])
            done += 1
            _tick(progress, stage, done, total)
    peak_alpha = np.full(len(curves), np.nan)
    peak_error = np.full(len(curves), np.nan)
    max_alpha = np.full(len(curves), np.nan)
    max_error = np.full(len(curves), np.nan)
    predicted = np.array([hard_star if c["hard_weight"] >= 1 else p.gamma for c in curves])
    at_predicted = np.full(len(curves), np.nan)
    for c in range(len(curves)):
        row = errors[c]
        k_pred = int(np.argmin(np.abs(alphas - predicted[c])))
        at_predicted[c] = row[k_pred]
        if np.isfinite(row).any():
            k = int(np.nanargmax(row))
            max_alpha[c], max_error[c] = alphas[k], row[k]
            # a maximum at the grid's edge is no peak (monotone curve)
            if 0 < k < row.size - 1:
                peak_alpha[c], peak_error[c] = alphas[k], row[k]
    return {
        "alpha": alphas, "curves": curves, "student_error": errors, "teacher_error": teacher,
        "lam_t": np.array([c["lam_t"] for c in curves]),
        "hard_weight": np.array([c["hard_weight"] for c in curves]),
        "lam_s": np.array([c["lam_s"] for c in curves]),
        "fresh": np.array([1.0 if c["data"] == "fresh" else 0.0 for c in curves]),
        "peak_alpha": peak_alpha, "peak_error": peak_error, "max_alpha": max_alpha,
        "max_error": max_error, "predicted_threshold": predicted,
        "error_at_predicted": at_predicted,
        "student_bayes_error": np.array([student_bayes_error(p, a) for a in alphas]),
        "hard_separability_alpha": np.float64(hard_star),
        "teacher_separability_alpha": np.float64(teacher_star),
    }


# --------------------------------------------------------------------------- 4. temperature


def optimal_recipe(p: Plan, solves: Solves, optima: Optima, alpha: float, gamma: float,
                   lam_t_teacher: float = math.nan) -> dict:
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
    out = {"lam_t": lt0, "temperature": T0, "error": err0, "gradient": 0.0}
    if not (p.student_gradient and np.isfinite(err0)):
        return out
    values, _ = optima.optimum(("lam_t", "temperature"), {"lam_t": lt0, "temperature": T0},
                               alpha=alpha, gamma=gamma)
    err = (solves.student(values["lam_t"], values["temperature"], alpha=alpha, gamma=gamma)[0]
           if values is not None else math.nan)
    values, err, by = _keep_better({"lam_t": lt0, "temperature": T0}, err0, values, err)
    out.update(lam_t=values["lam_t"], temperature=values["temperature"], error=err,
               gradient=float(by))
    return out


def _flatness(solves: Solves, rec: dict, alpha: float, gamma: float) -> float:
    """Largest error increase when ``T*`` is halved or doubled: how well ``T*`` is determined."""
    lt, T = rec["lam_t"], rec["temperature"]
    if not np.isfinite(rec["error"]):
        return math.nan
    near = [solves.student(lt, T * f, alpha=alpha, gamma=gamma)[0] for f in (0.5, 2.0)]
    return float(np.nanmax(np.asarray(near) - rec["error"]))


def temperature_study(p: Plan, solves: Solves, optima: Optima, grid: dict,
                      progress: Progress | None = None) -> dict:
    """Figure 4: error against ``T`` for several ``lam_t`` (from the figure-1 grid), and the
    optimal ``(lam_t, T)`` with its error over ``p.map_alphas x p.map_gammas``, with the
    teacher's own optimal ``lam_t`` at each ``alpha`` (``optimize_kd(objective="teacher")``).
    """
    stage = "temperature"
    A, G = np.asarray(p.map_alphas, float), np.asarray(p.map_gammas, float)
    total = A.size * G.size + A.size
    keys = ("lam_t", "temperature", "error", "gradient")
    maps = {k: np.full((A.size, G.size), np.nan) for k in keys}
    teacher_at_opt = np.full((A.size, G.size), np.nan)
    flat = np.full((A.size, G.size), np.nan)
    done = 0
    # the teacher's optimal lam_t at each alpha (independent of gamma and T)
    lam_t_teacher = np.full(A.size, np.nan)
    teacher_best = np.full(A.size, np.nan)
    teacher_by_grad = np.zeros(A.size)
    g0, T0 = float(G[0]), float(p.map_temperatures[0])
    for i, alpha in enumerate(A):
        f = lambda lt, alpha=alpha: solves.student(lt, T0, alpha=alpha, gamma=g0)[1]
        lt0, e0 = _argmin(p.map_lam_t, [f(lt) for lt in p.map_lam_t])
        values = None
        if p.teacher_gradient and np.isfinite(e0):
            values, _ = optima.optimum(("lam_t",), {"lam_t": lt0}, objective="teacher",
                                       alpha=alpha, gamma=g0)
        e = f(values["lam_t"]) if values is not None else math.nan
        values, teacher_best[i], teacher_by_grad[i] = _keep_better({"lam_t": lt0}, e0, values, e)
        lam_t_teacher[i] = values["lam_t"]
        done += 1
        _tick(progress, stage, done, total)
    for i, alpha in enumerate(A):
        for j, gamma in enumerate(G):
            rec = optimal_recipe(p, solves, optima, float(alpha), float(gamma), lam_t_teacher[i])
            for k in keys:
                maps[k][i, j] = rec[k]
            flat[i, j] = _flatness(solves, rec, float(alpha), float(gamma))
            if np.isfinite(rec["lam_t"]):
                teacher_at_opt[i, j] = solves.student(rec["lam_t"], rec["temperature"],
                                                      alpha=alpha, gamma=gamma)[1]
            done += 1
            _tick(progress, stage, done, total)
    return {
        "lam_t": grid["lam_t"], "temperature": grid["temperature"],
        "student_error": grid["student_error"],
        "map_alpha": A, "map_gamma": G,
        "opt_lam_t": maps["lam_t"], "opt_temperature": maps["temperature"],
        "opt_error": maps["error"], "opt_by_gradient": maps["gradient"],
        "opt_temperature_sensitivity": flat,
        "teacher_error_at_opt": teacher_at_opt,
        "lam_t_teacher": lam_t_teacher, "teacher_best_error": teacher_best,
        "teacher_by_gradient": teacher_by_grad,
        "gradient": np.float64(1.0 if p.student_gradient else 0.0),
    }


# --------------------------------------------------------------------------- 5. simulations


def _simulate(p: Plan, alpha, lam_t, temperature, hard_weight, lam_s, seeds):
    """Mean and s.e.m. over converged seeds of the finite-N student and teacher errors."""
    from kdjax import simulate_student

    sim = simulate_student(
        Mixture(float(alpha), p.delta, p.rho), Teacher(p.loss, float(lam_t)),
        Student(gamma=p.gamma, temperature=float(temperature), hard_weight=float(hard_weight),
                lam=float(lam_s)),
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


def simulations(p: Plan, solves: Solves, progress: Progress | None = None) -> dict:
    """Figure 5: finite-``N`` experiments at the points of figures 1 and 3, with the theory.

    Figure 1 points: ``lam_t`` in ``p.sim_lam_t`` at ``T = p.sim_temperature`` (``a = 0``,
    ``lam_s = 0``).  Figure 3 points: ``p.sim_dd_points`` (same inputs, the figure's teacher).
    Point ``k`` uses seeds ``k S .. (k + 1) S - 1`` (``S = p.sim_seeds``), so the points are
    statistically independent.  The error is the MODEL.md formula at each seed's overlaps,
    averaged over the converged seeds (``seeds`` counts them).
    """
    stage = "simulation"
    points = [("fig1", p.alpha, lt, p.sim_temperature, 0.0, 0.0) for lt in p.sim_lam_t]
    points += [("fig3", a, p.dd_lam_t, p.dd_temperature, hw, ls) for a, hw, ls in p.sim_dd_points]
    rows = {k: [] for k in ("figure", "alpha", "lam_t", "temperature", "hard_weight", "lam_s",
                            "first_seed", "student_mean", "student_sem", "teacher_mean",
                            "teacher_sem", "seeds", "student_theory", "teacher_theory")}
    S = p.sim_seeds
    for n, (fig, alpha, lt, T, hw, ls) in enumerate(points):
        sim = _simulate(p, alpha, lt, T, hw, ls, list(range(n * S, (n + 1) * S)))
        eps_s, eps_t = solves.student(lt, T, hw, ls, alpha=alpha)
        for k, v in dict(figure=1.0 if fig == "fig1" else 3.0, alpha=alpha, lam_t=lt, temperature=T,
                         hard_weight=hw, lam_s=ls, first_seed=n * S, student_theory=eps_s,
                         teacher_theory=eps_t, **sim).items():
            rows[k].append(float(v))
        _tick(progress, stage, n + 1, len(points))
    out = {k: np.asarray(v) for k, v in rows.items()}
    out["n_features"] = np.float64(p.sim_n_features)
    out["n_seeds"] = np.float64(p.sim_seeds)
    return out


# --------------------------------------------------------------------------- sanity checks


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
    kd = 0  # curve order of double_descent_curves: KD, same inputs, small lam_s
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


# --------------------------------------------------------------------------- driver


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
    fig1 = timed("inheritance", inheritance, p, solves, optima, progress)
    fig2 = timed("limited by the teacher", limited_by_teacher, p, solves, optima, fig1, progress)
    fig3 = timed("double descent", double_descent, p, solves, progress)
    fig4 = timed("temperature", temperature_study, p, solves, optima, fig1, progress)
    fig5 = timed("simulation", simulations, p, solves, progress)
    timings["total"] = time.perf_counter() - t0
    res = {"plan": p, "inheritance": fig1, "limited": fig2, "double_descent": fig3,
           "temperature": fig4, "simulation": fig5, "timings": timings,
           "solves": {"count": solves.count, "seconds": solves.seconds,
                      "refused": list(solves.refused)},
           "optima": {"calls": optima.calls, "evaluations": optima.evaluations,
                      "seconds": optima.seconds, "failures": list(optima.failures)}}
    res["checks"] = checks(res)
    return res


def run(out_dir: str, quick: bool = False, progress: Progress | None = None) -> list[str]:
    """Compute everything and write figures, CSVs and ``report.md`` into ``out_dir``.

    Returns the paths written.  ``progress(stage, done, total)`` is called as work advances.
    """
    from . import _figures as figures

    results = compute(quick, progress)
    return figures.write_all(results, str(out_dir), progress)
