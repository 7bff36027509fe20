"""The student's saddle-point equations and observables (docs/theory.md, Sec. 3).

The solved teacher enters as fixed numbers ``(m_t, q_t, b_t, V_t)``; the student's state is
``x = (m_s, sigma2, r, b_s, V_ss, V_st)`` with ``sigma2 = q_s - r^2/q_t >= 0`` the variance of the
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

    h_s = prox_{V_ss L(y, sigmoid(h_t / T), .)}(omega_s'),  f_s = (h_s - omega_s') / V_ss,
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

import dataclasses

import jax
import jax.numpy as jnp

from . import _losses as losses, _quadrature as quad
from ._bayes import separability_threshold
from ._observables import _agreement, _gen_error
from ._params import Mixture, SolverConfig, Student, Teacher, check_arguments, check_instance
from ._solve import solve_fixed_point
from ._teacher import TeacherResult, channel_nodes


@dataclasses.dataclass(frozen=True)
class StudentResult:
    """Solved student (MODEL.md observables and diagnostics) with its ``teacher``."""

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
    converged: jax.Array
    residual: jax.Array
    iterations: jax.Array
    finite_minimiser: jax.Array
    teacher: TeacherResult


jax.tree_util.register_dataclass(
    StudentResult, data_fields=[f.name for f in dataclasses.fields(StudentResult)], meta_fields=[]
)


def student_alpha(mixture: Mixture, student: Student):
    """Samples per input dimension the student trains on: ``alpha`` (same) or ``alpha_s``."""
    return mixture.alpha if student.data == "same" else student.alpha


def _teacher_state(teacher_result: TeacherResult):
    t = teacher_result
    return t.m, t.q, t.b, t.V


class _Nodes:
    """Cavity fields of both classes at the 2-D quadrature nodes (3.1), Sec. 1.3.

    ``u_t = sqrt(q_t) xi_1`` and ``u_s = slope xi_1 + cond_sd xi_2``.  The teacher's field uses
    ``teacher.channel_nodes`` (same inputs: the teacher's output ``h_t = prox_t(omega_t)`` and
    ``dh_t/d omega_t`` come with the nodes) or, for fresh inputs (``h_t = omega_t``), a sinh
    rule refined where ``omega_t`` crosses 0.  ``xi_2`` (the student's own noise, often small,
    exactly 0 when the student copies the teacher) uses Gauss-Hermite.  Arrays have shape
    ``(2 classes, K * K)``.
    """

    def __init__(self, x, t_state, mixture, teacher, student, config):
        m_s, sigma2, r, b_s = x[0], x[1], x[2], x[3]
        m_t, q_t, b_t, V_t = t_state
        K = config.degree_2d
        self.y = y = quad.labels(x.dtype)
        sd = jnp.sqrt(mixture.delta)
        self.slope = r / quad.safe_sqrt(q_t)
        self.cond_sd = quad.safe_sqrt(sigma2)
        self.mean_s = y * m_s + b_s
        self.mean_t, self.sd_t = y * m_t + b_t, sd * quad.safe_sqrt(q_t)
        if student.data == "same":
            t = channel_nodes(teacher.loss, y, self.mean_t, self.sd_t, V_t, K, config.newton_steps)
            omega_t, h_t, dh_t, w1 = t.omega, t.h, t.slope, t.w
        else:
            xi, w1 = quad.sinh_rule(-self.mean_t[:, 0] / self.sd_t, 1.0 / (1.0 + self.sd_t), K)
            omega_t = h_t = self.omega_t_at(xi)
            dh_t = jnp.ones_like(h_t)
        xi1 = (omega_t - self.mean_t) / self.sd_t
        mean2 = self.mean_s + sd * self.slope * xi1  # (2, K): student's field given xi1
        xi2, w2 = quad.gauss_hermite(K, x.dtype)  # exact as the conditional noise vanishes
        self.w = (w1[:, :, None] * w2).reshape(2, K * K)
        tile = lambda a: jnp.broadcast_to(a[:, :, None], (2, K, K)).reshape(2, K * K)
        self.omega_t, self.h_t, self.dh_t = tile(omega_t), tile(h_t), tile(dh_t)
        self.omega_s = (mean2[:, :, None] + sd * self.cond_sd * xi2).reshape(2, K * K)

    def omega_t_at(self, xi1):
        return self.mean_t + self.sd_t * xi1

    def mean(self, g, rho):
        return quad.class_average(rho, jnp.sum(self.w * g, axis=-1))


def _teacher_channel(omega_t, y, teacher: Teacher, V_t, data: str, config: SolverConfig):
    """Teacher's output ``h_t`` on a student training input and its ``f_t`` (3.2)."""
    if data == "fresh":
        return omega_t, jnp.zeros_like(omega_t)
    h_t = losses.prox_teacher(teacher.loss, y, omega_t, V_t, config.newton_steps)
    return h_t, (h_t - omega_t) / V_t


