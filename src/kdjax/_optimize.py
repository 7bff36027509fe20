"""Optimal KD recipes by quasi-Newton descent (optax L-BFGS) on the exact test error.

The free hyperparameters are optimised in unconstrained coordinates: ``log`` for positive
ones (``lam_t, temperature, lam_s, alpha, delta, alpha_s``), ``logit`` for those in (0, 1)
(``hard_weight, rho``), ``gamma`` in (0, 1] and ``logit(2 eta)`` for ``label_noise``; a chain's
generation-``K`` names ``genK.NAME`` (``gen2.temperature``) like ``NAME``.  Each objective
evaluation is one solve of every fixed point (teacher, student or each generation of a chain);
its gradient comes from the implicit function theorem (no unrolling).
The quasi-Newton directions are optax's L-BFGS; the line search runs on the host, so that
every trial is a call of one cached compiled function.
"""

from __future__ import annotations

from functools import lru_cache, partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._compile import jit
from ._generations import solve_student, solve_teacher
from ._params import Mixture, SolverConfig, Student, Teacher, check_integer, check_range
from ._sweep import parameter, solve, students_of, with_values

_LOG = ("lam_t", "temperature", "lam_s", "alpha", "delta", "alpha_s")
_LOGIT = ("hard_weight", "rho", "gamma")
_FLOOR = 1e-6  # starting values on the closed edge (lam = 0, a in {0, 1}) are moved inside


def _base_name(name):
    """``NAME`` of ``genK.NAME`` (the name itself otherwise): the coordinate transform's key."""
    return name.split(".", 1)[1] if name.startswith("gen") and "." in name else name


def _to_free(name, value):
    name = _base_name(name)
    if name in _LOG:
        return jnp.log(jnp.maximum(value, _FLOOR))
    p = jnp.clip(2.0 * value if name == "label_noise" else value, _FLOOR, 1.0 - _FLOOR)
    return jnp.log(p) - jnp.log1p(-p)


def _from_free(name, u):
    name = _base_name(name)
    if name in _LOG:
        return jnp.exp(u)
    return 0.5 * jax.nn.sigmoid(u) if name == "label_noise" else jax.nn.sigmoid(u)


class KDOptimum(eqx.Module):
    """Result of ``optimize_kd``.

    params: optimal values of the free hyperparameters; gen_error: the objective there;
    mixture/teacher/student: the optimal setting (``student`` a tuple for a chain); path:
    per-iteration arrays (each free parameter and ``gen_error``); solves: fixed-point solves used
    (objective evaluations, line-search trials included); converged: the last solve converged;
    chain_errors: each generation's test error at the optimum, the teacher first (a single
    student: ``(teacher, student)``; no student: ``(teacher,)``); best_depth: the generation
    ``0..K`` with the smallest of them (0: the teacher).
    """

    params: dict
    gen_error: float
    mixture: Mixture
    teacher: Teacher
    student: Student | None
    path: dict
    solves: int
    converged: bool
    chain_errors: tuple = ()
    best_depth: int = 0


def _current(mixture, teacher, student, name):
    """The starting value of ``name``.  A plain student name on a chain sets every generation
    (as in ``with_values``): their values must agree."""
    which, k, field = parameter(name)
    if which != "student":
        return float(getattr({"mixture": mixture, "teacher": teacher}[which], field))
    students = students_of(student)
    if not students:
        raise ValueError(f"free parameter {name!r} needs a student")
    if k is not None and k > len(students):
        raise ValueError(f"free parameter {name!r} names generation {k} of a chain of {len(students)}")
    chosen = students if k is None else (students[k - 1],)
    values = [getattr(s, field) for s in chosen]
    if any(v is None for v in values):
        raise ValueError(f"free parameter {name!r} needs a student with data='fresh'")
    values = [float(v) for v in values]
    if len(set(values)) > 1:
        raise ValueError(f"free parameter {name!r} sets every generation of the chain, whose values differ "
                         f"({', '.join(f'{v:g}' for v in values)}); name one generation (gen1.{_base_name(name)}, ...)")
    return values[0]


def _setting(u, base, free):
    """The three parameter objects at the unconstrained coordinates ``u`` of ``free``."""
    return with_values(*base, {n: _from_free(n, u[i]) for i, n in enumerate(free)})


@jit(static_argnames=("free", "objective", "config"))
def _error_and_grad(u, base, *, free, objective, config):
    """Exact test error at ``u``, its gradient (implicit differentiation) and, for a chain, every
    generation's error and whether the whole chain converged (``None`` otherwise); compiled once
    per (parameter structure, free names, objective, config) and reused by every later call.
    An unconverged solve is no candidate: its value is NaN, which the line search rejects."""

    def error(u):
        m, t, s = _setting(u, base, free)
        res = solve(m, t, s if objective == "student" else None, config)
        if isinstance(s, tuple) and objective == "student":  # a chain: its last generation
            errors = jnp.stack([res.teacher.gen_error] + [g.gen_error for g in res.generations])
            return jnp.where(res.converged, errors[-1], jnp.nan), (errors, res.converged)
        return jnp.where(res.converged, res.gen_error, jnp.nan), None

    (value, aux), grad = jax.value_and_grad(error, has_aux=True)(u)
    return value, grad, aux


