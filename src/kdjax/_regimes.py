"""Regimes with no finite minimiser (docs/model.md, last section), once: the separability threshold,
the finite-minimiser tests of the teacher and the student, and their messages.

A ridge ``lam > 0`` always gives a unique finite minimiser.  Without one:

* teacher: a loss with ``zero_ridge = "overdetermined"`` (square) needs ``alpha > 1``; a loss
  that vanishes at infinity (``"non_separable"``: logistic, hinge) needs non-separable data,
  ``alpha > alpha*(delta, rho)``;
* student (``a`` the hard-label weight): soft labels (``a < 1``) make the per-sample loss strictly
  convex and coercive, so a unique minimiser needs more samples than weights, ``alpha_s > gamma``;
  on hard labels alone (``a = 1``) the student's data must not be separable,
  ``alpha_s / gamma > alpha*(delta / gamma, rho)`` (a teacher problem with ``N -> gamma N``,
  ``delta -> delta / gamma``).

``has_finite_minimiser`` is traceable (``jit``/``vmap``/``grad``); ``check_teacher`` and
``check_student`` are the eager checks that raise ``ValueError`` with the numbers.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erfcx, ndtr

from ._compile import jit
from ._losses import as_loss
from ._params import Mixture, Student, Teacher, check_range

__all__ = ["separability_threshold", "has_finite_minimiser", "check_teacher", "check_student"]

# ---------------------------------------------------------------------------------------------
# Separability threshold (Gardner volume with quenched per-pattern thresholds)
# ---------------------------------------------------------------------------------------------

_LOG_SQRT_TWO_PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)
_SERIES_FROM = 10.0  # t above which the moments I_n(t) use their asymptotic series
_SERIES_TERMS = 30


def _series_coefficients(n: int) -> np.ndarray:
    """``(-1/2)^k (n + 2k)! / k! / T^(2k)``: ``I_n(t) = t^-(n+1) sum_k coef_k (T / t)^(2k)``."""
    coef, out = float(math.factorial(n)), []
    for j in range(_SERIES_TERMS):
        out.append(coef)
        coef *= -0.5 * (n + 2 * j + 1) * (n + 2 * j + 2) / (j + 1) / _SERIES_FROM**2
    return np.asarray(out)


_SERIES_1 = _series_coefficients(1)
_SERIES_2 = _series_coefficients(2)


def _horner(coefficients, x):
    acc = jnp.zeros_like(x)
    for coef in coefficients[::-1]:
        acc = acc * x + float(coef)
    return acc


def _gardner_terms(t):
    """``(log g(t), g'(t) / g(t), g''(t) / g(t))`` for ``g(t) = int_t^inf (s - t)^2 Ds``.

    ``g(t) = (1 + t^2) Phi(-t) - t phi(t)``, ``g'(t) = -2 (phi(t) - t Phi(-t))``,
    ``g''(t) = 2 Phi(-t)``.  For ``t > 0`` these are ``phi(t)`` times the moments
    ``I_n(t) = int_0^inf u^n exp(-t u - u^2 / 2) du``: ``I_0 = Phi(-t) / phi(t)`` (from ``erfcx``),
    ``I_1 = 1 - t I_0``, ``I_2 = I_0 - t I_1`` (asymptotic series for large ``t``), so that
    ``g = phi I_2``, ``g' = -2 phi I_1``, ``g'' = 2 phi I_0`` without underflow or cancellation.
    """
    positive = t > 0.0
    # t <= 0: every term is positive, direct formulas.
    tn = jnp.where(positive, -1.0, t)
    pdf = jnp.exp(-0.5 * tn * tn - _LOG_SQRT_TWO_PI)
    tail = ndtr(-tn)
    g_n = (1.0 + tn * tn) * tail - tn * pdf
    neg = (jnp.log(g_n), -2.0 * (pdf - tn * tail) / g_n, 2.0 * tail / g_n)
    # t > 0: Mills ratio I_0 from erfcx; I_1, I_2 by recursion below T, asymptotic series above.
    tp = jnp.where(positive, t, 1.0)
    i0 = _SQRT_HALF_PI * erfcx(tp / math.sqrt(2.0))
    far = tp >= _SERIES_FROM
    tf = jnp.where(far, tp, _SERIES_FROM)
    x = (_SERIES_FROM / tf) ** 2
    i1 = jnp.where(far, _horner(_SERIES_1, x) / tf**2, 1.0 - tp * i0)
    i2 = jnp.where(far, _horner(_SERIES_2, x) / tf**3, i0 - tp * (1.0 - tp * i0))
    pos = (-0.5 * tp * tp - _LOG_SQRT_TWO_PI + jnp.log(i2), -2.0 * i1 / i2, 2.0 * i0 / i2)
    return tuple(jnp.where(positive, p, n) for p, n in zip(pos, neg))


def _log_mixture_g(mu, beta, rho):
    """``log G`` and, per class, ``(weight, g'/g, g''/g)`` for
    ``G = rho g(mu + beta) + (1 - rho) g(mu - beta)``."""
    log_g_y, r1, r2 = _gardner_terms(jnp.stack([mu + beta, mu - beta]))
    log_w = jnp.stack([jnp.log(rho) + log_g_y[0], jnp.log1p(-rho) + log_g_y[1]])
    log_g = jnp.logaddexp(log_w[0], log_w[1])
    w = jnp.exp(log_w - log_g)
    return log_g, (w[0], r1[0], r2[0]), (w[1], r1[1], r2[1])


_NEWTON_STEPS = 60
_GOLDEN_STEPS = 64
_BRACKET = 40.0
_INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0


def _optimal_beta(mu, rho):
    """Minimiser ``beta`` of the convex ``G(beta) = rho g(mu + beta) + (1 - rho) g(mu - beta)``, and
    ``log G`` there.

    Bracketed Newton (bisection when the step leaves the bracket) on ``G'(beta) = 0``, using the
    scale-free ratio ``G' / G''``; the bracket ``|beta| <= mu + 40`` contains the root.  ``log G``
    is the one evaluated at the last iterate before the final (converged, round-off-sized) step.
    """

    def step(_, state):
        beta, lo, hi, _ = state
        log_g, (w_p, r1_p, r2_p), (w_m, r1_m, r2_m) = _log_mixture_g(mu, beta, rho)
        d1 = w_p * r1_p - w_m * r1_m  # G' / G
        d2 = w_p * r2_p + w_m * r2_m  # G'' / G > 0
        newton = beta - d1 / d2
        # A round-off-sized step is convergence: XLA may round d1 differently in different
        # fusions, so its sign at that level must not move the bracket.
        small = jnp.abs(newton - beta) <= tol * (1.0 + jnp.abs(beta))
        lo = jnp.where((d1 < 0.0) & ~small, beta, lo)
        hi = jnp.where((d1 > 0.0) & ~small, beta, hi)
        inside = (newton > lo) & (newton < hi)
        beta = jnp.where(small | inside, newton, 0.5 * (lo + hi))
        return beta, lo, hi, log_g

    tol = 100.0 * jnp.finfo(jnp.result_type(mu, rho)).eps
    width = mu + _BRACKET
    beta0 = jnp.zeros_like(mu * rho)
    state = (beta0, beta0 - width, beta0 + width, beta0)
    beta, _, _, log_g = jax.lax.fori_loop(0, _NEWTON_STEPS, step, state)
    return beta, log_g


def _log_capacity(m, beta, inv_sqrt_delta, rho):
    """``log[(1 - m^2) / E_y g((m + y b) / sqrt(delta))]`` with ``b = beta sqrt(delta)``."""
    log_g, _, _ = _log_mixture_g(m * inv_sqrt_delta, beta, rho)
    return jnp.log1p(-m * m) - log_g


def _argmax_capacity(inv_sqrt_delta, rho, steps):
    """Golden-section search over ``m`` in (0, 1) of the capacity maximised over the bias.

    Both interior points are evaluated (as one stacked batch) at every step, which keeps a single
    copy of the inner solve in the compiled program.  ``steps`` (traced) is the number of steps:
    0 skips the search, also under ``vmap``, where the loop runs to the largest count of a batch.
    """

    def step(state):
        k, lo, hi, _, _ = state
        x = jnp.stack([hi - _INV_PHI * (hi - lo), lo + _INV_PHI * (hi - lo)])
        beta, log_g = _optimal_beta(x * inv_sqrt_delta, rho)
        f = jnp.log1p(-x * x) - log_g
        left = f[0] >= f[1]  # the maximum lies in [lo, x2]
        lo, hi = jnp.where(left, lo, x[0]), jnp.where(left, x[1], hi)
        return k + 1, lo, hi, jnp.where(left, x[0], x[1]), jnp.where(left, beta[0], beta[1])

    lo = jnp.zeros_like(inv_sqrt_delta * rho)
    state = (jnp.zeros((), jnp.int32), lo, jnp.ones_like(lo), lo + 0.5, lo)
    _, _, _, m, beta = jax.lax.while_loop(lambda s: jnp.any(s[0] < steps), step, state)
    return m, beta


def separability_threshold(delta, rho=0.5):
    """Sample ratio ``alpha*(delta, rho)`` above which the training set is, as ``N -> infinity``,
    almost surely not linearly separable by ``sign(w . x / sqrt(N) + b)`` (``b`` free).

    Gardner volume of ``|w|^2 / N = 1`` with ``m = w . v / N`` and quenched per-pattern thresholds:
    pattern ``i`` is classified correctly iff ``m + y_i b + sqrt(delta) xi_i > 0``, which gives

    ``alpha* = max_{m in (0, 1), b} (1 - m^2) / E_y[g((m + y b) / sqrt(delta))]``,
    ``g(t) = int_t^inf (s - t)^2 Ds = (1 + t^2) Phi(-t) - t phi(t)``,

    ``y = +1`` w.p. ``rho``.  ``delta -> infinity`` recovers Cover's capacity 2.  Computed by a
    fixed golden-section search in ``m`` (64 steps) around a bracketed Newton solve of the convex
    inner problem in ``b`` (``b = 0`` at ``rho = 1/2``), then re-evaluated at the frozen optimum, so
    that gradients are those of the envelope theorem.  Relative accuracy ~1e-12 in float64.
    Elementwise over broadcast arrays; ``ValueError`` unless ``delta > 0`` and ``0 < rho < 1``
    (concrete inputs; traced ones pass).  ``alpha*`` grows like ``exp(1 / (2 delta))`` as
    ``delta -> 0`` and overflows to ``inf`` below ``delta ~ 7e-4`` (float64; ``~6e-3`` in float32).
    """
    check_range("delta", delta, 0.0)
    check_range("rho", rho, 0.0, 1.0)
    return _separability_threshold_jit(delta, rho)


def separability_threshold_where(needed, delta, rho):
    """``separability_threshold(delta, rho)`` where ``needed``, a finite placeholder elsewhere.

    Unchecked and traceable; the search (a small optimisation) only runs where ``needed``, also
    under ``vmap`` (a batch in which no point needs it costs one evaluation of the capacity).
    """
    delta = jnp.asarray(delta)
    dtype = jnp.result_type(float, delta, rho)
    delta = delta.astype(dtype)
    rho = jnp.asarray(rho, dtype)
    inv_sqrt_delta = 1.0 / jnp.sqrt(delta)
    # The optimum is found on non-differentiated inputs (no tangent is traced through the loops);
    # the envelope theorem then gives the exact gradient from the final evaluation.
    steps = jnp.where(needed, _GOLDEN_STEPS, 0)
    m, beta = _argmax_capacity(*jax.lax.stop_gradient((inv_sqrt_delta, rho)), steps)
    return jnp.exp(_log_capacity(m, beta, inv_sqrt_delta, rho))


_separability_threshold_jit = jit(partial(separability_threshold_where, True))


def student_alpha(mixture: Mixture, student: Student):
    """Samples per input dimension the student trains on: ``alpha`` (same) or ``alpha_s`` (fresh)."""
    return student.inputs.alpha(mixture)


def _teacher_finite(mixture: Mixture, teacher: Teacher):
    alpha, delta, rho = jax.lax.stop_gradient((mixture.alpha, mixture.delta, mixture.rho))
    if as_loss(teacher.loss).zero_ridge == "overdetermined":
        return (teacher.lam > 0) | (alpha > 1.0)
    needed = teacher.lam <= 0
    return (teacher.lam > 0) | (alpha > separability_threshold_where(needed, delta, rho))


def _student_finite(mixture: Mixture, student: Student):
    alpha = jax.lax.stop_gradient(student_alpha(mixture, student))
    g, delta, rho = jax.lax.stop_gradient((student.gamma, mixture.delta, mixture.rho))
    hard_only = (student.lam <= 0) & (student.hard_weight >= 1.0)
    separable = hard_only & (alpha <= g * separability_threshold_where(hard_only, delta / g, rho))
    return (student.lam > 0) | ((alpha > g) & ~separable)


def has_finite_minimiser(mixture: Mixture, learner: Teacher | Student):
    """Whether the objective of ``learner`` (a ``Teacher`` or a ``Student``) on ``mixture`` has a
    unique finite minimiser (module docstring); traceable."""
    if isinstance(learner, Student):
        return _student_finite(mixture, learner)
    return _teacher_finite(mixture, learner)


_has_finite_minimiser_jit = jit(lambda mixture, learner: has_finite_minimiser(mixture, learner))


def check_teacher(mixture: Mixture, teacher: Teacher) -> None:
    """Raise ``ValueError`` naming the regime, with its numbers, when the teacher has no finite minimiser."""
    if float(teacher.lam) > 0 or bool(_has_finite_minimiser_jit(mixture, teacher)):
        return
    loss, alpha = as_loss(teacher.loss), float(mixture.alpha)
    if loss.zero_ridge == "overdetermined":
        raise ValueError(
            f"lam_t = 0 with {loss.name} loss has no unique minimiser for alpha <= 1 (interpolation "
            f"regime, got alpha = {alpha:g}); use lam_t > 0 or alpha > 1"
        )
    star = float(separability_threshold(mixture.delta, mixture.rho))
    raise ValueError(
        f"lam_t = 0 with {loss.name} loss has no finite minimiser: the training data are linearly "
        f"separable for alpha < alpha*(delta, rho) = {star:.4f} (got alpha = {alpha:g}); "
        f"use lam_t > 0 or alpha > {star:.4f}"
    )


def check_student(mixture: Mixture, student: Student, generation: str = "") -> None:
    """Raise ``ValueError`` naming the regime, with its numbers, when the student has no finite minimiser."""
    if float(student.lam) > 0 or bool(_has_finite_minimiser_jit(mixture, student)):
        return
    alpha, g = float(student_alpha(mixture, student)), float(student.gamma)
    name = "alpha" if student.inputs.name == "same" else "alpha_s"
    where = f" ({generation})" if generation else ""
    if float(student.hard_weight) >= 1.0:
        star = g * float(separability_threshold(mixture.delta / g, mixture.rho))
        raise ValueError(
            f"lam_s = 0 with hard labels only (hard_weight = 1) has no finite minimiser{where}: the "
            f"student's data are linearly separable for {name} < {star:.4f} (got {alpha:g}); use lam_s > 0"
        )
    raise ValueError(
        f"lam_s = 0 has no unique student minimiser{where} when {name} <= gamma (the student interpolates "
        f"its targets; got {name} = {alpha:g}, gamma = {g:g}); use lam_s > 0"
    )
