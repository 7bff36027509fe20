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
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

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


class ERM(Generation):
    """The teacher as a generation: ``params`` is the ``kdjax.Teacher`` (loss, ridge ``lam_t``)."""

    params: Teacher

    @property
    def loss(self):
        return self.params.loss

    def start(self, mixture, history=()):
        """A start inside the basin: the ridge-less signal direction with unit response."""
        one = jnp.ones((), jnp.result_type(mixture.alpha, mixture.delta, self.params.lam, float))
        return TeacherState(m=0.5 * one, q=one, V=one, b=0.0 * one)

    def _moments(self, x, mixture, config):
        rows, mean, sd = _fields(x, mixture)
        return rows, self.loss.moments(rows[1], mean, sd, x.V, config.degree, config.newton_steps)

    def map(self, x: TeacherState, mixture, history, config) -> TeacherState:
        """One application of the saddle-point map (2.2)-(2.4)."""
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
        return TeacherState(m=m_hat / k, q=(m_hat**2 + q_hat) / k**2, V=mixture.delta / k, b=x.b + step)

    def summary(self, x: TeacherState, history=()) -> Summary:
        return Summary(m=x.m, q=x.q, b=x.b, V=x.V, gamma=jnp.ones_like(x.q), r_teacher=x.q, m_teacher=x.m)

    def observables(self, x: TeacherState, mixture, history=()) -> dict:
        return dict(gen_error=gen_error_unchecked(x.m, x.q, x.b, mixture.delta, mixture.rho),
                    m=x.m, q=x.q, b=x.b, V=x.V, r=None, agreement=None)

    def training(self, x: TeacherState, mixture, history, config):
        """Training error (against the observed labels) and loss per sample."""
        (_, y_obs, w), mean, sd = _fields(x, mixture)
        _, mo = self._moments(x, mixture, config)
        # y~ h < 0  <=>  y~ omega < -V c0, c0 = -y~ l'(0): the prox is increasing
        c0 = -y_obs * self.loss.grad(jnp.zeros_like(y_obs), y_obs)
        train_error = normal_cdf((-x.V * c0 - y_obs * mean) / sd)[:, 0]
        return row_average(w, train_error), row_average(w, mo.loss)

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
        return (x.V > 0) & (x.q >= 0)

    def finite(self, mixture):
        return has_finite_minimiser(mixture, self.params)

    def check(self, mixture, where: str = "") -> None:
        check_teacher(mixture, self.params)

    @property
    def lam(self):
        return self.params.lam