def _start(base, free):
    """The unconstrained coordinates of ``free`` at the values in ``base``, as a strongly typed
    float64 array (a weakly typed start would compile the objective a second time at the first
    step, whose points are strongly typed)."""
    return jnp.asarray(jnp.stack([_to_free(n, _current(*base, n)) for n in free]), dtype=jnp.float64)


def _evaluator(base, free, objective, config):
    """``u -> (error, gradient, aux)``: the objective ``optimize_kd`` descends (``_error_and_grad``)."""
    return partial(_error_and_grad, base=base, free=free, objective=objective, config=config)


@lru_cache(maxsize=None)
def _lbfgs(memory_size: int):
    """``(init, jitted update)`` of ``optax.scale_by_lbfgs``: the quasi-Newton direction."""
    lbfgs = optax.scale_by_lbfgs(memory_size=memory_size)
    return lbfgs.init, jax.jit(lbfgs.update)


# An equinox error raised inside ``jax.jit`` reaches Python as JAX's runtime error.
_RUNTIME_ERRORS = (eqx.EquinoxRuntimeError,) + tuple(
    e for e in (getattr(jax.errors, "JaxRuntimeError", None),) if e is not None)


def _trial(evaluate, u):
    """``evaluate(u)``; a point where the implicit derivative fails (the linear system of the
    implicit function theorem is singular or non-finite, which lineax reports by an equinox
    runtime error) is a rejected trial, like an unconverged solve."""
    try:
        return evaluate(u)
    except _RUNTIME_ERRORS:
        return jnp.asarray(jnp.nan), jnp.full_like(u, jnp.nan), None


def _check_options(free, objective, student, steps, tol, learning_rate, progress=None):
    if isinstance(free, str):
        free = (free,)
    free = tuple(free)
    if not free:
        raise ValueError("free must name at least one parameter")
    for name in free:
        parameter(name)  # ValueError naming the known names
    if len(set(free)) != len(free):
        raise ValueError(f"free names a parameter twice: {free}")
    if objective not in ("student", "teacher"):
        raise ValueError(f"objective must be 'student' or 'teacher', got {objective!r}")
    if objective == "student" and student is None:
        raise ValueError("objective='student' needs a student")
    if objective == "teacher":
        for name in free:
            if parameter(name)[0] == "student":
                raise ValueError(f"free parameter {name!r} does not act on the teacher's error")
    check_integer("steps", steps, 0)
    check_range("tol", tol, 0.0, lo_open=False)
    check_range("learning_rate", learning_rate, 0.0)
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise ValueError(f"progress must be a bool or a callable (iteration, steps, gen_error), got {progress!r}")
    return free


def optimize_kd(
    mixture: Mixture,
    teacher: Teacher,
    student,
    free=("lam_t", "temperature"),
    *,
    objective: str = "student",
    steps: int = 50,
    tol: float = 1e-9,
    learning_rate: float = 1.0,
    memory_size: int = 10,
    config: SolverConfig = SolverConfig(),
    progress=False,
) -> KDOptimum:
    """Minimise the student's (or the teacher's, ``objective="teacher"``) exact test error.

    ``student`` is ``None``, a ``Student`` or a sequence of them (a distillation chain, solved as
    by ``solve_chain``), whose objective is the last generation's error.  ``free`` names
    parameters as ``kdjax.sweep`` does: ``genK.NAME`` (``gen2.temperature``, ``gen1.hard_weight``,
    ``gen3.lam_s``) is generation ``K``'s, a plain student name (``temperature``) one value shared by
    every generation (their starting values must agree).  At the optimum every generation is
    solved once more: ``chain_errors`` and ``best_depth`` of the result.

    L-BFGS (``optax.scale_by_lbfgs``, ``memory_size`` pairs) on the unconstrained coordinates
    of ``free`` (log for positive parameters, logit for those in (0, 1)), from the values in
    the given objects, with a backtracking (Armijo) line search whose first trial is the full
    quasi-Newton step.  The first step, and the first after a pair without positive curvature
    (which restarts the memory), is steepest descent moving the steepest coordinate by
    ``learning_rate``.  Stops
    after ``steps`` iterations or when the error changes by less than ``tol``.  Each trial is
    one solve of both fixed points and its implicit gradient, by one compiled function that
    later calls with the same structure reuse.

    ``progress``: ``True`` shows a ``tqdm.auto`` bar over the iterations; a callable is called as
    ``progress(iteration, steps, gen_error)`` after the start (iteration 0) and every iteration.
    """
    if student is not None and not isinstance(student, Student):
        student = tuple(student)
        if not student:
            raise ValueError("student must be None, a Student or a non-empty sequence of Student")
    free = _check_options(free, objective, student, steps, tol, learning_rate, progress)
    base = (mixture, teacher, student)
    x = _start(base, free)
    evaluate = _evaluator(base, free, objective, config)
    init, direction = _lbfgs(memory_size)

    value, grad, aux = evaluate(x)
    solves = 1
    path = {n: [float(_from_free(n, x[i]))] for i, n in enumerate(free)} | {"gen_error": [float(value)]}
    report, close = _reporter(progress, steps)
    report(0, float(value))
    try:
        x, aux, solves = _descend(evaluate, init, direction, x, value, grad, aux, solves, free, path,
                                  steps, tol, learning_rate, report)
    finally:
        close()
    m, t, s = (_concrete(o) for o in _setting(x, base, free))
    if objective == "teacher":
        final = solve_teacher(m, t, config, throw=False)
        errors = (float(final.gen_error),)
    elif isinstance(s, tuple):
        # The accepted point's own evaluation (an eager solve_chain would compile every generation anew).
        errors, converged = aux
        final = None
        errors = tuple(float(e) for e in np.asarray(errors))
    else:
        final = solve_student(m, t, s, config, throw=False)
        errors = (float(final.teacher.gen_error), float(final.gen_error))
    if final is not None:
        solves += 1
        converged = final.converged
    finite = np.where(np.isfinite(errors), errors, np.inf)
    return KDOptimum(
        params={n: float(_from_free(n, x[i])) for i, n in enumerate(free)},
        gen_error=errors[-1] if objective == "student" else errors[0],
        mixture=m, teacher=t, student=s,
        path={k: np.asarray(v) for k, v in path.items()},
        solves=solves,
        converged=bool(converged),
        chain_errors=errors,
        best_depth=int(np.argmin(finite)),
    )


