"""Shared pieces of the reproduction: the plan, the memoised solves and gradient searches, CSV
writing, plotting and number formatting helpers.  Matplotlib is imported lazily, inside the
plotting helpers (``kdjax[paper]``)."""

from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

import kdjax
from kdjax import Mixture, Student, Teacher

Progress = Callable[[str, int, int], None]


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


def keep_better(start_values, start_error, values, error):
    """The optimiser's point if it is finite and no worse than the grid's (then ``True``)."""
    if values is not None and np.isfinite(error) and error <= start_error + 1e-12:
        return values, error, True
    return start_values, start_error, False


def argmin(xs, ys):
    ys = np.asarray(ys, float)
    if not np.isfinite(ys).any():
        return math.nan, math.nan
    k = int(np.nanargmin(ys))
    return float(np.asarray(xs)[k]), float(ys[k])


def tick(progress, stage, done, total):
    if progress is not None:
        progress(stage, min(done, total), total)


def hard_teacher_lam(p: Plan) -> float:
    """The teacher ``lam_t`` passed along with a hard-label student (which ignores it)."""
    return float(p.dd_lam_t)


def student_bayes_error(p: Plan, alpha: float) -> float:
    """Bayes-optimal error of a classifier of the student's ``gamma N`` coordinates trained on
    ``alpha N`` labelled samples: the mixture with ``N -> gamma N``, ``delta -> delta / gamma``.

    A lower bound for every same-input student (the other coordinates carry no information on
    the student's part of the cluster direction).
    """
    from kdjax import bayes_optimal_error

    return float(bayes_optimal_error(Mixture(alpha / p.gamma, p.delta / p.gamma, p.rho)))


LAM_T, LAM_S, EPS = r"$\lambda_t$", r"$\lambda_s$", r"$\epsilon_g$"


ALPHA, GAMMA, T_ = r"$\alpha$", r"$\gamma$", r"$T$"


SIM_LABEL = "simulation, N={n} (mean $\\pm$ s.e.m.)"


FLAT = 1e-4  # error change between T*/2 and 2T* below which T* is called ill-determined


def write_csv(path: str, header: list[str], rows) -> tuple[str, int]:
    """Write numeric ``rows`` under ``header``; rows holding a non-finite value are dropped.

    Returns ``(path, number of dropped rows)``.
    """
    kept, dropped = [], 0
    for row in rows:
        values = [float(v) for v in row]
        if all(math.isfinite(v) for v in values):
            kept.append(values)
        else:
            dropped += 1
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for values in kept:
            w.writerow([repr(v) for v in values])
    return path, dropped


def new_figure(ncols=1, nrows=1, size=(6.4, 4.6)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save(fig, path):
    fig.savefig(path, dpi=110)
    return path


def palette(n, cmap="viridis"):
    from matplotlib import colormaps

    cm = colormaps[cmap]
    return [cm(x) for x in np.linspace(0.0, 0.85, max(n, 1))]


def plain_log_ticks(axis, lo, hi, candidates=(0.1, 0.2, 0.25, 0.5, 1, 2, 4, 5, 8, 10, 16, 20)):
    """Log axis with plain-number major ticks (``0.5, 1, 2``) and no minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = [c for c in candidates if lo * 0.999 <= c <= hi * 1.001]
    if len(ticks) > 7:  # keep every other one
        ticks = ticks[::2]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plain_log_labels(axis, leads=(1.0, 2.0, 3.0, 5.0)):
    """Plain-number labels on a log axis: every decade and its ``leads`` multiples."""
    from matplotlib.ticker import FuncFormatter

    def label(v, _):
        if v <= 0:
            return ""
        lead = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
        return f"{v:.2g}" if lead in leads else ""

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def fmt(x, digits=4):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def short(x, digits=3):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def source(flag):
    return "gradient" if float(flag) else "grid"


def sim_rows(sim, figure):
    sel = np.asarray(sim["figure"]) == figure
    return {k: np.asarray(v)[sel] for k, v in sim.items() if np.ndim(v) == 1}


def spearman(x, y):
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return math.nan
    rx = np.argsort(np.argsort(x[ok])).astype(float)
    ry = np.argsort(np.argsort(y[ok])).astype(float)
    return float(np.corrcoef(rx, ry)[0, 1])


def curve_index(f3: dict, name: str) -> int:
    """Position of the figure-3 curve called ``name`` (see ``double_descent_curves``)."""
    return [c["name"] for c in f3["curves"]].index(name)
