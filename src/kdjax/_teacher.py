"""The teacher's saddle-point equations and observables (docs/theory.md, Sec. 2).

State ``(m, q, V, b)``.  Given the state, the training pre-activation of a sample of class
``y`` is ``h = prox(omega)`` with the cavity field ``omega = y m + b + sqrt(delta q) xi`` (2.1);
the conjugate parameters are (2.2)

    m_hat = alpha E[y f],  q_hat = alpha delta E[f^2],  V_hat = alpha delta E[D],
    f = (h - omega) / V,   D = -df/d omega = (1 - dh/d omega) / V,

and the weights give back (2.3)

    m = m_hat / (lam + V_hat),  q = (m_hat^2 + q_hat) / (lam + V_hat)^2,  V = delta / (lam + V_hat),

with the bias from its own stationarity condition ``E[f] = 0`` (2.4), iterated as the
Newton step ``b <- b + E[f] / E[D]``.  The loss enters only through its ``moments``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._quadrature import label_rows, normal_cdf, row_average, safe_sqrt
from ._observables import gen_error_unchecked
from ._params import Mixture, SolverConfig, Teacher, check_arguments, check_instance
from ._regimes import check_teacher, has_finite_minimiser
from ._solve import RESULTS, is_concrete, raise_if_failed, solve_fixed_point


class TeacherState(eqx.Module):
    """Order parameters of the teacher's fixed point: ``m, q``, the response ``V`` and the bias ``b``."""

    m: jax.Array
    q: jax.Array
    V: jax.Array
    b: jax.Array


class TeacherResult(eqx.Module):
    """Solved teacher: MODEL.md observables, the response ``V`` and the solver's diagnostics.

    ``result`` is a ``kdjax.RESULTS`` code (``successful`` or why not); ``converged`` is
    ``result == successful``.
    """

    gen_error: jax.Array
    m: jax.Array
    q: jax.Array
    b: jax.Array
    V: jax.Array
    train_error: jax.Array
    train_loss: jax.Array
    residual: jax.Array
    iterations: jax.Array
    finite_minimiser: jax.Array
    result: RESULTS

    @property
    def converged(self):
        return self.result == RESULTS.successful

    @property
    def state(self) -> TeacherState:
        return TeacherState(m=self.m, q=self.q, V=self.V, b=self.b)


def _fields(x: TeacherState, mixture: Mixture):
    """Label rows ``(y, y_obs, weight)``, cavity means ``y m + b`` (true class) and the cavity
    width ``sqrt(delta q)``."""
    y, y_obs, w = label_rows(mixture)
    return (y, y_obs, w), y * x.m + x.b, safe_sqrt(mixture.delta * x.q)


def _moments(x: TeacherState, mixture: Mixture, teacher: Teacher, config: SolverConfig):
    """Channel moments per label row; the loss sees the observed label."""
    rows, mean, sd = _fields(x, mixture)
    return rows, teacher.loss.moments(rows[1], mean, sd, x.V, config.degree, config.newton_steps)


def teacher_map(x: TeacherState, args) -> TeacherState:
    """One application of the saddle-point map ``F`` of (2.2)-(2.4)."""
    mixture, teacher, config = args
    (y, _, w), mo = _moments(x, mixture, teacher, config)
    avg = lambda g: row_average(w, g)
    m_hat = mixture.alpha * avg(y[:, 0] * mo.f)
    q_hat = mixture.alpha * mixture.delta * avg(mo.f2)
    V_hat = mixture.alpha * mixture.delta * avg(mo.D)
    k = teacher.lam + V_hat
    return TeacherState(m=m_hat / k, q=(m_hat**2 + q_hat) / k**2, V=mixture.delta / k,
                        b=x.b + avg(mo.f) / avg(mo.D))


def initial_state(dtype) -> TeacherState:
    """A start inside the basin: the ridge-less signal direction with unit response."""
    one = jnp.asarray(1.0, dtype)
    return TeacherState(m=0.5 * one, q=one, V=one, b=0.0 * one)


def teacher_observables(x: TeacherState, mixture: Mixture, teacher: Teacher, config: SolverConfig):
    """Generalisation error (MODEL.md), training error and loss at the fixed point ``x``."""
    (_, y_obs, w), mean, sd = _fields(x, mixture)
    _, mo = _moments(x, mixture, teacher, config)
    # against the training label: y~ h < 0  <=>  y~ omega < -V c0, c0 = -y~ l'(0) (the prox is increasing)
    c0 = -y_obs * teacher.loss.grad(jnp.zeros_like(y_obs), y_obs)
    train_err = normal_cdf((-x.V * c0 - y_obs * mean) / sd)[:, 0]
    avg = lambda g: row_average(w, g)
    return gen_error_unchecked(x.m, x.q, x.b, mixture.delta, mixture.rho), avg(train_err), avg(mo.loss)


def solve(mixture: Mixture, teacher: Teacher, config: SolverConfig) -> TeacherResult:
    """The teacher's fixed point and observables: pure JAX (``jit``/``vmap``/``grad``), no checks."""
    dtype = jnp.result_type(mixture.alpha, mixture.delta, mixture.rho, mixture.label_noise, teacher.lam, float)
    fp = solve_fixed_point(teacher_map, initial_state(dtype), (mixture, teacher, config), config,
                           valid=lambda x: x.V > 0)
    x = fp.x
    gen, train_err, train_loss = teacher_observables(x, mixture, teacher, config)
    finite = has_finite_minimiser(mixture, teacher)
    result = RESULTS.where(finite, fp.result, RESULTS.no_finite_minimiser)
    return TeacherResult(
        gen_error=gen, m=x.m, q=x.q, b=x.b, V=x.V, train_error=train_err, train_loss=train_loss,
        residual=fp.residual, iterations=fp.iterations, finite_minimiser=finite, result=result,
    )


_solve_jit = jax.jit(solve)


def solve_teacher(mixture: Mixture, teacher: Teacher, config: SolverConfig = SolverConfig(), *,
                  throw: bool = True) -> TeacherResult:
    """Exact asymptotic teacher (docs/theory.md, Sec. 2): a ``TeacherResult`` pytree.

    ``throw=True``: a failed solve raises (``ValueError`` naming the regime, with its numbers,
    when the objective has no finite minimiser; ``kdjax.SolveError`` when the fixed point does
    not converge; under ``jit`` an equinox runtime error with the same reason).
    ``throw=False``: never raises on failure; ``result`` says what happened (use it under
    ``vmap``).  Pure in every case: ``jit``, ``vmap`` and ``grad`` compose.
    """
    check_instance("config", config, SolverConfig)
    if not is_concrete(mixture, teacher):
        out = solve(mixture, teacher, config)
        return raise_if_failed(out, "teacher") if throw else out
    check_arguments(mixture=(mixture, Mixture), teacher=(teacher, Teacher))
    if throw:
        check_teacher(mixture, teacher)
    out = _solve_jit(mixture, teacher, config)
    return raise_if_failed(out, "teacher") if throw else out
