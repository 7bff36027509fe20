"""The teacher's saddle-point equations and observables (docs/theory.md, Sec. 2).

State ``x = (m, q, V, b)``.  Given the state, the training pre-activation of a sample of
class ``y`` is ``h = prox(omega)`` with the cavity field ``omega = y m + b + sqrt(delta q) xi``
(2.1); the conjugate parameters are (2.2)

    m_hat = alpha E[y f],  q_hat = alpha delta E[f^2],  V_hat = alpha delta E[D],
    f = (h - omega) / V,   D = -df/d omega = (1 - dh/d omega) / V,

and the weights give back (2.3)

    m = m_hat / (lam + V_hat),  q = (m_hat^2 + q_hat) / (lam + V_hat)^2,  V = delta / (lam + V_hat),

with the bias from its own stationarity condition ``E[f] = 0`` (2.4), iterated as the
Newton step ``b <- b + E[f] / E[D]``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from . import _losses as losses, _quadrature as quad
from ._observables import _gen_error
from ._params import Mixture, SolverConfig, Teacher, check_arguments, check_instance
from ._solve import solve_fixed_point


@dataclasses.dataclass(frozen=True)
class TeacherResult:
    """Solved teacher: MODEL.md observables plus the response ``V`` and solver diagnostics."""

    gen_error: jax.Array
    m: jax.Array
    q: jax.Array
    b: jax.Array
    V: jax.Array
    train_error: jax.Array
    train_loss: jax.Array
    converged: jax.Array
    residual: jax.Array
    iterations: jax.Array
    finite_minimiser: jax.Array


jax.tree_util.register_dataclass(
    TeacherResult, data_fields=[f.name for f in dataclasses.fields(TeacherResult)], meta_fields=[]
)


@dataclasses.dataclass(frozen=True)
class Moments:
    """Per-class Gaussian averages of the channel: ``E[y f], E[f^2], E[D], E[f], E[loss]``."""

    yf: jax.Array
    f2: jax.Array
    D: jax.Array
    f: jax.Array
    loss: jax.Array


@dataclasses.dataclass(frozen=True)
class ChannelNodes:
    """Quadrature over a cavity field ``omega ~ N(mean, sd^2)`` and its output ``h = prox(omega)``.

    ``E g(omega, h) ~= sum w g(omega, h)``; ``slope = dh/d omega``.  Arrays ``(2 classes, n)``.
    """

    omega: jax.Array
    h: jax.Array
    slope: jax.Array
    w: jax.Array


def channel_nodes(loss: str, y, mean, sd, V, n: int, newton_steps: int) -> ChannelNodes:
    """Nodes for averages over the teacher's channel (Sec. 1.3).

    Logistic loss: the nodes are placed in ``h``, since ``omega = h + V l'(h)`` is explicit and
    increasing,  ``E g = int g(omega(h), h) N(omega(h); mean, sd^2) omega'(h) dh``.  The channel
    turns on the loss's own scale (``|h| ~ 1``) whatever ``V`` and ``sd``, so a sinh rule centred
    at ``h = 0`` over the ``h``-image of ``mean +- 10 sd`` resolves it; in ``omega`` it turns twice,
    ``~V`` apart, where a single refined rule cannot follow.  No proximal map is solved at the
    nodes.  Other losses (piecewise-linear proxes): a sinh rule in ``omega`` refined where
    ``omega`` crosses 0.  The rule itself is fixed: no derivative flows through node placement.
    """
    if loss != "logistic":
        xi, w = quad.sinh_rule(-mean[..., 0] / sd, 1.0 / (1.0 + sd), n)
        omega = mean + sd * xi
        prox = lambda o: losses.prox_teacher(loss, y, o, V, newton_steps)
        h, slope = jax.jvp(prox, (omega,), (jnp.ones_like(omega),))
        return ChannelNodes(omega=omega, h=h, slope=slope, w=w)
    _, grad = losses.teacher_loss(loss)
    ends = jax.lax.stop_gradient(mean + sd * jnp.asarray([-10.0, 10.0], mean.dtype))
    lo, hi = (losses.prox_teacher(loss, y, ends[:, i:i + 1], V, newton_steps)[:, 0] for i in (0, 1))
    scale = jnp.minimum(1.0, sd / (1.0 + V / 4.0))  # the logistic l'' is at most 1/4
    h, dh = jax.lax.stop_gradient(quad.sinh_nodes(lo, hi, jnp.clip(0.0, lo, hi), scale, n))
    jac = 1.0 + V * losses.elementwise_derivative(lambda u: grad(y, u), h)
    omega = h + V * grad(y, h)
    return ChannelNodes(omega=omega, h=h, slope=1.0 / jac, w=dh * jac * quad.normal_pdf((omega - mean) / sd) / sd)


def _quadrature_moments(loss, y, mean, sd, V, config):
    """Moments of the channel by quadrature (``channel_nodes``): ``f = (h - omega) / V``,
    ``D = (1 - dh/d omega) / V``."""
    nodes = channel_nodes(loss, y, mean, sd, V, config.degree, config.newton_steps)
    f = (nodes.h - nodes.omega) / V
    value, _ = losses.teacher_loss(loss)
    avg = lambda g: jnp.sum(nodes.w * g, axis=-1)
    return Moments(yf=avg(y * f), f2=avg(f**2), D=avg((1.0 - nodes.slope) / V), f=avg(f),
                   loss=avg(value(y, nodes.h)))


def _square_moments(y, mean, sd, V):
    """Exact moments for the square loss: ``h = (omega + V y) / (1 + V)``, ``f = (y - omega) / (1 + V)``."""
    k = 1.0 + V
    mu = (y - mean)[:, 0] / k
    var = (sd / k) ** 2
    return Moments(yf=y[:, 0] * mu, f2=mu**2 + var, D=jnp.broadcast_to(1.0 / k, mu.shape), f=mu,
                   loss=0.5 * (mu**2 + var))


def _lower_tail(t):
    """``E[(t - xi)^k ; xi < t]`` for ``k = 0, 1, 2``, ``xi ~ N(0, 1)``."""
    Phi, phi = quad.normal_cdf(t), quad.normal_pdf(t)
    return Phi, t * Phi + phi, (1.0 + t**2) * Phi + t * phi


def _hinge_moments(y, mean, sd, V):
    """Exact moments for the hinge loss, integrating each piece of its prox in closed form.

    With the margin ``u = y omega ~ N(mu, sd^2)``: ``f = 0`` for ``u >= 1``; ``f = y (1 - u)/V``,
    ``D = 1/V`` for ``1 - V <= u < 1``; ``f = y`` and loss ``1 - V - u`` for ``u < 1 - V``.
    """
    mu = y * mean
    c = 1.0 - V
    P1, G1, H1 = _lower_tail((1.0 - mu) / sd)  # u < 1
    P3, G3, H3 = _lower_tail((c - mu) / sd)  # u < 1 - V
    one_minus_u = sd * G1 - (V * P3 + sd * G3)  # E[(1-u); 1-V <= u < 1]
    one_minus_u2 = sd**2 * H1 - (V**2 * P3 + 2 * V * sd * G3 + sd**2 * H3)
    yf = one_minus_u / V + P3
    return Moments(
        yf=yf[:, 0],
        f2=(one_minus_u2 / V**2 + P3)[:, 0],
        D=((P1 - P3) / V)[:, 0],
        f=(y * yf)[:, 0],
        loss=(sd * G3)[:, 0],
    )


def teacher_moments(loss: str, y, mean, sd, V, config: SolverConfig) -> Moments:
    if loss == "hinge":
        return _hinge_moments(y, mean, sd, V)
    if loss == "square":
        return _square_moments(y, mean, sd, V)
    return _quadrature_moments(loss, y, mean, sd, V, config)


def _fields(x, mixture: Mixture):
    m, q, V, b = x
    y = quad.labels(x.dtype)
    return y, y * m + b, quad.safe_sqrt(mixture.delta * q), V


def teacher_map(x, args):
    """One application of the saddle-point map ``F`` of (2.2)-(2.4) to ``x = (m, q, V, b)``."""
    mixture, teacher, config = args
    y, mean, sd, V = _fields(x, mixture)
    mo = teacher_moments(teacher.loss, y, mean, sd, V, config)
    avg = lambda g: quad.class_average(mixture.rho, g)
    m_hat = mixture.alpha * avg(mo.yf)
    q_hat = mixture.alpha * mixture.delta * avg(mo.f2)
    V_hat = mixture.alpha * mixture.delta * avg(mo.D)
    k = teacher.lam + V_hat
    b_new = x[3] + avg(mo.f) / avg(mo.D)
    return jnp.stack([m_hat / k, (m_hat**2 + q_hat) / k**2, mixture.delta / k, b_new])


def initial_state(mixture: Mixture, dtype):
    """A start inside the basin: the ridge-less signal direction with unit response."""
    return jnp.stack(
        [jnp.asarray(0.5, dtype), jnp.asarray(1.0, dtype), jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype)]
    )


def has_finite_minimiser(mixture: Mixture, teacher: Teacher, separability: bool = True):
    """Whether the teacher's objective has a unique finite minimiser (MODEL.md, last section).

    ``lam > 0`` always; at ``lam = 0``: square loss needs ``alpha > 1``; logistic and hinge
    need non-separable data, ``alpha > alpha*(delta, rho)``.  ``separability=False`` is the
    caller's statement that ``lam > 0`` (the threshold, a small optimisation that ``vmap`` would
    evaluate at every point, is then skipped).
    """
    from ._bayes import separability_threshold

    if teacher.loss == "square":
        return (teacher.lam > 0) | (mixture.alpha > 1.0)
    if not separability:
        return teacher.lam > 0
    # The threshold (a small optimisation) is only evaluated where lam = 0.
    return jax.lax.cond(
        teacher.lam > 0,
        lambda m: jnp.asarray(True),
        lambda m: m.alpha > separability_threshold(m.delta, m.rho),
        jax.lax.stop_gradient(mixture),
    )


_has_finite_minimiser_jit = jax.jit(has_finite_minimiser, static_argnames="separability")


def teacher_observables(x, mixture: Mixture, teacher: Teacher, config: SolverConfig):
    """Generalisation error (MODEL.md), training error and loss at the fixed point ``x``."""
    m, q, V, b = x
    y, mean, sd, _ = _fields(x, mixture)
    mo = teacher_moments(teacher.loss, y, mean, sd, V, config)
    _, grad = losses.teacher_loss(teacher.loss)
    c0 = -y * grad(y, jnp.zeros_like(y))  # y h < 0  <=>  y omega < -V c0 (prox is increasing)
    train_err = quad.normal_cdf((-V * c0 - y * mean) / sd)[:, 0]
    avg = lambda g: quad.class_average(mixture.rho, g)
    return _gen_error(m, q, b, mixture.delta, mixture.rho), avg(train_err), avg(mo.loss)


def solve_teacher_state(mixture: Mixture, teacher: Teacher, config: SolverConfig = SolverConfig()):
    """Fixed point of the teacher map (pure JAX: jit/vmap/grad)."""
    dtype = jnp.result_type(mixture.alpha, mixture.delta, mixture.rho, teacher.lam, float)
    x0 = initial_state(mixture, dtype)
    return solve_fixed_point(teacher_map, x0, (mixture, teacher, config), config, valid=lambda x: x[2] > 0)


def teacher_result(fp, mixture, teacher, config, separability: bool = True) -> TeacherResult:
    m, q, V, b = fp.x
    gen, train_err, train_loss = teacher_observables(fp.x, mixture, teacher, config)
    finite = has_finite_minimiser(mixture, teacher, separability)
    return TeacherResult(
        gen_error=gen,
        m=m,
        q=q,
        b=b,
        V=V,
        train_error=train_err,
        train_loss=train_loss,
        converged=fp.converged & finite,
        residual=fp.residual,
        iterations=fp.iterations,
        finite_minimiser=finite,
    )


def solve_teacher_raw(
    mixture: Mixture, teacher: Teacher, config: SolverConfig = SolverConfig(), separability: bool = True
):
    """Teacher solve without eager checks: the building block under ``jit``/``vmap``/``grad``.

    ``separability=False`` (static): the caller knows ``lam > 0`` (``has_finite_minimiser``)."""
    fp = solve_teacher_state(mixture, teacher, config)
    return teacher_result(fp, mixture, teacher, config, separability)


def _is_concrete(*trees) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def check_teacher_regime(mixture: Mixture, teacher: Teacher) -> None:
    """Raise ``ValueError`` naming the regime when the teacher has no unique finite minimiser."""
    if float(teacher.lam) > 0 or bool(_has_finite_minimiser_jit(mixture, teacher)):
        return
    alpha = float(mixture.alpha)
    if teacher.loss == "square":
        raise ValueError(
            f"lam_t = 0 with square loss has no unique minimiser for alpha <= 1 (interpolation "
            f"regime, got alpha = {alpha:g}); use lam_t > 0 or alpha > 1"
        )
    from ._bayes import separability_threshold

    star = float(separability_threshold(mixture.delta, mixture.rho))
    raise ValueError(
        f"lam_t = 0 with {teacher.loss} loss has no finite minimiser: the training data are linearly "
        f"separable for alpha < alpha*(delta, rho) = {star:.4f} (got alpha = {alpha:g}); "
        f"use lam_t > 0 or alpha > {star:.4f}"
    )


def warn_unconverged(converged, residual, what: str) -> None:
    import warnings

    if not bool(converged):
        warnings.warn(
            f"the {what} fixed point did not converge (residual {float(residual):.3g}); "
            "raise SolverConfig.max_steps or lower SolverConfig.damping",
            RuntimeWarning,
            stacklevel=3,
        )


_solve_teacher_jit = jax.jit(solve_teacher_raw)


def solve_teacher(mixture: Mixture, teacher: Teacher, config: SolverConfig = SolverConfig()) -> TeacherResult:
    """Exact asymptotic teacher (docs/theory.md, Sec. 2): a pytree of MODEL.md observables.

    Called with concrete numbers it first checks that a finite minimiser exists
    (``ValueError`` otherwise) and warns when the fixed point does not converge.  Under
    ``jit``/``vmap``/``grad`` it is a pure function; failures are reported in
    ``converged``/``finite_minimiser``.
    """
    check_instance("config", config, SolverConfig)
    if not _is_concrete(mixture, teacher):
        return solve_teacher_raw(mixture, teacher, config)
    check_arguments(mixture=(mixture, Mixture), teacher=(teacher, Teacher))
    check_teacher_regime(mixture, teacher)
    result = _solve_teacher_jit(mixture, teacher, config)
    warn_unconverged(result.converged, result.residual, "teacher")
    return result
