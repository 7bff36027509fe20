"""What the figure modules share: memoised solves and gradient searches, the CSV writer, plotting
and formatting helpers.

Everything here goes through the public ``kdjax`` API.  Matplotlib is imported inside the plotting
helpers only (object API with the Agg canvas: no ``pyplot``, no global backend switch), so that
``import kdjax.paper`` works without it.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import time

import numpy as np

import kdjax

from ._plan import Plan

__all__ = ["solve_or_none", "Solves", "Optima", "keep_better", "argmin", "mixture",
           "student_bayes_error",
           "Table", "write_csv", "figure", "save", "colors", "plain_log_ticks", "plain_log_labels",
           "fmt", "g", "by", "LAM_T", "LAM_S", "EPS", "ALPHA", "GAMMA", "T_", "SIM_LABEL"]


# --------------------------------------------------------------------------- failures


def solve_or_none(fn, *args, errors: tuple = (ValueError, RuntimeError), **kwargs):
    """``(fn(*args, **kwargs), None)``, or ``(None, err)`` when it raised one of ``errors``.

    The one place where the reproduction handles a failing gradient search (bad starting points,
    a search whose line search fails); theory solves use ``throw=False`` and their result codes.
    """
    try:
        return fn(*args, **kwargs), None
    except errors as err:
        return None, err


# --------------------------------------------------------------------------- theory solves


class Solves:
    """Memoised exact solves through the compiled ``kdjax.solve_student`` (and its teacher).

    ``student(...)`` returns ``(eps_student, eps_teacher)``; an entry is NaN when that solve
    did not converge or its objective has no finite minimiser (``ValueError`` from the eager
    regime check).  The arguments are converted to Python floats so that every call hits the
    same compiled program (one for clean labels, one for ``label_noise > 0``).
    """

    def __init__(self, p: Plan):
        self.plan = p
        self.cache: dict = {}
        self.count = 0
        self.seconds = 0.0
        self.refused: list = []

    def student(self, lam_t, temperature=1.0, hard_weight=0.0, lam_s=0.0, *, alpha=None,
                gamma=None, data="same", label_noise=0.0):
        p = self.plan
        key = tuple(float(x) for x in (
            lam_t, temperature, hard_weight, lam_s, p.alpha if alpha is None else alpha,
            p.gamma if gamma is None else gamma)) + (data, float(label_noise))
        if key in self.cache:
            return self.cache[key]
        lam_t, T, a, lam_s, alpha, gamma, _, eta = key
        mixture = kdjax.Mixture(alpha, p.delta, p.rho, eta)
        student = kdjax.Student(gamma=gamma, temperature=T, hard_weight=a, lam=lam_s, data=data,
                                alpha=alpha if data == "fresh" else None)
        start = time.perf_counter()
        res = kdjax.solve_student(mixture, kdjax.Teacher(p.loss, lam_t), student, throw=False)
        eps_s = float(res.gen_error) if bool(res.converged) else math.nan
        eps_t = float(res.teacher.gen_error) if bool(res.teacher.converged) else math.nan
        for who, r in (("teacher", res.teacher), ("student", res)):
            if r.result == kdjax.RESULTS.no_finite_minimiser:  # refused by name in the report
                self.refused.append((key, f"the {who} has no finite minimiser at {describe_key(key)}"))
                break
        self.seconds += time.perf_counter() - start
        self.count += 1
        self.cache[key] = (eps_s, eps_t)
        return eps_s, eps_t


class Optima:
    """Gradient searches through ``kdjax.optimize_kd`` / ``kdjax.best_teacher``, with their cost.

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

    def setting(self, lam_t, T, hard_weight=0.0, lam_s=0.0, alpha=None, gamma=None):
        """``(mixture, teacher, student)`` at the reference setting, with these overrides."""
        p = self.plan
        mixture = kdjax.Mixture(float(p.alpha if alpha is None else alpha), p.delta, p.rho)
        student = kdjax.Student(gamma=float(p.gamma if gamma is None else gamma),
                                temperature=float(T), hard_weight=float(hard_weight),
                                lam=float(lam_s))
        return mixture, kdjax.Teacher(p.loss, float(lam_t)), student

    def search(self, fn, *args, **kwargs):
        """``fn(*args, steps, tol, **kwargs)``, or ``None`` (failure recorded) when it raised."""
        p = self.plan
        start = time.perf_counter()
        out, err = solve_or_none(fn, *args, steps=p.opt_steps, tol=p.opt_tol,
                                 errors=(ValueError, RuntimeError, FloatingPointError), **kwargs)
        if err is not None:  # the grid point is kept
            self.failures.append(f"{getattr(fn, '__name__', fn)}({describe(args, kwargs)}): "
                                 f"{summary(err)}")
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out

    def optimum(self, free, start: dict, objective="student", **setting):
        """Minimise over ``free`` from ``start`` (name -> value, with the fixed ``setting``).

        Returns ``(values, converged)``: the optimiser's free values (``None`` on failure).
        """
        values = dict(setting, **start)
        mixture, teacher, student = self.setting(
            values["lam_t"], values.get("temperature", 1.0), values.get("hard_weight", 0.0),
            values.get("lam_s", 0.0), values.get("alpha"), values.get("gamma"))
        opt = self.search(kdjax.optimize_kd, mixture, teacher, student, tuple(free),
                          objective=objective)
        if opt is None:
            return None, False
        self.evaluations += int(opt.solves)
        return dict(opt.params), bool(opt.converged)

    def best_teacher(self, lam_t, T):
        """``best_teacher`` at the reference setting: ``(lam_t_teacher, lam_t_student)``."""
        out = self.search(kdjax.best_teacher, *self.setting(lam_t, T))
        if out is None:
            return None, None
        self.evaluations += int(out.solves)
        return float(out.lam_t_teacher), float(out.lam_t_student)