def _student_output(h_t, f_t, omega_s, y, x, student, config):
    """``f_s`` and ``h_s`` given the teacher's output ``h_t``, its ``f_t`` and the cavity ``omega_s``."""
    V_ss, V_st = x[4], x[5]
    shifted = omega_s + V_st * f_t
    p = losses.soft_label(h_t, student.temperature)
    h_s = losses.prox_kd(y, p, student.hard_weight, student.temperature, shifted, V_ss, config.newton_steps)
    return (h_s - shifted) / V_ss, h_s


def _teacher_f(nodes, V_t, student):
    """``f_t = (h_t - omega_t) / V_t`` at the nodes (0 for fresh inputs)."""
    if student.data == "fresh":
        return jnp.zeros_like(nodes.h_t)
    return (nodes.h_t - nodes.omega_t) / V_t


def student_map(x, args):
    """One application of the student's saddle-point map (3.2)-(3.5)."""
    t_state, mixture, teacher, student, config = args
    m_t, q_t, _, V_t = t_state
    nodes = _Nodes(x, t_state, mixture, teacher, student, config)
    y = nodes.y
    f_t = _teacher_f(nodes, V_t, student)

    fs, f_s_lin = jax.linearize(
        lambda h, f, o: _student_output(h, f, o, y, x, student, config)[0], nodes.h_t, f_t, nodes.omega_s
    )
    zeros = jnp.zeros_like(fs)
    D_ss = -f_s_lin(zeros, zeros, jnp.ones_like(fs))
    # d/d omega_t moves h_t by dh_t/d omega_t and f_t by (dh_t/d omega_t - 1) / V_t.
    df_t = (nodes.dh_t - 1.0) / V_t if student.data == "same" else zeros
    D_st = -f_s_lin(nodes.dh_t, df_t, zeros)

    mean = lambda g: nodes.mean(g, mixture.rho)
    alpha, delta, gamma = student_alpha(mixture, student), mixture.delta, student.gamma
    m_hat = alpha * mean(y * fs)
    Q_ss = alpha * delta * mean(fs**2)
    Q_ts = alpha * delta * mean(f_t * fs)
    Vh_ss = alpha * delta * mean(D_ss)
    Vh_st = alpha * delta * mean(D_st)
    b_new = x[3] + mean(fs) / mean(D_ss)

    c = 1.0 / (student.lam + Vh_ss)
    A_t = V_t / delta
    # Per coordinate w_s = c (Y - V_hat_st w_t) with Y = m_hat v + xi_s (3.4).
    B = m_hat * m_t + A_t * Q_ts  # E[w_t Y]
    C = m_hat**2 + Q_ss  # E[Y^2]
    m_s = gamma * c * (m_hat - Vh_st * m_t)
    r = gamma * c * (B - Vh_st * q_t)
    # sigma^2 = q_s - r^2/q_t as a sum of two non-negative terms, free of cancellation: a
    # student that copies its teacher has Y = 0 and sigma = 0 exactly.                  (3.4')
    sigma2 = gamma * c**2 * ((1.0 - gamma) * (Vh_st * q_t - B) ** 2 / q_t + (C - B**2 / q_t))
    V_ss = delta * gamma * c
    V_st = -delta * gamma * c * Vh_st * A_t if student.data == "same" else jnp.zeros_like(V_ss)
    return jnp.stack([m_s, sigma2, r, b_new, V_ss, V_st])


def student_q(x, t_state):
    """``q_s = r^2 / q_t + sigma2`` from the state."""
    return x[2] ** 2 / t_state[1] + x[1]


