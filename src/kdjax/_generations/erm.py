"""Generation 0: the teacher, ridge-regularised ERM on the noisy labels (docs/theory.md, Sec. 2).

State ``(m, q, V, b)``.  Given the state, the training pre-activation of a sample of true class
``y`` and observed label ``y~`` is ``h = prox(omega)`` with the cavity field
``omega = y m + b + sqrt(delta q) xi`` (2.1); the conjugates are (2.2)

    m_hat = alpha E[y f],  q_hat = alpha delta E[f^2],  V_hat = alpha delta E[D],
    f = (h - omega) / V,   D = -df/d omega = (1 - dh/d omega) / V,

and the weights give back (2.3)

    m = m_hat / (lam + V_hat),  q = (m_hat^2 + q_hat) / (lam + V_hat)^2,  V = delta / (lam + V_hat),

with the bias from ``E[f] = 0`` (2.4), iterated as the Newton step ``b <- b + E[f] / E[D]``.
The loss enters only through its ``moments`` and ``channel``.

A hinge teacher has a *trivial regime* (2.7), a condition on ``(alpha, delta, rho, eta)`` alone, where
the minimiser is the majority classifier ``w = 0``, ``b = +-1``; there the state is the closed form
``m = q = V = 0`` (``trivial_hinge``), a fixed point of ``map`` and its ``start``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .._losses import Hinge, lower_tail
from .._observables import gen_error_unchecked
from .._params import Teacher
from .._quadrature import label_rows, normal_cdf, row_average, safe_sqrt
from .._regimes import check_teacher, has_finite_minimiser
from .base import Generation, Summary
from .records import Record


class TeacherState(eqx.Module):
    """Order parameters of the teacher's fixed point: ``m, q``, the response ``V`` and the bias ``b``."""

    m: jax.Array
    q: jax.Array
    V: jax.Array
    b: jax.Array


def _fields(x: TeacherState, mixture):
    """Label rows ``(y, y~, weight)``, cavity means ``y m + b`` (true class) and width ``sqrt(delta q)``."""
    y, y_obs, w = label_rows(mixture)
    return (y, y_obs, w), y * x.m + x.b, safe_sqrt(mixture.delta * x.q)


_TRIVIAL_ITERATIONS = 32  # outer iterations of (2.7); a contraction, converged to 1e-14 in ~20 on the test domain
_TRIVIAL_NEWTON = 12  # safeguarded Newton steps for theta per outer iteration (warm-started)


def _clip_moments(theta, mu, kappa):
    """For ``c_y = clip((theta - y mu - xi) / kappa, 0, 1)``, ``xi ~ N(0, 1)``, ``y = +1, -1`` (stacked):
    ``E[c_y], E[c_y^2], P(0 < c_y < 1)``.  One call of the lower-tail moments for all four
    arguments (a small program: this runs inside every evaluation of the map)."""
    a = jnp.stack([theta - mu, theta + mu])
    P, G, H = lower_tail(jnp.concatenate([a, a - kappa]))
    (P1, P0), (G1, G0), (H1, H0) = (jnp.split(v, 2) for v in (P, G, H))
    return (G1 - G0) / kappa, (H1 - H0 - 2.0 * kappa * G0) / kappa**2, P1 - P0


