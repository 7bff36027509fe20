"""The student's saddle-point equations and observables (docs/theory.md, Sec. 3).

The solved teacher enters as its ``TeacherState`` ``(m_t, q_t, V_t, b_t)``; the student's state is
``StudentState(m, sigma2, r, b, V, V_st)`` (``m_s, sigma2, r, b_s, V_ss, V_st`` below) with ``sigma2 = q_s - r^2/q_t >= 0`` the variance of the
student's field not explained by the teacher's.  Its update (3.4') is a sum of squares computed
without cancellation, and the map is smooth in ``sigma2`` (the Gaussian averages are even in
``sqrt(sigma2)``), so a student that copies its teacher (``sigma2 = 0``) is found by Newton's method.  On a training sample of class ``y`` the two cavity
fields are jointly Gaussian (3.1),

    omega_t = y m_t + b_t + sqrt(delta) u_t,   omega_s = y m_s + b_s + sqrt(delta) u_s,
    (u_t, u_s) ~ N(0, [[q_t, r], [r, q_s]]).

``same`` inputs: the teacher's training output is ``h_t = prox_t(omega_t)``, with
``f_t = (h_t - omega_t) / V_t``, and the student's cavity field is shifted by the teacher's
response to the very same sample (3.2): ``omega_s' = omega_s + V_st f_t``.
``fresh`` inputs: ``h_t = omega_t``, ``f_t = 0``, no shift.  Then

    h_s = prox_{V_ss L(., y, h_t / T, a, T)}(omega_s')  (the KD loss of ``kdjax._losses``),  f_s = (h_s - omega_s') / V_ss,
    D_ss = -d f_s / d omega_s,  D_st = -d f_s / d omega_t,

the conjugates (3.3) are ``m_hat = alpha E[y f_s]``, ``Q_ss = alpha delta E[f_s^2]``,
``Q_ts = alpha delta E[f_t f_s]``, ``V_hat_ss = alpha delta E[D_ss]``,
``V_hat_st = alpha delta E[D_st]`` (``alpha -> alpha_s`` for fresh inputs), and the weights
(3.4), with ``c = 1 / (lam_s + V_hat_ss)`` and ``A_t = V_t / delta``:

    m_s  = gamma c (m_hat - V_hat_st m_t)
    r    = gamma c (m_hat m_t - V_hat_st q_t + A_t Q_ts)
    q_s  = gamma c^2 (m_hat^2 + V_hat_st^2 q_t + Q_ss - 2 m_hat V_hat_st m_t - 2 V_hat_st A_t Q_ts)
    V_ss = delta gamma c,   V_st = -delta gamma c V_hat_st A_t  (0 for fresh inputs),

with the bias from ``E[f_s] = 0`` (3.5).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._quadrature import (bisect_root, gauss_hermite, gauss_legendre, label_rows, normal_cdf, normal_pdf,
                          row_average, safe_sqrt, sinh_rule)
from ._losses import KD
from ._observables import agreement_unchecked, gen_error_unchecked
from ._params import Mixture, SolverConfig, Student, Teacher, check_arguments, check_instance
from ._regimes import check_student, check_teacher, has_finite_minimiser, student_alpha
from ._solve import RESULTS, is_concrete, raise_if_failed, solve_fixed_point
from ._teacher import TeacherResult, TeacherState, solve as solve_teacher_core


class StudentState(eqx.Module):
    """Order parameters of the student's fixed point (3.4): ``m``, ``sigma2 = q - r^2 / q_t``,
    ``r``, the bias ``b``, the response ``V`` (``V_ss``) and the cross response ``V_st``."""

    m: jax.Array
    sigma2: jax.Array
    r: jax.Array
    b: jax.Array
    V: jax.Array
    V_st: jax.Array

    def q(self, teacher: TeacherState):
        """``q_s = r^2 / q_t + sigma2``."""
        return self.r**2 / teacher.q + self.sigma2


class StudentResult(eqx.Module):
    """Solved student (MODEL.md observables and diagnostics) with its ``teacher``.

    ``result`` is a ``kdjax.RESULTS`` code; ``converged`` is ``result == successful`` (which
    needs the teacher to have succeeded too).
    """

    gen_error: jax.Array
    m: jax.Array
    q: jax.Array
    r: jax.Array
    b: jax.Array
    agreement: jax.Array
    train_error: jax.Array
    train_loss: jax.Array
    V: jax.Array
    V_st: jax.Array
    residual: jax.Array
    iterations: jax.Array
    finite_minimiser: jax.Array
    result: RESULTS
    teacher: TeacherResult

    @property
    def converged(self):
        return self.result == RESULTS.successful


class _Nodes:
    """Cavity fields of both classes at the 2-D quadrature nodes (3.1), Sec. 1.3.

    ``u_t = sqrt(q_t) xi_1`` and ``u_s = slope xi_1 + cond_sd xi_2``.  The teacher's field uses
    the teacher loss's ``channel`` nodes (same inputs: the teacher's output ``h_t = prox_t(omega_t)``
    and ``dh_t/d omega_t`` come with the nodes) or, for fresh inputs (``h_t = omega_t``), a sinh
    rule refined where ``omega_t`` crosses 0.  ``xi_2`` (the student's own noise, often small,
    exactly 0 when the student copies the teacher) uses Gauss-Hermite.  Arrays have shape
    ``(rows, K * K)``, one row per (true, observed) label pair (``label_rows``): the means follow
    the true class ``y``, the losses the observed label ``y_obs`` (the same for the teacher and the
    student on the teacher's inputs; the student's own on fresh inputs).
    """

    def __init__(self, x: StudentState, t: TeacherState, mixture, teacher, student, config):
        K = config.degree_2d
        y, y_obs, weight = label_rows(mixture)
        self.y, self.y_obs, self.weight = y, y_obs, weight
        R = y.shape[0]
        sd = jnp.sqrt(mixture.delta)
        self.slope = x.r / safe_sqrt(t.q)
        self.cond_sd = safe_sqrt(x.sigma2)
        self.mean_s = y * x.m + x.b
        self.mean_t, self.sd_t = y * t.m + t.b, sd * safe_sqrt(t.q)
        if student.data == "same":
            c = teacher.loss.channel(y_obs, self.mean_t, self.sd_t, t.V, K, config.newton_steps)
            omega_t, h_t, dh_t, w1 = c.omega, c.h, c.slope, c.w
        else:
            xi, w1 = sinh_rule(-self.mean_t[:, 0] / self.sd_t, 1.0 / (1.0 + self.sd_t), K)
            omega_t = h_t = self.mean_t + self.sd_t * xi
            dh_t = jnp.ones_like(h_t)
        xi1 = (omega_t - self.mean_t) / self.sd_t
        mean2 = self.mean_s + sd * self.slope * xi1  # (R, K): student's field given xi1
        xi2, w2 = gauss_hermite(K, y.dtype)  # exact as the conditional noise vanishes
        self.w = (w1[:, :, None] * w2).reshape(R, K * K)
        tile = lambda a: jnp.broadcast_to(a[:, :, None], (R, K, K)).reshape(R, K * K)
        self.omega_t, self.h_t, self.dh_t = tile(omega_t), tile(h_t), tile(dh_t)
        self.omega_s = (mean2[:, :, None] + sd * self.cond_sd * xi2).reshape(R, K * K)

    def mean(self, g):
        return row_average(self.weight, jnp.sum(self.w * g, axis=-1))


def teacher_output(omega_t, y, t: TeacherState, teacher: Teacher, student: Student, config):
    """Teacher's output ``h_t`` on a student training input and its ``f_t = (h_t - omega_t) / V_t``
    (3.2); fresh inputs: ``h_t = omega_t``, ``f_t = 0``."""
    if student.data == "fresh":
        return omega_t, jnp.zeros_like(omega_t)
    h_t = teacher.loss.prox(omega_t, t.V, y, steps=config.newton_steps)
    return h_t, (h_t - omega_t) / t.V


def _labels(y, h_t, student: Student):
    """The KD loss's labels ``(y, tau = h_t / T, a, T)``."""
    return y, h_t / student.temperature, student.hard_weight, student.temperature