def initial_state(t_state, student: Student):
    """Start from the teacher restricted to the student's coordinates."""
    m_t, q_t, b_t, V_t = t_state
    g = student.gamma
    V_st = g * V_t if student.data == "same" else 0.0 * V_t
    sigma2 = g * (1.0 - g) * q_t  # q_s = r = gamma q_t
    return jnp.stack([g * m_t, sigma2, g * q_t, b_t, g * V_t, V_st])


def has_finite_minimiser(mixture: Mixture, student: Student, separability: bool = True):
    """Whether the student's objective has a unique finite minimiser.

    ``lam_s > 0`` always.  At ``lam_s = 0``: with soft labels (``a < 1``) the per-sample loss
    is strictly convex and coercive, so a unique minimiser needs more samples than student
    weights, ``alpha_st > gamma``; on hard labels alone (``a = 1``) the student's data must not
    be separable: ``alpha_st / gamma > alpha*(delta / gamma, rho)`` (the student's problem is
    a teacher problem with ``N -> gamma N``, ``delta -> delta / gamma``).
    ``separability=False`` is the caller's statement that ``lam_s > 0`` or ``a < 1`` (the
    threshold is then skipped).
    """
    alpha = jax.lax.stop_gradient(student_alpha(mixture, student))
    if not separability:
        return (student.lam > 0) | (alpha > student.gamma)
    g, delta, rho = jax.lax.stop_gradient((student.gamma, mixture.delta, mixture.rho))
    # The separability threshold (a small optimisation) is only evaluated where it decides.
    hard_only = (student.lam <= 0) & (student.hard_weight >= 1.0)
    separable = lambda: alpha <= g * separability_threshold(delta / g, rho)
    return (student.lam > 0) | ((alpha > g) & ~jax.lax.cond(hard_only, separable, lambda: jnp.asarray(False)))


_has_finite_minimiser_jit = jax.jit(has_finite_minimiser, static_argnames="separability")


def _train_error(x, t_state, mixture, teacher, student, config):
    """Fraction of the student's training samples it misclassifies (3.6).

    ``y h_s < 0`` iff ``y omega_s' < y V_ss L'(0)`` (the prox is increasing).  Given the
    teacher's node ``xi_1`` this is a Gaussian event in ``xi_2``, integrated in closed form;
    the remaining ``xi_1`` integrand can be a near-step (when ``q_s - r^2/q_t`` is small), so
    it is split at its crossing and each side integrated by Gauss-Legendre on [-L, L].
    """
    V_ss, V_st = x[4], x[5]
    _, _, _, V_t = t_state
    nodes = _Nodes(x, t_state, mixture, teacher, student, config)
    y, sd = nodes.y, jnp.sqrt(mixture.delta)
    a, T = student.hard_weight, student.temperature

    def margin(xi1):  # y (threshold - conditional mean): P(wrong | xi1) = Phi(margin / (sd cond_sd))
        omega_t = nodes.omega_t_at(xi1)
        h_t, f_t = _teacher_channel(omega_t, y, teacher, V_t, student.data, config)
        p = losses.soft_label(h_t, T)
        threshold = V_ss * losses.kd_grad(jnp.zeros_like(h_t), y, p, a, T) - V_st * f_t
        return y * (threshold - nodes.mean_s - sd * nodes.slope * xi1)

    L = 12.0
    lo, hi = jnp.full((2, 1), -L, x.dtype), jnp.full((2, 1), L, x.dtype)
    cut = quad.bisect_root(margin, lo, hi)
    pieces = [quad.gauss_legendre(lo[:, 0], cut[:, 0], config.degree),
              quad.gauss_legendre(cut[:, 0], hi[:, 0], config.degree)]
    total = 0.0
    for xi1, w in pieces:
        wrong = quad.normal_cdf(margin(xi1) / (sd * nodes.cond_sd))
        total = total + jnp.sum(w * quad.normal_pdf(xi1) * wrong, axis=-1)
    return quad.class_average(mixture.rho, total)