def trivial_hinge(mixture):
    """Whether the hinge teacher's minimiser is ``w = 0`` (docs/theory.md (2.7)), and its bias
    ``b = +-1`` (the majority of the observed labels).  Independent of ``lam``; traceable; no
    derivative (a flag).

    Mirrored so that the majority is ``+1`` (``r = max(rho, 1 - rho)``), the rows with observed label
    ``+1`` (true class ``y = +-1``, weights ``pi_y``) carry the dual variable
    ``c = clip((theta - xi - y mu) / kappa, 0, 1)``, the others ``-1``; the fixed point
    ``kappa = 1 / (alpha S)``, ``mu = B / (delta S)``, ``S = sqrt(C / alpha + B^2 / delta)``, with
    ``theta`` from ``E[d] = 0``, is iterated, and the regime is ``alpha P(0 < c < 1) >= 1``.
    """
    dtype = jnp.result_type(mixture.alpha, mixture.delta, mixture.rho, float)
    alpha, delta, rho, eta = (jax.lax.stop_gradient(jnp.asarray(v, dtype)) for v in
                              (mixture.alpha, mixture.delta, mixture.rho, mixture.label_noise))
    r = jnp.maximum(rho, 1.0 - rho)
    pi = jnp.stack([r * (1.0 - eta), -(1.0 - r) * eta])  # observed +1, true class +1 / -1 (times y)
    p_neg = r * eta + (1.0 - r) * (1.0 - eta)
    B_neg = (1.0 - r) * (1.0 - eta) - r * eta  # E[y d] over the observed -1 rows (d = -1)

    def solve_theta(theta, mu, kappa):
        # E[d] = 0: sum_y pi_y E[c_y] = p_neg, increasing in theta; bracketed Newton
        lo, hi = -40.0 - jnp.abs(mu), 40.0 + jnp.abs(mu) + kappa

        def step(_, s):
            t, lo, hi = s
            c, _, mid = _clip_moments(t, mu, kappa)
            g = jnp.abs(pi) @ c - p_neg
            lo, hi = jnp.where(g < 0, t, lo), jnp.where(g < 0, hi, t)
            t_new = t - g * kappa / jnp.maximum(jnp.abs(pi) @ mid, 1e-300)
            inside = (t_new >= lo) & (t_new <= hi)  # (a converged t stays put)
            return jnp.where(inside, t_new, 0.5 * (lo + hi)), lo, hi

        return jax.lax.fori_loop(0, _TRIVIAL_NEWTON, step, (jnp.clip(theta, lo, hi), lo, hi))[0]

    def outer(_, s):
        theta, mu, kappa, _ = s
        theta = solve_theta(theta, mu, kappa)
        c, c2, mid = _clip_moments(theta, mu, kappa)
        B = pi @ c + B_neg
        C = jnp.abs(pi) @ c2 + p_neg
        S = jnp.sqrt(C / alpha + B**2 / delta)
        return theta, B / (delta * S), 1.0 / (alpha * S), jnp.abs(pi) @ mid

    one = jnp.ones_like(alpha)
    # P_mid at the last (theta, mu, kappa): converged to ~1e-14 after ~20 iterations
    *_, p_mid = jax.lax.fori_loop(0, _TRIVIAL_ITERATIONS, outer, (0.0 * one, 0.0 * one, one, 0.0 * one))
    trivial = alpha * p_mid >= 1.0
    return trivial, jnp.where(rho >= 0.5, 1.0, -1.0)


def _select(flag, a: TeacherState, b: TeacherState) -> TeacherState:
    return jax.tree.map(lambda u, v: jnp.where(flag, u, v), a, b)


def _default_start(like: TeacherState) -> TeacherState:
    one = jnp.ones_like(like.q)
    return TeacherState(m=0.5 * one, q=one, V=one, b=0.0 * one)


def _is_trivial_state(x: TeacherState):
    """The closed-form state of the trivial regime (the only state with ``V = 0``)."""
    return (x.V == 0) & (x.q == 0) & (x.m == 0)