def _student_output(h_t, f_t, omega_s, y, x: StudentState, student, config):
    """``f_s`` and ``h_s`` given the teacher's output ``h_t``, its ``f_t`` and the cavity ``omega_s``."""
    shifted = omega_s + x.V_st * f_t
    h_s = KD.prox(shifted, x.V, *_labels(y, h_t, student), steps=config.newton_steps)
    return (h_s - shifted) / x.V, h_s


def _teacher_f(nodes, t: TeacherState, student):
    """``f_t = (h_t - omega_t) / V_t`` at the nodes (0 for fresh inputs)."""
    if student.data == "fresh":
        return jnp.zeros_like(nodes.h_t)
    return (nodes.h_t - nodes.omega_t) / t.V


def student_map(x: StudentState, args) -> StudentState:
    """One application of the student's saddle-point map (3.2)-(3.5)."""
    t, mixture, teacher, student, config = args
    nodes = _Nodes(x, t, mixture, teacher, student, config)
    y = nodes.y
    f_t = _teacher_f(nodes, t, student)

    fs, f_s_lin = jax.linearize(
        lambda h, f, o: _student_output(h, f, o, nodes.y_obs, x, student, config)[0], nodes.h_t, f_t, nodes.omega_s
    )
    zeros = jnp.zeros_like(fs)
    D_ss = -f_s_lin(zeros, zeros, jnp.ones_like(fs))
    # d/d omega_t moves h_t by dh_t/d omega_t and f_t by (dh_t/d omega_t - 1) / V_t.
    df_t = (nodes.dh_t - 1.0) / t.V if student.data == "same" else zeros
    D_st = -f_s_lin(nodes.dh_t, df_t, zeros)

    mean = nodes.mean
    alpha, delta, gamma = student_alpha(mixture, student), mixture.delta, student.gamma
    m_hat = alpha * mean(y * fs)
    Q_ss = alpha * delta * mean(fs**2)
    Q_ts = alpha * delta * mean(f_t * fs)
    Vh_ss = alpha * delta * mean(D_ss)
    Vh_st = alpha * delta * mean(D_st)

    c = 1.0 / (student.lam + Vh_ss)
    A_t = t.V / delta
    # Per coordinate w_s = c (Y - V_hat_st w_t) with Y = m_hat v + xi_s (3.4).
    B = m_hat * t.m + A_t * Q_ts  # E[w_t Y]
    C = m_hat**2 + Q_ss  # E[Y^2]
    # sigma^2 = q_s - r^2/q_t as a sum of two non-negative terms, free of cancellation: a
    # student that copies its teacher has Y = 0 and sigma = 0 exactly.                  (3.4')
    sigma2 = gamma * c**2 * ((1.0 - gamma) * (Vh_st * t.q - B) ** 2 / t.q + (C - B**2 / t.q))
    V_st = -delta * gamma * c * Vh_st * A_t if student.data == "same" else jnp.zeros_like(c)
    return StudentState(
        m=gamma * c * (m_hat - Vh_st * t.m), sigma2=sigma2, r=gamma * c * (B - Vh_st * t.q),
        b=x.b + mean(fs) / mean(D_ss), V=delta * gamma * c, V_st=V_st,
    )