def _reporter(progress, steps):
    """``(report(iteration, gen_error), close())`` for the ``progress`` option."""
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="optimize_kd", unit="it")

        def report(i, value):
            bar.update(i - bar.n)
            bar.set_postfix(gen_error=f"{value:.6g}", refresh=False)

        return report, bar.close
    if callable(progress):
        return (lambda i, value: progress(i, steps, value)), (lambda: None)
    return (lambda i, value: None), (lambda: None)


def _descend(evaluate, init, direction, x, value, grad, aux, solves, free, path, steps, tol, learning_rate,
             report):
    """The L-BFGS iterations of ``optimize_kd`` from ``x`` (``path`` appended in place); returns the
    last accepted point, its evaluation's ``aux`` and the solves used so far."""
    state, restart = init(x), True
    for iteration in range(1, steps + 1):
        if not (jnp.isfinite(value) and jnp.all(jnp.isfinite(grad))):
            break
        d, state = direction(grad, state, x)
        slope = float(jnp.dot(grad, d))
        if restart or not slope > 0:
            # Steepest descent, the first trial moving the steepest coordinate by learning_rate.
            d = learning_rate * grad / jnp.max(jnp.abs(grad))
            slope = float(jnp.dot(grad, d))
        t = 1.0
        for _ in range(30):
            cand = x - t * d
            v_c, g_c, a_c = _trial(evaluate, cand)
            solves += 1
            if jnp.isfinite(v_c) and v_c <= value - 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        done = abs(float(value - v_c)) < tol
        # A pair without positive curvature would spoil the L-BFGS memory: start it afresh.
        s_k, y_k = cand - x, g_c - grad
        restart = not float(jnp.dot(s_k, y_k)) > 1e-12 * float(jnp.linalg.norm(s_k) * jnp.linalg.norm(y_k))
        if restart:
            state = init(cand)
        x, value, grad, aux = cand, v_c, g_c, a_c
        for i, n in enumerate(free):
            path[n].append(float(_from_free(n, x[i])))
        path["gen_error"].append(float(value))
        report(iteration, float(value))
        if done:
            break
    return x, aux, solves


def _concrete(obj):
    return None if obj is None else jax.tree_util.tree_map(float, obj)


class BestTeacher(eqx.Module):
    """Result of ``best_teacher``: the teacher's ridge best for its own error and best for its student.

    lam_t_teacher, teacher_error: the teacher's own optimum; lam_t_student, student_error: the
    optimum of the student's error (the student's hyperparameters held fixed); solves: both searches.
    """

    lam_t_teacher: float
    teacher_error: float
    lam_t_student: float
    student_error: float
    solves: int


def best_teacher(mixture: Mixture, teacher: Teacher, student: Student, **kwargs) -> BestTeacher:
    """The paper's question: the ``lam_t`` best for the teacher's own error vs best for its student
    (two ``optimize_kd`` searches over ``lam_t``; ``kwargs`` go to both)."""
    own = optimize_kd(mixture, teacher, student, ("lam_t",), objective="teacher", **kwargs)
    kd = optimize_kd(mixture, teacher, student, ("lam_t",), objective="student", **kwargs)
    return BestTeacher(
        lam_t_teacher=own.params["lam_t"], teacher_error=own.gen_error,
        lam_t_student=kd.params["lam_t"], student_error=kd.gen_error, solves=own.solves + kd.solves,
    )