def student_observables(x, t_state, mixture, teacher, student, config):
    """Generalisation error, agreement, training error and loss at the fixed point ``x``."""
    m_s, r, b_s = x[0], x[2], x[3]
    q_s = student_q(x, t_state)
    m_t, q_t, b_t, V_t = t_state
    nodes = _Nodes(x, t_state, mixture, teacher, student, config)
    y = nodes.y
    h_t = nodes.h_t
    _, h_s = _student_output(h_t, _teacher_f(nodes, V_t, student), nodes.omega_s, y, x, student, config)
    p = losses.soft_label(h_t, student.temperature)
    train_loss = nodes.mean(losses.kd_loss(h_s, y, p, student.hard_weight, student.temperature), mixture.rho)
    train_error = _train_error(x, t_state, mixture, teacher, student, config)
    gen = _gen_error(m_s, q_s, b_s, mixture.delta, mixture.rho)
    agree = _agreement(m_t, q_t, b_t, m_s, q_s, r, b_s, mixture.delta, mixture.rho)
    return gen, agree, train_error, train_loss


def solve_student_raw(
    mixture: Mixture, teacher_result: TeacherResult, teacher: Teacher, student: Student,
    config: SolverConfig = SolverConfig(), separability: bool = True,
) -> StudentResult:
    """Student solve given a solved teacher, without eager checks (jit/vmap/grad)."""
    t_state = _teacher_state(teacher_result)
    x0 = jax.lax.stop_gradient(initial_state(t_state, student))
    fp = solve_fixed_point(student_map, x0, (t_state, mixture, teacher, student, config), config,
                           valid=lambda x: x[4] > 0)
    gen, agree, train_err, train_loss = student_observables(fp.x, t_state, mixture, teacher, student, config)
    finite = has_finite_minimiser(mixture, student, separability)
    x = fp.x
    return StudentResult(
        gen_error=gen, m=x[0], q=student_q(x, t_state), r=x[2], b=x[3], agreement=agree,
        train_error=train_err, train_loss=train_loss, V=x[4], V_st=x[5],
        converged=fp.converged & finite & teacher_result.converged,
        residual=fp.residual, iterations=fp.iterations, finite_minimiser=finite,
        teacher=teacher_result,
    )


def check_student_regime(mixture: Mixture, student: Student) -> None:
    """Raise ``ValueError`` naming the regime when the student has no unique finite minimiser."""
    if float(student.lam) > 0 or bool(_has_finite_minimiser_jit(mixture, student)):
        return
    alpha = float(student_alpha(mixture, student))
    g = float(student.gamma)
    name = "alpha" if student.data == "same" else "alpha_s"
    if float(student.hard_weight) >= 1.0:
        star = g * float(separability_threshold(mixture.delta / g, mixture.rho))
        raise ValueError(
            f"lam_s = 0 with hard labels only (hard_weight = 1) has no finite minimiser: the student's "
            f"data are linearly separable for {name} < {star:.4f} (got {alpha:g}); use lam_s > 0"
        )
    raise ValueError(
        f"lam_s = 0 has no unique student minimiser when {name} <= gamma (the student interpolates "
        f"its targets; got {name} = {alpha:g}, gamma = {g:g}); use lam_s > 0"
    )


def _solve_student_pair(mixture, teacher, student, config, separability: bool = True):
    from ._teacher import solve_teacher_raw

    t = solve_teacher_raw(mixture, teacher, config, separability)
    return solve_student_raw(mixture, t, teacher, student, config, separability)


_solve_student_jit = jax.jit(_solve_student_pair)


def solve_student(
    mixture: Mixture, teacher: Teacher, student: Student, config: SolverConfig = SolverConfig()
) -> StudentResult:
    """Exact asymptotic KD student (docs/theory.md, Sec. 3), with its teacher in ``.teacher``.

    Gradients flow through both fixed points by implicit differentiation.  With concrete
    inputs the regimes without a finite minimiser raise ``ValueError``; non-convergence warns.
    """
    from ._teacher import _is_concrete, check_teacher_regime, warn_unconverged

    check_instance("config", config, SolverConfig)
    if not _is_concrete(mixture, teacher, student):
        return _solve_student_pair(mixture, teacher, student, config)
    check_arguments(mixture=(mixture, Mixture), teacher=(teacher, Teacher), student=(student, Student))
    check_teacher_regime(mixture, teacher)
    check_student_regime(mixture, student)
    result = _solve_student_jit(mixture, teacher, student, config)
    warn_unconverged(result.teacher.converged, result.teacher.residual, "teacher")
    warn_unconverged(result.converged, result.residual, "student")
    return result
