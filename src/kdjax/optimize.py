"""Optimal KD recipes by gradient descent on the exact test error.

The free hyperparameters are optimised in unconstrained coordinates: ``log`` for positive
ones (``lam_t, temperature, lam_s, alpha, delta, alpha_s``), ``logit`` for those in (0, 1)
(``hard_weight, rho``) and ``gamma`` in (0, 1].  Each objective evaluation is one solve of
both fixed points; its gradient comes from the implicit function theorem (no unrolling).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .params import Mixture, SolverConfig, Student, Teacher
from .sweep import PARAMETERS, solve, with_values

_LOG = ("lam_t", "temperature", "lam_s", "alpha", "delta", "alpha_s")
_LOGIT = ("hard_weight", "rho", "gamma")
_FLOOR = 1e-6  # starting values on the closed edge (lam = 0, a in {0, 1}) are moved inside


def _to_free(name, value):
    if name in _LOG:
        return jnp.log(jnp.maximum(value, _FLOOR))
    p = jnp.clip(value, _FLOOR, 1.0 - _FLOOR)
    return jnp.log(p) - jnp.log1p(-p)


def _from_free(name, u):
    return jnp.exp(u) if name in _LOG else jax.nn.sigmoid(u)


@dataclasses.dataclass(frozen=True)
class KDOptimum:
    """Result of ``optimize_kd``.

    params: optimal values of the free hyperparameters; gen_error: the objective there;
    mixture/teacher/student: the optimal setting; path: per-iteration arrays (each free
    parameter and ``gen_error``); solves: fixed-point solves used (objective evaluations,
    line-search trials included); converged: the last solve converged.
    """

    params: dict
    gen_error: float
    mixture: Mixture
    teacher: Teacher
    student: Student | None
    path: dict
    solves: int
    converged: bool


def _current(mixture, teacher, student, name):
    which, field = PARAMETERS[name]
    obj = {"mixture": mixture, "teacher": teacher, "student": student}[which]
    if obj is None:
        raise ValueError(f"free parameter {name!r} needs a student")
    return float(getattr(obj, field))


def optimize_kd(
    mixture: Mixture,
    teacher: Teacher,
    student: Student | None,
    free=("lam_t", "temperature"),
    *,
    objective: str = "student",
    steps: int = 50,
    tol: float = 1e-9,
    learning_rate: float = 1.0,
    config: SolverConfig = SolverConfig(),
) -> KDOptimum:
    """Minimise the student's (or the teacher's, ``objective="teacher"``) exact test error.

    Gradient descent with Barzilai-Borwein step lengths and Armijo backtracking on the
    unconstrained coordinates of ``free``, from the values in the given objects (first trial
    step ``learning_rate``); stops after ``steps`` iterations or when the error changes by less
    than ``tol`` between iterations.  One compiled ``value_and_grad``; every trial is a solve.
    """
    free = tuple(free)
    if not free:
        raise ValueError("free must name at least one parameter")
    for name in free:
        if name not in PARAMETERS:
            raise ValueError(f"unknown free parameter {name!r}; known: {', '.join(PARAMETERS)}")
    if objective not in ("student", "teacher"):
        raise ValueError(f"objective must be 'student' or 'teacher', got {objective!r}")
    if objective == "student" and student is None:
        raise ValueError("objective='student' needs a student")
    u0 = {n: _to_free(n, _current(mixture, teacher, student, n)) for n in free}

    def setting(u):
        return with_values(mixture, teacher, student, {n: _from_free(n, u[n]) for n in free})

    def error(u):
        m, t, s = setting(u)
        res = solve(m, t, s if objective == "student" else None, config)
        # An unconverged solve is no candidate: NaN makes the line search reject it.
        return jnp.where(res.converged, res.gen_error, jnp.nan)

    value_and_grad = jax.jit(jax.value_and_grad(error))
    flat = lambda d: jnp.stack([d[n] for n in free])
    unflat = lambda x: {n: x[i] for i, n in enumerate(free)}

    x = flat(u0)
    value, grad = value_and_grad(unflat(x))
    solves, step_size = 1, learning_rate
    path = {n: [float(_from_free(n, x[i]))] for i, n in enumerate(free)} | {"gen_error": [float(value)]}
    for _ in range(steps):
        g = flat(grad)
        # Backtracking (Armijo) along -g from the Barzilai-Borwein step length.
        t = step_size
        for _ in range(30):
            cand = x - t * g
            v_c, g_c = value_and_grad(unflat(cand))
            solves += 1
            if jnp.isfinite(v_c) and v_c <= value - 1e-4 * t * jnp.dot(g, g):
                break
            t *= 0.5
        else:
            break
        s_k, y_k = cand - x, flat(g_c) - g
        sy = float(jnp.dot(s_k, y_k))
        step_size = float(jnp.dot(s_k, s_k)) / sy if sy > 0 else 2.0 * t
        done = abs(float(value - v_c)) < tol
        x, value, grad = cand, v_c, g_c
        for i, n in enumerate(free):
            path[n].append(float(_from_free(n, x[i])))
        path["gen_error"].append(float(value))
        if done:
            break
    u = unflat(x)
    m, t, s = setting(u)
    m, t, s = _concrete(m), _concrete(t), _concrete(s)
    final = solve(m, t, s if objective == "student" else None, config)
    solves += 1
    return KDOptimum(
        params={n: float(_from_free(n, u[n])) for n in free},
        gen_error=float(final.gen_error),
        mixture=m, teacher=t, student=s,
        path={k: np.asarray(v) for k, v in path.items()},
        solves=solves,
        converged=bool(final.converged),
    )


def _concrete(obj):
    return None if obj is None else jax.tree_util.tree_map(float, obj)


def best_teacher(mixture: Mixture, teacher: Teacher, student: Student, **kwargs) -> dict:
    """The paper's question: the ``lam_t`` best for the teacher's own error vs best for its student.

    Returns ``lam_t_teacher, teacher_error`` (teacher objective) and ``lam_t_student,
    student_error`` (student objective, the student's hyperparameters held fixed).
    """
    own = optimize_kd(mixture, teacher, student, ("lam_t",), objective="teacher", **kwargs)
    kd = optimize_kd(mixture, teacher, student, ("lam_t",), objective="student", **kwargs)
    return {
        "lam_t_teacher": own.params["lam_t"], "teacher_error": own.gen_error,
        "lam_t_student": kd.params["lam_t"], "student_error": kd.gen_error,
        "solves": own.solves + kd.solves,
    }