def describe_key(key) -> str:
    """A ``Solves`` cache key in the report's notation."""
    lam_t, T, a, lam_s, alpha, gamma, data, eta = key
    noise = f", label noise eta={eta:g}" if eta else ""
    return (f"alpha={alpha:g}, gamma={gamma:g}, lam_t={lam_t:.3g}, T={T:.3g}, a={a:g}, "
            f"lam_s={lam_s:.3g}, {data} inputs{noise}")


def describe(args, kwargs) -> str:
    """The setting of a failed search, in the report's notation."""
    mixture, teacher, student = args[:3]
    text = (f"alpha={float(mixture.alpha):g}, gamma={float(student.gamma):g}, "
            f"lam_t={float(teacher.lam):.3g}, T={float(student.temperature):.3g}, "
            f"a={float(student.hard_weight):g}, lam_s={float(student.lam):.3g}")
    if len(args) > 3:
        text += f", free={args[3]}"
    return text + "".join(f", {k}={v}" for k, v in kwargs.items())


def summary(err: BaseException) -> str:
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
    """``(x, y)`` at the smallest finite ``y`` (NaNs when there is none)."""
    ys = np.asarray(ys, float)
    if not np.isfinite(ys).any():
        return math.nan, math.nan
    k = int(np.nanargmin(ys))
    return float(np.asarray(xs)[k]), float(ys[k])


def mixture(p: Plan, alpha: float | None = None, label_noise: float = 0.0) -> kdjax.Mixture:
    """The plan's mixture at ``alpha`` (default ``p.alpha``) with training labels flipped with
    probability ``label_noise`` (an exact 0: clean labels, ``Mixture.noisy`` False)."""
    return kdjax.Mixture(float(p.alpha if alpha is None else alpha), p.delta, p.rho,
                         float(label_noise))


def student_bayes_error(p: Plan, alpha: float, label_noise: float = 0.0) -> float:
    """Bayes-optimal error of a classifier of the student's ``gamma N`` coordinates trained on
    ``alpha N`` labelled samples: the mixture with ``N -> gamma N``, ``delta -> delta / gamma``,
    the same label noise.

    A lower bound for every same-input student (the other coordinates carry no information on
    the student's part of the cluster direction).
    """
    seen = kdjax.Mixture(alpha / p.gamma, p.delta / p.gamma, p.rho, float(label_noise))
    return float(kdjax.bayes_optimal_error(seen))


# --------------------------------------------------------------------------- CSV


@dataclasses.dataclass(frozen=True)
class Table:
    """One CSV file of a figure: its file name, column names and numeric rows."""

    name: str
    header: list
    rows: list


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


# --------------------------------------------------------------------------- plotting helpers

LAM_T, LAM_S, EPS = r"$\lambda_t$", r"$\lambda_s$", r"$\epsilon_g$"
ALPHA, GAMMA, T_ = r"$\alpha$", r"$\gamma$", r"$T$"
SIM_LABEL = "simulation, N={n} (mean $\\pm$ s.e.m.)"


def figure(ncols=1, nrows=1, size=(6.4, 4.6)):
    """A matplotlib ``Figure`` on the Agg canvas and its ``nrows x ncols`` axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save(fig, path):
    fig.savefig(path, dpi=110)
    return path


def colors(n, cmap="viridis"):
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


# --------------------------------------------------------------------------- report formatting


def fmt(x, digits=4):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def g(x, digits=3):
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}"


def by(flag):
    return "gradient" if float(flag) else "grid"