def initial_state(t: TeacherState, student: Student) -> StudentState:
    """Start from the teacher restricted to the student's coordinates (``q_s = r = gamma q_t``)."""
    g = student.gamma
    V_st = g * t.V if student.data == "same" else 0.0 * t.V
    return StudentState(m=g * t.m, sigma2=g * (1.0 - g) * t.q, r=g * t.q, b=t.b, V=g * t.V, V_st=V_st)


def _train_error(x: StudentState, t: TeacherState, mixture, teacher, student, config):
    """Fraction of the student's training samples it misclassifies (3.6).

    ``y h_s < 0`` iff ``y omega_s' < y V_ss L'(0)`` (the prox is increasing).  Given the
    teacher's node ``xi_1`` this is a Gaussian event in ``xi_2``, integrated in closed form;
    the remaining ``xi_1`` integrand can be a near-step (when ``q_s - r^2/q_t`` is small), so
    it is split at its crossing and each side integrated by Gauss-Legendre on [-L, L].
    """
    nodes = _Nodes(x, t, mixture, teacher, student, config)
    y, sd = nodes.y_obs, jnp.sqrt(mixture.delta)  # errors against the training labels

    def margin(xi1):  # y (threshold - conditional mean): P(wrong | xi1) = Phi(margin / (sd cond_sd))
        h_t, f_t = teacher_output(nodes.mean_t + nodes.sd_t * xi1, y, t, teacher, student, config)
        threshold = x.V * KD.grad(jnp.zeros_like(h_t), *_labels(y, h_t, student)) - x.V_st * f_t
        return y * (threshold - nodes.mean_s - sd * nodes.slope * xi1)

    L = 12.0
    lo, hi = jnp.full(y.shape, -L, y.dtype), jnp.full(y.shape, L, y.dtype)
    cut = bisect_root(margin, lo, hi)
    total = 0.0
    for a, b in ((lo, cut), (cut, hi)):
        xi1, w = gauss_legendre(a[:, 0], b[:, 0], config.degree)
        wrong = normal_cdf(margin(xi1) / (sd * nodes.cond_sd))
        total = total + jnp.sum(w * normal_pdf(xi1) * wrong, axis=-1)
    return row_average(nodes.weight, total)