class ERM(Generation):
    """The teacher as a generation: ``params`` is the ``kdjax.Teacher`` (loss, ridge ``lam_t``)."""

    params: Teacher

    @property
    def loss(self):
        return self.params.loss

    def start(self, mixture, history=()):
        """A start inside the basin: the ridge-less signal direction with unit response; in the
        hinge's trivial regime (2.7), its closed-form solution."""
        one = jnp.ones((), jnp.result_type(mixture.alpha, mixture.delta, self.params.lam, float))
        x0 = TeacherState(m=0.5 * one, q=one, V=one, b=0.0 * one)
        trivial = self._trivial(mixture, x0)
        return x0 if trivial is None else _select(trivial[0], trivial[1], x0)

    def _trivial(self, mixture, like: TeacherState):
        """``None`` for a loss without a trivial regime, else (2.7)'s flag and closed-form state."""
        if not isinstance(self.loss, Hinge):
            return None
        flag, b = trivial_hinge(mixture)
        zero = jnp.zeros_like(like.q)
        return flag, TeacherState(m=zero, q=zero, V=zero, b=b.astype(zero.dtype))

    def _moments(self, x, mixture, config):
        rows, mean, sd = _fields(x, mixture)
        return rows, self.loss.moments(rows[1], mean, sd, x.V, config.degree, config.newton_steps)

    def map(self, x: TeacherState, mixture, history, config) -> TeacherState:
        """One application of the saddle-point map (2.2)-(2.4); in the hinge's trivial regime (2.7)
        the constant map onto its closed-form solution (the other branch is evaluated at the start,
        so that it stays finite)."""
        trivial = self._trivial(mixture, x)
        if trivial is not None:
            x = _select(trivial[0], _default_start(x), x)
        (y, _, w), mo = self._moments(x, mixture, config)
        avg = lambda g: row_average(w, g)
        m_hat = mixture.alpha * avg(y[:, 0] * mo.f)
        q_hat = mixture.alpha * mixture.delta * avg(mo.f2)
        V_hat = mixture.alpha * mixture.delta * avg(mo.D)
        k = self.params.lam + V_hat
        step = avg(mo.f) / avg(mo.D)
        if self.loss.piecewise_linear:
            # (2.4): E[f] changes on the scale of the field's width and of the prox's reach, so the
            # Newton step in b is held to that scale: where few samples sit on the curved part of a
            # piecewise-linear loss (a hinge with small V), E[D] ~ 0 and the raw step would leave
            # every sample behind.
            reach = safe_sqrt(mixture.delta * x.q) + x.V
            step = jnp.clip(step, -reach, reach)
        out = TeacherState(m=m_hat / k, q=(m_hat**2 + q_hat) / k**2, V=mixture.delta / k, b=x.b + step)
        return out if trivial is None else _select(trivial[0], trivial[1], out)

    def summary(self, x: TeacherState, history=()) -> Summary:
        return Summary(m=x.m, q=x.q, b=x.b, V=x.V, gamma=jnp.ones_like(x.q), r_teacher=x.q, m_teacher=x.m)

    def observables(self, x: TeacherState, mixture, history=()) -> dict:
        # the trivial state (q = 0, b = +-1) classifies every input as the majority: the limit of
        # the formula, taken without differentiating it at q = 0
        trivial = _is_trivial_state(x)
        error = gen_error_unchecked(x.m, jnp.where(trivial, 1.0, x.q), x.b, mixture.delta, mixture.rho)
        error = jnp.where(trivial, jnp.where(x.b > 0, 1.0 - mixture.rho, mixture.rho), error)
        return dict(gen_error=error, r=None)

    def training(self, x: TeacherState, mixture, history, config):
        """Training error (against the observed labels) and loss per sample."""
        trivial = _is_trivial_state(x)
        h0 = x.b  # the trivial state's output on every input (w = 0)
        x = _select(trivial, _default_start(x), x)
        (_, y_obs, w), mean, sd = _fields(x, mixture)
        _, mo = self._moments(x, mixture, config)
        # y~ h < 0  <=>  y~ omega < -V c0, c0 = -y~ l'(0): the prox is increasing
        c0 = -y_obs * self.loss.grad(jnp.zeros_like(y_obs), y_obs)
        train_error = normal_cdf((-x.V * c0 - y_obs * mean) / sd)[:, 0]
        h0 = jnp.broadcast_to(h0, y_obs.shape)
        train_error = jnp.where(trivial, (y_obs * h0 < 0)[:, 0].astype(train_error.dtype), train_error)
        train_loss = jnp.where(trivial, self.loss.value(h0, y_obs)[:, 0], mo.loss)
        return row_average(w, train_error), row_average(w, train_loss)

    # what a successor on the same inputs needs: the training output at a cavity field
    def output(self, x: TeacherState, omega, y_obs, config):
        return self.loss.prox(omega, x.V, y_obs, steps=config.newton_steps)

    def output_channel(self, x: TeacherState, y_obs, mean, sd, n: int, config):
        return self.loss.channel(y_obs, mean, sd, x.V, n, config.newton_steps)

    def record(self, x: TeacherState, mixture, history, records, config) -> Record:
        """Generation 0's chain ``Record``: ``w_0 = c_0 (m_hat_0 v + xi_0)``, ``c_0 = V_0 / delta``, so
        ``a_0 = m_0``, ``B_00 = c_0``, ``Xi_00 = (q_0 - m_0^2) / c_0^2`` (2.2)-(2.3), docs/chains.md."""
        c0 = x.V / mixture.delta
        one = lambda v: jnp.reshape(v, (1,))
        return Record(m=x.m, b=x.b, q=x.q, gamma=jnp.ones_like(x.q), L=one(safe_sqrt(x.q)), V=one(x.V), a=x.m,
                      B=one(c0), Xi=one((x.q - x.m**2) / c0**2))

    def valid(self, x: TeacherState):
        return ((x.V > 0) | _is_trivial_state(x)) & (x.q >= 0)

    def finite(self, mixture):
        return has_finite_minimiser(mixture, self.params)

    def check(self, mixture, where: str = "") -> None:
        check_teacher(mixture, self.params)

    @property
    def lam(self):
        return self.params.lam