def student_observables(x: StudentState, t: TeacherState, mixture, teacher, student, config):
    """Generalisation error, agreement, training error and loss at the fixed point ``x``."""
    q_s = x.q(t)
    nodes = _Nodes(x, t, mixture, teacher, student, config)
    y = nodes.y_obs
    _, h_s = _student_output(nodes.h_t, _teacher_f(nodes, t, student), nodes.omega_s, y, x, student, config)
    train_loss = nodes.mean(KD.value(h_s, *_labels(y, nodes.h_t, student)))
    train_error = _train_error(x, t, mixture, teacher, student, config)
    gen = gen_error_unchecked(x.m, q_s, x.b, mixture.delta, mixture.rho)
    agree = agreement_unchecked(t.m, t.q, t.b, x.m, q_s, x.r, x.b, mixture.delta, mixture.rho)
    return gen, agree, train_error, train_loss


def solve_given_teacher(mixture: Mixture, teacher: Teacher, teacher_result: TeacherResult, student: Student,
                        config: SolverConfig) -> StudentResult:
    """The student's fixed point given its solved teacher: pure JAX, no checks."""
    t = teacher_result.state
    x0 = jax.lax.stop_gradient(initial_state(t, student))
    fp = solve_fixed_point(student_map, x0, (t, mixture, teacher, student, config), config,
                           valid=lambda x: x.V > 0)
    x = fp.x
    gen, agree, train_err, train_loss = student_observables(x, t, mixture, teacher, student, config)
    finite = has_finite_minimiser(mixture, student)
    result = RESULTS.where(finite, fp.result, RESULTS.no_finite_minimiser)
    result = RESULTS.where(teacher_result.converged, result, RESULTS.teacher_failed)
    return StudentResult(
        gen_error=gen, m=x.m, q=x.q(t), r=x.r, b=x.b, agreement=agree, train_error=train_err,
        train_loss=train_loss, V=x.V, V_st=x.V_st, residual=fp.residual, iterations=fp.iterations,
        finite_minimiser=finite, result=result, teacher=teacher_result,
    )


def solve(mixture: Mixture, teacher: Teacher, student: Student, config: SolverConfig) -> StudentResult:
    """Teacher then student: pure JAX (``jit``/``vmap``/``grad``), no checks."""
    t = solve_teacher_core(mixture, teacher, config)
    return solve_given_teacher(mixture, teacher, t, student, config)


_solve_jit = jax.jit(solve)


def solve_student(mixture: Mixture, teacher: Teacher, student: Student, config: SolverConfig = SolverConfig(),
                  *, throw: bool = True) -> StudentResult:
    """Exact asymptotic KD student (docs/theory.md, Sec. 3), with its teacher in ``.teacher``.

    Gradients flow through both fixed points by implicit differentiation.  ``throw=True``: a
    failed solve raises (``ValueError`` naming a regime without finite minimiser, with its
    numbers; ``kdjax.SolveError`` for a fixed point that does not converge, the teacher's
    first; under ``jit`` an equinox runtime error with the reason).  ``throw=False``: the
    ``result`` code says what happened.
    """
    check_instance("config", config, SolverConfig)
    if not is_concrete(mixture, teacher, student):
        out = solve(mixture, teacher, student, config)
    else:
        check_arguments(mixture=(mixture, Mixture), teacher=(teacher, Teacher), student=(student, Student))
        if throw:
            check_teacher(mixture, teacher)
            check_student(mixture, student)
        out = _solve_jit(mixture, teacher, student, config)
    if throw:
        raise_if_failed(out.teacher, "teacher")
        out = raise_if_failed(out, "student")
    return out
